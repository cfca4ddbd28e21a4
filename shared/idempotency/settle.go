package idempotency

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

// ErrNotSettleable: the record holds no outcome for a person to settle (it
// finished with a definite answer, nothing was sent, the call may still be
// running, or it is the alias of another key), or what the person says
// contradicts what the record knows. Its message says which.
var ErrNotSettleable = errors.New("idempotency: nothing to settle")

// knownCharged starts Known when the vendor answered a charge whose record
// could not be finished: the vendor's id follows.
const knownCharged = "outcome known: charged, id "

// KnownCharge is the vendor's id of the charge rec's Known records, if any.
func KnownCharge(rec Record) (string, bool) {
	return strings.CutPrefix(rec.Known, knownCharged)
}

// Settlement is what a person found at the vendor for an unknown outcome.
type Settlement struct {
	// VendorID is the vendor's id of the charge found; empty: none was.
	VendorID string
	// Answer is what every retry is told from now on when VendorID is set.
	Answer envelope.Response
}

// Inspect reads key's record, for a person reconciling a charge.
func (g *Guard) Inspect(ctx context.Context, key string) (Record, error) {
	return g.o.Records.Read(ctx, g.o.Namespace+key)
}

// Settleable says whether rec's outcome is unknown, so a person who
// reconciled with the vendor may settle it: a recorded -1304, a call in
// progress that cannot be running any more (its instance died), or a
// settlement made by hand before (to correct it).
func (g *Guard) Settleable(rec Record) error {
	switch {
	case rec.Alias != "":
		return fmt.Errorf("%w: this is the keyless slot of the call with idempotency key %q: settle that key", ErrNotSettleable, rec.Alias)
	case rec.State == Reserved:
		return fmt.Errorf("%w: nothing was sent under this key (reserved only); a retry takes it over", ErrNotSettleable)
	case rec.State == InProgress && rec.Known == "" && g.o.Now().Before(g.settleFrom(rec)):
		return fmt.Errorf("%w: the call started %s ago and may still be running, or its request reach the vendor; it can be settled from %s (%s)",
			ErrNotSettleable, max(0, g.o.Now().Sub(time.UnixMilli(rec.Started))).Round(time.Second), g.settleFrom(rec).UTC().Format(time.RFC3339), g.fromNote())
	case rec.State == Done && rec.Settled == "":
		if code := codeOf(rec.Body); code != envelope.CodeOutcomeUnknown {
			return fmt.Errorf("%w: the call finished with a definite answer (errCode %d), replayed to every retry", ErrNotSettleable, code)
		}
		if rec.Known == "" && g.o.Now().Before(g.settleFrom(rec)) {
			// The function stopped waiting, not the vendor: a request sent
			// and never answered can still be charged, and a re-tester's
			// TOP charged 40 s after the -1304, once a settlement as not
			// charged had let a retry charge too.
			return fmt.Errorf("%w: its request was sent %s ago and may still reach the vendor; look the charge up there from %s (%s), then settle it",
				ErrNotSettleable, max(0, g.o.Now().Sub(time.UnixMilli(rec.Started))).Round(time.Second), g.settleFrom(rec).UTC().Format(time.RFC3339), g.fromNote())
		}
	}
	return nil
}

// Settle records what a person found at the vendor for key's unknown
// outcome. A charge found becomes the answer every retry is told; none
// found removes the record, so a retry with the key runs again. What the
// record already knows (the vendor answered a charge its record could not
// keep) must agree. It writes only over the record it judged (the same
// token), so a call that finished meanwhile is never overwritten.
func (g *Guard) Settle(ctx context.Context, key string, s Settlement) error {
	k := g.o.Namespace + key
	rec, err := g.o.Records.Read(ctx, k)
	if err != nil {
		return err
	}
	if err := g.Settleable(rec); err != nil {
		return err
	}
	if id, ok := KnownCharge(rec); ok && id != s.VendorID {
		return fmt.Errorf("%w: the record knows the vendor charged this key, id %s (its answer came back, the record could not be finished): settle it as charged with that id", ErrNotSettleable, id)
	}
	if s.VendorID == "" && rec.Settled != "" && g.o.Now().Before(g.settleFrom(rec)) {
		// A correction to "not charged" lets a retry charge: not while the
		// call's request may still reach the vendor (a restore corrected
		// at once charged twice beside a request that landed later: an
		// outside tester).
		return fmt.Errorf("%w: its call's request may still reach the vendor; it can be settled as not charged from %s (%s)",
			ErrNotSettleable, g.settleFrom(rec).UTC().Format(time.RFC3339), g.fromNote())
	}
	if id, ok := settledCharge(rec); ok && id == s.VendorID && bytes.Equal(rec.Body, s.Answer.Body) {
		// The same answer again; another (a request id put right) is a
		// correction, which a person could otherwise make only through
		// --not-charged, a window in which a retry charges again.
		return fmt.Errorf("%w: already settled as charged, id %s, with the same answer", ErrNotSettleable, id)
	}
	var ok bool
	if s.VendorID == "" {
		ok, err = g.o.Records.Release(ctx, k, rec.Token)
	} else {
		done := rec
		// Known stays: every later correction must agree with it too (a
		// settlement by hand, then "not charged", charged twice).
		done.State, done.Status, done.Body = Done, s.Answer.Status, s.Answer.Body
		done.Settled = settledPrefix + s.VendorID + "; settled by hand " + g.o.Now().UTC().Format(time.RFC3339)
		if restored(rec) {
			// Still a restore: it answers any request with its key. Marked
			// settled, a retry of the charged request heard "a different
			// request, use a new key", and the new key charged again (an
			// outside re-tester).
			done.Settled = settledPrefix + s.VendorID + restoredMark + ", corrected by hand " + g.o.Now().UTC().Format(time.RFC3339)
		}
		ok, err = g.o.Records.Finish(ctx, k, rec.Token, done, g.o.Retention)
	}
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%w: the record changed while it was being settled (its call finished, or someone settled it); inspect it again", ErrNotSettleable)
	}
	return nil
}

// Restore writes, for a key whose record the store lost, the charge a
// person found at the vendor, so every retry with the key is answered with
// it instead of charging again. It writes where there is no record, and
// also while the store refuses new charges after the loss. afterLoss says
// the store records a loss: a record it holds that is not finished
// (reserved, in progress) may then be one whose later writes the loss took
// (a failover to a replica that lagged kept "reserved" for keys TOP charged,
// and after the reopening their retries charged again: an outside
// re-tester), and it is replaced. A keyed call's request is not known when
// its record is gone (its fingerprint was in it), so the restored record
// answers a retry of any request with the key; a keyless call's key
// (auto:…) is its fingerprint. Whether a call may still be running is
// judged by the guard's clock, which a person's tool takes from the store
// as well as its machine (one minutes ahead restored over a running call:
// an outside tester).
func (g *Guard) Restore(ctx context.Context, key string, s Settlement, afterLoss bool) error {
	if s.VendorID == "" {
		return fmt.Errorf("%w: a restore records a charge found at the vendor: give its id", ErrNotSettleable)
	}
	now := g.o.Now()
	fp, _ := strings.CutPrefix(key, keylessPrefix)
	if fp == key || !isFingerprint(fp) {
		// A caller's own key may start with "auto:" too: read as a
		// fingerprint, "auto:mx" was restored for no request, its retry
		// heard "use a new key", and the new key charged again (an outside
		// re-tester). Only a fingerprint makes a keyless slot.
		fp = ""
	}
	rec := Record{Token: newToken(), State: Done, Fingerprint: fp, Started: now.UnixMilli(), Status: s.Answer.Status, Body: s.Answer.Body,
		Settled: settledPrefix + s.VendorID + restoredMark + " after a loss " + now.UTC().Format(time.RFC3339)}
	k := g.o.Namespace + key
	ok, err := g.rewrite(ctx, k, rec)
	if err != nil || ok {
		return err
	}
	cur, err := g.o.Records.Read(ctx, k)
	switch {
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: the record under the key went while it was being restored; run it again", ErrRecordExists)
	case err != nil:
		return err
	case cur.Alias != "":
		return fmt.Errorf("%w: the keyless slot of the call with idempotency key %q: restore that key", ErrRecordExists, cur.Alias)
	case cur.State == Done || !afterLoss:
		return fmt.Errorf("%w, %s (cloudcall records show says what it holds; settle it if its outcome is unknown)", ErrRecordExists, cur.State)
	case cur.State == InProgress && cur.Known == "" && now.Before(g.settleFrom(cur)):
		// Its own answer is still to come, or its request may still reach
		// the vendor: a restore over it left the operator's id where TOP's
		// belonged, and one corrected at once to "not charged" let a
		// retry charge beside the request that landed later (outside
		// testers).
		return fmt.Errorf("%w, in_progress: the call started %s ago and may still be running, or its request reach the vendor; restore it from %s (%s) if it has not finished by then",
			ErrRecordExists, max(0, now.Sub(time.UnixMilli(cur.Started))).Round(time.Second), g.settleFrom(cur).UTC().Format(time.RFC3339), g.fromNote())
	}
	if id, ok := KnownCharge(cur); ok && id != s.VendorID {
		// As Settle: the vendor's own answer came back and names the
		// charge. A restore with another id dropped it, and a correction
		// to "not charged" then let a retry charge again (an outside
		// re-tester).
		return fmt.Errorf("%w: the record knows the vendor charged this key, id %s (its answer came back, the record could not be finished): restore it with that id", ErrNotSettleable, id)
	}
	rec.Known = cur.Known // every later correction must agree with it too
	if cur.Fingerprint != "" {
		rec.Fingerprint = cur.Fingerprint // its own request: exact again
	}
	if cur.State == InProgress || cur.State == Reserved {
		// The call's own times: a correction of this restore waits out
		// its request's window from them.
		rec.Started, rec.Deadline = cur.Started, cur.Deadline
	}
	if ok, err = g.o.Records.Finish(ctx, k, cur.Token, rec, g.o.Retention); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: the record under the key changed while it was being restored; run it again", ErrRecordExists)
	}
	return nil
}

// IsKeylessKey says whether key names the keyless slot of a request:
// "auto:" and its fingerprint.
func IsKeylessKey(key string) bool {
	fp, ok := strings.CutPrefix(key, keylessPrefix)
	return ok && isFingerprint(fp)
}

// isFingerprint says whether s is what Fingerprint returns.
func isFingerprint(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && (s[i] < 'a' || s[i] > 'f') {
			return false
		}
	}
	return true
}

// restored says rec was written by Restore for a keyed call: it answers
// any request with its key.
func restored(rec Record) bool {
	return rec.Fingerprint == "" && strings.Contains(rec.Settled, restoredMark)
}

// restoredMark is in Settled for as long as a record is Restore's.
const restoredMark = "; restored by hand"

// Now is the time the guard judges by.
func (g *Guard) Now() time.Time { return g.o.Now() }

// Quiet is when no call that was running at t can be running any more, nor
// write its record: a store reopened before then let a call in flight when
// its loss was found charge once more through a repeat (an outside tester).
func (g *Guard) Quiet(t time.Time) time.Time { return g.settleFrom(Record{Started: t.UnixMilli()}) }

// settleFrom is when rec's call can neither be running nor have its
// request taken by the vendor any more.
func (g *Guard) settleFrom(rec Record) time.Time { return g.runsUntil(rec).Add(g.o.Window) }

// fromNote says what settleFrom allows for.
func (g *Guard) fromNote() string {
	note := "a minute past its deadline"
	if g.o.Window > 0 {
		note += ", and " + g.o.Window.String() + " in which the vendor still takes its request"
	}
	if g.o.Skew > 0 {
		note += ", and " + g.o.Skew.String() + " more for a clock that runs ahead"
	}
	return note
}

// settledPrefix starts Settled; the vendor's id follows, then "; ".
const settledPrefix = "charged, id "

func settledCharge(rec Record) (string, bool) {
	rest, ok := strings.CutPrefix(rec.Settled, settledPrefix)
	id, _, _ := strings.Cut(rest, ";")
	return id, ok
}

// codeOf is a recorded answer's errCode (0 for a success).
func codeOf(body []byte) int {
	if e := envelope.FailureOf("", body); e != nil {
		return e.Code
	}
	return 0
}
