package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/sandbox"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
)

// In HTTP-server mode no platform sets a deadline: the charge waits the
// 15 s the registry documents for it, not the runtime's 10 s. TOP answering
// after 11 s is a charge made and recorded, not an outcome to reconcile
// (the binary of the previous release answered -1304 at 10 s).
func TestAChargeWaitsFifteenSecondsInHTTPServerMode(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 11 s for TOP")
	}
	sbx := topsbx.New(topsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	sbx.Inject(sandbox.Fault{Path: "/router/rest", Kind: sandbox.FaultLatency, Delay: 11 * time.Second, Times: 1})
	mr := miniredis.RunT(t)
	env := merge(sbx.Env(srv.URL), assumePersistence, map[string]string{
		"CLOUDCALL_IDEMPOTENCY_STORE": "redis://" + mr.Addr() + "/0", "CLOUDCALL_ALLOW_ANONYMOUS": "true"})
	s := startHTTPServer(t, bins["top-launch-extra-charge"], "plain", env)

	body := `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-SLOW","price":100,"type":2},"idempotencyKey":"slow-1"}`
	start := time.Now()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Post(s.url+"/", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	require.Equal(t, http.StatusOK, resp.StatusCode, m)
	require.Equal(t, 0.0, m["errCode"], m)
	require.GreaterOrEqual(t, time.Since(start), 11*time.Second, "TOP's answer was awaited")
	require.Len(t, sbx.Charges("BFC-SLOW"), 1)
}

// A vendor that hangs: the function answers its own envelope (-1301 for a
// read, -1304 for the charge) before the platform's deadline, as the shipped
// binary under each runtime API. It used the platform's deadline for the
// vendor call itself, so on Lambda (RIE) the platform killed it first and
// the caller got "Task timed out" instead (outside tester); the emulator
// accepted an answer 10 ms late and hid it.
func TestAHangingVendorIsAnsweredBeforeThePlatformDeadline(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for two 3 s timeouts per platform")
	}
	for _, p := range []runtimeapi.Platform{runtimeapi.FC, runtimeapi.Lambda} {
		t.Run(string(p), func(t *testing.T) {
			wx, top := wechatsbx.New(wechatsbx.Options{}), topsbx.New(topsbx.Options{})
			wxSrv, topSrv := httptest.NewServer(wx.Handler()), httptest.NewServer(top.Handler())
			defer wxSrv.Close()
			defer topSrv.Close()
			wx.Inject(sandbox.Fault{Path: "/cgi-bin/express/business/quota/get", Kind: sandbox.FaultHang, Delay: 5 * time.Second, Times: 5})
			top.Inject(sandbox.Fault{Path: "/router/rest", Kind: sandbox.FaultHang, Delay: 5 * time.Second, Times: 5})
			mr := miniredis.RunT(t)
			fns := []emulator.FunctionConfig{
				{Name: "logistics-get-quota", Binary: bins["logistics-get-quota"], Platform: p, Env: merge(wx.Env(wxSrv.URL), map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true"}),
					Timeout: 3 * time.Second, MemoryMB: 128, MaxInstances: 1, Idle: time.Minute, Stdout: io.Discard},
				{Name: "top-launch-extra-charge", Binary: bins["top-launch-extra-charge"], Platform: p, Env: merge(top.Env(topSrv.URL), assumePersistence,
					map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true", "CLOUDCALL_IDEMPOTENCY_STORE": "redis://" + mr.Addr() + "/0"}),
					Timeout: 3 * time.Second, MemoryMB: 128, MaxInstances: 1, Idle: time.Minute, Stdout: io.Discard},
			}
			emu := emulator.New(emulator.Options{Platform: p, Functions: fns, Log: io.Discard})
			defer emu.Close()
			for fn, want := range map[string]float64{"logistics-get-quota": -1301, "top-launch-extra-charge": -1304} {
				payload := `{"deliveryId":"YTO","bizId":"hang"}`
				if fn == "top-launch-extra-charge" {
					payload = `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-HANG","price":100,"type":2},"idempotencyKey":"hang-1"}`
				}
				res, _, err := emu.Invoke(context.Background(), fn, []byte(payload))
				require.NoError(t, err, "%s: the platform gave up first", fn)
				require.Nil(t, res.Error, fn)
				var m map[string]any
				require.NoError(t, json.Unmarshal(res.Body, &m), string(res.Body))
				require.Equal(t, want, m["errCode"], "%s: %s", fn, res.Body)
			}
		})
	}
}

// SIGTERM (a platform or orchestrator scaling in, a redeploy) in HTTP-server
// mode ended the process under a charge in flight: TOP charged, the caller
// got a broken connection, and the record stayed in progress for someone to
// reconcile (outside tester). The shipped binary now finishes the call, and
// answers it, before it exits.
func TestSIGTERMLetsAChargeInFlightFinish(t *testing.T) {
	sbx := topsbx.New(topsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	sbx.Inject(sandbox.Fault{Path: "/router/rest", Kind: sandbox.FaultLatency, Delay: 2 * time.Second, Times: 1})
	mr := miniredis.RunT(t)
	env := merge(sbx.Env(srv.URL), assumePersistence, map[string]string{
		"CLOUDCALL_IDEMPOTENCY_STORE": "redis://" + mr.Addr() + "/0", "CLOUDCALL_ALLOW_ANONYMOUS": "true"})
	s := startHTTPServer(t, bins["top-launch-extra-charge"], "plain", env)

	type answer struct {
		status int
		body   map[string]any
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		body := `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-TERM","price":100,"type":2},"idempotencyKey":"term-1"}`
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Post(s.url+"/", "application/json", strings.NewReader(body))
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var m map[string]any
		err = json.NewDecoder(resp.Body).Decode(&m)
		got <- answer{status: resp.StatusCode, body: m, err: err}
	}()
	require.Eventually(t, func() bool { return sbx.Calls("http:/router/rest") == 1 }, 10*time.Second, 10*time.Millisecond, "the charge reached TOP")
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))

	a := <-got
	require.NoError(t, a.err, "the caller got its answer")
	require.Equal(t, http.StatusOK, a.status, a.body)
	require.Equal(t, 0.0, a.body["errCode"], a.body)
	require.Len(t, sbx.Charges("BFC-TERM"), 1)
	var records int
	for _, k := range mr.Keys() {
		if rec := mr.HGet(k, "rec"); rec != "" {
			records++
			require.NotContains(t, rec, "in_progress", "the record was finished: %s", k)
		}
	}
	require.NotZero(t, records, "the charge's record is there")
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	select {
	case err := <-exited:
		require.NoError(t, err, "a clean exit after the call")
	case <-time.After(20 * time.Second):
		t.Fatal("the process did not exit after its call")
	}
}
