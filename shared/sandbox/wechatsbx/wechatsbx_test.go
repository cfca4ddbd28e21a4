package wechatsbx

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func get(t *testing.T, srv *httptest.Server, path string) map[string]any {
	resp, err := http.Get(srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, "WeChat answers errors with HTTP 200")
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	return m
}

func post(t *testing.T, srv *httptest.Server, path, body string) map[string]any {
	resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	return m
}

func quota(t *testing.T, srv *httptest.Server, tok string) map[string]any {
	return post(t, srv, "/cgi-bin/express/business/quota/get?access_token="+url.QueryEscape(tok), `{"delivery_id":"YTO","biz_id":"xyz"}`)
}

func TestClassicTokenOverlap(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	q := "/cgi-bin/token?grant_type=client_credential&appid=" + DemoAppID + "&secret=" + DemoSecret
	t1 := get(t, srv, q)["access_token"].(string)
	t2 := get(t, srv, q)["access_token"].(string)
	require.NotEqual(t, t1, t2, "each fetch issues a new token")
	require.Equal(t, 210.0, quota(t, srv, t1)["quota_num"], "the previous token still works for 5 minutes")
	s.Clock.Advance(5*time.Minute + time.Second)
	m := quota(t, srv, t1)
	require.Equal(t, 40001.0, m["errcode"])
	require.Contains(t, m["errmsg"], "rid: ")
	require.Equal(t, 210.0, quota(t, srv, t2)["quota_num"])
	require.Equal(t, 40125.0, get(t, srv, "/cgi-bin/token?grant_type=client_credential&appid="+DemoAppID+"&secret=nope")["errcode"])
	require.Equal(t, 40013.0, get(t, srv, "/cgi-bin/token?grant_type=client_credential&appid=wxnobody&secret=x")["errcode"])
}

func TestStableTokenModes(t *testing.T) {
	s := New(Options{})
	// The quotas are per day and the test moves the clock two hours: it
	// starts just after midnight, or a run at 22:00 crossed into a new day
	// and its 21st force refresh was allowed (it failed in CI).
	now := s.Clock.Now()
	s.Clock.Advance(time.Date(now.Year(), now.Month(), now.Day()+1, 0, 1, 0, 0, now.Location()).Sub(now))
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	body := func(force bool) string {
		b, _ := json.Marshal(map[string]any{"grant_type": "client_credential", "appid": DemoAppID, "secret": DemoSecret, "force_refresh": force})
		return string(b)
	}
	a := post(t, srv, "/cgi-bin/stable_token", body(false))
	s.Clock.Advance(time.Hour)
	b := post(t, srv, "/cgi-bin/stable_token", body(false))
	require.Equal(t, a["access_token"], b["access_token"], "normal mode returns the live token")
	require.InDelta(t, 3600, b["expires_in"], 1, "with its remaining lifetime")
	s.Clock.Advance(56 * time.Minute) // inside the last 5 minutes
	c := post(t, srv, "/cgi-bin/stable_token", body(false))
	require.NotEqual(t, a["access_token"], c["access_token"], "normal mode rotates 5 minutes early")
	require.Equal(t, 210.0, quota(t, srv, a["access_token"].(string))["quota_num"], "the old token lives out its life")

	f1 := post(t, srv, "/cgi-bin/stable_token", body(true))
	require.NotEqual(t, c["access_token"], f1["access_token"], "force mode rotates")
	require.Equal(t, 40001.0, quota(t, srv, c["access_token"].(string))["errcode"], "and invalidates the previous token")
	f2 := post(t, srv, "/cgi-bin/stable_token", body(true))
	require.Equal(t, f1["access_token"], f2["access_token"], "no second force refresh within 30 s")
	for i := 0; i < 19; i++ {
		s.Clock.Advance(31 * time.Second)
		post(t, srv, "/cgi-bin/stable_token", body(true))
	}
	s.Clock.Advance(31 * time.Second)
	require.Equal(t, 45009.0, post(t, srv, "/cgi-bin/stable_token", body(true))["errcode"], "at most 20 force refreshes a day")
}

func TestAccountsAndCouriers(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	tok := post(t, srv, "/cgi-bin/stable_token", `{"grant_type":"client_credential","appid":"`+DemoAppID+`","secret":"`+DemoSecret+`"}`)["access_token"].(string)
	d := get(t, srv, "/cgi-bin/express/business/delivery/getall?access_token="+tok)
	quota := map[string]float64{}
	for _, c := range d["data"].([]any) {
		m := c.(map[string]any)
		quota[m["delivery_id"].(string)] = m["can_get_quota"].(float64)
	}
	require.Equal(t, 1.0, quota["YTO"])
	require.Equal(t, 0.0, quota["SF"])
	a := get(t, srv, "/cgi-bin/express/business/account/getall?access_token="+tok)
	require.Equal(t, float64(len(DemoAccounts())), a["count"])
	m := post(t, srv, "/cgi-bin/express/business/quota/get?access_token="+tok, `{"delivery_id":"ZTO","biz_id":"zero-balance"}`)
	require.Contains(t, m, "quota_num")
	require.Equal(t, 0.0, m["quota_num"])
	require.Equal(t, 47001.0, post(t, srv, "/cgi-bin/express/business/quota/get?access_token="+tok, `{"deliveryId":"ZTO"}`)["errcode"], "camelCase keys are a data format error")
	require.Equal(t, 41001.0, post(t, srv, "/cgi-bin/express/business/quota/get", `{}`)["errcode"])
}

func TestVendorAdminEndpointsAreReachable(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	m := post(t, srv, "/__sandbox/wechat/quota", `{"deliveryId":"YTO","bizId":"xyz","quota":7}`)
	require.Equal(t, true, m["ok"])
	tok := post(t, srv, "/cgi-bin/stable_token", `{"grant_type":"client_credential","appid":"`+DemoAppID+`","secret":"`+DemoSecret+`"}`)["access_token"].(string)
	require.Equal(t, 7.0, quota(t, srv, tok)["quota_num"])
	require.Equal(t, true, post(t, srv, "/__sandbox/wechat/rotate?appid="+DemoAppID, ``)["ok"])
	require.Equal(t, 40001.0, quota(t, srv, tok)["errcode"])
}

func TestQuotaAnswers(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	tok := post(t, srv, "/cgi-bin/stable_token", `{"grant_type":"client_credential","appid":"`+DemoAppID+`","secret":"`+DemoSecret+`"}`)["access_token"].(string)
	cases := []struct {
		deliveryID, bizID string
		errcode           float64 // 0: success
		quota             float64
	}{
		{"YTO", "xyz", 0, 210},
		{"ZTO", "zero-balance", 0, 0},
		{"YUNDA", "yunda-01", 0, 55},
		{"YTO", "wrong-password", 9300531, 0},
		{"YTO", "nobody", 9300525, 0},
		{"NOPE", "xyz", 9300503, 0},
	}
	for _, c := range cases {
		t.Run(c.deliveryID+"/"+c.bizID, func(t *testing.T) {
			b, _ := json.Marshal(map[string]string{"delivery_id": c.deliveryID, "biz_id": c.bizID})
			m := post(t, srv, "/cgi-bin/express/business/quota/get?access_token="+url.QueryEscape(tok), string(b))
			if c.errcode != 0 {
				require.Equal(t, c.errcode, m["errcode"])
				require.Contains(t, m["errmsg"], " rid: ")
				require.NotContains(t, m, "quota_num", "an error answer has no balance")
				return
			}
			require.NotContains(t, m, "errcode")
			require.Contains(t, m, "quota_num")
			require.Equal(t, c.quota, m["quota_num"])
		})
	}
	require.Equal(t, len(cases), s.Calls("quota"))
	require.Equal(t, 1, s.Calls("token"))

	s.Clock.Advance(2*time.Hour + time.Second)
	require.Equal(t, 42001.0, quota(t, srv, tok)["errcode"], "past its life a token is expired")
}

func TestIPWhitelist(t *testing.T) {
	body := `{"grant_type":"client_credential","appid":"` + DemoAppID + `","secret":"` + DemoSecret + `"}`
	s := New(Options{IPWhitelist: []string{"203.0.113.7"}})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	m := post(t, srv, "/cgi-bin/stable_token", body)
	require.Equal(t, 40164.0, m["errcode"])
	require.Contains(t, m["errmsg"], "invalid ip 127.0.0.1")
	require.Equal(t, 40164.0, get(t, srv, "/cgi-bin/token?grant_type=client_credential&appid="+DemoAppID+"&secret="+DemoSecret)["errcode"])

	ok := New(Options{IPWhitelist: []string{"127.0.0.1"}})
	srv2 := httptest.NewServer(ok.Handler())
	defer srv2.Close()
	require.NotEmpty(t, post(t, srv2, "/cgi-bin/stable_token", body)["access_token"])
}

func TestDeadTokensAreForgotten(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	q := "/cgi-bin/token?grant_type=client_credential&appid=" + DemoAppID + "&secret=" + DemoSecret
	first := get(t, srv, q)["access_token"].(string)
	for i := 0; i < 50; i++ {
		s.Clock.Advance(3 * time.Hour)
		get(t, srv, q)
	}
	s.mu.Lock()
	n := len(s.apps[DemoAppID].classic)
	s.mu.Unlock()
	require.LessOrEqual(t, n, 2, "a long-running sandbox keeps only live and recently dead tokens")
	require.Equal(t, 40001.0, quota(t, srv, first)["errcode"], "a forgotten token is not recognised")
}
