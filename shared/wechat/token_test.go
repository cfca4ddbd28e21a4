package wechat_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/sandbox"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/wechat"
)

const (
	stablePath = "/cgi-bin/stable_token"
	quotaPath  = "/cgi-bin/express/business/quota/get"
)

// kv wraps the memory store: it records the TTL of every write and can be
// switched to "down" (every call fails with store.ErrUnavailable, as the
// Redis store does when Redis is unreachable).
type kv struct {
	store.KV
	mu   sync.Mutex
	down bool
	ttls map[string]time.Duration
}

var errDown = fmt.Errorf("%w: connection refused", store.ErrUnavailable)

func (k *kv) setDown(d bool) { k.mu.Lock(); k.down = d; k.mu.Unlock() }
func (k *kv) isDown() bool   { k.mu.Lock(); defer k.mu.Unlock(); return k.down }
func (k *kv) ttl(key string) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ttls[key]
}

func (k *kv) Get(ctx context.Context, key string) ([]byte, error) {
	if k.isDown() {
		return nil, errDown
	}
	return k.KV.Get(ctx, key)
}

func (k *kv) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	if k.isDown() {
		return errDown
	}
	k.mu.Lock()
	k.ttls[key] = ttl
	k.mu.Unlock()
	return k.KV.Set(ctx, key, v, ttl)
}

func (k *kv) SetNX(ctx context.Context, key string, v []byte, ttl time.Duration) (bool, error) {
	if k.isDown() {
		return false, errDown
	}
	k.mu.Lock()
	k.ttls[key] = ttl
	k.mu.Unlock()
	return k.KV.SetNX(ctx, key, v, ttl)
}

func (k *kv) CompareAndSwap(ctx context.Context, key string, old, v []byte, ttl time.Duration) (bool, error) {
	if k.isDown() {
		return false, errDown
	}
	return k.KV.CompareAndSwap(ctx, key, old, v, ttl)
}

func (k *kv) CompareAndDelete(ctx context.Context, key string, old []byte) (bool, error) {
	if k.isDown() {
		return false, errDown
	}
	return k.KV.CompareAndDelete(ctx, key, old)
}

func (k *kv) Delete(ctx context.Context, key string) error {
	if k.isDown() {
		return errDown
	}
	return k.KV.Delete(ctx, key)
}

// tokenRig is a sandbox plus a store on the sandbox's clock, so advancing
// the clock ages tokens at WeChat and in the cache alike.
type tokenRig struct {
	sbx *wechatsbx.Server
	srv *httptest.Server
	kv  *kv
}

func newTokenRig(t *testing.T) *tokenRig {
	t.Helper()
	sbx := wechatsbx.New(wechatsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	t.Cleanup(srv.Close)
	mem := store.NewMemory(store.MemoryOptions{Now: sbx.Clock.Now})
	return &tokenRig{sbx: sbx, srv: srv, kv: &kv{KV: mem, ttls: map[string]time.Duration{}}}
}

// manager is one instance's token manager on the rig's shared store.
func (r *tokenRig) manager(mode string) *wechat.TokenManager {
	return wechat.NewTokenManager(wechat.TokenOptions{
		AppID: wechatsbx.DemoAppID, Secret: wechatsbx.DemoSecret, Base: r.srv.URL, Mode: mode,
		HTTP: r.srv.Client(), KV: r.kv, Now: r.sbx.Clock.Now,
	})
}

func ctx5s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestTokenRefreshBeforeExpiry(t *testing.T) {
	cases := []struct {
		name    string
		mode    string
		advance time.Duration
		fetches int  // token fetches in all
		same    bool // the second Token() is the first one
	}{
		{"stable: reused an hour later", wechat.ModeStable, time.Hour, 1, true},
		{"stable: reused until expires_in minus 60 s", wechat.ModeStable, 7200*time.Second - 61*time.Second, 1, true},
		{"stable: refreshed inside the last 60 s", wechat.ModeStable, 7200*time.Second - 59*time.Second, 2, false},
		{"stable: refreshed after expiry", wechat.ModeStable, 3 * time.Hour, 2, false},
		{"classic: reused an hour later", wechat.ModeClassic, time.Hour, 1, true},
		{"classic: refreshed inside the last 60 s", wechat.ModeClassic, 7200*time.Second - 59*time.Second, 2, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newTokenRig(t)
			m := r.manager(c.mode)
			ctx := ctx5s(t)
			t1, err := m.Token(ctx)
			require.NoError(t, err)
			r.sbx.Clock.Advance(c.advance)
			t2, err := m.Token(ctx)
			require.NoError(t, err)
			require.Equal(t, c.same, t1 == t2)
			require.Equal(t, c.fetches, r.sbx.Calls("token"))
		})
	}
}

func TestTokenCacheTTLFromExpiresIn(t *testing.T) {
	cases := []struct {
		expiresIn int
		ttl       time.Duration
	}{
		{7200, 7140 * time.Second},
		{300, 240 * time.Second}, // stable_token's smallest answer: still positive
		{61, 30 * time.Second},   // the floor
		{10, 10 * time.Second},   // never longer than the token lives
		{0, 30 * time.Second},    // no expires_in: the floor, never zero
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.expiresIn), func(t *testing.T) {
			r := newTokenRig(t)
			r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 200, Times: 1,
				Body: fmt.Sprintf(`{"access_token":"tok-%d","expires_in":%d}`, c.expiresIn, c.expiresIn)})
			tok, err := r.manager("").Token(ctx5s(t))
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("tok-%d", c.expiresIn), tok)
			require.Equal(t, c.ttl, r.kv.ttl("wechat:token:stable:"+wechatsbx.DemoAppID))
		})
	}
}

func TestTokenConfigurationErrorsSurfaceAndAreNotLooped(t *testing.T) {
	cases := []struct {
		name   string
		code   int
		secret string // empty: the demo secret
		inject string // empty: the sandbox answers by itself
		hint   string
	}{
		{"wrong secret (sandbox)", 40125, "not-the-secret", "", "check WECHAT_APPSECRET"},
		{"40001 from the token endpoint is a wrong secret", 40001, "", `{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest rid: 1"}`, "check WECHAT_APPSECRET"},
		{"unknown appid", 40013, "", `{"errcode":40013,"errmsg":"invalid appid rid: 2"}`, "check WECHAT_APPID"},
		{"IP not whitelisted", 40164, "", `{"errcode":40164,"errmsg":"invalid ip 1.2.3.4 ipv6 ::ffff:1.2.3.4, not in whitelist rid: 3"}`, "IP whitelist"},
		{"secret frozen", 40243, "", `{"errcode":40243,"errmsg":"AppSecret已被冻结 rid: 4"}`, "frozen"},
		{"api unauthorized", 48001, "", `{"errcode":48001,"errmsg":"api unauthorized rid: 5"}`, "not authorized"},
		{"daily quota", 45009, "", `{"errcode":45009,"errmsg":"reach max api daily quota limit rid: 6"}`, "daily API quota"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newTokenRig(t)
			secret := wechatsbx.DemoSecret
			if c.secret != "" {
				secret = c.secret
			}
			if c.inject != "" {
				r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 200, Body: c.inject})
			}
			m := wechat.NewTokenManager(wechat.TokenOptions{AppID: wechatsbx.DemoAppID, Secret: secret, Base: r.srv.URL,
				HTTP: r.srv.Client(), KV: r.kv, Now: r.sbx.Clock.Now})
			ctx := ctx5s(t)
			_, err := m.Token(ctx)
			var ae *wechat.APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, c.code, ae.Code)
			require.True(t, ae.Token && ae.Config())
			require.Equal(t, 1, r.sbx.Calls("http:"+stablePath), "no retry")

			e := wechat.Envelope(err)
			require.Equal(t, c.code, e.Code)
			require.Contains(t, e.Reason, c.hint)
			require.NotContains(t, e.Reason+err.Error(), secret)

			// Further calls on this instance answer the same error without
			// calling WeChat, for a while.
			_, err = m.Token(ctx)
			require.ErrorAs(t, err, &ae)
			require.Equal(t, c.code, ae.Code)
			require.Equal(t, 1, r.sbx.Calls("http:"+stablePath))
			r.sbx.Clock.Advance(11 * time.Second)
			_, _ = m.Token(ctx)
			require.Equal(t, 2, r.sbx.Calls("http:"+stablePath), "asked again once the hold is over")
		})
	}
}

func TestTokenFixedConfigurationIsPickedUpAfterTheHold(t *testing.T) {
	r := newTokenRig(t)
	r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 200, Times: 1,
		Body: `{"errcode":40164,"errmsg":"invalid ip 1.2.3.4, not in whitelist rid: 3"}`})
	m := r.manager("")
	ctx := ctx5s(t)
	_, err := m.Token(ctx)
	require.Error(t, err)
	r.sbx.Clock.Advance(11 * time.Second) // the IP was whitelisted meanwhile
	tok, err := m.Token(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, tok)
	require.Equal(t, 2, r.sbx.Calls("http:"+stablePath))
}

// A failing token endpoint is asked once a second per instance, not once a
// call: a 503 for 11 s drew 3,300 requests from one deployment. Its 5xx is
// -1302 (retry), as the business call's is, not "could not be read".
func TestTokenEndpointFailureIsHeldForASecond(t *testing.T) {
	r := newTokenRig(t)
	r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 503, Body: `<html>busy</html>`})
	m := r.manager("")
	ctx := ctx5s(t)
	for range 20 {
		_, err := m.Token(ctx)
		var e *envelope.Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, envelope.CodeUpstreamUnreachable, e.Code)
		require.Contains(t, e.Reason, "token endpoint answered HTTP 503")
	}
	require.Equal(t, 1, r.sbx.Calls("http:"+stablePath), "one request for 20 calls within the second")
	r.sbx.ClearFaults()
	r.sbx.Clock.Advance(1100 * time.Millisecond)
	tok, err := m.Token(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, tok)
	require.Equal(t, 2, r.sbx.Calls("http:"+stablePath))
}

func TestTokenSystemBusyRetried(t *testing.T) {
	busy := `{"errcode":-1,"errmsg":"system error rid: 7"}`
	cases := []struct {
		name    string
		times   int // -1 answers injected; 0 = every answer
		ok      bool
		fetches int
	}{
		{"once", 1, true, 2},
		{"twice", 2, true, 3},
		{"always: bounded, then surfaced", 0, false, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newTokenRig(t)
			r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 200, Body: busy, Times: c.times})
			_, err := r.manager("").Token(ctx5s(t))
			if c.ok {
				require.NoError(t, err)
			} else {
				var ae *wechat.APIError
				require.ErrorAs(t, err, &ae)
				require.Equal(t, -1, ae.Code)
				require.False(t, ae.Config(), "busy is not a configuration error")
			}
			require.Equal(t, c.fetches, r.sbx.Calls("http:"+stablePath))
		})
	}
}

func TestTokenSystemBusyStopsAtTheDeadline(t *testing.T) {
	r := newTokenRig(t)
	r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 200, Body: `{"errcode":-1,"errmsg":"system error rid: 8"}`})
	// Too little time for any backoff plus a retried call: one attempt only.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err := r.manager("").Token(ctx)
	var ae *wechat.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, -1, ae.Code)
	require.Equal(t, 1, r.sbx.Calls("http:"+stablePath))
}

func TestTokenOneFetchForManyInstancesSharingAStore(t *testing.T) {
	r := newTokenRig(t)
	managers := []*wechat.TokenManager{r.manager(""), r.manager(""), r.manager(""), r.manager("")}
	ctx := ctx5s(t)
	var wg sync.WaitGroup
	toks := make([]string, 40)
	errs := make([]error, 40)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], errs[i] = managers[i%len(managers)].Token(ctx)
		}()
	}
	wg.Wait()
	for i := range toks {
		require.NoError(t, errs[i])
		require.Equal(t, toks[0], toks[i])
	}
	require.Equal(t, 1, r.sbx.Calls("token"))
}

func TestTokenCompareAndExpire(t *testing.T) {
	r := newTokenRig(t)
	a, b := r.manager(""), r.manager("") // two instances, one store
	ctx := ctx5s(t)
	t1, err := a.Token(ctx)
	require.NoError(t, err)
	tb, err := b.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, t1, tb)
	require.Equal(t, 1, r.sbx.Calls("token"))

	r.sbx.Rotate(wechatsbx.DemoAppID)
	a.Expire(ctx, t1) // a's call saw 40001 first
	t2, err := a.Token(ctx)
	require.NoError(t, err)
	require.NotEqual(t, t1, t2)
	require.Equal(t, 2, r.sbx.Calls("token"))

	b.Expire(ctx, t1) // b saw the same stale token later: t2 must survive
	tb, err = b.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, t2, tb)
	require.Equal(t, 2, r.sbx.Calls("token"), "b reads a's new token, no fetch")
	raw, err := r.kv.Get(ctx, "wechat:token:stable:"+wechatsbx.DemoAppID)
	require.NoError(t, err)
	require.Contains(t, string(raw), t2)
}

func TestTokenStoreDown(t *testing.T) {
	cases := []struct {
		name      string
		downAfter int // calls made before the store goes down
	}{
		{"down from the start", 0},
		{"down after the token was shared", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newTokenRig(t)
			cl := wechat.NewClient(r.manager(""))
			ctx := ctx5s(t)
			for i := 0; i < 10; i++ {
				if i == c.downAfter {
					r.kv.setDown(true)
				}
				n, err := cl.GetQuota(ctx, "YTO", "xyz")
				require.NoError(t, err)
				require.Equal(t, int64(210), n)
			}
			require.Equal(t, 1, r.sbx.Calls("token"), "a store outage is a miss, not a fetch per call")
			require.Equal(t, 10, r.sbx.Calls("quota"))

			// A stale token while the store is down: one refetch, one retry.
			r.sbx.Rotate(wechatsbx.DemoAppID)
			_, err := cl.GetQuota(ctx, "YTO", "xyz")
			require.NoError(t, err)
			require.Equal(t, 2, r.sbx.Calls("token"))
		})
	}
}

func TestClientRetries(t *testing.T) {
	stale := `{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest rid: 9"}`
	cases := []struct {
		name    string
		body    string // injected answer of quota/get
		times   int
		code    int // 0: success
		calls   int // quota/get requests
		fetches int // token fetches
	}{
		{"40001 once: refetch, retry once", stale, 1, 0, 2, 2},
		{"40014 once", `{"errcode":40014,"errmsg":"invalid access_token rid: 10"}`, 1, 0, 2, 2},
		{"42001 once", `{"errcode":42001,"errmsg":"access_token expired rid: 11"}`, 1, 0, 2, 2},
		{"stale twice: surfaced, no loop", stale, 2, 40001, 2, 2},
		{"-1 once: retried", `{"errcode":-1,"errmsg":"system error rid: 12"}`, 1, 0, 2, 1},
		{"45009 on the business call: surfaced", `{"errcode":45009,"errmsg":"reach max api daily quota limit rid: 13"}`, 1, 45009, 1, 1},
		{"48001 on the business call: surfaced", `{"errcode":48001,"errmsg":"api unauthorized rid: 14"}`, 1, 48001, 1, 1},
		{"5xx once: retried", `oops`, 1, 0, 2, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newTokenRig(t)
			cl := wechat.NewClient(r.manager(""))
			ctx := ctx5s(t)
			_, err := cl.GetQuota(ctx, "YTO", "xyz") // warm: token cached
			require.NoError(t, err)
			status := 200
			if c.body == "oops" {
				status = 503
			}
			r.sbx.Inject(sandbox.Fault{Path: quotaPath, Kind: sandbox.FaultStatus, Status: status, Body: c.body, Times: c.times})
			n, err := cl.GetQuota(ctx, "YTO", "xyz")
			if c.code == 0 {
				require.NoError(t, err)
				require.Equal(t, int64(210), n)
			} else {
				var ae *wechat.APIError
				require.ErrorAs(t, err, &ae)
				require.Equal(t, c.code, ae.Code)
				require.False(t, ae.Token)
				require.NotEmpty(t, ae.RID())
			}
			require.Equal(t, 1+c.calls, r.sbx.Calls("http:"+quotaPath))
			require.Equal(t, c.fetches, r.sbx.Calls("token"))
		})
	}
}

// A 40001 that was not about the token (WeChat hands the same live token
// back): after the one retry, later calls use that token without fetching.
func TestRefusedTokenReissuedIsUsedAgain(t *testing.T) {
	r, cl, ctx := warmClient(t)
	r.sbx.Inject(sandbox.Fault{Path: quotaPath, Kind: sandbox.FaultStatus, Status: 200, Times: 1,
		Body: `{"errcode":40001,"errmsg":"invalid credential rid: 15"}`})
	_, err := cl.GetQuota(ctx, "YTO", "xyz")
	require.NoError(t, err)
	require.Equal(t, 2, r.sbx.Calls("token"))
	for i := 0; i < 5; i++ {
		_, err = cl.GetQuota(ctx, "YTO", "xyz")
		require.NoError(t, err)
	}
	require.Equal(t, 2, r.sbx.Calls("token"), "no fetch per call afterwards")
}

func TestGetAllDeliveryAndAccount(t *testing.T) {
	r := newTokenRig(t)
	cl := wechat.NewClient(r.manager(""))
	ctx := ctx5s(t)
	couriers, err := cl.GetAllDelivery(ctx)
	require.NoError(t, err)
	can := map[string]int{}
	for _, c := range couriers {
		can[c.DeliveryID] = 0
		if c.QuotaReadable() {
			can[c.DeliveryID] = 1
		}
	}
	require.Equal(t, map[string]int{"YTO": 1, "ZTO": 1, "YUNDA": 1, "SF": 0, "EMS": 0}, can)

	accounts, err := cl.GetAllAccount(ctx)
	require.NoError(t, err)
	require.Len(t, accounts, len(wechatsbx.DemoAccounts()))
	byID := map[string]string{}
	for _, a := range accounts {
		byID[a.DeliveryID+"/"+a.BizID] = string(a.QuotaNum)
	}
	require.Equal(t, "0", byID["ZTO/zero-balance"], "a zero balance is kept, not lost")
	require.Equal(t, "210", byID["YTO/xyz"])
	require.Equal(t, 1, r.sbx.Calls("token"))
}

func TestTokenNeverInErrors(t *testing.T) {
	r := newTokenRig(t)
	m := r.manager(wechat.ModeClassic)
	cl := wechat.NewClient(m)
	ctx := ctx5s(t)
	tok, err := m.Token(ctx)
	require.NoError(t, err)
	// A reset after the request was sent: the transport error must not
	// carry the URL, whose query holds the token.
	r.sbx.Inject(sandbox.Fault{Path: quotaPath, Kind: sandbox.FaultReset})
	_, err = cl.GetQuota(ctx, "YTO", "xyz")
	require.Error(t, err)
	var ee *envelope.Error
	require.True(t, errors.As(err, &ee))
	require.Equal(t, envelope.CodeUpstreamUnreachable, ee.Code)
	require.False(t, strings.Contains(err.Error(), tok) || strings.Contains(ee.Reason, tok), err.Error())

	// The classic token URL carries the secret.
	r2 := newTokenRig(t)
	r2.sbx.Inject(sandbox.Fault{Path: "/cgi-bin/token", Kind: sandbox.FaultReset})
	_, err = r2.manager(wechat.ModeClassic).Token(ctx)
	require.Error(t, err)
	require.NotContains(t, err.Error(), wechatsbx.DemoSecret)
}

// A 429 from WeChat's gateway is throttling (-1201, wait 1 s), sent once:
// not a refusal, not an unreadable answer, and not retried at once.
func TestHTTP429IsThrottled(t *testing.T) {
	r, cl, ctx := warmClient(t)
	r.sbx.Inject(sandbox.Fault{Path: quotaPath, Kind: sandbox.FaultStatus, Status: 429, Body: `{}`, Times: 1})
	_, err := cl.GetQuota(ctx, "YTO", "xyz")
	e := envelope.As(err)
	require.Equal(t, envelope.CodeThrottled, e.Code, err)
	require.Equal(t, 1, e.RetryAfter)
	require.Equal(t, 429, e.Upstream.HTTPStatus)
	require.Equal(t, 2, r.sbx.Calls("http:"+quotaPath))
}

// A refresher killed mid-fetch holds the others off until its lease ends:
// 9 s of failed calls on every other instance (outside tester). With
// stable_token, whose normal mode hands every caller the same token, a
// second fetch is harmless, so the lease is 3 s; classic mode, where each
// fetch invalidates the token before it, keeps 10 s.
func TestARefreshersLeaseFitsItsMode(t *testing.T) {
	for mode, want := range map[string]time.Duration{wechat.ModeStable: 3 * time.Second, wechat.ModeClassic: 10 * time.Second} {
		r := newTokenRig(t)
		_, err := r.manager(mode).Token(ctx5s(t))
		require.NoError(t, err)
		require.Equal(t, want, r.kv.ttl("wechat:token:"+mode+":"+wechatsbx.DemoAppID+":lock"), mode)
	}
}

// A 503 that says how long it lasts (Retry-After) is waited out when the
// deadline allows, then retried; one longer than the deadline is answered at
// once with that wait (-1302, retryAfter), not retried into the outage
// after 100 ms.
func TestA503sRetryAfterIsHonoured(t *testing.T) {
	r, cl, ctx := warmClient(t)
	r.sbx.Inject(sandbox.Fault{Path: quotaPath, Kind: sandbox.FaultStatus, Status: 503, Body: `busy`, RetryAfter: 1, Times: 1})
	start := time.Now()
	n, err := cl.GetQuota(ctx, "YTO", "xyz")
	require.NoError(t, err)
	require.Equal(t, int64(210), n)
	require.GreaterOrEqual(t, time.Since(start), time.Second, "the retry waited the second asked for")
	require.Equal(t, 3, r.sbx.Calls("http:"+quotaPath))

	r.sbx.Inject(sandbox.Fault{Path: quotaPath, Kind: sandbox.FaultStatus, Status: 503, Body: `busy`, RetryAfter: 30})
	_, err = cl.GetQuota(ctx5s(t), "YTO", "xyz")
	e := envelope.As(err)
	require.Equal(t, envelope.CodeUpstreamUnreachable, e.Code, err)
	require.Equal(t, 30, e.RetryAfter)
	require.Equal(t, 503, e.Upstream.HTTPStatus)
	require.Equal(t, 4, r.sbx.Calls("http:"+quotaPath), "30 s do not fit a 5 s deadline: no retry")
}

// warmClient is a client whose token is fetched and cached already (one
// call made), with a 5 s context.
func warmClient(t *testing.T) (*tokenRig, *wechat.Client, context.Context) {
	t.Helper()
	r := newTokenRig(t)
	cl := wechat.NewClient(r.manager(""))
	ctx := ctx5s(t)
	_, err := cl.GetQuota(ctx, "YTO", "xyz")
	require.NoError(t, err)
	return r, cl, ctx
}

// Warm fetches the stable token once for the calls to come; in classic mode
// it fetches nothing (each fetch there invalidates the token before it).
func TestWarmFetchesOnlyAStableToken(t *testing.T) {
	cases := []struct {
		mode                  string
		afterWarm, afterToken int
	}{
		{wechat.ModeStable, 1, 1},
		{wechat.ModeClassic, 0, 1},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			r := newTokenRig(t)
			m := r.manager(c.mode)
			m.Warm(ctx5s(t))
			require.Equal(t, c.afterWarm, r.sbx.Calls("token"))
			_, err := m.Token(ctx5s(t))
			require.NoError(t, err)
			require.Equal(t, c.afterToken, r.sbx.Calls("token"))
		})
	}
}

// A warm-up that met a failing endpoint does not answer the first call with
// it: the call asks again. A configuration error is still held, so a wrong
// secret is asked once, not once by the warm-up and again by the call.
func TestWarmFailureIsNotHeldButAConfigurationErrorIs(t *testing.T) {
	r := newTokenRig(t)
	r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 503, Times: 1})
	m := r.manager("")
	m.Warm(ctx5s(t))
	require.Equal(t, 1, r.sbx.Calls("http:"+stablePath))
	tok, err := m.Token(ctx5s(t))
	require.NoError(t, err, "the clock has not moved: a held failure would answer here")
	require.NotEmpty(t, tok)
	require.Equal(t, 2, r.sbx.Calls("http:"+stablePath))

	bad := newTokenRig(t)
	wrong := wechat.NewTokenManager(wechat.TokenOptions{AppID: wechatsbx.DemoAppID, Secret: "wrong-secret", Base: bad.srv.URL,
		HTTP: bad.srv.Client(), KV: bad.kv, Now: bad.sbx.Clock.Now})
	wrong.Warm(ctx5s(t))
	_, err = wrong.Token(ctx5s(t))
	var ae *wechat.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, 1, bad.sbx.Calls("http:"+stablePath))
}

// A call that arrives while the warm-up's fetch is out waits for it: one
// fetch, one token, under -race.
func TestACallDuringTheWarmFetchWaitsForIt(t *testing.T) {
	r := newTokenRig(t)
	r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultLatency, Delay: 300 * time.Millisecond, Times: 1})
	m := r.manager("")
	done := make(chan struct{})
	go func() { defer close(done); m.Warm(context.Background()) }()
	require.Eventually(t, func() bool { return r.sbx.Calls("http:"+stablePath) == 1 }, 2*time.Second, time.Millisecond)
	toks := make([]string, 8)
	var wg sync.WaitGroup
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := m.Token(ctx5s(t))
			assert.NoError(t, err)
			toks[i] = tok
		}()
	}
	wg.Wait()
	<-done
	for _, tok := range toks {
		require.Equal(t, toks[0], tok)
	}
	require.Equal(t, 1, r.sbx.Calls("token"))
}

// The cold start's fetch is not the calls': when it fails, calls waiting
// for it ask on their own (one more fetch for all of them), and none hears
// its failure.
func TestCallsWaitingForAFailedWarmFetchAskAgain(t *testing.T) {
	r := newTokenRig(t)
	r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultLatency, Delay: 300 * time.Millisecond, Times: 1})
	r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 503, Body: `busy`, Times: 1})
	m := r.manager("")
	done := make(chan struct{})
	go func() { defer close(done); m.Warm(context.Background()) }()
	require.Eventually(t, func() bool { return r.sbx.Calls("http:"+stablePath) == 1 }, 2*time.Second, time.Millisecond)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := m.Token(ctx5s(t))
			assert.NoError(t, err)
			assert.NotEmpty(t, tok)
		}()
	}
	wg.Wait()
	<-done
	require.Equal(t, 2, r.sbx.Calls("http:"+stablePath), "the failed start's request and one for the eight calls")
}

// warmWaitForTest is the token manager's warmWait (a stable lease).
const warmWaitForTest = 3 * time.Second

// A cold start's fetch that hangs holds a call up for a lease's length at
// most; the call then asks on its own, and the calls after it find its
// token at once.
func TestACallOutwaitsAHungWarmFetch(t *testing.T) {
	r := newTokenRig(t)
	// It hangs past the lease and past the call's own 5 s (the server
	// closes once it ends).
	m := r.hungWarm(t, warmWaitForTest+3*time.Second)
	tok, err := m.Token(ctx5s(t))
	require.NoError(t, err)
	require.NotEmpty(t, tok)
	require.Equal(t, 2, r.sbx.Calls("http:"+stablePath))
	again, err := m.Token(ctx5s(t))
	require.NoError(t, err)
	require.Equal(t, tok, again)
	require.Equal(t, 2, r.sbx.Calls("http:"+stablePath), "the next call took the token, the start's fetch still hanging")
}

// A call with a short deadline does not spend it waiting for a hung start
// fetch: it waits half its time at most, then fetches past that fetch's
// lease (outside re-tester: 2 s deadlines failed for 10 s).
func TestAShortCallDoesNotWaitOutAHungWarmFetch(t *testing.T) {
	r := newTokenRig(t)
	m := r.hungWarm(t, warmWaitForTest+time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	tok, err := m.Token(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, tok)
	require.Equal(t, 2, r.sbx.Calls("http:"+stablePath))
}

// Another instance's token in the shared store is taken at once, the start
// fetch of this one still hanging (an outside re-tester's call waited 3 s
// with it there).
func TestAStoredTokenIsTakenWhileTheWarmFetchHangs(t *testing.T) {
	r := newTokenRig(t)
	a := r.hungWarm(t, warmWaitForTest+time.Second)
	// What another instance's fetch leaves in the store.
	until := r.sbx.Clock.Now().Add(time.Hour).UnixMilli()
	require.NoError(t, r.kv.Set(ctx5s(t), "wechat:token:stable:"+wechatsbx.DemoAppID, []byte(fmt.Sprintf(`{"t":"from-b","u":%d}`, until)), time.Hour))
	start := time.Now()
	tok, err := a.Token(ctx5s(t))
	require.NoError(t, err)
	require.Equal(t, "from-b", tok)
	require.Less(t, time.Since(start), time.Second, "read from the store, not after waiting for the start fetch")
	require.Equal(t, 1, r.sbx.Calls("http:"+stablePath))
}

// A 429 from the token endpoint keeps the instance away for its Retry-After,
// as every call is told to wait: one request, not one a call.
func TestAThrottledTokenEndpointIsHeldForItsRetryAfter(t *testing.T) {
	r := newTokenRig(t)
	r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 429, Body: "slow down", RetryAfter: 5})
	m := r.manager("")
	for range 20 {
		_, err := m.Token(ctx5s(t))
		var e *envelope.Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, envelope.CodeThrottled, e.Code)
		require.Equal(t, 5, e.RetryAfter)
	}
	require.Equal(t, 1, r.sbx.Calls("http:"+stablePath), "one request for 20 calls within the 5 s")
	r.sbx.ClearFaults()
	r.sbx.Clock.Advance(5100 * time.Millisecond)
	_, err := m.Token(ctx5s(t))
	require.NoError(t, err)
	require.Equal(t, 2, r.sbx.Calls("http:"+stablePath))
}

// Calls waiting for a hung start fetch take the token as soon as one call
// of the instance got it past that fetch (an outside re-tester's call slept
// on to the 3 s mark with it there).
func TestWaitersTakeATokenAnotherCallGot(t *testing.T) {
	r := newTokenRig(t)
	m := r.hungWarm(t, warmWaitForTest+time.Second)
	long := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		_, err := m.Token(ctx5s(t)) // would wait to the 3 s mark for the start fetch
		assert.NoError(t, err)
		long <- time.Since(start)
	}()
	short, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := m.Token(short) // gives up on the start fetch at half its second and fetches
	require.NoError(t, err)
	require.Less(t, <-long, 2*time.Second, "woken by the short call's token, not at the start fetch's lease")
	require.Equal(t, 2, r.sbx.Calls("http:"+stablePath))
}

// WeChat's own rate-limit answers from the token endpoint are held too:
// 45011 until the next minute, a -1 that outlasted its retries for a
// second; one request for many calls, not one (and its retries) a call.
func TestWeChatRateLimitAnswersAreHeld(t *testing.T) {
	cases := []struct {
		name     string
		body     string
		code     int
		requests int // stable_token requests for 10 calls
	}{
		{"45011 minute quota", `{"errcode":45011,"errmsg":"api minute-quota reach limit  mustslower  retry next minute"}`, 45011, 1},
		{"-1 system busy", `{"errcode":-1,"errmsg":"system error"}`, -1, 4}, // the first call's request and its three retries
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newTokenRig(t)
			r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 200, Body: c.body})
			m := r.manager("")
			for range 10 {
				_, err := m.Token(ctx5s(t))
				var ae *wechat.APIError
				require.ErrorAs(t, err, &ae)
				require.Equal(t, c.code, ae.Code)
				// Every call, the first too, is told when to come back.
				require.GreaterOrEqual(t, ae.RetryAfter, 1)
				require.LessOrEqual(t, ae.RetryAfter, 61)
				require.Equal(t, ae.RetryAfter, wechat.Envelope(err).RetryAfter)
			}
			require.Equal(t, c.requests, r.sbx.Calls("http:"+stablePath))
			r.sbx.ClearFaults()
			r.sbx.Clock.Advance(61 * time.Second) // past any hold
			_, err := m.Token(ctx5s(t))
			require.NoError(t, err)
			require.Equal(t, c.requests+1, r.sbx.Calls("http:"+stablePath))
		})
	}
}

// A held 429 tells each caller what is left of the hold, which is at most a
// minute, not the 429's own wait.
func TestAHeld429SaysWhatIsLeft(t *testing.T) {
	r := newTokenRig(t)
	r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 429, Body: "slow down", RetryAfter: 100000})
	m := r.manager("")
	_, err := m.Token(ctx5s(t))
	var e *envelope.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, 60, e.RetryAfter, "the first call is told the hold too, not the 429's own wait")
	for _, step := range []struct {
		advance time.Duration
		left    int
	}{{0, 60}, {20 * time.Second, 40}, {39500 * time.Millisecond, 1}} {
		r.sbx.Clock.Advance(step.advance)
		_, err = m.Token(ctx5s(t))
		require.ErrorAs(t, err, &e)
		require.Equal(t, step.left, e.RetryAfter)
		require.Contains(t, e.Reason, fmt.Sprintf("wait %ds", step.left))
	}
	require.Equal(t, 1, r.sbx.Calls("http:"+stablePath))
}

// A 5xx from the token endpoint is held for its Retry-After, as the business
// call's is waited out, and every call is told what is left of it.
func TestATokenEndpoint5xxIsHeldForItsRetryAfter(t *testing.T) {
	r := newTokenRig(t)
	r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 503, Body: "busy", RetryAfter: 7})
	m := r.manager("")
	for i := range 10 {
		_, err := m.Token(ctx5s(t))
		var e *envelope.Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, envelope.CodeUpstreamUnreachable, e.Code)
		require.Equal(t, 7-i/2, e.RetryAfter)
		r.sbx.Clock.Advance(500 * time.Millisecond)
	}
	require.Equal(t, 1, r.sbx.Calls("http:"+stablePath), "one request in the 7 s it asked for")
	r.sbx.Clock.Advance(2100 * time.Millisecond)
	_, _ = m.Token(ctx5s(t))
	require.Equal(t, 2, r.sbx.Calls("http:"+stablePath))
}

// A -1 whose retries the call's deadline cut short is not held: the next
// call retries as WeChat asks (an outside re-tester: with 400 ms deadlines
// 11 of 20 calls failed behind such holds).
func TestASystemBusyCutByTheDeadlineIsNotHeld(t *testing.T) {
	r := newTokenRig(t)
	r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 200, Body: `{"errcode":-1,"errmsg":"system error"}`})
	m := r.manager("")
	short := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		defer cancel()
		_, err := m.Token(ctx)
		return err
	}
	require.Error(t, short())
	first := r.sbx.Calls("http:" + stablePath)
	require.Less(t, first, 4, "the deadline cut the retries")
	require.Error(t, short())
	require.Greater(t, r.sbx.Calls("http:"+stablePath), first, "the next call asked again")
}

// A start fetch told to wait (a 429 with Retry-After, 45011) holds that wait
// for the calls: they do not ask again at once, against what WeChat asked
// (an outside re-tester: two requests per new instance). One told nothing
// (a bare 503) is not held: the first call asks again.
func TestAStartFetchToldToWaitHoldsTheWait(t *testing.T) {
	cases := []struct {
		name     string
		fault    sandbox.Fault
		requests int // stable_token requests after the warm-up and one call
		code     int // the call's errCode, 0 for success
	}{
		{"429 with Retry-After", sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 429, Body: "slow", RetryAfter: 5, Times: 1}, 1, envelope.CodeThrottled},
		{"45011", sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 200, Body: `{"errcode":45011,"errmsg":"api minute-quota reach limit"}`, Times: 1}, 1, 45011},
		{"503 with Retry-After", sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 503, Body: "busy", RetryAfter: 5, Times: 1}, 1, envelope.CodeUpstreamUnreachable},
		{"503 without", sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 503, Body: "busy", Times: 1}, 2, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newTokenRig(t)
			r.sbx.Inject(c.fault)
			m := r.manager("")
			m.Warm(context.Background())
			_, err := m.Token(ctx5s(t))
			if c.code == 0 {
				require.NoError(t, err)
			} else {
				e := wechat.Envelope(err)
				require.Equal(t, c.code, e.Code)
				require.GreaterOrEqual(t, e.RetryAfter, 1)
			}
			require.Equal(t, c.requests, r.sbx.Calls("http:"+stablePath))
		})
	}
}

// hungWarm is an instance whose start fetch hangs for d, once it is out.
func (r *tokenRig) hungWarm(t *testing.T, d time.Duration) *wechat.TokenManager {
	t.Helper()
	r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultHang, Delay: d, Times: 1})
	m := r.manager("")
	go m.Warm(context.Background())
	require.Eventually(t, func() bool { return r.sbx.Calls("http:"+stablePath) == 1 }, 2*time.Second, time.Millisecond)
	return m
}

// Behind a slow token endpoint, a call that asked on its own takes the start
// fetch's token when that lands first (an outside re-tester: calls failed at
// their deadline with the token already in the instance).
func TestACallTakesTheStartFetchsTokenWhenItLandsFirst(t *testing.T) {
	r := newTokenRig(t)
	r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultLatency, Delay: 1500 * time.Millisecond})
	m := r.manager("")
	go m.Warm(context.Background())
	require.Eventually(t, func() bool { return r.sbx.Calls("http:"+stablePath) == 1 }, 2*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	tok, err := m.Token(ctx) // waits 1 s, asks on its own (1.5 s more), takes the start fetch's at 1.5 s
	require.NoError(t, err)
	require.Less(t, time.Since(start), 2*time.Second, "answered with the start fetch's token, before its own ask could land")
	again, err := m.Token(ctx5s(t))
	require.NoError(t, err)
	require.Equal(t, tok, again, "the instance keeps the token the call was given")
	require.Equal(t, 2, r.sbx.Calls("http:"+stablePath), "the start fetch and the call's own ask, nothing more")
}

// A start fetch that fails after a call of the instance got a token leaves
// no hold: the next refresh asks WeChat (an outside re-tester: a 42001 an
// hour later was answered from the start fetch's old 503).
func TestALateStartFailureLeavesNoHold(t *testing.T) {
	r := newTokenRig(t)
	r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultLatency, Delay: time.Second, Times: 1})
	r.sbx.Inject(sandbox.Fault{Path: stablePath, Kind: sandbox.FaultStatus, Status: 503, Body: "busy", RetryAfter: 30, Times: 1})
	m := r.manager("")
	done := make(chan struct{})
	go func() { defer close(done); m.Warm(context.Background()) }()
	require.Eventually(t, func() bool { return r.sbx.Calls("http:"+stablePath) == 1 }, 2*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	tok, err := m.Token(ctx) // asks on its own at half its second
	require.NoError(t, err)
	<-done // the start fetch's 503 came after
	m.Expire(ctx5s(t), tok)
	_, err = m.Token(ctx5s(t))
	require.NoError(t, err, "asked WeChat, not a hold")
	require.Equal(t, 3, r.sbx.Calls("http:"+stablePath))
}
