package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/idempotency/recordstore"
	"github.com/cloudcall/cloudcall/shared/store/redisstore/redistest"
	"github.com/cloudcall/cloudcall/shared/top"
)

func TestDistNearestRank(t *testing.T) {
	for _, tc := range []struct {
		name          string
		in            []time.Duration
		p50, p90, p99 time.Duration
	}{
		{"empty", nil, 0, 0, 0},
		{"one", []time.Duration{7}, 7, 7, 7},
		{"unsorted ten", []time.Duration{10, 1, 9, 2, 8, 3, 7, 4, 6, 5}, 5, 9, 10},
		{"twenty", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, 10, 18, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := distOf(tc.in)
			require.Equal(t, len(tc.in), d.N)
			require.Equal(t, tc.p50, d.P50)
			require.Equal(t, tc.p90, d.P90)
			require.Equal(t, tc.p99, d.P99)
		})
	}
}

func TestOKEnvelope(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  runtimeapi.Result
		err  string
	}{
		{"success", runtimeapi.Result{Body: []byte(`{"errCode":0,"errMsg":"x:ok"}`)}, ""},
		{"floor", runtimeapi.Result{Body: []byte(`{}`)}, ""},
		{"failure envelope", runtimeapi.Result{Body: []byte(`{"errCode":-1601,"errMsg":"x:fail configuration"}`)}, "errCode -1601: x:fail configuration"},
		{"function error", runtimeapi.Result{Error: &runtimeapi.FunctionError{Type: "Panic", Message: "boom"}}, "function error Panic: boom"},
		{"timeout", runtimeapi.Result{TimedOut: true}, "timed out"},
		{"not json", runtimeapi.Result{Body: []byte(`nope`)}, "answer is not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := okEnvelope(tc.res)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestTopPayloadGetsAFreshKey(t *testing.T) {
	f, err := lookup("top-launch-extra-charge")
	require.NoError(t, err)
	a, b := string(payload(f, 1)), string(payload(f, 2))
	require.NotEqual(t, a, b)
	require.NotContains(t, a, `"demo-1"`)
	require.Contains(t, a, `"idempotencyKey":"bench-1-`)
	q, err := lookup("logistics-get-quota")
	require.NoError(t, err)
	require.Equal(t, q.Example, string(payload(q, 7)))
}

// TestReportVerdicts renders a report with one target met and others missed
// and checks each verdict and its explanation.
// With the tokens in a shared Redis, every timed start reads the token the
// first start stored: no start fetches one, every start makes only its
// business call, and the section's keys are deleted afterwards.
func TestColdStartsWithSharedTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	url := redistest.URL(t)
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	bins, _, err := buildAll(context.Background(), root, t.TempDir(), SharedTokenFunctions)
	require.NoError(t, err)
	sbs, err := startSandboxes()
	require.NoError(t, err)
	defer sbs.close()
	sh, fetches, done, err := sbs.withSharedTokens(context.Background(), url, bins)
	require.NoError(t, err)
	require.Equal(t, 1, sbs.wechat.Calls("token"), "the first start fetched WeChat's token")
	prefix := sh.env["ck1"]["CLOUDCALL_STORE_PREFIX"]
	require.Equal(t, prefix, sh.env["wechat"]["CLOUDCALL_STORE_PREFIX"])
	require.Equal(t, url, sh.env["ck1"]["CLOUDCALL_STORE"])
	require.NotEmpty(t, sh.env["ck1"]["CK1_REFRESH_TOKEN"], "CK1 on OAuth, not the fixed token")

	res, err := coldStarts(context.Background(), Options{ColdStarts: 3}, bins, sh, func(string, ...any) {}, SharedTokenFunctions, true)
	require.NoError(t, err)
	require.Len(t, res, 3)
	for _, r := range res[1:] {
		require.Equal(t, 3, r.FirstRatio.N, r.Function)
	}
	require.Equal(t, 0, fetches(), "no start fetched a token")
	require.Equal(t, 1, sbs.wechat.Calls("token"))
	require.Equal(t, 1+3+3, sbs.wechat.Calls("quota"), "the first start, each timed start and each floor")
	resp, err := http.Get(sh.env["ck1"]["CK1_API_BASE"] + "/__sandbox/calls")
	require.NoError(t, err)
	var ck1Calls map[string]int
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ck1Calls))
	resp.Body.Close()
	require.Equal(t, 1, ck1Calls["refresh"], "CK1: the first start's refresh only")
	require.Equal(t, 1+3+3, ck1Calls["pricing"], "CK1: the first start, each timed start and each floor, on the section's sandbox")

	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), prefix+"*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys, "the tokens are in Redis")
	done()
	keys, err = rdb.Keys(context.Background(), prefix+"*").Result()
	require.NoError(t, err)
	require.Empty(t, keys)
}

func TestReportVerdicts(t *testing.T) {
	r := &Report{Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), GoVersion: "go1.26", Machine: "test", Options: Options{ColdStarts: 20},
		Sizes: []Size{{Function: floorName, FC: 5 << 20, Lambda: 4 << 20}, {Function: "logistics-get-quota", FC: 12 << 20, Lambda: 8 << 20}},
		Cold: []ColdResult{{Function: floorName}, {Function: "logistics-get-quota",
			ReadyRatio: Spread{N: 20, P10: 1.0, P50: 1.05, P90: 1.2}, FirstRatio: Spread{N: 20, P10: 1.5, P50: 2.0, P90: 2.5}},
			{Function: "top-launch-extra-charge", ReadyRatio: Spread{N: 20, P10: 1.0, P50: 1.05, P90: 1.2}, FirstRatio: Spread{N: 20, P10: 1.2, P50: 1.5, P90: 1.8},
				RecordsFloor: Dist{N: 20, P50: 7 * time.Millisecond}, RecordsRatio: Spread{N: 20, P10: 1.0, P50: 1.12, P90: 1.3}}},
		Warm: []WarmResult{{Function: "logistics-get-quota", NsPerOp: 60000, BareNsPerOp: 50000, Ratio: Spread{N: 7, P10: 1.05, P50: 1.1, P90: 1.2}, AllocRatio: 1.5, AllocsPerOp: 150, BareAllocsOp: 100,
			Peer: &PowerWeChatResult{Version: "v3.3.3", NsPerOp: 70000, Allocs: 300, Ratio: Spread{N: 7, P10: 0.8, P50: 0.85, P90: 0.9}, GetQuotaErr: "json: cannot unmarshal number into Go struct field", LogLines: 10, TokenLeaks: 4}}},
		Emu: []EmuRow{
			{Callers: 8, Instances: 4, Ours: EmuSide{Calls: 100, OK: 100, MinShare: 0.9, MaxShare: 1.1, Latency: Dist{P50: time.Millisecond, P99: 2 * time.Millisecond}},
				RIE: EmuSide{Calls: 100, OK: 80, Rejected: 20}, Throughput: Spread{N: 5, P10: 1.1, P50: 1.2, P90: 1.3}},
			{Callers: 32, Instances: 4, Ours: EmuSide{Calls: 100, OK: 100, MinShare: 0.2, MaxShare: 3, Latency: Dist{P50: time.Millisecond, P99: 50 * time.Millisecond}},
				RIE: EmuSide{Calls: 100, OK: 50, Rejected: 50}, Throughput: Spread{N: 5, P10: 0.8, P50: 0.9, P90: 1.0}},
		},
		CAMS: CAMSResult{Pairs: 40, Ours: Dist{P50: 900 * time.Microsecond}, Official: Dist{P50: time.Millisecond}, Ratio: 0.9,
			PairRatio: Spread{N: 40, P10: 0.8, P50: 0.91, P90: 1.02, Unit: "pairs"}},
		Memory: []MemoryResult{{Function: "logistics-get-quota", Calls: 10000, AtTenth: 10000, AtEnd: 10500, GrowthKiB: 500, PeakKiB: 11000},
			{Function: camsFunction, Calls: 60, AtTenth: 10000, AtEnd: 10100, GrowthKiB: 100, PeakKiB: 10200}},
		Tokens:           []TokenResult{{Store: "memory", Instances: 4, Calls: 10000, Fetches: 4, Lifetimes: 1}, {Store: "redis", Instances: 4, Calls: 10000, Fetches: 2, Lifetimes: 1}},
		ColdLinkedRounds: 7,
		ColdShared: []ColdResult{{Function: floorName}, {Function: "ck1-pricing-inbound-box",
			ReadyRatio: Spread{N: 7, P10: 1.0, P50: 1.04, P90: 1.1}, FirstRatio: Spread{N: 7, P10: 1.1, P50: 1.2, P90: 1.3}}},
	}
	var b bytes.Buffer
	require.NoError(t, r.Markdown(&b))
	md := b.String()
	for _, want := range []string{
		"- Date: 2026-01-02T03:04:05Z\n- Machine: test\n- Go: go1.26\n",
		"| cold start: ready ≤ 1.10× the hello floor, every function | worst 1.05× (logistics-get-quota) | **met** |",
		"| cold start: first response ≤ 1.25× the vendor-call floor, every function | worst 2.00× (logistics-get-quota) | **missed** |",
		"Cold start, first response over the vendor-call floor: logistics-get-quota 2.00×, top-launch-extra-charge 1.50×. The floor makes its requests",
		"| logistics-get-quota | 0.00 ms | 0.00 ms | 0.00 ms | 1.05× (p10–p90 1.00–1.20×, 20 rounds) | 2.00× (p10–p90 1.50–2.50×, 20 rounds) |",
		"| warm path ≤ 1.15× bare POST, allocations ≤ 1.5× (logistics-get-quota) | time 1.10× (p10–p90 1.05–1.20×, 7 rounds); allocations 1.50× (150 vs 100) | **met** |",
		"- logistics-get-quota ÷ PowerWeChat's path: time 0.85× (p10–p90 0.80–0.90×, 7 rounds); allocations 0.50×.",
		"returns an error: `json: cannot unmarshal number into Go struct field`",
		"it wrote 10 log lines during the run, 4 of them with an access token in clear text",
		"| emulator throughput at 8 callers ≥ 1.0× RIE's successful throughput, none rejected | 1.20× (p10–p90 1.10–1.30×, 5 rounds); 0 rejected (RIE: 20) | **met** |",
		"| emulator throughput at 32 callers ≥ 1.0× RIE's successful throughput, none rejected | 0.90× (p10–p90 0.80–1.00×, 5 rounds); 0 rejected (RIE: 50) | **missed** |",
		"| emulator at 32 callers: p99 ≤ 3× p50 | 50.0× (p50 1.00 ms, p99 50.00 ms) | **missed** |",
		"| emulator at 32 callers: every caller's share within 2× of the mean | 0.20–3.00 of the mean | **missed** |",
		"| 8 | RIE | 100 | 20 |",
		"| 8 | cloudcall | 100 | 0 | 1.00 ms | 2.00 ms | 2.0× | 0 | 0.90–1.10 | 1.20× (p10–p90 1.10–1.30×, 5 rounds) | – |",
		"| CAMS no slower than the official client | 0.91× (p10–p90 0.80–1.02×, 40 pairs) (p50 900 µs vs 1000 µs) | **met** |",
		"| one token fetch per lifetime per deployment (Redis) | 2 fetches, 1 lifetime(s), 4 instances | **missed** |",
		"| RSS ≤ 30 MiB and flat | peak 10.7 MiB (logistics-get-quota); growth flat | **met** |",
		"| every binary as packaged (lambda.norpc) ≤ 10 MiB | largest 8.0 MiB (logistics-get-quota) | **met** |",
		"| plain FC build (no tag) ≤ 10 MiB | largest 12.0 MiB (logistics-get-quota) | **missed** |",
		"| memory | 4 | 10000 | 0 | 4 | 4.0 |",
		"CAMS runs 60 invocations",
		"With the tokens already in a shared Redis (7 rounds,",
		"Token fetches during these rounds: 0. For reading only: the targets above are judged on the default memory store.",
		"top-launch-extra-charge next to a floor that also makes its store writes",
		"the 3 writes before the vendor call and 1 after it that a first charge makes, each a `SET NX` on this run's records store): first response 1.12× (p10–p90 1.00–1.30×, 20 rounds) of the records floor's (p50 7.00 ms).",
		"| ck1-pricing-inbound-box | 0.00 ms | 0.00 ms | 1.04× (p10–p90 1.00–1.10×, 7 rounds) | 1.20× (p10–p90 1.10–1.30×, 7 rounds) |",
	} {
		require.Contains(t, md, want)
	}
	require.Equal(t, 0, strings.Count(md, "Warm path (logistics-get-quota):"), "no explanation for a met target")
	require.Equal(t, 0, strings.Count(md, "Cold start, ready:"), "no explanation for a met target")
}

func TestRedisSkippedIsReported(t *testing.T) {
	r := &Report{Tokens: []TokenResult{{Store: "redis", Skipped: "nothing answers"}}}
	var b bytes.Buffer
	require.NoError(t, r.Markdown(&b))
	require.Contains(t, b.String(), "| one token fetch per lifetime per deployment (Redis) | skipped | not measured: nothing answers |")
	require.Contains(t, b.String(), "| redis | – | – | – | skipped: nothing answers | – |")
}

// TestColdStartOfTheFloor builds the floor and a real function and starts
// each once through the emulator's runtime API against the sandboxes: the
// measurement path works end to end and checks the answers.
func TestColdStartOfTheFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	dir := t.TempDir()
	bins, sizes, err := buildAll(context.Background(), root, dir, []string{"logistics-get-quota"})
	require.NoError(t, err)
	require.Len(t, sizes, 2)
	for _, s := range sizes {
		require.Positive(t, s.FC, s.Function)
		require.Positive(t, s.Lambda, s.Function)
	}
	for _, fn := range []string{floorName, "logistics-get-quota", callFloorName} {
		installed, err := os.ReadFile(bins[fn])
		require.NoError(t, err)
		linked, err := os.ReadFile(linkerOutput(bins[fn]))
		require.NoError(t, err)
		require.Equal(t, linked, installed, "%s: the installed copy is the linker's output, byte for byte", fn)
	}
	sbs, err := startSandboxes()
	require.NoError(t, err)
	defer sbs.close()
	res, err := coldStarts(context.Background(), Options{ColdStarts: 2}, bins, sbs, func(string, ...any) {}, []string{"logistics-get-quota"}, true)
	require.NoError(t, err)
	require.Len(t, res, 2)
	require.Equal(t, floorName, res[0].Function)
	require.Equal(t, 2, res[0].Ready.N, "a hello start next to each function start")
	require.Equal(t, 2, res[1].First.N)
	require.Equal(t, 2, res[1].CallFloor.N)
	require.Equal(t, 2, res[1].ReadyRatio.N)
	require.Positive(t, res[1].FirstRatio.P50)
	// Each cold start of getQuota fetched its own token (memory store); the
	// bench fetched one for the vendor-call floor. Each getQuota and each
	// floor made one quota call.
	require.Equal(t, 3, sbs.wechat.Calls("token"))
	require.Equal(t, 4, sbs.wechat.Calls("quota"))
}

func TestMemoryGrowthVerdicts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mem     []MemoryResult
		verdict string
		note    string
	}{
		{"flat", []MemoryResult{{Function: "logistics-get-quota", Calls: 10000, FirstMark: 1000, AtTenth: 15000, AtEnd: 15100, GrowthKiB: 100, PeakKiB: 15100}},
			"growth flat | **met** |", ""},
		{"few CAMS calls are not judged", []MemoryResult{{Function: camsFunction, Calls: 60, FirstMark: 6, AtTenth: 11000, AtEnd: 13000, GrowthKiB: 2000, PeakKiB: 13000}},
			"growth flat | **met** |", ""},
		{"TOP grows like any other", []MemoryResult{{Function: "top-launch-extra-charge", Calls: 10000, FirstMark: 1000, AtTenth: 15000, AtEnd: 22000, GrowthKiB: 7000, PeakKiB: 22000}},
			"growth top-launch-extra-charge +7000 KiB | **missed** |", "RSS grew +7000 KiB between call 1000 and call 10000"},
		{"other growth", []MemoryResult{{Function: "ck1-pricing-inbound-box", Calls: 10000, FirstMark: 1000, AtTenth: 15000, AtEnd: 20000, GrowthKiB: 5000, PeakKiB: 20000}},
			"**missed** |", "RSS grew +5000 KiB between call 1000 and call 10000"},
		{"too big", []MemoryResult{{Function: "quota-alert", Calls: 10000, FirstMark: 1000, AtTenth: 31000, AtEnd: 31000, PeakKiB: 31 * 1024}},
			"peak 31.0 MiB (quota-alert); growth flat | **missed** |", "peak RSS above 30 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, (&Report{Memory: tc.mem}).Markdown(&b))
			require.Contains(t, b.String(), tc.verdict)
			if tc.note != "" {
				require.Contains(t, b.String(), tc.note)
			}
		})
	}
}

func TestMedianOf(t *testing.T) {
	rs := []testing.BenchmarkResult{{N: 1, T: 30}, {N: 1, T: 10}, {N: 1, T: 20}}
	require.Equal(t, int64(20), medianOf(rs, nsOp))
	require.Equal(t, time.Duration(30), rs[0].T, "the input order is left alone")
}

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		name          string
		in            []float64
		p10, p50, p90 float64
	}{
		{"one", []float64{1.2}, 1.2, 1.2, 1.2},
		{"odd", []float64{1.3, 1.0, 1.1, 1.2, 1.4}, 1.0, 1.2, 1.4},
		{"even: mean of the middle two", []float64{4, 1, 3, 2}, 1, 2.5, 4},
		{"ten", []float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 1, 5.5, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := spreadOf(tc.in)
			require.Equal(t, len(tc.in), s.N)
			require.InDelta(t, tc.p10, s.P10, 1e-9)
			require.InDelta(t, tc.p50, s.P50, 1e-9)
			require.InDelta(t, tc.p90, s.P90, 1e-9)
		})
	}
	require.Equal(t, "–", spreadOf(nil).String())
}

func TestParseInitTrace(t *testing.T) {
	got := parseInitTrace("init runtime @0.019 ms, 0.098 ms clock, 0 bytes, 0 allocs\n" +
		"some log line\n" +
		"init github.com/json-iterator/go @2.8 ms, 0.067 ms clock, 16736 bytes, 217 allocs\n" +
		"init broken @1 ms, x ms clock\n")
	require.Equal(t, map[string]float64{"runtime": 0.098, "github.com/json-iterator/go": 0.067}, got)
}

// quota-alert's first run makes several WeChat calls; its floor makes the
// same ones, and runs.
func TestQuotaAlertFloorMakesItsCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	bins, _, err := buildAll(context.Background(), root, t.TempDir(), []string{"quota-alert"})
	require.NoError(t, err)
	sbs, err := startSandboxes()
	require.NoError(t, err)
	defer sbs.close()
	floors, err := callFloors(context.Background(), bins, sbs, []string{"quota-alert"})
	require.NoError(t, err)
	lines := strings.Split(floors["quota-alert"]["BENCH_FLOOR_CALLS"], "\n")
	require.Greater(t, len(lines), 2)
	require.Contains(t, lines[0], "/cgi-bin/express/business/")
	quotaBefore := sbs.wechat.Calls("quota")
	_, _, err = coldOnce(context.Background(), bins[callFloorName], floors["quota-alert"], []byte(`{}`))
	require.NoError(t, err)
	var quotaLines int
	for _, l := range lines {
		if strings.Contains(l, "/quota/get") {
			quotaLines++
		}
	}
	require.Positive(t, quotaLines)
	require.Equal(t, quotaBefore+quotaLines, sbs.wechat.Calls("quota"), "the floor made every quota call it lists")
}

// With a Redis, the charge's records go there under a fresh prefix, and the
// run deletes them afterwards: keys outside the prefix are left alone.
func TestRecordsOnRedisCleanUp(t *testing.T) {
	url := redistest.URL(t)
	sbs, err := startSandboxes()
	require.NoError(t, err)
	defer sbs.close()
	done, err := sbs.recordsOnRedis(context.Background(), url)
	require.NoError(t, err)
	env := sbs.env["top"]
	require.Equal(t, url, env["CLOUDCALL_IDEMPOTENCY_STORE"])
	require.Equal(t, "assume", env["CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE"])
	prefix := env["CLOUDCALL_STORE_PREFIX"]
	require.True(t, strings.HasPrefix(prefix, "cloudcall-bench-records-"), prefix)

	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx := context.Background()
	other := redistest.Keyspace(t, url) + "kept"
	for i := 0; i < 1203; i++ { // more than one SCAN batch and one DEL batch
		require.NoError(t, rdb.Set(ctx, fmt.Sprintf("%sidem:%d", prefix, i), "x", time.Hour).Err())
	}
	require.NoError(t, rdb.Set(ctx, other, "x", time.Hour).Err())
	done()
	left, err := rdb.Keys(ctx, prefix+"*").Result()
	require.NoError(t, err)
	require.Empty(t, left)
	require.Equal(t, int64(1), rdb.Exists(ctx, other).Val())
}

func TestNoSQLTagIsRecordstores(t *testing.T) {
	require.Equal(t, recordstore.NoSQLTag, noSQLTag)
}

// The charge runs past its fingerprint migration window: the marker in the
// run's records store is dated MigrationAge back, so an instance reading it
// finds the window closed and makes no lookups under the old fingerprint.
func TestTheChargeRunsPastTheMigrationWindow(t *testing.T) {
	sbs, err := startSandboxes()
	require.NoError(t, err)
	defer sbs.close()
	ctx := context.Background()
	require.NoError(t, sbs.pastMigrationWindow(ctx))
	env := config.FromMap(sbs.env["top"])
	records, err := recordstore.FromEnv(env, nil)
	require.NoError(t, err)
	defer records.Close()
	m := top.RecordsMigration(idempotency.New(idempotency.Options{Records: records, Namespace: top.RecordsNamespace(env.Get("TOP_APP_KEY", ""))}))
	since, ok, err := m.Since(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.WithinDuration(t, time.Now().Add(-MigrationAge), since, time.Minute)
	require.True(t, time.Now().After(m.Until(since)), "the window closed at %s", m.Until(since))
}

// The charge starts beside its records floor each round, and the floor
// makes the charge's store writes on the run's records store: three before
// the vendor call and one after, per start.
func TestTheChargeBesideItsRecordsFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	bins, _, err := buildAll(context.Background(), root, t.TempDir(), []string{"top-launch-extra-charge"})
	require.NoError(t, err)
	sbs, err := startSandboxes()
	require.NoError(t, err)
	defer sbs.close()
	ctx := context.Background()
	require.NoError(t, sbs.pastMigrationWindow(ctx))
	res, err := coldStarts(ctx, Options{ColdStarts: 2}, bins, sbs, func(string, ...any) {}, []string{"top-launch-extra-charge"}, true)
	require.NoError(t, err)
	require.Len(t, res, 2)
	require.Equal(t, 2, res[1].RecordsFloor.N)
	require.Equal(t, 2, res[1].RecordsRatio.N)
	require.Positive(t, res[1].RecordsRatio.P50)
	require.Zero(t, res[0].RecordsFloor.N, "the hello floor has none")
	opt, err := redis.ParseURL(sbs.env["top"]["CLOUDCALL_IDEMPOTENCY_STORE"])
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	keys, err := rdb.Keys(ctx, "records-floor:*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 2*(ChargeStoreWrites.Before+ChargeStoreWrites.After), "%v", keys)
}
