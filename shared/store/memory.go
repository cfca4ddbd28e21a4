package store

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// Memory is the in-process Store: correct for one instance, and the fallback
// a Redis outage degrades to.
type Memory struct {
	now func() time.Time

	mu    sync.Mutex
	items map[string]item
	logs  map[string][]time.Time
	ops   int
}

type item struct {
	value   []byte
	expires time.Time
}

// MemoryOptions configures NewMemory.
type MemoryOptions struct {
	// Now is the clock; time.Now when nil (tests pass a fake).
	Now func() time.Time
}

// NewMemory returns an empty in-process store.
func NewMemory(opts MemoryOptions) *Memory {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, items: map[string]item{}, logs: map[string][]time.Time{}}
}

func (m *Memory) Name() string { return "memory" }
func (m *Memory) Close() error { return nil }

// get returns the live item; the caller holds mu.
func (m *Memory) get(key string) (item, bool) {
	it, ok := m.items[key]
	if !ok {
		return item{}, false
	}
	if !m.now().Before(it.expires) {
		delete(m.items, key)
		return item{}, false
	}
	return it, true
}

func (m *Memory) put(key string, value []byte, ttl time.Duration) {
	m.items[key] = item{value: bytes.Clone(value), expires: m.now().Add(ttl)}
	// Sweep expired keys now and then so a long-lived instance does not grow.
	m.ops++
	if m.ops%1024 == 0 {
		now := m.now()
		for k, it := range m.items {
			if !now.Before(it.expires) {
				delete(m.items, k)
			}
		}
	}
}

func (m *Memory) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.get(key)
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(it.value), nil
}

func (m *Memory) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return ErrBadTTL
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.put(key, value, ttl)
	return nil
}

func (m *Memory) SetNX(_ context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, ErrBadTTL
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.get(key); ok {
		return false, nil
	}
	m.put(key, value, ttl)
	return true, nil
}

func (m *Memory) CompareAndSwap(_ context.Context, key string, old, value []byte, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, ErrBadTTL
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.get(key)
	if !ok || !bytes.Equal(it.value, old) {
		return false, nil
	}
	m.put(key, value, ttl)
	return true, nil
}

func (m *Memory) CompareAndDelete(_ context.Context, key string, old []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.get(key)
	if !ok || !bytes.Equal(it.value, old) {
		return false, nil
	}
	delete(m.items, key)
	return true, nil
}

func (m *Memory) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.items, key)
	return nil
}

// Reserve keeps a log of grant times per key: exact, and small for the limits
// vendors document (tens per second).
func (m *Memory) Reserve(_ context.Context, key string, limit int, window time.Duration) (time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	log := m.logs[key]
	cut := 0
	for cut < len(log) && !log[cut].After(now.Add(-window)) {
		cut++
	}
	log = log[cut:]
	if len(log) >= limit {
		m.logs[key] = log
		return log[0].Add(window).Sub(now), nil
	}
	m.logs[key] = append(log, now)
	return 0, nil
}
