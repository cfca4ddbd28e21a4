package idempotency_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/idempotency"
)

type readCounting struct {
	idempotency.Records
	reads, reserves atomic.Int32
	down            atomic.Bool
}

func (r *readCounting) Read(ctx context.Context, k string) (idempotency.Record, error) {
	r.reads.Add(1)
	if r.down.Load() {
		return idempotency.Record{}, fmt.Errorf("%w: connection refused", idempotency.ErrUnavailable)
	}
	return r.Records.Read(ctx, k)
}

func (r *readCounting) Reserve(ctx context.Context, k string, rec idempotency.Record, ttl time.Duration) (bool, error) {
	r.reserves.Add(1)
	if r.down.Load() {
		return false, fmt.Errorf("%w: connection refused", idempotency.ErrUnavailable)
	}
	return r.Records.Reserve(ctx, k, rec, ttl)
}

// After a fingerprint change, a call looks under the old fingerprint for
// two retentions from the first call that used the new one (the marker in
// the store, which every instance counts from, a late one too), and finds
// records an old release still running wrote meanwhile. Afterwards it
// reads nothing more than before the change.
func TestAMigrationLooksUnderTheOldFingerprintForTwoRetentions(t *testing.T) {
	c := newClock()
	recs := &readCounting{Records: idempotency.NewMemory(c.Now)}
	opts := idempotency.Options{Records: recs, Namespace: "m:", Now: c.Now}
	first := idempotency.New(opts).Migration("v2")
	ctx := context.Background()
	old := func() string { return "old-fp" }
	oldRelease := idempotency.New(opts)
	charge, runs := charging()

	fp, e := first.Fingerprint(ctx, "", "new-fp", old)
	require.Nil(t, e)
	require.Equal(t, "new-fp", fp, "nothing under the old one")

	c.Add(10 * time.Hour)
	late := idempotency.New(opts).Migration("v2") // an instance started later
	late.Warm(ctx)
	c.Add(20 * time.Hour) // t0+30h: an old release still running charges
	_, _, e = oldRelease.Run(ctx, key("", "old-fp"), charge)
	require.Nil(t, e)
	_, _, e = oldRelease.Run(ctx, key("k-old", "old-fp-2"), charge)
	require.Nil(t, e)
	c.Add(17 * time.Hour) // t0+47h
	for _, m := range []*idempotency.Migration{first, late} {
		fp, e = m.Fingerprint(ctx, "", "new-fp", old)
		require.Nil(t, e)
		require.Equal(t, "old-fp", fp, "the old release's keyless call")
		fp, e = m.Fingerprint(ctx, "k-old", "new-fp-2", func() string { return "old-fp-2" })
		require.Nil(t, e)
		require.Equal(t, "old-fp-2", fp, "the old release's keyed call")
		fp, e = m.Fingerprint(ctx, "k-new", "new-fp-3", func() string { return "old-fp-3" })
		require.Nil(t, e)
		require.Equal(t, "new-fp-3", fp)
	}
	require.Equal(t, int32(2), runs.Load())

	c.Add(2 * time.Hour) // t0+49h: the window has closed
	for _, m := range []*idempotency.Migration{first, late} {
		// The first call after it reads the marker once more.
		fp, e = m.Fingerprint(ctx, "k-old", "new-fp-2", func() string { return "old-fp-2" })
		require.Nil(t, e)
		require.Equal(t, "new-fp-2", fp)
	}
	before := recs.reads.Load() + recs.reserves.Load()
	for i := 0; i < 10; i++ {
		c.Add(5 * time.Second)
		for _, m := range []*idempotency.Migration{first, late} {
			fp, e = m.Fingerprint(ctx, "k-old", "new-fp-2", func() string { return "old-fp-2" })
			require.Nil(t, e)
			require.Equal(t, "new-fp-2", fp)
		}
	}
	require.Equal(t, before, recs.reads.Load()+recs.reserves.Load(), "no store access after the window, the marker's re-read once a minute aside")
	// A key naming the old keyless slot is still that request's.
	fp, e = first.Fingerprint(ctx, idempotency.KeylessKey(hex64('a')), "new-fp", func() string { return hex64('a') })
	require.Nil(t, e)
	require.Equal(t, hex64('a'), fp)
}

func hex64(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

// A warm-up writes no record: the first call writes the marker. A store
// that cannot be read answers -1501, as a reservation would, and charges
// nothing; with the marker unknown, the window stays open.
func TestAMigrationWarmsWithoutWritingAndFailsClosed(t *testing.T) {
	c := newClock()
	recs := &readCounting{Records: idempotency.NewMemory(c.Now)}
	m := idempotency.New(idempotency.Options{Records: recs, Namespace: "w:", Now: c.Now}).Migration("v2")
	ctx := context.Background()
	m.Warm(ctx)
	require.Equal(t, int32(0), recs.reserves.Load())
	recs.down.Store(true)
	_, e := m.Fingerprint(ctx, "k", "new", func() string { return "old" })
	require.NotNil(t, e)
	require.Equal(t, envelope.CodeStoreUnavailable, e.Code)
}

// Forgetting the marker (cloudcall records migration --restart, after a
// rollback) reaches an instance whose window had closed within a minute:
// the next call writes it anew, and records the old release wrote
// meanwhile are found again.
func TestAForgottenMigrationOpensAgainOnRunningInstances(t *testing.T) {
	c := newClock()
	recs := idempotency.NewMemory(c.Now)
	opts := idempotency.Options{Records: recs, Namespace: "f:", Now: c.Now}
	m := idempotency.New(opts).Migration("v2")
	ctx := context.Background()
	old := func() string { return "old-fp" }
	fp, _ := m.Fingerprint(ctx, "", "new-fp", old)
	require.Equal(t, "new-fp", fp)
	c.Add(72 * time.Hour) // a rollback; the old release charges
	charge, _ := charging()
	_, _, e := idempotency.New(opts).Run(ctx, key("", "old-fp"), charge)
	require.Nil(t, e)
	fp, _ = m.Fingerprint(ctx, "", "new-fp", old)
	require.Equal(t, "new-fp", fp, "closed: not looked for")

	forgot, err := idempotency.New(opts).Migration("v2").Forget(ctx)
	require.NoError(t, err)
	require.True(t, forgot)
	forgot, err = idempotency.New(opts).Migration("v2").Forget(ctx)
	require.NoError(t, err)
	require.False(t, forgot, "nothing left to forget")
	fp, _ = m.Fingerprint(ctx, "", "new-fp", old)
	require.Equal(t, "new-fp", fp, "within the minute, the instance keeps what it read")
	c.Add(61 * time.Second)
	fp, _ = m.Fingerprint(ctx, "", "new-fp", old)
	require.Equal(t, "old-fp", fp, "a minute later it reads the marker again, and writes it anew")
	since, ok, err := m.Since(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, c.Now().UnixMilli(), since.UnixMilli())

	// An instance whose window is open writes a forgotten marker anew
	// within a minute too, so the store says what the instances do.
	forgot, err = idempotency.New(opts).Migration("v2").Forget(ctx)
	require.NoError(t, err)
	require.True(t, forgot)
	c.Add(61 * time.Second)
	fp, _ = m.Fingerprint(ctx, "", "new-fp", old)
	require.Equal(t, "old-fp", fp)
	since, ok, err = m.Since(ctx)
	require.NoError(t, err)
	require.True(t, ok, "the marker is back")
	require.Equal(t, c.Now().UnixMilli(), since.UnixMilli())
}

// Many calls of one instance ask at once before the marker is known: they
// agree, and one marker is written (run with -race).
func TestAMigrationAskedConcurrently(t *testing.T) {
	c := newClock()
	recs := &readCounting{Records: idempotency.NewMemory(c.Now)}
	m := idempotency.New(idempotency.Options{Records: recs, Namespace: "c:", Now: c.Now}).Migration("v2")
	ctx := context.Background()
	charge, _ := charging()
	_, _, e := idempotency.New(idempotency.Options{Records: recs, Namespace: "c:", Now: c.Now}).Run(ctx, key("", "old-fp"), charge)
	require.Nil(t, e)
	var wg sync.WaitGroup
	got := make([]string, 50)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = m.Fingerprint(ctx, "", "new-fp", func() string { return "old-fp" })
		}()
	}
	wg.Wait()
	for _, fp := range got {
		require.Equal(t, "old-fp", fp)
	}
	since, ok, err := m.Since(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, c.Now().UnixMilli(), since.UnixMilli())
}

// A cold instance whose first call comes before its warm-up has read the
// marker reads it itself: one round trip, and after the window no lookup.
// Only the very first call on a store writes it.
func TestAMarkerAlreadyThereIsReadOnce(t *testing.T) {
	c := newClock()
	recs := &readCounting{Records: idempotency.NewMemory(c.Now)}
	opts := idempotency.Options{Records: recs, Namespace: "r:", Now: c.Now}
	ctx := context.Background()
	old := func() string { return "old-fp" }
	_, e := idempotency.New(opts).Migration("v2").Fingerprint(ctx, "", "fp", old)
	require.Nil(t, e)
	require.Equal(t, int32(1), recs.reserves.Load(), "the first call on the store wrote the marker")

	c.Add(72 * time.Hour)
	reads, reserves := recs.reads.Load(), recs.reserves.Load()
	fp, e := idempotency.New(opts).Migration("v2").Fingerprint(ctx, "k", "fp", old) // not warmed
	require.Nil(t, e)
	require.Equal(t, "fp", fp)
	require.Equal(t, reads+1, recs.reads.Load(), "one read of the marker; the window is closed, so nothing else")
	require.Equal(t, reserves, recs.reserves.Load())
}
