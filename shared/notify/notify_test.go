package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/notify"
)

var fixed = func() time.Time { return time.UnixMilli(1700000000123) }

type captured struct {
	rawQuery string
	query    url.Values
	header   http.Header
	body     map[string]any
	raw      []byte
}

func receiver(t *testing.T, reply string, status int) (*httptest.Server, *captured, *atomic.Int32) {
	c := &captured{}
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		c.rawQuery, c.query, c.header = r.URL.RawQuery, r.URL.Query(), r.Header.Clone()
		c.raw, _ = io.ReadAll(r.Body)
		_ = json.Unmarshal(c.raw, &c.body)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(reply))
	}))
	t.Cleanup(srv.Close)
	return srv, c, &n
}

var msg = notify.Message{Title: "电子面单余额不足", Text: "YTO xyz 余额 90", Data: map[string]any{"balance": 90}}

func TestDingTalkSignature(t *testing.T) {
	// Independent computation of DingTalk's documented algorithm.
	m := hmac.New(sha256.New, []byte("SECdemo"))
	m.Write([]byte("1700000000123\nSECdemo"))
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))
	require.Equal(t, want, notify.DingTalkSign(1700000000123, "SECdemo"))
	// Fixed vector computed with openssl (dgst -sha256 -hmac SECdemo -binary | base64).
	require.Equal(t, "NhbevkDbYRW2yKX6TyqwoJP0bHe5xpu5AApi0R446wU=", want)

	srv, c, _ := receiver(t, `{"errcode":0,"errmsg":"ok"}`, 200)
	ch := notify.DingTalk{URL: srv.URL + "/robot/send?access_token=abc", Secret: "SECdemo", Opts: notify.Options{HTTP: srv.Client(), Now: fixed}}
	require.NoError(t, ch.Send(context.Background(), msg))
	require.Equal(t, "abc", c.query.Get("access_token"))
	require.Equal(t, "1700000000123", c.query.Get("timestamp"))
	require.Equal(t, want, c.query.Get("sign"), "sign arrives URL-decoded to the base64 value")
	require.Contains(t, c.rawQuery, "sign=NhbevkDbYRW2yKX6TyqwoJP0bHe5xpu5AApi0R446wU%3D", "base64 '=' and '+' are URL-encoded")
	require.Equal(t, "markdown", c.body["msgtype"])
	require.Equal(t, "电子面单余额不足", c.body["markdown"].(map[string]any)["title"])
}

func TestFeishuSignature(t *testing.T) {
	m := hmac.New(sha256.New, []byte("1700000000\nfeishu-secret"))
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))
	require.Equal(t, want, notify.FeishuSign(1700000000, "feishu-secret"))
	// Fixed vector computed with openssl: key "1700000000\nfeishu-secret", empty message.
	require.Equal(t, "OrBzY1Y01Gq+HgJsl+7OfWcMVwc7YocohQm5iiZwjhU=", want)

	srv, c, _ := receiver(t, `{"code":0,"msg":"success"}`, 200)
	ch := notify.Feishu{URL: srv.URL, Secret: "feishu-secret", Opts: notify.Options{HTTP: srv.Client(), Now: fixed}}
	require.NoError(t, ch.Send(context.Background(), msg))
	require.Equal(t, "1700000000", c.body["timestamp"])
	require.Equal(t, want, c.body["sign"])
	require.Equal(t, "text", c.body["msg_type"])
}

func TestWeComSlackWebhookFormats(t *testing.T) {
	srv, c, _ := receiver(t, `{"errcode":0,"errmsg":"ok"}`, 200)
	require.NoError(t, notify.WeCom{URL: srv.URL, Opts: notify.Options{HTTP: srv.Client()}}.Send(context.Background(), msg))
	require.Equal(t, "markdown", c.body["msgtype"])
	require.Contains(t, c.body["markdown"].(map[string]any)["content"], "YTO xyz 余额 90")

	srv2, c2, _ := receiver(t, `ok`, 200)
	require.NoError(t, notify.Slack{URL: srv2.URL, Opts: notify.Options{HTTP: srv2.Client()}}.Send(context.Background(), msg))
	require.Contains(t, c2.body["text"], "*电子面单余额不足*")

	srv3, c3, _ := receiver(t, ``, 204)
	require.NoError(t, notify.Webhook{URL: srv3.URL, Secret: "hook-secret", Opts: notify.Options{HTTP: srv3.Client(), Now: fixed}}.Send(context.Background(), msg))
	require.Equal(t, "1700000000", c3.header.Get("X-Cloudcall-Timestamp"))
	mac := hmac.New(sha256.New, []byte("hook-secret"))
	mac.Write([]byte("1700000000."))
	mac.Write(c3.raw)
	require.Equal(t, hexOf(mac.Sum(nil)), c3.header.Get("X-Cloudcall-Signature"))
	require.Equal(t, 90.0, c3.body["balance"])
}

func hexOf(b []byte) string {
	const d = "0123456789abcdef"
	out := make([]byte, len(b)*2)
	for i, x := range b {
		out[2*i], out[2*i+1] = d[x>>4], d[x&15]
	}
	return string(out)
}

func TestFailingChannelRetriedBoundedly(t *testing.T) {
	srv, _, n := receiver(t, `oops`, 500)
	err := notify.Slack{URL: srv.URL, Opts: notify.Options{HTTP: srv.Client(), Attempts: 3, Pause: time.Millisecond}}.Send(context.Background(), msg)
	require.ErrorContains(t, err, "HTTP 500")
	require.ErrorContains(t, err, "after 3 attempts")
	require.Equal(t, int32(3), n.Load())

	stop := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // answers only after the caller has given up
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer slow.Close()
	defer close(stop)
	// Attempts are counted as the client sends them: under load a request
	// the client gave up on at 50 ms may never reach the server's handler.
	var sent atomic.Int32
	timingOut := &http.Client{Timeout: 50 * time.Millisecond, Transport: countingTransport{&sent}}
	err = notify.WeCom{URL: slow.URL, Opts: notify.Options{HTTP: timingOut, Attempts: 2, Pause: time.Millisecond}}.Send(context.Background(), msg)
	require.ErrorContains(t, err, "after 2 attempts")
	require.Equal(t, int32(2), sent.Load())

	// Within a deadline too short for another try, it stops early.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	before := sent.Load()
	err = notify.WeCom{URL: slow.URL, Opts: notify.Options{HTTP: timingOut, Attempts: 5, Pause: time.Second}}.Send(ctx, msg)
	require.ErrorContains(t, err, "after 1 attempts")
	require.Equal(t, before+1, sent.Load())

	refuse, _, n2 := receiver(t, `{"errcode":310000,"errmsg":"sign not match"}`, 200)
	err = notify.DingTalk{URL: refuse.URL, Opts: notify.Options{HTTP: refuse.Client()}}.Send(context.Background(), msg)
	require.ErrorContains(t, err, "errcode 310000")
	require.Equal(t, int32(1), n2.Load(), "a refusal is not retried")
}

var update = flag.Bool("update", false, "rewrite the golden files")

// TestGoldenPayloads pins each channel's request body byte for byte.
func TestGoldenPayloads(t *testing.T) {
	m := notify.Message{Title: "电子面单余额不足 / Waybill balance low", Text: "YTO xyz <east & co> 余额 90，阈值 100。\nYTO xyz <east & co> has 90 waybills left (threshold 100).",
		Data: map[string]any{"event": "low", "balance": 90, "threshold": 100}}
	for name, build := range map[string]func(u string, c *http.Client) notify.Channel{
		"dingtalk": func(u string, c *http.Client) notify.Channel {
			return notify.DingTalk{URL: u, Secret: "SECdemo", Opts: notify.Options{HTTP: c, Now: fixed}}
		},
		"wecom": func(u string, c *http.Client) notify.Channel {
			return notify.WeCom{URL: u, Opts: notify.Options{HTTP: c}}
		},
		"feishu": func(u string, c *http.Client) notify.Channel {
			return notify.Feishu{URL: u, Secret: "feishu-secret", Opts: notify.Options{HTTP: c, Now: fixed}}
		},
		"slack": func(u string, c *http.Client) notify.Channel {
			return notify.Slack{URL: u, Opts: notify.Options{HTTP: c}}
		},
		"webhook": func(u string, c *http.Client) notify.Channel {
			return notify.Webhook{URL: u, Secret: "hook-secret", Opts: notify.Options{HTTP: c, Now: fixed}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv, c, n := receiver(t, `{"errcode":0,"code":0}`, 200)
			require.NoError(t, build(srv.URL, srv.Client()).Send(context.Background(), m))
			require.Equal(t, int32(1), n.Load())
			require.Equal(t, "application/json; charset=utf-8", c.header.Get("Content-Type"))
			path := filepath.Join("testdata", name+".json")
			if *update {
				require.NoError(t, os.WriteFile(path, append(c.raw, '\n'), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, strings.TrimSuffix(string(want), "\n"), string(c.raw))
		})
	}
}

// Channel errors reach the quota-alert response: they carry the channel,
// the status and a numeric code, never the answer's body or the URL, which
// hold the credential (Slack echoes the webhook path; robots quote keys).
func TestErrorsNeverCarryBodiesOrURLs(t *testing.T) {
	const secretPath = "/services/T0SECRET/B0SECRET/XXXXSECRETXXXX"
	const secretKey = "key=wecom-secret-key-1234"
	echo := func(status int, format string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			_, _ = io.WriteString(w, strings.ReplaceAll(format, "ECHO", r.URL.RequestURI()))
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	opts := func(srv *httptest.Server) notify.Options {
		return notify.Options{HTTP: srv.Client(), Attempts: 1, Pause: time.Millisecond}
	}
	cases := []struct {
		name string
		srv  *httptest.Server
		ch   func(u string, o notify.Options) notify.Channel
		want string
	}{
		{"slack 400 echoing the path", echo(400, "invalid_token for ECHO"), func(u string, o notify.Options) notify.Channel { return notify.Slack{URL: u, Opts: o} }, "slack: HTTP 400"},
		{"slack 404 html", echo(404, "<html>no service at ECHO</html>"), func(u string, o notify.Options) notify.Channel { return notify.Slack{URL: u, Opts: o} }, "slack: HTTP 404"},
		{"slack 500 echo", echo(500, "ECHO"), func(u string, o notify.Options) notify.Channel { return notify.Slack{URL: u, Opts: o} }, "slack: HTTP 500"},
		{"wecom errmsg quoting the key", echo(200, `{"errcode":93000,"errmsg":"invalid webhook url ECHO"}`), func(u string, o notify.Options) notify.Channel { return notify.WeCom{URL: u, Opts: o} }, "wecom: errcode 93000"},
		{"dingtalk errmsg", echo(200, `{"errcode":300001,"errmsg":"token ECHO is not exist"}`), func(u string, o notify.Options) notify.Channel { return notify.DingTalk{URL: u, Opts: o} }, "dingtalk: errcode 300001"},
		{"dingtalk 403 body", echo(403, "forbidden ECHO"), func(u string, o notify.Options) notify.Channel { return notify.DingTalk{URL: u, Opts: o} }, "dingtalk: HTTP 403"},
		{"feishu msg", echo(200, `{"code":19001,"msg":"param invalid: incoming webhook access token invalid ECHO"}`), func(u string, o notify.Options) notify.Channel { return notify.Feishu{URL: u, Opts: o} }, "feishu: code 19001"},
		{"webhook 401 body", echo(401, "who are you, ECHO"), func(u string, o notify.Options) notify.Channel { return notify.Webhook{URL: u, Opts: o} }, "webhook: HTTP 401"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.ch(c.srv.URL+secretPath+"?"+secretKey, opts(c.srv)).Send(context.Background(), msg)
			require.ErrorContains(t, err, c.want)
			for _, leak := range []string{"SECRET", "secret-key", c.srv.URL, "127.0.0.1", "ECHO", "invalid", "forbidden", "who are you", "html"} {
				require.NotContains(t, err.Error(), leak)
			}
		})
	}
	// Unreachable and malformed URLs: the error names neither the URL nor its key.
	for _, u := range []string{"http://127.0.0.1:1" + secretPath + "?" + secretKey, "http://bad host" + secretPath + "?" + secretKey, "http://h/%zz" + secretPath} {
		err := notify.WeCom{URL: u, Opts: notify.Options{HTTP: http.DefaultClient, Attempts: 1}}.Send(context.Background(), msg)
		require.Error(t, err)
		require.NotContains(t, err.Error(), "SECRET", u)
		require.NotContains(t, err.Error(), "secret-key", u)
		require.NotContains(t, err.Error(), "%zz", u)
	}
}

// A robot that hangs is given up on per attempt and tried again, rather
// than waited on until the caller's deadline (nothing bounded a try when the
// client had no timeout of its own).
func TestAHungAttemptIsRetried(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // so the server notices the client leaving
		if hits.Add(1) == 1 {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	err := notify.Webhook{URL: srv.URL, Opts: notify.Options{HTTP: srv.Client(), Attempts: 2, Pause: time.Millisecond, AttemptTimeout: 100 * time.Millisecond}}.Send(context.Background(), msg)
	require.NoError(t, err)
	require.Equal(t, int32(2), hits.Load())
}

// An account name (from QUOTA_ALERT_WATCH or WeChat's alias) or a vendor's
// error reaches the robots' markdown as text: a name shaped like a link or
// WeCom's <font> tag was rendered as one in the group.
func TestMarkdownChannelsKeepTextPlain(t *testing.T) {
	m := notify.Message{Title: "电子面单余额不足", Text: "YTO [pay here](https://evil.example) <font color=\"info\">ok</font> `x` *b* # h"}
	want := "YTO ［pay here］(https://evil.example) ＜font color=\"info\"＞ok＜/font＞ ｀x｀ ＊b＊ ＃ h"

	srv, c, _ := receiver(t, `{"errcode":0}`, 200)
	require.NoError(t, notify.DingTalk{URL: srv.URL, Opts: notify.Options{HTTP: srv.Client()}}.Send(context.Background(), m))
	require.Equal(t, "### 电子面单余额不足\n\n"+want, c.body["markdown"].(map[string]any)["text"])

	srv2, c2, _ := receiver(t, `{"errcode":0}`, 200)
	require.NoError(t, notify.WeCom{URL: srv2.URL, Opts: notify.Options{HTTP: srv2.Client()}}.Send(context.Background(), m))
	require.Equal(t, "**电子面单余额不足**\n"+want, c2.body["markdown"].(map[string]any)["content"])

	// Feishu's text has one markup: <at>, which could mention everyone.
	srv3, c3, _ := receiver(t, `{"code":0}`, 200)
	at := notify.Message{Title: "t", Text: `YTO x (<at user_id="all">all</at>) [a](b)`}
	require.NoError(t, notify.Feishu{URL: srv3.URL, Opts: notify.Options{HTTP: srv3.Client()}}.Send(context.Background(), at))
	require.Equal(t, "t\nYTO x (＜at user_id=\"all\"＞all＜/at＞) [a](b)", c3.body["content"].(map[string]any)["text"])
}

// A robot URL that redirects (http:// to https://, a moved hook) turned the
// POST into a GET without a body, and the landing page's 200 counted as
// delivered: the run said "sent" and nobody heard it. A redirect is now a
// refusal naming only the host, and is not retried.
func TestARedirectIsNotADelivery(t *testing.T) {
	var landed, hooks atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hook" {
			hooks.Add(1)
			http.Redirect(w, r, "/landing?key=s3cret", http.StatusMovedPermanently)
			return
		}
		landed.Add(1)
		w.WriteHeader(200)
	}))
	defer srv.Close()
	var n atomic.Int32
	o := notify.Options{HTTP: srv.Client(), Attempts: 3, Pause: time.Millisecond}
	for _, ch := range []notify.Channel{notify.Webhook{URL: srv.URL + "/hook", Opts: o}, notify.Slack{URL: srv.URL + "/hook", Opts: o}} {
		n.Add(1)
		err := ch.Send(context.Background(), msg)
		require.Error(t, err, ch.Name())
		require.Contains(t, err.Error(), "redirect")
		require.NotContains(t, err.Error(), "s3cret")
		// The hint names the channel's setting, not the vendors' base URLs.
		require.Contains(t, err.Error(), "QUOTA_ALERT_"+strings.ToUpper(ch.Name())+"_URL")
		require.NotContains(t, err.Error(), "_API_BASE")
	}
	require.Zero(t, landed.Load(), "the redirect is not followed")
	require.Equal(t, n.Load(), hooks.Load(), "nor retried: one try per channel")
}

// countingTransport counts the requests a client sends.
type countingTransport struct{ n *atomic.Int32 }

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}
