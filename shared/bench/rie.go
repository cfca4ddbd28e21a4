package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

// EmuSide is one emulator's figures at one number of callers, over every
// round.
type EmuSide struct {
	Calls, OK, Rejected int
	Latency             Dist    // of successful calls
	PerSecond           float64 // successful calls per second, all rounds together
	MinShare, MaxShare  float64 // the least and most any caller got, relative to the mean share, worst round
	FirstError          string
}

// EmuRow compares our emulator with AWS's Runtime Interface Emulator at one
// number of callers: the same hello binary (the Lambda build), the same
// HTTP invoke API (POST /2015-03-31/functions/<fn>/invocations), the same
// client, rounds alternating which goes first.
type EmuRow struct {
	Callers, Instances int
	Ours, RIE          EmuSide
	Throughput         Spread // per-round ratio: our successful calls/s ÷ RIE's
	P50                Spread // per-round ratio of p50 latency: ours ÷ RIE's
	// RIEWide is RIE with as many handler loops as callers, so it rejects
	// nothing: the throughput of one process serving every caller at once.
	// Measured in the same rounds when Callers > Instances.
	RIEWide          *EmuSide
	ThroughputVsWide Spread
}

// emuCalls is the calls per round at c callers: enough for a p99 per round
// without making the section long on a busy machine.
func emuCalls(c int) int {
	if c <= 1 {
		return 400
	}
	return max(1200, 50*c)
}

// emulatorVsRIE runs the hello floor under both emulators.
func emulatorVsRIE(ctx context.Context, o Options, helloLambda string, logf func(string, ...any)) ([]EmuRow, error) {
	emu := emulator.New(emulator.Options{Platform: runtimeapi.Lambda, Functions: []emulator.FunctionConfig{{
		Name: "hello", Binary: helloLambda, Timeout: 30 * time.Second, MemoryMB: 128,
		Env: map[string]string{"AWS_LAMBDA_FUNCTION_NAME": "hello"},
	}}})
	defer emu.Close()
	pool, _ := emu.Pool("hello")
	instances := pool.Config().MaxInstances
	oursURL, srv, err := serve(emu.Handler())
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	oursURL += "/2015-03-31/functions/hello/invocations"

	// RIE's managed-instances mode (AWS_LAMBDA_MAX_CONCURRENCY) runs that
	// many handler loops in one runtime process; it gets as many as our pool
	// has instances.
	rieURL, stop, err := startRIE(ctx, o.Peers.RIEBinary, helloLambda, instances)
	if err != nil {
		return nil, err
	}
	defer stop()

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}
	defer client.CloseIdleConnections()
	// Warm both: every instance (ours) and every loop (RIE) has served.
	for _, u := range []string{oursURL, rieURL} {
		if r := emuRound(ctx, client, u, instances, 8*instances); r.OK == 0 {
			return nil, fmt.Errorf("warm-up of %s: no call succeeded: %s", u, r.FirstError)
		}
	}
	var rows []EmuRow
	for _, c := range o.Concurrency {
		row := EmuRow{Callers: c, Instances: instances}
		sides := []*emuSideRun{{url: oursURL, side: &row.Ours}, {url: rieURL, side: &row.RIE}}
		if c > instances {
			wideURL, stopWide, err := startRIE(ctx, o.Peers.RIEBinary, helloLambda, c)
			if err != nil {
				return nil, err
			}
			defer stopWide()
			if r := emuRound(ctx, client, wideURL, c, 4*c); r.OK == 0 {
				return nil, fmt.Errorf("warm-up of RIE with %d loops: no call succeeded: %s", c, r.FirstError)
			}
			row.RIEWide = &EmuSide{}
			sides = append(sides, &emuSideRun{url: wideURL, side: row.RIEWide})
		}
		var tput, p50, tputWide []float64
		for round := 0; round < o.EmuRounds; round++ {
			n := emuCalls(c)
			res := make([]roundResult, len(sides))
			for k := range sides {
				j := (k + round) % len(sides) // rotate which goes first
				res[j] = emuRound(ctx, client, sides[j].url, c, n)
				sides[j].record(res[j])
			}
			if res[0].OK > 0 && res[1].OK > 0 {
				tput = append(tput, res[0].perSecond()/res[1].perSecond())
				p50 = append(p50, ratio(distOf(res[0].lat).P50, distOf(res[1].lat).P50))
			}
			if len(res) > 2 && res[0].OK > 0 && res[2].OK > 0 {
				tputWide = append(tputWide, res[0].perSecond()/res[2].perSecond())
			}
		}
		for _, sr := range sides {
			sr.finish()
		}
		row.Throughput, row.P50, row.ThroughputVsWide = spreadOf(tput), spreadOf(p50), spreadOf(tputWide)
		logf("  %d callers: ours %.0f/s p50 %s p99 %s, RIE %.0f/s (%d rejected)", c, row.Ours.PerSecond, ms(row.Ours.Latency.P50), ms(row.Ours.Latency.P99), row.RIE.PerSecond, row.RIE.Rejected)
		rows = append(rows, row)
	}
	return rows, nil
}

// emuSideRun gathers one emulator's rounds.
type emuSideRun struct {
	url     string
	side    *EmuSide
	lat     []time.Duration
	elapsed time.Duration
}

func (e *emuSideRun) record(r roundResult) {
	e.side.add(r)
	e.lat = append(e.lat, r.lat...)
	e.elapsed += r.elapsed
}

func (e *emuSideRun) finish() {
	e.side.Latency = distOf(e.lat)
	if e.elapsed > 0 {
		e.side.PerSecond = float64(e.side.OK) / e.elapsed.Seconds()
	}
}

func (r roundResult) perSecond() float64 { return float64(r.OK) / r.elapsed.Seconds() }

func (s *EmuSide) add(r roundResult) {
	first := s.Calls == 0
	s.Calls += r.Calls
	s.OK += r.OK
	s.Rejected += r.Calls - r.OK
	if s.FirstError == "" {
		s.FirstError = r.FirstError
	}
	if first || r.minShare < s.MinShare {
		s.MinShare = r.minShare
	}
	if first || r.maxShare > s.MaxShare {
		s.MaxShare = r.maxShare
	}
}

type roundResult struct {
	Calls, OK          int
	lat                []time.Duration
	elapsed            time.Duration
	minShare, maxShare float64
	FirstError         string
}

// emuRound makes n calls from c callers taking the next call from one
// counter, and counts what each caller got: an unfair pool shows as callers
// far from the mean share.
func emuRound(ctx context.Context, client *http.Client, url string, c, n int) roundResult {
	var (
		next    atomic.Int64
		mu      sync.Mutex
		lat     = make([]time.Duration, 0, n)
		okCalls = make([]int, c)
		r       roundResult
		wg      sync.WaitGroup
	)
	body := []byte(`{}`)
	t0 := time.Now()
	for g := 0; g < c; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				t := time.Now()
				err := invokeHTTP(ctx, client, url, body)
				d := time.Since(t)
				mu.Lock()
				r.Calls++
				if err == nil {
					r.OK++
					okCalls[g]++
					lat = append(lat, d)
				} else if r.FirstError == "" {
					r.FirstError = err.Error()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(t0)
	r.lat = lat
	mean := float64(r.OK) / float64(c)
	r.minShare, r.maxShare = 0, 0
	if mean > 0 {
		r.minShare = float64(okCalls[0]) / mean
		for _, k := range okCalls {
			s := float64(k) / mean
			r.minShare, r.maxShare = min(r.minShare, s), max(r.maxShare, s)
		}
	}
	return r
}

// invokeHTTP is one Lambda Invoke; an answer other than 200 without
// X-Amz-Function-Error (RIE's Runtime.Unavailable overflow, a timeout, a
// crash) is an error.
func invokeHTTP(ctx context.Context, client *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "" {
		return fmt.Errorf("HTTP %d %s: %.200s", resp.StatusCode, resp.Header.Get("X-Amz-Function-Error"), b)
	}
	return nil
}

// startRIE runs aws-lambda-rie on two free loopback ports with the hello
// binary as its bootstrap, and waits until it answers an invocation.
func startRIE(ctx context.Context, bin, bootstrap string, concurrency int) (string, func(), error) {
	apiPort, err := freePort()
	if err != nil {
		return "", nil, err
	}
	rapidPort, err := freePort()
	if err != nil {
		return "", nil, err
	}
	// In its managed-instances mode RIE only looks for the bootstrap in the
	// Lambda image's paths (/var/runtime/bootstrap, working directory
	// /var/task). It runs in a private mount namespace with a tmpfs over
	// /var holding them, so nothing on the machine changes.
	const script = `mount -t tmpfs tmpfs /var && mkdir /var/task /var/runtime && cp "$0" /var/runtime/bootstrap && exec "$@"`
	cmd := exec.CommandContext(ctx, "unshare", "-m", "sh", "-c", script, bootstrap, bin,
		"--runtime-api-address", "127.0.0.1:"+strconv.Itoa(apiPort),
		"--runtime-interface-emulator-address", "127.0.0.1:"+strconv.Itoa(rapidPort),
		"--log-level", "error")
	cmd.Env = append(os.Environ(), "AWS_LAMBDA_MAX_CONCURRENCY="+strconv.Itoa(concurrency), "AWS_LAMBDA_FUNCTION_NAME=hello", "AWS_LAMBDA_FUNCTION_TIMEOUT=30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // RIE and the runtime it spawns stop together
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start aws-lambda-rie (needs unshare and root for its mount namespace): %w", err)
	}
	stop := func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() }
	url := "http://127.0.0.1:" + strconv.Itoa(rapidPort) + "/2015-03-31/functions/function/invocations"
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := invokeHTTP(ctx, client, url, []byte(`{}`))
		if err == nil {
			return url, stop, nil
		}
		if time.Now().After(deadline) {
			stop() // waits for the process, so out is complete
			return "", nil, fmt.Errorf("aws-lambda-rie did not answer within 30 s: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
