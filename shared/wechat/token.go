package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/upstream"
)

// Token modes.
const (
	ModeStable  = "stable"  // POST cgi-bin/stable_token, normal mode: every instance gets the same token
	ModeClassic = "classic" // GET cgi-bin/token: each fetch invalidates the previous token after 5 minutes
)

const (
	// margin is how long before WeChat's expiry a token is refreshed. It
	// must stay under 300 s: stable_token may answer expires_in 300.
	margin = 60 * time.Second
	// floor keeps a cache TTL positive whatever expires_in says.
	floor = 30 * time.Second
	// lockTTL bounds how long a dead refresher blocks the others (classic
	// mode: each fetch invalidates the token before it, so one at a time).
	lockTTL = 10 * time.Second
	// stableLockTTL is the same for stable_token, whose normal mode hands
	// every caller the same token: a second fetch past a slow or dead
	// refresher's lease is harmless, and the others stalled 9 s behind an
	// instance killed mid-fetch, every call failing (outside tester).
	stableLockTTL = 3 * time.Second
	// maxBusyRetries bounds the -1 ("system busy") retries.
	maxBusyRetries = 3
	// configHold is how long an instance answers a token-endpoint
	// configuration error (bad secret, IP not whitelisted, daily quota used
	// up) again without calling WeChat: a misconfigured function under load
	// must not hammer the endpoint, and the fix (a whitelist entry, a
	// clear_quota) shows up within this long.
	configHold = 10 * time.Second
	// failureHold: a token endpoint that failed (a 5xx, an unreadable
	// answer, no connection) is asked again by this instance after this
	// long; meanwhile its calls answer the same error. Every call asked it
	// once: 3,300 requests in 11 s of a 503, past stable_token's 10,000 a
	// minute.
	failureHold = time.Second
	// maxThrottleHold bounds how long a 429's Retry-After keeps an instance
	// from asking the token endpoint again.
	maxThrottleHold = time.Minute
	// minuteQuota is errcode 45011, "api minute-quota reach limit ... retry
	// next minute": the per-minute frequency limit (vendor notes §1.4).
	minuteQuota = 45011
)

// TokenOptions configures a TokenManager.
type TokenOptions struct {
	AppID, Secret string
	Base          string // API origin
	Mode          string // ModeStable (default) or ModeClassic
	HTTP          *http.Client
	KV            store.KV
	Log           *slog.Logger
	// Remember is told every token fetched, so logs can redact it.
	Remember func(string)
	Now      func() time.Time
}

// TokenManager hands out the app's access token: from the instance's copy,
// else the shared store, else one fetch for all waiters in the instance and,
// through a lease in the store, for all instances.
type TokenManager struct {
	o       TokenOptions
	key     string
	lockKey string
	flight  store.Flight[*cached]

	mu    sync.Mutex
	local *cached
	// refused is the last token a business call reported stale: a copy read
	// from the store before its expiry landed must not come back.
	refused string
	// held is the last configuration error of the token endpoint, answered
	// again until heldUntil without a fetch.
	held      error
	heldUntil time.Time
	// warming is the cold start's fetch (Warm) while it runs.
	warming atomic.Pointer[warming]
}

// cached is what the store holds: the token and when to stop using it.
type cached struct {
	Token    string `json:"t"`
	UseUntil int64  `json:"u"` // unix ms: WeChat's expiry minus the margin
	raw      []byte
}

// NewTokenManager builds the manager; it fetches nothing until asked.
func NewTokenManager(o TokenOptions) *TokenManager {
	if o.Mode == "" {
		o.Mode = ModeStable
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Remember == nil {
		o.Remember = func(string) {}
	}
	o.Base = strings.TrimRight(o.Base, "/")
	o.HTTP = upstream.NoRedirects(o.HTTP)
	// Classic and stable tokens are separate pools at WeChat: keep them apart.
	key := "wechat:token:" + o.Mode + ":" + o.AppID
	return &TokenManager{o: o, key: key, lockKey: key + ":lock"}
}

func (c *cached) valid(now time.Time) bool { return c != nil && now.UnixMilli() < c.UseUntil }

// good is valid and not a token this instance saw refused.
func (m *TokenManager) good(c *cached, now time.Time) bool {
	if !c.valid(now) {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return c.Token != m.refused
}

// Token returns a token good for at least the margin.
func (m *TokenManager) Token(ctx context.Context) (string, error) {
	tok, _, err := m.token(ctx)
	return tok, err
}

// warmTimeout bounds Warm's fetch.
const warmTimeout = 10 * time.Second

// warmWait is how long after the cold start's fetch began a call stops
// waiting for it and asks on its own: a refresh lease's length.
const warmWait = stableLockTTL

// warming is the cold start's fetch while it runs.
type warming struct {
	done  chan struct{} // closed when it ends
	until time.Time     // when calls stop waiting for it (its start plus warmWait)
	// got is closed when the instance keeps a token meanwhile (a call
	// asked past the fetch): calls waiting for the fetch take that one.
	got     chan struct{}
	gotOnce sync.Once
}

// Warm gets the token at cold start, in the runtime's background warm-up,
// so that the first call finds it instead of waiting for the token
// endpoint's round trip. Stable mode only: there a fetch changes nothing
// for anyone and its quota is 500,000 a day, while in classic mode each
// fetch invalidates the token before it within 5 minutes and counts against
// about 2,000 a day (vendor notes §1.2, §1.3), so an instance started by
// calls that never reach WeChat (refused, invalid) must not spend one.
//
// The fetch is the instance's, not any call's: a call that finds no token
// while it runs waits for it, until warmWait after it began and never for
// more than half the time the call has left, then takes its token or, when
// it failed or still runs, asks on its own, past the lease this fetch holds
// (a second stable_token request changes nothing). A configuration error
// (a wrong secret), and an answer that names its wait, are held as a call's
// would be; another failure of the endpoint is not. A transient 503 at start failed the first call that joined the
// fetch; a hung one failed every call for 10 s, and with a 2 s deadline
// still did after a 3 s wait (outside testers).
func (m *TokenManager) Warm(ctx context.Context) {
	if m.o.Mode != ModeStable {
		return
	}
	w := &warming{done: make(chan struct{}), until: time.Now().Add(warmWait), got: make(chan struct{})}
	m.warming.Store(w)
	defer func() {
		m.warming.Store(nil)
		close(w.done)
	}()
	ctx, cancel := context.WithTimeout(ctx, warmTimeout)
	defer cancel()
	if c := m.fromStore(ctx); m.good(c, m.o.Now()) {
		m.keep(c)
		return
	}
	c, err := m.refresher().Get(ctx)
	if err != nil {
		if !m.good(m.current(), m.o.Now()) {
			// A call that asked on its own meanwhile got a token: WeChat
			// answered since, and a hold would refuse the next refresh on a
			// failure older than that answer (an outside re-tester).
			_ = m.hold(err, false)
		}
		m.o.Log.Debug("wechat: no token at cold start; calls ask again", "error", err.Error())
		return
	}
	m.keep(c)
}

// awaitWarm waits for the cold start's fetch w as Warm says, and reports
// whether it ended.
func (m *TokenManager) awaitWarm(ctx context.Context, w *warming) bool {
	wait := time.Until(w.until)
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)/2)
	}
	if wait <= 0 {
		select {
		case <-w.done:
			return true
		case <-w.got:
			return true
		default:
			return false
		}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-w.done:
		return true
	case <-w.got:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// token is Token, and says whether the token was just fetched (or stored by
// a refresh this call waited for) rather than taken from memory or the
// store, where one WeChat has since refused may still sit.
func (m *TokenManager) token(ctx context.Context) (string, bool, error) {
	now := m.o.Now()
	if local := m.current(); m.good(local, now) {
		return local.Token, false, nil
	}
	if c := m.fromStore(ctx); m.good(c, now) {
		m.keep(c)
		return c.Token, false, nil
	}
	// Only a call with no token waits: a start fetch that still hangs must
	// not slow the calls after one that asked on its own.
	w := m.warming.Load()
	if w != nil {
		if m.awaitWarm(ctx, w) {
			if local := m.current(); m.good(local, m.o.Now()) {
				return local.Token, false, nil
			}
			w = nil // it ended without a token: ask as if there had been none
		}
		now = m.o.Now()
	}
	if err := m.heldError(now); err != nil {
		return "", false, err
	}
	if w != nil {
		return m.race(ctx, w)
	}
	c, err := m.refresh(ctx, false)
	if err != nil {
		return "", false, err
	}
	return c.Token, true, nil
}

// race asks past the start fetch w, which still runs, and takes whichever
// token the instance gets first, its own or the start fetch's: a call
// that asked on its own at the half of its time failed at its deadline
// behind a slow endpoint while the start fetch had brought a token (an
// outside re-tester).
func (m *TokenManager) race(ctx context.Context, w *warming) (string, bool, error) {
	type result struct {
		c   *cached
		err error
	}
	own := make(chan result, 1)
	go func() {
		c, err := m.refresh(ctx, true)
		own <- result{c, err}
	}()
	got := w.got
	for {
		select {
		case r := <-own: // its own answer, or its context's end
			if r.err != nil {
				if local := m.current(); m.good(local, m.o.Now()) {
					return local.Token, false, nil
				}
				return "", false, r.err
			}
			return r.c.Token, true, nil
		case <-got:
			if local := m.current(); m.good(local, m.o.Now()) {
				return local.Token, false, nil
			}
			got = nil // refused meanwhile: its own answer decides
		}
	}
}

// Expire drops the token that just failed — only if it is still the cached
// one, so N callers seeing the same stale token cause one refetch, and a
// token someone already replaced is left alone.
func (m *TokenManager) Expire(ctx context.Context, stale string) {
	m.mu.Lock()
	m.refused = stale
	if m.local != nil && m.local.Token == stale {
		m.local = nil
	}
	m.mu.Unlock()
	if c := m.fromStore(ctx); c != nil && c.Token == stale {
		if _, err := m.o.KV.CompareAndDelete(ctx, m.key, c.raw); err != nil {
			m.o.Log.Warn("wechat: could not expire the stale token in the store", "error", err.Error())
		}
	}
}

// heldError is the configuration error still on hold, if any.
func (m *TokenManager) heldError(now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held != nil && now.Before(m.heldUntil) {
		var ae *APIError
		if errors.As(m.held, &ae) && ae.Config() {
			return m.held // the settings must change first: no wait helps
		}
		// What is left of the hold, not the failure's whole wait: a caller
		// told "wait 5s" 0.4 s before the end, or "wait 3600s" of a hold
		// capped at a minute, came back late (outside re-tester).
		return waitFor(m.held, m.heldUntil.Sub(now))
	}
	m.held = nil
	return nil
}

// hold remembers a configuration error from the token endpoint, and for a
// while a failure of the endpoint itself: what each call is then answered
// without asking, and how long. From the start fetch (failures unset) only
// what no retry cures yet is held: a configuration error, and an answer that
// names its wait (a 429, 45011, a 5xx with Retry-After): asking again at once
// ignored the wait WeChat asked for (an outside re-tester). It returns err
// as the caller that met it is told it: with the wait the hold sets.
func (m *TokenManager) hold(err error, failures bool) error {
	d := configHold
	var ae *APIError
	var ee *envelope.Error
	named := errors.As(err, &ee) && (ee.Code == envelope.CodeThrottled || ee.Code == envelope.CodeUpstreamUnreachable && ee.RetryAfter > 0) ||
		errors.As(err, &ae) && ae.Code == minuteQuota
	switch {
	case errors.As(err, &ae) && ae.Config():
	case !failures && !named:
		return err
	case errors.As(err, &ee) && ee.Code == envelope.CodeThrottled:
		// A 429 says how long to stay away: asking again meanwhile sent one
		// request a call (an outside re-tester: 151 for 150 calls).
		d = between(ee.RetryAfter)
	case errors.As(err, &ee) && ee.Code == envelope.CodeUpstreamUnreachable:
		d = between(ee.RetryAfter) // a 5xx's Retry-After, else a second
	case errors.As(err, &ee) && ee.Code == envelope.CodeUpstreamMalformed:
		d = failureHold
	case errors.As(err, &ae) && ae.Code == minuteQuota:
		// "retry next minute" (errmsg): until the next minute starts.
		now := m.o.Now()
		d = now.Truncate(time.Minute).Add(time.Minute).Sub(now) + time.Second
	case errors.As(err, &ae) && ae.Code == -1 && !ae.cut:
		// System busy after all its retries: asked again a second later,
		// not by every call with its own retries (an outside re-tester).
		d = failureHold
	default:
		return err
	}
	m.mu.Lock()
	m.held, m.heldUntil = err, m.o.Now().Add(d)
	m.mu.Unlock()
	if ae != nil && ae.Config() {
		return err
	}
	return waitFor(err, d)
}

// between is a wait in seconds held to failureHold..maxThrottleHold.
func between(seconds int) time.Duration {
	return min(max(time.Duration(seconds)*time.Second, failureHold), maxThrottleHold)
}

// waitFor is err telling its caller to retry after left (whole seconds, at
// least one): the time a held failure has left, which callers were not told
// (an outside re-tester: a 45011 held for a minute answered no retryAfter).
func waitFor(err error, left time.Duration) error {
	secs := int((left + time.Second - 1) / time.Second)
	var ae *APIError
	var ee *envelope.Error
	switch {
	case errors.As(err, &ee) && ee.Code == envelope.CodeThrottled:
		return upstream.ThrottledFor("wechat", secs)
	case errors.As(err, &ee):
		cp := *ee
		cp.RetryAfter = max(1, secs)
		return &cp
	case errors.As(err, &ae):
		cp := *ae
		cp.RetryAfter = max(1, secs)
		return &cp
	}
	return err
}

// current is this instance's copy of the token, if any.
func (m *TokenManager) current() *cached {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.local
}

func (m *TokenManager) keep(c *cached) {
	m.mu.Lock()
	m.local = c
	m.mu.Unlock()
	if w := m.warming.Load(); w != nil {
		w.gotOnce.Do(func() { close(w.got) })
	}
}

// fromStore reads the shared copy; a store failure is a miss.
func (m *TokenManager) fromStore(ctx context.Context) *cached {
	raw, err := m.o.KV.Get(ctx, m.key)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			m.o.Log.Warn("wechat: token cache unreadable, treating as a miss", "error", err.Error())
		}
		return nil
	}
	var c cached
	if json.Unmarshal(raw, &c) != nil || c.Token == "" {
		return nil
	}
	// A token another instance fetched is as secret here: WeChat may quote
	// it in an errmsg, and only the fetching instance had said to mask it.
	m.o.Remember(c.Token)
	c.raw = raw
	return &c
}

// refresh gets a fresh token: once per instance at a time, and through the
// store's lease once for all instances (the others read what it stored).
// past skips the store's lease, which the instance's own start fetch holds
// while it hangs: the call fetches for this instance and stores what it gets.
func (m *TokenManager) refresh(ctx context.Context, past bool) (*cached, error) {
	c, err := m.flight.Do(ctx, func(ctx context.Context) (*cached, error) {
		var c *cached
		var err error
		if past {
			// Another instance may have stored one meanwhile.
			if c = m.fromStore(ctx); m.good(c, m.o.Now()) {
				m.keep(c)
				return c, nil
			}
			c, err = m.fetchAndStore(ctx)
		} else {
			c, err = m.refresher().Get(ctx)
		}
		if err == nil {
			m.keep(c)
		} else {
			err = m.hold(err, true)
		}
		return c, err
	})
	return c, upstream.Waited("wechat", err)
}

// refresher fetches under the store's lease, or reads what another
// instance's fetch stored.
func (m *TokenManager) refresher() store.Refresher[*cached] {
	return store.Refresher[*cached]{
		KV: m.o.KV, LockKey: m.lockKey, Lease: m.lease(),
		Fresh: func(ctx context.Context) (*cached, bool) {
			c := m.fromStore(ctx)
			return c, m.good(c, m.o.Now())
		},
		Make: m.fetchAndStore,
		NoLock: func(ctx context.Context, err error) (*cached, error) {
			// No shared state: fetch for this instance alone.
			m.o.Log.Warn("wechat: token lock unavailable, fetching for this instance only", "error", err.Error())
			return m.fetchAndStore(ctx)
		},
	}
}

// lease is how long a refresher holds the others off.
func (m *TokenManager) lease() time.Duration {
	if m.o.Mode == ModeClassic {
		return lockTTL
	}
	return stableLockTTL
}

func (m *TokenManager) fetchAndStore(ctx context.Context) (*cached, error) {
	tok, expiresIn, err := m.fetch(ctx)
	if err != nil {
		return nil, err
	}
	m.o.Remember(tok)
	// One line per fetch: the operators' "token fetches" query counts them.
	m.o.Log.Info("token fetched", "vendor", "wechat", "appid", m.o.AppID, "mode", m.o.Mode, "expiresIn", expiresIn)
	m.mu.Lock()
	if tok == m.refused {
		// WeChat issued the very token a call refused (stable_token hands out
		// the live token, and the 40001 was not about it): it is current, so
		// stop shunning it, or every later call would fetch again.
		m.refused = ""
	}
	m.mu.Unlock()
	life := time.Duration(expiresIn) * time.Second
	use := life - margin
	if use < floor {
		use = floor
	}
	if use > life && life > 0 {
		use = life
	}
	c := &cached{Token: tok, UseUntil: m.o.Now().Add(use).UnixMilli()}
	raw, _ := json.Marshal(c)
	c.raw = raw
	if err := m.o.KV.Set(ctx, m.key, raw, use); err != nil {
		m.o.Log.Warn("wechat: token not shared (store write failed); this instance keeps its copy", "error", err.Error())
	}
	return c, nil
}

// fetch calls the token endpoint, retrying only "system busy".
func (m *TokenManager) fetch(ctx context.Context) (string, int, error) {
	for attempt := 0; ; attempt++ {
		sent := time.Now()
		tok, exp, err := m.fetchOnce(ctx)
		var ae *APIError
		if errors.As(err, &ae) && ae.Code == -1 && attempt < maxBusyRetries {
			if upstream.Sleep(ctx, upstream.Backoff(attempt, 100*time.Millisecond, time.Second), upstream.Margin(sent, 200*time.Millisecond)) == nil {
				continue
			}
			ae.cut = true // the deadline, not WeChat, ended the retries: not held
		}
		return tok, exp, err
	}
}

type tokenReply struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	Errcode     int    `json:"errcode"`
	Errmsg      string `json:"errmsg"`
}

func (m *TokenManager) fetchOnce(ctx context.Context) (string, int, error) {
	var req *http.Request
	var err error
	if m.o.Mode == ModeClassic {
		q := url.Values{"grant_type": {"client_credential"}, "appid": {m.o.AppID}, "secret": {m.o.Secret}}
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, m.o.Base+"/cgi-bin/token?"+q.Encode(), nil)
	} else {
		body, _ := json.Marshal(map[string]any{"grant_type": "client_credential", "appid": m.o.AppID, "secret": m.o.Secret, "force_refresh": false})
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, m.o.Base+"/cgi-bin/stable_token", bytes.NewReader(body))
		if req != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if err != nil {
		return "", 0, fmt.Errorf("wechat token request: %w", err)
	}
	resp, err := m.o.HTTP.Do(req)
	if err != nil {
		return "", 0, upstream.TransportError("wechat", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, upstream.TransportError("wechat", err)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return "", 0, upstream.Throttled("wechat", resp.Header)
	}
	if resp.StatusCode >= 500 {
		// As for the business call: the endpoint is failing, retry (its
		// page is readable; it is no answer).
		return "", 0, &envelope.Error{Code: envelope.CodeUpstreamUnreachable, Reason: fmt.Sprintf("wechat's token endpoint answered HTTP %d", resp.StatusCode),
			RetryAfter: upstream.RetryAfter(resp.Header), Upstream: &envelope.Upstream{Vendor: "wechat", HTTPStatus: resp.StatusCode}}
	}
	var r tokenReply
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &r) != nil {
		return "", 0, upstream.Malformed("wechat", resp.StatusCode, fmt.Errorf("token endpoint: unexpected answer"))
	}
	if r.Errcode != 0 {
		return "", 0, &APIError{Code: r.Errcode, Msg: r.Errmsg, Token: true}
	}
	if r.AccessToken == "" {
		return "", 0, upstream.Malformed("wechat", resp.StatusCode, fmt.Errorf("token endpoint: no access_token"))
	}
	return r.AccessToken, r.ExpiresIn, nil
}
