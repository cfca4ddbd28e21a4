package store_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/store"
)

// flaky is a primary that can be switched off.
type flaky struct {
	*store.Memory
	down bool
	hits int
}

func (f *flaky) err() error {
	f.hits++
	if f.down {
		return fmt.Errorf("%w: connection refused", store.ErrUnavailable)
	}
	return nil
}

func (f *flaky) Get(ctx context.Context, k string) ([]byte, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Memory.Get(ctx, k)
}

func (f *flaky) Set(ctx context.Context, k string, v []byte, ttl time.Duration) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.Memory.Set(ctx, k, v, ttl)
}

func (f *flaky) SetNX(ctx context.Context, k string, v []byte, ttl time.Duration) (bool, error) {
	if err := f.err(); err != nil {
		return false, err
	}
	return f.Memory.SetNX(ctx, k, v, ttl)
}

func TestFallbackDegradesLogsOnceAndRecovers(t *testing.T) {
	now := time.Unix(0, 0)
	clock := func() time.Time { return now }
	primary := &flaky{Memory: store.NewMemory(store.MemoryOptions{Now: clock})}
	var logs bytes.Buffer
	f := store.NewFallback(primary, store.FallbackOptions{Log: slog.New(slog.NewTextHandler(&logs, nil)), ProbeEvery: time.Second, Now: clock})
	ctx := context.Background()

	require.NoError(t, f.Set(ctx, "tok", []byte("shared"), time.Hour))
	primary.down = true
	for i := 0; i < 50; i++ {
		_, err := f.Get(ctx, "tok")
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	require.Equal(t, 2, primary.hits, "while down, the primary is probed once per interval, not per call")
	require.Equal(t, 1, strings.Count(logs.String(), "shared store unavailable"))

	ok, err := store.Durable(f).SetNX(ctx, "idem", []byte("x"), time.Hour)
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.False(t, ok)

	primary.down = false
	now = now.Add(time.Second)
	v, err := f.Get(ctx, "tok")
	require.NoError(t, err)
	require.Equal(t, "shared", string(v))
	require.Equal(t, 1, strings.Count(logs.String(), "shared store is back"))
	require.False(t, f.Degraded())
}

// slowPrimary answers only when the caller's context ends, with the error a
// Redis client gives then.
type slowPrimary struct{ *store.Memory }

func (s slowPrimary) Get(ctx context.Context, _ string) ([]byte, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("%w: %w", store.ErrUnavailable, ctx.Err())
}

// A caller out of time is not an outage: a quota-alert run past its
// deadline made the store log "unavailable" and serve the instance's empty
// memory for a second, and a run in that second announced against nothing.
func TestACallerOutOfTimeIsNotAnOutage(t *testing.T) {
	var logs bytes.Buffer
	f := store.NewFallback(slowPrimary{store.NewMemory(store.MemoryOptions{})}, store.FallbackOptions{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := f.Get(ctx, "k")
	require.ErrorIs(t, err, context.DeadlineExceeded, "the caller hears its own deadline, not a memory miss")
	require.False(t, f.Degraded())
	require.NotContains(t, logs.String(), "unavailable")
}
