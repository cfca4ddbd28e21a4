package wechat_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
	"github.com/cloudcall/cloudcall/shared/wechat"
)

// twoInstances are two function instances sharing one store, as a
// deployment's are: the second reads the token the first fetched.
func twoInstances(t *testing.T) (*wechatsbx.Server, *miniredis.Miniredis, [2]*runtime.Handler) {
	t.Helper()
	sbx := wechatsbx.New(wechatsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	t.Cleanup(srv.Close)
	mr := miniredis.RunT(t)
	vars := sbx.Env(srv.URL)
	vars["CLOUDCALL_STORE"] = "redis://" + mr.Addr() + "/0"
	var hs [2]*runtime.Handler
	for i := range hs {
		h, err := runtime.New(context.Background(), config.FromMap(maps.Clone(vars)), slog.New(slog.DiscardHandler), wechat.GetQuotaFactory)
		require.NoError(t, err)
		hs[i] = h
	}
	return sbx, mr, hs
}

// storedToken is the access token in the shared store.
func storedToken(t *testing.T, mr *miniredis.Miniredis) string {
	t.Helper()
	for _, k := range mr.Keys() {
		if v, err := mr.Get(k); err == nil && strings.Contains(v, `"t":`) {
			var c struct {
				Token string `json:"t"`
			}
			require.NoError(t, json.Unmarshal([]byte(v), &c))
			return c.Token
		}
	}
	t.Fatal("no token in the store")
	return ""
}

// An instance that read the token from the store masks it as the one that
// fetched it does: WeChat quoted it in an errmsg, and every other instance
// answered it in clear (outside tester: N-1 of N instances).
func TestATokenReadFromTheStoreIsMasked(t *testing.T) {
	sbx, mr, hs := twoInstances(t)
	in := []byte(`{"deliveryId":"YTO","bizId":"xyz"}`)
	require.Contains(t, string(hs[0].Invoke(context.Background(), in, runtime.Meta{RequestID: "a"})), `"errCode":0`)
	tok := storedToken(t, mr)
	// An answer that quotes the token and is not retried, so this instance
	// fetches nothing itself (stable_token would hand it the same token).
	sbx.Inject(sandbox.Fault{Path: "/cgi-bin/express/business/quota/get", Kind: sandbox.FaultStatus, Status: 200, Times: 1,
		Body: `{"errcode":45009,"errmsg":"reach max api daily quota limit for ` + tok + ` rid: 1"}`})
	fetches := sbx.Calls("token")
	out := string(hs[1].Invoke(context.Background(), in, runtime.Meta{RequestID: "b"}))
	require.Equal(t, fetches, sbx.Calls("token"))
	require.Contains(t, out, `"errCode":45009`)
	require.NotContains(t, out, tok)
	require.Contains(t, out, "for [REDACTED] rid: 1")
}

// Two refused tokens in reach, one in this instance's memory and another in
// the store (as after a store outage, when each instance kept its own):
// the call tries the second, then fetches, instead of answering 40001.
func TestTwoRefusedTokensThenAFetch(t *testing.T) {
	sbx, mr, hs := twoInstances(t)
	in := []byte(`{"deliveryId":"YTO","bizId":"xyz"}`)
	ctx := context.Background()
	require.Contains(t, string(hs[0].Invoke(ctx, in, runtime.Meta{RequestID: "a"})), `"errCode":0`)
	first := storedToken(t, mr)
	// Another instance stores a newer token; this one still holds the first.
	for _, k := range mr.Keys() {
		if v, _ := mr.Get(k); strings.Contains(v, first) {
			require.NoError(t, mr.Set(k, strings.Replace(v, first, "TOKEN-FROM-ANOTHER-INSTANCE", 1)))
		}
	}
	fetches := sbx.Calls("token")
	stale := `{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest rid: 2"}`
	sbx.Inject(sandbox.Fault{Path: "/cgi-bin/express/business/quota/get", Kind: sandbox.FaultStatus, Status: 200, Body: stale, Times: 2})
	out := string(hs[0].Invoke(ctx, in, runtime.Meta{RequestID: "b"}))
	require.Contains(t, out, `"errCode":0`, out)
	require.Equal(t, fetches+1, sbx.Calls("token"), "one fetch, after both refused tokens")
	require.Equal(t, 4, sbx.Calls("http:/cgi-bin/express/business/quota/get"), "the first call, then three: memory's token, the store's, a fetched one")
}
