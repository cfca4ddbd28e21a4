package idempotency_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/idempotency"
)

// A person who reconciled an unknown outcome with the vendor settles it:
// "not charged" lets the key charge again (once), "charged" makes every
// retry replay the charge. Only unknown outcomes can be settled.
func TestSettleAnUnknownOutcome(t *testing.T) {
	c := newClock()
	recs := idempotency.NewMemory(c.Now)
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: time.Minute, Now: c.Now})
	ctx := context.Background()
	unknown := envelope.Response{Status: http.StatusGatewayTimeout, Body: []byte(`{"errCode":-1304,"errMsg":"x:fail outcome unknown"}`)}
	runs := 0
	call := func(resp envelope.Response) func(context.Context) idempotency.Outcome {
		return func(context.Context) idempotency.Outcome {
			runs++
			return idempotency.Outcome{Response: resp, Verdict: idempotency.Keep}
		}
	}

	// Not charged: the record goes, and the retry with the key charges.
	resp, _, e := g.Run(ctx, key("k1", "fp1"), call(unknown))
	require.Nil(t, e)
	require.Equal(t, http.StatusGatewayTimeout, resp.Status)
	rec, err := g.Inspect(ctx, "k1")
	require.NoError(t, err)
	require.Equal(t, idempotency.Done, rec.State)
	// The function stopped waiting, not the vendor: until the call's time
	// is up its request may still be charged (a re-tester's TOP charged 40 s
	// after the -1304, and a settlement as not charged let a retry charge
	// too).
	require.ErrorContains(t, g.Settleable(rec), "its request was sent 0s ago and may still reach the vendor; look the charge up there from ")
	require.ErrorIs(t, g.Settle(ctx, "k1", idempotency.Settlement{}), idempotency.ErrNotSettleable)
	c.Add(61 * time.Second)
	require.NoError(t, g.Settleable(rec))
	require.NoError(t, g.Settle(ctx, "k1", idempotency.Settlement{}))
	_, err = g.Inspect(ctx, "k1")
	require.ErrorIs(t, err, idempotency.ErrNotFound)
	resp, replayed, e := g.Run(ctx, key("k1", "fp1"), call(ok(`{"errCode":0,"id":"A"}`)))
	require.Nil(t, e)
	require.False(t, replayed)
	require.Equal(t, `{"errCode":0,"id":"A"}`, string(resp.Body))
	require.Equal(t, 2, runs)

	// Charged: every retry replays the charge as the person recorded it.
	_, _, e = g.Run(ctx, key("k2", "fp2"), call(unknown))
	require.Nil(t, e)
	c.Add(61 * time.Second)
	charged := ok(`{"errCode":0,"id":"B"}`)
	require.NoError(t, g.Settle(ctx, "k2", idempotency.Settlement{VendorID: "B", Answer: charged}))
	resp, replayed, e = g.Run(ctx, key("k2", "fp2"), call(ok(`{"errCode":0,"id":"C"}`)))
	require.Nil(t, e)
	require.True(t, replayed)
	require.Equal(t, `{"errCode":0,"id":"B"}`, string(resp.Body))
	require.Equal(t, 3, runs)

	// Definite answers are not a person's to change: a charge, a refusal.
	require.ErrorIs(t, g.Settle(ctx, "k1", idempotency.Settlement{}), idempotency.ErrNotSettleable)
	require.ErrorContains(t, g.Settle(ctx, "k1", idempotency.Settlement{}), "finished with a definite answer (errCode 0)")
	_, _, e = g.Run(ctx, key("k3", "fp3"), call(envelope.Response{Status: 502, Body: []byte(`{"errCode":-1305}`)}))
	require.Nil(t, e)
	require.ErrorContains(t, g.Settle(ctx, "k3", idempotency.Settlement{}), "errCode -1305")
	_, err = g.Inspect(ctx, "k3")
	require.NoError(t, err, "still there")
	require.ErrorIs(t, g.Settle(ctx, "nope", idempotency.Settlement{}), idempotency.ErrNotFound)
}

// A call in progress is settled only once it cannot be running any more
// (its instance died); a reservation never sent is a retry's to take; a
// keyless slot names the key to settle.
func TestSettleWaitsForACallThatMayStillRun(t *testing.T) {
	c := newClock()
	recs := idempotency.NewMemory(c.Now)
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: time.Minute, Now: c.Now})
	ctx := context.Background()
	_, err := recs.Reserve(ctx, "t:k1", idempotency.Record{Token: "tok", State: idempotency.InProgress, Fingerprint: "fp1", Started: c.Now().UnixMilli()}, time.Hour)
	require.NoError(t, err)
	require.ErrorContains(t, g.Settle(ctx, "k1", idempotency.Settlement{}), "may still be running")
	c.Add(61 * time.Second)
	charged := ok(`{"errCode":0,"id":"D"}`)
	require.NoError(t, g.Settle(ctx, "k1", idempotency.Settlement{VendorID: "D", Answer: charged}))
	rec, err := g.Inspect(ctx, "k1")
	require.NoError(t, err)
	require.Equal(t, idempotency.Done, rec.State)
	require.Equal(t, `{"errCode":0,"id":"D"}`, string(rec.Body))

	_, err = recs.Reserve(ctx, "t:k2", idempotency.Record{Token: "tok", State: idempotency.Reserved, Fingerprint: "fp2", Started: c.Now().UnixMilli()}, time.Hour)
	require.NoError(t, err)
	require.ErrorContains(t, g.Settle(ctx, "k2", idempotency.Settlement{}), "nothing was sent")

	_, err = recs.Reserve(ctx, "t:auto:fp3", idempotency.Record{Token: "tok", State: idempotency.Reserved, Fingerprint: "fp3", Alias: "k3", Started: c.Now().UnixMilli()}, time.Hour)
	require.NoError(t, err)
	require.ErrorContains(t, g.Settle(ctx, "auto:fp3", idempotency.Settlement{}), `the call with idempotency key "k3": settle that key`)
}

// A call records its own deadline: with a platform timeout longer than the
// guard's Stuck, a repeat while it still runs hears "in progress" (409),
// not "stopped before recording its result" (-1304), and nobody is sent to
// reconcile a charge that is about to answer.
func TestACallRunningPastStuckIsStillInProgress(t *testing.T) {
	c := &clock{now: time.Now()}
	recs := idempotency.NewMemory(c.Now)
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: time.Minute, Now: c.Now})
	ctx, cancel := context.WithDeadline(context.Background(), c.Now().Add(5*time.Minute))
	defer cancel()
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = g.Run(ctx, key("k1", "fp1"), func(context.Context) idempotency.Outcome {
			close(started)
			<-release
			return idempotency.Outcome{Response: ok(`{"errCode":0}`)}
		})
	}()
	<-started
	c.Add(2 * time.Minute) // past Stuck, well before its 5-minute deadline
	_, _, e := g.Run(context.Background(), key("k1", "fp1"), func(context.Context) idempotency.Outcome { panic("ran twice") })
	require.NotNil(t, e)
	require.Equal(t, envelope.CodeIdempotencyConflict, e.Code, e.Reason)
	require.Contains(t, e.Reason, "in progress")
	require.ErrorContains(t, g.Settle(context.Background(), "k1", idempotency.Settlement{}), "may still be running")

	c.Add(5 * time.Minute) // a minute past its deadline: it cannot be running
	_, _, e = g.Run(context.Background(), key("k1", "fp1"), func(context.Context) idempotency.Outcome { panic("ran twice") })
	require.NotNil(t, e)
	require.Equal(t, envelope.CodeOutcomeUnknown, e.Code, e.Reason)
	close(release)
	<-done
}

// What the record knows binds the person settling it: when TOP's answer
// came back and only the record's last write failed, "not charged" or
// another id is refused (settling "not charged" charged a key twice,
// outside tester). A settlement by hand is marked, and can be corrected.
func TestSettleAgreesWithTheRecordAndCanBeCorrected(t *testing.T) {
	c := newClock()
	recs := idempotency.NewMemory(c.Now)
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: time.Minute, Now: c.Now})
	ctx := context.Background()
	_, err := recs.Reserve(ctx, "t:q1", idempotency.Record{Token: "tok", State: idempotency.InProgress, Fingerprint: "fp",
		Started: c.Now().UnixMilli(), Known: "outcome known: charged, id ECS-1"}, time.Hour)
	require.NoError(t, err)
	rec, err := g.Inspect(ctx, "q1")
	require.NoError(t, err)
	id, known := idempotency.KnownCharge(rec)
	require.True(t, known)
	require.Equal(t, "ECS-1", id)
	require.NoError(t, g.Settleable(rec), "known at once: nothing to wait for")
	require.ErrorContains(t, g.Settle(ctx, "q1", idempotency.Settlement{}), "the record knows the vendor charged this key, id ECS-1")
	require.ErrorContains(t, g.Settle(ctx, "q1", idempotency.Settlement{VendorID: "ECS-TYPO", Answer: ok(`{"errCode":0}`)}), "id ECS-1")
	require.NoError(t, g.Settle(ctx, "q1", idempotency.Settlement{VendorID: "ECS-1", Answer: ok(`{"errCode":0,"id":"ECS-1"}`)}))

	rec, err = g.Inspect(ctx, "q1")
	require.NoError(t, err)
	require.Equal(t, idempotency.Done, rec.State)
	require.Regexp(t, `^charged, id ECS-1; settled by hand 2023-11-14T22:13:20Z$`, rec.Settled)
	require.ErrorContains(t, g.Settle(ctx, "q1", idempotency.Settlement{VendorID: "ECS-1", Answer: ok(`{"errCode":0,"id":"ECS-1"}`)}), "already settled as charged, id ECS-1, with the same answer")
	// The same charge with its answer put right (TOP's request id, mistyped
	// the first time) is a correction: before, only --not-charged could
	// undo it, a window in which a retry charged again (an outside re-tester).
	require.NoError(t, g.Settle(ctx, "q1", idempotency.Settlement{VendorID: "ECS-1", Answer: ok(`{"errCode":0,"id":"ECS-1","requestId":"r-2"}`)}))
	rec, err = g.Inspect(ctx, "q1")
	require.NoError(t, err)
	require.JSONEq(t, `{"errCode":0,"id":"ECS-1","requestId":"r-2"}`, string(rec.Body))
	// What the record knew still binds every correction: settled by hand,
	// then "not charged", charged the key twice (outside re-tester).
	require.Equal(t, "outcome known: charged, id ECS-1", rec.Known)
	require.ErrorContains(t, g.Settle(ctx, "q1", idempotency.Settlement{}), "the record knows the vendor charged this key, id ECS-1")
	require.ErrorContains(t, g.Settle(ctx, "q1", idempotency.Settlement{VendorID: "ECS-9", Answer: ok(`{}`)}), "id ECS-1")

	// A mistaken settlement by hand can be corrected, both ways.
	_, _, e := g.Run(ctx, key("m1", "fpm"), func(context.Context) idempotency.Outcome {
		return idempotency.Outcome{Response: envelope.Response{Status: 504, Body: []byte(`{"errCode":-1304}`)}}
	})
	require.Nil(t, e)
	c.Add(time.Hour) // its request can no longer reach the vendor
	require.NoError(t, g.Settle(ctx, "m1", idempotency.Settlement{VendorID: "TYPO", Answer: ok(`{"errCode":0,"id":"TYPO"}`)}))
	require.NoError(t, g.Settle(ctx, "m1", idempotency.Settlement{VendorID: "ECS-2", Answer: ok(`{"errCode":0,"id":"ECS-2"}`)}))
	rec, err = g.Inspect(ctx, "m1")
	require.NoError(t, err)
	require.Equal(t, `{"errCode":0,"id":"ECS-2"}`, string(rec.Body))
	require.NoError(t, g.Settle(ctx, "m1", idempotency.Settlement{}))
	_, err = g.Inspect(ctx, "m1")
	require.ErrorIs(t, err, idempotency.ErrNotFound)
}

// A vendor that takes a request for a while after it was sent (TOP: its
// timestamp for 10 minutes) keeps the call's outcome open that long: a
// request is not taken back when the caller stops waiting or its instance
// dies, and a re-tester's TOP charged 70 s after a settlement made a minute
// past the deadline, a retry having charged too.
func TestSettlingWaitsOutTheVendorsWindow(t *testing.T) {
	c := newClock()
	g := idempotency.New(idempotency.Options{Records: idempotency.NewMemory(c.Now), Namespace: "t:", Stuck: time.Minute, Now: c.Now, Window: 10 * time.Minute})
	ctx := context.Background()
	_, _, e := g.Run(ctx, key("w1", "fpw"), func(context.Context) idempotency.Outcome {
		return idempotency.Outcome{Response: envelope.Response{Status: 504, Body: []byte(`{"errCode":-1304}`)}}
	})
	require.Nil(t, e)
	start := c.Now()
	c.Add(61 * time.Second) // past the call's time: not past the vendor's
	rec, err := g.Inspect(ctx, "w1")
	require.NoError(t, err)
	err = g.Settleable(rec)
	require.ErrorIs(t, err, idempotency.ErrNotSettleable)
	require.ErrorContains(t, err, "look the charge up there from "+start.Add(11*time.Minute).UTC().Format(time.RFC3339)+
		" (a minute past its deadline, and 10m0s in which the vendor still takes its request), then settle it")
	require.ErrorIs(t, g.Settle(ctx, "w1", idempotency.Settlement{}), idempotency.ErrNotSettleable)
	c.Add(10 * time.Minute)
	require.NoError(t, g.Settle(ctx, "w1", idempotency.Settlement{}))
	require.Equal(t, start.Add(11*time.Minute), g.Quiet(start), "a reopening after a loss waits as long")
}

// A restore corrected by hand (its request id put right) is still a
// restore: a retry of the charged request is answered with it. Marked
// "settled", the retry heard "a different request, use a new key", and the
// new key charged again (an outside re-tester).
func TestACorrectedRestoreStillAnswersTheKey(t *testing.T) {
	c := newClock()
	g := idempotency.New(idempotency.Options{Records: idempotency.NewMemory(c.Now), Namespace: "t:", Stuck: time.Minute, Now: c.Now})
	ctx := context.Background()
	require.NoError(t, g.Restore(ctx, "k3", idempotency.Settlement{VendorID: "ECS-3", Answer: ok(`{"errCode":0,"id":"ECS-3"}`)}, true))
	require.NoError(t, g.Settle(ctx, "k3", idempotency.Settlement{VendorID: "ECS-3", Answer: ok(`{"errCode":0,"id":"ECS-3","requestId":"fix"}`)}))
	runs := 0
	resp, replayed, e := g.Run(ctx, key("k3", "fp-any"), func(context.Context) idempotency.Outcome {
		runs++
		return idempotency.Outcome{Response: ok(`{"errCode":0,"id":"ECS-NEW"}`), Verdict: idempotency.Keep}
	})
	require.Nil(t, e, "no -1401: the restore answers any request with its key")
	require.True(t, replayed)
	require.JSONEq(t, `{"errCode":0,"id":"ECS-3","requestId":"fix"}`, string(resp.Body))
	require.Equal(t, 0, runs, "nothing charged again")
	rec, err := g.Inspect(ctx, "k3")
	require.NoError(t, err)
	require.Regexp(t, `^charged, id ECS-3; restored by hand, corrected by hand 2023-11-14T22:13:20Z$`, rec.Settled)
}

// A restore over a record that knows the vendor's answer (the charge came
// back, the record could not be finished) takes only that id and keeps what
// it knows: a restore with another id dropped it, then "not charged" let a
// retry charge twice (an outside re-tester).
func TestARestoreAgreesWithWhatTheRecordKnows(t *testing.T) {
	c := newClock()
	recs := idempotency.NewMemory(c.Now)
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: time.Minute, Now: c.Now, Window: 10 * time.Minute})
	ctx := context.Background()
	_, err := recs.Reserve(ctx, "t:k2", idempotency.Record{Token: "tok", State: idempotency.InProgress, Fingerprint: "fp",
		Started: c.Now().UnixMilli(), Known: "outcome known: charged, id ECS-2"}, time.Hour)
	require.NoError(t, err)
	err = g.Restore(ctx, "k2", idempotency.Settlement{VendorID: "WRONG", Answer: ok(`{"errCode":0,"id":"WRONG"}`)}, true)
	require.ErrorIs(t, err, idempotency.ErrNotSettleable)
	require.ErrorContains(t, err, "the record knows the vendor charged this key, id ECS-2")
	require.NoError(t, g.Restore(ctx, "k2", idempotency.Settlement{VendorID: "ECS-2", Answer: ok(`{"errCode":0,"id":"ECS-2"}`)}, true))
	rec, err := g.Inspect(ctx, "k2")
	require.NoError(t, err)
	require.Equal(t, "outcome known: charged, id ECS-2", rec.Known)
	c.Add(time.Hour) // past every window: only what the record knows stops it
	require.ErrorContains(t, g.Settle(ctx, "k2", idempotency.Settlement{}), "the record knows the vendor charged this key, id ECS-2")
	_, err = g.Inspect(ctx, "k2")
	require.NoError(t, err, "still there: a retry is answered with the charge")
}

// A caller's own key may start with "auto:": only "auto:" and a fingerprint
// is a keyless slot. Read as one, "auto:mx" was restored for no request,
// its retry heard "use a new key", and the new key charged again (an
// outside re-tester).
func TestARestoredKeyStartingWithAutoIsACallersKey(t *testing.T) {
	c := newClock()
	g := idempotency.New(idempotency.Options{Records: idempotency.NewMemory(c.Now), Namespace: "t:", Stuck: time.Minute, Now: c.Now})
	ctx := context.Background()
	charged := ok(`{"errCode":0,"id":"ECS-M"}`)
	require.NoError(t, g.Restore(ctx, "auto:mx", idempotency.Settlement{VendorID: "ECS-M", Answer: charged}, true))
	runs := 0
	run := func(context.Context) idempotency.Outcome {
		runs++
		return idempotency.Outcome{Response: ok(`{"errCode":0,"id":"ECS-NEW"}`), Verdict: idempotency.Keep}
	}
	resp, replayed, e := g.Run(ctx, key("auto:mx", "fp-of-the-callers-request"), run)
	require.Nil(t, e)
	require.True(t, replayed)
	require.Equal(t, `{"errCode":0,"id":"ECS-M"}`, string(resp.Body))
	require.Equal(t, 0, runs)

	// A keyless slot's name is its request's fingerprint: exact.
	fp := idempotency.Fingerprint([]byte("the request"))
	require.NoError(t, g.Restore(ctx, "auto:"+fp, idempotency.Settlement{VendorID: "ECS-K", Answer: ok(`{"errCode":0,"id":"ECS-K"}`)}, true))
	rec, err := g.Inspect(ctx, "auto:"+fp)
	require.NoError(t, err)
	require.Equal(t, fp, rec.Fingerprint)
}
