package e2e

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
)

// Two instances of the real charge binary in HTTP-server mode, with caller
// keys and the default CLOUDCALL_STORE (memory, per instance: where the
// caller-auth nonces live), sharing only the records store. A signed charge
// captured and replayed on the other instance with a new Idempotency-Key
// header is refused and TOP's ledger keeps one charge. The previous release
// answered errCode 0 twice and TOP held two charges.
func TestACapturedChargeReplayedElsewhereWithANewHeaderKey(t *testing.T) {
	sbx := topsbx.New(topsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	mr := miniredis.RunT(t)
	env := merge(sbx.Env(srv.URL), assumePersistence, map[string]string{
		"CLOUDCALL_IDEMPOTENCY_STORE": "redis://" + mr.Addr() + "/0", "CLOUDCALL_CALLER_KEYS": suiteCallerEnv})
	a := startHTTPServer(t, bins["top-launch-extra-charge"], "plain", env)
	b := startHTTPServer(t, bins["top-launch-extra-charge"], "plain", env)

	body := []byte(`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-E2E-REPLAY","price":100,"type":2}}`)
	capture := signed(t, suiteKeyID, suiteSecret, "POST", "/", "", body, time.Now().Unix())
	st, m, raw := withHeader(capture, "Idempotency-Key", "first").send(t, a.url)
	require.Equal(t, 200, st, raw)
	require.Equal(t, 0.0, m["errCode"], raw)

	st, m, raw = withHeader(capture, "Idempotency-Key", "attacker").send(t, b.url)
	require.Equal(t, 401, st, raw)
	require.Equal(t, -1101.0, m["errCode"], raw)
	require.Contains(t, m["errMsg"], "replayed nonce")
	require.Len(t, sbx.Charges("BFC-E2E-REPLAY"), 1, "one charge")
}
