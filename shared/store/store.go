// Package store is the bundle's shared state behind small interfaces: token
// caches, refresh locks, rate limiters, caller nonces and alert state (the
// charge's idempotency records live in shared/idempotency's durable stores).
// Memory (this package) is the embedded default for one instance; Redis
// (package redisstore) serves many instances of many functions.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotFound: the key is absent or expired.
	ErrNotFound = errors.New("store: not found")
	// ErrUnavailable wraps every failure to reach the backing service, so
	// callers can branch on it (degrade a read, refuse a money-moving write).
	ErrUnavailable = errors.New("store: unavailable")
	// ErrBadTTL: every value expires; a zero or negative TTL is a bug upstream
	// (e.g. expires_in minus a margin that ate all of it).
	ErrBadTTL = errors.New("store: ttl must be positive")
)

// KV is a key-value store whose writes all expire and whose conditional
// writes are atomic across every instance sharing it.
type KV interface {
	// Get returns ErrNotFound when the key is absent.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set writes unconditionally.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// SetNX writes only if the key is absent; it reports whether it wrote.
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// CompareAndSwap replaces the value only if it currently equals old.
	CompareAndSwap(ctx context.Context, key string, old, value []byte, ttl time.Duration) (bool, error)
	// CompareAndDelete deletes only if the value currently equals old
	// (compare-and-expire of a stale token; releasing a lock one holds).
	CompareAndDelete(ctx context.Context, key string, old []byte) (bool, error)
	// Delete removes the key; absent is not an error.
	Delete(ctx context.Context, key string) error
}

// BatchSetter is a KV that writes many SetNX in one round trip (a Redis
// pipeline): a write-back of thousands of keys after a store loss takes
// milliseconds, where one round trip per key took seconds and left replays
// open meanwhile. ok[i] says whether keys[i] was written.
type BatchSetter interface {
	SetNXMany(ctx context.Context, keys []string, value []byte, ttls []time.Duration) (ok []bool, err error)
}

// Limiter spreads calls under a vendor's rate limit across every instance.
type Limiter interface {
	// Reserve takes one of limit slots in the sliding window ending now. When
	// none is free it takes nothing and returns how long until one frees up.
	Reserve(ctx context.Context, key string, limit int, window time.Duration) (wait time.Duration, err error)
}

// Store is everything a function needs from shared state.
type Store interface {
	KV
	Limiter
	// Name says which backend this is ("memory", "redis"), for logs.
	Name() string
	Close() error
}

// Wait takes a slot from l, sleeping as told, until ctx ends. It returns the
// context's error when the deadline would pass before a slot frees up, so a
// caller never sleeps past its deadline for nothing.
func Wait(ctx context.Context, l Limiter, key string, limit int, window time.Duration) error {
	for {
		wait, err := l.Reserve(ctx, key, limit, window)
		if err != nil {
			return err
		}
		if wait <= 0 {
			return nil
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return fmt.Errorf("rate limit %d per %s: next slot in %s is past the deadline: %w", limit, window, wait, context.DeadlineExceeded)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Lock is a held lease on a key; release it with Unlock.
type Lock struct {
	kv    KV
	key   string
	token []byte
}

// TryLock takes the lease key for ttl if nobody holds it. The TTL frees the
// lock when its holder dies mid-way.
func TryLock(ctx context.Context, kv KV, key string, ttl time.Duration) (*Lock, bool, error) {
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	token := []byte(hex.EncodeToString(tok))
	ok, err := kv.SetNX(ctx, key, token, ttl)
	if err != nil || !ok {
		return nil, false, err
	}
	return &Lock{kv: kv, key: key, token: token}, true, nil
}

// Unlock releases the lease only if it is still ours.
func (l *Lock) Unlock(ctx context.Context) error {
	if l == nil {
		return nil
	}
	_, err := l.kv.CompareAndDelete(ctx, l.key, l.token)
	return err
}
