package store

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Fallback serves from a shared primary (Redis) and, while the primary is
// unreachable, from a per-instance memory store: token caches and rate limits
// keep working per instance instead of failing every call or fetching a token
// per call. It logs the outage once and the recovery once, and probes the
// primary again every ProbeEvery without anyone restarting it.
//
// Writes that must never be lost — idempotency records of a money-moving
// call — use Durable(f), which never degrades.
type Fallback struct {
	primary    Store
	mem        *Memory
	log        *slog.Logger
	probeEvery time.Duration
	now        func() time.Time

	mu        sync.Mutex
	down      bool
	nextProbe time.Time
}

// FallbackOptions configures NewFallback.
type FallbackOptions struct {
	Log        *slog.Logger
	ProbeEvery time.Duration // default 1s
	Now        func() time.Time
}

// NewFallback wraps primary.
func NewFallback(primary Store, opts FallbackOptions) *Fallback {
	if opts.ProbeEvery <= 0 {
		opts.ProbeEvery = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Fallback{primary: primary, mem: NewMemory(MemoryOptions{Now: opts.Now}), log: opts.Log, probeEvery: opts.ProbeEvery, now: opts.Now}
}

// Durable returns the store behind any fallback: a write there either reaches
// shared state or fails with ErrUnavailable.
func Durable(s KV) KV {
	if f, ok := s.(*Fallback); ok {
		return f.primary
	}
	return s
}

// Degraded reports whether calls are currently served from memory.
func (f *Fallback) Degraded() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down
}

func (f *Fallback) Name() string { return f.primary.Name() + "+memory-fallback" }
func (f *Fallback) Close() error { return f.primary.Close() }

// usePrimary says whether to try the primary now.
func (f *Fallback) usePrimary() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.down || !f.now().Before(f.nextProbe)
}

// settle records the outcome of a primary call and says whether to fall back.
// A call whose own context ended says nothing of the store (a caller out of
// time, not Redis): it is neither an outage nor answered from memory.
func (f *Fallback) settle(ctx context.Context, err error) (fallBack bool) {
	if err != nil && ctx.Err() != nil {
		return false
	}
	unavailable := errors.Is(err, ErrUnavailable)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case unavailable && !f.down:
		f.down = true
		f.nextProbe = f.now().Add(f.probeEvery)
		f.log.Warn("shared store unavailable: serving from per-instance memory until it is back", "store", f.primary.Name(), "error", err.Error())
	case unavailable:
		f.nextProbe = f.now().Add(f.probeEvery)
	case f.down:
		f.down = false
		f.log.Info("shared store is back", "store", f.primary.Name())
	}
	return unavailable
}

func (f *Fallback) Get(ctx context.Context, key string) ([]byte, error) {
	if f.usePrimary() {
		v, err := f.primary.Get(ctx, key)
		if !f.settle(ctx, err) {
			return v, err
		}
	}
	return f.mem.Get(ctx, key)
}

func (f *Fallback) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if f.usePrimary() {
		err := f.primary.Set(ctx, key, value, ttl)
		if !f.settle(ctx, err) {
			return err
		}
	}
	return f.mem.Set(ctx, key, value, ttl)
}

func (f *Fallback) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if f.usePrimary() {
		ok, err := f.primary.SetNX(ctx, key, value, ttl)
		if !f.settle(ctx, err) {
			return ok, err
		}
	}
	return f.mem.SetNX(ctx, key, value, ttl)
}

func (f *Fallback) CompareAndSwap(ctx context.Context, key string, old, value []byte, ttl time.Duration) (bool, error) {
	if f.usePrimary() {
		ok, err := f.primary.CompareAndSwap(ctx, key, old, value, ttl)
		if !f.settle(ctx, err) {
			return ok, err
		}
	}
	return f.mem.CompareAndSwap(ctx, key, old, value, ttl)
}

func (f *Fallback) CompareAndDelete(ctx context.Context, key string, old []byte) (bool, error) {
	if f.usePrimary() {
		ok, err := f.primary.CompareAndDelete(ctx, key, old)
		if !f.settle(ctx, err) {
			return ok, err
		}
	}
	return f.mem.CompareAndDelete(ctx, key, old)
}

func (f *Fallback) Delete(ctx context.Context, key string) error {
	if f.usePrimary() {
		err := f.primary.Delete(ctx, key)
		if !f.settle(ctx, err) {
			return err
		}
	}
	return f.mem.Delete(ctx, key)
}

func (f *Fallback) Reserve(ctx context.Context, key string, limit int, window time.Duration) (time.Duration, error) {
	if f.usePrimary() {
		w, err := f.primary.Reserve(ctx, key, limit, window)
		if !f.settle(ctx, err) {
			return w, err
		}
	}
	return f.mem.Reserve(ctx, key, limit, window)
}
