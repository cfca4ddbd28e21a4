package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
)

// The suite through `cloudcall local --caller-keys`, the command a developer
// runs: the CLI builds the real binaries, serves the sandboxes and turns
// caller authentication on for every function.
func TestSecuritySuiteThroughCloudcallLocal(t *testing.T) {
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	cli, err := emulator.Build(t.Context(), root, "./cmd/cloudcall", t.TempDir())
	require.NoError(t, err)
	cmd := exec.Command(cli, "local", "--addr", "127.0.0.1:0", "--sandbox-addr", "127.0.0.1:0", "--timers", "off",
		"--bin", t.TempDir(), "--caller-keys", suiteCallerEnv)
	cmd.Dir = root
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	front := regexp.MustCompile(`^cloudcall local on (http://\S+)`)
	sandbox := regexp.MustCompile(`^sandbox\s+(\S+)\s+(http://\S+)`)
	var base string
	var admins []string
	ready := make(chan struct{})
	logs := &syncBuf{}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		closed := false
		for sc.Scan() {
			line := sc.Text()
			_, _ = logs.Write([]byte(line + "\n"))
			if closed {
				continue
			}
			if m := front.FindStringSubmatch(line); m != nil {
				base = m[1]
			}
			if m := sandbox.FindStringSubmatch(line); m != nil {
				admins = append(admins, m[2]+"/__sandbox/calls")
			}
			if strings.Contains(line, "Ctrl-C stops everything") {
				close(ready)
				closed = true
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(5 * time.Minute):
		t.Fatalf("cloudcall local did not start:\n%s", logs.String())
	}
	require.Contains(t, logs.String(), "caller auth: on")
	require.NotEmpty(t, admins)
	counters := func() []map[string]int {
		var out []map[string]int
		for _, a := range admins {
			resp, err := http.Get(a)
			require.NoError(t, err)
			var m map[string]int
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
			resp.Body.Close()
			out = append(out, m)
		}
		return out
	}
	calls := func() int {
		n := 0
		for _, m := range counters() {
			n += vendorCalls(m)
		}
		return n
	}
	stableTokens := func() int {
		n := 0
		for _, m := range counters() {
			n += m[stableTokenPath]
		}
		return n
	}
	runSuite(t, "emulator", "cloudcall-local", func(string) string { return base }, calls, stableTokens)
	require.NotContains(t, logs.String(), suiteSecret, "no caller secret in the emulator's output")
}
