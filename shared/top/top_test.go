package top_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
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

func officialParams(method string) map[string]string {
	return map[string]string{"method": "taobao.item.seller.get", "app_key": "12345678", "session": "test",
		"timestamp": "2016-01-01 12:00:00", "format": "json", "v": "2.0", "sign_method": method,
		"fields": "num_iid,title,nick,price,num", "num_iid": "11223344"}
}

func TestSignVectors(t *testing.T) {
	for method, want := range map[string]string{
		"md5":         "66987CB115214E59E6EC978214934FB8", // official
		"hmac":        "D56D7858309C31B6251083A874D48273",
		"hmac-sha256": "04DB15AD0774D5CFCE2C837DE43E3FCEA9011ED74F3038FB6AB5F3C4CEA119E8",
	} {
		got, err := top.Sign("helloworld", officialParams(method))
		require.NoError(t, err)
		require.Equal(t, want, got, method)
	}
	// RFC 2202 / 4231 case 1 through TOP's concatenation ("Hi" + " There").
	hm, err := top.SignWith("hmac", strings.Repeat("\x0b", 16), map[string]string{"Hi": " There"})
	require.NoError(t, err)
	require.Equal(t, "9294727A3638BB1C13F48EF8158BFC9D", hm)
	hs, err := top.SignWith("hmac-sha256", strings.Repeat("\x0b", 20), map[string]string{"Hi": " There"})
	require.NoError(t, err)
	require.Equal(t, "B0344C61D8DB38535CA8AFCEAF0BF12B881DC200C9833DA726E9376C2E32CFF7", hs)
}

func TestLaunchExtraChargeRequestVector(t *testing.T) {
	param := `{"wds_coordination_order_id":"BFC123","price":12345,"type":1,"desc":"1","feature":"{\"test\":\"xx\"}"}`
	for method, want := range map[string]string{
		"md5":         "4557A506539B2DD55360C8B7AAFCC54C",
		"hmac":        "D4FCD9774E64346AF338A6AA65FB9B76",
		"hmac-sha256": "E03B7B5F8A70EABEFDAED53D917EF3324DE2E8FF8642CF289D33B1EA69E7658B",
	} {
		c, err := top.NewClient(top.Options{AppKey: "12345678", Secret: "helloworld", Session: "test", SignMethod: method,
			Now: func() time.Time { return time.Date(2016, 1, 1, 4, 0, 0, 0, time.UTC) }})
		require.NoError(t, err)
		p, err := c.Params(top.MethodLaunchExtra, "", map[string]string{"oms_launch_extra_charge_parameter": param})
		require.NoError(t, err)
		require.Equal(t, "2016-01-01 12:00:00", p["timestamp"], "04:00 UTC is 12:00 in GMT+8")
		require.Equal(t, want, p["sign"], method)
	}
}

type rig struct {
	sbx *topsbx.Server
	op  envelope.Op
	kv  store.Store
}

func newRig(t *testing.T, env map[string]string) *rig {
	t.Helper()
	sbx := topsbx.New(topsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	t.Cleanup(srv.Close)
	vars := sbx.Env(srv.URL)
	for k, v := range env {
		vars[k] = v
	}
	kv := store.NewMemory(store.MemoryOptions{})
	op, err := top.FactoryWith(idempotency.NewMemory(nil))(context.Background(), runtime.Deps{Env: config.FromMap(vars), Store: kv, HTTP: srv.Client()})
	require.NoError(t, err)
	return &rig{sbx: sbx, op: op, kv: kv}
}

func (r *rig) call(t *testing.T, body string, hdr map[string]string) (int, map[string]any) {
	t.Helper()
	in := &envelope.Input{Body: []byte(body), Trigger: envelope.TriggerDirect}
	if hdr != nil {
		in.Header = map[string][]string{}
		for k, v := range hdr {
			in.Header.Set(k, v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp := r.op.Invoke(ctx, in)
	var m map[string]any
	require.NoError(t, json.Unmarshal(resp.Body, &m), string(resp.Body))
	return resp.Status, m
}

func charge(order string, price any, key string) string {
	b, _ := json.Marshal(map[string]any{"omsLaunchExtraChargeParameter": map[string]any{"wdsCoordinationOrderId": order, "price": price, "type": 2, "desc": "二次上门", "feature": `{"visit":"2"}`}, "idempotencyKey": key})
	return string(b)
}

func TestChargeOnceAndReplay(t *testing.T) {
	for _, method := range []string{"md5", "hmac", "hmac-sha256"} {
		t.Run(method, func(t *testing.T) {
			r := newRig(t, map[string]string{"TOP_SIGN_METHOD": method})
			st, first := r.call(t, charge("BFC123", 12345, "k1"), nil)
			require.Equal(t, 200, st, first)
			require.Equal(t, 0.0, first["errCode"])
			require.Equal(t, "top.ascp.launchExtraCharge:ok", first["errMsg"])
			res := first["result"].(map[string]any)
			require.Equal(t, true, res["success"])
			require.NotEmpty(t, res["data"].(map[string]any)["extraChargeServiceOrderId"])
			require.Equal(t, `{"visit":"2"}`, res["data"].(map[string]any)["feature"])
			require.NotEmpty(t, first["requestId"])

			require.Equal(t, "k1", first["idempotencyKey"], "the key in force is echoed")
			_, second := r.call(t, charge("BFC123", 12345, "k1"), nil)
			require.Equal(t, first, second, "the repeat answers the first result")
			require.Len(t, r.sbx.Charges("BFC123"), 1, "one charge")
			require.Equal(t, 1, r.sbx.Calls("http:/router/rest"), "the repeat never reached TOP")
		})
	}
}

func TestHeaderKeyAndHashKey(t *testing.T) {
	r := newRig(t, nil)
	body := charge("BFC9", 500, "")
	r.call(t, body, map[string]string{"Idempotency-Key": "hdr-1"})
	r.call(t, body, map[string]string{"Idempotency-Key": "hdr-1"})
	require.Len(t, r.sbx.Charges("BFC9"), 1)
	// Without any key, the hash of the canonical request is the key, and the
	// answer says which key that is.
	_, a := r.call(t, charge("BFC10", 500, ""), nil)
	_, b := r.call(t, charge("BFC10", 500, ""), nil)
	require.Len(t, r.sbx.Charges("BFC10"), 1)
	require.Regexp(t, `^auto:[0-9a-f]{64}$`, a["idempotencyKey"])
	require.Equal(t, a, b)
	// The key an answer gave repeats its request, in the body or the header.
	auto := a["idempotencyKey"].(string)
	_, c := r.call(t, charge("BFC10", 500, auto), nil)
	require.Equal(t, a, c)
	_, c = r.call(t, charge("BFC10", 500, ""), map[string]string{"Idempotency-Key": auto})
	require.Equal(t, a, c)
	require.Len(t, r.sbx.Charges("BFC10"), 1)
	// It names that request's slot: another request under it read as that
	// one, and after a loss and a restore its retry heard "use a new key"
	// and the new key charged again (an outside re-tester).
	for _, other := range []string{auto, "auto:" + strings.Repeat("ab", 32)} {
		st, m := r.call(t, charge("BFC11", 500, other), nil)
		require.Equal(t, 400, st, m)
		require.Equal(t, -1001.0, m["errCode"])
		require.Equal(t, "idempotencyKey", m["field"])
		require.Contains(t, m["errMsg"], "idempotencyKey: auto: and 64 hex digits name the keyless slot of one request, and this request is another")
		require.NotContains(t, m, "idempotencyKey", "a key refused is no key in force")
	}
	require.Empty(t, r.sbx.Charges("BFC11"))
	// A key of the caller's own that only starts with auto: is a key.
	_, m := r.call(t, charge("BFC11", 500, "auto:mx"), nil)
	require.Equal(t, 0.0, m["errCode"], m)
	require.Equal(t, "auto:mx", m["idempotencyKey"])
	// The same key for another request is a conflict, not a charge; the
	// refusal names the key too.
	st, m := r.call(t, charge("BFC10", 600, "hdr-1"), nil)
	require.Equal(t, 409, st)
	require.Equal(t, -1401.0, m["errCode"])
	require.Contains(t, m["errMsg"], "different request")
	require.Equal(t, "hdr-1", m["idempotencyKey"])
	// A refusal recorded as the charge's final answer echoes it as well.
	_, refused := r.call(t, charge(topsbx.OrderRefused, 500, "refused-1"), nil)
	require.Equal(t, -1305.0, refused["errCode"], refused)
	require.Equal(t, "refused-1", refused["idempotencyKey"])
}

func TestTwentyConcurrentIdenticalRequests(t *testing.T) {
	r := newRig(t, nil)
	r.sbx.Inject(sandbox.Fault{Path: "/router/rest", Kind: sandbox.FaultLatency, Delay: 100 * time.Millisecond, Times: 1})
	var wg sync.WaitGroup
	codes := make([]float64, 20)
	ids := make([]any, 20)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, m := r.call(t, charge("BFC777", 999, "same"), nil)
			codes[i] = m["errCode"].(float64)
			if res, ok := m["result"].(map[string]any); ok {
				ids[i] = res["data"].(map[string]any)["extraChargeServiceOrderId"]
			}
		}()
	}
	wg.Wait()
	require.Len(t, r.sbx.Charges("BFC777"), 1, "one charge")
	okCount := 0
	for i, c := range codes {
		require.Contains(t, []float64{0, -1401}, c)
		if c == 0 {
			okCount++
			require.Equal(t, r.sbx.Charges("BFC777")[0].ID, ids[i], "every success is the first result")
		}
	}
	require.GreaterOrEqual(t, okCount, 1)
}

func TestChargeRecordedResponseLost(t *testing.T) {
	r := newRig(t, nil)
	r.sbx.Inject(sandbox.Fault{Path: "/router/rest", Kind: sandbox.FaultDropAfter, Times: 1})
	st, m := r.call(t, charge("BFC555", 100, "lost-1"), nil)
	require.Equal(t, 504, st)
	require.Equal(t, -1304.0, m["errCode"])
	require.Contains(t, m["errMsg"], "outcome unknown — reconcile before retrying")
	require.Len(t, r.sbx.Charges("BFC555"), 1, "the charge happened")

	_, again := r.call(t, charge("BFC555", 100, "lost-1"), nil)
	require.Equal(t, -1304.0, again["errCode"], "the repeat is told the same, not charged again")
	require.Len(t, r.sbx.Charges("BFC555"), 1)
	require.Equal(t, 1, r.sbx.Calls("http:/router/rest"))
}

func TestErrorCodes(t *testing.T) {
	cases := []struct {
		name, order string
		env         map[string]string
		status      int
		errCode     float64
		code, sub   string
		retryAfter  float64
		releasesKey bool
	}{
		{"7 throttled", topsbx.OrderThrottled, nil, 429, -1201, "7", "accesscontrol.limited-by-app-access-count", 42, true},
		{"11 permissions", topsbx.OrderNoPermission, nil, 502, -1305, "11", "isv.permission-api-package-limit", 0, true},
		{"15 isp ambiguous", topsbx.OrderRemoteISP, nil, 504, -1304, "15", "isp.top-remote-service-unavailable", 0, false},
		{"15 isv", topsbx.OrderRemoteISV, nil, 502, -1305, "15", "isv.invalid-parameter", 0, true},
		{"25 signature", "BFC1", map[string]string{"TOP_APP_SECRET": "wrong-secret"}, 502, -1305, "25", "", 0, true},
		// No session anywhere: TOP documents it as optional, so the call
		// goes out without it (it was refused as a configuration fault).
		{"26 no session", "BFC1", map[string]string{"TOP_SESSION": ""}, 502, -1305, "26", "", 0, true},
		{"27 session", "BFC1", map[string]string{"TOP_SESSION": "expired-session"}, 502, -1305, "27", "invalid-sessionkey", 0, true},
		{"29 app key", "BFC1", map[string]string{"TOP_APP_KEY": "99999999"}, 502, -1305, "29", "", 0, true},
		{"41 arguments", topsbx.OrderBadArgs, nil, 502, -1305, "41", "isv.invalid-parameter:price", 0, true},
		{"result layer", topsbx.OrderRefused, nil, 502, -1305, "15", "", 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, c.env)
			st, m := r.call(t, charge(c.order, 100, "e-"+c.order), nil)
			require.Equal(t, c.status, st, m)
			require.Equal(t, c.errCode, m["errCode"], m)
			up := m["upstream"].(map[string]any)
			require.Equal(t, "top", up["vendor"])
			require.Equal(t, c.code, up["code"])
			if c.sub != "" {
				require.Equal(t, c.sub, up["subCode"])
			}
			require.NotEmpty(t, up["requestId"])
			if c.retryAfter > 0 {
				require.Equal(t, c.retryAfter, m["retryAfter"])
			}
			require.Empty(t, r.sbx.Charges(c.order))
			r.call(t, charge(c.order, 100, "e-"+c.order), nil)
			want := 1
			if c.releasesKey {
				want = 2 // TOP certainly did nothing: a retry with the key runs again
			}
			require.Equal(t, want, r.sbx.Calls("http:/router/rest"))
		})
	}
}

func TestTimestampWindow(t *testing.T) {
	r := newRig(t, nil)
	r.sbx.Clock.Advance(11 * time.Minute)
	_, m := r.call(t, charge("BFC1", 100, "ts"), nil)
	require.Equal(t, "31", m["upstream"].(map[string]any)["code"])
}

func TestBadInputNeverReachesTOP(t *testing.T) {
	r := newRig(t, nil)
	cases := map[string]string{
		`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"B","price":12.5,"type":1}}`:                              "omsLaunchExtraChargeParameter.price: expected an integer number of fen",
		`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"B","price":"12","type":1}}`:                              "omsLaunchExtraChargeParameter.price: expected an integer number of fen",
		`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"B","price":-1,"type":1}}`:                                "price: -1 fen is under the floor of 0 fen (TOP_MIN_PRICE_FEN)",
		`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"B","price":9223372036854775808,"type":1}}`:               "price: expected an integer number of fen (1/100 CNY) within TOP's Long, -9223372036854775808 to 9223372036854775807, e.g. 12345 for 123.45 CNY, got number 9223372036854775808",
		`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"B","price":100,"type":9}}`:                               "type: expected an integer from 1 to 8",
		`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"B","price":100,"type":0}}`:                               "type: expected an integer from 1 to 8",
		`{"omsLaunchExtraChargeParameter":{"price":100,"type":1}}`:                                                            "wdsCoordinationOrderId: required",
		`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"B","price":100,"type":1,"feature":{"a":1}}}`:             "feature: expected a string, got object",
		`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"B","price":100000001,"type":1}}`:                         "over the safety cap",
		`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"B","price":1,"price":2,"type":1}}`:                       `omsLaunchExtraChargeParameter.price: duplicate key "price"`,
		"{\"omsLaunchExtraChargeParameter\":{\"wdsCoordinationOrderId\":\"B\",\"price\":1,\"type\":1,\"desc\":\"\xe4\xb8\"}}": "omsLaunchExtraChargeParameter.desc: not valid UTF-8",
		`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"B","price":1,"type":1},"idempotencyKey":"a b"}`:          "idempotencyKey: expected up to 128 printable ASCII characters without spaces",
		`{"oms_launch_extra_charge_parameter":{}}`:                                                                            `did you mean "omsLaunchExtraChargeParameter"?`,
		`{}`: "omsLaunchExtraChargeParameter: required",
	}
	for body, want := range cases {
		st, m := r.call(t, body, nil)
		require.Equal(t, 400, st, body)
		require.Equal(t, -1001.0, m["errCode"], body)
		require.Contains(t, m["errMsg"], want, body)
	}
	require.Equal(t, 0, r.sbx.Calls("http:/router/rest"))
}

func TestStoreDownRefusesTheCharge(t *testing.T) {
	sbx := topsbx.New(topsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	op, err := top.FactoryWith(downRecords{idempotency.NewMemory(nil)})(context.Background(), runtime.Deps{Env: config.FromMap(sbx.Env(srv.URL)), Store: store.NewMemory(store.MemoryOptions{}), HTTP: srv.Client()})
	require.NoError(t, err)
	resp := op.Invoke(context.Background(), &envelope.Input{Body: []byte(charge("BFC1", 100, "x"))})
	require.Equal(t, 503, resp.Status)
	require.Contains(t, string(resp.Body), `"errCode":-1501`)
	require.Empty(t, sbx.Charges(""))
}

type downRecords struct{ *idempotency.Memory }

func (downRecords) Reserve(context.Context, string, idempotency.Record, time.Duration) (bool, error) {
	return false, idempotency.ErrUnavailable
}

// Values TOP documents as valid reach TOP exactly as given: any order id,
// desc and feature string (spaces, CJK, ~, *, long, not JSON), price 0 and
// the ends of a Long under wide-open policies, type 1 and 8.
func TestDocumentedValuesReachTOPIntact(t *testing.T) {
	long := strings.Repeat("描述~*", 700)
	cases := []struct {
		order, desc, feature string
		price, typ           int64
		env                  map[string]string
	}{
		{"BFC 第二次上门 ~*", "二次上门 ~ *", "not json at all", 0, 1, nil},
		{"b", long, `{"k":"<&>"}`, 12345, 8, nil},
		{"BFC-1", "", "", math.MaxInt64, 2, map[string]string{"TOP_MAX_PRICE_FEN": strconv.FormatInt(math.MaxInt64, 10)}},
		{"BFC-2", "refund?", "", math.MinInt64, 3, map[string]string{"TOP_MIN_PRICE_FEN": strconv.FormatInt(math.MinInt64, 10)}},
	}
	for _, c := range cases {
		r := newRig(t, c.env)
		p := map[string]any{"wdsCoordinationOrderId": c.order, "price": c.price, "type": c.typ}
		if c.desc != "" {
			p["desc"] = c.desc
		}
		if c.feature != "" {
			p["feature"] = c.feature
		}
		body, _ := json.Marshal(map[string]any{"omsLaunchExtraChargeParameter": p})
		st, m := r.call(t, string(body), nil)
		require.Equal(t, 200, st, "%v", m)
		ledger := r.sbx.Charges(c.order)
		require.Len(t, ledger, 1, c.order)
		require.Equal(t, c.price, ledger[0].Price)
		require.Equal(t, c.typ, ledger[0].Type)
		require.Equal(t, c.desc, ledger[0].Desc)
		require.Equal(t, c.feature, ledger[0].Feature)
	}
}

// A caller that gives up while TOP is working on the charge (a client
// disconnecting in HTTP-server mode) does not turn it into an outcome to
// reconcile: the call is seen through to TOP's answer, the record keeps
// it, and the repeat with the key gets that answer without a second charge.
func TestACallerThatGivesUpMidChargeLeavesAKnownOutcome(t *testing.T) {
	r := newRig(t, nil)
	r.sbx.Inject(sandbox.Fault{Path: "/router/rest", Kind: sandbox.FaultLatency, Delay: 300 * time.Millisecond, Times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	go func() {
		// Hang up once TOP has the request and is working on it (the
		// sandbox counts a request as it arrives, before its latency).
		for r.sbx.Calls("http:/router/rest") == 0 && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	r.op.Invoke(ctx, &envelope.Input{Body: []byte(charge("BFC-GONE", 100, "gone-1")), Trigger: envelope.TriggerDirect})
	cancel()

	_, again := r.call(t, charge("BFC-GONE", 100, "gone-1"), nil)
	require.Equal(t, 0.0, again["errCode"], again)
	require.Len(t, r.sbx.Charges("BFC-GONE"), 1)
	require.Equal(t, r.sbx.Charges("BFC-GONE")[0].ID, again["result"].(map[string]any)["data"].(map[string]any)["extraChargeServiceOrderId"])
	require.Equal(t, 1, r.sbx.Calls("http:/router/rest"), "the repeat never reached TOP")
}

// A repeat is answered from the record and says so (Replayed: the HTTP
// answer's Idempotent-Replayed header, the log line's "replayed"); a
// replayed refusal or unknown outcome keeps its error for the log and the
// metrics, which counted it as a success.
func TestAReplayIsMarkedAndKeepsItsError(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	invoke := func(body string) envelope.Response {
		return r.op.Invoke(ctx, &envelope.Input{Body: []byte(body), Trigger: envelope.TriggerDirect})
	}
	first := invoke(charge("BFC77", 500, "mark-1"))
	require.False(t, first.Replayed)
	require.Nil(t, first.Err)
	again := invoke(charge("BFC77", 500, "mark-1"))
	require.True(t, again.Replayed)
	require.Nil(t, again.Err, "a replayed charge is a success")
	require.Equal(t, string(first.Body), string(again.Body))

	refused := invoke(charge(topsbx.OrderRefused, 500, "mark-2"))
	require.NotNil(t, refused.Err)
	replayed := invoke(charge(topsbx.OrderRefused, 500, "mark-2"))
	require.True(t, replayed.Replayed)
	require.NotNil(t, replayed.Err)
	require.Equal(t, -1305, replayed.Err.Code)
	require.Contains(t, replayed.Err.Reason, "replayed: TOP refused the charge")
	require.Equal(t, string(refused.Body), string(replayed.Body))
}

// A keyed call whose request a keyless call is still charging is answered
// from that call, and names its key: the key it sent holds no record, and
// records show said "no record" for it while the charge's record sat under
// auto:… (an outside re-tester).
func TestAKeyedRetryOfAKeylessCallInProgressNamesItsKey(t *testing.T) {
	r := newRig(t, nil)
	r.sbx.Inject(sandbox.Fault{Path: "/router/rest", Kind: sandbox.FaultLatency, Delay: 500 * time.Millisecond, Times: 1})
	done := make(chan map[string]any)
	go func() {
		_, m := r.call(t, charge("GK2", 500, ""), nil)
		done <- m
	}()
	require.Eventually(t, func() bool { return r.sbx.Calls("http:/router/rest") > 0 }, 5*time.Second, 5*time.Millisecond)
	st, m := r.call(t, charge("GK2", 500, "gk2-newkey"), nil)
	first := <-done
	require.Equal(t, 409, st, m)
	require.Equal(t, -1401.0, m["errCode"])
	require.Contains(t, m["errMsg"], "in progress")
	require.Equal(t, first["idempotencyKey"], m["idempotencyKey"], "the keyless call's key, the one records show finds")
	require.Regexp(t, `^auto:[0-9a-f]{64}$`, m["idempotencyKey"])
	require.Len(t, r.sbx.Charges("GK2"), 1)
}
