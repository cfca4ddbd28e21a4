package e2e

import (
	"context"
	"encoding/json"
	"github.com/cloudcall/cloudcall/shared/syncbuf"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/alicloud"
	"github.com/cloudcall/cloudcall/shared/callerauth"
	"github.com/cloudcall/cloudcall/shared/ck1"
	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox/camssbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/ck1sbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
	"github.com/cloudcall/cloudcall/shared/top"
	"github.com/cloudcall/cloudcall/shared/wechat"
)

// distinct gives every secret variable a value that cannot occur by chance.
func distinct(name string) string {
	return "LEAK-" + strings.ReplaceAll(name, "_", "-") + "-7c1e5d9a0b"
}

// syncBuf is a log sink the function's goroutines write while the test reads.
type syncBuf = syncbuf.Buffer

// leakRig runs one function in-process with its logs captured.
type leakRig struct {
	h    *runtime.Handler
	logs *syncBuf
	out  []string
}

func newLeakRig(t *testing.T, env map[string]string, f runtime.Factory) *leakRig {
	t.Helper()
	logs := &syncBuf{}
	e := config.FromMap(env)
	h, err := runtime.New(context.Background(), e, runtime.NewLogger(logs, e), f)
	require.NoError(t, err)
	return &leakRig{h: h, logs: logs}
}

func (r *leakRig) invoke(payload string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.out = append(r.out, string(r.h.Invoke(ctx, []byte(payload), runtime.Meta{RequestID: "leak"})))
}

// signedEvent is an FC HTTP trigger event signed with the caller key.
func signedEvent(t *testing.T, path, body, secret string) string {
	auth := callerauth.Header("backend", secret, "POST", path, "", time.Now().Unix(), callerauth.NewNonce(), []byte(body))
	ev := map[string]any{"version": "v1", "rawPath": path, "body": body, "isBase64Encoded": false,
		"headers":        map[string]string{"Authorization": auth, "Content-Type": "application/json"},
		"requestContext": map[string]any{"requestId": "r", "http": map[string]string{"method": "POST", "path": path}}}
	b, _ := json.Marshal(ev)
	return string(b)
}

var issuedTokens = regexp.MustCompile(`sbx_[0-9a-f]{16}|ck1at_[0-9a-f]{8}|ck1rt_[0-9a-f]{8}`)

// TestNoSecretInLogsOrResponses sets every Secret variable of every function
// in the registry to a distinctive value, drives each function through
// success and failure, and looks for those values — and for the tokens the
// sandboxes issued — in everything the functions logged and answered.
func TestNoSecretInLogsOrResponses(t *testing.T) {
	secrets := map[string]string{}
	for _, f := range registry.All() {
		for _, v := range f.Env {
			if v.Secret {
				secrets[v.Name] = distinct(v.Name)
			}
		}
	}
	secrets["CLOUDCALL_CALLER_KEYS"] = "backend:" + distinct("CALLER")
	callerSecret := distinct("CALLER")
	// An unreachable Redis with a password in its URL: the outage is logged.
	secrets["CLOUDCALL_STORE"] = "redis://:" + distinct("REDIS-PASSWORD") + "@127.0.0.1:1/0"
	// An unreachable money store with a password in its URL: the charge refuses.
	secrets["CLOUDCALL_IDEMPOTENCY_STORE"] = "postgres://cloudcall:" + distinct("PG-PASSWORD") + "@127.0.0.1:1/money?connect_timeout=1"
	// credentials-go reads the process environment itself.
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", camssbx.DemoAccessKeyID)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secrets["ALIBABA_CLOUD_ACCESS_KEY_SECRET"])
	t.Setenv("ALIBABA_CLOUD_SECURITY_TOKEN", secrets["ALIBABA_CLOUD_SECURITY_TOKEN"])

	var rigs []*leakRig
	with := func(extra map[string]string) map[string]string {
		env := map[string]string{}
		for k, v := range secrets {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}

	// WeChat: the sandbox knows the distinctive AppSecret (success), then a
	// second sandbox does not (failure).
	for _, known := range []bool{true, false} {
		apps := map[string]string{wechatsbx.DemoAppID: secrets["WECHAT_APPSECRET"]}
		if !known {
			apps[wechatsbx.DemoAppID] = "something-else-entirely"
		}
		sbx := wechatsbx.New(wechatsbx.Options{Apps: apps})
		srv := httptest.NewServer(sbx.Handler())
		defer srv.Close()
		r := newLeakRig(t, with(map[string]string{"WECHAT_APPID": wechatsbx.DemoAppID, "WECHAT_API_BASE": srv.URL}), wechat.GetQuotaFactory)
		r.invoke(`{"deliveryId":"YTO","bizId":"xyz"}`)
		r.invoke(`{"deliveryId":"YTO","bizId":"wrong-password"}`)
		r.invoke(signedEvent(t, "/logistics-get-quota", `{"deliveryId":"YTO","bizId":"xyz"}`, callerSecret))
		r.invoke(signedEvent(t, "/logistics-get-quota", `{"deliveryId":"YTO","bizId":"xyz"}`, "not-the-caller-secret-000"))
		if known {
			require.Contains(t, r.out[0], `"quotaNum":210`, "the success path ran")
			require.Contains(t, r.out[2], `\"quotaNum\":210`, "the signed HTTP call ran")
		} else {
			require.Contains(t, r.out[0], `"errCode":40125`)
		}
		rigs = append(rigs, r)

		// quota-alert on the same sandbox, notifying a local receiver whose
		// URL carries a token.
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if known {
				_, _ = w.Write([]byte(`{"errcode":0,"errmsg":"ok"}`))
				return
			}
			w.WriteHeader(http.StatusInternalServerError)
		}))
		defer recv.Close()
		// quota-alert's factory lives in its main package: run the binary.
		env := with(map[string]string{"WECHAT_APPID": wechatsbx.DemoAppID, "WECHAT_API_BASE": srv.URL,
			"QUOTA_ALERT_WATCH":        "auto",
			"QUOTA_ALERT_DINGTALK_URL": recv.URL + "/robot/send?access_token=" + secrets["QUOTA_ALERT_DINGTALK_URL"],
			"QUOTA_ALERT_WEBHOOK_URL":  recv.URL + "/hook/" + secrets["QUOTA_ALERT_WEBHOOK_URL"],
			"QUOTA_ALERT_WECOM_URL":    recv.URL + "/wecom?key=" + secrets["QUOTA_ALERT_WECOM_URL"],
			"QUOTA_ALERT_FEISHU_URL":   recv.URL + "/feishu/" + secrets["QUOTA_ALERT_FEISHU_URL"],
			"QUOTA_ALERT_SLACK_URL":    recv.URL + "/slack/" + secrets["QUOTA_ALERT_SLACK_URL"],
		})
		logs := &syncBuf{}
		inst, err := emulator.StartInstance(emulator.InstanceConfig{Binary: bins["quota-alert"], Platform: runtimeapi.FC, Env: env, Stdout: logs, Stderr: logs})
		require.NoError(t, err)
		res, err := inst.Invoke(context.Background(), runtimeapi.Invocation{Payload: []byte(`{"triggerTime":"2026-11-23T00:00:00Z","triggerName":"t","payload":"{}"}`), Timeout: 20 * time.Second})
		inst.Stop()
		require.NoError(t, err)
		if known {
			require.Contains(t, string(res.Body), `"notificationsSent"`, string(res.Body))
		}
		rigs = append(rigs, &leakRig{logs: logs, out: []string{string(res.Body)}})
	}

	// TOP: the distinctive secret and session are the sandbox's, then not.
	for _, known := range []bool{true, false} {
		opts := topsbx.Options{Apps: map[string]string{topsbx.DemoAppKey: secrets["TOP_APP_SECRET"]}, Sessions: []string{secrets["TOP_SESSION"]}}
		if !known {
			opts = topsbx.Options{}
		}
		sbx := topsbx.New(opts)
		srv := httptest.NewServer(sbx.Handler())
		defer srv.Close()
		r := newLeakRig(t, with(map[string]string{"TOP_APP_KEY": topsbx.DemoAppKey, "TOP_GATEWAY_URL": srv.URL + "/router/rest"}), top.Factory)
		r.invoke(`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC1","price":100,"type":1},"idempotencyKey":"leak-1"}`)
		r.invoke(`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-ERR-27","price":100,"type":1},"session":"` + secrets["TOP_SESSION"] + `x"}`)
		require.Contains(t, r.out[0], `"errCode":-1501`, "without Redis the charge refuses: the store's failure path")
		rigs = append(rigs, r)
		// Records in an embedded Redis, as under `cloudcall local`.
		mr := miniredis.RunT(t)
		rm := newLeakRig(t, with(map[string]string{"TOP_APP_KEY": topsbx.DemoAppKey, "TOP_GATEWAY_URL": srv.URL + "/router/rest", "CLOUDCALL_STORE": "memory",
			"CLOUDCALL_IDEMPOTENCY_STORE": "redis://" + mr.Addr() + "/0", "CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE": "assume"}), top.Factory)
		rm.invoke(`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC1","price":100,"type":1},"idempotencyKey":"leak-2"}`)
		if known {
			require.Contains(t, rm.out[0], `"errCode":0`, rm.out[0])
		} else {
			require.Contains(t, rm.out[0], `"code":"25"`, rm.out[0])
		}
		rigs = append(rigs, rm)
	}

	// CK1 with OAuth (sandbox knows the distinctive client secret and
	// refresh token), then with a fixed token it does not know.
	{
		sbx := ck1sbx.New(ck1sbx.Options{ClientSecret: secrets["CK1_CLIENT_SECRET"], RefreshToken: secrets["CK1_REFRESH_TOKEN"]})
		srv := httptest.NewServer(sbx.Handler())
		defer srv.Close()
		// A spent refresh token must be shareable, so OAuth refuses to refresh
		// without a reachable store: run this one on memory.
		env := with(map[string]string{"CK1_API_BASE": srv.URL, "CK1_CLIENT_ID": ck1sbx.DemoClientID, "CLOUDCALL_STORE": "memory", "CK1_ALLOW_MEMORY_STORE": "true"})
		delete(env, "CK1_ACCESS_TOKEN")
		r := newLeakRig(t, env, ck1.Factory)
		r.invoke(`{"warehouseId":"US","boxes":[{"weight":1200,"length":30,"width":20,"height":15,"quantity":2}]}`)
		r.invoke(`{"warehouseId":"NOPE","boxes":[{"weight":1,"length":1,"width":1,"height":1,"quantity":1}]}`)
		require.Contains(t, r.out[0], `"errCode":0`, r.out[0])
		rigs = append(rigs, r)
		r2 := newLeakRig(t, with(map[string]string{"CK1_API_BASE": srv.URL}), ck1.Factory)
		r2.invoke(`{"warehouseId":"US","boxes":[{"weight":1200,"length":30,"width":20,"height":15,"quantity":2}]}`)
		require.Contains(t, r2.out[0], `"httpStatus":401`)
		rigs = append(rigs, r2)
	}

	// CAMS: the sandbox knows the distinctive AccessKey secret, then not.
	for _, known := range []bool{true, false} {
		opts := camssbx.Options{AccessKeySecret: secrets["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]}
		if !known {
			opts = camssbx.Options{}
		}
		sbx := camssbx.New(opts)
		srv := httptest.NewServer(sbx.Handler())
		defer srv.Close()
		r := newLeakRig(t, with(map[string]string{"CAMS_API_BASE": srv.URL}), alicloud.CAMSFactory)
		r.invoke(`{"custSpaceId":"293483"}`)
		r.invoke(`{"custSpaceId":"no-permission"}`)
		if known {
			require.Contains(t, r.out[0], `"errCode":0`, r.out[0])
		} else {
			require.Contains(t, r.out[0], "SignatureDoesNotMatch")
		}
		rigs = append(rigs, r)
	}

	for _, r := range rigs {
		seen := r.logs.String() + strings.Join(r.out, "\n")
		require.NotEmpty(t, r.logs.String())
		for name, v := range secrets {
			bare := v
			if name == "CLOUDCALL_CALLER_KEYS" {
				bare = callerSecret
			}
			if name == "CLOUDCALL_STORE" {
				bare = distinct("REDIS-PASSWORD")
			}
			if name == "CLOUDCALL_IDEMPOTENCY_STORE" {
				bare = distinct("PG-PASSWORD")
			}
			require.NotContains(t, seen, bare, "%s leaked", name)
		}
		require.Empty(t, issuedTokens.FindAllString(seen, -1), "an issued token leaked")
	}
}
