package e2e

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/ck1"
	"github.com/cloudcall/cloudcall/shared/sandbox"
	"github.com/cloudcall/cloudcall/shared/sandbox/ck1sbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
	"github.com/cloudcall/cloudcall/shared/wechat"
)

// A vendor (or a firewall in front of it) that echoes a credential: a WAF
// page quoting CK1's token request with its client secret and refresh token
// in the query (CK1 takes them there), a WeChat error naming the app secret.
// The answer carried it verbatim; only the log line was redacted (outside
// tester). The answer is redacted as the log is.
func TestAVendorEchoingASecretDoesNotPutItInTheAnswer(t *testing.T) {
	clientSecret, seed := distinct("CK1_CLIENT_SECRET"), distinct("CK1_REFRESH_TOKEN")
	csbx := ck1sbx.New(ck1sbx.Options{ClientSecret: clientSecret, RefreshToken: seed})
	csrv := httptest.NewServer(csbx.Handler())
	defer csrv.Close()
	q := url.Values{"client_id": {ck1sbx.DemoClientID}, "client_secret": {clientSecret}, "grant_type": {"refresh_token"}, "refresh_token": {seed}}
	csbx.Inject(sandbox.Fault{Path: "/oauth2/token", Kind: sandbox.FaultStatus, Status: 403, Times: 1,
		Body: "<html>Request blocked by WAF: POST /oauth2/token?" + q.Encode() + "</html>"})
	r := newLeakRig(t, map[string]string{"CK1_API_BASE": csrv.URL, "CK1_CLIENT_ID": ck1sbx.DemoClientID, "CK1_CLIENT_SECRET": clientSecret,
		"CK1_REFRESH_TOKEN": seed, "CK1_ALLOW_MEMORY_STORE": "true", "CLOUDCALL_ALLOW_ANONYMOUS": "true"}, ck1.Factory)
	r.invoke(`{"warehouseId":"US","boxes":[{"weight":1200,"length":30,"width":20,"height":15,"quantity":2}]}`)

	appSecret := distinct("WECHAT_APPSECRET")
	wsbx := wechatsbx.New(wechatsbx.Options{Apps: map[string]string{wechatsbx.DemoAppID: appSecret}})
	wsrv := httptest.NewServer(wsbx.Handler())
	defer wsrv.Close()
	wsbx.Inject(sandbox.Fault{Path: "/cgi-bin/stable_token", Kind: sandbox.FaultStatus, Status: 200, Times: 1,
		Body: `{"errcode":40125,"errmsg":"invalid appsecret, secret=` + appSecret + ` rid: 1"}`})
	w := newLeakRig(t, map[string]string{"WECHAT_APPID": wechatsbx.DemoAppID, "WECHAT_APPSECRET": appSecret, "WECHAT_API_BASE": wsrv.URL,
		"CLOUDCALL_ALLOW_ANONYMOUS": "true"}, wechat.GetQuotaFactory)
	w.invoke(`{"deliveryId":"YTO","bizId":"xyz"}`)

	for _, tc := range []struct {
		out     string
		secrets []string
	}{{r.out[0], []string{clientSecret, seed}}, {w.out[0], []string{appSecret}}} {
		require.NotContains(t, tc.out, `"errCode":0`, "a failure: %s", tc.out)
		require.Contains(t, tc.out, "[REDACTED]", tc.out)
		for _, s := range tc.secrets {
			require.NotContains(t, tc.out, s, tc.out)
		}
	}
	require.True(t, strings.Contains(r.out[0], "Request blocked by WAF"), "the vendor's words are kept: %s", r.out[0])
}

// A vendor's JSON error quoting a secret with JSON escapes ("ck1\/demo",
// Gson's "\u003d", Go's HTML-safe "\u0026") was escaped again in the answer
// ("ck1\\/demo") and matched no configured form: a caller that decoded
// upstream.message read the client secret in clear (an outside tester).
func TestAVendorQuotingASecretWithJSONEscapesDoesNotPutItInTheAnswer(t *testing.T) {
	const slash, amp = `ck1/demo+secret/0123456789==`, `ck1&demo+secret/0123456789==`
	for _, tc := range []struct{ name, secret, spelling string }{
		{"plain", slash, slash},
		{`\/`, slash, `ck1\/demo+secret\/0123456789==`},
		{`\u003d`, slash, `ck1\/demo+secret\/0123456789\u003d\u003d`},
		{`\u003D`, slash, `ck1/demo+secret/0123456789\u003D\u003D`},
		{`\u0026`, amp, `ck1\u0026demo+secret\/0123456789\u003d\u003d`},
		{`\u0026 escaped twice`, amp, `ck1\\u0026demo+secret\\/0123456789==`},
		{"a mix", slash, `ck1\/demo\u002bsecret/0123456789\u003D=`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sbx := ck1sbx.New(ck1sbx.Options{ClientSecret: tc.secret})
			srv := httptest.NewServer(sbx.Handler())
			defer srv.Close()
			sbx.Inject(sandbox.Fault{Path: "/oauth2/token", Kind: sandbox.FaultStatus, Status: 400, Times: 50,
				Body: `{"error":"invalid_client","error_description":"client_secret ` + tc.spelling + ` is not valid"}`})
			r := newLeakRig(t, map[string]string{"CK1_API_BASE": srv.URL, "CK1_CLIENT_ID": ck1sbx.DemoClientID, "CK1_CLIENT_SECRET": tc.secret,
				"CK1_REFRESH_TOKEN": ck1sbx.DemoRefreshToken, "CK1_ALLOW_MEMORY_STORE": "true", "CLOUDCALL_ALLOW_ANONYMOUS": "true"}, ck1.Factory)
			r.invoke(`{"warehouseId":"US","boxes":[{"weight":1200,"length":30,"width":20,"height":15,"quantity":2}]}`)
			out := r.out[0]
			var ans struct {
				ErrCode  int `json:"errCode"`
				Upstream struct {
					Message string `json:"message"`
				} `json:"upstream"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &ans), out)
			require.Equal(t, -1302, ans.ErrCode, out)
			var vendor struct {
				Description string `json:"error_description"`
			}
			require.NoError(t, json.Unmarshal([]byte(ans.Upstream.Message), &vendor), "the vendor's JSON is kept: %s", ans.Upstream.Message)
			require.Equal(t, "client_secret [REDACTED] is not valid", vendor.Description, "the whole spelling is masked: %s", out)
			for _, s := range []string{out, ans.Upstream.Message, vendor.Description, r.logs.String()} {
				require.NotContains(t, s, tc.secret)
				require.NotContains(t, s, "0123456789", "no part of any spelling is left")
			}
		})
	}
}
