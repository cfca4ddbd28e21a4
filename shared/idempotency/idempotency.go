// Package idempotency makes a money-moving write happen at most once per key:
// the first call reserves a record in a durable store, a repeat within the
// retention window gets the first call's answer without reaching the vendor,
// a concurrent repeat gets a conflict, and a call whose outcome is unknown
// stays unknown for every repeat until someone reconciles it.
package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

// Options configures a Guard.
type Options struct {
	Records   Records
	Namespace string        // e.g. "idem:top:<app key>:"
	Retention time.Duration // how long a finished answer is replayed (default 24h)
	// Stuck is how long an in-progress record may be before the call that
	// took it must have ended (its timeout plus a margin). A repeat after
	// that learns the outcome is unknown: the first call died mid-way.
	Stuck time.Duration
	// FinishFor is the least time the finish step keeps retrying after the
	// call, even when the invocation's deadline is nearer (default 2s).
	FinishFor time.Duration
	// PurgeEvery spaces the bounded clean-up of expired records (default 1m;
	// each clean-up deletes at most PurgeLimit, default 500).
	PurgeEvery time.Duration
	PurgeLimit int
	Log        *slog.Logger
	Now        func() time.Time
	// Skew is how far ahead of the functions' clocks this guard's may run
	// (a person's machine settling records): a call counts as possibly
	// running that much longer.
	Skew time.Duration
	// Window is how long past a call's deadline the vendor may still take
	// its request: a request is not taken back when the caller stops
	// waiting or its instance dies, and TOP accepts a request's timestamp
	// for 10 minutes (vendor note). A settlement, or a reopening after a
	// loss, waits that much longer: a re-tester's TOP charged 70 s after a
	// settlement made a minute past the deadline, and a retry had charged
	// too. The function's own judgement of a dead call ignores it.
	Window time.Duration
}

// Guard runs calls at most once per key.
type Guard struct {
	o         Options
	mu        sync.Mutex
	lastPurge time.Time
}

// New builds a Guard.
func New(o Options) *Guard {
	if o.Retention <= 0 {
		o.Retention = 24 * time.Hour
	}
	if o.Stuck <= 0 {
		o.Stuck = 2 * time.Minute
	}
	if o.FinishFor <= 0 {
		o.FinishFor = 2 * time.Second
	}
	if o.PurgeEvery <= 0 {
		o.PurgeEvery = time.Minute
	}
	if o.PurgeLimit <= 0 {
		o.PurgeLimit = 500
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Guard{o: o}
}

// Warm prepares the records store when it can (Warmer), bounded by timeout,
// then runs the instance's first clean-up of expired records. A function
// calls it in the background at cold start so that the dial, the
// durability check, the scripts or table and the clean-up overlap the
// runtime's first poll instead of delaying the first charge (which would
// otherwise run the clean-up after its own answer was recorded). A failure
// is logged at debug only (the first call meets the same problem and
// answers with it), but settings no retry fixes, at WARN.
func (g *Guard) Warm(ctx context.Context, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if w, ok := g.o.Records.(Warmer); ok {
		if err := w.Warm(ctx); err != nil {
			if errors.Is(err, ErrSettings) {
				// No retry fixes it: say so at start, not only at each charge.
				g.o.Log.Warn("idempotency: the records store refuses this function's settings; every charge will answer -1601 until they are fixed", "store", g.o.Records.Name(), "error", err.Error())
				return
			}
			g.o.Log.Debug("idempotency: records store not warmed at cold start; the first call will retry", "error", err.Error())
			return
		}
	}
	g.purge(ctx)
}

// Fingerprint hashes the canonical request: callers pass the bytes of a
// canonical encoding (sorted keys, no insignificant spaces).
func Fingerprint(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

// Verdict says what to do with the final answer of the call.
type Verdict int

const (
	// Keep records the answer: it is replayed to every repeat (success, a
	// business refusal, an unknown outcome).
	Keep Verdict = iota
	// Release forgets the key: the vendor certainly did nothing, so a repeat
	// may try again (a throttle, a request that never left).
	Release
)

// Call names one request.
type Call struct {
	// Key is the caller's idempotency key; empty for a keyless call, whose
	// key is its fingerprint.
	Key         string
	Fingerprint string
}

// Outcome is what the guarded function did.
type Outcome struct {
	Response envelope.Response
	Verdict  Verdict
	// VendorID is the vendor's id of what it did (the charge's order id),
	// logged when the record cannot be finished.
	VendorID string
}

// KeylessKey is where a keyless call's record lives; a keyed call leaves an
// alias there, so the same request retried without its key finds the keyed
// record instead of charging again.
func KeylessKey(fp string) string { return keylessPrefix + fp }

// keylessPrefix starts the key of a call made without one.
const keylessPrefix = "auto:"

// Once records name in the records store for ttl, insert-if-absent, and
// reports whether it was absent: a marker as durable and as shared as the
// charges' own records (a signed request's nonce, when an unsigned header
// decides what runs). A store failure is the *envelope.Error a reservation
// would give.
func (g *Guard) Once(ctx context.Context, name string, ttl time.Duration) (bool, *envelope.Error) {
	rec := Record{Token: newToken(), State: Done, Started: g.o.Now().UnixMilli()}
	// The space keeps markers apart from every call's record: keys are
	// printable ASCII without spaces.
	ok, err := g.o.Records.Reserve(ctx, g.o.Namespace+"once "+name, rec, ttl)
	if err != nil {
		return false, storeError(err)
	}
	return ok, nil
}

// Run executes fn at most once for the call. A repeat gets the kept envelope
// (replayed true); a concurrent one, or one with another request under the
// same key, gets an *envelope.Error with CodeIdempotencyConflict.
func (g *Guard) Run(ctx context.Context, c Call, fn func(ctx context.Context) Outcome) (resp envelope.Response, replayed bool, e *envelope.Error) {
	keyed := c.Key != ""
	key := c.Key
	if !keyed {
		key = KeylessKey(c.Fingerprint)
	}
	k := g.o.Namespace + key
	rec := Record{Token: newToken(), State: Reserved, Fingerprint: c.Fingerprint, Started: g.o.Now().UnixMilli()}
	if dl, has := ctx.Deadline(); has {
		rec.Deadline = dl.UnixMilli()
	}
	var ok bool
	var err error
	for attempt := 0; ; attempt++ {
		// The record lives as long as a finished one: if this call dies
		// after sending, its repeats must learn "unknown", never run again.
		ok, err = g.o.Records.Reserve(ctx, k, rec, g.o.Retention)
		if err != nil {
			return envelope.Response{}, false, storeError(err)
		}
		if !ok && !keyed {
			// The keyed call this request's alias names may never have
			// sent (it answered -1501, or died before marking): this
			// keyless call is its retry, takes its reservation over and
			// carries on as it.
			if tk, took, err := g.takeKeyedOver(ctx, k, rec); err != nil {
				return envelope.Response{}, false, storeError(err)
			} else if took {
				keyed, key, k, ok = true, tk, g.o.Namespace+tk, true
			}
		}
		if ok {
			break
		}
		var cur Record
		cur, ok, e = g.repeat(ctx, k, c.Fingerprint, true)
		if e != nil && e.Reason == reasonReleased && attempt < 3 {
			// The holder let go between our Reserve and Read: a keyed
			// call that found this request already sent without its key
			// does (it answers from that call). "Finished without effect"
			// would be false then; reserving again finds out what is so.
			e = nil
			continue
		}
		if !ok {
			return cur.response(), e == nil, e
		}
		// A reservation whose owner never sent: take it over.
		if ok, err = g.o.Records.Finish(ctx, k, cur.Token, rec, g.o.Retention); err != nil {
			return envelope.Response{}, false, storeError(err)
		}
		if !ok {
			return envelope.Response{}, false, inProgress()
		}
		break
	}
	var alias string
	if keyed {
		var resp envelope.Response
		var answered bool
		alias, resp, answered, e = g.leaveAlias(ctx, k, key, rec, c.Fingerprint)
		if answered || e != nil {
			return resp, e == nil, e
		}
	}
	// From here the vendor may act: the record says so before it can. The
	// token changes with the state, so a repeat that read the reservation
	// a moment ago can no longer take it over.
	running := rec
	running.State, running.Token = InProgress, newToken()
	if ok, err = g.o.Records.Finish(ctx, k, rec.Token, running, g.o.Retention); err != nil || !ok {
		if err != nil {
			// Nothing was sent, but the write may have landed with its
			// answer lost: the record then says in progress under the new
			// token and every retry would hear 409, then -1304, for 24 h.
			// It is released under whichever token it holds. The alias
			// goes first, under this call's token: a call that relies on
			// it has adopted it under its own, so this cannot remove it.
			if alias != "" {
				g.release(ctx, alias, rec.Token)
			}
			g.unmark(ctx, k, running.Token, rec.Token)
			return envelope.Response{}, false, storeError(err)
		}
		// Taken over meanwhile: the alias names the key, and the call that
		// took k adopts it, so it stays.
		return envelope.Response{}, false, inProgress()
	}
	aliasToken := rec.Token
	rec = running

	// From here the vendor may act, and only its answer settles the
	// record: the call runs to its answer or its deadline even when the
	// caller gives up (a disconnect in HTTP-server mode), instead of
	// leaving an outcome that someone must reconcile by hand.
	sctx, cancel := withoutCancel(ctx)
	out := fn(sctx)
	cancel()

	if out.Verdict == Release {
		// A record that cannot be deleted stays in progress and repeats
		// are told to reconcile: safe, if less convenient.
		// The alias first, while this call still owns k: a call with the
		// key that reserves k afterwards finds the slot free.
		if alias != "" {
			g.release(ctx, alias, aliasToken)
		}
		g.unmark(ctx, k, rec.Token)
		return out.Response, false, nil
	}
	done := rec
	done.State, done.Status, done.Body = Done, out.Response.Status, out.Response.Body
	rewritten, taken, unrecorded := g.finish(ctx, k, done, out.VendorID)
	out.Response.Unrecorded = unrecorded
	if (rewritten || taken) && alias != "" {
		// The store lost the alias with the record: a keyless retry of
		// this request must find it too (one that took the slot in the
		// meantime may have charged again). When the key itself went to
		// another request, the slot keeps this call's own answer instead
		// of pointing at that one's.
		slot := Record{Token: aliasToken, State: Reserved, Fingerprint: c.Fingerprint, Alias: key, Started: rec.Started}
		if taken {
			slot = done
			slot.Fingerprint = c.Fingerprint
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.o.FinishFor)
		put, err := g.rewrite(actx, alias, slot)
		if err == nil && !put {
			if cur, rerr := g.o.Records.Read(actx, alias); rerr == nil && cur.Alias != key && cur.Token != done.Token {
				g.o.Log.Error("idempotency records lost by the store while the call ran, and the same request without its key was taken by another call since: it may have run again; reconcile this request against the vendor",
					"idempotencyKey", g.callerKey(k), "keyless", g.callerKey(alias), "vendorId", out.VendorID, "store", g.o.Records.Name())
			}
		}
		cancel()
	}
	g.purge(ctx)
	return out.Response, false, nil
}

// leaveAlias points the fingerprint's slot at the keyed record k before
// anything is sent, so the same request retried without its key finds it.
// It answers the call itself (answered) when a keyless call with this very
// request came first: this is its retry with a key. Another key's alias
// there means another explicit charge, which goes ahead without the slot.
// An alias to this very key, left by another call with the key, is adopted:
// compare-and-set to this call's token, so a call on its way out (whose
// reservation this one took over, or that released k before this one took
// it) can no longer remove what this charge relies on. Every call that
// relies on an alias holds it under its own token.
func (g *Guard) leaveAlias(ctx context.Context, k, key string, rec Record, fp string) (alias string, resp envelope.Response, answered bool, e *envelope.Error) {
	slot := g.o.Namespace + KeylessKey(fp)
	a := Record{Token: rec.Token, State: Reserved, Fingerprint: fp, Alias: key, Started: rec.Started}
	for attempt := 0; attempt < 4; attempt++ {
		ok, err := g.o.Records.Reserve(ctx, slot, a, g.o.Retention)
		if err != nil {
			g.release(ctx, k, rec.Token)
			return "", envelope.Response{}, false, storeError(err)
		}
		if ok {
			return slot, envelope.Response{}, false, nil
		}
		cur, err := g.o.Records.Read(ctx, slot)
		switch {
		case errors.Is(err, ErrNotFound):
			continue // released meanwhile: reserve again
		case err != nil:
			g.release(ctx, k, rec.Token)
			return "", envelope.Response{}, false, storeError(err)
		case cur.Fingerprint == fp && cur.Alias == "" && cur.State == Reserved:
			// A keyless call with this request that never sent (it
			// answered -1501, or died before marking): this call is its
			// retry, and takes the slot over as its alias. The keyless
			// call, if alive, can no longer mark it sent.
		case cur.Fingerprint == fp && cur.Alias == "":
			g.release(ctx, k, rec.Token)
			first, _, e := g.repeat(ctx, slot, fp, false)
			if e != nil {
				// In progress, or unknown: the record to reconcile is the
				// keyless call's, not this key's, which holds nothing
				// (records show found no record under the key the answer
				// named: an outside re-tester).
				cp := *e
				cp.Err = &AnsweredBy{Key: KeylessKey(fp), Err: e.Err}
				e = &cp
			}
			return "", first.response(), e == nil, e
		case cur.Alias != key || cur.Fingerprint != fp:
			return "", envelope.Response{}, false, nil // another key's: another charge
		}
		ok, err = g.o.Records.Finish(ctx, slot, cur.Token, a, g.o.Retention)
		if err != nil {
			g.release(ctx, k, rec.Token)
			return "", envelope.Response{}, false, storeError(err)
		}
		if ok {
			return slot, envelope.Response{}, false, nil
		}
		// Released or adopted meanwhile: look again.
	}
	g.release(ctx, k, rec.Token)
	return "", envelope.Response{}, false, inProgress()
}

// takeKeyedOver takes over the keyed reservation that the alias at slot
// names, when that keyed call never sent, and returns its key. Anything
// else (no alias, a record sent or finished) is left to repeat.
func (g *Guard) takeKeyedOver(ctx context.Context, slot string, rec Record) (key string, took bool, err error) {
	cur, err := g.o.Records.Read(ctx, slot)
	if errors.Is(err, ErrNotFound) || err == nil && (cur.Alias == "" || cur.Fingerprint != rec.Fingerprint) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	target, err := g.o.Records.Read(ctx, g.o.Namespace+cur.Alias)
	if errors.Is(err, ErrNotFound) || err == nil && (target.State != Reserved || target.Fingerprint != rec.Fingerprint) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	ok, err := g.o.Records.Finish(ctx, g.o.Namespace+cur.Alias, target.Token, rec, g.o.Retention)
	if err != nil || !ok {
		return "", false, err // changed meanwhile: repeat reads what it is now
	}
	return cur.Alias, true, nil
}

// withoutCancel is ctx without its cancellation but with its deadline.
func withoutCancel(ctx context.Context) (context.Context, context.CancelFunc) {
	d := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(d, dl)
	}
	return d, func() {}
}

func (r Record) response() envelope.Response {
	return envelope.Response{Status: r.Status, Body: r.Body}
}

func inProgress() *envelope.Error {
	return &envelope.Error{Code: envelope.CodeIdempotencyConflict, Reason: "idempotency conflict: a call with this key is in progress; wait for its answer"}
}

// finish records the answer, retrying within the invocation's deadline (and
// at least FinishFor, even when the context already ended: the charge
// happened and its record matters more than the deadline).
//
// A record the store lost while the call ran (a Redis back empty, a
// truncated table) is written again: the call did happen, and a repeat
// would otherwise run it again (outside tester: one key, two charges). It
// reports that it wrote it again, so the caller restores what goes with it.
func (g *Guard) finish(ctx context.Context, k string, done Record, vendorID string) (rewritten, taken, unrecorded bool) {
	fctx, cancel := g.settling(ctx)
	defer cancel()
	var err error
	for backoff := 25 * time.Millisecond; ; backoff = min(2*backoff, 400*time.Millisecond) {
		var ok bool
		ok, err = g.o.Records.Finish(fctx, k, done.Token, done, g.o.Retention)
		if err == nil && !ok {
			// A retry after a write whose answer was lost, or a record that
			// is no longer ours: only the stored record can say.
			cur, rerr := g.o.Records.Read(fctx, k)
			switch {
			case rerr == nil && cur.Token == done.Token && cur.State == Done:
				ok = true
			case errors.Is(rerr, ErrNotFound):
				// Gone (a record lives for Retention, far past any call):
				// insert it if nobody took the key meanwhile.
				if ok, err = g.rewrite(fctx, k, done); err == nil && ok {
					rewritten = true
					g.o.Log.Warn("idempotency record lost by the store while the call ran, written again: repeats answer from it",
						"idempotencyKey", g.callerKey(k), "vendorId", vendorID, "store", g.o.Records.Name())
				}
			case rerr == nil && strings.Contains(cur.Settled, restoredMark):
				// A person restored the key after the loss while this call
				// ran: the record answers with what they found, which must
				// be this charge (said as a call "may have run again", it
				// sent an operator hunting a charge that was not there).
				settled, _ := settledCharge(cur)
				g.o.Log.Error("idempotency record lost by the store while the call ran, and restored by hand since: repeats answer with the restored charge; if it is not this one, settle the key with this vendorId",
					"idempotencyKey", g.callerKey(k), "vendorId", vendorID, "restored", settled, "store", g.o.Records.Name())
				return false, true, false
			case rerr == nil:
				// Another call holds the key: the store lost this one's
				// record and a repeat reserved it anew. Retrying cannot
				// help, and that repeat answers for itself.
				g.o.Log.Error("idempotency record lost by the store while the call ran, and another call with this key has reserved it since: it may have run again; reconcile this key against the vendor",
					"idempotencyKey", g.callerKey(k), "vendorId", vendorID, "store", g.o.Records.Name())
				return false, true, false
			default:
				err = rerr
			}
		}
		if err == nil && ok {
			return rewritten, false, false
		}
		t := time.NewTimer(backoff)
		select {
		case <-fctx.Done():
			t.Stop()
			g.stuck(k, done, vendorID, err)
			return false, false, true
		case <-t.C:
		}
	}
}

// callerKey is a record's key as callers and cloudcall records name it
// (without the deployment's namespace).
func (g *Guard) callerKey(k string) string { return strings.TrimPrefix(k, g.o.Namespace) }

// stuck reports a call that ran but whose record could not be finished, and
// leaves what is known in the record where the store takes a small write.
func (g *Guard) stuck(k string, done Record, vendorID string, err error) {
	// With the vendor's id the outcome is known: only --charged is right.
	// A re-tester followed "--not-charged" from this line after TOP had
	// charged (the note below could not be written) and paid twice.
	how := "look the charge up at TOP, then cloudcall records settle <idempotencyKey> --charged <its id>, or --not-charged if TOP has none (docs/operate.md)"
	if vendorID != "" {
		how = "TOP charged it (vendorId): cloudcall records settle <idempotencyKey> --charged <vendorId>; never --not-charged (docs/operate.md)"
	}
	g.o.Log.Error("idempotency record not finished: the call ran, its repeats will answer -1304 (outcome unknown) until reconciled: "+how,
		"idempotencyKey", g.callerKey(k), "vendorId", vendorID, "status", done.Status, "store", g.o.Records.Name(), "error", err.Error())
	if vendorID == "" {
		return
	}
	note := Record{Token: done.Token, State: InProgress, Fingerprint: done.Fingerprint, Started: done.Started,
		Known: knownCharged + vendorID}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if ok, err := g.o.Records.Finish(ctx, k, done.Token, note, g.o.Retention); err == nil && !ok {
		// Not this call's record, or none: a lost one is put back.
		_, _ = g.o.Records.Reserve(ctx, k, note, g.o.Retention)
	}
}

// settling is how long a write that settles a record keeps retrying: to
// the invocation's deadline, and at least FinishFor even when it passed.
func (g *Guard) settling(ctx context.Context) (context.Context, context.CancelFunc) {
	wait := g.o.FinishFor
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) > wait {
		wait = time.Until(dl)
	}
	return context.WithTimeout(context.WithoutCancel(ctx), wait)
}

// release deletes a reservation k that was never marked sent, retrying a
// store that fails for FinishFor; one it cannot delete is still taken over
// by a retry (in either form).
func (g *Guard) release(ctx context.Context, k string, tokens ...string) bool {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.o.FinishFor)
	defer cancel()
	return g.releaseWithin(rctx, k, tokens)
}

// unmark deletes a record k that says sent although the vendor did nothing
// (a throttled charge; a mark whose answer was lost), retrying as long as
// finish would: one left behind looks like an unknown outcome, 409 and then
// -1304 to every retry, until it expires.
func (g *Guard) unmark(ctx context.Context, k string, tokens ...string) bool {
	rctx, cancel := g.settling(ctx)
	defer cancel()
	return g.releaseWithin(rctx, k, tokens)
}

// releaseWithin deletes k if it holds one of tokens, retrying until rctx
// ends; what it cannot delete is logged with its key.
func (g *Guard) releaseWithin(rctx context.Context, k string, tokens []string) (released bool) {
	for backoff := 25 * time.Millisecond; ; backoff = min(2*backoff, 400*time.Millisecond) {
		done, err := g.releaseOnce(rctx, k, tokens)
		if done || err == nil {
			return done
		}
		t := time.NewTimer(backoff)
		select {
		case <-rctx.Done():
			t.Stop()
			g.o.Log.Warn("idempotency record perhaps not released (the store did not confirm the delete); nothing was charged: a retry takes a reservation over, but a record left marked sent answers 409, then -1304, until it expires (24 h): cloudcall records show <key> tells, and cloudcall records settle <key> --not-charged lets a retry charge (docs/operate.md)",
				"idempotencyKey", g.callerKey(k), "store", g.o.Records.Name(), "error", err.Error())
			return false
		case <-t.C:
		}
	}
}

// releaseOnce tries each token; err is the last store failure, nil when
// the store answered for every token it was asked about.
func (g *Guard) releaseOnce(ctx context.Context, k string, tokens []string) (bool, error) {
	var err error
	for _, tok := range tokens {
		ok, rerr := g.o.Records.Release(ctx, k, tok)
		if rerr != nil {
			err = rerr
			continue
		}
		if ok {
			return true, nil
		}
	}
	return false, err
}

// purge runs the bounded clean-up at most once per PurgeEvery per instance.
func (g *Guard) purge(ctx context.Context) {
	g.mu.Lock()
	now := g.o.Now()
	due := now.Sub(g.lastPurge) >= g.o.PurgeEvery
	if due {
		g.lastPurge = now
	}
	g.mu.Unlock()
	if !due {
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if _, err := g.o.Records.Purge(pctx, g.o.PurgeLimit); err != nil {
		g.o.Log.Warn("idempotency clean-up failed; it runs again later", "store", g.o.Records.Name(), "error", err.Error())
	}
}

// repeat reads the record that holds k. It answers the repeat (the kept
// record, or an error), or, for a reservation whose owner never sent,
// reports takeover true so the caller may claim it.
func (g *Guard) repeat(ctx context.Context, k, fingerprint string, direct bool) (rec Record, takeover bool, e *envelope.Error) {
	rec, err := g.o.Records.Read(ctx, k)
	if errors.Is(err, ErrNotFound) {
		// Released between our Reserve and Read: the caller may simply retry.
		return rec, false, &envelope.Error{Code: envelope.CodeIdempotencyConflict, Reason: reasonReleased}
	}
	if err != nil {
		return rec, false, storeError(err)
	}
	switch {
	case rec.Fingerprint != fingerprint && !restored(rec):
		return rec, false, &envelope.Error{Code: envelope.CodeIdempotencyConflict, Reason: "idempotency conflict: this key was used for a different request; use a new key for a new charge, not for a retry of that one (if this is its retry and its input, or a setting the function sends it with, changed since, reconcile it with the vendor instead)"}
	case rec.Alias != "" && direct:
		// A keyless repeat of a keyed call: answer from the keyed record.
		target, _, e := g.repeat(ctx, g.o.Namespace+rec.Alias, fingerprint, false)
		switch {
		case e != nil && e.Reason == reasonReleased:
			// The keyed record is gone (released: nothing was sent), so its
			// alias points nowhere: clear it, and the retry runs.
			g.release(ctx, k, rec.Token)
		case e != nil:
			// In progress, or unknown: the key to reconcile is the keyed
			// call's, not this request's fingerprint.
			cp := *e
			cp.Err = &AnsweredBy{Key: rec.Alias, Err: e.Err}
			e = &cp
		}
		return target, false, e
	case rec.State == Reserved && direct:
		return rec, true, nil
	case rec.State == Reserved:
		return rec, false, inProgress()
	case rec.State == Done:
		return rec, false, nil
	case rec.Known != "" || !g.mayRun(rec):
		// Known: the first call ended without recording its answer in full.
		reason := "outcome unknown — reconcile before retrying: the first call with this key (started " +
			time.UnixMilli(rec.Started).UTC().Format(time.RFC3339) + ") stopped before recording its result"
		if rec.Known != "" {
			reason += "; " + rec.Known
		}
		return rec, false, &envelope.Error{Code: envelope.CodeOutcomeUnknown, Reason: reason}
	default:
		return rec, false, inProgress()
	}
}

// mayRun says whether the call that took rec may still be running: within
// Stuck of its start, and within a minute of its own deadline when it
// recorded one (a platform timeout longer than Stuck assumes).
func (g *Guard) mayRun(rec Record) bool {
	return !g.o.Now().After(g.runsUntil(rec))
}

// runsUntil is when the call that took rec cannot be running any more.
func (g *Guard) runsUntil(rec Record) time.Time {
	until := time.UnixMilli(rec.Started).Add(g.o.Stuck)
	if rec.Deadline > 0 {
		until = later(until, time.UnixMilli(rec.Deadline).Add(deadlineMargin))
	}
	return until.Add(g.o.Skew)
}

// deadlineMargin is how long past its own deadline a call may still write:
// the finish step's retries, a clock a little apart from the store's.
const deadlineMargin = time.Minute

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// AnsweredBy is the cause of a repeat's error that was answered from
// another record: a keyless repeat's from its keyed call's, a keyed one's
// from the keyless call that made the request first. Key is that record's
// idempotency key, the one to reconcile.
type AnsweredBy struct {
	Key string
	Err error
}

func (a *AnsweredBy) Error() string {
	if a.Err != nil {
		return "answered by the call with idempotency key " + a.Key + ": " + a.Err.Error()
	}
	return "answered by the call with idempotency key " + a.Key
}

func (a *AnsweredBy) Unwrap() error { return a.Err }

// reasonReleased answers a repeat whose record was released between its
// Reserve and its Read: the first call let go without sending.
const reasonReleased = "idempotency conflict: the first call with this key just finished without effect; retry"

// rewrite writes a record the store lost while its call ran. A store that
// refuses charges after the loss (ErrLost) still takes it: the call did
// happen, and after the store is reopened its repeats must answer from it.
func (g *Guard) rewrite(ctx context.Context, k string, rec Record) (bool, error) {
	if rw, ok := g.o.Records.(Rewriter); ok {
		return rw.Rewrite(ctx, k, rec, g.o.Retention)
	}
	return g.o.Records.Reserve(ctx, k, rec, g.o.Retention)
}

func storeError(err error) *envelope.Error {
	if errors.Is(err, ErrNotDurable) || errors.Is(err, ErrLost) {
		return &envelope.Error{Code: envelope.CodeConfig, Err: err,
			Reason: "configuration: the charge did not run: " + err.Error()}
	}
	if errors.Is(err, ErrSettings) {
		// The driver's text names users and databases: it goes to the log
		// (Err), not to the caller.
		return &envelope.Error{Code: envelope.CodeConfig, Err: err,
			Reason: "configuration: the records store refused this function's settings: its credentials, database, privileges, URL parameters or TLS, or its records table's shape (the function's log says which); fix CLOUDCALL_IDEMPOTENCY_STORE (or CLOUDCALL_STORE) or the table: the charge did not run"}
	}
	return &envelope.Error{Code: envelope.CodeStoreUnavailable, Err: err,
		Reason: "the idempotency record cannot be written, so the charge did not run; retry when the records store is back"}
}

func newToken() string { return randomHex(16) }
