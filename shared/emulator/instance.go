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
	"syscall"
	"time"

	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

// InstanceConfig starts one instance.
type InstanceConfig struct {
	Binary   string
	Platform runtimeapi.Platform
	Env      map[string]string // the function's environment (nothing is inherited)
	Stdout   io.Writer         // the function's log lines; nil discards
	Stderr   io.Writer
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
	mu      sync.Mutex
	invoked int
	current string   // request id of the latest invocation (log attribution)
	early   []string // lines written before the first invocation
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
	tail := &tailBuffer{max: 4096}
	in := &Instance{API: api, cmd: cmd, tail: tail, exited: make(chan struct{}), started: time.Now(), onLine: cfg.OnLine}
	var outTap, errTap io.Writer = io.Discard, io.Discard
	if cfg.OnLine != nil {
		outTap, errTap = &lineTap{in: in, onLine: cfg.OnLine}, &lineTap{in: in, onLine: cfg.OnLine}
	}
	cmd.Stderr = io.MultiWriter(tail, errTap, orDiscard(cfg.Stderr))
	cmd.Stdout = io.MultiWriter(tail, outTap, orDiscard(cfg.Stdout))
	if err := cmd.Start(); err != nil {
		api.Close()
		return nil, fmt.Errorf("start %s: %w", filepath.Base(cfg.Binary), err)
	}
	go func() {
		in.exitErr = cmd.Wait()
		close(in.exited)
	}()
	return in, nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// ErrExited says the process ended during an invocation (a Lambda binary
// exits after a panic) or before it could take one.
var ErrExited = errors.New("instance exited")

// Invoke runs one invocation on this instance.
func (in *Instance) Invoke(ctx context.Context, inv runtimeapi.Invocation) (runtimeapi.Result, error) {
	in.mu.Lock()
	in.invoked++
	in.current = inv.RequestID
	early := in.early
	in.early = nil
	in.mu.Unlock()
	if in.onLine != nil {
		for _, l := range early {
			in.onLine(inv.RequestID, l)
		}
	}
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
			return res, fmt.Errorf("%w (%v): %w: %s", ErrExited, in.exitErr, err, in.StderrTail())
		default:
		}
	}
	return res, err
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
func (in *Instance) MaxRSSKiB() int64 { return procStatusKiB(in.cmd.Process.Pid, "VmHWM:") }

// RSSKiB reads the process's current resident set (VmRSS), 0 if unknown.
func (in *Instance) RSSKiB() int64 { return procStatusKiB(in.cmd.Process.Pid, "VmRSS:") }

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

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(t.buf.String())
}

// Build compiles a main package for the host into dir and returns the path.
// The flags are the deployed ones (-trimpath, -tags lambda.norpc), so what
// runs locally is what ships.
func Build(ctx context.Context, moduleDir, pkg, dir string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", "lambda.norpc", "-o", out, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
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
			return "", fmt.Errorf("no go.mod above %s", dir)
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
