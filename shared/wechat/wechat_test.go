package wechat_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/wechat"
)

type fixture struct {
	sbx *wechatsbx.Server
	srv *httptest.Server
	op  envelope.Op
	kv  *store.Memory
}

func newFixture(t *testing.T, env map[string]string) *fixture {
	t.Helper()
	sbx := wechatsbx.New(wechatsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	t.Cleanup(srv.Close)
	vars := sbx.Env(srv.URL)
	for k, v := range env {
		vars[k] = v
	}
	kv := store.NewMemory(store.MemoryOptions{})
	d := runtime.Deps{Env: config.FromMap(vars), Store: kv, Log: runtime.NewLogger(new(strings.Builder), config.FromMap(nil)), HTTP: srv.Client()}
	op, err := wechat.GetQuotaFactory(context.Background(), d)
	require.NoError(t, err)
	return &fixture{sbx: sbx, srv: srv, op: op, kv: kv}
}

func (f *fixture) invoke(t *testing.T, body string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := f.op.Invoke(ctx, &envelope.Input{Body: []byte(body), Trigger: envelope.TriggerDirect})
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m), string(r.Body))
	return m
}

func TestGetQuota(t *testing.T) {
	cases := []struct {
		name, body string
		code       float64
		errMsg     string
		quota      any
		upstream   int // quota/get calls
	}{
		{"success", `{"deliveryId":"YTO","bizId":"xyz"}`, 0, "openapi.logistics.getQuota:ok", 210.0, 1},
		{"zero balance present", `{"deliveryId":"ZTO","bizId":"zero-balance"}`, 0, "openapi.logistics.getQuota:ok", 0.0, 1},
		{"wrong password", `{"deliveryId":"YTO","bizId":"wrong-password"}`, 9300531, "openapi.logistics.getQuota:fail invalid biz_id or password rid: ", nil, 1},
		{"not bound", `{"deliveryId":"YTO","bizId":"nobody"}`, 9300525, "openapi.logistics.getQuota:fail biz id not bind rid: ", nil, 1},
		{"missing field", `{"deliveryId":"YTO"}`, -1001, "openapi.logistics.getQuota:fail invalid input: bizId: required", nil, 0},
		{"wrong type", `{"deliveryId":"YTO","bizId":7}`, -1001, "openapi.logistics.getQuota:fail invalid input: bizId: expected a string, got number", nil, 0},
		{"empty object", `{}`, -1001, "openapi.logistics.getQuota:fail invalid input: deliveryId: required", nil, 0},
		{"non-object", `[1,2]`, -1001, "openapi.logistics.getQuota:fail invalid input: the request body must be a JSON object, got an array", nil, 0},
		{"vendor spelling", `{"delivery_id":"YTO","biz_id":"xyz"}`, -1001, `openapi.logistics.getQuota:fail invalid input: biz_id: unknown field; did you mean "bizId"?`, nil, 0},
		// WeChat documents a required string and nothing more: an empty one
		// is WeChat's to judge.
		{"empty biz id reaches WeChat", `{"deliveryId":"YTO","bizId":""}`, 9300525, "openapi.logistics.getQuota:fail biz id not bind rid: ", nil, 1},
		{"duplicate key", `{"deliveryId":"YTO","bizId":"xyz","bizId":"abc"}`, -1001, `openapi.logistics.getQuota:fail invalid input: bizId: duplicate key "bizId"; send each field once`, nil, 0},
		{"invalid UTF-8", "{\"deliveryId\":\"YTO\",\"bizId\":\"x\xffz\"}", -1001, "openapi.logistics.getQuota:fail invalid input: bizId: not valid UTF-8; send text as UTF-8", nil, 0},
		// WeChat documents strings and no limit: a long or unusual value is
		// WeChat's to judge (the sandbox knows no such account).
		{"long biz id reaches WeChat", `{"deliveryId":"YTO","bizId":"` + strings.Repeat("客", 300) + `"}`, 9300525, "openapi.logistics.getQuota:fail biz id not bind rid: ", nil, 1},
		{"unusual delivery id reaches WeChat", `{"deliveryId":"Y T~O*","bizId":"xyz"}`, 9300503, "openapi.logistics.getQuota:fail delivery_id not registered rid: ", nil, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil)
			m := f.invoke(t, c.body)
			require.Equal(t, c.code, m["errCode"])
			require.True(t, strings.HasPrefix(m["errMsg"].(string), c.errMsg), m["errMsg"])
			if c.quota != nil {
				require.Contains(t, m, "quotaNum")
				require.Equal(t, c.quota, m["quotaNum"])
			} else {
				require.NotContains(t, m, "quotaNum")
			}
			require.Equal(t, c.upstream, f.sbx.Calls("quota"))
			if c.upstream == 0 {
				require.Equal(t, 0, f.sbx.Calls("token"), "bad input fetches no token either")
			}
		})
	}
}

func TestVendorErrorKeepsRID(t *testing.T) {
	f := newFixture(t, nil)
	m := f.invoke(t, `{"deliveryId":"YTO","bizId":"wrong-password"}`)
	up := m["upstream"].(map[string]any)
	require.Equal(t, "wechat", up["vendor"])
	require.Equal(t, "9300531", up["code"])
	require.NotEmpty(t, up["requestId"])
	require.Contains(t, m["errMsg"], up["requestId"])
}

func TestStaleTokenRetriesOnceWithOneExtraFetch(t *testing.T) {
	f := newFixture(t, nil)
	require.Equal(t, 0.0, f.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)["errCode"])
	require.Equal(t, 1, f.sbx.Calls("token"))
	f.sbx.Rotate(wechatsbx.DemoAppID)
	m := f.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)
	require.Equal(t, 0.0, m["errCode"])
	require.Equal(t, 210.0, m["quotaNum"])
	require.Equal(t, 2, f.sbx.Calls("token"), "exactly one extra token fetch")
	require.Equal(t, 3, f.sbx.Calls("quota"), "the stale call plus its one retry")
}

func TestStaleTwiceDoesNotLoop(t *testing.T) {
	f := newFixture(t, nil)
	f.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)
	stale := `{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest rid: 1"}`
	f.sbx.Inject(sandbox.Fault{Path: "/cgi-bin/express/business/quota/get", Kind: sandbox.FaultStatus, Status: 200, Body: stale, Times: 5})
	m := f.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)
	require.Equal(t, 40001.0, m["errCode"])
	require.Equal(t, 3, f.sbx.Calls("http:/cgi-bin/express/business/quota/get"), "the first invocation, then one call and one retry: no loop")
}

func TestConcurrentColdCallsFetchOneToken(t *testing.T) {
	f := newFixture(t, nil)
	var wg sync.WaitGroup
	codes := make([]any, 50)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = f.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)["errCode"]
		}()
	}
	wg.Wait()
	for _, c := range codes {
		require.Equal(t, 0.0, c)
	}
	require.Equal(t, 1, f.sbx.Calls("token"))
	require.Equal(t, 50, f.sbx.Calls("quota"))
}

func TestSystemBusyRetriedInsideTheInvocation(t *testing.T) {
	f := newFixture(t, nil)
	f.sbx.Inject(sandbox.Fault{Path: "/cgi-bin/express/business/quota/get", Kind: sandbox.FaultStatus, Status: 200,
		Body: `{"errcode":-1,"errmsg":"system error rid: 2"}`, Times: 1})
	m := f.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)
	require.Equal(t, 0.0, m["errCode"])
	require.Equal(t, 2, f.sbx.Calls("http:/cgi-bin/express/business/quota/get"), "the busy answer and the retry")
}

func TestWrongSecretSurfacesWithoutLooping(t *testing.T) {
	f := newFixture(t, map[string]string{"WECHAT_APPSECRET": "not-the-secret"})
	m := f.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)
	require.Equal(t, 40125.0, m["errCode"])
	require.Contains(t, m["errMsg"], "check WECHAT_APPSECRET")
	require.Equal(t, 1, f.sbx.Calls("token"), "a configuration error is not retried")
	require.Equal(t, 0, f.sbx.Calls("quota"))
	require.NotContains(t, m["errMsg"], "not-the-secret")
}

func TestClassicMode(t *testing.T) {
	f := newFixture(t, map[string]string{"WECHAT_TOKEN_MODE": "classic"})
	require.Equal(t, 0.0, f.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)["errCode"])
	require.Equal(t, 1, f.sbx.Calls("http:/cgi-bin/token"))
	require.Equal(t, 0, f.sbx.Calls("http:/cgi-bin/stable_token"))
}

func TestTokenTTLFromExpiresIn(t *testing.T) {
	// stable_token may answer expires_in 300 in a token's last minutes: the
	// cache TTL must stay positive and shorter than the token's life.
	sbx := wechatsbx.New(wechatsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	kv := store.NewMemory(store.MemoryOptions{})
	tm := wechat.NewTokenManager(wechat.TokenOptions{AppID: wechatsbx.DemoAppID, Secret: wechatsbx.DemoSecret, Base: srv.URL, HTTP: srv.Client(), KV: kv})
	ctx := context.Background()
	t1, err := tm.Token(ctx)
	require.NoError(t, err)
	sbx.Clock.Advance(7200*time.Second - 4*time.Minute) // inside the last 5 minutes: WeChat has rotated
	tm2 := wechat.NewTokenManager(wechat.TokenOptions{AppID: wechatsbx.DemoAppID, Secret: wechatsbx.DemoSecret, Base: srv.URL, HTTP: srv.Client(), KV: store.NewMemory(store.MemoryOptions{})})
	t2, err := tm2.Token(ctx)
	require.NoError(t, err)
	require.NotEqual(t, t1, t2, "normal mode rotates 5 minutes early")
	require.Equal(t, 2, sbx.Calls("token"))
}

func TestMissingConfigNamesTheVariable(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"no secret", map[string]string{"WECHAT_APPID": "wx1"}, []string{"WECHAT_APPSECRET"}},
		{"no appid", map[string]string{"WECHAT_APPSECRET": "s"}, []string{"WECHAT_APPID"}},
		{"nothing", nil, []string{"WECHAT_APPID", "WECHAT_APPSECRET"}},
		{"bad mode", map[string]string{"WECHAT_APPID": "wx1", "WECHAT_APPSECRET": "s", "WECHAT_TOKEN_MODE": "force"}, []string{"WECHAT_TOKEN_MODE", "stable or classic"}},
		{"base without scheme", map[string]string{"WECHAT_APPID": "wx1", "WECHAT_APPSECRET": "s", "WECHAT_API_BASE": "api.weixin.qq.com"}, []string{"WECHAT_API_BASE"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := runtime.Deps{Env: config.FromMap(c.env), Store: store.NewMemory(store.MemoryOptions{}), HTTP: http.DefaultClient}
			op, err := wechat.GetQuotaFactory(context.Background(), d)
			require.Error(t, err)
			for _, w := range c.want {
				require.ErrorContains(t, err, w)
			}
			require.Equal(t, wechat.APIGetQuota, op.API)
		})
	}
}

// WeChat answering "system busy" after 1 s each time, with 3 s to go: after
// two tries too little is left for a third to finish, so none is started
// and the caller hears WeChat's own -1, not a timeout that hides it.
func TestABusyRetryThatCannotFinishIsNotStarted(t *testing.T) {
	f := newFixture(t, nil)
	f.sbx.Inject(sandbox.Fault{Path: "/cgi-bin/express/business/quota/get", Kind: sandbox.FaultLatency, Delay: time.Second})
	f.sbx.Inject(sandbox.Fault{Path: "/cgi-bin/express/business/quota/get", Kind: sandbox.FaultStatus, Status: 200, Body: `{"errcode":-1,"errmsg":"system error"}`})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r := f.op.Invoke(ctx, &envelope.Input{Body: []byte(`{"deliveryId":"YTO","bizId":"xyz"}`), Trigger: envelope.TriggerDirect})
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m), string(r.Body))
	require.Equal(t, -1.0, m["errCode"], m)
	require.Equal(t, 2, f.sbx.Calls("http:/cgi-bin/express/business/quota/get"))
}

// A token refused slowly (40001 after 1 s) with too little time left for
// the refetch and a second try is answered with WeChat's 40001, not with a
// -1301 from a retry the deadline cut.
func TestAStaleRetryThatCannotFinishIsNotStarted(t *testing.T) {
	f := newFixture(t, nil)
	f.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)
	f.sbx.Inject(sandbox.Fault{Path: "/cgi-bin/express/business/quota/get", Kind: sandbox.FaultLatency, Delay: time.Second})
	f.sbx.Inject(sandbox.Fault{Path: "/cgi-bin/express/business/quota/get", Kind: sandbox.FaultStatus, Status: 200, Body: `{"errcode":40001,"errmsg":"invalid credential rid: 1"}`})
	before := f.sbx.Calls("http:/cgi-bin/express/business/quota/get")
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	r := f.op.Invoke(ctx, &envelope.Input{Body: []byte(`{"deliveryId":"YTO","bizId":"xyz"}`), Trigger: envelope.TriggerDirect})
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m), string(r.Body))
	require.Equal(t, 40001.0, m["errCode"], m)
	require.Equal(t, 1, f.sbx.Calls("http:/cgi-bin/express/business/quota/get")-before)
}
