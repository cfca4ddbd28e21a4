// Package ck1 calls the CK1 (Chukou1) OpenAPI: bearer credentials from a
// fixed token or OAuth refresh (rotated refresh tokens persisted before use,
// one refresher at a time across instances), CK1's error body kept verbatim,
// and the inbound box pricing operation with its documented field rules.
package ck1

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/upstream"
)

// Tokens hands out bearer tokens.
type Tokens interface {
	Token(ctx context.Context) (string, error)
	// Invalidate says tok was refused (401): the next Token must not return it.
	Invalidate(ctx context.Context, tok string)
}

// Fixed is a long-lived token CK1 issues to in-house systems.
type Fixed string

func (f Fixed) Token(context.Context) (string, error) { return string(f), nil }
func (f Fixed) Invalidate(context.Context, string)    {}

// OAuthOptions configures OAuth refresh.
type OAuthOptions struct {
	Base                   string
	ClientID, ClientSecret string
	SeedRefreshToken       string // CK1_REFRESH_TOKEN: used only while the store holds no state
	HTTP                   *http.Client
	KV                     store.KV
	Log                    *slog.Logger
	Remember               func(string)
	Now                    func() time.Time
	// MinRefreshTime is the least time a call must have left to start
	// spending the refresh token (default 3 s; half the call's whole time
	// when that is shorter, see WithCallBudget): a platform stops a function
	// at its deadline, and a rotation cut there loses the only valid token.
	MinRefreshTime time.Duration
}

// budgetKey carries the time a call had when it began (WithCallBudget).
type budgetKey struct{}

// WithCallBudget records the time ctx has left as the call's whole time: a
// refresh then needs MinRefreshTime left, or half of that whole time when
// it is shorter, so a short platform timeout can still refresh at its start.
func WithCallBudget(ctx context.Context) context.Context {
	if dl, ok := ctx.Deadline(); ok {
		return context.WithValue(ctx, budgetKey{}, time.Until(dl))
	}
	return ctx
}

// OAuth refreshes the access token with the refresh token, and persists the
// rotated pair in the shared store before using it: a consumed refresh token
// is never forgotten, whichever instance consumed it.
type OAuth struct {
	o       OAuthOptions
	key     string
	lockKey string
	// durable never degrades to instance memory: a refresh token is
	// single-use, so it is spent only when its successor can be shared.
	durable store.KV

	flight store.Flight[string]

	mu    sync.Mutex
	local *state
	// refused is the last token CK1 answered 401 to: a copy of it read
	// from the store before the invalidation landed must not come back.
	refused string
	// unsaved is a rotated pair the store did not take. Its refresh token
	// is the only valid one (the stored one is spent), so it is the one
	// spent next, and it is written at every chance until the store takes
	// it. saveMu orders those writes with a refresh's own.
	unsaved *state
	// seedRefused: CK1 refused the environment's seed in this process; it
	// is not presented again (a new value comes with a new process).
	seedRefused bool
	// spentSeeds are the seeds this process saw recorded as spent (in a
	// state it kept): the record goes when the store loses its data, and
	// presenting a spent seed again got it refused and the calls told to
	// "authorize again" while another instance held a working pair.
	spentSeeds map[string]bool
	// spares are this instance's own pairs, kept when it took up a pair
	// another instance wrote back after a store loss (Restored): that one
	// may be stale, and without the spare its refusal lost the newest
	// refresh token for good (outside tester).
	spares   []*state
	saveMu   sync.Mutex
	flushing atomic.Bool
	// checked (unix ms) and restoring pace restore.
	checked   atomic.Int64
	restoring atomic.Bool
	// lostSince (unix ms) is when this instance first found the store
	// empty with nothing left to present (its copy refused, the seed
	// spent); 0 once a state is found again. Past refusalHold it answers
	// "authorize again": any instance holding a working pair would have
	// stored it by then, and "retry" went on for good (outside tester).
	lostSince atomic.Int64
}

// state is what the store keeps per client id.
type state struct {
	AccessToken  string `json:"accessToken"`
	AccessUntil  int64  `json:"accessUntil"` // unix ms; refresh before this
	RefreshToken string `json:"refreshToken"`
	// Refused, with RefusedAt (unix ms), says CK1 refused RefreshToken:
	// no instance presents it again for refusalHold (each call did, and an
	// OAuth server that watches for reuse may revoke the grant), and an
	// environment seed other than it is then tried as a re-authorization.
	// After the hold it is presented once more: a refusal may have been a
	// passing one, or caused by one instance's wrong client secret.
	Refused   string `json:"refused,omitempty"`
	RefusedAt int64  `json:"refusedAt,omitempty"`
	// SpentSeeds fingerprints the seeds this deployment spent (the last
	// few): an instance whose environment still holds one does not present
	// it when the stored token is refused.
	SpentSeeds []string `json:"spentSeeds,omitempty"`
	// Restored: an instance wrote its own pair back after the store lost
	// the state (restore). It may be stale (another instance may have
	// rotated it since): refused, it is treated as a stale copy, not as
	// the deployment's refusal.
	Restored bool `json:"restored,omitempty"`
	// SeedOnEmpty: the refused token is the environment's seed, presented
	// while the store held no state. Within seedWindow of RefusedAt that
	// refusal is retryable (-1501): the store was likely just emptied, and
	// a warm instance stores its pair within that time. RefusedAt, being
	// shared, starts the window once for every instance.
	SeedOnEmpty bool `json:"seedOnEmpty,omitempty"`
	raw         []byte
}

// seedPrint fingerprints a seed refresh token.
func seedPrint(seed string) string {
	sum := sha256.Sum256([]byte("ck1-seed:" + seed))
	return hex.EncodeToString(sum[:8])
}

// refusalHold is how long a refused refresh token is not presented again.
const refusalHold = time.Minute

// seedWindow is how long after the first refusal of the seed on an empty
// store the calls answer "retry" (-1501) rather than "authorize again": a
// warm instance checks the store at its calls every restoreEvery and
// stores its pair then, at its first call a second or more after the loss. Answered -1601, clients that follow the envelope
// stopped retrying and alarms paged during an ordinary store loss (outside
// tester).
const seedWindow = 10 * time.Second

// seedWindowReason is one text for every call within seedWindow, so
// identical errors group in logs and alerts.
const seedWindowReason = "CK1 refused the refresh token in CK1_REFRESH_TOKEN, and the shared store held no CK1 token state: if it was just emptied while instances were serving, they store their pair again within 10 s, so retry; calls answer -1601 after those 10 s if none does (then authorize the app again and set a new CK1_REFRESH_TOKEN)"

// inSeedWindow says st records the seed refused on an empty store less
// than seedWindow ago.
func inSeedWindow(st *state, now time.Time) bool {
	return st != nil && st.SeedOnEmpty && st.Refused != "" && st.Refused == st.RefreshToken &&
		now.Sub(time.UnixMilli(st.RefusedAt)) < seedWindow
}

const (
	accessMargin          = 2 * time.Minute
	stateTTL              = 90 * 24 * time.Hour // outlives any refresh token CK1 issues
	refreshLease          = 15 * time.Second
	defaultMinRefreshTime = 3 * time.Second
	// refreshTimeout bounds the exchange and the store write once the token
	// is being spent; it ends well inside the lease, so no other instance
	// spends the same token meanwhile.
	refreshTimeout = 10 * time.Second
)

// NewOAuth builds the token source; nothing is fetched until asked.
func NewOAuth(o OAuthOptions) *OAuth {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Remember == nil {
		o.Remember = func(string) {}
	}
	if o.MinRefreshTime <= 0 {
		o.MinRefreshTime = defaultMinRefreshTime
	}
	o.Base = strings.TrimRight(o.Base, "/")
	o.HTTP = upstream.NoRedirects(o.HTTP)
	k := "ck1:oauth:" + o.ClientID
	return &OAuth{o: o, key: k, lockKey: k + ":lock", durable: store.Durable(o.KV)}
}

func (s *state) usable(now time.Time) bool {
	return s != nil && s.AccessToken != "" && now.UnixMilli() < s.AccessUntil
}

// good is usable and not a token this instance saw refused.
func (a *OAuth) good(st *state, now time.Time) bool {
	if !st.usable(now) {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return st.AccessToken != a.refused
}

func (a *OAuth) read(ctx context.Context) *state {
	raw, err := a.o.KV.Get(ctx, a.key)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			a.o.Log.Warn("ck1: token state unreadable; using this instance's copy", "error", err.Error())
			a.mu.Lock()
			defer a.mu.Unlock()
			return a.local
		}
		return nil
	}
	var st state
	if json.Unmarshal(raw, &st) != nil {
		return nil
	}
	a.remember(&st)
	st.raw = raw
	return &st
}

// remember masks a pair another instance stored as this one masks what it
// fetched: a firewall page or CK1's refusal may quote either token, and the
// refresh token in clear lets anyone who reads it lock the deployment out.
func (a *OAuth) remember(st *state) {
	for _, t := range []string{st.AccessToken, st.RefreshToken, st.Refused} {
		if t != "" {
			a.o.Remember(t)
		}
	}
}

// readShared reads the state from the shared store itself, never from the
// fallback's instance memory: nil when the store holds none, an error when
// it does not answer.
func (a *OAuth) readShared(ctx context.Context) (*state, error) {
	raw, err := a.durable.Get(ctx, a.key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st state
	if json.Unmarshal(raw, &st) != nil {
		return nil, nil
	}
	a.remember(&st)
	st.raw = raw
	return &st, nil
}

// Token returns a usable access token, refreshing once for everyone when
// it has expired.
func (a *OAuth) Token(ctx context.Context) (string, error) {
	now := a.o.Now()
	a.mu.Lock()
	local, unsaved := a.local, a.unsaved
	a.mu.Unlock()
	if unsaved != nil && a.flushing.CompareAndSwap(false, true) {
		// In the background, one at a time: a store that is still down
		// must not hold up calls this instance can answer.
		go func() {
			defer a.flushing.Store(false)
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
			defer cancel()
			a.flushUnsaved(fctx)
		}()
	}
	if a.good(local, now) {
		if unsaved == nil && now.Sub(time.UnixMilli(a.checked.Load())) >= restoreEvery && a.restoring.CompareAndSwap(false, true) {
			a.checked.Store(now.UnixMilli())
			go func() {
				defer a.restoring.Store(false)
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
				defer cancel()
				a.restore(rctx, local)
			}()
		}
		return local.AccessToken, nil
	}
	if st := a.read(ctx); a.good(st, now) {
		a.keep(st)
		return st.AccessToken, nil
	}
	return a.refresh(ctx)
}

// restoreEvery is how often an instance serving from its own pair checks
// that the shared store still holds one (a read in the background of a
// call). Every 10 s, an instance reclaimed within 10 s of the store's loss
// took the deployment's only live refresh token with it (a re-tester).
const restoreEvery = time.Second

// restore writes this instance's pair back, marked Restored, when the shared
// store lost the state: an instance started after the loss found nothing,
// spent the spent seed and answered "authorize again" for up to an hour,
// until a warm instance's access token expired and its refresh stored a
// pair (outside tester). Now it reads the warm instance's pair within a
// minute. A state that is there is left alone.
//
// A state whose refresh token CK1 refused, other than this instance's, is
// replaced too: an instance started within the minute after the loss spent
// the spent seed and stored its refusal, and every new instance then
// answered "authorize again" while this one held a working pair (outside
// tester). The seeds either state records as spent stay recorded.
func (a *OAuth) restore(ctx context.Context, local *state) {
	cur, err := a.readShared(ctx)
	if err != nil {
		return // the store does not answer: nothing to restore
	}
	cp := *local
	cp.Restored, cp.Refused, cp.RefusedAt, cp.SeedOnEmpty, cp.raw = true, "", 0, false, nil
	switch {
	case cur == nil:
		b, _ := json.Marshal(&cp)
		if won, err := a.durable.SetNX(ctx, a.key, b, stateTTL); err == nil && won {
			a.o.Log.Warn("ck1: the shared store held no token state; this instance's pair is stored again", "clientId", a.o.ClientID)
		}
	case cur.Refused != "" && cur.Refused == cur.RefreshToken && cur.RefreshToken != local.RefreshToken && cur.raw != nil:
		for _, p := range cur.SpentSeeds {
			if !slices.Contains(cp.SpentSeeds, p) {
				cp.SpentSeeds = append(slices.Clone(cp.SpentSeeds), p)
			}
		}
		cp.SpentSeeds = cp.SpentSeeds[max(0, len(cp.SpentSeeds)-8):]
		b, _ := json.Marshal(&cp)
		if won, err := a.durable.CompareAndSwap(ctx, a.key, cur.raw, b, stateTTL); err == nil && won {
			a.o.Log.Warn("ck1: the shared store held a refused refresh token; this instance's pair is stored in its place", "clientId", a.o.ClientID)
		}
	}
}

func (a *OAuth) keep(st *state) {
	a.mu.Lock()
	if st != nil && st.Restored && a.local != nil && a.local.RefreshToken != "" && a.local.RefreshToken != st.RefreshToken &&
		!slices.ContainsFunc(a.spares, func(s *state) bool { return s.RefreshToken == a.local.RefreshToken }) {
		// Every pair it held, not only the last: a second written-back
		// pair taken up replaced the first spare, the newest (outside
		// tester). A few at most; each is presented once.
		a.spares = append(a.spares, a.local)
		a.spares = a.spares[max(0, len(a.spares)-4):]
	}
	a.local = st
	if st != nil {
		for _, p := range st.SpentSeeds {
			if a.spentSeeds == nil {
				a.spentSeeds = map[string]bool{}
			}
			a.spentSeeds[p] = true
		}
	}
	a.mu.Unlock()
}

// Restored says tok is the access token of a pair this instance took up
// from a written-back state (possibly stale), not one it refreshed itself.
func (a *OAuth) Restored(tok string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.local != nil && a.local.Restored && a.local.AccessToken == tok
}

// Invalidate marks tok expired, keeping the refresh token.
func (a *OAuth) Invalidate(ctx context.Context, tok string) {
	a.mu.Lock()
	a.refused = tok
	if a.local != nil && a.local.AccessToken == tok {
		cp := *a.local
		cp.AccessUntil = 0
		a.local = &cp
	}
	a.mu.Unlock()
	st := a.read(ctx)
	if st == nil || st.AccessToken != tok || st.raw == nil {
		return
	}
	next := *st
	next.AccessUntil = 0
	b, _ := json.Marshal(&next)
	if _, err := a.o.KV.CompareAndSwap(ctx, a.key, st.raw, b, stateTTL); err != nil {
		a.o.Log.Warn("ck1: could not mark the refused token expired", "error", err.Error())
	}
}

func (a *OAuth) refresh(ctx context.Context) (string, error) {
	tok, err := a.flight.Do(ctx, store.Refresher[string]{
		KV: a.durable, LockKey: a.lockKey, Lease: refreshLease,
		Fresh: func(ctx context.Context) (string, bool) {
			st := a.read(ctx)
			if !a.good(st, a.o.Now()) {
				return "", false
			}
			a.keep(st)
			return st.AccessToken, true
		},
		Make: a.refreshLocked,
		NoLock: func(_ context.Context, err error) (string, error) {
			return "", &envelope.Error{Code: envelope.CodeStoreUnavailable,
				Reason: "the CK1 token cannot be refreshed safely without the shared store (a refresh token is single-use); retry when it is back", Err: err}
		},
	}.Get)
	return tok, upstream.Waited("ck1", err)
}

// tokenReply is CK1's PascalCase token answer.
type tokenReply struct {
	AccessToken           string `json:"AccessToken"`
	AccessTokenExpiresIn  int64  `json:"AccessTokenExpiresIn"`
	RefreshToken          string `json:"RefreshToken"`
	RefreshTokenExpiresIn int64  `json:"RefreshTokenExpiresIn"`
	Message               string `json:"Message"`
}

// refreshLocked holds the lease: it spends the current refresh token and
// persists the rotated pair before handing the access token out.
func (a *OAuth) refreshLocked(ctx context.Context) (string, error) {
	// Re-read under the lease, from the shared store only: someone may have
	// just finished, and a read the store did not answer must not pass for
	// "no state", which would spend the seed (the fallback answers from this
	// instance's empty memory for a moment after a blip).
	st, err := a.readShared(ctx)
	if err != nil {
		return "", &envelope.Error{Code: envelope.CodeStoreUnavailable,
			Reason: "the CK1 token state cannot be read from the shared store, so the single-use refresh token is not spent; retry when it is back", Err: err}
	}
	if st != nil {
		a.lostSince.Store(0)
	}
	if a.good(st, a.o.Now()) {
		a.keep(st)
		return st.AccessToken, nil
	}
	seed, now := a.o.SeedRefreshToken, a.o.Now()
	a.mu.Lock()
	local, unsaved, seedRefused := a.local, a.unsaved, a.seedRefused
	var spare *state
	for _, sp := range a.spares {
		if st == nil || sp.RefreshToken != st.RefreshToken {
			spare = sp // the first that is not the stored one
			break
		}
	}
	seedSpent := seed != "" && a.spentSeeds[seedPrint(seed)]
	a.mu.Unlock()
	// dead: CK1 refused the stored refresh token (within the hold, nobody
	// presents it again).
	dead := st != nil && st.Refused != "" && st.Refused == st.RefreshToken
	holding := dead && now.Sub(time.UnixMilli(st.RefusedAt)) < refusalHold
	var refreshTok, kind string // kind: unsaved, stored, copy, seed
	switch {
	case unsaved != nil:
		refreshTok, kind = unsaved.RefreshToken, "unsaved" // the stored one is spent
	case st != nil && st.RefreshToken != "" && !dead && st.Restored:
		refreshTok, kind = st.RefreshToken, "restored" // an instance's copy, written back: may be stale
	case st != nil && st.RefreshToken != "" && !dead:
		refreshTok, kind = st.RefreshToken, "stored"
	case local != nil && local.RefreshToken != "" && (st == nil || local.RefreshToken != st.RefreshToken):
		// The store holds nothing usable (it lost its data: a restart
		// without AOF, a failover; or it holds a token CK1 refused), yet
		// this instance has a pair. The seed was spent by the first
		// refresh; this instance's copy is the newest it knows. Presented
		// once: refused, it is dropped.
		refreshTok, kind = local.RefreshToken, "copy"
		a.o.Log.Warn("ck1: the shared store holds no usable token state; refreshing with this instance's copy of the refresh token, not the seed")
	case spare != nil:
		// The pair this instance held before it took up a written-back
		// one, which CK1 refused or the store lost: possibly the newest.
		refreshTok, kind = spare.RefreshToken, "spare"
	case seed != "" && !seedRefused && !seedSpent && (st == nil || seed != st.RefreshToken && !slices.Contains(st.SpentSeeds, seedPrint(seed))):
		// No state yet (the first refresh), or the stored token was
		// refused and the environment holds another: the app was
		// authorized again. Tried once per process; a stored pair that
		// works is never replaced by it (a mistyped seed cannot destroy it).
		refreshTok, kind = seed, "seed"
	case dead && !holding:
		// The refused stored token once more, at most once a hold: the
		// refusal may have been a passing one, or an instance's wrong
		// client secret.
		refreshTok, kind = st.RefreshToken, "stored"
	case dead && st.Restored:
		// A copy written back after a store loss, refused: stale. The
		// instance holding the newest pair stores it at its next check.
		return "", &envelope.Error{Code: envelope.CodeStoreUnavailable,
			Reason: "the shared store lost the CK1 token state and the copy an instance wrote back was refused (stale); the instance holding the newest pair stores it at its next call: retry"}
	case inSeedWindow(st, now):
		// The seed refused on an empty store moments ago, by this
		// instance or another: a warm instance may still store its pair.
		return "", &envelope.Error{Code: envelope.CodeStoreUnavailable, RetryAfter: envelope.StoreRetryAfter, Reason: seedWindowReason}
	case dead:
		return "", refusedError(0, fmt.Sprintf("(refused %s ago; presented again after %s, or set a new CK1_REFRESH_TOKEN; if the shared store was just emptied, a serving instance stores its pair again within 10 s of its next call)",
			now.Sub(time.UnixMilli(st.RefusedAt)).Round(time.Second), refusalHold))
	}
	if refreshTok == "" {
		if st == nil && seed != "" && (seedRefused || seedSpent) {
			// The store lost the state, and this process knows the seed
			// was spent: an instance holding the newest pair stores it
			// again (restore), so this is an outage to retry, not the
			// missing setting it read as. For a hold: after that, no
			// instance holds one.
			a.lostSince.CompareAndSwap(0, now.UnixMilli())
			if now.Sub(time.UnixMilli(a.lostSince.Load())) >= refusalHold {
				// One text for every call (no running count of seconds),
				// so identical errors group in logs and alerts.
				return "", &envelope.Error{Code: envelope.CodeConfig,
					Reason: "configuration: the shared store has held no CK1 token state for over a minute, no instance has stored its pair since (one that holds a working pair does within 10 s of its next call), and CK1_REFRESH_TOKEN was spent by this deployment before: every copy of the refresh token is spent or was refused; authorize the app again and set a new CK1_REFRESH_TOKEN (if an instance stores a working pair meanwhile, calls work again by themselves)"}
			}
			return "", &envelope.Error{Code: envelope.CodeStoreUnavailable,
				Reason: "the shared store holds no CK1 token state and CK1_REFRESH_TOKEN was spent by this deployment before: an instance holding the newest pair stores it again within 10 s of its next call; retry (if none does, authorize the app again and set a new CK1_REFRESH_TOKEN)"}
		}
		return "", envelope.ConfigError("no CK1 refresh token: set CK1_REFRESH_TOKEN (or CK1_ACCESS_TOKEN for a fixed token)")
	}
	need := a.o.MinRefreshTime
	if b, ok := ctx.Value(budgetKey{}).(time.Duration); ok && b/2 < need {
		// A call whose whole time is short (a platform Timeout of 1-3 s)
		// refreshes at its start: it failed every call for good.
		need = b / 2
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < need {
		return "", &envelope.Error{Code: envelope.CodeUpstreamTimeout, Reason: fmt.Sprintf(
			"the CK1 access token needs a refresh, which spends the single-use refresh token and needs at least %s left in the call (%s left); nothing was spent: retry with a longer timeout",
			need.Round(time.Millisecond), time.Until(dl).Round(time.Millisecond))}
	}
	// From here the refresh token is being spent. Neither the caller giving
	// up (a disconnect in HTTP-server mode) nor its deadline may cut the
	// exchange or the store write short: the rotated token would be lost
	// with the answer, and CK1 would refuse the spent one.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	defer cancel()
	q := url.Values{"client_id": {a.o.ClientID}, "client_secret": {a.o.ClientSecret}, "grant_type": {"refresh_token"}, "refresh_token": {refreshTok}}
	tctx, sent := upstream.Sent(ctx)
	req, err := http.NewRequestWithContext(tctx, http.MethodPost, a.o.Base+"/oauth2/token?"+q.Encode(), strings.NewReader(q.Encode()))
	if err != nil {
		return "", upstream.Clean(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.o.HTTP.Do(req)
	if err != nil {
		e := upstream.TransportError("ck1", err)
		if sent() && !errors.Is(err, upstream.ErrRedirect) {
			e = answerLost(e)
		}
		return "", e
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", answerLost(upstream.TransportError("ck1", err))
	}
	var r tokenReply
	_ = json.Unmarshal(b, &r)
	if resp.StatusCode != http.StatusOK || r.AccessToken == "" || r.RefreshToken == "" {
		msg := r.Message
		if msg == "" {
			// A page from a proxy or firewall, not CK1's JSON: enough of it
			// to recognise, not the megabyte it may be.
			msg = upstream.Page(b)
		}
		// Only a refusal (4xx) says the refresh token is dead. A throttle
		// or a server error says nothing of it: the state is left as it
		// is and the caller retries (if CK1 did spend the token before
		// failing, the retry's refusal says so then).
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			return "", upstream.Throttled("ck1", resp.Header)
		case resp.StatusCode == http.StatusOK:
			// CK1 took the exchange: the refresh token it was given is spent,
			// and its successor is in an answer this instance cannot read
			// ("could not be read" alone said to retry later: an outside
			// re-tester). Nothing is recorded: the next refresh presents the
			// same token, and CK1's refusal then answers "authorize again".
			e := upstream.Malformed("ck1", resp.StatusCode, fmt.Errorf("the token answer has no access_token or refresh_token"))
			e.Reason = "CK1 answered the token request with HTTP 200 and a body that could not be read: CK1 has most likely spent the single-use refresh token, and the new one is in that answer; retry, and if CK1 then refuses the refresh token, authorize the app again and set CK1_REFRESH_TOKEN"
			return "", e
		case resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized || r.Message == "":
			// Not CK1's refusal (its errors are JSON with a Message): a
			// server error, a proxy's or firewall's page, a timeout. It
			// says nothing of the refresh token, so nothing is recorded.
			return "", &envelope.Error{Code: envelope.CodeUpstreamUnreachable,
				Reason:   fmt.Sprintf("CK1's token endpoint answered HTTP %d, not a refusal of the refresh token; nothing was stored, retry", resp.StatusCode),
				Upstream: &envelope.Upstream{Vendor: "ck1", HTTPStatus: resp.StatusCode, Message: msg}}
		}
		// Another instance may have refreshed while this one did: the store
		// lost the refresh lock (a Redis restarted empty), and that
		// instance spent the same token first. Its pair is stored and
		// live, and this refusal says nothing of it (an instance answered
		// "authorize again" while the deployment was fine).
		if cur, err := a.readShared(ctx); err == nil && cur != nil && cur.RefreshToken != refreshTok && cur.Refused != cur.RefreshToken {
			if a.good(cur, a.o.Now()) {
				a.keep(cur)
				a.o.Log.Warn("ck1: another instance refreshed the token while this one did (the shared store lost the refresh lock); its pair is used", "clientId", a.o.ClientID)
				return cur.AccessToken, nil
			}
			return "", &envelope.Error{Code: envelope.CodeStoreUnavailable,
				Reason:   "another instance refreshed the CK1 token while this one did (the shared store lost its refresh lock); retry",
				Upstream: &envelope.Upstream{Vendor: "ck1", HTTPStatus: resp.StatusCode, Message: msg}}
		}
		switch kind {
		case "restored", "copy", "spare":
			// A stale copy (this instance's, or one an instance wrote back):
			// spent, so dropped here, and a written-back one recorded so
			// nobody presents it again. Another instance may hold a newer
			// pair (it made the last refresh before the store lost it): its
			// refresh stores it, so this refusal is retryable.
			if kind == "restored" {
				a.markRefused(ctx, st, refreshTok, true, false)
			}
			a.mu.Lock()
			if a.local != nil && a.local.RefreshToken == refreshTok {
				a.local = nil
			}
			a.spares = slices.DeleteFunc(a.spares, func(s *state) bool { return s.RefreshToken == refreshTok })
			a.mu.Unlock()
			return "", &envelope.Error{Code: envelope.CodeStoreUnavailable,
				Reason:   "the shared store lost the CK1 token state and a copy of the refresh token an instance kept was refused; another instance may hold the newest and store it: retry (if every instance says so, authorize the app again and set CK1_REFRESH_TOKEN)",
				Upstream: &envelope.Upstream{Vendor: "ck1", HTTPStatus: resp.StatusCode, Message: msg}}
		case "seed":
			a.mu.Lock()
			a.seedRefused = true
			a.mu.Unlock()
			if st != nil {
				break // a re-authorization that failed: the stored state stands
			}
			fallthrough
		default:
			// Refused as the stored pair (a written-back one too, presented
			// again after its hold: no instance stored a newer pair in a
			// whole hold, so it is no stale copy but the deployment's last
			// pair, spent): "authorize again" from now on, not the -1501
			// retry it answered for ever.
			onEmpty := kind == "seed" && st == nil
			a.markRefused(ctx, st, refreshTok, false, onEmpty)
			if onEmpty {
				// A fresh deployment's bad seed, or the seed it spent before
				// its store was emptied: warm instances restore their pair
				// within the window, counted from the first such refusal
				// the store recorded (another instance's, if it was first).
				cur, err := a.readShared(ctx)
				if err != nil || cur == nil || !cur.SeedOnEmpty || inSeedWindow(cur, a.o.Now()) {
					return "", &envelope.Error{Code: envelope.CodeStoreUnavailable, RetryAfter: envelope.StoreRetryAfter, Reason: seedWindowReason,
						Upstream: &envelope.Upstream{Vendor: "ck1", HTTPStatus: resp.StatusCode, Message: msg}}
				}
			}
		}
		return "", refusedError(resp.StatusCode, msg)
	}
	a.o.Remember(r.AccessToken)
	a.o.Remember(r.RefreshToken)
	// One line per refresh: the operators' "token fetches" query counts them.
	a.o.Log.Info("token fetched", "vendor", "ck1", "clientId", a.o.ClientID, "expiresIn", r.AccessTokenExpiresIn)
	life := time.Duration(r.AccessTokenExpiresIn) * time.Second
	use := life - accessMargin
	if use < life/2 {
		use = life / 2
	}
	next := &state{AccessToken: r.AccessToken, AccessUntil: a.o.Now().Add(use).UnixMilli(), RefreshToken: r.RefreshToken}
	if st != nil {
		next.SpentSeeds = st.SpentSeeds
	}
	if kind == "seed" {
		next.SpentSeeds = append(slices.Clone(next.SpentSeeds), seedPrint(seed))
		next.SpentSeeds = next.SpentSeeds[max(0, len(next.SpentSeeds)-8):]
	}
	raw, _ := json.Marshal(next)
	next.raw = raw
	// The old refresh token is spent: the new pair must reach the store
	// before anyone uses it, or a restart would come back with a dead token.
	var spent []byte
	if st != nil {
		spent = st.raw
	}
	a.saveMu.Lock()
	werr := a.save(ctx, spent, next)
	a.mu.Lock()
	if werr != nil {
		a.unsaved = next
	} else {
		a.unsaved = nil
	}
	a.mu.Unlock()
	a.saveMu.Unlock()
	if werr != nil {
		a.o.Log.Error("ck1: rotated refresh token could not be persisted; this instance keeps it, spends it next and writes it when the store answers",
			"error", werr.Error())
	}
	a.keep(next)
	a.mu.Lock()
	a.spares = nil // the pair just stored is the newest
	a.mu.Unlock()
	return next.AccessToken, nil
}

// refusedError is -1601: only a new authorization helps.
func refusedError(status int, msg string) *envelope.Error {
	e := &envelope.Error{Code: envelope.CodeConfig,
		Reason: "configuration: CK1 refused the refresh token (revoked, expired or already used; or presented with a wrong CK1_CLIENT_ID or CK1_CLIENT_SECRET: when one instance's settings differ, fix them, and the stored token is tried again after the hold): otherwise authorize the app again and set CK1_REFRESH_TOKEN (a new value is tried once the stored one is refused)"}
	if status != 0 {
		e.Upstream = &envelope.Upstream{Vendor: "ck1", HTTPStatus: status, Message: msg}
	} else {
		e.Reason += " " + msg
	}
	return e
}

// markRefused records in the shared state that CK1 refused tok, so no
// instance presents it again within the hold; stale keeps a written-back
// pair's mark (its refusal is retryable while an instance may store a newer
// one); onEmpty says tok is the seed presented while the store held no
// state (seedWindow). Best effort: a store that does not take it only costs
// more refusals.
func (a *OAuth) markRefused(ctx context.Context, st *state, tok string, stale, onEmpty bool) {
	next := state{RefreshToken: tok}
	if st != nil {
		next = *st
		next.RefreshToken = tok
	}
	next.Restored = next.Restored && stale
	// Only the first refusal opens the window: the seed presented again
	// after the hold and refused is the deployment's, for good.
	next.SeedOnEmpty = onEmpty
	next.Refused, next.RefusedAt = tok, a.o.Now().UnixMilli()
	b, _ := json.Marshal(&next)
	var err error
	if st != nil && st.raw != nil {
		_, err = a.durable.CompareAndSwap(ctx, a.key, st.raw, b, stateTTL)
	} else {
		_, err = a.durable.SetNX(ctx, a.key, b, stateTTL)
	}
	if err != nil {
		a.o.Log.Warn("ck1: could not record the refused refresh token", "error", err.Error())
	}
}

// save writes a rotated pair over the state whose refresh token was spent,
// retrying a store that fails for a moment (a lost pair would leave every
// instance with a spent token). Holding the lease, ours is the newest pair,
// so a state that changed meanwhile is overwritten.
func (a *OAuth) save(ctx context.Context, spent []byte, next *state) error {
	for attempt := 0; ; attempt++ {
		ok := false
		var err error
		if spent != nil {
			ok, err = a.durable.CompareAndSwap(ctx, a.key, spent, next.raw, stateTTL)
		}
		if err == nil && !ok {
			err = a.durable.Set(ctx, a.key, next.raw, stateTTL)
		}
		if err == nil || attempt == 3 ||
			upstream.Sleep(ctx, upstream.Backoff(attempt, 50*time.Millisecond, 400*time.Millisecond), 0) != nil {
			return err
		}
	}
}

// flushUnsaved writes the pair a refresh could not store; calls start it
// until the store takes it. Only this instance holds a valid refresh token
// meanwhile, so its pair overwrites whatever the store has.
func (a *OAuth) flushUnsaved(ctx context.Context) {
	a.saveMu.Lock()
	defer a.saveMu.Unlock()
	a.mu.Lock()
	u := a.unsaved
	a.mu.Unlock()
	if u == nil {
		return // a refresh stored a newer pair meanwhile
	}
	if err := a.durable.Set(ctx, a.key, u.raw, stateTTL); err != nil {
		return
	}
	a.mu.Lock()
	if a.unsaved == u {
		a.unsaved = nil
	}
	a.mu.Unlock()
	a.o.Log.Info("ck1: the rotated refresh token kept in memory is now stored", "clientId", a.o.ClientID)
}

// answerLost is the reason of a token exchange that left and whose answer
// was lost: CK1 may have rotated the pair, and then the refresh token this
// instance still holds is spent. "Could not be reached" said nothing was
// done (an outside tester). Nothing is recorded: the next refresh presents
// the same token, and CK1's refusal of it, if it was spent, answers
// "authorize again".
func answerLost(e *envelope.Error) *envelope.Error {
	what := "the connection to CK1 failed after the token request was sent"
	if e.Code == envelope.CodeUpstreamTimeout {
		what = "CK1 did not answer the token request in time"
	}
	e.Reason = what + ": CK1 may have spent the single-use refresh token with the answer lost; retry, and if CK1 then refuses the refresh token, authorize the app again and set CK1_REFRESH_TOKEN"
	return e
}
