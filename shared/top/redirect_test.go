package top_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/top"
	"github.com/cloudcall/cloudcall/shared/upstream/upstreamtest"
)

// A 307 from the vendor's address is an error (-1302, nothing was acted on),
// never a request sent again to where it points. The client passed in
// follows redirects by default: the vendor package itself refuses them.
func TestNeverFollowsRedirects(t *testing.T) {
	for _, tc := range []struct{ name, prefix string }{{"the charge", "/"}} {
		t.Run(tc.name, func(t *testing.T) {
			sbx := topsbx.New(topsbx.Options{})
			front := upstreamtest.NewRedirector(t, sbx.Handler(), tc.prefix)
			op, err := top.FactoryWith(idempotency.NewMemory(nil))(context.Background(), runtime.Deps{Env: config.FromMap(sbx.Env(front.URL)),
				Store: store.NewMemory(store.MemoryOptions{}), HTTP: &http.Client{}})
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp := op.Invoke(ctx, &envelope.Input{Body: []byte(`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-307","price":100,"type":1},"idempotencyKey":"r1"}`), Trigger: envelope.TriggerDirect})
			var m map[string]any
			require.NoError(t, json.Unmarshal(resp.Body, &m), string(resp.Body))
			require.Equal(t, -1302.0, m["errCode"], m)
			require.Contains(t, m["errMsg"], "redirect")
			require.Equal(t, 502, resp.Status)
			require.Equal(t, int32(1), front.Redirected.Load(), "one request, not retried")
			require.Equal(t, int32(0), front.Elsewhere.Load(), "nothing was sent where the redirect points")
			require.Empty(t, sbx.Charges(""), "no ledger entry")
			// The key was released: the same call is refused the same way,
			// not told "in progress" or "outcome unknown".
			again := op.Invoke(ctx, &envelope.Input{Body: []byte(`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-307","price":100,"type":1},"idempotencyKey":"r1"}`), Trigger: envelope.TriggerDirect})
			require.Contains(t, string(again.Body), `"errCode":-1302`)
			require.Equal(t, int32(0), front.Elsewhere.Load())
		})
	}
}

// TOP can quote the session it refused. A caller's own session is no
// configured secret, so the log redactor did not know it, and the invocation
// line carried a seller credential in clear (outside tester). It is masked
// where TOP's words enter the reason.
func TestARefusedSessionIsNotQuoted(t *testing.T) {
	const session = "CALLERSESSIONCANARY123456"
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		require.Equal(t, session, r.PostForm.Get("session"))
		_, _ = w.Write([]byte(`{"error_response":{"code":27,"msg":"Invalid session","sub_code":"invalid-sessionkey","sub_msg":"session ` + session + ` invalid","request_id":"r"}}`))
	}))
	t.Cleanup(gw.Close)
	sbx := topsbx.New(topsbx.Options{})
	env := sbx.Env(gw.URL)
	op, err := top.FactoryWith(idempotency.NewMemory(nil))(context.Background(), runtime.Deps{Env: config.FromMap(env),
		Store: store.NewMemory(store.MemoryOptions{}), HTTP: &http.Client{}})
	require.NoError(t, err)
	resp := op.Invoke(context.Background(), &envelope.Input{Body: []byte(`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"S-1","price":100,"type":1},"session":"` + session + `","idempotencyKey":"s1"}`), Trigger: envelope.TriggerDirect})
	require.NotContains(t, string(resp.Body), session)
	require.Contains(t, string(resp.Body), "session [REDACTED] invalid")
	require.Contains(t, string(resp.Body), `"errCode":-1305`)
}

// TOP may quote the session as its request's form carried it.
func TestARefusedSessionIsNotQuotedEncoded(t *testing.T) {
	const session = "Sx/ab+cd=ef&gh%ij klmnopQR"
	for _, quoted := range []string{url.QueryEscape(session), url.PathEscape(session)} {
		gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := json.Marshal(map[string]any{"error_response": map[string]any{"code": 27, "msg": "Invalid session", "sub_code": "invalid-sessionkey", "sub_msg": "session=" + quoted + " invalid"}})
			_, _ = w.Write(b)
		}))
		sbx := topsbx.New(topsbx.Options{})
		op, err := top.FactoryWith(idempotency.NewMemory(nil))(context.Background(), runtime.Deps{Env: config.FromMap(sbx.Env(gw.URL)),
			Store: store.NewMemory(store.MemoryOptions{}), HTTP: &http.Client{}})
		require.NoError(t, err)
		in, _ := json.Marshal(map[string]any{"omsLaunchExtraChargeParameter": map[string]any{"wdsCoordinationOrderId": "S-2", "price": 100, "type": 1}, "session": session})
		resp := op.Invoke(context.Background(), &envelope.Input{Body: in, Trigger: envelope.TriggerDirect})
		gw.Close()
		require.NotContains(t, string(resp.Body), quoted)
		require.Contains(t, string(resp.Body), "session=[REDACTED] invalid")
	}
}
