package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/linewriter"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

// TestPoolIsFair: callers looping on a saturated pool each get their turn.
// With Broadcast, the caller that had just released won the instance back
// (4 of 32 callers made 36-45% of the calls); with FIFO hand-off the freed
// instance goes to the longest waiter, so shares stay near the mean.
func TestPoolIsFair(t *testing.T) {
	const callers, rounds = 8, 200
	e := emulator.New(emulator.Options{Platform: runtimeapi.FC, Functions: []emulator.FunctionConfig{
		{Name: "hello", Binary: fixtures["hellofc"], Timeout: 5 * time.Second, MaxInstances: 2},
	}})
	t.Cleanup(e.Close)
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := make([]int, callers)
	total := 0
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := e.Invoke(context.Background(), "hello", []byte(`{}`)); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				counts[c]++
				total++
				stop := total >= callers*rounds
				mu.Unlock()
				if stop {
					return
				}
			}
		}()
	}
	wg.Wait()
	mean := float64(total) / callers
	t.Logf("calls per caller (mean %.0f): %v", mean, counts)
	for c, n := range counts {
		require.GreaterOrEqual(t, float64(n), mean/2, "caller %d made %d of %d calls: %v", c, n, total, counts)
		require.LessOrEqual(t, float64(n), mean*2, "caller %d made %d of %d calls: %v", c, n, total, counts)
	}
	p, _ := e.Pool("hello")
	require.LessOrEqual(t, p.Starts(), 2, "never more than the limit")
}

// TestWaiterGivesUp: a queued caller whose context ends leaves the queue and
// the instance still serves the next caller (nothing leaks).
func TestWaiterGivesUp(t *testing.T) {
	e := emulator.New(emulator.Options{Platform: runtimeapi.FC, Functions: []emulator.FunctionConfig{
		{Name: "hello", Binary: fixtures["hellofc"], Timeout: 5 * time.Second, MaxInstances: 1},
	}})
	t.Cleanup(e.Close)
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		close(started)
		_, _, err := e.Invoke(context.Background(), "hello", []byte(`{"action":"sleep","ms":300}`))
		done <- err
	}()
	<-started
	p, _ := e.Pool("hello")
	require.Eventually(t, func() bool { return p.Instances() == 1 }, 5*time.Second, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err := e.Invoke(ctx, "hello", []byte(`{}`))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, <-done)
	_, rep, err := e.Invoke(context.Background(), "hello", []byte(`{}`))
	require.NoError(t, err)
	require.False(t, rep.Cold, "the instance came back to the pool")
	require.Equal(t, 1, p.Starts())
}

// TestKilledInstance: SIGKILL during an invocation answers that caller with
// an error naming the exit (no log lines of anyone), and the pool replaces
// the instance for the callers queued behind it.
func TestKilledInstance(t *testing.T) {
	for _, p := range platforms() {
		t.Run(string(p), func(t *testing.T) { killedInstance(t, p) })
	}
}

func killedInstance(t *testing.T, platform runtimeapi.Platform) {
	bin := fixtures["hellofc"]
	if platform == runtimeapi.Lambda {
		bin = fixtures["hellolambda"]
	}
	var out bytes.Buffer
	var mu sync.Mutex
	sink := linewriter.New(writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) }), 0)
	e := emulator.New(emulator.Options{Platform: platform, Log: sink, Functions: []emulator.FunctionConfig{
		{Name: "hello", Binary: bin, Timeout: 5 * time.Second, MaxInstances: 1, Stdout: sink, LogPrefix: "hello | "},
	}})
	t.Cleanup(e.Close)
	pid := helloPid(t, e)

	errs := make(chan error, 4)
	for range 4 {
		go func() {
			_, _, err := e.Invoke(context.Background(), "hello", []byte(`{"action":"sleep","ms":400}`))
			errs <- err
		}()
	}
	p, _ := e.Pool("hello")
	require.Eventually(t, func() bool { return p.InFlight() == 1 }, 5*time.Second, time.Millisecond, "one call reaches the instance")
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	failed := 0
	for range 4 {
		err := <-errs
		if err != nil {
			failed++
			var xe *emulator.ExitError
			require.True(t, errors.As(err, &xe), "%v", err)
			require.Equal(t, pid, xe.Pid)
			require.Equal(t, "instance exited: pid "+itoa(pid)+": signal: killed", err.Error())
		}
	}
	require.Equal(t, 1, failed, "only the call in flight on the killed instance fails")
	require.Equal(t, 2, p.Starts(), "the killed instance was replaced once")
	// Its REPORT still says what memory it used (it said 0 MB once /proc
	// had forgotten the process).
	mu.Lock()
	log := out.String()
	mu.Unlock()
	var report string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "REPORT") && strings.Contains(l, "signal: killed") {
			report = l
		}
	}
	require.NotEmpty(t, report, log)
	require.NotContains(t, report, "Max Memory Used: 0 MB")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestLongLinesSplitNotLost: a function's 200 KiB lines on stdout and stderr
// at once reach the log as whole 64 KiB pieces, in order, nothing dropped
// and nothing of one pipe spliced into the other.
func TestLongLinesSplitNotLost(t *testing.T) {
	var mu sync.Mutex
	var writes [][]byte
	sink := linewriter.New(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		writes = append(writes, append([]byte(nil), b...))
		return len(b), nil
	}), 0)
	e := emulator.New(emulator.Options{Platform: runtimeapi.FC, Log: sink, Functions: []emulator.FunctionConfig{
		{Name: "hello", Binary: fixtures["hellofc"], Timeout: 5 * time.Second, MaxInstances: 1, Stdout: sink, LogPrefix: "hello | "},
	}})
	const n = 200 << 10
	_, _, err := e.Invoke(context.Background(), "hello", []byte(`{"action":"shout","ms":204800}`))
	require.NoError(t, err)
	e.Close() // waits for the instance's pipes to be copied
	var out, errOut strings.Builder
	for _, w := range writes {
		require.True(t, bytes.HasSuffix(w, []byte("\n")) && bytes.Count(w, []byte("\n")) == 1, "one whole line per write")
		line := strings.TrimSuffix(string(w), "\n")
		if !strings.HasPrefix(line, "hello | ") {
			continue
		}
		piece := strings.TrimPrefix(line, "hello | ")
		require.LessOrEqual(t, len(piece), linewriter.DefaultMaxLine)
		// stdout prints x's, stderr y's: every piece belongs to one.
		body := strings.TrimPrefix(strings.TrimPrefix(piece, "out:"), "err:")
		switch {
		case body == "":
		case strings.Trim(body, "x") == "":
			out.WriteString(piece)
		case strings.Trim(body, "y") == "":
			errOut.WriteString(piece)
		}
	}
	require.True(t, out.String() == "out:"+strings.Repeat("x", n), "stdout's line arrived whole (%d bytes)", out.Len())
	require.True(t, errOut.String() == "err:"+strings.Repeat("y", n), "stderr's line arrived whole (%d bytes)", errOut.Len())
}

// TestCloseDuringColdStart: the console's snapshot and a shutdown both read
// a slot while its process is still exec'ing (make run stopped with Ctrl-C
// as an async call cold-starts). Under -race, the start's unguarded write
// was a data race; and whatever the timing, no process outlives the call.
func TestCloseDuringColdStart(t *testing.T) {
	for i := range 10 {
		e := emulator.New(emulator.Options{Platform: runtimeapi.FC, Functions: []emulator.FunctionConfig{
			{Name: "hello", Binary: fixtures["hellofc"], Timeout: 5 * time.Second, MaxInstances: 1},
		}})
		p, _ := e.Pool("hello")
		done := make(chan error, 1)
		go func() {
			_, _, err := e.Invoke(context.Background(), "hello", []byte(`{}`))
			done <- err
		}()
		for p.Instances() == 0 && len(done) == 0 {
			_ = p.Snapshot()
			_ = p.InFlight()
		}
		if i%2 == 1 {
			time.Sleep(time.Duration(i) * time.Millisecond)
		}
		e.Close()
		select {
		case err := <-done:
			// Done before Close, killed by it, or stopped before it ran.
			var exit *emulator.ExitError
			if err != nil && !errors.As(err, &exit) {
				require.ErrorContains(t, err, "shutting down")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the call never returned after Close")
		}
		require.Empty(t, p.Snapshot())
		require.Zero(t, processesRunning(t, fixtures["hellofc"]), "round %d: an instance outlived Close", i)
	}
}

// processesRunning counts live processes executing bin.
func processesRunning(t *testing.T, bin string) int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	require.NoError(t, err)
	n := 0
	for _, d := range dirs {
		exe, err := os.Readlink("/proc/" + d.Name() + "/exe")
		if err != nil {
			continue
		}
		if exe == bin {
			st, err := os.ReadFile("/proc/" + d.Name() + "/stat")
			if err == nil && !strings.Contains(string(st), ") Z ") { // a zombie is not running
				n++
			}
		}
	}
	return n
}

// An instance that uses more memory than its function's MemorySize is
// killed, as FC and Lambda kill it: the emulator let one use 2.6 GB of a
// 128 MB function until the timeout.
func TestAnInstanceOverItsMemoryIsKilled(t *testing.T) {
	e := emulator.New(emulator.Options{Platform: runtimeapi.FC, Log: io.Discard, Functions: []emulator.FunctionConfig{
		{Name: "hello", Binary: fixtures["hellofc"], Timeout: 10 * time.Second, MemoryMB: 64, MaxInstances: 1},
	}})
	t.Cleanup(e.Close)
	_, _, err := e.Invoke(context.Background(), "hello", []byte(`{"action":"grow","ms":16}`))
	require.NoError(t, err, "within its memory")
	_, rep, err := e.Invoke(context.Background(), "hello", []byte(`{"action":"grow","ms":200}`))
	var me *emulator.MemoryError
	require.ErrorAs(t, err, &me)
	require.Equal(t, 64, me.LimitMB)
	require.ErrorIs(t, err, emulator.ErrExited)
	require.Contains(t, err.Error(), "memory limit exceeded: the instance used more than its 64 MB and was killed")
	require.Less(t, rep.Duration, 5*time.Second, "killed when it passed the limit, not at the timeout")
	_, _, err = e.Invoke(context.Background(), "hello", []byte(`{}`))
	require.NoError(t, err, "a new instance serves the next call")

	// Under a launcher (Delve, --debug) the process is the debugger: its
	// memory is not the function's, and a debugging session is not killed.
	d := emulator.New(emulator.Options{Platform: runtimeapi.FC, Log: io.Discard, Functions: []emulator.FunctionConfig{
		{Name: "hello", Binary: fixtures["hellofc"], Launcher: []string{"env"}, Timeout: 10 * time.Second, MemoryMB: 64, MaxInstances: 1},
	}})
	t.Cleanup(d.Close)
	_, _, err = d.Invoke(context.Background(), "hello", []byte(`{"action":"grow","ms":200}`))
	require.NoError(t, err)
}

// TestAKilledInstancesReportSaysItsOwnMemory: the kernel's account of an
// ended child counts its parent's memory too (Go starts a child sharing
// it), so a young instance killed by hand reported the emulator's size. The
// REPORT says the most the instance was seen using.
func TestAKilledInstancesReportSaysItsOwnMemory(t *testing.T) {
	ballast := make([]byte, 300<<20) // the emulator's own memory, far above hello's
	for i := range ballast {
		ballast[i] = 1
	}
	e := emulator.New(emulator.Options{Platform: runtimeapi.FC, Functions: []emulator.FunctionConfig{
		{Name: "hello", Binary: fixtures["hellofc"], Timeout: 5 * time.Second, MemoryMB: 128, MaxInstances: 1},
	}})
	t.Cleanup(e.Close)
	pid := helloPid(t, e)
	reports := make(chan emulator.Report, 1)
	go func() {
		_, rep, _ := e.Invoke(context.Background(), "hello", []byte(`{"action":"sleep","ms":2000}`))
		reports <- rep
	}()
	p, _ := e.Pool("hello")
	require.Eventually(t, func() bool { return p.InFlight() == 1 }, 5*time.Second, time.Millisecond)
	time.Sleep(200 * time.Millisecond) // the watchdog reads its memory every 50 ms
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	rep := <-reports
	require.Positive(t, rep.MaxRSSKiB)
	require.Less(t, rep.MaxRSSKiB, int64(100<<10), "hello's own few MB, not the emulator's %d MB", len(ballast)>>20)
	runtime.KeepAlive(ballast)
}

// helloPid calls hello once and returns the pid of the instance that answered.
func helloPid(t *testing.T, e *emulator.Emulator) int {
	t.Helper()
	res, _, err := e.Invoke(context.Background(), "hello", []byte(`{}`))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(res.Body, &m))
	return int(m["pid"].(float64))
}
