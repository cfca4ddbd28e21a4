package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

// LoadRow is one concurrency level through the emulator (4 instances at
// most, as the emulator's default).
type LoadRow struct {
	Function    string
	Concurrency int
	Calls       int
	Latency     Dist
	PerSecond   float64
	Instances   int
}

// loadCalls bounds the calls per level: CAMS allows 10 requests/s and a
// quota-alert run makes several vendor calls.
func loadCalls(fn string, n int) int {
	switch fn {
	case camsFunction:
		return 20
	case "quota-alert", chargeFunction:
		// quota-alert makes several WeChat calls per run; each charge writes
		// its idempotency record to the shared store and reads it back.
		return min(n, 300)
	}
	return n
}

func throughput(ctx context.Context, o Options, fn, bin string, sbs *served) ([]LoadRow, error) {
	f, err := lookup(fn)
	if err != nil {
		return nil, err
	}
	emu := emulator.New(emulator.Options{Platform: runtimeapi.FC, Functions: []emulator.FunctionConfig{{
		Name: fn, Binary: bin, Env: functionEnv(f, sbs.env[f.Vendor]), Timeout: time.Duration(f.TimeoutSec) * time.Second, MemoryMB: f.MemoryMB,
	}}})
	defer emu.Close()
	pool, _ := emu.Pool(fn)
	var seq atomic.Int64
	call := func() (time.Duration, error) {
		pl := payload(f, int(seq.Add(1)))
		t0 := time.Now()
		res, _, err := emu.Invoke(ctx, fn, pl)
		d := time.Since(t0)
		if err == nil {
			err = okEnvelope(res)
		}
		return d, err
	}
	// Warm every instance first: cold starts have their own table.
	if _, err := run(4, 4, call); err != nil {
		return nil, fmt.Errorf("%s warm-up: %w", fn, err)
	}
	var rows []LoadRow
	for _, c := range o.Concurrency {
		n := loadCalls(fn, o.Calls)
		t0 := time.Now()
		lat, err := run(c, n, call)
		if err != nil {
			return nil, fmt.Errorf("%s at %d callers: %w", fn, c, err)
		}
		el := time.Since(t0)
		rows = append(rows, LoadRow{Function: fn, Concurrency: c, Calls: n, Latency: distOf(lat), PerSecond: float64(n) / el.Seconds(), Instances: pool.Instances()})
	}
	return rows, nil
}

// run makes n calls from c goroutines and returns every latency; the first
// error stops it.
func run(c, n int, call func() (time.Duration, error)) ([]time.Duration, error) {
	var (
		next  atomic.Int64
		mu    sync.Mutex
		lat   = make([]time.Duration, 0, n)
		first error
		wg    sync.WaitGroup
	)
	for g := 0; g < c; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				d, err := call()
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				lat = append(lat, d)
				stop := first != nil
				mu.Unlock()
				if stop {
					return
				}
			}
		}()
	}
	wg.Wait()
	return lat, first
}

// MemoryResult is one instance's resident set over a long run.
type MemoryResult struct {
	Function           string
	Calls              int
	AtTenth, AtEnd     int64 // VmRSS KiB after Calls/10 and after Calls
	PeakKiB            int64 // VmHWM
	GrowthKiB          int64
	StartupRSSKiB      int64 // after the first invocation
	FirstMark, LastIdx int
}

func memory(ctx context.Context, fn, bin string, sbs *served, n int) (MemoryResult, error) {
	f, err := lookup(fn)
	if err != nil {
		return MemoryResult{}, err
	}
	in, err := start(bin, functionEnv(f, sbs.env[f.Vendor]))
	if err != nil {
		return MemoryResult{}, err
	}
	defer in.Stop()
	m := MemoryResult{Function: fn, Calls: n, FirstMark: n / 10}
	for i := 1; i <= n; i++ {
		res, err := in.Invoke(ctx, runtimeapi.Invocation{Payload: payload(f, i), Timeout: 30 * time.Second, Function: fn, Handler: "main", MemoryMB: f.MemoryMB})
		if err == nil {
			err = okEnvelope(res)
		}
		if err != nil {
			return m, fmt.Errorf("%s invocation %d: %w", fn, i, err)
		}
		switch i {
		case 1:
			m.StartupRSSKiB = in.RSSKiB()
		case m.FirstMark:
			m.AtTenth = in.RSSKiB()
		case n:
			m.AtEnd = in.RSSKiB()
		}
	}
	m.PeakKiB = in.MaxRSSKiB()
	m.GrowthKiB = m.AtEnd - m.AtTenth
	return m, nil
}

// TokenResult is the vendor token fetches of one deployment (4 instances)
// over many invocations.
type TokenResult struct {
	Store       string // memory or redis
	Instances   int
	Calls       int
	Fetches     int
	Lifetimes   int // token lifetimes the run spanned
	Skipped     string
	QuotaCalled int
}

// tokens runs 4 getQuota instances against one fresh WeChat sandbox and
// counts the token fetches the sandbox served.
func tokens(ctx context.Context, bin, storeURL string, n int) (TokenResult, error) {
	f, err := lookup("logistics-get-quota")
	if err != nil {
		return TokenResult{}, err
	}
	sbs, err := startSandboxes()
	if err != nil {
		return TokenResult{}, err
	}
	defer sbs.close()
	env := functionEnv(f, sbs.env["wechat"])
	label := "memory"
	if storeURL != "memory" {
		label = "redis"
		env["CLOUDCALL_STORE"] = storeURL
		// A fresh namespace: a token cached by an earlier run belongs to
		// another sandbox and would cost a refusal and a refetch.
		prefix := fmt.Sprintf("cloudcall-bench-%d:", time.Now().UnixNano())
		env["CLOUDCALL_STORE_PREFIX"] = prefix
		// After the instances stop (deferred below, so run first): the
		// run's token is left to no one.
		defer func() {
			if opt, err := redis.ParseURL(storeURL); err == nil {
				rdb := redis.NewClient(opt)
				deletePrefix(rdb, prefix)
				_ = rdb.Close()
			}
		}()
	}
	const instances = 4
	var ins []*emulator.Instance
	defer func() {
		for _, in := range ins {
			in.Stop()
		}
	}()
	for i := 0; i < instances; i++ {
		in, err := start(bin, env)
		if err != nil {
			return TokenResult{}, err
		}
		ins = append(ins, in)
	}
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	started := time.Now()
	for _, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				res, err := in.Invoke(ctx, runtimeapi.Invocation{Payload: []byte(f.Example), Timeout: 30 * time.Second, Function: f.Name, Handler: "main", MemoryMB: f.MemoryMB})
				if err == nil {
					err = okEnvelope(res)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return TokenResult{}, fmt.Errorf("token economy (%s): %w", label, first)
	}
	// WeChat tokens live 7,200 s; a run this short spans one lifetime.
	lifetimes := 1 + int(time.Since(started)/(7200*time.Second))
	return TokenResult{Store: label, Instances: instances, Calls: n, Fetches: sbs.wechat.Calls("token"), QuotaCalled: sbs.wechat.Calls("quota"), Lifetimes: lifetimes}, nil
}
