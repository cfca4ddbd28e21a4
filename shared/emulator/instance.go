// Package emulator runs the real function binaries locally the way FC and
// Lambda do: one process per instance polling its own runtime API, cold
// started on demand, kept warm, replaced when it dies, scaled out when busy.
package emulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cloudcall/cloudcall/shared/emulator/linewriter"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

// InstanceConfig starts one instance.
type InstanceConfig struct {
	Binary   string
	Platform runtimeapi.Platform
	Env      map[string]string // the function's environment (nothing is inherited)
	// Log receives the process's stdout and stderr, each through its own
	// line stream labelled Prefix, so lines never mix; nil discards.
	Log    *linewriter.Sink
	Prefix string
	// Stdout and Stderr are used when Log is nil (each line whole, per pipe).
	Stdout io.Writer
	Stderr io.Writer
	// Launcher, when set, runs the binary through another program (Delve):
	// Launcher[0] is executed with Launcher[1:] followed by Binary.
	Launcher []string
	// OnLine, when set, receives every line the process writes with the
	// request id of the invocation it was serving (observe.go).
	OnLine func(requestID, line string)
}

// Instance is one running function process and its runtime API.
type Instance struct {
	API     *runtimeapi.Server
	cmd     *exec.Cmd
	tail    *tailBuffer
	exited  chan struct{}
	exitErr error
	started time.Time
	streams [2]*linewriter.Stream
	pipes   [2]*pipeCopier
	mu      sync.Mutex
	invoked int
	capture *tailBuffer  // this invocation's log lines while one runs
	current string       // request id of the latest invocation (OnLine attribution)
	early   []string     // lines written before the first invocation
	peakKiB atomic.Int64 // the highest resident set read while it ran
	onLine  func(requestID, line string)
}

// StartInstance starts the runtime API, then the binary pointed at it (in
// that order: an FC binary busy-loops against an API that is not there).
func StartInstance(cfg InstanceConfig) (*Instance, error) {
	api, err := runtimeapi.New(cfg.Platform)
	if err != nil {
		return nil, err
	}
	env := make([]string, 0, len(cfg.Env)+4)
	for k, v := range cfg.Env {
		env = append(env, k+"="+v)
	}
	if cfg.Platform == runtimeapi.FC {
		env = append(env, "FC_RUNTIME_API="+api.Addr())
	} else {
		env = append(env, "AWS_LAMBDA_RUNTIME_API="+api.Addr())
	}
	for _, k := range []string{"PATH", "TZ"} {
		if _, set := cfg.Env[k]; !set {
			env = append(env, k+"="+os.Getenv(k))
		}
	}
	cmd := exec.Command(cfg.Binary)
	if len(cfg.Launcher) > 0 {
		cmd = exec.Command(cfg.Launcher[0], append(append([]string(nil), cfg.Launcher[1:]...), cfg.Binary)...)
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	outSink, errSink := cfg.Log, cfg.Log
	if cfg.Log == nil {
		outSink = linewriter.New(cfg.Stdout, 0)
		errSink = outSink
		if cfg.Stderr != cfg.Stdout {
			errSink = linewriter.New(cfg.Stderr, 0)
		}
	}
	in := &Instance{API: api, cmd: cmd, tail: &tailBuffer{max: 4096}, exited: make(chan struct{}), onLine: cfg.OnLine}
	// One stream per pipe, each with its own line buffer: a shared buffer
	// would splice stdout's half lines into stderr's. The pipes are ours (not
	// os/exec's) so drain can tell when what the process wrote has arrived.
	in.streams[0] = outSink.Stream(cfg.Prefix, in.sawLine)
	in.streams[1] = errSink.Stream(cfg.Prefix, in.sawLine)
	var writeEnds []*os.File
	for i := range in.pipes {
		r, w, err := os.Pipe()
		if err != nil {
			api.Close()
			for _, f := range writeEnds {
				_ = f.Close()
			}
			return nil, fmt.Errorf("pipe: %w", err)
		}
		in.pipes[i] = &pipeCopier{r: r, dst: in.streams[i], done: make(chan struct{}), moved: make(chan struct{})}
		writeEnds = append(writeEnds, w)
	}
	cmd.Stdout, cmd.Stderr = writeEnds[0], writeEnds[1]
	err = cmd.Start()
	for _, f := range writeEnds {
		_ = f.Close() // the child has its copies; EOF comes when it exits
	}
	if err != nil {
		api.Close()
		for _, pc := range in.pipes {
			_ = pc.r.Close()
		}
		return nil, fmt.Errorf("start %s: %w", filepath.Base(cfg.Binary), err)
	}
	in.started = time.Now()
	for _, pc := range in.pipes {
		go pc.run()
	}
	go func() {
		err := cmd.Wait()
		for i, pc := range in.pipes {
			<-pc.done                 // every byte the process wrote has been copied
			_ = in.streams[i].Flush() // a last line without a newline is still a line
		}
		in.exitErr = err
		close(in.exited)
	}()
	return in, nil
}

// pipeCopier copies one of the process's pipes into its line stream.
type pipeCopier struct {
	r    *os.File
	dst  io.Writer
	done chan struct{}

	// mu makes each read(2) and its count one step, so a mark (taken plus
	// what FIONREAD says still waits) is exactly the bytes written so far.
	mu        sync.Mutex
	taken     int64         // bytes read out of the pipe
	delivered int64         // bytes that reached dst
	moved     chan struct{} // closed (and replaced) each time bytes reach dst
}

func (c *pipeCopier) run() {
	defer close(c.done)
	defer c.r.Close()
	rc, err := c.r.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 32<<10)
	for {
		var n int
		var rerr error
		// The pipe is non-blocking (the runtime's poller waits), so holding
		// mu across the read costs no more than the read.
		err := rc.Read(func(fd uintptr) bool {
			c.mu.Lock()
			n, rerr = syscall.Read(int(fd), buf)
			if n > 0 {
				c.taken += int64(n)
			}
			c.mu.Unlock()
			return rerr != syscall.EAGAIN && rerr != syscall.EINTR
		})
		if n > 0 {
			_, _ = c.dst.Write(buf[:n])
			c.mu.Lock()
			c.delivered += int64(n)
			close(c.moved)
			c.moved = make(chan struct{})
			c.mu.Unlock()
		}
		if err != nil || rerr != nil || n <= 0 {
			return // EOF (the process and its children closed the pipe) or a read error
		}
	}
}

// mark is the count delivered must reach for every byte written to the
// pipe so far to have reached the line stream.
func (c *pipeCopier) mark() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := pipeBuffered(c.r)
	if err != nil {
		n = 0 // closed: the copier has taken all there was
	}
	return c.taken + int64(n)
}

// reached reports whether delivered has reached mark; when not, the
// channel returned is closed by the copier's next delivery.
func (c *pipeCopier) reached(mark int64) (bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.delivered >= mark, c.moved
}

// pipeBuffered is how many bytes wait unread in a pipe (FIONREAD).
func pipeBuffered(f *os.File) (int, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int32
	var errno syscall.Errno
	if err := sc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, uintptr(syscall.TIOCINQ), uintptr(unsafe.Pointer(&n)))
	}); err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// drain waits (at most max) until what the process wrote before now has
// reached its streams: a function's log lines travel through a pipe and can
// trail its answer by a moment. It waits for those bytes only, not for the
// pipe to fall quiet, so a function that never stops writing (a background
// ticker) costs no more than one that stops; with nothing trailing it costs
// two ioctls. It reports whether it got there in time.
func (in *Instance) drain(max time.Duration) bool {
	var marks [len(in.pipes)]int64
	for i, pc := range in.pipes {
		marks[i] = pc.mark()
	}
	var timeout <-chan time.Time
	for i, pc := range in.pipes {
		for {
			ok, moved := pc.reached(marks[i])
			if ok {
				break
			}
			if timeout == nil {
				t := time.NewTimer(max)
				defer t.Stop()
				timeout = t.C
			}
			select {
			case <-moved:
			case <-pc.done: // a read error ended the copier: nothing more will come
				return false
			case <-timeout:
				return false
			}
		}
	}
	return true
}

// drainBound is how long an answer waits for the lines written before it.
const drainBound = 2 * time.Second

// sawLine keeps the process's recent output (for start-up failures) and the
// current invocation's lines (for LogType: Tail).
func (in *Instance) sawLine(line []byte) {
	_, _ = in.tail.Write(append(line, '\n'))
	in.mu.Lock()
	c := in.capture
	in.mu.Unlock()
	if c != nil {
		_, _ = c.Write(append(line, '\n'))
	}
	if in.onLine != nil {
		in.line(in.onLine, string(line))
	}
}

// ErrExited says the process ended during an invocation (a Lambda binary
// exits after a panic) or before it could take one.
var ErrExited = errors.New("instance exited")

// Invoke runs one invocation on this instance.
func (in *Instance) Invoke(ctx context.Context, inv runtimeapi.Invocation) (runtimeapi.Result, error) {
	res, _, err := in.InvokeLogged(ctx, inv)
	return res, err
}

// InvokeLogged runs one invocation and also returns the last 4 KiB of the
// lines the process printed while it ran.
func (in *Instance) InvokeLogged(ctx context.Context, inv runtimeapi.Invocation) (runtimeapi.Result, []byte, error) {
	capture := &tailBuffer{max: 4096}
	in.mu.Lock()
	in.invoked++
	in.capture = capture
	in.current = inv.RequestID
	early := in.early
	in.early = nil
	in.mu.Unlock()
	if in.onLine != nil {
		for _, l := range early {
			in.onLine(inv.RequestID, l)
		}
	}
	defer func() {
		in.mu.Lock()
		in.capture = nil
		in.mu.Unlock()
	}()
	res, err := in.invoke(ctx, inv)
	if err == nil {
		// Every line the function wrote before it answered belongs to this
		// invocation (the tail, the console's record); without the wait,
		// lines still in the pipe went to the instance's next invocation.
		// The bound only matters when the copier is starved of CPU (a
		// loaded machine under -race missed 50 ms).
		in.drain(drainBound)
	}
	return res, capture.Bytes(), err
}

func (in *Instance) invoke(ctx context.Context, inv runtimeapi.Invocation) (runtimeapi.Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-in.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	res, err := in.API.Invoke(ctx, inv)
	if err != nil {
		select {
		case <-in.exited:
			// Name the exit only: the process's output belongs to other
			// requests too, and never goes into this caller's answer.
			return res, &ExitError{Pid: in.Pid(), Err: in.exitErr, Cause: err}
		default:
		}
	}
	return res, err
}

// ExitError is an instance that ended while it held an invocation.
type ExitError struct {
	Pid   int
	Err   error // how the process ended (signal: killed, exit status 2)
	Cause error // what the runtime API saw
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("instance exited: pid %d: %v", e.Pid, e.Err)
}

// Is makes errors.Is(err, ErrExited) hold.
func (e *ExitError) Is(target error) bool { return target == ErrExited }

func (e *ExitError) Unwrap() error { return e.Cause }

// Signaled reports whether the process was ended by a signal (killed from
// outside) rather than exiting on its own.
func (in *Instance) Signaled() bool {
	select {
	case <-in.exited:
	default:
		return false
	}
	var ee *exec.ExitError
	if errors.As(in.exitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			return ws.Signaled()
		}
	}
	return false
}

// Exited is closed when the process ends.
func (in *Instance) Exited() <-chan struct{} { return in.exited }

// Alive reports whether the process is still running.
func (in *Instance) Alive() bool {
	select {
	case <-in.exited:
		return false
	default:
		return true
	}
}

// StderrTail is the last few KiB the process wrote, for start-up failures.
func (in *Instance) StderrTail() string { return in.tail.String() }

// Pid is the process id.
func (in *Instance) Pid() int { return in.cmd.Process.Pid }

// MaxRSSKiB reads the process's peak resident set (VmHWM), 0 if unknown.
func (in *Instance) MaxRSSKiB() int64 {
	if n := procStatusKiB(in.cmd.Process.Pid, "VmHWM:"); n > 0 {
		in.sawRSS(n)
		return n
	}
	// Gone from /proc: the highest the watchdog saw (a killed instance's
	// REPORT said 0 MB). The kernel's own account is the last resort: it
	// counts the emulator's memory too, as Go starts a child sharing its
	// parent's (a young instance killed by hand reported 45 MB, the
	// emulator's size, not its 15).
	if n := in.peakKiB.Load(); n > 0 {
		return n
	}
	select {
	case <-in.exited:
		if ru, ok := in.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			return ru.Maxrss // KiB on Linux
		}
	default:
	}
	return 0
}

// RSSKiB reads the process's current resident set (VmRSS), 0 if unknown.
func (in *Instance) RSSKiB() int64 {
	n := procStatusKiB(in.cmd.Process.Pid, "VmRSS:")
	in.sawRSS(n)
	return n
}

// sawRSS keeps the highest resident set read, for after the process is gone.
func (in *Instance) sawRSS(n int64) {
	for {
		p := in.peakKiB.Load()
		if n <= p || in.peakKiB.CompareAndSwap(p, n) {
			return
		}
	}
}

func procStatusKiB(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}

// kill ends the process group at once; the call it served sees it exit.
func (in *Instance) kill() { _ = syscall.Kill(-in.cmd.Process.Pid, syscall.SIGKILL) }

// Stop kills the process group and closes the runtime API, in that order.
func (in *Instance) Stop() {
	if in.Alive() {
		_ = syscall.Kill(-in.cmd.Process.Pid, syscall.SIGKILL)
		<-in.exited
	}
	in.API.Close()
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.buf.Bytes()...)
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(t.buf.String())
}

// Build compiles a main package for the host into dir and returns the path.
// The flags are the deployed ones (-trimpath, -tags lambda.norpc), so what
// runs locally is what ships.
//
// The go command's work folder is made in a folder of Build's own, removed
// when the build ends however it ends: a build stopped at Ctrl-C is killed,
// and a killed go command leaves its work folder (megabytes of a half-built
// binary) in $TMPDIR for good.
func Build(ctx context.Context, moduleDir, pkg, dir string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	tmp, err := os.MkdirTemp("", "cloudcall-build-")
	if err != nil {
		return "", fmt.Errorf("go build %s: %w", pkg, err)
	}
	defer removeAll(tmp)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", "lambda.norpc", "-o", out, pkg)
	// The go command runs the compiler and the linker as its children:
	// killed alone, it left them writing into the work folder after the
	// removal below, which then stayed (seen in CI). Its whole process
	// group goes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Dir = moduleDir
	// GOWORK=off: a go.work in a parent folder (a shared /tmp, say) swapped
	// in another copy of a dependency, and its code ran inside the
	// functions (an outside tester). The module's go.sum decides alone.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTMPDIR="+tmp, "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("go build %s: stopped before it finished: %w", pkg, context.Cause(ctx))
		}
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// removeAll removes dir, trying again for a moment while processes just
// killed may still be finishing a write into it.
func removeAll(dir string) {
	for range 20 {
		if os.RemoveAll(dir) == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ModuleRoot walks up from dir to the folder holding go.mod.
func ModuleRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod in %s or above: run cloudcall from inside the cloudcall checkout (it works from the functions' sources)", abs)
		}
	}
}

// WithBinaries builds main packages (paths relative to the module root, e.g.
// "./functions/quota-alert") into a temporary folder, runs run with their
// paths keyed by base name, removes them, and returns run's exit code; a
// failed build prints why and returns 1. Tests call it from TestMain.
func WithBinaries(pkgs []string, run func(bins map[string]string) int) int {
	dir, err := os.MkdirTemp("", "cloudcall-bins")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := ModuleRoot(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bins := map[string]string{}
	for _, p := range pkgs {
		b, err := Build(context.Background(), root, p, dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		bins[filepath.Base(p)] = b
	}
	return run(bins)
}
