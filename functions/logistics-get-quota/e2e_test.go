package main

import (
	"context"
	"encoding/json"
	"github.com/cloudcall/cloudcall/shared/syncbuf"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/sandbox"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
)

// binary is the real function, built once for the whole run.
var binary string

func TestMain(m *testing.M) {
	os.Exit(emulator.WithBinaries([]string{"./functions/logistics-get-quota"}, func(b map[string]string) int {
		binary = b["logistics-get-quota"]
		return m.Run()
	}))
}

// lockedBuffer collects a process's output from two pipes at once.
type lockedBuffer = syncbuf.Buffer

type rig struct {
	sbx     *wechatsbx.Server
	inst    *emulator.Instance
	logs    *lockedBuffer
	answers string // every answer this rig's invoke got
}

func start(t *testing.T, p runtimeapi.Platform, env map[string]string) *rig {
	t.Helper()
	sbx := wechatsbx.New(wechatsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	t.Cleanup(srv.Close)
	vars := sbx.Env(srv.URL)
	vars["CLOUDCALL_ALLOW_ANONYMOUS"] = "true"
	for k, v := range env {
		vars[k] = v
	}
	logs := &lockedBuffer{}
	inst, err := emulator.StartInstance(emulator.InstanceConfig{Binary: binary, Platform: p, Env: vars, Stdout: logs, Stderr: logs})
	require.NoError(t, err)
	t.Cleanup(inst.Stop)
	return &rig{sbx: sbx, inst: inst, logs: logs}
}

func (r *rig) invoke(t *testing.T, payload string) map[string]any {
	t.Helper()
	res, err := r.inst.Invoke(context.Background(), runtimeapi.Invocation{Payload: []byte(payload), Timeout: 10 * time.Second, Function: "logistics-get-quota"})
	require.NoError(t, err)
	require.False(t, res.TimedOut)
	require.Nil(t, res.Error, "handled failures are data, never platform errors")
	r.answers += string(res.Body) + "\n"
	var m map[string]any
	require.NoError(t, json.Unmarshal(res.Body, &m), string(res.Body))
	return m
}

func platforms() []runtimeapi.Platform {
	return []runtimeapi.Platform{runtimeapi.FC, runtimeapi.Lambda}
}

func TestEndToEnd(t *testing.T) {
	for _, p := range platforms() {
		t.Run(string(p), func(t *testing.T) {
			r := start(t, p, nil)
			quota := "/cgi-bin/express/business/quota/get"

			m := r.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)
			require.Equal(t, map[string]any{"errCode": 0.0, "errMsg": "openapi.logistics.getQuota:ok", "quotaNum": 210.0}, m)

			m = r.invoke(t, `{"deliveryId":"ZTO","bizId":"zero-balance"}`)
			require.Contains(t, m, "quotaNum", "a zero balance is present, not omitted")
			require.Equal(t, 0.0, m["quotaNum"])

			m = r.invoke(t, `{"deliveryId":"YTO","bizId":"wrong-password"}`)
			require.Equal(t, 9300531.0, m["errCode"])
			require.True(t, strings.HasPrefix(m["errMsg"].(string), "openapi.logistics.getQuota:fail invalid biz_id or password"), m["errMsg"])

			// A token made stale once: still a success, with one extra fetch.
			tokens := r.sbx.Calls("token")
			r.sbx.Rotate(wechatsbx.DemoAppID)
			m = r.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)
			require.Equal(t, 0.0, m["errCode"])
			require.Equal(t, tokens+1, r.sbx.Calls("token"))

			// errcode -1 once: success within the same invocation.
			before := r.sbx.Calls("http:" + quota)
			r.sbx.Inject(sandbox.Fault{Path: quota, Kind: sandbox.FaultStatus, Status: 200, Body: `{"errcode":-1,"errmsg":"system error rid: x"}`, Times: 1})
			m = r.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)
			require.Equal(t, 0.0, m["errCode"])
			require.Equal(t, before+2, r.sbx.Calls("http:"+quota))

			// Bad inputs: clear errors, nothing sent upstream.
			before = r.sbx.Calls("http:" + quota)
			tokens = r.sbx.Calls("token")
			for body, want := range map[string]string{
				`{"deliveryId":"YTO"}`:              "bizId: required",
				`{"deliveryId":"YTO","bizId":true}`: "bizId: expected a string, got bool",
				`{}`:                                "deliveryId: required",
				`"YTO"`:                             "must be a JSON object, got a string",
			} {
				m = r.invoke(t, body)
				require.Equal(t, -1001.0, m["errCode"], body)
				require.Contains(t, m["errMsg"], want, body)
			}
			require.Equal(t, before, r.sbx.Calls("http:"+quota))
			require.Equal(t, tokens, r.sbx.Calls("token"))

			// An HTTP trigger event of this platform: 200, and 400 for a bad body.
			ok := httpEvent(p, `{"deliveryId":"YTO","bizId":"xyz"}`)
			m = r.invoke(t, ok)
			require.Equal(t, 200.0, m["statusCode"])
			require.JSONEq(t, `{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":210}`, m["body"].(string))
			m = r.invoke(t, httpEvent(p, `{"deliveryId":`))
			require.Equal(t, 400.0, m["statusCode"])
			require.Contains(t, m["body"], `"errCode":-1001`)

			// Neither the secret nor any access token (the sandbox's start
			// with "sbx_") in logs or answers.
			require.Greater(t, r.sbx.Calls("token"), 0)
			require.Contains(t, r.logs.String(), `"invocation"`, "the logs were captured")
			require.NotContains(t, r.logs.String(), wechatsbx.DemoSecret)
			require.NotContains(t, r.logs.String(), "sbx_")
			require.NotContains(t, r.answers, wechatsbx.DemoSecret)
			require.NotContains(t, r.answers, "sbx_")
		})
	}
}

func httpEvent(p runtimeapi.Platform, body string) string {
	var ev map[string]any
	if p == runtimeapi.FC {
		ev = map[string]any{"version": "v1", "rawPath": "/logistics-get-quota", "body": body, "isBase64Encoded": false,
			"headers":        map[string]string{"Content-Type": "application/json"},
			"requestContext": map[string]any{"requestId": "r1", "http": map[string]string{"method": "POST", "path": "/logistics-get-quota", "sourceIp": "127.0.0.1"}}}
	} else {
		ev = map[string]any{"version": "2.0", "routeKey": "$default", "rawPath": "/logistics-get-quota", "rawQueryString": "", "body": body, "isBase64Encoded": false,
			"headers":        map[string]string{"content-type": "application/json"},
			"requestContext": map[string]any{"requestId": "r1", "http": map[string]string{"method": "POST", "path": "/logistics-get-quota", "sourceIp": "127.0.0.1"}}}
	}
	b, _ := json.Marshal(ev)
	return string(b)
}

func TestFiftyConcurrentColdInvocationsFetchOneToken(t *testing.T) {
	for _, p := range platforms() {
		t.Run(string(p), func(t *testing.T) {
			r := start(t, p, nil)
			var wg sync.WaitGroup
			codes := make([]any, 50)
			for i := range codes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := r.inst.Invoke(context.Background(), runtimeapi.Invocation{Payload: []byte(`{"deliveryId":"YTO","bizId":"xyz"}`), Timeout: 20 * time.Second})
					if err == nil {
						var m map[string]any
						_ = json.Unmarshal(res.Body, &m)
						codes[i] = m["errCode"]
					}
				}()
			}
			wg.Wait()
			for _, c := range codes {
				require.Equal(t, 0.0, c)
			}
			require.Equal(t, 1, r.sbx.Calls("token"))
			require.Equal(t, 50, r.sbx.Calls("quota"))
			if p == runtimeapi.FC {
				require.Greater(t, r.inst.API.Polls(), 1, "the FC SDK keeps several next polls open")
			}
		})
	}
}

func TestWrongSecret(t *testing.T) {
	const secret = "definitely-wrong-secret-42"
	for _, p := range platforms() {
		t.Run(string(p), func(t *testing.T) {
			r := start(t, p, map[string]string{"WECHAT_APPSECRET": secret})
			m := r.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)
			require.Equal(t, 40125.0, m["errCode"])
			require.True(t, strings.HasPrefix(m["errMsg"].(string), "openapi.logistics.getQuota:fail invalid appsecret"), m["errMsg"])
			require.Contains(t, m["errMsg"], "check WECHAT_APPSECRET")
			require.Equal(t, 1, r.sbx.Calls("token"), "no retry loop on a configuration error")
			// The next invocations answer the same without asking WeChat again.
			for i := 0; i < 3; i++ {
				require.Equal(t, 40125.0, r.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)["errCode"])
			}
			require.Equal(t, 1, r.sbx.Calls("token"))
			require.Equal(t, 0, r.sbx.Calls("quota"))
			require.NotContains(t, r.answers, secret)
			require.NotContains(t, r.logs.String(), secret)
		})
	}
}

func TestMissingConfiguration(t *testing.T) {
	r := start(t, runtimeapi.FC, map[string]string{"WECHAT_APPSECRET": ""})
	m := r.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)
	require.Equal(t, -1601.0, m["errCode"])
	require.True(t, strings.HasPrefix(m["errMsg"].(string), "openapi.logistics.getQuota:fail configuration: "), m["errMsg"])
	require.Contains(t, m["errMsg"], "WECHAT_APPSECRET")
	require.Equal(t, 0, r.sbx.Calls("token"))
}

// A new instance gets its stable token while the platform delivers the first
// call, and the call uses it: one fetch in all, made before any invocation.
// In classic mode a fetch invalidates the token before it and counts against
// about 2,000 a day, so an instance fetches only for a call that needs it.
func TestTheStableTokenIsFetchedAtColdStart(t *testing.T) {
	for _, p := range platforms() {
		t.Run(string(p), func(t *testing.T) {
			r := start(t, p, nil)
			require.Eventually(t, func() bool { return r.sbx.Calls("token") == 1 }, 5*time.Second, 5*time.Millisecond,
				"the warm-up fetches the token before any invocation")
			require.Equal(t, 0, r.sbx.Calls("quota"))
			require.Equal(t, 0.0, r.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)["errCode"])
			require.Equal(t, 1, r.sbx.Calls("token"), "the first call used the warm-up's token")
			require.Equal(t, 1, r.sbx.Calls("quota"))
		})
	}
	t.Run("classic", func(t *testing.T) {
		r := start(t, runtimeapi.FC, map[string]string{"WECHAT_TOKEN_MODE": "classic"})
		// The instance is ready once it polls; its warm-up (the schema) ran
		// alongside. Half a second later it has still asked WeChat nothing.
		require.Eventually(t, func() bool { return r.inst.API.Polls() > 0 }, 5*time.Second, 5*time.Millisecond)
		time.Sleep(500 * time.Millisecond)
		require.Equal(t, 0, r.sbx.Calls("http:/cgi-bin/token"))
		require.Equal(t, 0.0, r.invoke(t, `{"deliveryId":"YTO","bizId":"xyz"}`)["errCode"])
		require.Equal(t, 1, r.sbx.Calls("http:/cgi-bin/token"))
	})
}
