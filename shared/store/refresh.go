package store

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Flight runs one refresh at a time in this process: concurrent callers wait
// for the running one and share its result. The zero value is ready to use.
type Flight[T any] struct {
	mu  sync.Mutex
	cur *flightCall[T]
}

type flightCall[T any] struct {
	done chan struct{}
	val  T
	err  error
	// ended: the leader's own context had ended when fn returned, so its
	// error may be its deadline's, not the work's.
	ended bool
}

// Do runs fn, or waits for the fn already running. A waiter whose context
// outlives the leader's, when the leader failed with its context ended,
// runs fn again itself: it was told the leader's deadline, with time of its
// own left (an outside tester's call failed at 4 s with 6 s left).
func (f *Flight[T]) Do(ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	for {
		f.mu.Lock()
		c := f.cur
		if c == nil {
			c = &flightCall[T]{done: make(chan struct{})}
			f.cur = c
			f.mu.Unlock()
			c.val, c.err = fn(ctx)
			c.ended = ctx.Err() != nil
			f.mu.Lock()
			f.cur = nil
			f.mu.Unlock()
			close(c.done)
			return c.val, c.err
		}
		f.mu.Unlock()
		select {
		case <-c.done:
			if c.err != nil && c.ended && ctx.Err() == nil {
				continue
			}
			return c.val, c.err
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
}

// Refresher makes one instance of many refresh a shared value while the
// others wait and read what it stored.
type Refresher[T any] struct {
	KV      KV
	LockKey string
	Lease   time.Duration // how long a dead holder blocks the others
	// Fresh reads the shared value and reports whether it is usable.
	Fresh func(context.Context) (T, bool)
	// Make produces and stores a new value; it runs under the lease.
	Make func(context.Context) (T, error)
	// NoLock decides what to do when the lease cannot be taken at all
	// (the store is down): make the value alone, or refuse.
	NoLock func(context.Context, error) (T, error)
}

// Get returns a usable value: the stored one, or one this instance makes
// under the lease, or the one another instance makes while this one waits.
func (r Refresher[T]) Get(ctx context.Context) (T, error) {
	for attempt := 0; ; attempt++ {
		if v, ok := r.Fresh(ctx); ok {
			return v, nil
		}
		lock, held, err := TryLock(ctx, r.KV, r.LockKey, r.Lease)
		if err != nil {
			return r.NoLock(ctx, err)
		}
		if held {
			// Re-read under the lease: the previous holder may have stored a
			// fresh value between our first read and taking the lease.
			if v, ok := r.Fresh(ctx); ok {
				_ = lock.Unlock(context.WithoutCancel(ctx))
				return v, nil
			}
			v, err := r.Make(ctx)
			_ = lock.Unlock(context.WithoutCancel(ctx))
			return v, err
		}
		wait := time.Duration(20+10*min(attempt, 8)) * time.Millisecond
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			var zero T
			return zero, fmt.Errorf("waiting for another instance's refresh: %w", context.DeadlineExceeded)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			var zero T
			return zero, fmt.Errorf("waiting for another instance's refresh: %w", ctx.Err())
		case <-t.C:
		}
	}
}
