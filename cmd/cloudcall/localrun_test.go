package main

import (
	"github.com/cloudcall/cloudcall/shared/syncbuf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer collects a process's output while tests read it.
type syncBuffer = syncbuf.Buffer

var consoleBaseRe = regexp.MustCompile(`cloudcall local on (http://\S+)`)

// runLocalIn runs `cloudcall local` (the CLI TestMain built) in dir on
// ephemeral ports, the way a user does, and returns its front door and
// everything it printed.
func runLocalIn(t *testing.T, dir string, args ...string) (string, *syncBuffer) {
	t.Helper()
	bin := cliBin
	out := &syncBuffer{}
	args = append([]string{"local", "--addr", "127.0.0.1:0", "--sandbox-addr", "127.0.0.1:0", "--timers", "off", "--bin", filepath.Join(t.TempDir(), "bin")}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "CLOUDCALL_STORE=memory")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("cloudcall local output:\n%s", out.String())
		}
	})
	var base string
	require.Eventually(t, func() bool {
		select {
		case <-done:
			t.Fatalf("cloudcall local exited:\n%s", out.String())
		default:
		}
		if m := consoleBaseRe.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
			return true
		}
		return false
	}, 3*time.Minute, 50*time.Millisecond, "cloudcall local did not start")
	return base, out
}

// need skips a test locally when a tool is missing, with a line saying
// what to install, and fails it under CI=true (.ci/run installs it).
func need(t *testing.T, what, how string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (CI=true requires it): %s", what, how)
	}
	t.Skipf("%s is missing; skipping (%s)", what, how)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
