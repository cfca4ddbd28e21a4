package idempotency_test

import (
	"context"
	"net/http"
	"strconv"
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
