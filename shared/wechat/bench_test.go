package wechat_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/wechat"
)

// BenchmarkWarmInvocation is the whole function in-process (event
// detection, strict decoding, validation, cached token, upstream call,
// envelope) against the sandbox.
func BenchmarkWarmInvocation(b *testing.B) {
	h, payload := warmGetQuota(b, false)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Invoke(ctx, payload, runtime.Meta{})
	}
}

// warmGetQuota builds logistics-get-quota against a sandbox and runs one
// call (the token fetched); inMemory then answers its calls in memory.
func warmGetQuota(b *testing.B, inMemory bool) (*runtime.Handler, []byte) {
	sbx := wechatsbx.New(wechatsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	b.Cleanup(srv.Close)
	env := config.FromMap(sbx.Env(srv.URL))
	h, err := runtime.New(context.Background(), env, runtime.NewLogger(io.Discard, env), wechat.GetQuotaFactory)
	if err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"deliveryId":"YTO","bizId":"xyz"}`)
	if out := h.Invoke(context.Background(), payload, runtime.Meta{}); !bytes.Contains(out, []byte(`"quotaNum":210`)) {
		b.Fatalf("warm-up: %s", out)
	}
	if inMemory {
		h.Deps.HTTP.Transport.(*http.Transport).RegisterProtocol("http", cannedQuota{})
		if out := h.Invoke(context.Background(), payload, runtime.Meta{}); !bytes.Contains(out, []byte(`"quotaNum":210`)) {
			b.Fatalf("warm-up in memory: %s", out)
		}
	}
	return h, payload
}

// BenchmarkBareHTTP is the floor: one net/http POST of the same body to the
// same sandbox endpoint with a valid token.
func BenchmarkBareHTTP(b *testing.B) {
	sbx := wechatsbx.New(wechatsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	tm := wechat.NewTokenManager(wechat.TokenOptions{AppID: wechatsbx.DemoAppID, Secret: wechatsbx.DemoSecret, Base: srv.URL, HTTP: srv.Client(), KV: store.NewMemory(store.MemoryOptions{})})
	tok, err := tm.Token(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	url := srv.URL + "/cgi-bin/express/business/quota/get?access_token=" + tok
	body := `{"delivery_id":"YTO","biz_id":"xyz"}`
	barePosts(b, srv.Client(), url, body)
}

// barePosts is the floor's loop: POST, read the answer, close.
func barePosts(b *testing.B, c *http.Client, url, body string) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := c.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.Status)
		}
	}
}

// cannedQuota answers every request with getQuota's success, in memory.
type cannedQuota struct{}

func (cannedQuota) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	body := `{"errcode":0,"errmsg":"ok","quota_num":210}`
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader([]byte(body))), Request: r}, nil
}

// BenchmarkWarmWork is BenchmarkWarmInvocation with the network taken out:
// after the warm-up (token fetched from the sandbox), the client's
// transport answers in memory. What is left is the function's own work per
// call plus net/http's client side, which the bare POST pays too; unlike
// the loopback round trip it does not move with the machine's load.
func BenchmarkWarmWork(b *testing.B) {
	h, payload := warmGetQuota(b, true)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Invoke(ctx, payload, runtime.Meta{})
	}
}

// BenchmarkBareWork is BenchmarkBareHTTP through the same in-memory
// transport: net/http's client side alone. BenchmarkWarmWork less this is
// the function's own work per call.
func BenchmarkBareWork(b *testing.B) {
	t := &http.Transport{}
	t.RegisterProtocol("http", cannedQuota{})
	url := "http://wechat.invalid/cgi-bin/express/business/quota/get?access_token=ACCESS_TOKEN"
	body := `{"delivery_id":"YTO","biz_id":"xyz"}`
	barePosts(b, &http.Client{Transport: t}, url, body)
}
