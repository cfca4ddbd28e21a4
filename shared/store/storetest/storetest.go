// Package storetest is the behaviour every Store implementation must show,
// run against memory here and against Redis in redisstore.
package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/store"
)

// Run checks s. prefix keeps runs apart when the backend is shared.
func Run(t *testing.T, s store.Store, prefix string) {
	ctx := context.Background()
	k := func(n string) string { return prefix + n }

	t.Run("get missing", func(t *testing.T) {
		_, err := s.Get(ctx, k("missing"))
		require.ErrorIs(t, err, store.ErrNotFound)
	})
	t.Run("set get delete", func(t *testing.T) {
		require.NoError(t, s.Set(ctx, k("a"), []byte("1"), time.Minute))
		v, err := s.Get(ctx, k("a"))
		require.NoError(t, err)
		require.Equal(t, "1", string(v))
		require.NoError(t, s.Delete(ctx, k("a")))
		_, err = s.Get(ctx, k("a"))
		require.ErrorIs(t, err, store.ErrNotFound)
	})
	t.Run("ttl must be positive", func(t *testing.T) {
		require.ErrorIs(t, s.Set(ctx, k("z"), []byte("1"), 0), store.ErrBadTTL)
		_, err := s.SetNX(ctx, k("z"), []byte("1"), -time.Second)
		require.ErrorIs(t, err, store.ErrBadTTL)
	})
	t.Run("setnx once", func(t *testing.T) {
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := s.SetNX(ctx, k("nx"), []byte("v"), time.Minute)
				require.NoError(t, err)
				if ok {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		require.Equal(t, int32(1), wins.Load())
	})
	t.Run("compare and swap", func(t *testing.T) {
		require.NoError(t, s.Set(ctx, k("cas"), []byte("old"), time.Minute))
		ok, err := s.CompareAndSwap(ctx, k("cas"), []byte("other"), []byte("new"), time.Minute)
		require.NoError(t, err)
		require.False(t, ok)
		ok, err = s.CompareAndSwap(ctx, k("cas"), []byte("old"), []byte("new"), time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		v, _ := s.Get(ctx, k("cas"))
		require.Equal(t, "new", string(v))
	})
	t.Run("compare and delete", func(t *testing.T) {
		require.NoError(t, s.Set(ctx, k("cad"), []byte("tok1"), time.Minute))
		ok, err := s.CompareAndDelete(ctx, k("cad"), []byte("tok0"))
		require.NoError(t, err)
		require.False(t, ok, "a stale token must not expire the fresh one")
		ok, err = s.CompareAndDelete(ctx, k("cad"), []byte("tok1"))
		require.NoError(t, err)
		require.True(t, ok)
		_, err = s.Get(ctx, k("cad"))
		require.ErrorIs(t, err, store.ErrNotFound)
	})
	t.Run("lock", func(t *testing.T) {
		l, ok, err := store.TryLock(ctx, s, k("lock"), time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		_, ok, err = store.TryLock(ctx, s, k("lock"), time.Minute)
		require.NoError(t, err)
		require.False(t, ok)
		require.NoError(t, l.Unlock(ctx))
		l2, ok, err := store.TryLock(ctx, s, k("lock"), time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, l2.Unlock(ctx))
	})
	t.Run("limiter", func(t *testing.T) {
		granted := 0
		var wait time.Duration
		for i := 0; i < 15; i++ {
			w, err := s.Reserve(ctx, k("rl"), 10, time.Second)
			require.NoError(t, err)
			if w == 0 {
				granted++
			} else {
				wait = w
			}
		}
		require.Equal(t, 10, granted)
		require.Greater(t, wait, time.Duration(0))
		require.LessOrEqual(t, wait, time.Second)
	})
}
