package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/sandbox/ck1sbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/store/redisstore"
	"github.com/cloudcall/cloudcall/shared/wechat"
)

// ColdResult is one function's cold starts: exec → ready (first poll of the
// runtime API) and exec → first response (the registry Example against the
// sandbox, or {} for the floors).
type ColdResult struct {
	Function     string
	Ready, First Dist
	// CallFloor is the first response of the hello floor plus one bare POST
	// to this function's vendor endpoint, started in the same rounds.
	CallFloor Dist
	// Per-round ratios: ready ÷ the adjacent hello floor's ready, first
	// response ÷ the adjacent vendor-call floor's first response.
	ReadyRatio, FirstRatio Spread
	// RecordsFloor, for the charge, is the first response of the vendor-call
	// floor plus the charge's store writes (ChargeStoreWrites), and
	// RecordsRatio the charge's first response ÷ it, round by round.
	RecordsFloor Dist
	RecordsRatio Spread
}

// ChargeStoreWrites are the store round trips a first charge makes, past
// the fingerprint migration window, on a key not seen before: reserve the
// key, reserve the keyless alias, mark it sent; then record the answer.
var ChargeStoreWrites = struct{ Before, After int }{3, 1}

// coldStarts starts every function n times, each start between a hello
// floor and the function's vendor-call floor, so each per-round ratio
// compares starts that ran back to back.
func coldStarts(ctx context.Context, o Options, bins map[string]string, sbs *served, logf func(string, ...any), fns []string, fresh bool) ([]ColdResult, error) {
	start := coldOnce
	if fresh {
		start = coldOnceUnpacked
	}
	floors, err := callFloors(ctx, bins, sbs, fns)
	if err != nil {
		return nil, err
	}
	ready := map[string][]time.Duration{}
	first := map[string][]time.Duration{}
	callFirst := map[string][]time.Duration{}
	readyRatio := map[string][]float64{}
	firstRatio := map[string][]float64{}
	recFirst := map[string][]time.Duration{}
	recRatio := map[string][]float64{}
	helloEnv := map[string]string{"FC_FUNCTION_NAME": "hello", "FC_FUNCTION_HANDLER": "main"}
	hello := func(round int) (time.Duration, error) {
		fr, ff, err := start(ctx, bins[floorName], helloEnv, []byte(`{}`))
		if err != nil {
			return 0, fmt.Errorf("cold start %d of the hello floor: %w", round+1, err)
		}
		ready[floorName] = append(ready[floorName], fr)
		first[floorName] = append(first[floorName], ff)
		return fr, nil
	}
	for round := 0; round < o.ColdStarts; round++ {
		for _, fn := range fns {
			f, err := lookup(fn)
			if err != nil {
				return nil, err
			}
			// Each function start sits between its two floors, adjacent to
			// both; the floors swap sides every round, so drift and any
			// effect of going first or last land on both floors alike.
			helloFirst := round%2 == 0
			var fr, cf time.Duration
			if helloFirst {
				if fr, err = hello(round); err != nil {
					return nil, err
				}
			} else if cf, err = callFloor(ctx, start, bins[callFloorName], floors[fn], fn, round); err != nil {
				return nil, err
			}
			// The charge's records floor sits right beside it, on the side
			// away from the vendor-call floor.
			records := func() error {
				if _, ok := floors[fn][recordsFloorEnv]; !ok {
					return nil
				}
				_, rf, err := start(ctx, bins[recordsFloorName], floors[fn], []byte(`{}`))
				if err != nil {
					return fmt.Errorf("cold start %d of %s's records floor: %w", round+1, fn, err)
				}
				recFirst[fn] = append(recFirst[fn], rf)
				return nil
			}
			if !helloFirst {
				if err := records(); err != nil {
					return nil, err
				}
			}
			r, fi, err := coldFunction(ctx, start, bins[fn], f, sbs, round)
			if err != nil {
				return nil, err
			}
			if helloFirst {
				if err := records(); err != nil {
					return nil, err
				}
			}
			if n := len(recFirst[fn]); n > 0 {
				recRatio[fn] = append(recRatio[fn], float64(fi)/float64(recFirst[fn][n-1]))
			}
			if helloFirst {
				if cf, err = callFloor(ctx, start, bins[callFloorName], floors[fn], fn, round); err != nil {
					return nil, err
				}
			} else if fr, err = hello(round); err != nil {
				return nil, err
			}
			ready[fn], first[fn], callFirst[fn] = append(ready[fn], r), append(first[fn], fi), append(callFirst[fn], cf)
			readyRatio[fn] = append(readyRatio[fn], float64(r)/float64(fr))
			firstRatio[fn] = append(firstRatio[fn], float64(fi)/float64(cf))
		}
		if (round+1)%5 == 0 {
			logf("  cold starts: %d/%d rounds", round+1, o.ColdStarts)
		}
	}
	out := []ColdResult{{Function: floorName, Ready: distOf(ready[floorName]), First: distOf(first[floorName])}}
	for _, fn := range fns {
		out = append(out, ColdResult{Function: fn, Ready: distOf(ready[fn]), First: distOf(first[fn]), CallFloor: distOf(callFirst[fn]),
			ReadyRatio: spreadOf(readyRatio[fn]), FirstRatio: spreadOf(firstRatio[fn]),
			RecordsFloor: distOf(recFirst[fn]), RecordsRatio: spreadOf(recRatio[fn])})
	}
	return out, nil
}

// coldFunction starts one function against its sandbox; CK1 and CAMS get a
// fresh sandbox per start, closed with it.
func coldFunction(ctx context.Context, start startFunc, bin string, f registry.Function, sbs *served, round int) (ready, first time.Duration, err error) {
	venv := sbs.env[f.Vendor]
	stop := func() {}
	switch f.Vendor {
	case "ck1":
		if sbs.sharedTokens {
			break // the token is in the shared store: no refresh, the same sandbox
		}
		if venv, stop, err = freshCK1(); err != nil {
			return 0, 0, err
		}
	case "alicloud":
		// CAMS allows 10 requests/s per AccessKey and the rounds start CAMS
		// faster than that: a fresh sandbox per start keeps its flow
		// control out of the cold-start figure.
		if venv, stop, err = freshCAMS(); err != nil {
			return 0, 0, err
		}
	}
	defer stop()
	ready, first, err = start(ctx, bin, functionEnv(f, venv), payload(f, round))
	if err != nil {
		return 0, 0, fmt.Errorf("cold start %d of %s: %w", round+1, f.Name, err)
	}
	return ready, first, nil
}

// callFloor starts fn's vendor-call floor once and returns its first response.
func callFloor(ctx context.Context, start startFunc, bin string, env map[string]string, fn string, round int) (time.Duration, error) {
	_, first, err := start(ctx, bin, env, []byte(`{}`))
	if err != nil {
		return 0, fmt.Errorf("cold start %d of %s's vendor-call floor: %w", round+1, fn, err)
	}
	return first, nil
}

// callFloors is each function's vendor-call floor environment: the
// requests its first call makes to its vendor, each a bare POST or GET with a
// valid token where the vendor uses one (WeChat's from the sandbox, CK1's
// fixed bearer token). CAMS and TOP sign each request instead; their floor's
// POST is unsigned, so the sandbox refuses it after the same round trip.
// quota-alert's first run makes several WeChat calls; its floor makes the
// same ones, counted by running it once against a fresh sandbox.
func callFloors(ctx context.Context, bins map[string]string, sbs *served, fns []string) (map[string]map[string]string, error) {
	wx := sbs.env["wechat"]["WECHAT_API_BASE"]
	var kv store.Store = store.NewMemory(store.MemoryOptions{})
	if sbs.sharedTokens {
		// The very token the functions read from the shared store.
		rs, err := redisstore.Open(redisstore.Options{URL: sbs.env["wechat"]["CLOUDCALL_STORE"], Prefix: sbs.env["wechat"]["CLOUDCALL_STORE_PREFIX"]})
		if err != nil {
			return nil, fmt.Errorf("vendor-call floor: %w", err)
		}
		defer rs.Close()
		kv = rs
	}
	tm := wechat.NewTokenManager(wechat.TokenOptions{AppID: wechatsbx.DemoAppID, Secret: wechatsbx.DemoSecret, Base: wx,
		HTTP: http.DefaultClient, KV: kv})
	tok, err := tm.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("vendor-call floor: WeChat token: %w", err)
	}
	quota := "POST\t" + wx + "/cgi-bin/express/business/quota/get?access_token=" + tok + "\t" + `{"delivery_id":"YTO","biz_id":"xyz"}`
	out := map[string]map[string]string{}
	for _, fn := range fns {
		f, err := lookup(fn)
		if err != nil {
			return nil, err
		}
		env := map[string]string{"FC_FUNCTION_NAME": "hellocall", "FC_FUNCTION_HANDLER": "main"}
		switch {
		case fn == "quota-alert":
			calls, err := quotaAlertCalls(ctx, bins[fn], f)
			if err != nil {
				return nil, err
			}
			var lines []string
			for i := 0; i < calls["delivery/getall"]; i++ {
				lines = append(lines, "GET\t"+wx+"/cgi-bin/express/business/delivery/getall?access_token="+tok+"\t")
			}
			for i := 0; i < calls["account/getall"]; i++ {
				lines = append(lines, "GET\t"+wx+"/cgi-bin/express/business/account/getall?access_token="+tok+"\t")
			}
			for i := 0; i < calls["quota"]; i++ {
				lines = append(lines, quota)
			}
			env["BENCH_FLOOR_CALLS"] = strings.Join(lines, "\n")
		case f.Vendor == "wechat":
			env["BENCH_FLOOR_CALLS"] = quota
		case f.Vendor == "ck1":
			env["BENCH_FLOOR_CALLS"] = "POST\t" + sbs.env["ck1"]["CK1_API_BASE"] + "/v1/pricing/inbound/box\t" +
				`{"WarehouseId":"US","Boxes":[{"Weight":1200,"Length":30,"Width":20,"Height":15,"Quantity":2}]}`
			env["BENCH_FLOOR_AUTH"] = "Bearer " + ck1sbx.DemoFixedToken
		case f.Vendor == "alicloud":
			env["BENCH_FLOOR_CALLS"] = "POST\t" + sbs.env["alicloud"]["CAMS_API_BASE"] + "/?Action=QueryChatappBindWaba&CustSpaceId=293483949493\t"
		case f.Vendor == "top":
			env["BENCH_FLOOR_CALLS"] = "POST\t" + sbs.env["top"]["TOP_GATEWAY_URL"] + "\t"
			// The records floor's store: the charge's, under a prefix of its
			// own inside the run's (deleted with it).
			env[recordsFloorEnv] = sbs.env["top"]["CLOUDCALL_IDEMPOTENCY_STORE"]
			env["BENCH_FLOOR_STORE_PREFIX"] = sbs.env["top"]["CLOUDCALL_STORE_PREFIX"] + "records-floor:"
			env["BENCH_FLOOR_STORE_BEFORE"] = strconv.Itoa(ChargeStoreWrites.Before)
			env["BENCH_FLOOR_STORE_AFTER"] = strconv.Itoa(ChargeStoreWrites.After)
		default:
			return nil, fmt.Errorf("vendor-call floor: no floor for vendor %q", f.Vendor)
		}
		out[fn] = env
	}
	return out, nil
}

// recordsFloorEnv names the records floor's store; only the charge's floor
// environment has it.
const recordsFloorEnv = "BENCH_FLOOR_REDIS"

// quotaAlertCalls runs quota-alert once against a fresh WeChat sandbox and
// returns the business calls it made (token fetches aside).
func quotaAlertCalls(ctx context.Context, bin string, f registry.Function) (map[string]int, error) {
	sbx := wechatsbx.New(wechatsbx.Options{})
	url, srv, err := serve(sbx.Handler())
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	if _, _, err := coldOnce(ctx, bin, functionEnv(f, sbx.Env(url)), payload(f, 0)); err != nil {
		return nil, fmt.Errorf("counting quota-alert's calls: %w", err)
	}
	return map[string]int{"delivery/getall": sbx.Calls("delivery/getall"), "account/getall": sbx.Calls("account/getall"), "quota": sbx.Calls("quota")}, nil
}

// startFunc starts a binary once and times its first poll and first answer.
type startFunc func(ctx context.Context, bin string, env map[string]string, pl []byte) (ready, first time.Duration, err error)

// coldOnceUnpacked is coldOnce on a copy of bin written just before the
// start, as a new instance's code is freshly unpacked: how the kernel
// caches a file depends on how and where in memory it was written, and one
// file read 0.05–0.1× of a hello start faster or slower than a copy of it,
// every time. A fresh copy per start averages that out for every binary.
func coldOnceUnpacked(ctx context.Context, bin string, env map[string]string, pl []byte) (ready, first time.Duration, err error) {
	b, err := os.ReadFile(bin)
	if err != nil {
		return 0, 0, err
	}
	path := bin + ".start"
	if err := os.WriteFile(path, b, 0o755); err != nil {
		return 0, 0, err
	}
	defer os.Remove(path)
	return coldOnce(ctx, path, env, pl)
}

// coldOnce execs the binary and times its first poll and first answer.
func coldOnce(ctx context.Context, bin string, env map[string]string, pl []byte) (ready, first time.Duration, err error) {
	t0 := time.Now()
	in, err := start(bin, env)
	if err != nil {
		return 0, 0, err
	}
	defer in.Stop()
	res, err := in.Invoke(ctx, runtimeapi.Invocation{Payload: pl, Timeout: 30 * time.Second, Function: env["FC_FUNCTION_NAME"], Handler: "main", MemoryMB: 128})
	first = time.Since(t0)
	if err != nil {
		return 0, 0, err
	}
	if err := okEnvelope(res); err != nil {
		return 0, 0, err
	}
	return in.API.FirstPoll().Sub(t0), first, nil
}
