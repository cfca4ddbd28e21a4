package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"
)

var (
	// ErrNotFound: no live record under the key (absent, released or expired).
	ErrNotFound = errors.New("idempotency: no record")
	// ErrUnavailable wraps every failure to reach or write the records store:
	// the charge must not run (-1501, retryable).
	ErrUnavailable = errors.New("idempotency: records store unavailable")
	// ErrSettings: the store refused the configured credentials, database or
	// privileges; retrying cannot help (-1601: configuration).
	ErrSettings = errors.New("idempotency: records store refused this function's settings")
	// ErrNotDurable: the store could forget an acknowledged record (a Redis
	// without AOF), so a seen key could charge again (-1601: configuration).
	ErrNotDurable = errors.New("idempotency: records store is not durable")
)

// States of a record.
const (
	// Reserved: the key is claimed and nothing has been sent. A call that
	// lost the store right after reserving leaves it so, and a repeat may
	// take it over: the owner only sends after moving it to InProgress
	// with its own token, which a takeover changes.
	Reserved = "reserved"
	// InProgress: the call may have been sent; only its owner finishes it.
	InProgress = "in_progress"
	Done       = "done"
)

// Record is what a store keeps per key.
type Record struct {
	// Token is random per reservation: finish and release compare it, so a
	// call can only ever finish or release its own reservation.
	Token       string `json:"token"`
	State       string `json:"state"`
	Fingerprint string `json:"fingerprint"`
	// Alias, on the fingerprint record a keyed call leaves, names the keyed
	// record: a keyless retry of that request is answered from it.
	Alias   string `json:"alias,omitempty"`
	Started int64  `json:"started"` // unix ms
	// Deadline (unix ms) is when the call that took the record must have
	// ended, from its own context: a platform timeout longer than the
	// guard's Stuck no longer reads a call still running as dead.
	Deadline int64           `json:"deadline,omitempty"`
	Status   int             `json:"status,omitempty"`
	Body     json.RawMessage `json:"response,omitempty"` // the envelope the first call answered
	// Known is what is known of an outcome that could not be recorded in
	// full, e.g. "charged, extra charge service order id 123".
	Known string `json:"known,omitempty"`
	// Settled says a person settled the record by hand, how and when: the
	// answer replayed is theirs, not the vendor's, and can be corrected.
	Settled string `json:"settled,omitempty"`
}

// Warmer is a Records that can do at cold start, in the background, what its
// first call would otherwise do in the caller's time: dial, check that the
// store is durable, load scripts, create its table. Warm changes no record;
// its failure is only a hint, because the first call does the same work and
// reports what went wrong.
type Warmer interface {
	Warm(ctx context.Context) error
}

// Records is the record protocol every backend implements: memory (tests,
// never money), Redis with persistence, PostgreSQL, MySQL. Every method is
// atomic across every instance sharing the backend; every failure to reach
// the backend wraps ErrUnavailable. Records expire ttl after their last
// write and are then as good as absent.
type Records interface {
	// Reserve inserts rec under key if no live record is there
	// (insert-if-absent); it reports whether it did.
	Reserve(ctx context.Context, key string, rec Record, ttl time.Duration) (bool, error)
	// Finish replaces the record only while it still holds token
	// (compare-and-set); it reports whether it did.
	Finish(ctx context.Context, key, token string, rec Record, ttl time.Duration) (bool, error)
	// Read returns the live record, or ErrNotFound.
	Read(ctx context.Context, key string) (Record, error)
	// Release deletes the record only while it still holds token.
	Release(ctx context.Context, key, token string) (bool, error)
	// Purge deletes at most limit expired records and says how many: a
	// bounded clean-up for backends without native expiry (SQL). Backends
	// that expire by themselves return 0.
	Purge(ctx context.Context, limit int) (int, error)
	// Name says which backend this is, for logs and errors.
	Name() string
	Close() error
}

// Memory is Records in this process: for tests and one-process tools only.
// A function never takes money records from it (an instance's memory is not
// shared and does not survive it).
type Memory struct {
	mu  sync.Mutex
	m   map[string]memEntry
	now func() time.Time
}

type memEntry struct {
	rec     Record
	expires time.Time
}

// NewMemory builds an empty Memory; now may be nil (time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{m: map[string]memEntry{}, now: now}
}

func (m *Memory) live(key string) (memEntry, bool) {
	e, ok := m.m[key]
	if !ok || !m.now().Before(e.expires) {
		return memEntry{}, false
	}
	return e, true
}

func (m *Memory) Reserve(_ context.Context, key string, rec Record, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.live(key); ok {
		return false, nil
	}
	m.m[key] = memEntry{rec: rec, expires: m.now().Add(ttl)}
	return true, nil
}

func (m *Memory) Finish(_ context.Context, key, token string, rec Record, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.live(key)
	if !ok || e.rec.Token != token {
		return false, nil
	}
	m.m[key] = memEntry{rec: rec, expires: m.now().Add(ttl)}
	return true, nil
}

func (m *Memory) Read(_ context.Context, key string) (Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.live(key)
	if !ok {
		return Record{}, ErrNotFound
	}
	return e.rec, nil
}

func (m *Memory) Release(_ context.Context, key, token string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.live(key)
	if !ok || e.rec.Token != token {
		return false, nil
	}
	delete(m.m, key)
	return true, nil
}

func (m *Memory) Purge(_ context.Context, limit int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k := range m.m {
		if n >= limit {
			break
		}
		if _, ok := m.live(k); !ok {
			delete(m.m, k)
			n++
		}
	}
	return n, nil
}

func (m *Memory) Name() string { return "memory" }
func (m *Memory) Close() error { return nil }
