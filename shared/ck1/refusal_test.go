package ck1_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/ck1"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/sandbox"
	"github.com/cloudcall/cloudcall/shared/sandbox/ck1sbx"
	"github.com/cloudcall/cloudcall/shared/store"
)

// tokenRig builds OAuth token sources ("instances") on one store and one
// CK1 sandbox, on a clock the test moves.
type tokenRig struct {
	sbx *ck1sbx.Server
	url string
	kv  store.Store
	mu  sync.Mutex
	now time.Time
}

func newTokenRig(t *testing.T) *tokenRig {
	r := &tokenRig{sbx: ck1sbx.New(ck1sbx.Options{}), kv: store.NewMemory(store.MemoryOptions{}), now: time.Now()}
	srv := httptest.NewServer(r.sbx.Handler())
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *tokenRig) clock() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.now }
func (r *tokenRig) advance(d time.Duration) {
	r.mu.Lock()
	r.now = r.now.Add(d)
	r.mu.Unlock()
	r.sbx.Clock.Advance(d)
}

func (r *tokenRig) instance(seed, secret string) *ck1.OAuth {
	if secret == "" {
		secret = ck1sbx.DemoClientSecret
	}
	return ck1.NewOAuth(ck1.OAuthOptions{Base: r.url, ClientID: ck1sbx.DemoClientID, ClientSecret: secret, SeedRefreshToken: seed, KV: r.kv, Now: r.clock})
}

// One instance with a mistyped client secret got CK1's 400 and recorded the
// stored refresh token as refused: every instance answered -1601 for good,
// although CK1 still held it (outside tester). A refusal now holds for a
// minute; then the stored token is presented once more, and the good
// instances carry on.
func TestAWrongClientSecretOnOneInstanceLocksNobodyOutForGood(t *testing.T) {
	r := newTokenRig(t)
	good := r.instance(ck1sbx.DemoRefreshToken, "")
	_, err := good.Token(context.Background())
	require.NoError(t, err)
	r.sbx.ExpireAccessTokens()
	r.advance(2 * time.Hour)
	bad := r.instance(ck1sbx.DemoRefreshToken, "ck1-demo-client-secreT")
	_, err = bad.Token(context.Background())
	require.ErrorContains(t, err, "CK1 refused the refresh token")
	_, err = good.Token(context.Background())
	require.ErrorContains(t, err, "presented again after", "held: nothing presented")
	require.ErrorContains(t, err, "or presented with a wrong CK1_CLIENT_ID or CK1_CLIENT_SECRET", "the good instances are told it may be one instance's settings, not only a dead grant")
	refreshes := r.sbx.Calls("refresh")
	r.advance(refusalHold())
	_, err = good.Token(context.Background())
	require.NoError(t, err, "after the hold the stored token is presented again, and it works")
	require.Equal(t, refreshes+1, r.sbx.Calls("refresh"))
}

func refusalHold() time.Duration { return time.Minute + time.Second }

// A 408 (or a firewall's 403 page) from the token endpoint was taken for
// CK1 refusing the refresh token and locked everyone out. Only CK1's own
// refusal (400/401 with its JSON Message) is one; anything else is a
// retryable -1302 and records nothing.
func TestATransientClientErrorIsNotARefusal(t *testing.T) {
	for _, f := range []sandbox.Fault{
		{Path: "/oauth2/token", Kind: sandbox.FaultStatus, Status: 408, Body: `timeout`, Times: 1},
		{Path: "/oauth2/token", Kind: sandbox.FaultStatus, Status: 403, Body: `<html>blocked</html>`, Times: 1},
		{Path: "/oauth2/token", Kind: sandbox.FaultStatus, Status: 400, Body: `<html>bad request</html>`, Times: 1},
	} {
		r := newTokenRig(t)
		o := r.instance(ck1sbx.DemoRefreshToken, "")
		r.sbx.Inject(f)
		_, err := o.Token(context.Background())
		require.ErrorContains(t, err, "not a refusal of the refresh token", "%d", f.Status)
		_, err = o.Token(context.Background())
		require.NoError(t, err, "%d: the seed was not spent, nor recorded as refused", f.Status)
	}
}

// A mistyped CK1_REFRESH_TOKEN on one instance replaced the working stored
// pair before CK1 had accepted it, and rolling it back could not bring the
// pair back (outside tester). A seed is now tried only when the stored
// token is refused: the working pair is untouched.
func TestAMistypedSeedCannotDestroyAWorkingPair(t *testing.T) {
	r := newTokenRig(t)
	_, err := r.instance(ck1sbx.DemoRefreshToken, "").Token(context.Background())
	require.NoError(t, err)
	r.sbx.ExpireAccessTokens()
	r.advance(2 * time.Hour)
	_, err = r.instance("ck1-demo-refresh-token-O", "").Token(context.Background())
	require.NoError(t, err, "the stored pair is used; the environment's seed is not")
	_, err = r.instance(ck1sbx.DemoRefreshToken, "").Token(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, r.sbx.Calls("refresh"))
}

// Two instances holding different stale copies after the store lost the
// state took turns presenting spent tokens with no end (66 requests and
// climbing): each refusal overwrote the other's record. A refused copy is
// now dropped: each is presented once.
func TestStaleCopiesArePresentedOnceEach(t *testing.T) {
	r := newTokenRig(t)
	a, b, c := r.instance(ck1sbx.DemoRefreshToken, ""), r.instance(ck1sbx.DemoRefreshToken, ""), r.instance(ck1sbx.DemoRefreshToken, "")
	for _, o := range []*ck1.OAuth{a, b, c} { // a, then b, then c each make a refresh
		r.sbx.ExpireAccessTokens()
		r.advance(2 * time.Hour)
		_, err := o.Token(context.Background())
		require.NoError(t, err)
	}
	require.NoError(t, r.kv.Delete(context.Background(), "ck1:oauth:"+ck1sbx.DemoClientID)) // the store lost it; c (the newest) is gone
	r.sbx.ExpireAccessTokens()
	r.advance(2 * time.Hour)
	before := r.sbx.Calls("refresh")
	for range 10 {
		_, _ = a.Token(context.Background())
		_, _ = b.Token(context.Background())
	}
	// a's copy, b's copy, then the spent seed once (the store was empty, so
	// it is recorded and held): three requests, not twenty.
	require.LessOrEqual(t, r.sbx.Calls("refresh")-before, 3)
}

// A deployment upgraded from a state without the newer fields, whose stored
// token CK1 refuses, is re-authorized by setting a new CK1_REFRESH_TOKEN.
func TestANewSeedReplacesARefusedLegacyState(t *testing.T) {
	r := newTokenRig(t)
	require.NoError(t, r.kv.Set(context.Background(), "ck1:oauth:"+ck1sbx.DemoClientID,
		[]byte(`{"accessToken":"","accessUntil":0,"refreshToken":"ck1rt_dead"}`), time.Hour))
	fresh := authorize(t, r.url)
	o := r.instance(fresh, "")
	_, err := o.Token(context.Background())
	require.ErrorContains(t, err, "CK1 refused the refresh token", "the dead stored token, once")
	_, err = o.Token(context.Background())
	require.NoError(t, err, "then the new seed")
	_, err = r.instance(fresh, "").Token(context.Background())
	require.NoError(t, err)
}

// After the store lost the state, an instance started then found nothing,
// spent the (spent) seed and answered "authorize again" for up to an hour,
// while warm instances held a working pair (outside tester). A warm
// instance now writes its pair back within a minute; the new instance reads
// it and spends nothing.
func TestAWarmInstanceRestoresAStoreThatLostTheState(t *testing.T) {
	r := newTokenRig(t)
	warm := r.instance(ck1sbx.DemoRefreshToken, "")
	_, err := warm.Token(context.Background())
	require.NoError(t, err)
	require.NoError(t, r.kv.Delete(context.Background(), "ck1:oauth:"+ck1sbx.DemoClientID))
	r.advance(2 * time.Minute) // within the access token's life, past the check's minute
	_, err = warm.Token(context.Background())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := r.kv.Get(context.Background(), "ck1:oauth:"+ck1sbx.DemoClientID)
		return err == nil
	}, 5*time.Second, 10*time.Millisecond, "the warm instance's pair is back")
	refreshes := r.sbx.Calls("refresh")
	_, err = r.instance(ck1sbx.DemoRefreshToken, "").Token(context.Background())
	require.NoError(t, err, "a new instance reads it")
	require.Equal(t, refreshes, r.sbx.Calls("refresh"), "and spends nothing")
}

// An instance started within the minute after the store lost the state
// spent the spent seed, and its refusal then sat in the store: the warm
// instances never wrote their pair back over it (only over nothing), and
// every new instance answered "authorize again" for up to an hour,
// presenting the dead seed again after each hold (outside tester). A warm
// instance now replaces a refused state with its own pair.
func TestAWarmInstanceReplacesARefusalStoredAfterTheLoss(t *testing.T) {
	r := newTokenRig(t)
	warm := r.instance(ck1sbx.DemoRefreshToken, "")
	_, err := warm.Token(context.Background())
	require.NoError(t, err)
	require.NoError(t, r.kv.Delete(context.Background(), "ck1:oauth:"+ck1sbx.DemoClientID))
	_, err = r.instance(ck1sbx.DemoRefreshToken, "").Token(context.Background())
	require.ErrorContains(t, err, "CK1 refused the refresh token", "the seed was spent before the loss")
	require.ErrorContains(t, err, "the shared store held no CK1 token state: if it was just emptied while instances were serving, they store their pair again within 10 s, so retry")
	r.advance(15 * time.Second) // past the warm instance's next check
	_, err = warm.Token(context.Background())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		raw, err := r.kv.Get(context.Background(), "ck1:oauth:"+ck1sbx.DemoClientID)
		return err == nil && strings.Contains(string(raw), `"restored":true`) && !strings.Contains(string(raw), `"refused"`)
	}, 5*time.Second, 10*time.Millisecond, "the warm pair replaced the refusal")
	refreshes := r.sbx.Calls("refresh")
	_, err = r.instance(ck1sbx.DemoRefreshToken, "").Token(context.Background())
	require.NoError(t, err, "a new instance reads the warm pair")
	require.Equal(t, refreshes, r.sbx.Calls("refresh"), "and presents nothing")
	raw, err := r.kv.Get(context.Background(), "ck1:oauth:"+ck1sbx.DemoClientID)
	require.NoError(t, err)
	require.Contains(t, string(raw), `"spentSeeds"`, "the spent seed stays recorded")
}

// A pair written back may be stale (another instance rotated it before the
// store lost it): CK1's refusal of it is a stale copy's, retryable, and the
// instance holding the newest pair still presents its own.
func TestARestoredStalePairIsAStaleCopy(t *testing.T) {
	r := newTokenRig(t)
	stale, newest := r.instance(ck1sbx.DemoRefreshToken, ""), r.instance(ck1sbx.DemoRefreshToken, "")
	_, err := stale.Token(context.Background())
	require.NoError(t, err)
	r.sbx.ExpireAccessTokens()
	r.advance(2 * time.Hour)
	_, err = newest.Token(context.Background()) // spends the pair stale holds
	require.NoError(t, err)
	require.NoError(t, r.kv.Delete(context.Background(), "ck1:oauth:"+ck1sbx.DemoClientID))
	// stale's pair looks good by its own clock: it writes it back.
	r.advance(-2 * time.Hour) // back to when stale's access token was good for it
	_, _ = stale.Token(context.Background())
	require.Eventually(t, func() bool {
		raw, err := r.kv.Get(context.Background(), "ck1:oauth:"+ck1sbx.DemoClientID)
		return err == nil && strings.Contains(string(raw), `"restored":true`)
	}, 5*time.Second, 10*time.Millisecond)
	r.advance(4 * time.Hour) // every access token is past
	_, err = r.instance(ck1sbx.DemoRefreshToken, "").Token(context.Background())
	require.ErrorContains(t, err, "another instance may hold the newest", "retryable, not 'authorize again'")
	_, err = newest.Token(context.Background())
	require.NoError(t, err, "the newest copy is presented and stored")
}

// A pair written back after a store loss whose refresh token is then spent
// with its answer lost (a dropped connection) is dead, not a stale copy:
// after a whole hold in which no instance stored a newer pair, the calls
// say "authorize again". They answered the retryable -1501 for ever, with
// one -1601 a minute (outside tester).
func TestADeadWrittenBackPairEndsInAuthorizeAgain(t *testing.T) {
	r := newTokenRig(t)
	warm := r.instance(ck1sbx.DemoRefreshToken, "")
	_, err := warm.Token(context.Background())
	require.NoError(t, err)
	require.NoError(t, r.kv.Delete(context.Background(), "ck1:oauth:"+ck1sbx.DemoClientID))
	r.advance(2 * time.Minute)
	_, err = warm.Token(context.Background())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		raw, err := r.kv.Get(context.Background(), "ck1:oauth:"+ck1sbx.DemoClientID)
		return err == nil && strings.Contains(string(raw), `"restored":true`)
	}, 5*time.Second, 10*time.Millisecond)
	// The next refresh spends the written-back token and its answer is lost.
	r.sbx.ExpireAccessTokens()
	r.advance(4 * time.Hour)
	r.sbx.Inject(sandbox.Fault{Path: "/oauth2/token", Kind: sandbox.FaultDropAfter, Times: 1})
	fresh := r.instance(ck1sbx.DemoRefreshToken, "")
	_, err = fresh.Token(context.Background())
	require.Error(t, err)
	_, err = fresh.Token(context.Background())
	require.ErrorContains(t, err, "another instance may hold the newest", "a written-back pair refused: retryable at first")
	r.advance(refusalHold())
	_, err = fresh.Token(context.Background())
	var e *envelope.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, envelope.CodeConfig, e.Code, "no newer pair came in a whole hold: authorize again, %v", err)
	for _, inst := range []*ck1.OAuth{fresh, warm, r.instance(ck1sbx.DemoRefreshToken, "")} {
		_, err = inst.Token(context.Background())
		require.ErrorAs(t, err, &e)
		require.Equal(t, envelope.CodeConfig, e.Code, "and stays so on every instance, not -1501: %v", err)
	}
}

// The store lost its data (the refresh lock with it) while one instance's
// refresh was on its way: another instance spent the same refresh token
// first and stored the rotated pair, and the first answered "authorize the
// app again" for a deployment that was fine (outside tester). It takes the
// stored pair instead.
func TestARefusalAfterAnotherInstanceRefreshedUsesTheirPair(t *testing.T) {
	r := newTokenRig(t)
	sent := make(chan struct{}, 8)
	x := ck1.NewOAuth(ck1.OAuthOptions{Base: r.url, ClientID: ck1sbx.DemoClientID, ClientSecret: ck1sbx.DemoClientSecret, SeedRefreshToken: ck1sbx.DemoRefreshToken,
		KV: r.kv, Now: r.clock, HTTP: &http.Client{Transport: signalling{sent}}})
	y := r.instance(ck1sbx.DemoRefreshToken, "")
	_, err := x.Token(context.Background())
	require.NoError(t, err)
	_, err = y.Token(context.Background())
	require.NoError(t, err)
	r.sbx.ExpireAccessTokens()
	r.advance(2 * time.Hour)
	r.sbx.Inject(sandbox.Fault{Path: "/oauth2/token", Kind: sandbox.FaultLatency, Delay: 500 * time.Millisecond, Times: 1})
	for len(sent) > 0 {
		<-sent // the first token request: drained before x's refresh can signal (drained after, it took that signal too and waited for ever)
	}
	got := make(chan error, 1)
	var tokX string
	go func() {
		var err error
		tokX, err = x.Token(context.Background())
		got <- err
	}()
	<-sent
	time.Sleep(100 * time.Millisecond) // x's refresh waits at CK1
	for _, k := range []string{"ck1:oauth:" + ck1sbx.DemoClientID, "ck1:oauth:" + ck1sbx.DemoClientID + ":lock"} {
		require.NoError(t, r.kv.Delete(context.Background(), k))
	}
	tokY, err := y.Token(context.Background())
	require.NoError(t, err, "y spends the token first")
	require.NoError(t, <-got, "x takes y's pair instead of 'authorize again'")
	require.Equal(t, tokY, tokX)
}

// signalling says when a request leaves.
type signalling struct{ sent chan<- struct{} }

func (s signalling) RoundTrip(r *http.Request) (*http.Response, error) {
	s.sent <- struct{}{}
	return http.DefaultTransport.RoundTrip(r)
}

// A refresh needs 3 s left, or half of the call's whole time when that is
// shorter: with a Lambda Timeout of 3 s (2.7 s after the answer's reserve)
// no call could ever refresh, and each answered -1301 for good (outside
// tester). A call that spent most of a long time first is still refused,
// and spends nothing.
func TestAShortCallCanRefreshAtItsStart(t *testing.T) {
	r := newTokenRig(t)
	o := r.instance(ck1sbx.DemoRefreshToken, "")
	short, cancel := context.WithTimeout(context.Background(), 2700*time.Millisecond)
	defer cancel()
	_, err := o.Token(ck1.WithCallBudget(short))
	require.NoError(t, err, "2.7 s is the whole call: it refreshes at its start")

	r.sbx.ExpireAccessTokens()
	r.advance(2 * time.Hour)
	spent := r.sbx.Calls("refresh")
	long, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	budget := ck1.WithCallBudget(long)
	late, cancel3 := context.WithTimeout(budget, 2*time.Second) // 8 s of 10 spent elsewhere
	defer cancel3()
	_, err = o.Token(late)
	require.ErrorContains(t, err, "needs at least 3s left in the call")
	require.Equal(t, spent, r.sbx.Calls("refresh"), "nothing spent")
}

// After a store loss, an instance whose copy CK1 refused (another instance
// rotated it) presented the seed the deployment had spent, had it refused,
// and answered "authorize again", then "no CK1 refresh token: set
// CK1_REFRESH_TOKEN", while the other instance held a working pair (outside
// tester). It remembers the seed as spent and answers a retryable -1501
// until that instance stores its pair again.
func TestAnInstanceThatLostItsCopyWaitsForTheNewestPair(t *testing.T) {
	r := newTokenRig(t)
	a, b := r.instance(ck1sbx.DemoRefreshToken, ""), r.instance(ck1sbx.DemoRefreshToken, "")
	ctx := context.Background()
	_, err := a.Token(ctx)
	require.NoError(t, err)
	_, err = b.Token(ctx)
	require.NoError(t, err)
	r.sbx.ExpireAccessTokens()
	r.advance(2 * time.Hour)
	_, err = a.Token(ctx) // a rotates: b's copy is stale
	require.NoError(t, err)
	require.NoError(t, r.kv.Delete(ctx, "ck1:oauth:"+ck1sbx.DemoClientID))

	_, err = b.Token(ctx)
	require.ErrorContains(t, err, "another instance may hold the newest", "b's stale copy: retryable")
	spent := r.sbx.Calls("refresh")
	for range 3 {
		_, err = b.Token(ctx)
		var e *envelope.Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, envelope.CodeStoreUnavailable, e.Code, "%v", err)
		require.Contains(t, e.Reason, "CK1_REFRESH_TOKEN was spent by this deployment before")
	}
	require.Equal(t, spent, r.sbx.Calls("refresh"), "the spent seed is not presented")

	r.advance(15 * time.Second) // a's restore check is due
	_, err = a.Token(ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, err := b.Token(ctx); return err == nil }, 5*time.Second, 10*time.Millisecond, "b reads a's pair")
}

// A warm instance writes its pair back at its first call a second after the
// store lost it: checking every 10 s, one reclaimed within those 10 s took
// the deployment's only live refresh token with it (a re-tester).
func TestAWarmInstanceRestoresItsPairWithinASecond(t *testing.T) {
	r := newTokenRig(t)
	kv := &readCounter{KV: r.kv}
	a := ck1.NewOAuth(ck1.OAuthOptions{Base: r.url, ClientID: ck1sbx.DemoClientID, ClientSecret: ck1sbx.DemoClientSecret,
		SeedRefreshToken: ck1sbx.DemoRefreshToken, KV: kv, Now: r.clock})
	ctx := context.Background()
	_, err := a.Token(ctx)
	require.NoError(t, err)
	// A call from the pair it holds checks the store, which holds it.
	reads := kv.reads.Load()
	_, err = a.Token(ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return kv.reads.Load() > reads }, 5*time.Second, time.Millisecond, "the check read the store")

	key := "ck1:oauth:" + ck1sbx.DemoClientID
	require.NoError(t, r.kv.Delete(ctx, key))
	r.advance(1500 * time.Millisecond)
	require.Eventually(t, func() bool {
		_, err := a.Token(ctx)
		require.NoError(t, err)
		raw, err := r.kv.Get(ctx, key)
		return err == nil && strings.Contains(string(raw), `"restored":true`)
	}, 5*time.Second, 10*time.Millisecond, "a's pair is back in the store")
}

// readCounter counts the store's reads.
type readCounter struct {
	store.KV
	reads atomic.Int64
}

func (c *readCounter) Get(ctx context.Context, key string) ([]byte, error) {
	c.reads.Add(1)
	return c.KV.Get(ctx, key)
}

// Every copy of the refresh token refused (CK1 spent them all: an answer
// lost, a revocation) and then the store emptied: each instance answered a
// retryable -1501 "an instance holding the newest pair stores it again" for
// good, though none held one (outside tester: 26,801 calls in 80 s). For a
// hold it still waits for a restore; then it says to authorize again, and
// presents nothing meanwhile.
func TestNoPairStoredAgainWithinAHoldAnswersAuthorizeAgain(t *testing.T) {
	r := newTokenRig(t)
	a, b := r.instance(ck1sbx.DemoRefreshToken, ""), r.instance(ck1sbx.DemoRefreshToken, "")
	ctx := context.Background()
	for _, o := range []*ck1.OAuth{a, b} {
		_, err := o.Token(ctx)
		require.NoError(t, err)
	}
	r.sbx.RevokeRefreshTokens()
	r.sbx.ExpireAccessTokens()
	r.advance(2 * time.Hour)
	require.NoError(t, r.kv.Delete(ctx, "ck1:oauth:"+ck1sbx.DemoClientID))
	for _, o := range []*ck1.OAuth{a, b} {
		_, err := o.Token(ctx)
		require.ErrorContains(t, err, "a copy of the refresh token an instance kept was refused", "each copy presented once")
	}
	spent := r.sbx.Calls("refresh")
	code := func(o *ck1.OAuth) (int, string) {
		_, err := o.Token(ctx)
		var e *envelope.Error
		require.ErrorAs(t, err, &e)
		return e.Code, e.Reason
	}
	c, why := code(a) // a's first read of an empty store with nothing to present
	require.Equal(t, envelope.CodeStoreUnavailable, c, "a restore may still come: retry")
	require.Contains(t, why, "stores it again within 10 s")
	r.advance(59 * time.Second)
	c, _ = code(a)
	require.Equal(t, envelope.CodeStoreUnavailable, c, "within the hold")
	r.advance(time.Second)
	c, why = code(a)
	require.Equal(t, envelope.CodeConfig, c)
	require.Contains(t, why, "has held no CK1 token state for over a minute")
	r.advance(time.Second)
	_, again := code(a)
	require.Equal(t, why, again, "the same text a second later: identical errors group")
	require.Contains(t, why, "authorize the app again and set a new CK1_REFRESH_TOKEN")
	c, _ = code(b)
	require.Equal(t, envelope.CodeStoreUnavailable, c, "b's own hold starts at its first empty read")
	require.Equal(t, spent, r.sbx.Calls("refresh"), "nothing presented meanwhile")

	// A state stored again (here: the refusal an instance records) ends
	// the count: a's next loss waits a hold again.
	require.NoError(t, r.kv.Set(ctx, "ck1:oauth:"+ck1sbx.DemoClientID, []byte(`{"refreshToken":"x","refused":"x","refusedAt":1}`), time.Hour))
	_, _ = a.Token(ctx)
	require.NoError(t, r.kv.Delete(ctx, "ck1:oauth:"+ck1sbx.DemoClientID))
	c, _ = code(a)
	require.Equal(t, envelope.CodeStoreUnavailable, c)
}

// An instance that took up a pair another wrote back after a store loss
// (stale: it had been rotated) lost its own, newest, refresh token: CK1
// refused the stale one, and every instance answered "authorize again" for
// good while the newest token was never presented (outside tester). The
// instance keeps its own pair aside and presents it then.
func TestTakingUpARestoredStalePairDoesNotLoseTheNewest(t *testing.T) {
	r := newTokenRig(t)
	a, b := r.instance(ck1sbx.DemoRefreshToken, ""), r.instance(ck1sbx.DemoRefreshToken, "")
	ctx := context.Background()
	p1, err := a.Token(ctx)
	require.NoError(t, err)
	_, err = b.Token(ctx)
	require.NoError(t, err)
	r.advance(15 * time.Second)
	a.Invalidate(ctx, p1) // CK1 answered 401: a refreshes alone
	p2, err := a.Token(ctx)
	require.NoError(t, err)
	require.NotEqual(t, p1, p2)

	require.NoError(t, r.kv.Delete(ctx, "ck1:oauth:"+ck1sbx.DemoClientID))
	_, err = b.Token(ctx) // b serves from its stale pair and writes it back
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		raw, err := r.kv.Get(ctx, "ck1:oauth:"+ck1sbx.DemoClientID)
		return err == nil && strings.Contains(string(raw), `"restored":true`)
	}, 5*time.Second, 5*time.Millisecond)

	a.Invalidate(ctx, p2) // a's access token is refused: it takes up the stored pair
	got, err := a.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, p1, got, "the written-back (stale) pair's access token")
	a.Invalidate(ctx, got)         // CK1 refuses that one too: a must refresh
	retryableUntilWorking(t, a, 3) // a presents its own newest refresh token
	_, err = b.Token(ctx)
	require.NoError(t, err, "and stored it for everyone")
}

// Two store losses: an instance took up one written-back pair, then a
// second, and the second replaced the pair it had kept aside (its own, the
// newest), so every instance answered -1501 for ever while a working
// refresh token sat unused (outside tester). It keeps every pair it held.
func TestTakingUpTwoRestoredPairsKeepsTheNewest(t *testing.T) {
	r := newTokenRig(t)
	a, b, c := r.instance(ck1sbx.DemoRefreshToken, ""), r.instance(ck1sbx.DemoRefreshToken, ""), r.instance(ck1sbx.DemoRefreshToken, "")
	ctx := context.Background()
	key := "ck1:oauth:" + ck1sbx.DemoClientID
	tok := func(o *ck1.OAuth) string {
		tk, err := o.Token(ctx)
		require.NoError(t, err)
		return tk
	}
	restoredBy := func(o *ck1.OAuth) {
		require.NoError(t, r.kv.Delete(ctx, key))
		r.advance(15 * time.Second)
		tok(o)
		require.Eventually(t, func() bool {
			raw, err := r.kv.Get(ctx, key)
			return err == nil && strings.Contains(string(raw), `"restored":true`)
		}, 5*time.Second, 5*time.Millisecond)
	}
	p1 := tok(a)
	tok(b)
	tok(c)
	c.Invalidate(ctx, p1)
	p2 := tok(c) // c refreshes: P2
	b.Invalidate(ctx, p1)
	require.Equal(t, p2, tok(b), "b takes up P2")
	c.Invalidate(ctx, p2)
	p3 := tok(c)  // c refreshes again: P3, the newest
	restoredBy(b) // b writes P2 back
	c.Invalidate(ctx, p3)
	require.Equal(t, p2, tok(c), "c takes up the written-back P2, keeping P3 aside")
	restoredBy(a) // a writes P1 back
	c.Invalidate(ctx, p2)
	require.Equal(t, p1, tok(c), "c takes up the written-back P1")
	c.Invalidate(ctx, p1)
	retryableUntilWorking(t, c, 4) // c presents P3, its own newest
}

// seqTokens hands out tokens in turn; the ones in restored came from a pair
// written back after a store loss.
type seqTokens struct {
	mu       sync.Mutex
	toks     []string
	restored map[string]bool
}

func (s *seqTokens) Token(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.toks[0], nil
}
func (s *seqTokens) Invalidate(_ context.Context, tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.toks) > 1 && s.toks[0] == tok {
		s.toks = s.toks[1:]
	}
}
func (s *seqTokens) Restored(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restored[tok]
}

// The retry after a 401 used a token taken up from a written-back pair
// (stale), whose 401 answered -1305 "check the OAuth settings" (outside
// tester): that token is invalidated too, and the refresh settles it.
func TestASecond401FromAWrittenBackPairIsRetried(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer fresh" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"Errors":[{"Code":"800F0401","Message":"invalid token"}]}`))
			return
		}
		_, _ = w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	toks := &seqTokens{toks: []string{"own-expired", "written-back", "fresh"}, restored: map[string]bool{"written-back": true}}
	_, err := ck1.NewClient(srv.URL, srv.Client(), toks).InboundBox(context.Background(), &ck1.BoxInput{WarehouseID: "US"})
	require.NoError(t, err)
	require.Equal(t, []string{"Bearer own-expired", "Bearer written-back", "Bearer fresh"}, seen)

	// A refreshed token refused again is still the settings' fault: one retry.
	toks = &seqTokens{toks: []string{"a", "b", "fresh"}}
	seen = nil
	_, err = ck1.NewClient(srv.URL, srv.Client(), toks).InboundBox(context.Background(), &ck1.BoxInput{WarehouseID: "US"})
	require.ErrorContains(t, err, "even after a refresh")
	require.Len(t, seen, 2)
}

// retryableUntilWorking calls o until it hands out a token, within n calls,
// each failure a retryable -1501, never "authorize again".
func retryableUntilWorking(t *testing.T, o *ck1.OAuth, n int) {
	t.Helper()
	var err error
	for range n {
		if _, err = o.Token(context.Background()); err == nil {
			return
		}
		var e *envelope.Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, envelope.CodeStoreUnavailable, e.Code, "retryable, never 'authorize again': %v", err)
	}
	require.NoError(t, err, "no token after %d calls", n)
}

// An instance that reads the pair another instance stored masks both
// tokens, as the one that fetched them does: a firewall page quoting the
// refresh request showed the live refresh token in clear on every other
// instance (outside tester).
func TestAPairReadFromTheStoreIsMasked(t *testing.T) {
	r := newTokenRig(t)
	first := r.instance(ck1sbx.DemoRefreshToken, "")
	access, err := first.Token(context.Background())
	require.NoError(t, err)
	var masked []string
	other := ck1.NewOAuth(ck1.OAuthOptions{Base: r.url, ClientID: ck1sbx.DemoClientID, ClientSecret: ck1sbx.DemoClientSecret, KV: r.kv, Now: r.clock,
		Remember: func(s string) { masked = append(masked, s) }})
	got, err := other.Token(context.Background())
	require.NoError(t, err)
	require.Equal(t, access, got, "read, not fetched")
	require.Len(t, masked, 2, "the access token and the refresh token")
	require.Equal(t, access, masked[0])
	require.NotEmpty(t, masked[1])
	require.NotEqual(t, ck1sbx.DemoRefreshToken, masked[1], "the rotated refresh token, not the spent seed")
}

// A token exchange that left and whose answer was lost may have spent the
// refresh token: the answer says so, and what to do if it was, instead of
// "could not be reached", which said nothing had happened (an outside
// tester). One that never left says it could not be reached, as before.
func TestALostExchangeAnswerSaysTheRefreshTokenMayBeSpent(t *testing.T) {
	r := newTokenRig(t)
	r.sbx.Inject(sandbox.Fault{Path: "/oauth2/token", Kind: sandbox.FaultDropAfter, Times: 1})
	_, err := r.instance(ck1sbx.DemoRefreshToken, "").Token(context.Background())
	var e *envelope.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, envelope.CodeUpstreamUnreachable, e.Code)
	require.Contains(t, e.Reason, "after the token request was sent: CK1 may have spent the single-use refresh token")
	require.Contains(t, e.Reason, "authorize the app again and set CK1_REFRESH_TOKEN")
	require.Equal(t, 1, r.sbx.Calls("refresh"), "the sandbox rotated the pair: the request did arrive")

	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	never := ck1.NewOAuth(ck1.OAuthOptions{Base: closed.URL, ClientID: ck1sbx.DemoClientID, ClientSecret: ck1sbx.DemoClientSecret,
		SeedRefreshToken: ck1sbx.DemoRefreshToken, KV: store.NewMemory(store.MemoryOptions{}), Now: r.clock})
	_, err = never.Token(context.Background())
	require.ErrorAs(t, err, &e)
	require.Equal(t, envelope.CodeUpstreamUnreachable, e.Code)
	require.Equal(t, "ck1 could not be reached", e.Reason, "nothing left: nothing can have been spent")
}

// A 200 whose body cannot be read means CK1 took the exchange: the answer
// says the refresh token is most likely spent, and what to do, not only
// "could not be read" (an outside re-tester).
func TestAnUnreadableTokenAnswerSaysTheRefreshTokenIsSpent(t *testing.T) {
	for _, body := range []string{`not json`, `{"AccessToken":5}`, `{}`} {
		r := newTokenRig(t)
		r.sbx.Inject(sandbox.Fault{Path: "/oauth2/token", Kind: sandbox.FaultStatus, Status: 200, Body: body, Times: 1})
		_, err := r.instance(ck1sbx.DemoRefreshToken, "").Token(context.Background())
		var e *envelope.Error
		require.ErrorAs(t, err, &e, body)
		require.Equal(t, envelope.CodeUpstreamMalformed, e.Code, body)
		require.Contains(t, e.Reason, "CK1 has most likely spent the single-use refresh token", body)
		require.Contains(t, e.Reason, "authorize the app again and set CK1_REFRESH_TOKEN", body)
	}
}

// The shared store came back empty and new instances presented the seed the
// deployment spent long ago: CK1 refused it and every call answered -1601
// "authorize again" for the seconds until a warm instance stored its pair
// again, so clients that follow the envelope stopped retrying and alarms
// paged (outside tester). For the window in which a warm instance stores its
// pair (10 s from the first refusal, recorded in the shared store so that a
// new cold instance does not restart it) the calls answer -1501 with
// retryAfter 1; then -1601, so a genuinely bad seed still hears it soon.
func TestASeedRefusedOnAnEmptyStoreIsRetryableForTheRestoreWindow(t *testing.T) {
	r := newTokenRig(t)
	ctx := context.Background()
	warm := r.instance(ck1sbx.DemoRefreshToken, "")
	_, err := warm.Token(ctx) // spends the seed
	require.NoError(t, err)
	require.NoError(t, r.kv.Delete(ctx, "ck1:oauth:"+ck1sbx.DemoClientID)) // the store came back empty
	code := func(o *ck1.OAuth) *envelope.Error {
		t.Helper()
		_, err := o.Token(ctx)
		var e *envelope.Error
		require.ErrorAs(t, err, &e)
		return e
	}
	c1 := r.instance(ck1sbx.DemoRefreshToken, "")
	e := code(c1)
	require.Equal(t, envelope.CodeStoreUnavailable, e.Code, "the spent seed refused on an empty store: retry, %v", e)
	require.Equal(t, 1, e.RetryAfter)
	require.Contains(t, e.Reason, "CK1 refused the refresh token")
	require.NotNil(t, e.Upstream, "CK1's refusal is kept")
	refreshes := r.sbx.Calls("refresh")

	r.advance(6 * time.Second)
	c2 := r.instance(ck1sbx.DemoRefreshToken, "") // a new cold instance does not restart the window
	for _, o := range []*ck1.OAuth{c1, c2} {
		e = code(o)
		require.Equal(t, envelope.CodeStoreUnavailable, e.Code, "within the window, on every instance: %v", e)
		require.Equal(t, 1, e.RetryAfter)
	}
	r.advance(4 * time.Second) // 10 s after the first refusal: no warm instance stored its pair
	for _, o := range []*ck1.OAuth{c1, c2, r.instance(ck1sbx.DemoRefreshToken, "")} {
		e = code(o)
		require.Equal(t, envelope.CodeConfig, e.Code, "after the window: authorize again, %v", e)
		require.Contains(t, e.Reason, "authorize the app again")
	}
	require.Equal(t, refreshes, r.sbx.Calls("refresh"), "the refused seed is not presented again")
}
