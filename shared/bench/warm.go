package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudcall/cloudcall/shared/config"
	cruntime "github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/wechat"
)

// WarmResult compares the function in-process with the bare call of the same
// sandbox endpoint (and, when the peers module runs the bench, PowerWeChat's
// HTTP path for the same call), round by round.
type WarmResult struct {
	Function string
	Rounds   int
	// Medians over the rounds of each side's ns/op, allocs/op and B/op.
	NsPerOp, BareNsPerOp      int64
	AllocsPerOp, BareAllocsOp int64
	BytesPerOp, BareBytesOp   int64
	Ratio                     Spread  // per-round ns/op ratio, function ÷ bare
	AllocRatio                float64 // median allocs ratio, function ÷ bare

	Peer *PowerWeChatResult // nil when PowerWeChat was not measured
}

// PowerWeChatResult is PowerWeChat's getQuota next to the function.
type PowerWeChatResult struct {
	Version         string
	NsPerOp, Allocs int64
	BytesPerOp      int64
	Ratio           Spread // per-round ns/op ratio, function ÷ PowerWeChat
	GetQuotaErr     string // what its own GetQuota returned on the sandbox's answer
	LogLines        int    // lines its default logging wrote
	TokenLeaks      int    // of them, lines carrying an access token in clear
}

var initTesting sync.Once

// warmOverhead runs the whole logistics-get-quota handler in-process with a
// cached token, one bare net/http POST with a valid token, and PowerWeChat's
// path, through testing.Benchmark, alternating them round by round.
func warmOverhead(ctx context.Context, o Options) ([]WarmResult, error) {
	initTesting.Do(testing.Init) // testing.Benchmark reads the test flags
	sbx := wechatsbx.New(wechatsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	env := config.FromMap(sbx.Env(srv.URL))
	h, err := cruntime.New(ctx, env, cruntime.NewLogger(io.Discard, env), wechat.GetQuotaFactory)
	if err != nil {
		return nil, err
	}
	// The function calls through its own client (runtime.NewHTTPClient), as
	// it does deployed; the bare POST uses the test server's.
	pl := []byte(`{"deliveryId":"YTO","bizId":"xyz"}`)
	if out := h.Invoke(ctx, pl, cruntime.Meta{}); !bytes.Contains(out, []byte(`"errCode":0`)) {
		return nil, fmt.Errorf("warm-up getQuota: %s", out)
	}
	var failed error
	fnBench := func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if out := h.Invoke(ctx, pl, cruntime.Meta{}); !bytes.Contains(out, []byte(`"errCode":0`)) {
				failed = fmt.Errorf("getQuota in-process: %s", out)
				b.FailNow()
			}
		}
	}

	tm := wechat.NewTokenManager(wechat.TokenOptions{AppID: wechatsbx.DemoAppID, Secret: wechatsbx.DemoSecret, Base: srv.URL, HTTP: srv.Client(), KV: store.NewMemory(store.MemoryOptions{})})
	tok, err := tm.Token(ctx)
	if err != nil {
		return nil, err
	}
	url := srv.URL + "/cgi-bin/express/business/quota/get?access_token=" + tok
	body := `{"delivery_id":"YTO","biz_id":"xyz"}`
	c := srv.Client()
	bareBench := func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			resp, err := c.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				failed = err
				b.FailNow()
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failed = fmt.Errorf("bare quota call: %s", resp.Status)
				b.FailNow()
			}
		}
	}

	var peer *PowerWeChatClient
	var peerRes *PowerWeChatResult
	var peerBench func(b *testing.B)
	logDir := ""
	if o.Peers.PowerWeChat != nil {
		if logDir, err = os.MkdirTemp("", "powerwechat-logs"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(logDir)
		if peer, err = o.Peers.PowerWeChat(ctx, srv.URL, wechatsbx.DemoAppID, wechatsbx.DemoSecret, logDir); err != nil {
			return nil, err
		}
		peerRes = &PowerWeChatResult{Version: peer.Version}
		if err := peer.GetQuota(ctx, "YTO", "xyz"); err != nil {
			peerRes.GetQuotaErr = err.Error()
		}
		if _, err := peer.Path(ctx, "YTO", "xyz"); err != nil {
			return nil, fmt.Errorf("PowerWeChat's getQuota path: %w", err)
		}
		peerBench = func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := peer.Path(ctx, "YTO", "xyz"); err != nil {
					failed = fmt.Errorf("PowerWeChat's getQuota path: %w", err)
					b.FailNow()
				}
			}
		}
	}

	// Allocations per call from testing.Benchmark (they do not move with
	// the machine's load), a few rounds each, medians kept.
	var fns, bares, peers []testing.BenchmarkResult
	for round := 0; round < allocRounds; round++ {
		fns = append(fns, testing.Benchmark(fnBench))
		bares = append(bares, testing.Benchmark(bareBench))
		if peerBench != nil {
			peers = append(peers, testing.Benchmark(peerBench))
		}
		if failed != nil {
			return nil, failed
		}
	}
	// Time from blocks of interleaved calls: each block makes blockCalls
	// calls of each side, alternating call by call, so a burst of load from
	// another process lands on both sides of the block's ratio. On a shared
	// machine this cancels far more noise than whole rounds of a second.
	sides := []func() error{
		func() error {
			if out := h.Invoke(ctx, pl, cruntime.Meta{}); !bytes.Contains(out, []byte(`"errCode":0`)) {
				return fmt.Errorf("getQuota in-process: %s", out)
			}
			return nil
		},
		func() error {
			resp, err := c.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("bare quota call: %s", resp.Status)
			}
			return nil
		},
	}
	// The floor comparison interleaves the function with the bare POST
	// only; PowerWeChat is compared in blocks of its own. Its garbage and
	// its log files would otherwise land inside the floor's blocks: a GC it
	// triggers is paid in assists by whichever side allocates next.
	blocks, err := interleave(o.WarmRounds, blockCalls, sides)
	if err != nil {
		return nil, err
	}
	var ratios, peerRatios []float64
	for _, b := range blocks {
		ratios = append(ratios, float64(b[0])/float64(b[1]))
	}
	var peerBlocks [][]time.Duration
	if peer != nil {
		peerBlocks, err = interleave(o.WarmRounds, blockCalls, []func() error{sides[0], func() error {
			_, err := peer.Path(ctx, "YTO", "xyz")
			return err
		}})
		if err != nil {
			return nil, err
		}
		for _, b := range peerBlocks {
			peerRatios = append(peerRatios, float64(b[0])/float64(b[1]))
		}
	}
	w := WarmResult{Function: "logistics-get-quota", Rounds: len(blocks),
		NsPerOp: blockMedian(blocks, 0), AllocsPerOp: medianOf(fns, allocsOp), BytesPerOp: medianOf(fns, bytesOp),
		BareNsPerOp: blockMedian(blocks, 1), BareAllocsOp: medianOf(bares, allocsOp), BareBytesOp: medianOf(bares, bytesOp),
		Ratio: spreadOf(ratios)}
	w.Ratio.Unit = "blocks"
	if w.BareAllocsOp > 0 {
		w.AllocRatio = float64(w.AllocsPerOp) / float64(w.BareAllocsOp)
	}
	if peerRes != nil {
		peerRes.NsPerOp, peerRes.Allocs, peerRes.BytesPerOp = blockMedian(peerBlocks, 1), medianOf(peers, allocsOp), medianOf(peers, bytesOp)
		peerRes.Ratio = spreadOf(peerRatios)
		peerRes.Ratio.Unit = "blocks"
		peerRes.LogLines, peerRes.TokenLeaks = scanLogs(logDir)
		w.Peer = peerRes
	}
	return []WarmResult{w}, nil
}

// allocRounds is how many testing.Benchmark runs give the allocation
// figures; blockCalls is the calls of each side per interleaved block.
const (
	allocRounds = 3
	blockCalls  = 100
)

// interleave runs n blocks; in each, every side is called calls times,
// round-robin call by call (the starting side rotating per block), and the
// block's total time per side is returned.
func interleave(n, calls int, sides []func() error) ([][]time.Duration, error) {
	out := make([][]time.Duration, 0, n)
	for b := 0; b < n; b++ {
		tot := make([]time.Duration, len(sides))
		for i := 0; i < calls; i++ {
			for k := range sides {
				j := (k + b) % len(sides)
				t0 := time.Now()
				if err := sides[j](); err != nil {
					return nil, err
				}
				tot[j] += time.Since(t0)
			}
		}
		out = append(out, tot)
	}
	return out, nil
}

// blockMedian is side's median per-call time over the blocks, in ns.
func blockMedian(blocks [][]time.Duration, side int) int64 {
	v := make([]float64, len(blocks))
	for i, b := range blocks {
		v[i] = float64(b[side].Nanoseconds()) / blockCalls
	}
	if len(v) == 0 {
		return 0
	}
	return int64(spreadOf(v).P50)
}

func nsOp(r testing.BenchmarkResult) int64     { return r.NsPerOp() }
func allocsOp(r testing.BenchmarkResult) int64 { return r.AllocsPerOp() }
func bytesOp(r testing.BenchmarkResult) int64  { return r.AllocedBytesPerOp() }

// medianOf is the median of one figure over the rounds.
func medianOf(rs []testing.BenchmarkResult, f func(testing.BenchmarkResult) int64) int64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = float64(f(r))
	}
	if len(v) == 0 {
		return 0
	}
	return int64(spreadOf(v).P50)
}

// sandboxToken is the shape of the WeChat sandbox's access tokens.
var sandboxToken = regexp.MustCompile(`sbx_[0-9a-f]{16,}`)

// scanLogs counts the lines PowerWeChat's logging wrote and those that carry
// an access token the sandbox issued.
func scanLogs(dir string) (lines, leaks int) {
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			lines++
			if sandboxToken.MatchString(line) {
				leaks++
			}
		}
		return nil
	})
	return lines, leaks
}
