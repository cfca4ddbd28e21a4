package e2e

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/callerauth"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
	"github.com/cloudcall/cloudcall/shared/store/redisstore/redistest"
)

// Redis cut mid-run through a proxy the test controls, two instances of the
// real binary sharing it: a nonce seen before the cut is refused during it; a
// request signed during the cut and replayed after Redis returns is refused,
// on the instance that took it and on the other one; fresh signed reads are
// served throughout.
func TestNoncesThroughARedisCut(t *testing.T) {
	url := redistest.URL(t)
	target, db := redistest.HostPort(url)
	proxy := redistest.NewProxy(t, target)
	prefix := redistest.Keyspace(t, url)
	sbx := wechatsbx.New(wechatsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	env := merge(sbx.Env(srv.URL), map[string]string{"CLOUDCALL_CALLER_KEYS": suiteCallerEnv,
		"CLOUDCALL_STORE": "redis://" + proxy.Addr() + db, "CLOUDCALL_STORE_PREFIX": prefix})
	a := startHTTPServer(t, bins["logistics-get-quota"], "fc-custom", env)
	b := startHTTPServer(t, bins["logistics-get-quota"], "fc-custom", env)

	body := []byte(`{"deliveryId":"YTO","bizId":"xyz"}`)
	fresh := func() wire {
		return signed(t, suiteKeyID, suiteSecret, "POST", "/logistics-get-quota", "", body, time.Now().Unix())
	}
	served := 0
	read := func(s *httpServer, w wire, what string) {
		t.Helper()
		st, m, raw := w.send(t, s.url)
		require.Equal(t, 200, st, what+": "+raw)
		require.Equal(t, 210.0, m["quotaNum"], raw)
		served++
	}
	refused := func(s *httpServer, w wire, what string) {
		t.Helper()
		st, m, raw := w.send(t, s.url)
		require.Equal(t, 401, st, what+": "+raw)
		require.Equal(t, -1101.0, m["errCode"], raw)
		require.Contains(t, m["errMsg"], "replayed nonce", what)
	}
	rdb := redis.NewClient(mustRedisOpts(t, url))
	defer rdb.Close()
	inRedis := func(w wire) bool {
		au, err := callerauth.Parse(w.header[0][1])
		require.NoError(t, err)
		n, err := rdb.Exists(context.Background(), prefix+"nonce:"+au.Nonce).Result()
		require.NoError(t, err)
		return n == 1
	}

	before := fresh()
	read(a, before, "before the cut")
	refused(b, before, "replayed on the other instance before the cut")
	require.True(t, inRedis(before))

	proxy.Cut()
	refused(a, before, "nonce seen before the cut, replayed during it")
	during := []wire{fresh(), fresh(), fresh(), fresh()}
	for i, w := range during {
		s := a
		if i%2 == 1 {
			s = b
		}
		read(s, w, "fresh read during the cut")
		refused(s, w, "replayed on the same instance during the cut")
	}
	for range 10 {
		read(a, fresh(), "fresh reads keep being served")
		read(b, fresh(), "fresh reads keep being served")
	}
	// A call with an Idempotency-Key header (not covered by the signature)
	// waits for the shared store instead of trusting this instance's memory.
	keyed := withHeader(fresh(), "Idempotency-Key", "k-1")
	st, m, raw := keyed.send(t, a.url)
	require.Equal(t, 503, st, raw)
	require.Equal(t, -1501.0, m["errCode"], raw)

	proxy.Restore()
	// Each instance hands over what it accepted during the cut (on its next
	// call, or by its background retry): wait until Redis holds them all.
	require.Eventually(t, func() bool {
		for _, w := range during {
			if !inRedis(w) {
				return false
			}
		}
		return true
	}, 20*time.Second, 50*time.Millisecond, "nonces accepted during the cut reach Redis once it is back")
	for i, w := range during {
		other, same := b, a
		if i%2 == 1 {
			other, same = a, b
		}
		refused(other, w, "signed during the cut, replayed on the other instance after it")
		refused(same, w, "signed during the cut, replayed on the same instance after it")
	}
	refused(b, before, "the pre-cut nonce is still refused after it")
	read(a, keyed, "the keyed call refused during the cut spent nothing: it works once Redis is back")
	refused(b, keyed, "and is then refused on the other instance")
	for range 5 {
		read(a, fresh(), "after the cut")
		read(b, fresh(), "after the cut")
	}
	require.Equal(t, served, sbx.Calls("quota"), "every served read made one vendor call; no refused one did")
	t.Logf("%d signed reads served across the cut, %d replays refused", served, 2+len(during)*3+2)
}

func mustRedisOpts(t *testing.T, url string) *redis.Options {
	t.Helper()
	o, err := redis.ParseURL(url)
	require.NoError(t, err)
	return o
}
