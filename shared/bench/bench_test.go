package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
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
func TestReportVerdicts(t *testing.T) {
	r := &Report{Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), GoVersion: "go1.26", Machine: "test", Options: Options{ColdStarts: 20},
		Sizes: []Size{{Function: floorName, FC: 5 << 20, Lambda: 4 << 20}, {Function: "logistics-get-quota", FC: 12 << 20, Lambda: 8 << 20}},
		Cold:  []ColdResult{{Function: floorName, RatioFirstP50: 1, RatioReadyP50: 1}, {Function: "logistics-get-quota", RatioFirstP50: 2.0, RatioReadyP50: 1.1}},
		Warm:  []WarmResult{{Function: "logistics-get-quota", NsPerOp: 60000, BareNsPerOp: 50000, Ratio: 1.2, AllocsPerOp: 150, BareAllocsOp: 100}},
		CAMS:  CAMSResult{Pairs: 40, Ours: Dist{P50: 900 * time.Microsecond}, Official: Dist{P50: time.Millisecond}, Ratio: 0.9},
		Memory: []MemoryResult{{Function: "logistics-get-quota", Calls: 10000, AtTenth: 10000, AtEnd: 10500, GrowthKiB: 500, PeakKiB: 11000},
			{Function: camsFunction, Calls: 60, AtTenth: 10000, AtEnd: 10100, GrowthKiB: 100, PeakKiB: 10200}},
		Tokens: []TokenResult{{Store: "memory", Instances: 4, Calls: 10000, Fetches: 4, Lifetimes: 1}, {Store: "redis", Instances: 4, Calls: 10000, Fetches: 2, Lifetimes: 1}},
	}
	var b bytes.Buffer
	require.NoError(t, r.Markdown(&b))
	md := b.String()
	for _, want := range []string{
		"- Date: 2026-01-02T03:04:05Z\n- Machine: test\n- Go: go1.26\n",
		"| cold start ≤ 1.5× floor | worst 2.00× (logistics-get-quota) | **missed** |",
		"exec → ready is at most 1.10× the floor",
		"| warm overhead ≤ 1.3× bare (logistics-get-quota) | 1.20× (150 vs 100 allocs/op) | **met** |",
		"| CAMS no slower than the official client | 0.90× (p50 900 µs vs 1000 µs) | **met** |",
		"| one token fetch per lifetime per deployment (Redis) | 2 fetches, 1 lifetime(s), 4 instances | **missed** |",
		"| RSS ≤ 30 MiB and flat | peak 10.7 MiB (logistics-get-quota); growth flat | **met** |",
		"| every binary as packaged (lambda.norpc) ≤ 10 MiB | largest 8.0 MiB (logistics-get-quota) | **met** |",
		"| plain FC build (no tag) ≤ 10 MiB | largest 12.0 MiB (logistics-get-quota) | **missed** |",
		"| memory | 4 | 10000 | 0 | 4 | 4.0 |",
		"CAMS runs 60 invocations",
	} {
		require.Contains(t, md, want)
	}
	require.Equal(t, 0, strings.Count(md, "Warm overhead (logistics-get-quota):"), "no explanation for a met target")
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
	sbs, err := startSandboxes()
	require.NoError(t, err)
	defer sbs.close()
	res, err := coldStarts(context.Background(), Options{ColdStarts: 2}, bins, sbs, func(string, ...any) {}, []string{"logistics-get-quota"})
	require.NoError(t, err)
	require.Len(t, res, 2)
	require.Equal(t, floorName, res[0].Function)
	require.Equal(t, 2, res[1].First.N)
	require.Equal(t, 1.0, res[0].RatioFirstP50)
	// Each cold start of getQuota fetched its own token (memory store).
	require.Equal(t, 2, sbs.wechat.Calls("token"))
	require.Equal(t, 2, sbs.wechat.Calls("quota"))
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
		{"TOP keeps idempotency records", []MemoryResult{{Function: "top-launch-extra-charge", Calls: 10000, FirstMark: 1000, AtTenth: 15000, AtEnd: 22000, GrowthKiB: 7000, PeakKiB: 22000}},
			"growth top-launch-extra-charge +7000 KiB | **missed** |", "about 796 bytes per key"},
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

func TestMedianResult(t *testing.T) {
	rs := []testing.BenchmarkResult{{N: 1, T: 30}, {N: 1, T: 10}, {N: 1, T: 20}}
	require.Equal(t, int64(20), medianResult(rs).NsPerOp())
	require.Equal(t, time.Duration(30), rs[0].T, "the input order is left alone")
}
