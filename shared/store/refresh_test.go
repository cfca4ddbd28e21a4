package store_test

import (
	"context"
	"errors"
	"fmt"
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

// A waiter is not told the leader's deadline: when the leader failed with
// its context ended and the waiter still has time, the waiter runs the
// work itself. Any other failure of the leader is the waiters' too.
func TestFlightWaitersOutliveTheLeadersDeadline(t *testing.T) {
	errVendor := errors.New("vendor refused")
	cases := []struct {
		name      string
		leaderErr func(ctx context.Context) error // what the leader's run returns
		leaderFor time.Duration                   // the leader's deadline
		runs      int32
		wantErr   error
	}{
		{"the leader's deadline", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, 50 * time.Millisecond, 2, nil},
		{"the vendor's refusal", func(context.Context) error { return errVendor }, 5 * time.Second, 1, errVendor},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var f store.Flight[string]
			var runs atomic.Int32
			started := make(chan struct{})
			release := make(chan struct{})
			fn := func(ctx context.Context) (string, error) {
				if runs.Add(1) == 1 {
					close(started)
					<-release
					return "", c.leaderErr(ctx)
				}
				return "ok", nil
			}
			leaderCtx, cancel := context.WithTimeout(context.Background(), c.leaderFor)
			defer cancel()
			go func() { _, _ = f.Do(leaderCtx, fn) }()
			<-started
			got := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				v, err := f.Do(ctx, fn)
				if err == nil && v != "ok" {
					err = fmt.Errorf("value %q", v)
				}
				got <- err
			}()
			time.Sleep(100 * time.Millisecond) // the waiter has joined
			close(release)
			err := <-got
			if c.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, c.wantErr)
			}
			require.Equal(t, c.runs, runs.Load())
		})
	}
}
