package e2e

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/clients/go/cloudcall"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/sandbox"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/store/redisstore/redistest"
)

// The caller's view of a busy deployment: the Go client, signing, against
// the charge's HTTP trigger scaled out to several instances on one Redis.
// Eight callers at once with the same charge and no key of their own: the
// function's fingerprint key makes them one charge, and every caller that
// got an answer learns the same key.
func TestClientChargesOnceAcrossInstances(t *testing.T) {
	url := redistest.URL(t)
	const keyID, secret = "backend", "e2e-client-secret-000001"
	sbx := topsbx.New(topsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	// The first charge takes a while, so the others meet it in flight.
	sbx.Inject(sandbox.Fault{Path: "/router/rest", Kind: sandbox.FaultLatency, Delay: 300 * time.Millisecond, Times: 1})
	env := merge(sbx.Env(srv.URL), redisEnv(t, url), map[string]string{"CLOUDCALL_CALLER_KEYS": keyID + ":" + secret,
		"CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE": "assume"}) // the test Redis need not run AOF
	emu := emulator.New(emulator.Options{Platform: runtimeapi.FC, Log: io.Discard, Functions: []emulator.FunctionConfig{{
		Name: "top-launch-extra-charge", Binary: bins["top-launch-extra-charge"], Platform: runtimeapi.FC, Env: env,
		Timeout: 15 * time.Second, MemoryMB: 128, MaxInstances: 4, Stdout: io.Discard}}})
	front := httptest.NewServer(emu.Handler())
	defer func() { front.Close(); emu.Close() }()

	cc, err := cloudcall.New(cloudcall.Options{BaseURL: front.URL, KeyID: keyID, Secret: secret, Timeout: 20 * time.Second})
	require.NoError(t, err)
	in := cloudcall.LaunchExtraChargeInput{OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{
		WdsCoordinationOrderID: "BFC-E2E-CLIENT", Price: 4200, Type: 2}}

	var mu sync.Mutex
	var orders []string
	keys := map[string]int{}
	conflicts := 0
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := cc.TOP.ASCP.LaunchExtraCharge(context.Background(), in)
			mu.Lock()
			defer mu.Unlock()
			var ce *cloudcall.Error
			switch {
			case err == nil:
				orders = append(orders, out.Result.Data.ExtraChargeServiceOrderID)
				keys[out.IdempotencyKey]++
			case errors.As(err, &ce) && ce.ErrCode == -1401:
				conflicts++ // the first call was still running
				keys[ce.IdempotencyKey]++
			default:
				t.Errorf("unexpected: %v", err)
			}
		}()
	}
	wg.Wait()
	require.Len(t, sbx.Charges("BFC-E2E-CLIENT"), 1, "one charge")
	require.Equal(t, 8, len(orders)+conflicts)
	require.NotEmpty(t, orders)
	for _, o := range orders {
		require.Equal(t, orders[0], o, "every success is the one charge")
	}
	require.Len(t, keys, 1, "one key in force, echoed to every caller: %v", keys)

	// Afterwards a repeat answers the recorded result.
	again, err := cc.TOP.ASCP.LaunchExtraCharge(context.Background(), in)
	require.NoError(t, err)
	require.Equal(t, orders[0], again.Result.Data.ExtraChargeServiceOrderID)
	require.Len(t, sbx.Charges("BFC-E2E-CLIENT"), 1)
}
