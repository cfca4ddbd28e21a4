package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/cloudcall/cloudcall/shared/syncbuf"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/notify"
	"github.com/cloudcall/cloudcall/shared/quotaalert"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
)

type answer struct {
	ErrCode int    `json:"errCode"`
	ErrMsg  string `json:"errMsg"`
	quotaalert.Summary
}

type hookEvent struct {
	Event      string `json:"event"`
	DeliveryID string `json:"deliveryId"`
	BizID      string `json:"bizId"`
}

type rig struct {
	sbx *wechatsbx.Server
	h   *runtime.Handler
	mu  sync.Mutex
	got []hookEvent
}

func (r *rig) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []string{}
	for _, e := range r.got {
		out = append(out, e.Event+" "+e.DeliveryID+"/"+e.BizID)
	}
	sort.Strings(out)
	r.got = nil
	return out
}

func newRig(t *testing.T, env map[string]string, faults ...sandbox.Fault) *rig {
	t.Helper()
	r := &rig{sbx: wechatsbx.New(wechatsbx.Options{})}
	for _, f := range faults {
		r.sbx.Inject(f) // before the instance starts
	}
	wx := httptest.NewServer(r.sbx.Handler())
	t.Cleanup(wx.Close)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var e hookEvent
		if json.Unmarshal(b, &e) == nil {
			r.mu.Lock()
			r.got = append(r.got, e)
			r.mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)
	vars := r.sbx.Env(wx.URL)
	vars["QUOTA_ALERT_WEBHOOK_URL"] = hook.URL
	vars["QUOTA_ALERT_WEBHOOK_SECRET"] = "hook-secret"
	for k, v := range env {
		vars[k] = v
	}
	h, err := runtime.New(context.Background(), config.FromMap(vars), slog.New(slog.DiscardHandler), factory)
	require.NoError(t, err)
	r.h = h
	return r
}

func (r *rig) invoke(t *testing.T, payload string) answer {
	t.Helper()
	var a answer
	out := r.h.Invoke(context.Background(), []byte(payload), runtime.Meta{RequestID: "r1"})
	require.NoError(t, json.Unmarshal(out, &a), string(out))
	return a
}

// timerEvents are the three scheduled shapes, built from the registry's
// schedule (the one source the descriptors render), plus "run now".
func timerEvents(t *testing.T) map[string]string {
	f, ok := registry.Lookup("quota-alert")
	require.True(t, ok)
	require.NotNil(t, f.Schedule)
	require.Equal(t, "0 * * * *", f.Schedule.Cron)
	require.Equal(t, "Asia/Shanghai", f.Schedule.TimeZone)
	p := f.Schedule.Payload
	ps, _ := json.Marshal(p)
	return map[string]string{
		"fc-timer":    fmt.Sprintf(`{"triggerTime":"2026-03-01T08:00:00Z","triggerName":%q,"payload":%s}`, f.Schedule.Name, ps),
		"eventbridge": fmt.Sprintf(`{"version":"0","id":"e1","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-03-01T08:00:00Z","region":"ap-east-1","resources":["arn:aws:events:ap-east-1:123456789012:rule/%s"],"detail":%s}`, f.Schedule.Name, p),
		"schedule-v2": fmt.Sprintf(`{"source":"cloudcall.schedule","schedule":%q,"payload":%s}`, f.Schedule.Name, p),
		"run-now":     `{}`,
	}
}

func TestAutoDiscoveryAgainstWeChatSandbox(t *testing.T) {
	r := newRig(t, map[string]string{"QUOTA_ALERT_WATCH": "auto", "QUOTA_ALERT_THRESHOLD": "100"})
	a := r.invoke(t, timerEvents(t)["fc-timer"])
	require.Equal(t, 0, a.ErrCode, a.ErrMsg)
	require.Equal(t, "cloudcall.quotaAlert:ok", a.ErrMsg)
	// SF (can_get_quota=0) is bound but skipped: four accounts, four queries.
	require.Equal(t, 4, a.Checked)
	require.Equal(t, 4, r.sbx.Calls("quota"))
	require.Equal(t, 1, r.sbx.Calls("delivery/getall"))
	require.Equal(t, 1, r.sbx.Calls("account/getall"))
	got := map[string]string{}
	for _, acct := range a.Accounts {
		got[acct.DeliveryID+"/"+acct.BizID] = acct.Level
	}
	require.Equal(t, map[string]string{"YTO/xyz": "ok", "ZTO/zero-balance": "empty", "YUNDA/yunda-01": "low", "YTO/wrong-password": "error"}, got)
	require.Equal(t, map[string]int{"ok": 1, "empty": 1, "low": 1, "error": 1}, a.Levels)
	require.Equal(t, 3, a.NotificationsSent)
	require.Len(t, a.Failures, 1)
	require.Contains(t, a.Failures[0], "YTO wrong-password")
	require.Contains(t, a.Failures[0], "9300531")
	require.Equal(t, []string{"empty ZTO/zero-balance", "error YTO/wrong-password", "low YUNDA/yunda-01"}, r.events())

	// The next hour: nothing changed, so nothing is said again.
	a = r.invoke(t, timerEvents(t)["eventbridge"])
	require.Equal(t, 0, a.ErrCode, a.ErrMsg)
	require.Equal(t, 0, a.NotificationsSent)
	require.Empty(t, r.events())
	require.Equal(t, 8, r.sbx.Calls("quota"))

	// A top-up is announced once.
	r.sbx.SetQuota("YUNDA", "yunda-01", 5000)
	a = r.invoke(t, `{}`)
	require.Equal(t, 1, a.NotificationsSent)
	require.Equal(t, []string{"recovered YUNDA/yunda-01"}, r.events())
}

func TestEveryTimerShapeRuns(t *testing.T) {
	for name, ev := range timerEvents(t) {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, map[string]string{"QUOTA_ALERT_WATCH": `[{"deliveryId":"YUNDA","bizId":"yunda-01","threshold":100,"name":"east"}]`})
			a := r.invoke(t, ev)
			require.Equal(t, 0, a.ErrCode, a.ErrMsg)
			require.Equal(t, 1, a.Checked)
			require.Equal(t, "low", a.Accounts[0].Level)
			require.Equal(t, int64(55), *a.Accounts[0].Balance)
			require.Equal(t, []string{"low YUNDA/yunda-01"}, r.events())
			require.Equal(t, 0, r.sbx.Calls("account/getall"), "an explicit list does not discover")
		})
	}
}

func TestCallerCannotSteer(t *testing.T) {
	r := newRig(t, nil)
	a := r.invoke(t, `{"webhookUrl":"http://attacker.example/"}`)
	require.Equal(t, -1001, a.ErrCode)
	require.Contains(t, a.ErrMsg, "webhookUrl")
	require.Equal(t, 0, r.sbx.Calls("quota"))
	require.Empty(t, r.events())
}

func TestBadConfigurationIsNamed(t *testing.T) {
	for env, want := range map[string]map[string]string{
		"QUOTA_ALERT_WATCH":     {"QUOTA_ALERT_WATCH": `[{"deliveryId":"YTO"}]`},
		"QUOTA_ALERT_LANG":      {"QUOTA_ALERT_LANG": "fr"},
		"QUOTA_ALERT_THRESHOLD": {"QUOTA_ALERT_THRESHOLD": "-5"},
		"QUOTA_ALERT_COOLDOWN":  {"QUOTA_ALERT_COOLDOWN": "soon"},
		"QUOTA_ALERT_HORIZON":   {"QUOTA_ALERT_HORIZON": "tomorrow"},
		"QUOTA_ALERT_SLACK_URL": {"QUOTA_ALERT_SLACK_URL": "notaurl-s3cret"},
		"QUOTA_ALERT_WECOM_URL": {"QUOTA_ALERT_WECOM_URL": "ftp://qyapi.weixin.qq.com/x"},
		// Half a channel (a secret with no URL) was left out without a word.
		"QUOTA_ALERT_DINGTALK_SECRET": {"QUOTA_ALERT_DINGTALK_SECRET": "SECabc"},
		// A URL and a _FILE both set: the file was ignored without a word.
		"QUOTA_ALERT_WEBHOOK_URL_FILE": {"QUOTA_ALERT_WEBHOOK_URL_FILE": "/nonexistent"},
	} {
		r := newRig(t, want)
		a := r.invoke(t, `{}`)
		require.NotEqual(t, 0, a.ErrCode, env)
		require.Contains(t, a.ErrMsg, env)
		require.NotContains(t, a.ErrMsg, "s3cret", "a channel URL is a secret")
		require.Equal(t, 0, r.sbx.Calls("quota"), env)
	}
}

// A setting out of range is echoed as written: QUOTA_ALERT_COOLDOWN=-1h
// came back as "-1h0m0s" (an outside tester).
func TestANegativeDurationIsEchoedAsWritten(t *testing.T) {
	a := newRig(t, map[string]string{"QUOTA_ALERT_COOLDOWN": "-1h"}).invoke(t, `{}`)
	require.Equal(t, -1601, a.ErrCode)
	require.Contains(t, a.ErrMsg, `QUOTA_ALERT_COOLDOWN="-1h": expected a positive duration such as 6h`)
	// The horizon too (a second outside tester).
	for _, v := range []string{"-1h", "0", "0s", "-0s"} { // zero too: docs/vendors.md says positive (a re-tester)
		a = newRig(t, map[string]string{"QUOTA_ALERT_HORIZON": v}).invoke(t, `{}`)
		require.Equal(t, -1601, a.ErrCode, v)
		require.Contains(t, a.ErrMsg, `QUOTA_ALERT_HORIZON="`+v+`": expected a positive duration such as 24h, or off`)
	}
}

// A QUOTA_ALERT_ name the function does not read was ignored without a
// word: a mistyped channel URL sent its alerts nowhere, and a _FILE of a
// setting that is no secret was never read. Each is -1601, named, with the
// name meant when one is close, before WeChat is asked anything.
func TestUnreadSettingsAreNamed(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"QUOTA_ALERT_DINGTALK_UR": "https://oapi.dingtalk.com/robot/send?access_token=s3cret"},
			[]string{`QUOTA_ALERT_DINGTALK_UR (did you mean "QUOTA_ALERT_DINGTALK_URL"?)`}},
		{map[string]string{"quota_alert_threshold": "5"}, []string{`quota_alert_threshold (did you mean "QUOTA_ALERT_THRESHOLD"?)`}},
		{map[string]string{"QUOTA_ALERT_WATCH_FILE": "/etc/watch.json", "QUOTA_ALERT_TELEGRAM_URL": "https://t.me/s3cret"},
			[]string{`QUOTA_ALERT_TELEGRAM_URL, QUOTA_ALERT_WATCH_FILE (QUOTA_ALERT_WATCH is no secret and is read only as itself): not a setting`}},
	} {
		r := newRig(t, c.env)
		a := r.invoke(t, `{}`)
		require.Equal(t, -1601, a.ErrCode, a.ErrMsg)
		for _, w := range c.want {
			require.Contains(t, a.ErrMsg, w)
		}
		require.Contains(t, a.ErrMsg, "not a setting quota-alert reads")
		require.NotContains(t, a.ErrMsg, "s3cret", "only names are shown")
		require.Equal(t, 0, r.sbx.Calls("quota"))
	}
	// Every setting the registry lists is read, and so is a secret's _FILE.
	r := newRig(t, map[string]string{"QUOTA_ALERT_LANG": "en", "QUOTA_ALERT_THRESHOLD": "5"})
	require.Equal(t, 0, r.invoke(t, `{}`).ErrCode)
	require.NoError(t, unread(config.FromMap(map[string]string{"QUOTA_ALERT_SLACK_URL_FILE": "/run/secrets/slack", "QUOTA_ALERT_FEISHU_SECRET_FILE": "/x"})))
}

// Values that parsed but meant nothing: a cooldown of 0 or less silently
// became 6h, and a negative horizon silently turned the forecast off.
func TestMeaninglessDurationsAreNamed(t *testing.T) {
	for _, env := range []map[string]string{
		{"QUOTA_ALERT_COOLDOWN": "0s"}, {"QUOTA_ALERT_COOLDOWN": "-10s"}, {"QUOTA_ALERT_HORIZON": "-24h"},
	} {
		r := newRig(t, env)
		a := r.invoke(t, `{}`)
		require.Equal(t, -1601, a.ErrCode, "%v: %s", env, a.ErrMsg)
		for k := range env {
			require.Contains(t, a.ErrMsg, k)
		}
		require.Equal(t, 0, r.sbx.Calls("quota"))
	}
}

// With the deployed default store (memory), every cold start alerted again
// with nothing said; the start now says so, and a Redis store does not.
func TestMemoryStateIsAnnounced(t *testing.T) {
	for store, warned := range map[string]bool{"": true, "memory": true, "redis://127.0.0.1:1/0": false} {
		vars := wechatsbx.New(wechatsbx.Options{}).Env("http://127.0.0.1:1")
		if store != "" {
			vars["CLOUDCALL_STORE"] = store
		}
		log := &lockedBuffer{} // the warm-up's token fetch logs from its goroutine
		_, err := runtime.New(context.Background(), config.FromMap(vars), slog.New(slog.NewJSONHandler(log, nil)), factory)
		require.NoError(t, err)
		require.Equal(t, warned, strings.Contains(log.String(), "alert state is in this instance's memory"), "CLOUDCALL_STORE=%q: %s", store, log.String())
	}
}

// A CLOUDCALL_STORE the runtime refuses (-1601) is no memory store: the
// start said "alert state is in this instance's memory" of a value it then
// refused (an outside tester).
func TestARefusedStoreIsNotAnnouncedAsMemory(t *testing.T) {
	for _, store := range []string{" ", " memory", "memory "} {
		vars := wechatsbx.New(wechatsbx.Options{}).Env("http://127.0.0.1:1")
		vars["CLOUDCALL_STORE"] = store
		log := &lockedBuffer{}
		h, err := runtime.New(context.Background(), config.FromMap(vars), slog.New(slog.NewJSONHandler(log, nil)), factory)
		require.NoError(t, err)
		require.NotContains(t, log.String(), "alert state is in this instance's memory", "CLOUDCALL_STORE=%q", store)
		out := h.Invoke(context.Background(), []byte(`{}`), runtime.Meta{RequestID: "r"})
		require.Contains(t, string(out), `"errCode":-1601`, "CLOUDCALL_STORE=%q", store)
	}
}

// The outside tester's three timer shapes, against the function itself:
// its refusal says what it expected and where thresholds belong.
func TestATimerPayloadWithAFieldIsConfiguration(t *testing.T) {
	r := newRig(t, map[string]string{"QUOTA_ALERT_WATCH": "auto"})
	for name, ev := range map[string]string{
		"fc-timer":    `{"triggerTime":"2026-03-01T08:00:00Z","triggerName":"t","payload":"{\"threshold\":100}"}`,
		"schedule-v2": `{"source":"cloudcall.schedule","schedule":"quota-alert-hourly","payload":{"threshold":100}}`,
		"eventbridge": `{"version":"0","id":"e1","detail-type":"Scheduled Event","source":"aws.events","account":"1","time":"2026-03-01T08:00:00Z","region":"ap-east-1","resources":[],"detail":{"a":1}}`,
	} {
		a := r.invoke(t, ev)
		require.Equal(t, -1601, a.ErrCode, "%s: %s", name, a.ErrMsg)
		require.Contains(t, a.ErrMsg, "takes no input fields", name)
		require.Contains(t, a.ErrMsg, "QUOTA_ALERT_THRESHOLD", name)
		require.Contains(t, a.ErrMsg, "QUOTA_ALERT_WATCH", name)
	}
	require.Equal(t, 0, r.sbx.Calls("quota"))
	require.Equal(t, -1001, r.invoke(t, `{"x":1}`).ErrCode)
}

// "off", the table's default, is a value a user may write.
func TestHorizonOffIsAValue(t *testing.T) {
	for _, v := range []string{"off", "OFF", "24h"} {
		a := newRig(t, map[string]string{"QUOTA_ALERT_HORIZON": v}).invoke(t, `{}`)
		require.Equal(t, 0, a.ErrCode, "%s: %s", v, a.ErrMsg)
	}
}

// TestDiscoveryTakesNumbersAsWeChatSpellsThem: WeChat's numbers are
// JavaScript's; one account's quota_num of 210.5 in getAllAccount failed
// the whole list and left a zero balance unchecked. Discovery reads only
// what it uses, and can_get_quota in any whole spelling.
func TestDiscoveryTakesNumbersAsWeChatSpellsThem(t *testing.T) {
	r := newRig(t, map[string]string{"QUOTA_ALERT_WATCH": "auto", "QUOTA_ALERT_THRESHOLD": "100"})
	r.sbx.Inject(sandbox.Fault{Path: "/cgi-bin/express/business/delivery/getall", Kind: sandbox.FaultStatus, Status: 200, Times: 1,
		Body: `{"errcode":0,"data":[{"delivery_id":"YTO","can_get_quota":1.0,"can_use_cash":0.5},{"delivery_id":"ZTO","can_get_quota":1e0},` +
			`{"delivery_id":"SF","can_get_quota":null},{"delivery_id":"EMS","can_get_quota":"1"},{"delivery_id":"YUNDA","can_get_quota":1.5}]}`})
	r.sbx.Inject(sandbox.Fault{Path: "/cgi-bin/express/business/account/getall", Kind: sandbox.FaultStatus, Status: 200, Times: 1,
		Body: `{"errcode":0,"list":[{"biz_id":"xyz","delivery_id":"YTO","status_code":0.0,"quota_num":210.5,"quota_update_time":1.5e9},` +
			`{"biz_id":"zero-balance","delivery_id":"ZTO","status_code":0,"quota_num":"n/a"}]}`})
	a := r.invoke(t, `{}`)
	require.Equal(t, 0, a.ErrCode, a.ErrMsg)
	require.Equal(t, 2, a.Checked)
	got := map[string]string{}
	for _, acct := range a.Accounts {
		got[acct.DeliveryID+"/"+acct.BizID] = acct.Level
	}
	require.Equal(t, map[string]string{"YTO/xyz": "ok", "ZTO/zero-balance": "empty"}, got, "each balance read with getQuota")
}

// A channel URL carries its token: plain http to another host sent it in
// clear (an outside tester's Slack and WeCom webhooks). Refused at start,
// naming the variable and never quoting it, unless
// CLOUDCALL_ALLOW_PLAINTEXT_UPSTREAM lets a test receiver elsewhere through.
func TestAChannelURLInClearToAnotherHostIsRefused(t *testing.T) {
	for _, u := range []string{"http://hooks.example.com/services/T0/B0/s3cret", "https://user:s3cret@hooks.example.com/x", "HTTP://hooks.example.com/s3cret"} {
		r := newRig(t, map[string]string{"QUOTA_ALERT_SLACK_URL": u})
		a := r.invoke(t, `{}`)
		require.Equal(t, -1601, a.ErrCode, u)
		require.Contains(t, a.ErrMsg, "QUOTA_ALERT_SLACK_URL", u)
		require.NotContains(t, a.ErrMsg, "s3cret", "a channel URL is a secret")
		require.Equal(t, 0, r.sbx.Calls("quota"), u)
	}
	chs, err := channels(config.FromMap(map[string]string{"QUOTA_ALERT_WECOM_URL": "http://10.0.0.7:9100/cgi-bin/webhook/send?key=k",
		"CLOUDCALL_ALLOW_PLAINTEXT_UPSTREAM": "true"}), notify.Options{})
	require.NoError(t, err)
	require.Len(t, chs, 1)
	chs, err = channels(config.FromMap(map[string]string{"QUOTA_ALERT_WECOM_URL": "http://127.0.0.1:9100/cgi-bin/webhook/send?key=k"}), notify.Options{})
	require.NoError(t, err, "this machine: no network between")
	require.Len(t, chs, 1)
}

// A run needs the token first: a new instance fetches it (stable mode)
// before the timer's invocation, and the run uses it.
func TestTheTokenIsFetchedBeforeTheFirstRun(t *testing.T) {
	r := newRig(t, map[string]string{"QUOTA_ALERT_WATCH": "auto"})
	require.Eventually(t, func() bool { return r.sbx.Calls("token") == 1 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, 0, r.sbx.Calls("account/getall"))
	a := r.invoke(t, timerEvents(t)["fc-timer"])
	require.Equal(t, 0, a.ErrCode, a.ErrMsg)
	require.Equal(t, 1, r.sbx.Calls("token"))
	require.Equal(t, 1, r.sbx.Calls("account/getall"))
}

// A token endpoint that fails once, at the instance's start, is not the
// run's: the timer's run asks again and checks every account, instead of
// reporting the accounts unlistable on every channel (an outside tester).
func TestAFailedStartFetchIsNotTheRuns(t *testing.T) {
	r := newRig(t, map[string]string{"QUOTA_ALERT_WATCH": "auto"},
		sandbox.Fault{Path: "/cgi-bin/stable_token", Kind: sandbox.FaultLatency, Delay: 200 * time.Millisecond, Times: 1},
		sandbox.Fault{Path: "/cgi-bin/stable_token", Kind: sandbox.FaultStatus, Status: 503, Body: "busy", Times: 1})
	require.Eventually(t, func() bool { return r.sbx.Calls("http:/cgi-bin/stable_token") == 1 }, 5*time.Second, time.Millisecond)
	a := r.invoke(t, timerEvents(t)["fc-timer"]) // while the start's fetch is out
	require.Equal(t, 0, a.ErrCode, a.ErrMsg)
	require.Equal(t, 4, a.Checked)
	require.Len(t, a.Failures, 1, "the sandbox's wrong-password account only")
	require.Contains(t, a.Failures[0], "YTO wrong-password")
	require.Equal(t, 2, r.sbx.Calls("http:/cgi-bin/stable_token"))
}

// lockedBuffer is a log writer the instance's goroutines share with the test.
type lockedBuffer = syncbuf.Buffer

// A token error's failure carried WeChat's errcode but not the hint the
// envelope gives (a tester: 40125 said nothing of WECHAT_APPSECRET).
func TestATokenErrorCarriesTheEnvelopesHint(t *testing.T) {
	// The rid WeChat appends varies; everything else is exact.
	const hint = ` \(WeChat refused the AppSecret: check WECHAT_APPSECRET\)$`
	const tokenErr = `wechat token endpoint: errcode 40125: invalid appsecret rid: [0-9a-f-]+`
	r := newRig(t, map[string]string{"WECHAT_APPSECRET": "wrong-secret",
		"QUOTA_ALERT_WATCH": `[{"deliveryId":"YUNDA","bizId":"yunda-01","threshold":100}]`})
	a := r.invoke(t, `{}`)
	require.Equal(t, 0, a.ErrCode, a.ErrMsg)
	require.Len(t, a.Failures, 1)
	require.Regexp(t, `^YUNDA yunda-01: `+tokenErr+hint, a.Failures[0])
	require.Regexp(t, `^`+tokenErr+hint, a.Accounts[0].Error)

	r = newRig(t, map[string]string{"WECHAT_APPSECRET": "wrong-secret", "QUOTA_ALERT_WATCH": "auto"})
	a = r.invoke(t, `{}`)
	require.Len(t, a.Failures, 1)
	require.Regexp(t, `^discover accounts: getAllDelivery: `+tokenErr+hint, a.Failures[0])
}

// A Redis store that comes back empty is said to the channels (event
// reset), with the account's level, so the recovery it hid reaches them; it
// is not a failure, or every new deployment's first run would be one.
func TestAnEmptiedRedisIsSaid(t *testing.T) {
	mr := miniredis.RunT(t)
	r := newRig(t, map[string]string{"CLOUDCALL_STORE": "redis://" + mr.Addr() + "/0",
		"QUOTA_ALERT_WATCH": `[{"deliveryId":"YUNDA","bizId":"yunda-01","threshold":100}]`})
	a := r.invoke(t, `{}`)
	require.Empty(t, a.Failures)
	require.Equal(t, []string{"low YUNDA/yunda-01", "reset /"}, r.events())
	a = r.invoke(t, `{}`)
	require.Empty(t, a.Failures)
	require.Empty(t, r.events())

	mr.FlushAll()
	r.sbx.SetQuota("YUNDA", "yunda-01", 5000)
	a = r.invoke(t, `{}`)
	require.Empty(t, a.Failures)
	require.Equal(t, 1, a.NotificationsSent)
	require.Equal(t, []string{"reset /"}, r.events())
}
