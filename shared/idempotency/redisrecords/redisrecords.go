// Package redisrecords keeps idempotency records in Redis, and only in a
// Redis that persists every acknowledged write and evicts nothing: before it
// reserves a record it checks INFO persistence (AOF on, appendfsync not
// "no") and INFO memory (no maxmemory, or maxmemory-policy noeviction) and
// refuses otherwise, because a Redis restarted empty, or one that evicted a
// record, would let a seen key charge again (INFO stats evicted_keys tells
// of evictions under a policy set only between two verdicts). The verdict is
// tied to a fence key it writes: a restart or failover that empties Redis
// drops the fence, and the warm instance that finds it gone writes the loss
// into it, so every instance refuses charges until a person reopens the
// store.
package redisrecords

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloudcall/cloudcall/shared/idempotency"
)

// Persistence policies.
const (
	// Verify (the default) checks INFO persistence and memory before
	// reserving.
	Verify = "verify"
	// Assume skips the check: for services that persist every write without
	// showing AOF (Tair persistent memory, MemoryDB) and evict nothing, and
	// for the local emulator's embedded store, where no real money moves.
	Assume = "assume"
)

// Options configures Open.
type Options struct {
	URL         string // redis://[user:password@]host:port/db or rediss://
	Prefix      string // key namespace (default "cloudcall:")
	Persistence string // Verify (default) or Assume
	// Timeout bounds each command (default 2s): long enough for a pool
	// busy with 200 concurrent callers, short enough that a dead Redis
	// answers -1501 well inside the charge's deadline.
	Timeout time.Duration
	// PoolSize is the connection pool (default 200: FC's largest
	// per-instance concurrency, so no caller waits for a connection).
	PoolSize int
	// Recheck is how long a verified verdict holds before INFO is read
	// again (default 1m); the fence is checked on every reservation.
	Recheck time.Duration
	Now     func() time.Time
	// Log hears a fence found gone (default: discarded).
	Log *slog.Logger
	// AfterLoss is what a fence found gone leads to:
	// idempotency.AfterLossRefuse (default) or AfterLossContinue.
	AfterLoss string
}

// Records is idempotency.Records on Redis.
type Records struct {
	rdb  *redis.Client
	o    Options
	host string

	mu       sync.Mutex
	verified time.Time
	fence    string
	lost     string // a verified fence found gone, until a fence is judged against it
	gen      int    // bumped by every successful verification
	refused  error
	refuseAt time.Time
	id       string // names this instance's own count of writes
	counts   counts
	// evicted is INFO stats evicted_keys as last seen: set at each verdict,
	// updated by reservations, which read it in their round trip; -1 when
	// unknown (INFO not read, refused or unparseable), and then not read.
	evicted atomic.Int64
	// Each WARN of a check that cannot be made is said once per instance:
	// the verdict is taken again every Recheck.
	warnedStats, warnedFsync bool
}

var _ idempotency.Records = (*Records)(nil)

// Open parses the URL; the first command dials.
func Open(o Options) (*Records, error) {
	ro, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("redis URL: %s", redact(err.Error()))
	}
	if ro.DB < 0 {
		return nil, fmt.Errorf("redis URL: database %d: expected a number from 0", ro.DB) // go-redis used database 0
	}
	if o.Prefix == "" {
		o.Prefix = "cloudcall:"
	}
	if o.Persistence == "" {
		o.Persistence = Verify
	}
	if o.Persistence != Verify && o.Persistence != Assume {
		return nil, fmt.Errorf("CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE=%q: expected verify or assume", o.Persistence)
	}
	if o.AfterLoss, err = idempotency.CheckAfterLoss(o.AfterLoss); err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.PoolSize <= 0 {
		o.PoolSize = 200
	}
	if o.Recheck <= 0 {
		o.Recheck = time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout, ro.PoolTimeout = o.Timeout, o.Timeout, o.Timeout, o.Timeout
	ro.PoolSize = o.PoolSize
	// No hidden retries: a retried write whose first answer was lost is
	// the caller's decision (the guard reads the record instead).
	ro.MaxRetries = -1
	ro.DisableIndentity = true // (sic, go-redis v9.7) CLIENT SETINFO is noise on managed Redis
	r := &Records{rdb: redis.NewClient(ro), o: o, host: ro.Addr, id: instanceID()}
	r.evicted.Store(-1)
	return r, nil
}

func redact(msg string) string {
	if i := strings.Index(msg, "@"); i >= 0 {
		if j := strings.LastIndex(msg[:i], ":"); j >= 0 {
			msg = msg[:j+1] + "***" + msg[i:]
		}
	}
	return msg
}

func (r *Records) Name() string { return "redis" }
func (r *Records) Close() error { return r.rdb.Close() }

func (r *Records) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.o.Timeout)
}

func (r *Records) wrap(err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		return err
	}
	if settingsError(err) {
		return fmt.Errorf("%w: redis at %s: %v", idempotency.ErrSettings, r.host, err)
	}
	return fmt.Errorf("%w: redis at %s: %v", idempotency.ErrUnavailable, r.host, err)
}

// settingsError is a refusal retrying cannot fix: the URL's password or user
// (WRONGPASS, NOAUTH, a password sent to a server without one) or its
// database number.
func settingsError(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	for _, p := range []string{"WRONGPASS", "NOAUTH", "ERR AUTH", "ERR invalid password", "ERR DB index is out of range", "ERR invalid DB index"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func (r *Records) fenceKey() string { return r.o.Prefix + "idem:fence" }

// lossBehind starts the ERROR of a loss the write count found.
const lossBehind = "idempotency: the records store lost its latest writes (the count of record writes went back: a failover to a replica that lagged, a restart that lost the last second of an appendfsync everysec log); "

// writesLost handles a count that went back, found with the fence this
// instance verified: by default the loss is written into the fence and the
// charge refused, as for a fence found gone.
func (r *Records) writesLost(ctx context.Context, fence string) error {
	if r.o.AfterLoss == idempotency.AfterLossContinue {
		r.o.Log.Error(lossBehind+idempotency.LossContinued, "store", "redis", "host", r.host, "afterLoss", r.o.AfterLoss)
		return nil
	}
	lost := idempotency.LostFence(r.lossTime(ctx), fence, fence)
	ctx, cancel := r.bound(ctx)
	defer cancel()
	if err := casFenceScript().Run(ctx, r.rdb, []string{r.fenceKey()}, fence, lost).Err(); err != nil {
		return r.wrap(err)
	}
	r.o.Log.Error(lossBehind+idempotency.LossRefused, "store", "redis", "host", r.host, "afterLoss", r.o.AfterLoss)
	err := idempotency.LostError("redis", lost)
	r.mu.Lock()
	if r.fence == fence {
		r.lost, r.fence = fence, ""
	}
	r.refused, r.refuseAt = err, r.o.Now()
	r.mu.Unlock()
	return err
}

// Durable checks that this Redis persists every acknowledged write (unless
// the policy is Assume), and that it has not lost the records this instance
// relied on (whatever the policy: a store assumed durable can still be
// emptied, fail over or be marked lost by hand, and under Assume a
// mark-lost was reported done while charges went on: an outside tester). A
// verdict is reused for Recheck while the fence written with it is still
// there; the fence is read without holding the lock, so concurrent
// reservations do not queue behind one another.
func (r *Records) Durable(ctx context.Context) error {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	r.mu.Lock()
	fence, verified, gen := r.fence, r.verified, r.gen
	r.mu.Unlock()
	if fence != "" && r.o.Now().Sub(verified) < r.o.Recheck {
		cur, err := r.rdb.Get(ctx, r.fenceKey()).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return r.wrap(err)
		}
		if cur == fence {
			return nil
		}
		// The fence is gone or replaced: Redis restarted empty or failed
		// over. Judge it, and check persistence again.
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen != gen && r.fence != "" {
		return nil // another call verified (and fenced) since we looked
	}
	// The fence found gone is kept until a fence is judged against it: a
	// verification that fails first (a Redis back empty without AOF, then
	// with it; a passing network error) must not let the loss go unsaid.
	if r.fence != "" {
		r.lost, r.fence = r.fence, ""
	}
	// A refusal holds a second: a burst of calls on a Redis without AOF, or
	// one that lost its data, hears the same -1601 without one INFO each.
	if r.refused != nil && r.o.Now().Sub(r.refuseAt) < time.Second {
		return r.refused
	}
	cur, ev, err := r.verify(ctx)
	if err == nil {
		err = r.judge(ctx, cur)
	}
	if err == nil {
		err = r.judgeEvictions(ctx, cur, ev)
	}
	if err != nil {
		if errors.Is(err, idempotency.ErrNotDurable) || errors.Is(err, idempotency.ErrLost) {
			r.refused, r.refuseAt = err, r.o.Now()
		}
		return err
	}
	r.refused = nil
	r.gen++
	if cur != r.lost {
		// Another fence (a reopening, a first verification): counts seen
		// under the one before say nothing of this one. A store emptied and
		// reopened counts from 1 again, and every write of a warm instance
		// read as a loss (a test of the reopening).
		r.forgetCounts()
	}
	r.fence, r.verified, r.lost = cur, r.o.Now(), ""
	if ev.known() {
		r.evicted.Store(ev.count)
	} else {
		r.evicted.Store(-1)
	}
	return nil
}

// expire lets the verdict taken with fence go, so the next call takes one.
func (r *Records) expire(fence string) {
	r.mu.Lock()
	if r.fence == fence {
		r.verified = time.Time{}
	}
	r.mu.Unlock()
}

// lossFound starts the ERROR of a loss: how it was found.
const lossFound = "idempotency: the records store lost its data (the fence this instance verified is gone or replaced: a Redis restarted empty, a failover to a node without the data or behind a reopening); "

// judge compares the fence found with the one this instance saw before it
// went (r.lost); r.mu is held. What was lost stays lost: a key charged
// before can charge again, and only a person can tell which, so by default
// the loss is written into the fence, and every instance refuses charges
// until that person reopens the store.
func (r *Records) judge(ctx context.Context, cur string) error {
	switch idempotency.Judge(r.lost, cur) {
	case idempotency.FenceRecordsLoss:
		return idempotency.LostError("redis", cur)
	case idempotency.FenceGone:
		if r.o.AfterLoss == idempotency.AfterLossContinue {
			r.o.Log.Error(lossFound+idempotency.LossContinued,
				"store", "redis", "host", r.host, "afterLoss", r.o.AfterLoss)
			return nil
		}
		lost := idempotency.LostFence(r.lossTime(ctx), cur, r.lost)
		// Only over the fence judged: a reopening in between stands.
		if err := casFenceScript().Run(ctx, r.rdb, []string{r.fenceKey()}, cur, lost).Err(); err != nil {
			return r.wrap(err)
		}
		r.o.Log.Error(lossFound+idempotency.LossRefused,
			"store", "redis", "host", r.host, "afterLoss", r.o.AfterLoss)
		return idempotency.LostError("redis", lost)
	}
	if at, ok := idempotency.FenceReopenedAt(cur); ok && r.lost != "" && r.lost != cur {
		r.o.Log.Warn(idempotency.Reopened,
			"store", "redis", "host", r.host, "reopened", at)
	}
	return nil
}

// verify reads INFO persistence, writes the fence when there is none and
// returns the fence there is, with the evictions INFO told and the baseline
// they are judged against; r.mu is held.
func (r *Records) verify(ctx context.Context) (string, evictions, error) {
	var ev evictions
	if r.o.Persistence != Assume {
		var err error
		if ev, err = r.durability(ctx); err != nil {
			return "", ev, err
		}
		if err := r.appendfsync(ctx); err != nil {
			return "", ev, err
		}
	}
	// The fence has no TTL: it must outlive every record it vouches for.
	// Written if absent and read back in one round trip: a connection runs
	// a pipeline in order, so the GET sees this SET's fence or the one it
	// found (a first charge waited for two round trips here). The eviction
	// baseline rides along the same way: a store used for the first time
	// gets the right one with no round trip of its own.
	fresh := idempotency.NewFence()
	pipe := r.rdb.Pipeline()
	set := pipe.SetArgs(ctx, r.fenceKey(), fresh, redis.SetArgs{Mode: "NX"})
	get := pipe.Get(ctx, r.fenceKey())
	var base *redis.StringCmd
	var baseSet *redis.StatusCmd
	if ev.known() {
		baseSet = pipe.SetArgs(ctx, r.evictionsKey(), ev.baseline(fresh), redis.SetArgs{Mode: "NX"})
		base = pipe.Get(ctx, r.evictionsKey())
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return "", ev, r.wrap(err)
	}
	if err := set.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return "", ev, r.wrap(err)
	}
	fence, err := get.Result()
	if err != nil {
		return "", ev, r.wrap(err)
	}
	if base != nil {
		if ev.base, err = base.Result(); err != nil && !errors.Is(err, redis.Nil) {
			return "", ev, r.wrap(err)
		}
		// The fence was there (its SET NX did not take) and the baseline
		// was not (its SET NX did).
		ev.missing = set.Val() != "OK" && baseSet.Val() == "OK"
	}
	return fence, ev, nil
}

// appendfsync refuses appendfsync no. Managed services often refuse CONFIG;
// AOF on is then the best we know, and a WARN says what was not checked
// (a Redis with CONFIG renamed away ran on appendfsync no unsaid: an
// outside tester).
func (r *Records) appendfsync(ctx context.Context) error {
	kv, err := r.rdb.ConfigGet(ctx, "appendfsync").Result()
	var re redis.Error
	if err != nil && !errors.As(err, &re) {
		return r.wrap(err)
	}
	v, ok := kv["appendfsync"]
	if err != nil || !ok {
		if !r.warnedFsync {
			r.warnedFsync = true
			why := "no appendfsync in its answer"
			if err != nil {
				why = err.Error()
			}
			r.o.Log.Warn("idempotency: the records store's appendfsync could not be read (CONFIG GET appendfsync: "+why+"), so appendfsync no, under which a crash loses acknowledged records, cannot be refused; make sure it is always (or everysec)",
				"store", "redis", "host", r.host)
		}
		return nil
	}
	if v == "no" {
		return fmt.Errorf("%w: Redis at %s has appendfsync no, so a crash can lose acknowledged records; set appendfsync always (or everysec)",
			idempotency.ErrNotDurable, r.host)
	}
	return nil
}

// Fence reads the fence (idempotency.Fencer).
func (r *Records) Fence(ctx context.Context) (string, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	f, err := r.rdb.Get(ctx, r.fenceKey()).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return f, r.wrap(err)
}

// lossTime dates a loss this instance found: the later of its clock and
// the store's, as mark-lost does. reopen waits from it, and an instance
// whose clock ran slow dated the loss early, so a reopening could come while
// requests sent around the loss still reached the vendor (an outside
// re-tester, by reading).
func (r *Records) lossTime(ctx context.Context) time.Time {
	now := r.o.Now()
	if st, err := r.Clock(ctx); err == nil && st.After(now) {
		return st
	}
	return now
}

// Clock is the Redis server's time (idempotency.Fencer).
func (r *Records) Clock(ctx context.Context) (time.Time, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	t, err := r.rdb.Time(ctx).Result()
	return t, r.wrap(err)
}

// SwapFence writes fence over was, only if was is still there
// (idempotency.Fencer).
func (r *Records) SwapFence(ctx context.Context, was, fence string) error {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	n, err := casFenceScript().Run(ctx, r.rdb, []string{r.fenceKey()}, was, fence).Int()
	if err != nil {
		return r.wrap(err)
	}
	if n != 1 {
		return fmt.Errorf("the fence changed meanwhile; run it again")
	}
	return nil
}

var _ idempotency.Fencer = (*Records)(nil)

// Persistence says, as a charge's first check would, whether the Redis at
// url may keep the records (ErrNotDurable, ErrUnavailable or nil); it
// writes nothing. cloudcall local says it at start instead of at the first
// charge.
func Persistence(ctx context.Context, url string) error {
	r, err := Open(Options{URL: url})
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, cancel := r.bound(ctx)
	defer cancel()
	_, err = r.durability(ctx)
	return err
}

// durability reads INFO persistence, memory, stats and server in one round
// trip (four commands: Redis before 7 takes one section per INFO), judges
// the first two and returns the evictions the last two tell.
func (r *Records) durability(ctx context.Context) (evictions, error) {
	var persistence, memory, stats, server *redis.StringCmd
	_, perr := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		persistence = p.Info(ctx, "persistence")
		memory = p.Info(ctx, "memory")
		stats = p.Info(ctx, "stats")
		server = p.Info(ctx, "server")
		return nil
	})
	info, err := persistence.Result()
	if err == nil && info == "" && perr != nil {
		// The pipeline never ran (no connection, a refused AUTH): its
		// commands carry no error of their own.
		err = perr
	}
	if err != nil {
		return evictions{}, r.infoError(err)
	}
	if err := persistenceVerdict(r.host, info); err != nil {
		return evictions{}, err
	}
	var re redis.Error
	mem, err := memory.Result()
	if err != nil && !errors.As(err, &re) {
		return evictions{}, r.wrap(err)
	}
	// A store that keeps its memory settings to itself is judged on its
	// persistence, reported and sound.
	if err == nil {
		if err := evictionVerdict(r.host, mem); err != nil {
			return evictions{}, err
		}
	}
	for _, c := range []*redis.StringCmd{stats, server} {
		if err := c.Err(); err != nil && !errors.As(err, &re) {
			return evictions{}, r.wrap(err)
		}
	}
	// Refused sections read as empty: the evictions are then unknown.
	return readEvictions(stats.Val(), server.Val()), nil
}

// evictionVerdict refuses a Redis that may evict keys when it is full: an
// evicted record lets its key charge again, and under a volatile-* policy
// the fence (no TTL) survives, so only the count of evictions can tell
// (evictions.go) that such a policy was in force between two verdicts. ApsaraDB for
// Redis and Tair default to volatile-lru. With no memory limit (maxmemory 0)
// nothing is evicted whatever the policy says.
func evictionVerdict(host, info string) error {
	limit, policy := infoField(info, "maxmemory"), infoField(info, "maxmemory_policy")
	if limit == "" || limit == "0" || policy == "" || policy == "noeviction" {
		return nil
	}
	return fmt.Errorf("%w: Redis at %s may evict keys when full (INFO memory maxmemory:%s, maxmemory_policy:%s), and an evicted record lets a charged key charge again; "+
		"set maxmemory-policy noeviction (a full Redis then refuses writes, and the charge answers -1501 before anything is sent), "+
		"or set CLOUDCALL_IDEMPOTENCY_STORE to a postgres:// or mysql:// URL",
		idempotency.ErrNotDurable, host, limit, policy)
}

// infoError is a failed INFO persistence. A server that answers it with an
// error (a Redis-protocol store that does not report persistence, a
// managed service that renamed INFO) is up and cannot be known durable: a
// setting to fix (-1601), not an outage to retry (-1501), which it read as
// for ever.
func (r *Records) infoError(err error) error {
	var re redis.Error
	if errors.As(err, &re) && !settingsError(err) && !strings.HasPrefix(re.Error(), "LOADING") && !strings.HasPrefix(re.Error(), "BUSY") {
		return fmt.Errorf("%w: the Redis at %s does not report its persistence (INFO persistence answered %q), so it cannot be known to keep the charges' records across a restart; "+
			"set CLOUDCALL_IDEMPOTENCY_STORE to a postgres:// or mysql:// URL (or a Redis with appendonly yes), or, if it persists every write, CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE=assume",
			idempotency.ErrNotDurable, r.host, re.Error())
	}
	return r.wrap(err)
}

// persistenceVerdict judges INFO persistence. A Redis loading its data
// after a restart says aof_enabled:0 until it is done (Redis 7): that is a
// passing outage (-1501, retry), not a setting to fix (-1601).
func persistenceVerdict(host, info string) error {
	if infoField(info, "loading") == "1" {
		return fmt.Errorf("%w: Redis at %s is loading its data after a restart (INFO persistence loading:1); retry when it is done", idempotency.ErrUnavailable, host)
	}
	if v := infoField(info, "aof_enabled"); v != "1" {
		return fmt.Errorf("%w: Redis at %s has appendonly off (INFO persistence aof_enabled:%s), so a restart would forget charges and let a seen key charge again; "+
			"set appendonly yes with appendfsync always (or everysec), or set CLOUDCALL_IDEMPOTENCY_STORE to a postgres:// or mysql:// URL "+
			"(for Tair persistent memory or MemoryDB, which persist every write without AOF, set CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE=assume)",
			idempotency.ErrNotDurable, host, orNone(v))
	}
	return nil
}

func orNone(v string) string {
	if v == "" {
		return "absent"
	}
	return v
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// A record is a hash: tok (compared by finish and release) and rec (JSON).
// The scripts are hashed on first use (Warm, in the background at cold
// start), not at package init.
var reserveScript = sync.OnceValue(func() *redis.Script {
	return redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'tok', ARGV[1], 'rec', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`)
})

var finishScript = sync.OnceValue(func() *redis.Script {
	return redis.NewScript(`
if redis.call('HGET', KEYS[1], 'tok') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'tok', ARGV[2], 'rec', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1`)
})

// casFenceScript writes ARGV[2] over the value ARGV[1] (or over none) of the
// fence, or of the eviction baseline.
var casFenceScript = sync.OnceValue(func() *redis.Script {
	return redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1`)
})

var releaseScript = sync.OnceValue(func() *redis.Script {
	return redis.NewScript(`
if redis.call('HGET', KEYS[1], 'tok') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`)
})

// Warm dials, checks durability (writing the fence) and loads the three
// scripts (idempotency.Warmer), so the first charge of an instance does
// not pay for the connection, INFO, and an EVALSHA answered NOSCRIPT.
func (r *Records) Warm(ctx context.Context) error {
	// The scripts load on a second connection while the first verifies:
	// a first charge arriving early waits for the slower of the two, not
	// their sum. Loading a script changes no record.
	loaded := make(chan error, 1)
	go func() {
		ctx, cancel := r.bound(ctx)
		defer cancel()
		pipe := r.rdb.Pipeline()
		for _, s := range []*redis.Script{reserveScript(), finishScript(), releaseScript()} {
			s.Load(ctx, pipe)
		}
		_, err := pipe.Exec(ctx)
		loaded <- r.wrap(err)
	}()
	err := r.Durable(ctx)
	if lerr := <-loaded; err == nil {
		err = lerr
	}
	return err
}

var _ idempotency.Warmer = (*Records)(nil)

func ms(d time.Duration) int64 { return max(1, (d + time.Millisecond - 1).Milliseconds()) }

// Reserve takes the key when it is free. With a fresh durability verdict
// the fence is read in the same round trip as the reservation (a pipeline,
// not a multi-key script, so cluster proxies take it too). A reservation
// that turns out to have been taken on a Redis whose fence is gone is
// released at once, and taken again only after that Redis is verified
// anew: nothing is left on a Redis that might not keep it.
func (r *Records) Reserve(ctx context.Context, key string, rec idempotency.Record, ttl time.Duration) (bool, error) {
	return r.reserve(ctx, key, rec, ttl, false)
}

// Rewrite is Reserve for the record of a call that ran, which a store that
// lost its data still takes (idempotency.Rewriter).
func (r *Records) Rewrite(ctx context.Context, key string, rec idempotency.Record, ttl time.Duration) (bool, error) {
	return r.reserve(ctx, key, rec, ttl, true)
}

var _ idempotency.Rewriter = (*Records)(nil)

func (r *Records) reserve(ctx context.Context, key string, rec idempotency.Record, ttl time.Duration, rewrite bool) (bool, error) {
	raw, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	// A reservation is counted and fenced, the one right after a fresh
	// verification too: a keyless call idle past Recheck made its one
	// reservation uncounted, and a failover to a replica that lagged was
	// found only by the call's next write, after its charge had gone out
	// (an outside tester).
	for verified := false; ; verified = true {
		evicted := false
		if fence, ok := r.trusted(); ok {
			taken, fenced, more, err := r.reserveCounted(ctx, key, rec.Token, raw, ttl, fence, rewrite)
			if err != nil || fenced {
				return taken, err
			}
			evicted = more
		}
		if verified && !evicted {
			break
		}
		if err := r.Durable(ctx); err != nil && !(rewrite && errors.Is(err, idempotency.ErrLost)) {
			return false, err
		}
		if verified {
			if rewrite {
				break // the record of a call that ran is written regardless
			}
			// Evictions again right after a verdict that passed them:
			// that verdict (just taken) judged them, and nothing is
			// taken on its word.
			return false, fmt.Errorf("%w: redis at %s: keys were evicted while this reservation was made; retry", idempotency.ErrUnavailable, r.host)
		}
	}
	// The record of a call that ran on a store that lost its data, or a
	// fence that moved again right after it was verified: reserved as it
	// stands.
	ctx, cancel := r.bound(ctx)
	defer cancel()
	n, err := reserveScript().Run(ctx, r.rdb, []string{r.o.Prefix + key}, rec.Token, raw, ms(ttl)).Int()
	return n == 1, r.wrap(err)
}

// reserveCounted runs reserveFenced and lets go of what it took when the
// fence moved, the count went back or keys were evicted since the last
// verdict (evicted: the cached verdict is then expired, and the caller's
// Durable judges the evictions against the baseline); fenced says the
// answer stands. A count of evictions that went down (a restart, CONFIG
// RESETSTAT) keeps the reservation and expires the verdict, so the next
// call takes the new baseline.
func (r *Records) reserveCounted(ctx context.Context, key, token string, raw []byte, ttl time.Duration, fence string, rewrite bool) (taken, fenced, evicted bool, err error) {
	taken, fenced, back, ev, err := r.reserveFenced(ctx, key, token, raw, ttl, fence)
	if err == nil && fenced && ev >= 0 {
		switch seen := r.evicted.Load(); {
		case seen >= 0 && ev > seen:
			// Before the writes judged: a loss outranks them.
			fenced, evicted = false, true
			r.expire(fence)
		case seen >= 0 && ev < seen:
			r.evicted.CompareAndSwap(seen, ev)
			r.expire(fence)
		}
	}
	if err == nil && fenced && back {
		// The store lost writes this instance saw: a reservation is let
		// go (by default), the record of a call that ran stays.
		if lerr := r.writesLost(ctx, fence); lerr != nil && !rewrite {
			err = lerr
		}
	}
	if taken && (err != nil || !fenced) {
		if _, rerr := r.Release(ctx, key, token); rerr != nil {
			return false, false, evicted, rerr
		}
		taken = false
	}
	return taken, fenced, evicted, err
}

// trusted is the fence of a verdict still within Recheck, when there is one.
func (r *Records) trusted() (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fence, r.fence != "" && r.o.Now().Sub(r.verified) < r.o.Recheck
}

// reserveFenced reads the fence, runs the reservation and counts it, in one
// round trip. fenced reports that the fence was still the verified one, so
// taken is the answer; otherwise taken says whether the key was taken
// regardless. back reports that the count of writes went back. ev is INFO
// stats evicted_keys, read after the reservation (so evictions it caused
// count), or -1 when it is not read or not told.
func (r *Records) reserveFenced(ctx context.Context, key, token string, raw []byte, ttl time.Duration, fence string) (taken, fenced, back bool, ev int64, err error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	s := reserveScript()
	keys := []string{r.o.Prefix + key}
	pipe := r.rdb.Pipeline()
	cur := pipe.Get(ctx, r.fenceKey())
	res := s.EvalSha(ctx, pipe, keys, token, raw, ms(ttl))
	count := r.queueCount(ctx, pipe)
	var stats *redis.StringCmd
	if r.evicted.Load() >= 0 {
		stats = pipe.Info(ctx, "stats")
	}
	_, _ = pipe.Exec(ctx)
	ev = -1
	if stats != nil {
		// Refused or unparseable: not checked here (the verdict WARNs).
		if n, err := strconv.ParseInt(infoField(stats.Val(), "evicted_keys"), 10, 64); err == nil {
			ev = n
		}
	}
	if err := cur.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return false, false, false, ev, r.wrap(err)
	}
	fenced = cur.Val() == fence
	if err := res.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// Nothing ran: the scripts were flushed (a restart or failover
		// keeps data, not scripts). Run it again, loading it, if the fence
		// still holds, and count it after.
		if !fenced {
			return false, false, false, ev, nil
		}
		back, _ = r.back(count)
		res = s.Run(ctx, r.rdb, keys, token, raw, ms(ttl))
		count = r.recount(ctx)
	}
	n, err := res.Int()
	if err != nil {
		return false, false, false, ev, r.wrap(err)
	}
	went, err := r.back(count)
	if err != nil {
		return n == 1, fenced, back, ev, r.wrap(err) // taken, but not counted: the caller lets it go
	}
	return n == 1, fenced, back || went, ev, nil
}

func (r *Records) Finish(ctx context.Context, key, token string, rec idempotency.Record, ttl time.Duration) (bool, error) {
	raw, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	fence, counting := r.trusted()
	if !counting {
		ctx, cancel := r.bound(ctx)
		defer cancel()
		n, err := finishScript().Run(ctx, r.rdb, []string{r.o.Prefix + key}, token, rec.Token, raw, ms(ttl)).Int()
		return n == 1, r.wrap(err)
	}
	// Counted like a reservation: a store that lost a call's move to "in
	// progress" could let a repeat take its key over.
	bctx, cancel := r.bound(ctx)
	defer cancel()
	s, keys := finishScript(), []string{r.o.Prefix + key}
	pipe := r.rdb.Pipeline()
	cur := pipe.Get(bctx, r.fenceKey())
	res := s.EvalSha(bctx, pipe, keys, token, rec.Token, raw, ms(ttl))
	count := r.queueCount(bctx, pipe)
	_, _ = pipe.Exec(bctx)
	var back bool
	if err := res.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		back, _ = r.back(count)
		res = s.Run(bctx, r.rdb, keys, token, rec.Token, raw, ms(ttl))
		count = r.recount(bctx)
	}
	n, err := res.Int()
	if err != nil {
		return false, r.wrap(err)
	}
	// Only a count under the fence it was seen with tells (the fence read
	// in the same round trip): the next reservation judges another fence.
	if went, err := r.back(count); err == nil && (went || back) && cur.Val() == fence {
		// The write itself stands: only what came before it was lost.
		_ = r.writesLost(ctx, fence)
	}
	return n == 1, nil
}

func (r *Records) Read(ctx context.Context, key string) (idempotency.Record, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	raw, err := r.rdb.HGet(ctx, r.o.Prefix+key, "rec").Bytes()
	if err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE") {
		// A record written before this format (a plain JSON string under
		// the same key): still honoured, so an upgrade inside the replay
		// window never charges a seen key again.
		raw, err = r.rdb.Get(ctx, r.o.Prefix+key).Bytes()
	}
	if errors.Is(err, redis.Nil) {
		return idempotency.Record{}, idempotency.ErrNotFound
	}
	if err != nil {
		return idempotency.Record{}, r.wrap(err)
	}
	var rec idempotency.Record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return idempotency.Record{}, fmt.Errorf("idempotency record %q unreadable: %w", key, err)
	}
	return rec, nil
}

func (r *Records) Release(ctx context.Context, key, token string) (bool, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	n, err := releaseScript().Run(ctx, r.rdb, []string{r.o.Prefix + key}, token).Int()
	return n == 1, r.wrap(err)
}

// Purge has nothing to do: Redis expires records itself (PEXPIRE).
func (r *Records) Purge(context.Context, int) (int, error) { return 0, nil }
