package top_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/top"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Every documented code lands on the envelope code a caller branches on.
// A throttle always carries a wait (-1201 promises retryAfter): the ban's
// length when TOP states it, else 1 s, as from the other vendors.
func TestEnvelopeErrorMapping(t *testing.T) {
	cases := []struct {
		name       string
		e          top.ErrorResponse
		code       int
		retryAfter int
		reason     string
	}{
		{"4 user limit", top.ErrorResponse{Code: 4, Msg: "User Call Limited"}, envelope.CodeThrottled, 1, "throttled by TOP"},
		{"5 session limit", top.ErrorResponse{Code: 5, Msg: "Session Call Limited"}, envelope.CodeThrottled, 1, "throttled by TOP"},
		{"6 partner limit", top.ErrorResponse{Code: 6, Msg: "Partner Call Limited"}, envelope.CodeThrottled, 1, "throttled by TOP"},
		{"7 ban in sub_msg", top.ErrorResponse{Code: 7, Msg: "App Call Limited", SubCode: "accesscontrol.limited-by-app-access-count", SubMsg: "This ban will last for 42 more seconds"}, envelope.CodeThrottled, 42, "This ban will last for 42 more seconds"},
		{"7 ban in msg", top.ErrorResponse{Code: 7, Msg: "App Call Limited[This ban will last for 22238 more seconds]"}, envelope.CodeThrottled, 22238, "throttled by TOP"},
		{"8 frequency", top.ErrorResponse{Code: 8, Msg: "App Call Exceeds Limited Frequency"}, envelope.CodeThrottled, 1, "throttled by TOP"},
		{"9 http action", top.ErrorResponse{Code: 9, Msg: "Http Action Not Allowed"}, envelope.CodeUpstream, 0, "9 Http Action Not Allowed"},
		{"10 unavailable", top.ErrorResponse{Code: 10, Msg: "Service Currently Unavailable"}, envelope.CodeOutcomeUnknown, 0, "reconcile before retrying"},
		{"11 permission", top.ErrorResponse{Code: 11, Msg: "Insufficient ISV Permissions"}, envelope.CodeUpstream, 0, "apply for it in the TOP console"},
		{"15 isp", top.ErrorResponse{Code: 15, Msg: "Remote service error", SubCode: "isp.top-remote-connection-timeout"}, envelope.CodeOutcomeUnknown, 0, "outcome unknown — reconcile before retrying"},
		{"15 isv", top.ErrorResponse{Code: 15, Msg: "Remote service error", SubCode: "isv.invalid-parameter", SubMsg: "非法参数"}, envelope.CodeUpstream, 0, "isv.invalid-parameter 非法参数"},
		{"15 no sub-code", top.ErrorResponse{Code: 15, Msg: "Remote service error"}, envelope.CodeOutcomeUnknown, 0, "reconcile before retrying"},
		{"25 signature", top.ErrorResponse{Code: 25, Msg: "Invalid signature"}, envelope.CodeUpstream, 0, "check TOP_APP_SECRET and TOP_SIGN_METHOD"},
		{"26 missing session", top.ErrorResponse{Code: 26, Msg: "Missing Session"}, envelope.CodeUpstream, 0, "26 Missing Session"},
		{"27 session", top.ErrorResponse{Code: 27, Msg: "Invalid session", SubCode: "invalid-sessionkey", SubMsg: "SessionKey非法"}, envelope.CodeUpstream, 0, "authorize the app again"},
		{"29 app key", top.ErrorResponse{Code: 29, Msg: "Invalid App Key"}, envelope.CodeUpstream, 0, "check TOP_APP_KEY"},
		{"31 timestamp", top.ErrorResponse{Code: 31, Msg: "Invalid Timestamp"}, envelope.CodeUpstream, 0, "check the host clock"},
		{"40 missing argument", top.ErrorResponse{Code: 40, Msg: "Missing Required Arguments", SubCode: "isv.missing-parameter:oms_launch_extra_charge_parameter"}, envelope.CodeUpstream, 0, "a required argument is missing"},
		{"41 invalid argument", top.ErrorResponse{Code: 41, Msg: "Invalid Arguments", SubCode: "isv.invalid-parameter:price"}, envelope.CodeUpstream, 0, "TOP refused an argument"},
		{"50 isv business", top.ErrorResponse{Code: 50, Msg: "Remote service error", SubCode: "isv.invalid-parameter"}, envelope.CodeUpstream, 0, "50 Remote service error"},
		{"undocumented code", top.ErrorResponse{Code: 99, Msg: "Something"}, envelope.CodeOutcomeUnknown, 0, "reconcile before retrying"},
		{"isp on a gateway code", top.ErrorResponse{Code: 41, Msg: "x", SubCode: "isp.unknown-error"}, envelope.CodeOutcomeUnknown, 0, "reconcile before retrying"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := c.e
			e.RequestID = "rid-1"
			got := top.EnvelopeError(&e)
			require.Equal(t, c.code, got.Code)
			require.Equal(t, c.retryAfter, got.RetryAfter)
			require.Contains(t, got.Reason, c.reason)
			require.Equal(t, "rid-1", got.Upstream.RequestID)
			require.Equal(t, e.SubCode, got.Upstream.SubCode)
			var er *top.ErrorResponse
			require.True(t, errors.As(got, &er), "the TOP error stays reachable with errors.As")
			require.Equal(t, c.e.Code, er.Code)
		})
	}
}

// failFirstDial refuses the first connection before anything is written, the
// way a refused connection or a DNS failure does, then behaves normally.
type failFirstDial struct {
	next   http.RoundTripper
	failed atomic.Bool
}

func (f *failFirstDial) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.failed.CompareAndSwap(false, true) {
		return nil, &netOpError{}
	}
	return f.next.RoundTrip(r)
}

type netOpError struct{}

func (*netOpError) Error() string   { return "dial tcp: connect: connection refused" }
func (*netOpError) Unwrap() error   { return syscall.ECONNREFUSED }
func (*netOpError) Timeout() bool   { return false }
func (*netOpError) Temporary() bool { return false }

// A request that never left is safe to send again with the same key; one that
// left and got no readable answer is outcome unknown, for every repeat.
func TestTransportOutcomes(t *testing.T) {
	t.Run("refused before sending: released, the repeat charges once", func(t *testing.T) {
		sbx := topsbx.New(topsbx.Options{})
		srv := httptest.NewServer(sbx.Handler())
		defer srv.Close()
		hc := &http.Client{Transport: &failFirstDial{next: srv.Client().Transport}}
		op, err := top.FactoryWith(idempotency.NewMemory(nil))(context.Background(), runtime.Deps{Env: config.FromMap(sbx.Env(srv.URL)), Store: store.NewMemory(store.MemoryOptions{}), HTTP: hc})
		require.NoError(t, err)
		r := &rig{sbx: sbx, op: op}
		st, m := r.call(t, charge("BFC-R", 100, "refused"), nil)
		require.Equal(t, 502, st, m)
		require.Equal(t, -1302.0, m["errCode"])
		require.Empty(t, sbx.Charges("BFC-R"))
		require.Equal(t, 0, sbx.Calls("http:/router/rest"))
		_, m = r.call(t, charge("BFC-R", 100, "refused"), nil)
		require.Equal(t, 0.0, m["errCode"], m)
		require.Len(t, sbx.Charges("BFC-R"), 1)
	})

	for _, c := range []struct {
		name  string
		fault sandbox.Fault
	}{
		{"connection reset after the request was written", sandbox.Fault{Kind: sandbox.FaultReset}},
		{"unreadable answer", sandbox.Fault{Kind: sandbox.FaultMalformed}},
		{"gateway 502", sandbox.Fault{Kind: sandbox.FaultStatus, Status: 502, Body: "<html>Bad Gateway</html>"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, nil)
			f := c.fault
			f.Path, f.Times = "/router/rest", 1
			r.sbx.Inject(f)
			st, m := r.call(t, charge("BFC-U", 100, "u1"), nil)
			require.Equal(t, 504, st, m)
			require.Equal(t, -1304.0, m["errCode"])
			require.Contains(t, m["errMsg"], "outcome unknown — reconcile before retrying")
			_, again := r.call(t, charge("BFC-U", 100, "u1"), nil)
			require.Equal(t, m, again, "the repeat gets the same outcome-unknown answer")
			require.Equal(t, 1, r.sbx.Calls("http:/router/rest"), "never sent twice")
		})
	}

	t.Run("deadline passes after sending", func(t *testing.T) {
		r := newRig(t, nil)
		r.sbx.Inject(sandbox.Fault{Path: "/router/rest", Kind: sandbox.FaultHang, Delay: time.Second, Times: 1})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		resp := r.op.Invoke(ctx, &envelope.Input{Body: []byte(charge("BFC-T", 100, "t1"))})
		var m map[string]any
		require.NoError(t, json.Unmarshal(resp.Body, &m))
		require.Equal(t, -1304.0, m["errCode"], m)
		_, again := r.call(t, charge("BFC-T", 100, "t1"), nil)
		require.Equal(t, -1304.0, again["errCode"])
		require.Equal(t, 1, r.sbx.Calls("http:/router/rest"))
	})
}

// A function without its configuration says which variables to set.
func TestFactoryConfiguration(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"nothing set", map[string]string{}, []string{"TOP_APP_KEY", "TOP_APP_SECRET"}},
		{"no secret", map[string]string{"TOP_APP_KEY": "1"}, []string{"TOP_APP_SECRET"}},
		{"bad sign method", map[string]string{"TOP_APP_KEY": "1", "TOP_APP_SECRET": "s", "TOP_SIGN_METHOD": "sha1"}, []string{"TOP_SIGN_METHOD", "md5, hmac or hmac-sha256"}},
		{"bad cap", map[string]string{"TOP_APP_KEY": "1", "TOP_APP_SECRET": "s", "TOP_MAX_PRICE_FEN": "ten"}, []string{"TOP_MAX_PRICE_FEN"}},
		{"floor above the cap", map[string]string{"TOP_APP_KEY": "1", "TOP_APP_SECRET": "s", "TOP_MIN_PRICE_FEN": "500", "TOP_MAX_PRICE_FEN": "100"}, []string{"TOP_MIN_PRICE_FEN=500 is above TOP_MAX_PRICE_FEN=100"}},
		// The app secret and session would cross the network in clear.
		{"plain http to TOP", map[string]string{"TOP_APP_KEY": "1", "TOP_APP_SECRET": "s", "TOP_GATEWAY_URL": "http://gw.api.taobao.com/router/rest"},
			[]string{`TOP_GATEWAY_URL="http://gw.api.taobao.com/router/rest": plain http to another host`, "CLOUDCALL_ALLOW_PLAINTEXT_UPSTREAM=true"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := runtime.New(context.Background(), config.FromMap(c.env), slog.New(slog.DiscardHandler), top.Factory)
			require.NoError(t, err)
			out := h.Invoke(context.Background(), []byte(charge("BFC1", 100, "k")), runtime.Meta{RequestID: "r"})
			var m map[string]any
			require.NoError(t, json.Unmarshal(out, &m), string(out))
			require.Equal(t, -1601.0, m["errCode"])
			for _, w := range c.want {
				require.Contains(t, m["errMsg"], w)
			}
		})
	}

}

func TestPriceCapFromEnv(t *testing.T) {
	r := newRig(t, map[string]string{"TOP_MAX_PRICE_FEN": "500"})
	st, m := r.call(t, charge("BFC1", 501, "cap"), nil)
	require.Equal(t, 400, st)
	require.Contains(t, m["errMsg"], "omsLaunchExtraChargeParameter.price: 501 fen is over the safety cap of 500 fen")
	require.Equal(t, "omsLaunchExtraChargeParameter.price", m["field"])
	require.Equal(t, "cap", m["idempotencyKey"], "a refusal echoes the key the request gave")
	// The header's key too, when the body refused by the schema gave none.
	st, m = r.call(t, `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC1","price":100,"type":9}}`, map[string]string{"Idempotency-Key": "hk-1"})
	require.Equal(t, 400, st)
	require.Equal(t, "omsLaunchExtraChargeParameter.type", m["field"])
	require.Equal(t, "hk-1", m["idempotencyKey"])
	_, m = r.call(t, `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC1","price":100,"type":9}}`, nil)
	require.NotContains(t, m, "idempotencyKey", "no key given, none echoed")
	// The body's key, when the schema refused the body before any of it
	// was decoded (the Node and Go clients send the key in the body).
	st, m = r.call(t, `{"idempotencyKey":"bk-1","omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC1","price":"100","type":1}}`, nil)
	require.Equal(t, 400, st)
	require.Equal(t, "omsLaunchExtraChargeParameter.price", m["field"])
	require.Equal(t, "bk-1", m["idempotencyKey"])
	// A header and a body that disagree: neither is the key, none echoed.
	_, m = r.call(t, `{"idempotencyKey":"bk-2","omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC1","price":100,"type":9}}`, map[string]string{"Idempotency-Key": "hk-2"})
	require.NotContains(t, m, "idempotencyKey")
	// A key refused itself is not in force: it is not echoed as if it were.
	for _, bad := range []string{strings.Repeat("k", 129), "a b", "ключ"} {
		body, _ := json.Marshal(map[string]any{"idempotencyKey": bad, "omsLaunchExtraChargeParameter": map[string]any{"wdsCoordinationOrderId": "BFC1", "price": 100, "type": 1}})
		st, m = r.call(t, string(body), nil)
		require.Equal(t, 400, st)
		require.Equal(t, "idempotencyKey", m["field"], bad)
		require.NotContains(t, m, "idempotencyKey", bad)
	}
	_, m = r.call(t, charge("BFC1", 500, "cap2"), nil)
	require.Equal(t, 0.0, m["errCode"], m)
	require.Equal(t, int64(500), r.sbx.Charges("BFC1")[0].Price)
	require.Equal(t, 1, r.sbx.Calls("http:/router/rest"))
}

// The exact form TOP receives for the vendor-notes request vector: every
// system parameter, the object parameter as the signed JSON string, the sign.
func TestRequestGolden(t *testing.T) {
	var body []byte
	var ctype string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		ctype = r.Header.Get("Content-Type")
		_, _ = w.Write([]byte(`{"alibaba_ascp_industry_launch_extra_charge_response":{"result":{"success":true,"data":{"extra_charge_service_order_id":"ECS1","feature":"{\"test\":\"xx\"}"}},"request_id":"rid"}}`))
	}))
	defer srv.Close()
	c, err := top.NewClient(top.Options{AppKey: "12345678", Secret: "helloworld", Session: "test", SignMethod: "md5", Gateway: srv.URL,
		Now: func() time.Time { return time.Date(2016, 1, 1, 4, 0, 0, 0, time.UTC) }})
	require.NoError(t, err)
	param := `{"wds_coordination_order_id":"BFC123","price":12345,"type":1,"desc":"1","feature":"{\"test\":\"xx\"}"}`
	r := c.Do(context.Background(), top.MethodLaunchExtra, "", map[string]string{"oms_launch_extra_charge_parameter": param})
	require.Equal(t, top.Answered, r.Outcome)
	require.JSONEq(t, `{"result":{"success":true,"data":{"extra_charge_service_order_id":"ECS1","feature":"{\"test\":\"xx\"}"}},"request_id":"rid"}`, string(r.Body))
	require.Equal(t, "application/x-www-form-urlencoded;charset=utf-8", ctype)
	golden := filepath.Join("testdata", "launch_extra_charge_request.golden")
	if *update {
		require.NoError(t, os.WriteFile(golden, body, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), string(body))
}

// The object parameter is sent exactly as encoded by the function: field
// order, no HTML escaping, feature double-encoded.
func TestParamEncodingThroughTheFunction(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		got = r.PostForm.Get("oms_launch_extra_charge_parameter")
		_, _ = w.Write([]byte(`{"x_response":{"result":{"success":true,"data":{"extra_charge_service_order_id":"ECS1"}},"request_id":"rid"}}`))
	}))
	defer srv.Close()
	env := map[string]string{"TOP_APP_KEY": "1", "TOP_APP_SECRET": "s", "TOP_SESSION": "x", "TOP_GATEWAY_URL": srv.URL}
	op, err := top.FactoryWith(idempotency.NewMemory(nil))(context.Background(), runtime.Deps{Env: config.FromMap(env), Store: store.NewMemory(store.MemoryOptions{}), HTTP: srv.Client()})
	require.NoError(t, err)
	body := `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC123","price":12345,"type":1,"desc":"a<b>&c","feature":"{\"test\":\"xx\"}"}}`
	resp := op.Invoke(context.Background(), &envelope.Input{Body: []byte(body)})
	require.Contains(t, string(resp.Body), `"errCode":0`)
	require.Equal(t, `{"wds_coordination_order_id":"BFC123","price":12345,"type":1,"desc":"a<b>&c","feature":"{\"test\":\"xx\"}"}`, got)

	// Absent fields are left out, as the Java SDK skips null fields; an
	// empty string is a value, and is sent.
	for in, want := range map[string]string{
		`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC124","price":1,"type":1}}`:                        `{"wds_coordination_order_id":"BFC124","price":1,"type":1}`,
		`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC125","price":1,"type":1,"desc":"","feature":""}}`: `{"wds_coordination_order_id":"BFC125","price":1,"type":1,"desc":"","feature":""}`,
	} {
		resp := op.Invoke(context.Background(), &envelope.Input{Body: []byte(in)})
		require.Contains(t, string(resp.Body), `"errCode":0`)
		require.Equal(t, want, got)
	}
}

// In HTTP-server mode, where no platform sets a deadline, the charge waits
// 15 s for TOP unless CLOUDCALL_TIMEOUT says otherwise, as the registry
// documents (it had been the runtime's 10 s).
func TestTheChargesDefaultDeadlineIs15s(t *testing.T) {
	sbx := topsbx.New(topsbx.Options{})
	for _, tc := range []struct {
		set  string
		want time.Duration
	}{{"", 15 * time.Second}, {"4s", 4 * time.Second}} {
		env := sbx.Env("http://127.0.0.1:1")
		if tc.set != "" {
			env["CLOUDCALL_TIMEOUT"] = tc.set
		}
		e := config.FromMap(env)
		h, err := runtime.New(context.Background(), e, slog.New(slog.DiscardHandler), top.FactoryWith(idempotency.NewMemory(nil)))
		require.NoError(t, err)
		require.Equal(t, tc.want, h.Timeout, "CLOUDCALL_TIMEOUT=%q", tc.set)
	}
}

// result.success false with neither code nor message read "TOP refused the
// charge:  " (outside tester).
func TestARefusalWithoutCodeSaysSo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"x_response":{"result":{"success":false},"request_id":"rid"}}`))
	}))
	defer srv.Close()
	env := map[string]string{"TOP_APP_KEY": "1", "TOP_APP_SECRET": "s", "TOP_SESSION": "x", "TOP_GATEWAY_URL": srv.URL}
	op, err := top.FactoryWith(idempotency.NewMemory(nil))(context.Background(), runtime.Deps{Env: config.FromMap(env), Store: store.NewMemory(store.MemoryOptions{}), HTTP: srv.Client()})
	require.NoError(t, err)
	resp := op.Invoke(context.Background(), &envelope.Input{Body: []byte(`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC9","price":1,"type":1}}`)})
	var m map[string]any
	require.NoError(t, json.Unmarshal(resp.Body, &m))
	require.Equal(t, -1305.0, m["errCode"], m)
	require.Equal(t, "top.ascp.launchExtraCharge:fail TOP refused the charge: result.success false, without an error_code or error_message", m["errMsg"])
}

// A keyless repeat of a keyed charge that is still running answered with its
// own "auto:" key: the key to reconcile is the keyed call's (outside
// tester).
func TestAKeylessRepeatNamesTheKeyedCallsKey(t *testing.T) {
	r := newRig(t, nil)
	r.sbx.Inject(sandbox.Fault{Path: "/router/rest", Kind: sandbox.FaultLatency, Delay: time.Second, Times: 1})
	done := make(chan map[string]any, 1)
	go func() {
		_, m := r.call(t, charge("BFC-AK", 100, "keyed-1"), nil)
		done <- m
	}()
	require.Eventually(t, func() bool { return r.sbx.Calls("http:/router/rest") == 1 }, 5*time.Second, 5*time.Millisecond)
	b, _ := json.Marshal(map[string]any{"omsLaunchExtraChargeParameter": map[string]any{"wdsCoordinationOrderId": "BFC-AK", "price": 100, "type": 2, "desc": "二次上门", "feature": `{"visit":"2"}`}})
	st, m := r.call(t, string(b), nil)
	require.Equal(t, 409, st, m)
	require.Equal(t, "keyed-1", m["idempotencyKey"], "the running charge's key")
	first := <-done
	require.Equal(t, 0.0, first["errCode"], first)
	require.Len(t, r.sbx.Charges("BFC-AK"), 1)
}

// CLOUDCALL_UNKNOWN_FIELDS names the unknown-field policy: refuse by default
// (a misspelled optional field is said), ignore to skip such members as the
// vendors' own binders do; the fields the charge takes are checked either
// way, and a value it does not know is -1601 naming it.
func TestTheUnknownFieldPolicy(t *testing.T) {
	sbx := topsbx.New(topsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	body := `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-U","price":100,"type":2,"remark":"x"},"idempotencyKey":"u-1","channel":"app"}`
	invoke := func(policy, body string) map[string]any {
		env := sbx.Env(srv.URL)
		if policy != "" {
			env["CLOUDCALL_UNKNOWN_FIELDS"] = policy
		}
		e := config.FromMap(env)
		h, err := runtime.New(context.Background(), e, slog.New(slog.DiscardHandler), top.FactoryWith(idempotency.NewMemory(nil)))
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), []byte(body), runtime.Meta{RequestID: "r"}), &m))
		return m
	}
	m := invoke("", body)
	require.Equal(t, -1001.0, m["errCode"], m)
	require.Equal(t, "channel", m["field"])
	require.Zero(t, sbx.Calls("http:/router/rest"), "nothing reached TOP")

	m = invoke("ignore", body)
	require.Equal(t, 0.0, m["errCode"], m)
	require.Equal(t, 1, sbx.Calls("http:/router/rest"))
	m = invoke("ignore", `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-U","price":100,"type":9,"remark":"x"}}`)
	require.Equal(t, "omsLaunchExtraChargeParameter.type", m["field"], "the fields it takes are still checked")

	m = invoke("lenient", body)
	require.Equal(t, -1601.0, m["errCode"], m)
	require.Contains(t, m["errMsg"], `CLOUDCALL_UNKNOWN_FIELDS="lenient": expected refuse or ignore`)
	require.Equal(t, 1, sbx.Calls("http:/router/rest"))
}

// CLOUDCALL_NULL_FIELDS names the null policy: refuse by default (no vendor
// document says null), absent to read a null member as not sent, as the
// vendors' binders do. Under absent a null desc is the same request as no
// desc: the same key replays, one charge.
func TestTheNullFieldPolicy(t *testing.T) {
	sbx := topsbx.New(topsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	recs := idempotency.NewMemory(nil)
	invoke := func(policy, body string) map[string]any {
		env := sbx.Env(srv.URL)
		if policy != "" {
			env["CLOUDCALL_NULL_FIELDS"] = policy
		}
		h, err := runtime.New(context.Background(), config.FromMap(env), slog.New(slog.DiscardHandler), top.FactoryWith(recs))
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), []byte(body), runtime.Meta{RequestID: "r"}), &m))
		return m
	}
	withNulls := `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-N","price":100,"type":2,"desc":null,"feature":null},"session":null,"idempotencyKey":"n-1"}`
	m := invoke("", withNulls)
	require.Equal(t, -1001.0, m["errCode"], m)
	require.Contains(t, m["errMsg"], "got null")
	require.Zero(t, sbx.Calls("http:/router/rest"), "nothing reached TOP")

	m = invoke("absent", withNulls)
	require.Equal(t, 0.0, m["errCode"], m)
	again := invoke("absent", `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-N","price":100,"type":2},"idempotencyKey":"n-1"}`)
	require.Equal(t, 0.0, again["errCode"], again)
	require.Equal(t, m["result"], again["result"], "the same request: replayed")
	require.Len(t, sbx.Charges("BFC-N"), 1)

	m = invoke("absent", `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-N","price":null,"type":2},"idempotencyKey":"n-2"}`)
	require.Equal(t, "omsLaunchExtraChargeParameter.price", m["field"], "a required field that is null is required")
	require.Contains(t, m["errMsg"], "required")

	m = invoke("null", withNulls)
	require.Equal(t, -1601.0, m["errCode"], m)
	require.Contains(t, m["errMsg"], `CLOUDCALL_NULL_FIELDS="null": expected refuse or absent`)
	require.Len(t, sbx.Charges("BFC-N"), 1)
}
