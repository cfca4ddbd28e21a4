package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

// ColdResult is one function's cold starts: exec → ready (first poll of the
// runtime API) and exec → first response (the registry Example against the
// sandbox, or {} for the floor).
type ColdResult struct {
	Function      string
	Ready, First  Dist
	RatioFirstP50 float64 // First.P50 / floor First.P50
	RatioReadyP50 float64 // Ready.P50 / floor Ready.P50
}

// coldStarts starts every function and the floor n times each, interleaved
// round by round so machine noise lands on all of them alike.
func coldStarts(ctx context.Context, o Options, bins map[string]string, sbs *served, logf func(string, ...any), fns []string) ([]ColdResult, error) {
	names := append([]string{floorName}, fns...)
	ready := map[string][]time.Duration{}
	first := map[string][]time.Duration{}
	for round := 0; round < o.ColdStarts; round++ {
		for _, fn := range names {
			env := map[string]string{"FC_FUNCTION_NAME": "hello", "FC_FUNCTION_HANDLER": "main"}
			pl := []byte(`{}`)
			if fn != floorName {
				f, err := lookup(fn)
				if err != nil {
					return nil, err
				}
				venv := sbs.env[f.Vendor]
				if f.Vendor == "ck1" {
					e, stop, err := freshCK1()
					if err != nil {
						return nil, err
					}
					defer stop()
					venv = e
				}
				env = functionEnv(f, venv)
				pl = payload(f, round)
			}
			r, fr, err := coldOnce(ctx, bins[fn], env, pl)
			if err != nil {
				return nil, fmt.Errorf("cold start %d of %s: %w", round+1, fn, err)
			}
			ready[fn] = append(ready[fn], r)
			first[fn] = append(first[fn], fr)
		}
		if (round+1)%5 == 0 {
			logf("  cold starts: %d/%d rounds", round+1, o.ColdStarts)
		}
	}
	floor := ColdResult{Function: floorName, Ready: distOf(ready[floorName]), First: distOf(first[floorName])}
	out := make([]ColdResult, 0, len(names))
	for _, fn := range names {
		c := ColdResult{Function: fn, Ready: distOf(ready[fn]), First: distOf(first[fn])}
		c.RatioFirstP50 = ratio(c.First.P50, floor.First.P50)
		c.RatioReadyP50 = ratio(c.Ready.P50, floor.Ready.P50)
		out = append(out, c)
	}
	return out, nil
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
