package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/sandbox"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
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
