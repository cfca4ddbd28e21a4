package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/store"
)

func TestFlightAndRefresherMakeOnce(t *testing.T) {
	kv := store.NewMemory(store.MemoryOptions{})
	var made atomic.Int32
	// Two "instances", each with its own Flight, sharing one store.
	refresher := func() func(context.Context) (string, error) {
		var f store.Flight[string]
		r := store.Refresher[string]{KV: kv, LockKey: "lock", Lease: time.Second,
			Fresh: func(ctx context.Context) (string, bool) {
				v, err := kv.Get(ctx, "value")
				return string(v), err == nil
			},
			Make: func(ctx context.Context) (string, error) {
				made.Add(1)
				time.Sleep(20 * time.Millisecond) // a slow vendor
				return "v1", kv.Set(ctx, "value", []byte("v1"), time.Minute)
			},
			NoLock: func(context.Context, error) (string, error) {
				t.Fatal("the lock is always available here")
				return "", nil
			},
		}
		return func(ctx context.Context) (string, error) { return f.Do(ctx, r.Get) }
	}
	a, b := refresher(), refresher()
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			get := a
			if i%2 == 1 {
				get = b
			}
			v, err := get(context.Background())
			require.NoError(t, err)
			require.Equal(t, "v1", v)
		}()
	}
	wg.Wait()
	require.Equal(t, int32(1), made.Load(), "one value made for 40 callers on two instances")
}
