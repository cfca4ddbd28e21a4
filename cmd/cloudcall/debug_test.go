package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/registry"
)

// findDelve looks on PATH, then in $(go env GOPATH)/bin where `go install`
// puts it.
func findDelve() string {
	if p, err := exec.LookPath("dlv"); err == nil {
		return p
	}
	if b, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(b)), "bin", "dlv")
		if fileExists(p) {
			return p
		}
	}
	return ""
}

// freeAddr is a free loopback address for Delve, outside the kernel's
// ephemeral port range: a port picked with :0 and closed again could be
// handed straight to the emulator's own :0 listener before Delve binds it
// (seen once in CI: "bind: address already in use").
func freeAddr(t *testing.T) string {
	t.Helper()
	low := 32768 // Linux's default ip_local_port_range starts here
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				low = n
			}
		}
	}
	for port := low - 10000 + int(time.Now().UnixNano()%5000); port < low; port++ {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			_ = ln.Close()
			return ln.Addr().String()
		}
	}
	t.Fatalf("no free port below the ephemeral range (%d)", low)
	return ""
}

// Delve's JSON-RPC API (service/rpc2), the few shapes this test uses.
type dlvCommand struct {
	Name string `json:"name"`
}
type dlvState struct {
	State struct {
		Exited        bool `json:"exited"`
		CurrentThread *struct {
			Breakpoint *struct {
				ID int `json:"id"`
			} `json:"breakPoint"`
		} `json:"currentThread"`
	}
}
type dlvBreakpoint struct {
	ID           int    `json:"id,omitempty"`
	FunctionName string `json:"functionName,omitempty"`
}

// TestDebugHoldsACallAtABreakpointPastItsTimeout runs logistics-get-quota
// under Delve with --debug, attaches as an editor does, stops a call at a
// breakpoint for longer than the function's timeout, and lets it go: the
// call still succeeds, because the deadline is suspended under the debugger.
func TestDebugHoldsACallAtABreakpointPastItsTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a function for Delve")
	}
	dlv := findDelve()
	need(t, "dlv", "go install github.com/go-delve/delve/cmd/dlv@"+DelveVersion, dlv != "")
	t.Setenv("PATH", filepath.Dir(dlv)+string(os.PathListSeparator)+os.Getenv("PATH"))
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	debugAddr := freeAddr(t)
	base, out := runLocalIn(t, root, "--debug", "logistics-get-quota", "--debug-addr", debugAddr)
	require.Eventually(t, func() bool {
		return strings.Contains(out.String(), "debug: logistics-get-quota runs under Delve on "+debugAddr)
	}, time.Minute, 20*time.Millisecond, "the banner names the Delve address")

	client := &http.Client{Timeout: 2 * time.Minute}
	call := func() (int, string) {
		resp, err := client.Post(base+"/logistics-get-quota", "application/json", strings.NewReader(`{"deliveryId":"YTO","bizId":"xyz"}`))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := call() // cold start under Delve
	require.Equal(t, 200, status, body)
	require.Contains(t, out.String(), "API server listening at: "+debugAddr)

	conn, err := net.Dial("tcp", debugAddr)
	require.NoError(t, err)
	dbg := rpc.NewClientWithCodec(jsonrpc.NewClientCodec(conn))
	defer dbg.Close()
	var st dlvState
	require.NoError(t, dbg.Call("RPCServer.Command", dlvCommand{Name: "halt"}, &st))
	var bp struct{ Breakpoint dlvBreakpoint }
	require.NoError(t, dbg.Call("RPCServer.CreateBreakpoint", struct{ Breakpoint dlvBreakpoint }{dlvBreakpoint{
		FunctionName: "github.com/cloudcall/cloudcall/shared/runtime.(*Handler).Invoke"}}, &bp))
	hit := dbg.Go("RPCServer.Command", dlvCommand{Name: "continue"}, &dlvState{}, nil)

	type answer struct {
		status int
		body   string
	}
	answered := make(chan answer, 1)
	go func() {
		s, b := call()
		answered <- answer{s, b}
	}()
	select {
	case <-hit.Done:
		require.NoError(t, hit.Error)
		stopped := hit.Reply.(*dlvState)
		require.False(t, stopped.State.Exited)
		require.NotNil(t, stopped.State.CurrentThread)
		require.NotNil(t, stopped.State.CurrentThread.Breakpoint, "stopped at the breakpoint")
		require.Equal(t, bp.Breakpoint.ID, stopped.State.CurrentThread.Breakpoint.ID)
	case a := <-answered:
		t.Fatalf("the call went through the breakpoint: %d %s", a.status, a.body)
	}

	// Held past the function's timeout (plus the emulator's grace).
	fn, _ := registry.Lookup("logistics-get-quota")
	time.Sleep(time.Duration(fn.TimeoutSec)*time.Second + 2*time.Second)
	select {
	case a := <-answered:
		t.Fatalf("the call ended while held at the breakpoint: %d %s", a.status, a.body)
	default:
	}
	require.NoError(t, dbg.Call("RPCServer.ClearBreakpoint", struct{ Id int }{bp.Breakpoint.ID}, &json.RawMessage{}))
	dbg.Go("RPCServer.Command", dlvCommand{Name: "continue"}, &dlvState{}, nil) // runs until the test ends

	a := <-answered
	require.Equal(t, 200, a.status, a.body)
	require.JSONEq(t, `{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":210}`, a.body)
	require.NotContains(t, out.String(), "task timed out")
}
