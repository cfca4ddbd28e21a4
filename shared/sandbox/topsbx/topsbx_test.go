package topsbx

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/sandbox"
)

// The sandbox's own signer against the vendor notes' vectors: it is an
// independent implementation, so it is checked on its own.
func TestSignatureVectors(t *testing.T) {
	p := map[string]string{"method": "taobao.item.seller.get", "app_key": "12345678", "session": "test",
		"timestamp": "2016-01-01 12:00:00", "format": "json", "v": "2.0",
		"fields": "num_iid,title,nick,price,num", "num_iid": "11223344"}
	for m, want := range map[string]string{
		"md5":         "66987CB115214E59E6EC978214934FB8",
		"hmac":        "D56D7858309C31B6251083A874D48273",
		"hmac-sha256": "04DB15AD0774D5CFCE2C837DE43E3FCEA9011ED74F3038FB6AB5F3C4CEA119E8",
	} {
		p["sign_method"] = m
		require.Equal(t, want, signature("helloworld", m, p), m)
	}
}

type client struct {
	t   *testing.T
	s   *Server
	url string
}

func newClient(t *testing.T) *client {
	s := New(Options{})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &client{t: t, s: s, url: srv.URL}
}

const goodParam = `{"wds_coordination_order_id":"BFC123","price":12345,"type":1,"desc":"1","feature":"{\"test\":\"xx\"}"}`

// params is a correctly signed request; edit changes it before signing.
func (c *client) params(signMethod string, edit func(map[string]string)) map[string]string {
	p := map[string]string{"method": method, "app_key": DemoAppKey, "session": DemoSession, "v": "2.0", "format": "json",
		"sign_method": signMethod, "timestamp": c.s.Clock.Now().In(gmt8).Format("2006-01-02 15:04:05"),
		"oms_launch_extra_charge_parameter": goodParam}
	if edit != nil {
		edit(p)
	}
	p["sign"] = signature(DemoSecret, p["sign_method"], p)
	return p
}

func (c *client) post(p map[string]string) map[string]any {
	form := url.Values{}
	for k, v := range p {
		form.Set(k, v)
	}
	resp, err := http.PostForm(c.url+"/router/rest", form)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	require.Equal(c.t, 200, resp.StatusCode, "TOP answers errors with HTTP 200")
	var m map[string]any
	require.NoError(c.t, json.NewDecoder(resp.Body).Decode(&m))
	return m
}

func TestAcceptsEverySignMethodAndRecordsEachCharge(t *testing.T) {
	c := newClient(t)
	for i, m := range []string{"md5", "hmac", "hmac-sha256"} {
		out := c.post(c.params(m, nil))
		r := out["alibaba_ascp_industry_launch_extra_charge_response"].(map[string]any)
		require.NotEmpty(t, r["request_id"])
		res := r["result"].(map[string]any)
		require.Equal(t, true, res["success"], m)
		data := res["data"].(map[string]any)
		require.Equal(t, `{"test":"xx"}`, data["feature"])
		ledger := c.s.Charges("BFC123")
		require.Len(t, ledger, i+1)
		require.Equal(t, ledger[i].ID, data["extra_charge_service_order_id"], "a new id per accepted charge")
		require.Equal(t, int64(12345), ledger[i].Price)
		require.Equal(t, int64(1), ledger[i].Type)
	}
	require.NotEqual(t, c.s.Charges("BFC123")[0].ID, c.s.Charges("BFC123")[1].ID)
	require.Equal(t, 3, c.s.Calls("charge"))
}

// What TOP documents as valid is charged: price is a Long with no range
// (0 and negative included; the function's TOP_MIN/MAX_PRICE_FEN policies
// are the function's, not TOP's), type 1 and 8 are the ends of 1..8, and
// desc/feature are any strings.
func TestDocumentedValuesAreCharged(t *testing.T) {
	for _, param := range []string{
		`{"wds_coordination_order_id":"BFC 第二次 ~*","price":0,"type":1}`,
		`{"wds_coordination_order_id":"B","price":-5,"type":8}`,
		`{"wds_coordination_order_id":"B","price":9223372036854775807,"type":8,"desc":"` + strings.Repeat("描", 600) + `","feature":"not json"}`,
	} {
		c := newClient(t)
		out := c.post(c.params("md5", func(p map[string]string) { p["oms_launch_extra_charge_parameter"] = param }))
		r, ok := out["alibaba_ascp_industry_launch_extra_charge_response"].(map[string]any)
		require.True(t, ok, out)
		require.Equal(t, true, r["result"].(map[string]any)["success"], param)
		require.Len(t, c.s.Charges(""), 1, param)
	}
}

// TOP answers XML unless format=json, and simplify=true drops the
// <method>_response wrapper of a JSON answer.
func TestFormatAndSimplify(t *testing.T) {
	c := newClient(t)
	post := func(p map[string]string) (string, string) {
		form := url.Values{}
		for k, v := range p {
			form.Set(k, v)
		}
		resp, err := http.PostForm(c.url+"/router/rest", form)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Header.Get("Content-Type"), string(b)
	}
	ct, body := post(c.params("md5", func(p map[string]string) { delete(p, "format") }))
	require.Contains(t, ct, "text/xml")
	require.Contains(t, body, "<alibaba_ascp_industry_launch_extra_charge_response><result><success>true</success><data><extra_charge_service_order_id>ECS")
	ct, body = post(c.params("md5", func(p map[string]string) { p["format"] = "xml"; p["v"] = "3.0" }))
	require.Contains(t, ct, "text/xml")
	require.Contains(t, body, "<error_response><code>34</code><msg>Unsupported Version</msg>")
	_, body = post(c.params("md5", func(p map[string]string) { p["format"] = "yaml" }))
	require.Contains(t, body, "<error_response><code>23</code><msg>Invalid Format</msg>", "an unknown format is answered in the default XML")
	_, body = post(c.params("md5", func(p map[string]string) { p["simplify"] = "true" }))
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &m), body)
	require.Equal(t, true, m["result"].(map[string]any)["success"], "no wrapper with simplify=true")
	require.NotEmpty(t, m["request_id"])
	_, body = post(c.params("md5", nil))
	require.NoError(t, json.Unmarshal([]byte(body), &m), body)
	require.Contains(t, m, "alibaba_ascp_industry_launch_extra_charge_response")
	require.Len(t, c.s.Charges(""), 3)
}

func TestRefusals(t *testing.T) {
	now := New(Options{}).Clock.Now() // every sandbox starts at real time
	cases := []struct {
		name    string
		edit    func(map[string]string)
		resign  func(map[string]string) // runs after signing
		code    float64
		subCode string
		subMsg  string
	}{
		{"wrong signature", nil, func(p map[string]string) { p["sign"] = strings.Repeat("A", 32) }, 25, "", ""},
		{"signed with another secret", nil, func(p map[string]string) { p["sign"] = signature("other", "md5", p) }, 25, "", ""},
		{"unknown sign method", func(p map[string]string) { p["sign_method"] = "sha1" }, nil, 25, "", ""},
		{"tampered after signing", nil, func(p map[string]string) {
			p["oms_launch_extra_charge_parameter"] = strings.Replace(goodParam, "12345", "99999", 1)
		}, 25, "", ""},
		{"missing signature", nil, func(p map[string]string) { delete(p, "sign") }, 24, "", ""},
		{"missing app key", func(p map[string]string) { delete(p, "app_key") }, nil, 28, "", ""},
		{"unknown app key", func(p map[string]string) { p["app_key"] = "99999999" }, nil, 29, "", ""},
		{"missing timestamp", func(p map[string]string) { delete(p, "timestamp") }, nil, 30, "", ""},
		{"timestamp in UTC (8 h off)", func(p map[string]string) { p["timestamp"] = now.UTC().Format("2006-01-02 15:04:05") }, nil, 31, "isv.timestamp-limit-error", ""},
		{"timestamp 11 min old", func(p map[string]string) {
			p["timestamp"] = now.Add(-11 * time.Minute).In(gmt8).Format("2006-01-02 15:04:05")
		}, nil, 31, "isv.timestamp-limit-error", ""},
		{"timestamp 11 min ahead", func(p map[string]string) {
			p["timestamp"] = now.Add(11 * time.Minute).In(gmt8).Format("2006-01-02 15:04:05")
		}, nil, 31, "isv.timestamp-limit-error", ""},
		{"missing version", func(p map[string]string) { delete(p, "v") }, nil, 32, "", ""},
		{"other method", func(p map[string]string) { p["method"] = "taobao.item.seller.get" }, nil, 22, "", ""},
		{"missing session", func(p map[string]string) { delete(p, "session") }, nil, 26, "", ""},
		{"expired session", func(p map[string]string) { p["session"] = "expired" }, nil, 27, "invalid-sessionkey", "SessionKey非法"},
		{"missing parameter", func(p map[string]string) { delete(p, "oms_launch_extra_charge_parameter") }, nil, 40, "isv.missing-parameter:oms_launch_extra_charge_parameter", ""},
		{"parameter not JSON", func(p map[string]string) { p["oms_launch_extra_charge_parameter"] = "price=1" }, nil, 41, "isv.invalid-parameter", ""},
		{"price not a Long", func(p map[string]string) {
			p["oms_launch_extra_charge_parameter"] = `{"wds_coordination_order_id":"BFC123","price":9223372036854775808,"type":1}`
		}, nil, 41, "isv.invalid-parameter", ""},
		{"price missing", func(p map[string]string) {
			p["oms_launch_extra_charge_parameter"] = `{"wds_coordination_order_id":"BFC123","type":1}`
		}, nil, 40, "isv.missing-parameter:price", ""},
		{"order id missing", func(p map[string]string) {
			p["oms_launch_extra_charge_parameter"] = `{"price":1,"type":1}`
		}, nil, 40, "isv.missing-parameter:wds_coordination_order_id", ""},
		{"type 0", func(p map[string]string) {
			p["oms_launch_extra_charge_parameter"] = `{"wds_coordination_order_id":"BFC123","price":1,"type":0}`
		}, nil, 41, "isv.invalid-parameter:type", ""},
		{"type 9", func(p map[string]string) {
			p["oms_launch_extra_charge_parameter"] = `{"wds_coordination_order_id":"BFC123","price":1,"type":9}`
		}, nil, 41, "isv.invalid-parameter:type", ""},
		{"version 3.0 (unsupported)", func(p map[string]string) { p["v"] = "3.0" }, nil, 34, "", ""},
		{"version not a version", func(p map[string]string) { p["v"] = "two" }, nil, 33, "", ""},
		{"seeded 7", orderEdit(OrderThrottled), nil, 7, "accesscontrol.limited-by-app-access-count", "This ban will last for 42 more seconds"},
		{"seeded 11", orderEdit(OrderNoPermission), nil, 11, "isv.permission-api-package-limit", ""},
		{"seeded 15 isp", orderEdit(OrderRemoteISP), nil, 15, "isp.top-remote-service-unavailable", ""},
		{"seeded 15 isv", orderEdit(OrderRemoteISV), nil, 15, "isv.invalid-parameter", ""},
		{"seeded 41", orderEdit(OrderBadArgs), nil, 41, "isv.invalid-parameter:price", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t)
			p := c.params("hmac-sha256", tc.edit)
			if tc.resign != nil {
				tc.resign(p)
			}
			out := c.post(p)
			e, ok := out["error_response"].(map[string]any)
			require.True(t, ok, out)
			require.Equal(t, tc.code, e["code"])
			require.NotEmpty(t, e["msg"])
			require.NotEmpty(t, e["request_id"])
			if tc.subCode != "" {
				require.Equal(t, tc.subCode, e["sub_code"])
			}
			if tc.subMsg != "" {
				require.Equal(t, tc.subMsg, e["sub_msg"])
			}
			require.Empty(t, c.s.Charges(""), "a refused request charges nothing")
		})
	}
}

func orderEdit(order string) func(map[string]string) {
	return func(p map[string]string) {
		p["oms_launch_extra_charge_parameter"] = `{"wds_coordination_order_id":"` + order + `","price":100,"type":1}`
	}
}

func TestBusinessRefusalLayer(t *testing.T) {
	c := newClient(t)
	out := c.post(c.params("md5", orderEdit(OrderRefused)))
	r := out["alibaba_ascp_industry_launch_extra_charge_response"].(map[string]any)
	res := r["result"].(map[string]any)
	require.Equal(t, false, res["success"])
	require.Equal(t, "15", res["error_code"])
	require.NotEmpty(t, res["error_message"])
	require.Empty(t, c.s.Charges(""))
}

// The clock the window is checked against is the sandbox's, so tests move it.
func TestWindowFollowsTheSandboxClock(t *testing.T) {
	c := newClient(t)
	p := c.params("md5", nil)
	c.s.Clock.Advance(9 * time.Minute)
	require.Contains(t, c.post(p), "alibaba_ascp_industry_launch_extra_charge_response", "9 minutes old is inside the window")
	c.s.Clock.Advance(2 * time.Minute)
	p["oms_launch_extra_charge_parameter"] = goodParam // same request, re-signed below
	p["sign"] = signature(DemoSecret, "md5", p)
	require.Equal(t, 31.0, c.post(p)["error_response"].(map[string]any)["code"])
}

// The worst fault: the charge is recorded and the caller never hears of it.
func TestDropAfterRecordsTheCharge(t *testing.T) {
	c := newClient(t)
	c.s.Inject(sandbox.Fault{Path: "/router/rest", Kind: sandbox.FaultDropAfter, Times: 1})
	form := url.Values{}
	for k, v := range c.params("md5", nil) {
		form.Set(k, v)
	}
	resp, err := http.PostForm(c.url+"/router/rest", form)
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err, "no answer reaches the caller")
	require.Len(t, c.s.Charges("BFC123"), 1, "yet the charge exists")

	r, err := http.Get(c.url + "/__sandbox/top/charges?order=BFC123")
	require.NoError(t, err)
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	var ledger struct {
		Charges []struct {
			ID      string `json:"id"`
			OrderID string `json:"orderId"`
		} `json:"charges"`
	}
	require.NoError(t, json.Unmarshal(b, &ledger))
	require.Len(t, ledger.Charges, 1)
	require.Equal(t, "BFC123", ledger.Charges[0].OrderID)
}

func TestEnv(t *testing.T) {
	s := New(Options{})
	require.Equal(t, map[string]string{"TOP_GATEWAY_URL": "http://h:1/router/rest", "TOP_APP_KEY": DemoAppKey,
		"TOP_APP_SECRET": DemoSecret, "TOP_SESSION": DemoSession}, s.Env("http://h:1"))
}

// The ledger is an admin endpoint too: a page behind a rebound DNS name
// cannot read it.
func TestLedgerRefusesWebPages(t *testing.T) {
	srv := httptest.NewServer(New(Options{}).Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/__sandbox/top/charges", nil)
	req.Host = "evil.example"
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, err = http.Get(srv.URL + "/__sandbox/top/charges")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// A seller authorising again, as a user tries it: the new session is taken,
// the revoked one answers 27, and a request without add or revoke is 400.
func TestSessionsCanBeAuthorisedAndRevoked(t *testing.T) {
	c := newClient(t)
	post := func(body string) (int, map[string]any) {
		resp, err := http.Post(c.url+"/__sandbox/top/sessions", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		return resp.StatusCode, m
	}
	status, m := post(`{"add":"renewed","revoke":"` + DemoSession + `"}`)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, []any{"renewed"}, m["sessions"])
	out := c.post(c.params("md5", func(p map[string]string) { p["session"] = "renewed" }))
	require.Contains(t, out, "alibaba_ascp_industry_launch_extra_charge_response")
	out = c.post(c.params("md5", nil))
	require.Equal(t, 27.0, out["error_response"].(map[string]any)["code"])
	resp, err := http.Get(c.url + "/__sandbox/top/sessions")
	require.NoError(t, err)
	var listed map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&listed))
	resp.Body.Close()
	require.Equal(t, []any{"renewed"}, listed["sessions"])
	status, m = post(`{}`)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, m["error"], `"add"`)
	require.Len(t, c.s.Charges("BFC123"), 1)
}
