package bench

import (
	"cmp"
	"context"
	"fmt"
	"github.com/cloudcall/cloudcall/shared/syncbuf"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

// InitProfile is where a binary's package initialisation goes
// (GODEBUG=inittrace=1), medians over several starts: the part of exec →
// ready that is the binary's own, and which packages a function
// initialises that the hello floor does not.
type InitProfile struct {
	Function string
	Starts   int
	TotalMs  float64   // median over starts of the summed init clock time
	Extra    []PkgInit // packages hello does not initialise, heaviest first
	ExtraMs  float64   // their sum
}

// PkgInit is one package's init clock time (median over starts).
type PkgInit struct {
	Package string
	Ms      float64
}

const initStarts = 15

// initProfiles starts each binary initStarts times with inittrace on.
func initProfiles(ctx context.Context, bins map[string]string, sbs *served, fns []string) ([]InitProfile, error) {
	per := map[string]map[string][]float64{} // binary → package → ms per start
	totals := map[string][]float64{}
	names := append([]string{floorName}, fns...)
	for i := 0; i < initStarts; i++ {
		for _, fn := range names {
			env := map[string]string{"FC_FUNCTION_NAME": "hello", "FC_FUNCTION_HANDLER": "main"}
			pl := []byte(`{}`)
			if fn != floorName {
				f, err := lookup(fn)
				if err != nil {
					return nil, err
				}
				// The long-run sandboxes: CK1's uses the fixed token, and
				// CAMS's flow control only delays the call, not the init.
				env, pl = functionEnv(f, sbs.env[f.Vendor]), payload(f, i)
			}
			env["GODEBUG"] = "inittrace=1"
			trace, err := traceOnce(ctx, bins[fn], env, pl)
			if err != nil {
				return nil, fmt.Errorf("init trace of %s: %w", fn, err)
			}
			if per[fn] == nil {
				per[fn] = map[string][]float64{}
			}
			sum := 0.0
			for pkg, ms := range trace {
				per[fn][pkg] = append(per[fn][pkg], ms)
				sum += ms
			}
			totals[fn] = append(totals[fn], sum)
		}
	}
	var out []InitProfile
	for _, fn := range names {
		p := InitProfile{Function: fn, Starts: initStarts, TotalMs: spreadOf(totals[fn]).P50}
		if fn != floorName {
			for pkg, v := range per[fn] {
				if _, inHello := per[floorName][pkg]; inHello {
					continue
				}
				m := spreadOf(v).P50
				p.Extra = append(p.Extra, PkgInit{Package: pkg, Ms: m})
				p.ExtraMs += m
			}
			slices.SortFunc(p.Extra, func(a, b PkgInit) int { return cmp.Or(cmp.Compare(b.Ms, a.Ms), strings.Compare(a.Package, b.Package)) })
		}
		out = append(out, p)
	}
	return out, nil
}

// traceOnce starts the binary, invokes it once and returns its inittrace
// lines as package → clock ms.
func traceOnce(ctx context.Context, bin string, env map[string]string, pl []byte) (map[string]float64, error) {
	var stderr lockedBuffer
	in, err := emulator.StartInstance(emulator.InstanceConfig{Binary: bin, Platform: runtimeapi.FC, Env: env, Stderr: &stderr})
	if err != nil {
		return nil, err
	}
	_, err = in.Invoke(ctx, runtimeapi.Invocation{Payload: pl, Timeout: 30 * time.Second, Function: env["FC_FUNCTION_NAME"], Handler: "main", MemoryMB: 128})
	in.Stop()
	if err != nil {
		return nil, err
	}
	return parseInitTrace(stderr.String()), nil
}

// parseInitTrace reads "init <pkg> @<t> ms, <clock> ms clock, ..." lines.
func parseInitTrace(s string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[0] != "init" || f[5] != "ms" {
			continue
		}
		ms, err := strconv.ParseFloat(f[4], 64)
		if err != nil {
			continue
		}
		out[f[1]] += ms
	}
	return out
}

// lockedBuffer is written by the process's output copier and read after.
type lockedBuffer = syncbuf.Buffer
