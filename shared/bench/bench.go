// Package bench measures the bundle the way it runs: the real binaries under
// the emulator against the vendor sandboxes, next to a floor (a hello-world
// binary, a bare net/http call, the official Alibaba client) measured in the
// same run, so every comparison is a ratio taken on the same machine at the
// same moment.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/localstore"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/idempotency/recordstore"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/sandbox/camssbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/ck1sbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
	"github.com/cloudcall/cloudcall/shared/top"
)

// Functions are the ones the report covers, in report order: the
// registry's, so a function added there is measured without a list to edit.
func Functions() []string {
	var names []string
	for _, f := range registry.All() {
		names = append(names, f.Name)
	}
	return names
}

// camsFunction is rate limited to 10 requests/s by CAMS (and its sandbox),
// so its loops are bounded by time, not by the machine.
const camsFunction = "cams-query-chatapp-bind-waba"

// chargeFunction keeps its idempotency records in a durable store (the
// machine's Redis when one answers, else the embedded one): several store
// round trips per call, so its long runs are shorter.
const chargeFunction = "top-launch-extra-charge"

// Options sizes a run. The zero value is filled by Defaults.
type Options struct {
	ModuleDir   string
	WorkDir     string // where binaries go (a temp dir when empty)
	ColdStarts  int    // per function and for the floor (≥20)
	Calls       int    // per concurrency level through the emulator
	Concurrency []int
	MemoryCalls int // invocations for the RSS figure
	TokenCalls  int // invocations for the token economy
	CAMSPairs   int // paced pairs for the CAMS peer comparison
	RedisURL    string
	Progress    io.Writer
	WarmRounds  int // interleaved blocks of the in-process comparison (blockCalls calls of each side per block)
	EmuRounds   int // interleaved rounds per number of callers, ours vs RIE
	Peers       Peers
	// Only names the sections to run (cold, warm, rie, cams, load, memory,
	// tokens); empty runs them all. For iterating on one figure: the report
	// `make bench` commits runs everything.
	Only []string
}

// Sections are what Options.Only may name.
func Sections() []string { return []string{"cold", "warm", "rie", "cams", "load", "memory", "tokens"} }

func (o Options) want(section string) bool {
	return len(o.Only) == 0 || slices.Contains(o.Only, section)
}

// Peers are measured by the benchmark module bench/peers, which builds them
// from the module proxy so the main go.mod never lists them. Zero values
// skip their sections (plain `cloudcall bench`).
type Peers struct {
	// RIEBinary is aws-lambda-rie, AWS's Runtime Interface Emulator.
	RIEBinary string
	// PowerWeChat builds PowerWeChat's mini-program client on a sandbox.
	PowerWeChat PowerWeChatFactory
}

// PowerWeChatFactory builds the PowerWeChat peer against a WeChat API base
// with the app's credentials; its logs go under logDir.
type PowerWeChatFactory func(ctx context.Context, base, appID, secret, logDir string) (*PowerWeChatClient, error)

// PowerWeChatClient is what the bench calls on PowerWeChat.
type PowerWeChatClient struct {
	Version string
	// Path is its HTTP path for getQuota (BaseClient.HttpPostJson to
	// cgi-bin/express/business/quota/get) with the answer decoded into an
	// integer quota_num, because its own GetQuota cannot read a real answer.
	Path func(ctx context.Context, deliveryID, bizID string) (int64, error)
	// GetQuota is its own method, as a user would call it.
	GetQuota func(ctx context.Context, deliveryID, bizID string) error
}

// Defaults fills what is unset.
func (o *Options) Defaults() {
	if o.ColdStarts <= 0 {
		o.ColdStarts = 300
	}
	if o.Calls <= 0 {
		o.Calls = 2000
	}
	if len(o.Concurrency) == 0 {
		o.Concurrency = []int{1, 8, 32}
	}
	if o.MemoryCalls <= 0 {
		o.MemoryCalls = 10000
	}
	if o.TokenCalls <= 0 {
		o.TokenCalls = 10000
	}
	if o.CAMSPairs <= 0 {
		o.CAMSPairs = 120
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.WarmRounds <= 0 {
		o.WarmRounds = 60
	}
	if o.EmuRounds <= 0 {
		o.EmuRounds = 5
	}
}

// Run measures everything and returns the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.Defaults()
	started := time.Now()
	r := &Report{Date: started.UTC(), GoVersion: runtime.Version(), Machine: machine(), Options: o, LoadStart: loadAvg()}
	if o.WorkDir == "" {
		d, err := os.MkdirTemp("", "cloudcall-bench")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		o.WorkDir = d
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(o.Progress, "[%5.1fs] ", time.Since(started).Seconds())
		fmt.Fprintf(o.Progress, format+"\n", a...)
	}

	logf("building %d functions (FC and Lambda, stripped) and the hello floor", len(Functions()))
	bins, sizes, err := buildAll(ctx, o.ModuleDir, o.WorkDir, Functions())
	if err != nil {
		return nil, err
	}
	r.Sizes = sizes

	sbs, err := startSandboxes()
	if err != nil {
		return nil, err
	}
	defer sbs.close()
	r.RecordsStore = "the emulator's embedded Redis-protocol store (miniredis, in the benchmark's own process: Lua in Go, sharing the 2 cores with the function it serves)"
	if o.RedisURL != "" {
		done, err := sbs.recordsOnRedis(ctx, o.RedisURL)
		if err != nil {
			return nil, err
		}
		defer done()
		r.RecordsStore = "the machine's Redis (" + redacted(o.RedisURL) + ", a fresh key prefix, deleted after the run)"
	}
	if err := sbs.pastMigrationWindow(ctx); err != nil {
		return nil, err
	}

	if o.want("cold") {
		logf("cold starts: %d rounds; each function starts between a hello floor and its vendor-call floor", o.ColdStarts)
		// The charge also as packaged for a SQL records store, for reading.
		var cold []string
		for _, fn := range Functions() {
			cold = append(cold, fn)
			if _, ok := bins[fn+allClients]; ok {
				cold = append(cold, fn+allClients)
			}
		}
		if r.Cold, err = coldStarts(ctx, o, bins, sbs, logf, cold, true); err != nil {
			return nil, err
		}
		lo := o
		lo.ColdStarts = max(20, o.ColdStarts/3)
		linked := map[string]string{}
		for k, v := range bins {
			linked[k] = linkerOutput(v)
		}
		logf("cold starts of the binaries as the linker wrote them: %d rounds", lo.ColdStarts)
		if r.ColdLinked, err = coldStarts(ctx, lo, linked, sbs, logf, Functions(), false); err != nil {
			return nil, err
		}
		r.ColdLinkedRounds = lo.ColdStarts
		if o.RedisURL != "" {
			sh, fetches, done, err := sbs.withSharedTokens(ctx, o.RedisURL, bins)
			if err != nil {
				return nil, err
			}
			logf("cold starts with the tokens already in a shared Redis: %d rounds", lo.ColdStarts)
			r.ColdShared, err = coldStarts(ctx, lo, bins, sh, logf, SharedTokenFunctions, true)
			r.ColdSharedFetches = fetches()
			done()
			if err != nil {
				return nil, err
			}
		}
		logf("package init profile (GODEBUG=inittrace=1): %d starts of each binary", initStarts)
		if r.Init, err = initProfiles(ctx, bins, sbs, Functions()); err != nil {
			return nil, err
		}
	}

	// The in-process comparison starts from a collected heap, as a
	// function's own process would: run straight after the cold section,
	// it read 1.35× where a fresh process read 1.12–1.22×, because a GC
	// paced for the harness's grown heap charges its assists to whichever
	// side allocates more. (Run before the cold section, its garbage slowed
	// the sandboxes the cold starts call instead.)
	if o.want("warm") {
		runtime.GC()
		peer := ""
		if o.Peers.PowerWeChat != nil {
			peer = " and PowerWeChat's getQuota path"
		}
		logf("warm in-process: the function, the bare POST%s: allocations from testing.Benchmark, time from %d blocks of %d interleaved calls each", peer, o.WarmRounds, blockCalls)
		if r.Warm, err = warmOverhead(ctx, o); err != nil {
			return nil, err
		}
	}

	if o.Peers.RIEBinary != "" && o.want("rie") {
		logf("emulator vs AWS's Runtime Interface Emulator: hello (Lambda build), %d alternating rounds per number of callers", o.EmuRounds)
		if r.Emu, err = emulatorVsRIE(ctx, o, bins[helloLambda], logf); err != nil {
			// RIE needs root and unshare for its mount namespace: a machine
			// without them still gets the rest of the report.
			r.EmuSkipped = err.Error()
			logf("  RIE not measured: %v", err)
		}
	}

	if o.want("cams") {
		logf("CAMS: the function next to the official darabonba-openapi client, %d paced pairs", o.CAMSPairs)
		if r.CAMS, err = camsPeer(ctx, o.CAMSPairs); err != nil {
			return nil, err
		}
	}

	if o.want("load") {
		for _, fn := range Functions() {
			logf("through the emulator: %s", fn)
			rows, err := throughput(ctx, o, fn, bins[fn], sbs)
			if err != nil {
				return nil, err
			}
			r.Load = append(r.Load, rows...)
		}
	}

	if o.want("memory") {
		for _, fn := range Functions() {
			n := o.MemoryCalls
			switch fn {
			case camsFunction:
				n = 60 // 10 requests/s: 10,000 calls would take 17 minutes
			case chargeFunction:
				n = min(n, 2000) // store round trips per charge: 10,000 take minutes on a busy machine
			}
			logf("memory: %s, %d invocations on one instance", fn, n)
			m, err := memory(ctx, fn, bins[fn], sbs, n)
			if err != nil {
				return nil, err
			}
			r.Memory = append(r.Memory, m)
		}
	}

	if o.want("tokens") {
		logf("token economy: %d invocations across 4 instances, memory store", o.TokenCalls)
		t, err := tokens(ctx, bins["logistics-get-quota"], "memory", o.TokenCalls)
		if err != nil {
			return nil, err
		}
		r.Tokens = append(r.Tokens, t)
		if o.RedisURL == "" {
			r.Tokens = append(r.Tokens, TokenResult{Store: "redis", Skipped: "no REDIS_URL and nothing answers on 127.0.0.1:6379"})
		} else {
			logf("token economy: %d invocations across 4 instances, Redis", o.TokenCalls)
			t, err := tokens(ctx, bins["logistics-get-quota"], o.RedisURL, o.TokenCalls)
			if err != nil {
				return nil, err
			}
			r.Tokens = append(r.Tokens, t)
		}
	}
	r.Elapsed = time.Since(started)
	r.LoadEnd = loadAvg()
	logf("done")
	return r, nil
}

// RedisURL returns REDIS_URL, or a URL for 127.0.0.1:6379 when it answers,
// or "" (the Redis figures are then reported as skipped).
func RedisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	c, err := net.DialTimeout("tcp", "127.0.0.1:6379", 300*time.Millisecond)
	if err != nil {
		return ""
	}
	c.Close()
	return "redis://127.0.0.1:6379/14"
}

func machine() string {
	m := fmt.Sprintf("%s/%s, %d CPUs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if _, v, ok := strings.Cut(line, ":"); ok {
					m += ", " + strings.TrimSpace(v)
				}
				break
			}
		}
	}
	return m
}

// ---- sandboxes ----

type vendorSandbox interface {
	Handler() http.Handler
	Env(baseURL string) map[string]string
}

type served struct {
	env     map[string]map[string]string // vendor → env
	srv     []*http.Server
	wechat  *wechatsbx.Server // its counters give the token economy
	records *localstore.Server
	// sharedTokens: the functions keep their tokens in a shared store that
	// already holds them, so CK1 starts against env["ck1"] (its OAuth
	// sandbox for the section) rather than a fresh sandbox each.
	sharedTokens bool
}

func (s *served) close() {
	for _, x := range s.srv {
		_ = x.Close()
	}
	if s.records != nil {
		s.records.Close()
	}
}

// recordsOnRedis points the charge at a real Redis for its records, as a
// deployment's store is: the embedded one runs its Lua scripts in the
// benchmark's own process, on the cores the function under test needs. The
// machine's test Redis keeps nothing on disk, so persistence is assumed
// (no real money moves). done deletes the run's records.
func (s *served) recordsOnRedis(ctx context.Context, url string) (done func(), err error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("records on Redis: %w", err)
	}
	rdb := redis.NewClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("records on Redis at %s: %w", opt.Addr, err)
	}
	prefix := fmt.Sprintf("cloudcall-bench-records-%d:", time.Now().UnixNano())
	s.env["top"]["CLOUDCALL_IDEMPOTENCY_STORE"] = url
	s.env["top"]["CLOUDCALL_STORE_PREFIX"] = prefix
	s.env["top"]["CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE"] = "assume"
	return func() {
		defer rdb.Close()
		deletePrefix(rdb, prefix)
	}, nil
}

// MigrationAge is how long ago the benchmark's records store saw its first
// charge of a release without the session in the fingerprint.
const MigrationAge = 72 * time.Hour

// pastMigrationWindow dates the charge's fingerprint migration marker
// MigrationAge back in the run's records store: the charge runs as it does
// two days after its update from a release that fingerprinted the session,
// and for good after that. Inside those two days each charge also reads one
// or two records under the old fingerprint (docs/performance.md measures
// them); a fresh store would keep the whole run inside them.
func (s *served) pastMigrationWindow(ctx context.Context) error {
	env := config.FromMap(s.env["top"])
	records, err := recordstore.FromEnv(env, nil)
	if err != nil {
		return fmt.Errorf("the charge's records store: %w", err)
	}
	defer records.Close()
	g := idempotency.New(idempotency.Options{Records: records, Namespace: top.RecordsNamespace(env.Get("TOP_APP_KEY", "")),
		Now: func() time.Time { return time.Now().Add(-MigrationAge) }})
	m := top.RecordsMigration(g)
	// The first ask writes the marker with this guard's clock.
	if _, e := m.Fingerprint(ctx, "", "bench", func() string { return "bench-before" }); e != nil {
		return fmt.Errorf("dating the fingerprint migration marker: %w", e)
	}
	since, ok, err := m.Since(ctx)
	if err != nil || !ok || time.Since(since) < MigrationAge-time.Minute {
		return fmt.Errorf("the fingerprint migration marker reads %s (found %v): %v", since, ok, err)
	}
	return nil
}

// deletePrefix deletes the keys under prefix, in batches.
func deletePrefix(rdb *redis.Client, prefix string) {
	iter := rdb.Scan(context.Background(), 0, prefix+"*", 500).Iterator()
	var keys []string
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
		if len(keys) == 500 {
			rdb.Del(context.Background(), keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		rdb.Del(context.Background(), keys...)
	}
}

// SharedTokenFunctions are the functions whose first call fetches a token
// when their store is empty: the shared-store section starts them with the
// token already in Redis. (quota-alert also keeps alert state there, which
// would change its calls from one start to the next.)
var SharedTokenFunctions = []string{"logistics-get-quota", "ck1-pricing-inbound-box"}

// withSharedTokens is the cold-start setting of a multi-instance deployment
// after its first start: every function's store is the Redis at url, under
// a fresh prefix, and already holds the WeChat and CK1 tokens (one start of
// each puts them there). CK1 gets an OAuth sandbox of its own, whose
// rotating refresh token the other sections never see. fetches reports the
// token fetches both sandboxes have answered since; done deletes the keys
// and stops the sandbox.
func (s *served) withSharedTokens(ctx context.Context, url string, bins map[string]string) (sh *served, fetches func() int, done func(), err error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("shared tokens: %w", err)
	}
	rdb := redis.NewClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, nil, nil, fmt.Errorf("shared tokens on Redis at %s: %w", opt.Addr, err)
	}
	ck1 := ck1sbx.New(ck1sbx.Options{})
	ck1URL, ck1Srv, err := serve(ck1.Handler())
	if err != nil {
		_ = rdb.Close()
		return nil, nil, nil, err
	}
	prefix := fmt.Sprintf("cloudcall-bench-tokens-%d:", time.Now().UnixNano())
	done = func() {
		_ = ck1Srv.Close()
		deletePrefix(rdb, prefix)
		_ = rdb.Close()
	}
	sh = &served{env: map[string]map[string]string{}, wechat: s.wechat, sharedTokens: true}
	for v, env := range map[string]map[string]string{"wechat": s.env["wechat"], "ck1": ck1.Env(ck1URL)} {
		e := map[string]string{"CLOUDCALL_STORE": url, "CLOUDCALL_STORE_PREFIX": prefix}
		for k, x := range env {
			e[k] = x
		}
		sh.env[v] = e
	}
	for _, fn := range SharedTokenFunctions {
		f, err := lookup(fn)
		if err != nil {
			done()
			return nil, nil, nil, err
		}
		if _, _, err := coldOnce(ctx, bins[fn], functionEnv(f, sh.env[f.Vendor]), payload(f, 0)); err != nil {
			done()
			return nil, nil, nil, fmt.Errorf("shared tokens: first start of %s: %w", fn, err)
		}
	}
	before := s.wechat.Calls("token") + ck1.Calls("refresh")
	return sh, func() int { return s.wechat.Calls("token") + ck1.Calls("refresh") - before }, done, nil
}

// redacted drops a URL's password for the report.
func redacted(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return "a Redis URL"
	}
	return u.Redacted()
}

// startSandboxes serves one fresh sandbox per vendor on loopback.
func startSandboxes() (*served, error) {
	wx := wechatsbx.New(wechatsbx.Options{})
	sbs := map[string]vendorSandbox{
		"wechat":   wx,
		"top":      topsbx.New(topsbx.Options{}),
		"ck1":      ck1sbx.New(ck1sbx.Options{}),
		"alicloud": camssbx.New(camssbx.Options{}),
	}
	// The charge keeps its idempotency records only in a durable store: the
	// emulator's embedded Redis-protocol store, as `cloudcall local` gives it
	// (its durability check waived the same way: no real money moves).
	records, err := localstore.Start("127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("embedded store for the charge's records: %w", err)
	}
	out := &served{env: map[string]map[string]string{}, wechat: wx, records: records}
	for v, sb := range sbs {
		url, srv, err := serve(sb.Handler())
		if err != nil {
			out.close()
			return nil, err
		}
		out.srv = append(out.srv, srv)
		out.env[v] = sb.Env(url)
		if v == "top" {
			out.env[v]["CLOUDCALL_IDEMPOTENCY_STORE"] = records.URL()
			out.env[v]["CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE"] = "assume"
		}
		if v == "ck1" {
			// CK1 refresh tokens are single use and a rotated one lives in
			// the instance's store: with the memory store a second instance
			// (or a second process) would present a spent seed. The long runs
			// use CK1's fixed bearer token; cold starts get a fresh sandbox
			// each (freshCK1), so they include the OAuth refresh.
			out.env[v] = map[string]string{"CK1_API_BASE": url, "CK1_ACCESS_TOKEN": ck1sbx.DemoFixedToken}
		}
	}
	return out, nil
}

// freshCK1 serves a new CK1 sandbox whose seed refresh token is unused.
func freshCK1() (map[string]string, func(), error) {
	sb := ck1sbx.New(ck1sbx.Options{})
	url, srv, err := serve(sb.Handler())
	if err != nil {
		return nil, nil, err
	}
	return sb.Env(url), func() { _ = srv.Close() }, nil
}

// freshCAMS serves a new CAMS sandbox, whose per-AccessKey rate window is
// empty.
func freshCAMS() (map[string]string, func(), error) {
	sb := camssbx.New(camssbx.Options{})
	url, srv, err := serve(sb.Handler())
	if err != nil {
		return nil, nil, err
	}
	return sb.Env(url), func() { _ = srv.Close() }, nil
}

func serve(h http.Handler) (string, *http.Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("sandbox listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), srv, nil
}

// functionEnv is what the emulator gives a function: registry defaults, the
// sandbox's demo credentials, the FC variables.
func functionEnv(f registry.Function, sandboxEnv map[string]string) map[string]string {
	env := map[string]string{}
	for _, v := range f.Env {
		if v.Default != "" {
			env[v.Name] = v.Default
		}
	}
	for k, v := range sandboxEnv {
		env[k] = v
	}
	env["CLOUDCALL_ALLOW_ANONYMOUS"] = "true"
	env["FC_FUNCTION_NAME"] = f.Name
	env["FC_FUNCTION_MEMORY_SIZE"] = strconv.Itoa(f.MemoryMB)
	env["FC_FUNCTION_HANDLER"] = "main"
	env["FC_REGION"] = "cn-hangzhou"
	env["FC_ACCOUNT_ID"] = "123456789012"
	return env
}

func lookup(fn string) (registry.Function, error) {
	f, ok := registry.Lookup(strings.TrimSuffix(fn, allClients))
	if !ok {
		return registry.Function{}, fmt.Errorf("bench: %s is not in the registry", fn)
	}
	return f, nil
}

// payload is the registry Example; TOP gets a fresh idempotency key per call
// so every call is a real charge, not a replay of the first.
func payload(f registry.Function, i int) []byte {
	if f.Name == "top-launch-extra-charge" {
		return []byte(strings.Replace(f.Example, `"demo-1"`, `"bench-`+strconv.Itoa(i)+`-`+strconv.FormatInt(time.Now().UnixNano(), 36)+`"`, 1))
	}
	return []byte(f.Example)
}

// okEnvelope checks an answer is a success envelope (errCode 0).
func okEnvelope(res runtimeapi.Result) error {
	if res.Error != nil {
		return fmt.Errorf("function error %s: %s", res.Error.Type, res.Error.Message)
	}
	if res.TimedOut {
		return fmt.Errorf("timed out")
	}
	var e struct {
		ErrCode *int   `json:"errCode"`
		ErrMsg  string `json:"errMsg"`
	}
	if err := json.Unmarshal(res.Body, &e); err != nil {
		return fmt.Errorf("answer is not JSON: %w: %.200s", err, res.Body)
	}
	if e.ErrCode == nil {
		return nil // the floor answers {}
	}
	if *e.ErrCode != 0 {
		return fmt.Errorf("errCode %d: %s", *e.ErrCode, e.ErrMsg)
	}
	return nil
}

func start(bin string, env map[string]string) (*emulator.Instance, error) {
	return emulator.StartInstance(emulator.InstanceConfig{Binary: bin, Platform: runtimeapi.FC, Env: env})
}

// ---- statistics ----

// Dist summarises durations.
type Dist struct {
	N             int
	P50, P90, P99 time.Duration
}

func distOf(d []time.Duration) Dist {
	if len(d) == 0 {
		return Dist{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return Dist{N: len(s), P50: pct(s, 0.50), P90: pct(s, 0.90), P99: pct(s, 0.99)}
}

// pct is the nearest-rank percentile of sorted durations.
func pct(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	return sorted[i]
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func binPath(dir, name, platform string) string { return filepath.Join(dir, platform, name) }

// Write runs the benchmarks and writes the Markdown report to path (stdout
// when path is empty), saying where it went on msg.
func Write(ctx context.Context, o Options, path string, msg io.Writer) error {
	r, err := Run(ctx, o)
	if err != nil {
		return err
	}
	var b strings.Builder
	if err := r.Markdown(&b); err != nil {
		return err
	}
	if path == "" {
		_, err := io.WriteString(msg, b.String())
		return err
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(msg, "wrote %s\n", path)
	return nil
}
