// Package redisstore is the Store on Redis (ApsaraDB for Redis / Tair on
// Alibaba Cloud, ElastiCache on AWS): the state many instances of many
// functions share. Every conditional write is one Lua script, so it is atomic
// across instances; every failure to reach Redis wraps store.ErrUnavailable.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloudcall/cloudcall/shared/store"
)

// Options configures Open.
type Options struct {
	// URL is redis://[user:password@]host:port/db or rediss:// for TLS.
	URL string
	// Prefix namespaces every key (default "cloudcall:"), so one Redis can
	// serve several deployments.
	Prefix string
	// Timeout bounds each command when the caller's context has a longer
	// deadline: a dead Redis must cost milliseconds, not the vendor call's
	// whole budget (default 300ms).
	Timeout time.Duration
}

// Store is a store.Store on Redis.
type Store struct {
	rdb     *redis.Client
	prefix  string
	timeout time.Duration
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.BatchSetter = (*Store)(nil)
)

// Open parses the URL and connects lazily (the first command dials).
func Open(opts Options) (*Store, error) {
	ro, err := redis.ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("CLOUDCALL_STORE: %w", redactURLError(err))
	}
	if ro.DB < 0 {
		// go-redis selects nothing for it: the keys went to database 0.
		return nil, fmt.Errorf("CLOUDCALL_STORE: database %d: expected a number from 0", ro.DB)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 300 * time.Millisecond
	}
	if opts.Prefix == "" {
		opts.Prefix = "cloudcall:"
	}
	ro.DialTimeout = opts.Timeout
	ro.ReadTimeout = opts.Timeout
	ro.WriteTimeout = opts.Timeout
	ro.PoolTimeout = opts.Timeout
	ro.MaxRetries = -1 // the fallback layer decides what a failure means; no hidden retries
	ro.PoolSize = 16
	ro.DisableIndentity = true // (sic, go-redis v9.7 spelling) // CLIENT SETINFO is noise on managed Redis that lacks it
	return &Store{rdb: redis.NewClient(ro), prefix: opts.Prefix, timeout: opts.Timeout}, nil
}

// redactURLError keeps a password in a malformed URL out of the message.
func redactURLError(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "@"); i >= 0 {
		if j := strings.LastIndex(msg[:i], ":"); j >= 0 {
			msg = msg[:j+1] + "***" + msg[i:]
		}
	}
	return errors.New(msg)
}

func (s *Store) Name() string { return "redis" }
func (s *Store) Close() error { return s.rdb.Close() }

// Ping checks the connection.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.wrap(s.rdb.Ping(ctx).Err())
}

func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

func (s *Store) wrap(err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		return err
	}
	return fmt.Errorf("%w: redis: %v", store.ErrUnavailable, err)
}

func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	v, err := s.rdb.Get(ctx, s.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	return v, s.wrap(err)
}

func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return store.ErrBadTTL
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.wrap(s.rdb.Set(ctx, s.prefix+key, value, ceilMS(ttl)).Err())
}

// SetNXMany is SetNX for many keys in one pipeline (store.BatchSetter).
func (s *Store) SetNXMany(ctx context.Context, keys []string, value []byte, ttls []time.Duration) ([]bool, error) {
	if len(keys) != len(ttls) {
		return nil, fmt.Errorf("redisstore: %d keys and %d TTLs", len(keys), len(ttls))
	}
	for _, ttl := range ttls {
		if ttl <= 0 {
			return nil, store.ErrBadTTL
		}
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	cmds := make([]*redis.StatusCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.SetArgs(ctx, s.prefix+k, value, redis.SetArgs{Mode: "NX", TTL: ceilMS(ttls[i])})
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, s.wrap(err)
	}
	ok := make([]bool, len(keys))
	for i, c := range cmds {
		switch err := c.Err(); {
		case err == nil:
			ok[i] = true
		case !errors.Is(err, redis.Nil):
			return nil, s.wrap(err)
		}
	}
	return ok, nil
}

func (s *Store) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, store.ErrBadTTL
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	// SET NX PX rather than SETNX+PEXPIRE: one command, so no key without a TTL.
	err := s.rdb.SetArgs(ctx, s.prefix+key, value, redis.SetArgs{Mode: "NX", TTL: ceilMS(ttl)}).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, s.wrap(err)
	}
	return true, nil
}

// The scripts are hashed on first use rather than at package init, which
// every cold start of every function would pay.
var casScript = sync.OnceValue(func() *redis.Script {
	return redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`)
})

func (s *Store) CompareAndSwap(ctx context.Context, key string, old, value []byte, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, store.ErrBadTTL
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	n, err := casScript().Run(ctx, s.rdb, []string{s.prefix + key}, old, value, ceilMS(ttl).Milliseconds()).Int()
	return n == 1, s.wrap(err)
}

var cadScript = sync.OnceValue(func() *redis.Script {
	return redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)
})

func (s *Store) CompareAndDelete(ctx context.Context, key string, old []byte) (bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	n, err := cadScript().Run(ctx, s.rdb, []string{s.prefix + key}, old).Int()
	return n == 1, s.wrap(err)
}

func (s *Store) Delete(ctx context.Context, key string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.wrap(s.rdb.Del(ctx, s.prefix+key).Err())
}

// reserveScript is a sliding-window log in a sorted set, timed by the Redis
// server's clock so instances on machines with skewed clocks agree. It
// returns 0 when it granted a slot, else the milliseconds until one frees.
var reserveScript = sync.OnceValue(func() *redis.Script {
	return redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now
if wait < 1000 then wait = 1000 end
return math.ceil(wait / 1000)`)
})

func (s *Store) Reserve(ctx context.Context, key string, limit int, window time.Duration) (time.Duration, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	member := make([]byte, 8)
	_, _ = rand.Read(member)
	ms, err := reserveScript().Run(ctx, s.rdb, []string{s.prefix + "rl:" + key}, limit, ceilMS(window).Milliseconds(), hex.EncodeToString(member)).Int64()
	if err != nil {
		return 0, s.wrap(err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// ceilMS rounds up to whole milliseconds: Redis PX takes integers, and a TTL
// under 1ms must not become 0 (which Redis refuses).
func ceilMS(d time.Duration) time.Duration {
	return (d + time.Millisecond - 1).Truncate(time.Millisecond)
}
