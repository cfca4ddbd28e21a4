package e2e

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/callerauth"
	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
	"github.com/cloudcall/cloudcall/shared/wechat"
)

// A real function behind caller authentication: refused calls never reach
// the vendor (no token fetch, no quota call); a signed one does. The
// instance's one stable token is fetched at its start, before any call.
func TestRefusedCallsNeverReachTheVendor(t *testing.T) {
	const secret = "caller-key-for-the-e2e-test-000"
	sbx := wechatsbx.New(wechatsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	env := sbx.Env(srv.URL)
	env["CLOUDCALL_CALLER_KEYS"] = "backend:" + secret
	e := config.FromMap(env)
	h, err := runtime.New(context.Background(), e, runtime.NewLogger(&syncBuf{}, e), wechat.GetQuotaFactory)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return sbx.Calls("token") == 1 }, 5*time.Second, 5*time.Millisecond, "the start's fetch")
	body := `{"deliveryId":"YTO","bizId":"xyz"}`
	now := time.Now().Unix()
	event := func(path, query, b, auth string) []byte {
		ev := map[string]any{"version": "v1", "rawPath": path, "body": b, "queryParameters": map[string]string{},
			"headers":        map[string]string{"Authorization": auth},
			"requestContext": map[string]any{"http": map[string]string{"method": "POST"}}}
		if query != "" {
			k, v, _ := strings.Cut(query, "=")
			ev["queryParameters"] = map[string]string{k: v}
		}
		out, _ := json.Marshal(ev)
		return out
	}
	good := callerauth.Header("backend", secret, "POST", "/logistics-get-quota", "", now, "e2e-nonce-0000000001", []byte(body))
	for name, ev := range map[string][]byte{
		"unsigned":       event("/logistics-get-quota", "", body, ""),
		"tampered body":  event("/logistics-get-quota", "", `{"deliveryId":"YTO","bizId":"abc"}`, good),
		"tampered path":  event("/other", "", body, good),
		"tampered query": event("/logistics-get-quota", "x=1", body, good),
		"expired":        event("/logistics-get-quota", "", body, callerauth.Header("backend", secret, "POST", "/logistics-get-quota", "", now-600, "e2e-nonce-0000000002", []byte(body))),
		"unknown key":    event("/logistics-get-quota", "", body, callerauth.Header("nobody", secret, "POST", "/logistics-get-quota", "", now, "e2e-nonce-0000000003", []byte(body))),
	} {
		var resp runtime.HTTPResponse
		require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), ev, runtime.Meta{}), &resp))
		require.Equal(t, 401, resp.StatusCode, name)
		require.Contains(t, resp.Body, `"errCode":-1101`, name)
	}
	require.Equal(t, 1, sbx.Calls("token"), "no refused call fetched a token")
	require.Equal(t, 0, sbx.Calls("http:/cgi-bin/express/business/quota/get"), "no refused call reached WeChat")

	var resp runtime.HTTPResponse
	require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), event("/logistics-get-quota", "", body, good), runtime.Meta{}), &resp))
	require.Equal(t, 200, resp.StatusCode, resp.Body)
	require.Equal(t, 1, sbx.Calls("quota"))
	require.Equal(t, 1, sbx.Calls("token"), "the signed call used the start's token")
	require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), event("/logistics-get-quota", "", body, good), runtime.Meta{}), &resp))
	require.Equal(t, 401, resp.StatusCode, "the replay is refused")
	require.Equal(t, 1, sbx.Calls("quota"))
}
