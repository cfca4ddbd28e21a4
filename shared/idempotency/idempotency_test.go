package idempotency_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/idempotency"
)

func ok(body string) envelope.Response {
	return envelope.Response{Status: http.StatusOK, Body: []byte(body)}
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func newClock() *clock { return &clock{now: time.Unix(1_700_000_000, 0)} }

func key(k, fp string) idempotency.Call { return idempotency.Call{Key: k, Fingerprint: fp} }

// charging is a guarded call that charges (errCode 0) and counts its runs.
func charging() (func(context.Context) idempotency.Outcome, *atomic.Int32) {
	runs := &atomic.Int32{}
	return func(context.Context) idempotency.Outcome {
		runs.Add(1)
		return idempotency.Outcome{Response: ok(`{"errCode":0}`)}
	}, runs
}

func TestReplayConflictReleaseAndStuck(t *testing.T) {
	c := newClock()
	recs := idempotency.NewMemory(c.Now)
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: time.Minute, Now: c.Now})
	ctx := context.Background()
	var runs atomic.Int32
	charge := func(resp envelope.Response, v idempotency.Verdict) func(context.Context) idempotency.Outcome {
		return func(context.Context) idempotency.Outcome {
			runs.Add(1)
			return idempotency.Outcome{Response: resp, Verdict: v}
		}
	}

	// Kept: the repeat replays the first answer byte for byte.
	r, replayed, e := g.Run(ctx, key("k1", "fp1"), charge(ok(`{"errCode":0,"id":1}`), idempotency.Keep))
	require.Nil(t, e)
	require.False(t, replayed)
	r2, replayed, e := g.Run(ctx, key("k1", "fp1"), charge(ok(`{"errCode":0,"id":2}`), idempotency.Keep))
	require.Nil(t, e)
	require.True(t, replayed)
	require.Equal(t, r.Body, r2.Body)
	require.Equal(t, int32(1), runs.Load())

	// Same key, other request: conflict, nothing runs.
	_, _, e = g.Run(ctx, key("k1", "fp-other"), charge(ok(`{}`), idempotency.Keep))
	require.Equal(t, envelope.CodeIdempotencyConflict, e.Code)
	require.Equal(t, int32(1), runs.Load())

	// Released: the vendor certainly did nothing, so the key runs again.
	_, _, e = g.Run(ctx, key("k2", "fp2"), charge(envelope.Response{Status: 429, Body: []byte(`{"errCode":-1201}`)}, idempotency.Release))
	require.Nil(t, e)
	_, replayed, e = g.Run(ctx, key("k2", "fp2"), charge(ok(`{"errCode":0}`), idempotency.Keep))
	require.Nil(t, e)
	require.False(t, replayed)
	require.Equal(t, int32(3), runs.Load())

	// A first call that died mid-way: in progress → conflict while it could
	// still be running, then "outcome unknown", never a second run.
	_, err := recs.Reserve(ctx, "t:k3", idempotency.Record{Token: "x", State: idempotency.InProgress, Fingerprint: "fp3", Started: c.Now().UnixMilli()}, 24*time.Hour)
	require.NoError(t, err)
	_, _, e = g.Run(ctx, key("k3", "fp3"), charge(ok(`{}`), idempotency.Keep))
	require.Equal(t, envelope.CodeIdempotencyConflict, e.Code)
	c.Add(2 * time.Minute)
	_, _, e = g.Run(ctx, key("k3", "fp3"), charge(ok(`{}`), idempotency.Keep))
	require.Equal(t, envelope.CodeOutcomeUnknown, e.Code)
	require.Contains(t, e.Reason, "reconcile before retrying")
	require.Equal(t, int32(3), runs.Load(), "the stuck key never runs again")

	// The record expires after the retention window.
	c.Add(25 * time.Hour)
	_, replayed, e = g.Run(ctx, key("k1", "fp1"), charge(ok(`{"errCode":0,"id":3}`), idempotency.Keep))
	require.Nil(t, e)
	require.False(t, replayed)
}

// Twenty identical calls at once: one runs, each other one hears that it is
// in progress; after it finished, a repeat replays it.
func TestConcurrentRepeats(t *testing.T) {
	for _, keyed := range []bool{true, false} {
		t.Run(fmt.Sprintf("keyed=%v", keyed), func(t *testing.T) {
			g := idempotency.New(idempotency.Options{Records: idempotency.NewMemory(nil), Namespace: "c:"})
			call := idempotency.Call{Fingerprint: "fp"}
			if keyed {
				call.Key = "same"
			}
			release := make(chan struct{})
			var runs atomic.Int32
			type result struct {
				resp     envelope.Response
				replayed bool
				e        *envelope.Error
			}
			results := make(chan result, 20)
			var started sync.WaitGroup
			for i := 0; i < 20; i++ {
				started.Add(1)
				go func() {
					started.Done()
					r, rep, e := g.Run(context.Background(), call, func(context.Context) idempotency.Outcome {
						runs.Add(1)
						<-release // hold the record in progress while the others arrive
						return idempotency.Outcome{Response: ok(`{"errCode":0,"id":"first"}`)}
					})
					results <- result{r, rep, e}
				}()
			}
			started.Wait()
			for i := 0; i < 19; i++ {
				r := <-results
				require.NotNil(t, r.e)
				require.Equal(t, envelope.CodeIdempotencyConflict, r.e.Code)
				require.Contains(t, r.e.Reason, "in progress")
			}
			close(release)
			first := <-results
			require.Nil(t, first.e)
			require.False(t, first.replayed)
			require.Equal(t, int32(1), runs.Load())
			r, rep, e := g.Run(context.Background(), call, func(context.Context) idempotency.Outcome {
				runs.Add(1)
				return idempotency.Outcome{Response: ok(`{}`)}
			})
			require.Nil(t, e)
			require.True(t, rep)
			require.Equal(t, `{"errCode":0,"id":"first"}`, string(r.Body))
			require.Equal(t, int32(1), runs.Load())
		})
	}
}

// A keyed charge retried without its key is still one charge: the keyless
// retry is answered from the keyed record, and a keyless charge retried
// with a key from the keyless one. A second explicit key for the same
// request is a new charge.
func TestKeyedChargeRetriedWithoutItsKey(t *testing.T) {
	c := newClock()
	g := idempotency.New(idempotency.Options{Records: idempotency.NewMemory(c.Now), Namespace: "a:", Stuck: time.Minute, Now: c.Now})
	ctx := context.Background()
	var runs atomic.Int32
	fn := func(context.Context) idempotency.Outcome {
		n := runs.Add(1)
		return idempotency.Outcome{Response: ok(fmt.Sprintf(`{"errCode":0,"charge":%d}`, n))}
	}

	r1, _, e := g.Run(ctx, key("K", "fp"), fn)
	require.Nil(t, e)
	r2, replayed, e := g.Run(ctx, key("", "fp"), fn)
	require.Nil(t, e)
	require.True(t, replayed, "the keyless retry replays the keyed charge")
	require.Equal(t, string(r1.Body), string(r2.Body))
	require.Equal(t, int32(1), runs.Load())

	// Another key with the same request: the caller says it is a new charge.
	r3, replayed, e := g.Run(ctx, key("K2", "fp"), fn)
	require.Nil(t, e)
	require.False(t, replayed)
	require.Equal(t, `{"errCode":0,"charge":2}`, string(r3.Body))
	// The keyless retry still answers from the first keyed charge.
	r4, _, e := g.Run(ctx, key("", "fp"), fn)
	require.Nil(t, e)
	require.Equal(t, string(r1.Body), string(r4.Body))

	// A keyed call still in progress: its keyless retry hears 409, then
	// -1304 once it is stuck; never a charge.
	hold, inside := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = g.Run(ctx, key("K3", "fp3"), func(context.Context) idempotency.Outcome {
			close(inside)
			<-hold
			return idempotency.Outcome{Response: ok(`{}`)}
		})
	}()
	<-inside
	_, _, e = g.Run(ctx, key("", "fp3"), fn)
	require.Equal(t, envelope.CodeIdempotencyConflict, e.Code)
	require.Contains(t, e.Reason, "in progress")
	c.Add(2 * time.Minute)
	_, _, e = g.Run(ctx, key("", "fp3"), fn)
	require.Equal(t, envelope.CodeOutcomeUnknown, e.Code)
	close(hold)
	<-done
	require.Equal(t, int32(2), runs.Load())

	// A keyless call first, then the same request with a key: the keyed
	// call is its retry, answered from it; the key stays free.
	rk, _, e := g.Run(ctx, key("", "fp5"), fn)
	require.Nil(t, e)
	before := runs.Load()
	rk2, replayed, e := g.Run(ctx, key("K5", "fp5"), fn)
	require.Nil(t, e)
	require.True(t, replayed)
	require.Equal(t, string(rk.Body), string(rk2.Body))
	require.Equal(t, before, runs.Load())

	// A keyed call released (nothing sent) frees the keyless slot too.
	_, _, e = g.Run(ctx, key("K4", "fp4"), func(context.Context) idempotency.Outcome {
		return idempotency.Outcome{Response: ok(`{"errCode":-1302}`), Verdict: idempotency.Release}
	})
	require.Nil(t, e)
	_, replayed, e = g.Run(ctx, key("", "fp4"), fn)
	require.Nil(t, e)
	require.False(t, replayed)
	require.Equal(t, int32(4), runs.Load())
}

// failing fails chosen operations the way an unreachable store does.
type failing struct {
	idempotency.Records
	mu                           sync.Mutex
	reserve, read, finish, alias bool
	known                        bool // fail the "outcome known" note too
	notDurable                   bool
	settings                     bool
	finishes                     int
}

func (f *failing) Reserve(ctx context.Context, k string, r idempotency.Record, ttl time.Duration) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.notDurable {
		return false, fmt.Errorf("%w: redis has appendonly off", idempotency.ErrNotDurable)
	}
	if f.settings {
		return false, fmt.Errorf(`%w: postgres at db:5432: password authentication failed for user "billing"`, idempotency.ErrSettings)
	}
	if f.reserve || (f.alias && r.Alias != "") {
		return false, fmt.Errorf("%w: connection refused", idempotency.ErrUnavailable)
	}
	return f.Records.Reserve(ctx, k, r, ttl)
}

func (f *failing) Read(ctx context.Context, k string) (idempotency.Record, error) {
	if f.read {
		return idempotency.Record{}, fmt.Errorf("%w: connection refused", idempotency.ErrUnavailable)
	}
	return f.Records.Read(ctx, k)
}

func (f *failing) Finish(ctx context.Context, k, tok string, r idempotency.Record, ttl time.Duration) (bool, error) {
	f.mu.Lock()
	f.finishes++
	// The answer's write fails; the small "known" note gets through unless
	// known is set; the step before sending always works.
	fail := f.finish && (r.State == idempotency.Done || (r.Known != "" && f.known))
	f.mu.Unlock()
	if fail {
		return false, fmt.Errorf("%w: connection reset", idempotency.ErrUnavailable)
	}
	return f.Records.Finish(ctx, k, tok, r, ttl)
}

func TestStoreFailures(t *testing.T) {
	c := newClock()
	recs := &failing{Records: idempotency.NewMemory(c.Now)}
	var logs bytes.Buffer
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "f:", Stuck: time.Minute, Now: c.Now,
		FinishFor: 200 * time.Millisecond, Log: slog.New(slog.NewJSONHandler(&logs, nil))})
	ctx := context.Background()
	var runs atomic.Int32
	fn := func(context.Context) idempotency.Outcome {
		runs.Add(1)
		return idempotency.Outcome{Response: ok(`{"errCode":0}`), VendorID: "ECS-42"}
	}

	// The record cannot be taken: nothing runs, the caller may retry.
	recs.reserve = true
	_, _, e := g.Run(ctx, key("k", "fp"), fn)
	require.Equal(t, envelope.CodeStoreUnavailable, e.Code)
	require.ErrorIs(t, e, idempotency.ErrUnavailable)
	require.Contains(t, e.Reason, "did not run")
	recs.reserve = false

	// The keyless alias cannot be written: the keyed record is released and
	// nothing runs.
	recs.alias = true
	_, _, e = g.Run(ctx, key("k", "fp"), fn)
	require.Equal(t, envelope.CodeStoreUnavailable, e.Code)
	recs.alias = false
	require.Equal(t, int32(0), runs.Load())

	// A store that refuses the URL's credentials or database: configuration
	// error (retrying cannot help), nothing runs, and the driver's text (it
	// names users and databases) stays in the log.
	recs.settings = true
	_, _, e = g.Run(ctx, key("k", "fp"), fn)
	require.Equal(t, envelope.CodeConfig, e.Code)
	require.ErrorIs(t, e, idempotency.ErrSettings)
	require.Contains(t, e.Reason, "fix CLOUDCALL_IDEMPOTENCY_STORE")
	require.NotContains(t, e.Reason, "billing")
	recs.settings = false
	require.Equal(t, int32(0), runs.Load())

	// A store that could forget records: configuration error, nothing runs.
	recs.notDurable = true
	_, _, e = g.Run(ctx, key("k", "fp"), fn)
	require.Equal(t, envelope.CodeConfig, e.Code)
	require.Contains(t, e.Reason, "appendonly off")
	recs.notDurable = false
	require.Equal(t, int32(0), runs.Load())

	// The call ran but its answer could not be recorded: the finish step is
	// retried, then an ERROR line names the key and the vendor's id, the
	// record says what is known, and repeats hear "in progress", then
	// "outcome unknown" with that id; nothing runs twice.
	recs.finish = true
	unfinished, _, e := g.Run(ctx, key("k", "fp"), fn)
	require.Nil(t, e)
	require.True(t, unfinished.Unrecorded, "counted and logged as an outcome unknown: its repeats hear -1304")
	require.Equal(t, int32(1), runs.Load())
	require.Greater(t, recs.finishes, 2, "the finish step was retried")
	var line map[string]any
	require.NoError(t, json.Unmarshal(bytes.Split(logs.Bytes(), []byte("\n"))[0], &line), logs.String())
	require.Equal(t, "ERROR", line["level"])
	require.Equal(t, "k", line["idempotencyKey"], "the key as callers and cloudcall records name it")
	require.Equal(t, "ECS-42", line["vendorId"])
	require.Contains(t, line["msg"], "--charged <vendorId>; never --not-charged", "TOP's id is known: a settle --not-charged would charge again")
	recs.finish = false
	_, _, e = g.Run(ctx, key("k", "fp"), fn)
	require.Equal(t, envelope.CodeOutcomeUnknown, e.Code, "the record says the call ended: no need to wait")
	require.Contains(t, e.Reason, "outcome known: charged, id ECS-42")
	require.Equal(t, int32(1), runs.Load())

	// Nothing at all could be written after the call: repeats hear "in
	// progress" while it could be running, then "outcome unknown".
	recs.finish, recs.known = true, true
	_, _, e = g.Run(ctx, key("k2", "fp2"), fn)
	require.Nil(t, e)
	require.Equal(t, int32(2), runs.Load())
	recs.finish, recs.known = false, false
	_, _, e = g.Run(ctx, key("k2", "fp2"), fn)
	require.Equal(t, envelope.CodeIdempotencyConflict, e.Code)
	c.Add(2 * time.Minute)
	_, _, e = g.Run(ctx, key("k2", "fp2"), fn)
	require.Equal(t, envelope.CodeOutcomeUnknown, e.Code)
	require.NotContains(t, e.Reason, "outcome known")
	require.Equal(t, int32(2), runs.Load())

	// The record exists but cannot be read: refuse rather than guess.
	recs.read = true
	_, _, e = g.Run(ctx, key("k", "fp"), fn)
	require.Equal(t, envelope.CodeStoreUnavailable, e.Code)
	require.Equal(t, int32(2), runs.Load())
}

// The answer is recorded even when the invocation's context ends as the call
// returns (the platform deadline hit right after TOP answered).
func TestRecordsAfterTheContextEnds(t *testing.T) {
	g := idempotency.New(idempotency.Options{Records: idempotency.NewMemory(nil), Namespace: "x:"})
	ctx, cancel := context.WithCancel(context.Background())
	_, _, e := g.Run(ctx, key("k", "fp"), func(context.Context) idempotency.Outcome {
		cancel()
		return idempotency.Outcome{Response: ok(`{"errCode":0,"id":1}`)}
	})
	require.Nil(t, e)
	r, rep, e := g.Run(context.Background(), key("k", "fp"), func(context.Context) idempotency.Outcome {
		return idempotency.Outcome{Response: ok(`{}`)}
	})
	require.Nil(t, e)
	require.True(t, rep)
	require.Equal(t, `{"errCode":0,"id":1}`, string(r.Body))
}

type counting struct {
	idempotency.Records
	purges atomic.Int32
}

func (c *counting) Purge(ctx context.Context, limit int) (int, error) {
	c.purges.Add(1)
	return c.Records.Purge(ctx, limit)
}

// The clean-up runs at most once per PurgeEvery per instance.
func TestPurgeIsSpaced(t *testing.T) {
	c := newClock()
	recs := &counting{Records: idempotency.NewMemory(c.Now)}
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "p:", PurgeEvery: time.Minute, Now: c.Now})
	for i := 0; i < 10; i++ {
		_, _, e := g.Run(context.Background(), key(fmt.Sprint(i), "fp"), func(context.Context) idempotency.Outcome {
			return idempotency.Outcome{Response: ok(`{}`)}
		})
		require.Nil(t, e)
	}
	require.Equal(t, int32(1), recs.purges.Load())
	c.Add(time.Minute)
	_, _, _ = g.Run(context.Background(), key("later", "fp"), func(context.Context) idempotency.Outcome { return idempotency.Outcome{Response: ok(`{}`)} })
	require.Equal(t, int32(2), recs.purges.Load())
}

// The instance's first clean-up runs in Warm, at cold start, not after the
// first charge; the next is due a PurgeEvery later.
func TestWarmRunsTheFirstPurge(t *testing.T) {
	c := newClock()
	recs := &counting{Records: idempotency.NewMemory(c.Now)}
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "p:", PurgeEvery: time.Minute, Now: c.Now})
	g.Warm(context.Background(), time.Second)
	require.Equal(t, int32(1), recs.purges.Load(), "Warm cleaned up")
	_, _, e := g.Run(context.Background(), key("first", "fp"), func(context.Context) idempotency.Outcome {
		return idempotency.Outcome{Response: ok(`{}`)}
	})
	require.Nil(t, e)
	require.Equal(t, int32(1), recs.purges.Load(), "the first charge does not clean up again")
	c.Add(time.Minute)
	_, _, _ = g.Run(context.Background(), key("later", "fp"), func(context.Context) idempotency.Outcome { return idempotency.Outcome{Response: ok(`{}`)} })
	require.Equal(t, int32(2), recs.purges.Load())
}

func TestFingerprint(t *testing.T) {
	// SHA-256 of the bytes, hex: a fixed value so records survive upgrades.
	require.Equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", idempotency.Fingerprint([]byte("abc")))
}

// markFails fails the step that marks a reservation as sent, once: the
// store dropped between the reservation and the call.
type markFails struct {
	idempotency.Records
	fail atomic.Bool
}

func (m *markFails) Finish(ctx context.Context, k, tok string, r idempotency.Record, ttl time.Duration) (bool, error) {
	if r.State == idempotency.InProgress && m.fail.CompareAndSwap(true, false) {
		return false, fmt.Errorf("%w: connection reset", idempotency.ErrUnavailable)
	}
	return m.Records.Finish(ctx, k, tok, r, ttl)
}

// A call refused with -1501 after its reservation was written left nothing
// sent: the retry takes the reservation over and runs once, instead of
// hearing "in progress" and then "outcome unknown" for a day. Of many
// retries at once, one takes it over.
func TestRetryAfterAStoreFailureTakesTheReservationOver(t *testing.T) {
	for _, keyed := range []bool{true, false} {
		t.Run(fmt.Sprintf("keyed=%v", keyed), func(t *testing.T) {
			recs := &markFails{Records: idempotency.NewMemory(nil)}
			g := idempotency.New(idempotency.Options{Records: recs, Namespace: "m:"})
			call := idempotency.Call{Fingerprint: "fp"}
			if keyed {
				call.Key = "k"
			}
			fn, runs := charging()
			recs.fail.Store(true)
			_, _, e := g.Run(context.Background(), call, fn)
			require.Equal(t, envelope.CodeStoreUnavailable, e.Code)
			require.Equal(t, int32(0), runs.Load())

			var wg sync.WaitGroup
			codes := make(chan int, 20)
			for i := 0; i < 20; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _, e := g.Run(context.Background(), call, fn)
					if e != nil {
						codes <- e.Code
					} else {
						codes <- 0
					}
				}()
			}
			wg.Wait()
			close(codes)
			for c := range codes {
				require.Contains(t, []int{0, envelope.CodeIdempotencyConflict}, c)
			}
			require.Equal(t, int32(1), runs.Load(), "one takeover, one run")
		})
	}
}

// interleave makes a repeat read the reservation just before its owner
// marks it as sent, and try to take it over just after.
type interleave struct {
	idempotency.Records
	read, marked         chan struct{}
	readOnce, markedOnce sync.Once
}

func (i *interleave) Read(ctx context.Context, k string) (idempotency.Record, error) {
	r, err := i.Records.Read(ctx, k)
	if r.State == idempotency.Reserved {
		i.readOnce.Do(func() { close(i.read) })
		<-i.marked
	}
	return r, err
}

func (i *interleave) Finish(ctx context.Context, k, tok string, r idempotency.Record, ttl time.Duration) (bool, error) {
	if r.State != idempotency.InProgress {
		return i.Records.Finish(ctx, k, tok, r, ttl)
	}
	<-i.read
	ok, err := i.Records.Finish(ctx, k, tok, r, ttl)
	i.markedOnce.Do(func() { close(i.marked) })
	return ok, err
}

// A repeat that saw the reservation a moment before the owner sent cannot
// take it over afterwards: the owner's mark changed the token.
func TestStaleReservationCannotBeTakenOver(t *testing.T) {
	recs := &interleave{Records: idempotency.NewMemory(nil), read: make(chan struct{}), marked: make(chan struct{})}
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "s:"})
	fn, runs := charging()
	codes := make(chan int, 2)
	for i := 0; i < 2; i++ {
		go func() {
			_, _, e := g.Run(context.Background(), key("k", "fp"), fn)
			if e != nil {
				codes <- e.Code
				return
			}
			codes <- 0
		}()
	}
	got := []int{<-codes, <-codes}
	require.ElementsMatch(t, []int{0, envelope.CodeIdempotencyConflict}, got)
	require.Equal(t, int32(1), runs.Load(), "the stale takeover must not run the charge again")
}

// An alias left behind by a keyed call whose own release failed (the store
// was down as it sent nothing) points nowhere once its keyed record is gone:
// the keyless retry clears it and the next one runs, rather than hearing
// 409 for a day.
func TestStaleAliasIsCleared(t *testing.T) {
	recs := idempotency.NewMemory(nil)
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "z:"})
	_, err := recs.Reserve(context.Background(), "z:auto:fp", idempotency.Record{Token: "x", State: idempotency.Reserved, Fingerprint: "fp", Alias: "K"}, time.Hour)
	require.NoError(t, err)
	fn, runs := charging()
	// The alias names a key that is gone (released: nothing was sent), so
	// the alias is cleared and this call reserves again and runs, where it
	// used to answer "retry" and leave that to the caller.
	_, replayed, e := g.Run(context.Background(), key("", "fp"), fn)
	require.Nil(t, e)
	require.False(t, replayed)
	require.Equal(t, int32(1), runs.Load())
	_, replayed, e = g.Run(context.Background(), key("", "fp"), fn)
	require.Nil(t, e)
	require.True(t, replayed)
	require.Equal(t, int32(1), runs.Load())
}

// Once the record says the vendor may act, the guarded call no longer
// hears the caller give up: it keeps the caller's deadline, and its
// answer, not the cancellation, is what the record keeps.
func TestTheGuardedCallOutlivesACallerThatGivesUp(t *testing.T) {
	g := idempotency.New(idempotency.Options{Records: idempotency.NewMemory(nil), Namespace: "c:"})
	deadline := time.Now().Add(time.Minute)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	var seenErr error
	var seenDeadline time.Time
	resp, _, e := g.Run(ctx, key("gone", "fp"), func(ctx context.Context) idempotency.Outcome {
		cancel() // the caller disconnects while the vendor works
		seenErr = ctx.Err()
		seenDeadline, _ = ctx.Deadline()
		return idempotency.Outcome{Response: ok(`{"done":true}`)}
	})
	require.Nil(t, e)
	require.NoError(t, seenErr)
	require.True(t, seenDeadline.Equal(deadline), "the caller's deadline still bounds it")
	require.JSONEq(t, `{"done":true}`, string(resp.Body))

	again, replayed, e := g.Run(context.Background(), key("gone", "fp"), func(context.Context) idempotency.Outcome {
		t.Fatal("a repeat must not run again")
		return idempotency.Outcome{}
	})
	require.Nil(t, e)
	require.True(t, replayed)
	require.JSONEq(t, `{"done":true}`, string(again.Body))
}

// gatedAlias holds the first call whose alias reservation succeeded right
// after it, before it marks its record sent.
type gatedAlias struct {
	idempotency.Records
	once          sync.Once
	reached, gate chan struct{}
}

func (g *gatedAlias) Reserve(ctx context.Context, k string, r idempotency.Record, ttl time.Duration) (bool, error) {
	ok, err := g.Records.Reserve(ctx, k, r, ttl)
	if ok && err == nil && r.Alias != "" {
		g.once.Do(func() { close(g.reached); <-g.gate })
	}
	return ok, err
}

// Two calls with one key at once, then the same request without its key:
// one charge. The second call takes the first's reservation over while the
// first holds the alias; the first, finding its reservation gone, releases
// what it reserved. The alias must survive it, adopted by the call that
// charges, or the keyless retry charges again.
func TestConcurrentKeyedPairThenKeylessRetryIsOneCharge(t *testing.T) {
	recs := &gatedAlias{Records: idempotency.NewMemory(nil), reached: make(chan struct{}), gate: make(chan struct{})}
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: time.Minute})
	var runs atomic.Int32
	fn := func(context.Context) idempotency.Outcome {
		runs.Add(1)
		return idempotency.Outcome{Response: ok(`{"errCode":0,"orderId":"1"}`)}
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	var eA *envelope.Error
	wg.Add(1)
	go func() { defer wg.Done(); _, _, eA = g.Run(ctx, key("K", "fp"), fn) }()
	<-recs.reached
	respB, _, eB := g.Run(ctx, key("K", "fp"), fn)
	close(recs.gate)
	wg.Wait()
	require.Nil(t, eB)
	require.Equal(t, `{"errCode":0,"orderId":"1"}`, string(respB.Body))
	require.NotNil(t, eA, "the call taken over answers in progress")
	require.Equal(t, envelope.CodeIdempotencyConflict, eA.Code)
	require.Equal(t, int32(1), runs.Load())

	resp, replayed, e := g.Run(ctx, key("", "fp"), fn)
	require.Nil(t, e)
	require.True(t, replayed)
	require.Equal(t, respB.Body, resp.Body)
	require.Equal(t, int32(1), runs.Load(), "the keyed charge retried without its key did not run again")
}

// lostMarkSent applies the first mark-sent write and then reports the store
// unreachable: the write landed, its answer was lost.
type lostMarkSent struct {
	idempotency.Records
	done atomic.Bool
}

func (l *lostMarkSent) Finish(ctx context.Context, k, tok string, r idempotency.Record, ttl time.Duration) (bool, error) {
	ok, err := l.Records.Finish(ctx, k, tok, r, ttl)
	if r.State == idempotency.InProgress && l.done.CompareAndSwap(false, true) {
		return false, fmt.Errorf("%w: connection reset", idempotency.ErrUnavailable)
	}
	return ok, err
}

// A call answered -1501 sent nothing, so its retry charges once, even when
// the mark-sent write landed and only its answer was lost (the record said
// in progress, and every retry heard 409, then -1304, for 24 h).
func TestALostMarkSentAnswerLeavesNothingBehind(t *testing.T) {
	c := newClock()
	g := idempotency.New(idempotency.Options{Records: &lostMarkSent{Records: idempotency.NewMemory(c.Now)}, Namespace: "t:", Stuck: 75 * time.Second, Now: c.Now})
	fn, runs := charging()
	ctx := context.Background()
	_, _, e := g.Run(ctx, key("K", "fp"), fn)
	require.NotNil(t, e)
	require.Equal(t, envelope.CodeStoreUnavailable, e.Code)
	require.Equal(t, int32(0), runs.Load())
	_, _, e = g.Run(ctx, key("K", "fp"), fn)
	require.Nil(t, e)
	require.Equal(t, int32(1), runs.Load(), "the retry charges once")
	_, replayed, e := g.Run(ctx, key("", "fp"), fn)
	require.Nil(t, e)
	require.True(t, replayed, "and keeps its alias")
	require.Equal(t, int32(1), runs.Load())
}

// The race above, left to the scheduler: for each of 200 requests, 8
// concurrent calls with one key, then the request without its key. Every
// request runs once.
func TestConcurrentKeyedCallsThenKeylessRetriesRunOnce(t *testing.T) {
	g := idempotency.New(idempotency.Options{Records: idempotency.NewMemory(nil), Namespace: "t:", Stuck: time.Minute})
	ctx := context.Background()
	for i := range 200 {
		fn, runs := charging()
		fp := fmt.Sprintf("fp-%d", i)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() { defer wg.Done(); _, _, _ = g.Run(ctx, key("K-"+fp, fp), fn) }()
		}
		wg.Wait()
		require.LessOrEqual(t, runs.Load(), int32(1), "keyed "+fp)
		_, _, e := g.Run(ctx, key("", fp), fn)
		require.Nil(t, e, fp)
		require.Equal(t, int32(1), runs.Load(), fp)
	}
}

// releaseBlips fails the first release with the store unavailable.
type releaseBlips struct {
	*lostMarkSent
	failed atomic.Bool
}

func (r *releaseBlips) Release(ctx context.Context, k, tok string) (bool, error) {
	if r.failed.CompareAndSwap(false, true) {
		return false, fmt.Errorf("%w: connection reset", idempotency.ErrUnavailable)
	}
	return r.lostMarkSent.Release(ctx, k, tok)
}

// The release after a lost mark-sent answer outlasts a store blip.
func TestTheReleaseIsRetriedThroughABlip(t *testing.T) {
	c := newClock()
	recs := &releaseBlips{lostMarkSent: &lostMarkSent{Records: idempotency.NewMemory(c.Now)}}
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: 75 * time.Second, Now: c.Now})
	fn, runs := charging()
	_, _, e := g.Run(context.Background(), key("K", "fp"), fn)
	require.Equal(t, envelope.CodeStoreUnavailable, e.Code)
	require.True(t, recs.failed.Load(), "the first release failed")
	_, _, e = g.Run(context.Background(), key("K", "fp"), fn)
	require.Nil(t, e)
	require.Equal(t, int32(1), runs.Load())
}

// slowRecords yields the scheduler around every store call, so concurrent
// calls interleave between their steps as they do over a network.
type slowRecords struct{ idempotency.Records }

func (s slowRecords) Reserve(ctx context.Context, k string, r idempotency.Record, ttl time.Duration) (bool, error) {
	runtime.Gosched()
	defer runtime.Gosched()
	return s.Records.Reserve(ctx, k, r, ttl)
}

func (s slowRecords) Finish(ctx context.Context, k, tok string, r idempotency.Record, ttl time.Duration) (bool, error) {
	runtime.Gosched()
	defer runtime.Gosched()
	return s.Records.Finish(ctx, k, tok, r, ttl)
}

func (s slowRecords) Release(ctx context.Context, k, tok string) (bool, error) {
	runtime.Gosched()
	defer runtime.Gosched()
	return s.Records.Release(ctx, k, tok)
}

func (s slowRecords) Read(ctx context.Context, k string) (idempotency.Record, error) {
	runtime.Gosched()
	defer runtime.Gosched()
	return s.Records.Read(ctx, k)
}

// The first attempt at each request is throttled (the vendor did nothing:
// Release), then callers with the key and without it retry until answered.
// Every request is charged once: a call releasing its reservation must not
// take the alias a call that took the key after it relies on.
func TestReleasedCallsAndRetriesInBothFormsChargeOnce(t *testing.T) {
	g := idempotency.New(idempotency.Options{Records: slowRecords{idempotency.NewMemory(nil)}, Namespace: "t:", Stuck: time.Minute})
	for i := range 150 {
		fp := fmt.Sprintf("fp-%d", i)
		var attempts, charges atomic.Int32
		fn := func(context.Context) idempotency.Outcome {
			if attempts.Add(1) == 1 {
				return idempotency.Outcome{Response: envelope.Response{Status: 429, Body: []byte(`{"errCode":-1201}`)}, Verdict: idempotency.Release}
			}
			charges.Add(1)
			return idempotency.Outcome{Response: ok(`{"errCode":0}`)}
		}
		retryInBothForms(t, g, fp, fn)
		require.Equal(t, int32(1), charges.Load(), fp)
	}
}

// retryInBothForms runs 6 callers of request fp at once, every other one
// without the key, each retrying until it gets an answer.
func retryInBothForms(t *testing.T, g *idempotency.Guard, fp string, fn func(context.Context) idempotency.Outcome) {
	t.Helper()
	var wg sync.WaitGroup
	for j := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := "K-" + fp
			if j%2 == 1 {
				k = "" // the same request without its key
			}
			// Retried as callers do, with a pause: back to back, every
			// retry would take the reservation from the one before it.
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				resp, _, e := g.Run(context.Background(), key(k, fp), fn)
				if e == nil && resp.Status == 200 {
					return
				}
			}
			t.Errorf("%s: a retry never got an answer", fp)
		}()
	}
	wg.Wait()
}

// downAfterReserve lets reservations through, then fails everything else
// while down: a store lost right after a call reserved (and its alias).
type downAfterReserve struct {
	idempotency.Records
	down atomic.Bool
}

func (d *downAfterReserve) Finish(ctx context.Context, k, tok string, r idempotency.Record, ttl time.Duration) (bool, error) {
	if d.down.Load() {
		return false, idempotency.ErrUnavailable
	}
	return d.Records.Finish(ctx, k, tok, r, ttl)
}

func (d *downAfterReserve) Release(ctx context.Context, k, tok string) (bool, error) {
	if d.down.Load() {
		return false, idempotency.ErrUnavailable
	}
	return d.Records.Release(ctx, k, tok)
}

// A call that answered -1501 left its reservation (the store went away
// before it could mark it sent or release it). Its retry in the other form
// (keyed after keyless, keyless after keyed) takes it over and charges
// once, where it heard 409 for 24 h; the first form then replays it.
func TestARetryInTheOtherFormTakesAStrandedReservationOver(t *testing.T) {
	for _, first := range []string{"K", ""} {
		recs := &downAfterReserve{Records: idempotency.NewMemory(nil)}
		g := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: time.Minute, FinishFor: 50 * time.Millisecond})
		fn, runs := charging()
		ctx := context.Background()
		recs.down.Store(true)
		_, _, e := g.Run(ctx, key(first, "fp"), fn)
		require.Equal(t, envelope.CodeStoreUnavailable, e.Code, "first %q", first)
		recs.down.Store(false)

		other := "K"
		if first == "K" {
			other = ""
		}
		resp, _, e := g.Run(ctx, key(other, "fp"), fn)
		require.Nil(t, e, "first %q", first)
		require.Equal(t, 200, resp.Status)
		require.Equal(t, int32(1), runs.Load())
		_, replayed, e := g.Run(ctx, key(first, "fp"), fn)
		require.Nil(t, e, "first %q", first)
		require.True(t, replayed)
		_, replayed, e = g.Run(ctx, key(other, "fp"), fn)
		require.Nil(t, e)
		require.True(t, replayed)
		require.Equal(t, int32(1), runs.Load(), "first %q: one charge", first)
	}
}

// Stranded reservations in either form, then concurrent retries in both
// forms, interleaved at every store step: one charge per request.
func TestStrandedReservationsAndConcurrentRetriesChargeOnce(t *testing.T) {
	recs := &downAfterReserve{Records: slowRecords{idempotency.NewMemory(nil)}}
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: time.Minute, FinishFor: 20 * time.Millisecond})
	ctx := context.Background()
	for i := range 100 {
		fp := fmt.Sprintf("fp-%d", i)
		var charges atomic.Int32
		fn := func(context.Context) idempotency.Outcome {
			charges.Add(1)
			return idempotency.Outcome{Response: ok(`{"errCode":0}`)}
		}
		first := "K-" + fp
		if i%2 == 1 {
			first = ""
		}
		recs.down.Store(true)
		_, _, e := g.Run(ctx, key(first, fp), fn)
		require.NotNil(t, e)
		recs.down.Store(false)
		retryInBothForms(t, g, fp, fn)
		require.Equal(t, int32(1), charges.Load(), fp)
	}
}

// A throttled charge (TOP did nothing) whose store goes away the moment TOP
// answered: the record, which says sent, is deleted once the store is back
// within the call's deadline, past FinishFor, so the retry charges once
// instead of hearing 409 and -1304 for 24 h.
func TestAThrottledChargeIsUnmarkedThroughAnOutage(t *testing.T) {
	recs := &downAfterReserve{Records: idempotency.NewMemory(nil)}
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: time.Minute, FinishFor: 20 * time.Millisecond})
	var attempts, charges atomic.Int32
	fn := func(context.Context) idempotency.Outcome {
		if attempts.Add(1) == 1 {
			recs.down.Store(true)
			time.AfterFunc(300*time.Millisecond, func() { recs.down.Store(false) })
			return idempotency.Outcome{Response: envelope.Response{Status: 429, Body: []byte(`{"errCode":-1201}`)}, Verdict: idempotency.Release}
		}
		charges.Add(1)
		return idempotency.Outcome{Response: ok(`{"errCode":0}`)}
	}
	for _, k := range []string{"K", ""} {
		attempts.Store(0)
		charges.Store(0)
		fp := "fp-" + k
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		resp, _, e := g.Run(ctx, key(k, fp), fn)
		cancel()
		require.Nil(t, e)
		require.Equal(t, 429, resp.Status)
		resp, _, e = g.Run(context.Background(), key(k, fp), fn)
		require.Nil(t, e, "key %q", k)
		require.Equal(t, 200, resp.Status)
		require.Equal(t, int32(1), charges.Load())
	}
}

// releasingRecords lets go of key k (as the keyed call holding it does when
// it finds the request already sent without a key) right before the first
// Read of it.
type releasingRecords struct {
	idempotency.Records
	k, token string
	once     sync.Once
}

func (r *releasingRecords) Read(ctx context.Context, key string) (idempotency.Record, error) {
	if key == r.k {
		r.once.Do(func() { _, _ = r.Records.Release(ctx, r.k, r.token) })
	}
	return r.Records.Read(ctx, key)
}

// Keyed and keyless calls of one request at once, the keyless one sending:
// a keyed call whose key's holder let go between its Reserve and its Read
// answered "the first call with this key just finished without effect"
// while the request's charge was going through (outside tester: 1-5 of 40
// callers each run, ledger 1). It reserves again and hears the truth.
func TestAKeyReleasedUnderARepeatIsReservedAgain(t *testing.T) {
	c := newClock()
	recs := idempotency.NewMemory(c.Now)
	ctx := context.Background()
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: time.Minute, Now: c.Now})

	// The keyless call of the request is sending.
	sending, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, e := g.Run(ctx, key("", "fp"), func(context.Context) idempotency.Outcome {
			close(sending)
			<-release
			return idempotency.Outcome{Response: ok(`{"errCode":0,"id":1}`)}
		})
		require.Nil(t, e)
	}()
	<-sending
	// Another keyed call holds the key for a moment.
	held, err := recs.Reserve(ctx, "t:k", idempotency.Record{Token: "holder", State: idempotency.Reserved, Fingerprint: "fp"}, time.Hour)
	require.NoError(t, err)
	require.True(t, held)

	rg := idempotency.New(idempotency.Options{Records: &releasingRecords{Records: recs, k: "t:k", token: "holder"}, Namespace: "t:", Stuck: time.Minute, Now: c.Now})
	fn, runs := charging()
	_, _, e := rg.Run(ctx, key("k", "fp"), fn)
	require.NotNil(t, e)
	require.Equal(t, envelope.CodeIdempotencyConflict, e.Code)
	require.NotContains(t, e.Reason, "without effect", "the request's charge is going through")
	require.Contains(t, e.Reason, "in progress")
	require.Zero(t, runs.Load())

	close(release)
	<-done
	r, replayed, e := g.Run(ctx, key("k", "fp"), fn)
	require.Nil(t, e)
	require.True(t, replayed)
	require.JSONEq(t, `{"errCode":0,"id":1}`, string(r.Body))
	require.Zero(t, runs.Load())
}

// wipedMidCall loses every record once, while the guarded call runs: a
// Redis back empty, a truncated table.
type wipedMidCall struct {
	*idempotency.Memory
	now func() time.Time
}

func (w *wipedMidCall) wipe() { *w.Memory = *idempotency.NewMemory(w.now) }

// The store lost the records while a charge ran: finishing found nothing,
// logged "repeats will answer -1304" and wrote nothing, and the repeat
// charged again (outside tester: one key, two charges on Redis, PostgreSQL
// and MariaDB). The call's record, and its keyed alias, are written again.
func TestARecordLostWhileTheCallRanIsWrittenAgain(t *testing.T) {
	g, recs, logs := wipedGuard()
	ctx := context.Background()
	var runs atomic.Int32
	charge := func(context.Context) idempotency.Outcome {
		if runs.Add(1) == 1 {
			recs.wipe()
		}
		return idempotency.Outcome{Response: ok(`{"errCode":0,"id":"ECS1"}`), VendorID: "ECS1"}
	}
	first, replayed, e := g.Run(ctx, key("k1", "fp1"), charge)
	require.Nil(t, e)
	require.False(t, replayed)
	require.Contains(t, logs.String(), "written again")
	require.NotContains(t, logs.String(), `"level":"ERROR"`)

	again, replayed, e := g.Run(ctx, key("k1", "fp1"), charge)
	require.Nil(t, e)
	require.True(t, replayed, "the repeat answers from the record")
	require.Equal(t, first.Body, again.Body)
	keyless, replayed, e := g.Run(ctx, idempotency.Call{Fingerprint: "fp1"}, charge)
	require.Nil(t, e)
	require.True(t, replayed, "the same request without its key finds the alias again")
	require.Equal(t, first.Body, keyless.Body)
	require.Equal(t, int32(1), runs.Load(), "charged once")
}

// When a repeat reserved the key after the loss and before the finish (with
// the key, or the same request without it: the keyless slot), the first
// call cannot write over it: it says so at ERROR, naming the risk, where it
// had said "repeats will answer -1304", or only "written again" (outside
// tester).
func TestARecordLostAndTakenMeanwhileIsSaid(t *testing.T) {
	for slot, says := range map[string]string{
		"t:k1":       "another call with this key has reserved it since",
		"t:auto:fp1": "the same request without its key was taken by another call since",
	} {
		t.Run(slot, func(t *testing.T) {
			g, recs, logs := wipedGuard()
			ctx := context.Background()
			charge := func(context.Context) idempotency.Outcome {
				recs.wipe()
				took, err := recs.Reserve(ctx, slot, idempotency.Record{Token: "other", State: idempotency.InProgress, Fingerprint: "fp1"}, time.Hour)
				require.NoError(t, err)
				require.True(t, took)
				return idempotency.Outcome{Response: ok(`{"errCode":0}`), VendorID: "ECS1"}
			}
			_, _, e := g.Run(ctx, key("k1", "fp1"), charge)
			require.Nil(t, e)
			require.Contains(t, logs.String(), `"level":"ERROR"`)
			require.Contains(t, logs.String(), says)
		})
	}
}

// The key went to another request after the loss: the first call could
// write neither its record nor its alias, and the same request sent again
// without its key charged once more (outside tester). Its keyless slot now
// keeps its own answer.
func TestARequestWhoseKeyWentToAnotherIsStillAnsweredWithoutIt(t *testing.T) {
	c := newClock()
	recs := &wipedMidCall{Memory: idempotency.NewMemory(c.Now), now: c.Now}
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: time.Minute, Now: c.Now})
	ctx := context.Background()
	var runs atomic.Int32
	charge := func(context.Context) idempotency.Outcome {
		if runs.Add(1) == 1 {
			recs.wipe()
			took, err := recs.Reserve(ctx, "t:k1", idempotency.Record{Token: "other", State: idempotency.Done, Fingerprint: "fp2"}, time.Hour)
			require.NoError(t, err)
			require.True(t, took)
		}
		return idempotency.Outcome{Response: ok(`{"errCode":0,"id":"ECS11"}`), VendorID: "ECS11"}
	}
	first, _, e := g.Run(ctx, key("k1", "fp1"), charge)
	require.Nil(t, e)
	again, replayed, e := g.Run(ctx, idempotency.Call{Fingerprint: "fp1"}, charge)
	require.Nil(t, e)
	require.True(t, replayed, "the same request without its key replays its own answer")
	require.Equal(t, first.Body, again.Body)
	require.Equal(t, int32(1), runs.Load())
}

// refusingAfterWipe refuses new reservations once it lost its data
// (ErrLost), as the Redis and SQL stores do by default, and still takes the
// record of a call that ran (Rewrite).
type refusingAfterWipe struct {
	*wipedMidCall
	lost atomic.Bool
}

func (r *refusingAfterWipe) Reserve(ctx context.Context, key string, rec idempotency.Record, ttl time.Duration) (bool, error) {
	if r.lost.Load() {
		return false, fmt.Errorf("%w (test store)", idempotency.ErrLost)
	}
	return r.Memory.Reserve(ctx, key, rec, ttl)
}

func (r *refusingAfterWipe) Rewrite(ctx context.Context, key string, rec idempotency.Record, ttl time.Duration) (bool, error) {
	return r.Memory.Reserve(ctx, key, rec, ttl)
}

// A charge running when its store lost its data, and then refused charges
// until reopened: its record and alias are written anyway, its repeats are
// refused with -1601 while the store refuses, and replay its answer once
// the store is reopened. Without the rewrite its answer was unrecorded and,
// after the reopening, its key charged again.
func TestARecordLostWhileTheStoreRefusesIsStillWritten(t *testing.T) {
	c := newClock()
	recs := &refusingAfterWipe{wipedMidCall: &wipedMidCall{Memory: idempotency.NewMemory(c.Now), now: c.Now}}
	var logs bytes.Buffer
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: time.Minute, FinishFor: time.Second, Now: c.Now, Log: slog.New(slog.NewJSONHandler(&logs, nil))})
	ctx := context.Background()
	var runs atomic.Int32
	charge := func(context.Context) idempotency.Outcome {
		if runs.Add(1) == 1 {
			recs.wipe()
			recs.lost.Store(true)
		}
		return idempotency.Outcome{Response: ok(`{"errCode":0,"id":"ECS7"}`), VendorID: "ECS7"}
	}
	first, _, e := g.Run(ctx, key("k1", "fp1"), charge)
	require.Nil(t, e)
	require.False(t, first.Unrecorded)
	require.Contains(t, logs.String(), "written again")

	_, _, e = g.Run(ctx, key("k1", "fp1"), charge)
	require.NotNil(t, e)
	require.Equal(t, envelope.CodeConfig, e.Code)
	require.Contains(t, e.Reason, "lost its data")

	recs.lost.Store(false) // reopened
	again, replayed, e := g.Run(ctx, key("k1", "fp1"), charge)
	require.Nil(t, e)
	require.True(t, replayed)
	require.Equal(t, first.Body, again.Body)
	keyless, replayed, e := g.Run(ctx, idempotency.Call{Fingerprint: "fp1"}, charge)
	require.Nil(t, e)
	require.True(t, replayed)
	require.Equal(t, first.Body, keyless.Body)
	require.Equal(t, int32(1), runs.Load(), "charged once")
}

// A fence read says whether the records an instance relied on are there.
func TestJudgeFence(t *testing.T) {
	now := time.Now()
	lost := idempotency.LostFence(now, "a1", "a1")
	reopened := idempotency.ReopenedFence(now, lost)
	lostAgain := idempotency.LostFence(now, "b2", reopened)
	reopenedAgain := idempotency.ReopenedFence(now, lostAgain)
	for _, c := range []struct {
		prev, cur string
		want      idempotency.FenceVerdict
	}{
		{"", "a1", idempotency.FenceHolds},                                      // a new instance
		{"a1", "a1", idempotency.FenceHolds},                                    // the same
		{"a1", "b2", idempotency.FenceGone},                                     // re-fenced after a loss
		{"a1", "", idempotency.FenceGone},                                       // gone
		{"a1", lost, idempotency.FenceRecordsLoss},                              // another instance found it
		{"", lost, idempotency.FenceRecordsLoss},                                // a new instance after it was found
		{lost, reopened, idempotency.FenceHolds},                                // reopened by a person
		{"a1", reopened, idempotency.FenceHolds},                                // idle across the loss and the reopening
		{reopened, "b2", idempotency.FenceGone},                                 // lost again after the reopening
		{lost, "b2", idempotency.FenceGone},                                     // the loss's row deleted: still a loss
		{reopened, reopenedAgain, idempotency.FenceHolds},                       // reopened again, later
		{"a1", reopenedAgain, idempotency.FenceHolds},                           // idle across both
		{reopenedAgain, reopened, idempotency.FenceGone},                        // a replica that lagged behind the later reopening
		{reopened, idempotency.ReopenedFence(now, lost), idempotency.FenceGone}, // another reopening of the same epoch
	} {
		require.Equal(t, c.want, idempotency.Judge(c.prev, c.cur), "%q -> %q", c.prev, c.cur)
	}
	at, ok := idempotency.FenceLostAt(lost)
	require.True(t, ok)
	require.Equal(t, now.UTC().Format(time.RFC3339), at)
	at, ok = idempotency.FenceReopenedAt(reopenedAgain)
	require.True(t, ok)
	require.Equal(t, now.UTC().Format(time.RFC3339), at)
	// A reopening goes past the loss's epoch even from a clock an hour
	// behind; and a loss found over an older reopening (a replica that
	// lagged) by an instance that knew a later one carries the later epoch,
	// so reopening it goes past what every instance knew.
	behind := now.Add(-time.Hour)
	require.Equal(t, idempotency.FenceHolds, idempotency.Judge(reopened, idempotency.ReopenedFence(behind, lostAgain)))
	overOlder := idempotency.LostFence(now, reopened, reopenedAgain)
	require.Equal(t, idempotency.FenceHolds, idempotency.Judge(reopenedAgain, idempotency.ReopenedFence(behind, overOlder)))
	// The epoch is the reopening's time: a reopening made later than the
	// one an instance knew goes past it, whatever loss it closes (the loss
	// found on a replica that lagged carries only the replica's epoch).
	later := now.Add(time.Minute)
	require.Equal(t, idempotency.FenceHolds, idempotency.Judge(reopenedAgain, idempotency.ReopenedFence(later, idempotency.LostFence(now, reopened, ""))))
	_, lostToo := idempotency.FenceLostAt(reopened)
	require.False(t, lostToo)
	at, _ = idempotency.FenceLostAt("6407239aa7b2f4d825d7b529b23094bf")
	require.Empty(t, at, "no time for a fence that records no loss")
	require.LessOrEqual(t, len(reopenedAgain), 64, "fits the SQL token column")
	_, err := idempotency.CheckAfterLoss("ignore")
	require.ErrorContains(t, err, `CLOUDCALL_IDEMPOTENCY_AFTER_LOSS="ignore": expected refuse (the default) or continue`)
}

// fakeFencer is a fence in memory with a clock of its own.
type fakeFencer struct {
	fence    string
	now      time.Time
	clockErr error
}

func (f *fakeFencer) Fence(context.Context) (string, error)    { return f.fence, nil }
func (f *fakeFencer) Clock(context.Context) (time.Time, error) { return f.now, f.clockErr }
func (f *fakeFencer) SwapFence(_ context.Context, was, fence string) error {
	if f.fence != was {
		return fmt.Errorf("changed")
	}
	f.fence = fence
	return nil
}

// A reopening's epoch is the store's time, whatever the clock of the
// machine running cloudcall records (a year ahead, it carried every later
// epoch forward; behind, it fell below what instances knew).
func TestAReopeningTakesTheStoresTime(t *testing.T) {
	ctx := context.Background()
	store := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	f := &fakeFencer{fence: "a1", now: store}
	local := store.Add(365 * 24 * time.Hour) // a year ahead
	was, err := idempotency.MarkLost(ctx, f, local)
	require.NoError(t, err)
	require.Equal(t, "a1", was)
	_, lost := idempotency.FenceLostAt(f.fence)
	require.True(t, lost)
	_, err = idempotency.Reopen(ctx, f, local, func(err error) { t.Errorf("clock: %v", err) })
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(f.fence, fmt.Sprintf("reopened %d 2026-12-02T03:00:00Z ", store.UnixMilli())), f.fence)

	// A store whose clock cannot be read (a Redis user without TIME) still
	// gets its brake and its reopening, dated locally, with a warning.
	f.clockErr = fmt.Errorf("NOPERM this user has no permissions to run the 'time' command")
	_, err = idempotency.MarkLost(ctx, f, local)
	require.NoError(t, err)
	var warned error
	_, err = idempotency.Reopen(ctx, f, local, func(err error) { warned = err })
	require.NoError(t, err)
	require.ErrorContains(t, warned, "NOPERM")
	require.True(t, strings.HasPrefix(f.fence, fmt.Sprintf("reopened %d ", local.UnixMilli())), f.fence)
}

// Whether a call may still be running is judged, for a restore, by the
// store's time when it is known: an operator's machine minutes ahead
// restored over a running call, and its record kept the operator's id.
func TestRestoreJudgesARunningCallByTheStoresTime(t *testing.T) {
	c := newClock()
	recs := idempotency.NewMemory(c.Now)
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: time.Minute, Now: c.Now})
	ctx := context.Background()
	started := c.Now()
	_, err := recs.Reserve(ctx, "t:k", idempotency.Record{Token: "run", State: idempotency.InProgress, Fingerprint: "fp", Started: started.UnixMilli()}, time.Hour)
	require.NoError(t, err)
	s := idempotency.Settlement{VendorID: "ECS1", Answer: ok(`{"errCode":0}`)}

	c.Add(4 * time.Minute) // the operator's clock
	// The store's clock, two seconds into the call (a person's tool gives
	// the guard the earlier of the two).
	byStore := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: time.Minute,
		Now: func() time.Time { return started.Add(2 * time.Second) }})
	err = byStore.Restore(ctx, "k", s, true)
	require.ErrorIs(t, err, idempotency.ErrRecordExists)
	require.ErrorContains(t, err, "the call started 2s ago and may still be running")
	require.NoError(t, g.Restore(ctx, "k", s, true), "by the operator's clock alone it is past")
	got, err := recs.Read(ctx, "t:k")
	require.NoError(t, err)
	require.Equal(t, idempotency.Done, got.State)
}

// A key restored by hand while its call ran (after a loss) is said as a
// restore, naming both charges: said as "another call may have run again",
// it sent an operator hunting a charge that was not there (an outside
// re-tester).
func TestARecordRestoredWhileTheCallRanIsSaidAsARestore(t *testing.T) {
	g, recs, logs := wipedGuard()
	ctx := context.Background()
	charge := func(context.Context) idempotency.Outcome {
		recs.wipe()
		require.NoError(t, g.Restore(ctx, "k1", idempotency.Settlement{VendorID: "ECSFAKE1", Answer: ok(`{"errCode":0,"id":"ECSFAKE1"}`)}, true))
		return idempotency.Outcome{Response: ok(`{"errCode":0,"id":"ECS22"}`), VendorID: "ECS22"}
	}
	_, _, e := g.Run(ctx, key("k1", "fp1"), charge)
	require.Nil(t, e)
	require.Contains(t, logs.String(), `"level":"ERROR","msg":"idempotency record lost by the store while the call ran, and restored by hand since: repeats answer with the restored charge; if it is not this one, settle the key with this vendorId","idempotencyKey":"k1","vendorId":"ECS22","restored":"ECSFAKE1"`)
	require.NotContains(t, logs.String(), "may have run again")
}

// wipedGuard is a guard on records a test can wipe mid-call, logging to
// the buffer returned.
func wipedGuard() (*idempotency.Guard, *wipedMidCall, *bytes.Buffer) {
	c := newClock()
	recs := &wipedMidCall{Memory: idempotency.NewMemory(c.Now), now: c.Now}
	logs := &bytes.Buffer{}
	g := idempotency.New(idempotency.Options{Records: recs, Namespace: "t:", Stuck: time.Minute, Now: c.Now, Log: slog.New(slog.NewJSONHandler(logs, nil))})
	return g, recs, logs
}
