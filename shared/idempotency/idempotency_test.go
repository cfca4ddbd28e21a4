package idempotency_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/store"
)

func ok(body string) envelope.Response {
	return envelope.Response{Status: http.StatusOK, Body: []byte(body)}
}

func TestReplayConflictReleaseAndStuck(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	kv := store.NewMemory(store.MemoryOptions{Now: func() time.Time { return now }})
	g := idempotency.New(idempotency.Options{KV: kv, Namespace: "t:", Stuck: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	var runs atomic.Int32
	charge := func(resp envelope.Response, v idempotency.Verdict) func(context.Context) (envelope.Response, idempotency.Verdict) {
		return func(context.Context) (envelope.Response, idempotency.Verdict) { runs.Add(1); return resp, v }
	}

	// Kept: the repeat replays the first answer byte for byte.
	r, replayed, e := g.Run(ctx, "k1", "fp1", charge(ok(`{"errCode":0,"id":1}`), idempotency.Keep))
	require.Nil(t, e)
	require.False(t, replayed)
	r2, replayed, e := g.Run(ctx, "k1", "fp1", charge(ok(`{"errCode":0,"id":2}`), idempotency.Keep))
	require.Nil(t, e)
	require.True(t, replayed)
	require.Equal(t, r.Body, r2.Body)
	require.Equal(t, int32(1), runs.Load())

	// Same key, other request: conflict, nothing runs.
	_, _, e = g.Run(ctx, "k1", "fp-other", charge(ok(`{}`), idempotency.Keep))
	require.Equal(t, envelope.CodeIdempotencyConflict, e.Code)
	require.Equal(t, int32(1), runs.Load())

	// Released: the vendor certainly did nothing, so the key runs again.
	_, _, e = g.Run(ctx, "k2", "fp2", charge(envelope.Response{Status: 429, Body: []byte(`{"errCode":-1201}`)}, idempotency.Release))
	require.Nil(t, e)
	_, replayed, e = g.Run(ctx, "k2", "fp2", charge(ok(`{"errCode":0}`), idempotency.Keep))
	require.Nil(t, e)
	require.False(t, replayed)
	require.Equal(t, int32(3), runs.Load())

	// A first call that died mid-way: in progress → conflict while it could
	// still be running, then "outcome unknown", never a second run.
	in := []byte(`{"state":"in_progress","fingerprint":"fp3","started":` + strconv.FormatInt(now.UnixMilli(), 10) + `}`)
	require.NoError(t, kv.Set(ctx, "t:k3", in, 24*time.Hour))
	_, _, e = g.Run(ctx, "k3", "fp3", charge(ok(`{}`), idempotency.Keep))
	require.Equal(t, envelope.CodeIdempotencyConflict, e.Code)
	now = now.Add(2 * time.Minute)
	_, _, e = g.Run(ctx, "k3", "fp3", charge(ok(`{}`), idempotency.Keep))
	require.Equal(t, envelope.CodeOutcomeUnknown, e.Code)
	require.Contains(t, e.Reason, "reconcile before retrying")
	require.Equal(t, int32(3), runs.Load(), "the stuck key never runs again")

	// The record expires after the retention window.
	now = now.Add(25 * time.Hour)
	_, replayed, e = g.Run(ctx, "k1", "fp1", charge(ok(`{"errCode":0,"id":3}`), idempotency.Keep))
	require.Nil(t, e)
	require.False(t, replayed)
}

// Twenty identical calls at once: one runs, each other one replays its answer
// or hears that it is in progress.
func TestConcurrentRepeats(t *testing.T) {
	g := idempotency.New(idempotency.Options{KV: store.NewMemory(store.MemoryOptions{}), Namespace: "c:"})
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
			r, rep, e := g.Run(context.Background(), "same", "fp", func(context.Context) (envelope.Response, idempotency.Verdict) {
				runs.Add(1)
				<-release // hold the record in progress while the others arrive
				return ok(`{"errCode":0,"id":"first"}`), idempotency.Keep
			})
			results <- result{r, rep, e}
		}()
	}
	started.Wait()
	// The runner is blocked until release; the 19 others finish first.
	conflicts := 0
	for i := 0; i < 19; i++ {
		r := <-results
		require.NotNil(t, r.e)
		require.Equal(t, envelope.CodeIdempotencyConflict, r.e.Code)
		require.Contains(t, r.e.Reason, "in progress")
		conflicts++
	}
	close(release)
	first := <-results
	require.Nil(t, first.e)
	require.False(t, first.replayed)
	require.Equal(t, 19, conflicts)
	require.Equal(t, int32(1), runs.Load())
	// After it finished, a repeat replays it.
	r, rep, e := g.Run(context.Background(), "same", "fp", func(context.Context) (envelope.Response, idempotency.Verdict) {
		runs.Add(1)
		return ok(`{}`), idempotency.Keep
	})
	require.Nil(t, e)
	require.True(t, rep)
	require.Equal(t, `{"errCode":0,"id":"first"}`, string(r.Body))
	require.Equal(t, int32(1), runs.Load())
}

// failing fails chosen operations the way a store that lost Redis does.
type failing struct {
	store.KV
	setNX, get, cas bool
}

func (f *failing) SetNX(ctx context.Context, k string, v []byte, ttl time.Duration) (bool, error) {
	if f.setNX {
		return false, fmt.Errorf("redis: %w", store.ErrUnavailable)
	}
	return f.KV.SetNX(ctx, k, v, ttl)
}

func (f *failing) Get(ctx context.Context, k string) ([]byte, error) {
	if f.get {
		return nil, fmt.Errorf("redis: %w", store.ErrUnavailable)
	}
	return f.KV.Get(ctx, k)
}

func (f *failing) CompareAndSwap(ctx context.Context, k string, old, v []byte, ttl time.Duration) (bool, error) {
	if f.cas {
		return false, fmt.Errorf("redis: %w", store.ErrUnavailable)
	}
	return f.KV.CompareAndSwap(ctx, k, old, v, ttl)
}

func TestStoreFailures(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	mem := store.NewMemory(store.MemoryOptions{Now: func() time.Time { return now }})
	kv := &failing{KV: mem}
	g := idempotency.New(idempotency.Options{KV: kv, Namespace: "f:", Stuck: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	var runs atomic.Int32
	fn := func(context.Context) (envelope.Response, idempotency.Verdict) {
		runs.Add(1)
		return ok(`{"errCode":0}`), idempotency.Keep
	}

	// The record cannot be taken: nothing runs, the caller may retry.
	kv.setNX = true
	_, _, e := g.Run(ctx, "k", "fp", fn)
	require.Equal(t, envelope.CodeStoreUnavailable, e.Code)
	require.ErrorIs(t, e, store.ErrUnavailable)
	require.Equal(t, int32(0), runs.Load())
	kv.setNX = false

	// The call ran but its answer could not be recorded: the record stays in
	// progress, so repeats hear "in progress", then "outcome unknown", and
	// nothing runs twice.
	kv.cas = true
	_, _, e = g.Run(ctx, "k", "fp", fn)
	require.Nil(t, e)
	require.Equal(t, int32(1), runs.Load())
	kv.cas = false
	_, _, e = g.Run(ctx, "k", "fp", fn)
	require.Equal(t, envelope.CodeIdempotencyConflict, e.Code)
	now = now.Add(2 * time.Minute)
	_, _, e = g.Run(ctx, "k", "fp", fn)
	require.Equal(t, envelope.CodeOutcomeUnknown, e.Code)
	require.Equal(t, int32(1), runs.Load())

	// The record exists but cannot be read: refuse rather than guess.
	kv.get = true
	_, _, e = g.Run(ctx, "k", "fp", fn)
	require.Equal(t, envelope.CodeStoreUnavailable, e.Code)
	require.Equal(t, int32(1), runs.Load())
}

// The answer is recorded even when the invocation's context ends as the call
// returns (the platform deadline hit right after TOP answered).
func TestRecordsAfterTheContextEnds(t *testing.T) {
	g := idempotency.New(idempotency.Options{KV: store.NewMemory(store.MemoryOptions{}), Namespace: "x:"})
	ctx, cancel := context.WithCancel(context.Background())
	_, _, e := g.Run(ctx, "k", "fp", func(context.Context) (envelope.Response, idempotency.Verdict) {
		cancel()
		return ok(`{"errCode":0,"id":1}`), idempotency.Keep
	})
	require.Nil(t, e)
	r, rep, e := g.Run(context.Background(), "k", "fp", func(context.Context) (envelope.Response, idempotency.Verdict) {
		return ok(`{}`), idempotency.Keep
	})
	require.Nil(t, e)
	require.True(t, rep)
	require.Equal(t, `{"errCode":0,"id":1}`, string(r.Body))
}

func TestFingerprint(t *testing.T) {
	// SHA-256 of the bytes, hex: a fixed value so records survive upgrades.
	require.Equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", idempotency.Fingerprint([]byte("abc")))
}
