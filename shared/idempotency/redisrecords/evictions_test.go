package redisrecords_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/idempotency/redisrecords"
	"github.com/cloudcall/cloudcall/shared/idempotency/redisrecords/redisproc"
)

// testClock is an injected clock a test moves past Recheck.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// evictBriefly does what an outside tester did to a Redis with AOF under
// charges: maxmemory-policy volatile-ttl and a maxmemory just above what is
// used, fillers with a 30-day TTL until some of keys are evicted (or, with
// no keys, until anything is), then noeviction and no maxmemory again, and
// the fillers deleted. It returns the keys evicted.
func evictBriefly(t *testing.T, srv *redisproc.Server, keys []string) []string {
	t.Helper()
	ctx := context.Background()
	a := admin(t, srv)
	before := evictedKeys(t, a)
	used, err := strconv.ParseInt(infoValue(t, a, "memory", "used_memory"), 10, 64)
	require.NoError(t, err)
	require.NoError(t, a.ConfigSet(ctx, "maxmemory-policy", "volatile-ttl").Err())
	require.NoError(t, a.ConfigSet(ctx, "maxmemory", strconv.FormatInt(used+100000, 10)).Err())
	filler := strings.Repeat("x", 200)
	var gone []string
	for i := 0; ; i += 20 {
		require.Less(t, i, 100000, "nothing was evicted")
		pipe := a.Pipeline()
		for j := i; j < i+20; j++ {
			pipe.Set(ctx, fmt.Sprintf("fill:%d", j), filler, 30*24*time.Hour)
		}
		_, err := pipe.Exec(ctx)
		require.NoError(t, err)
		if len(keys) == 0 {
			if evictedKeys(t, a) > before {
				break
			}
			continue
		}
		gone = gone[:0]
		for _, k := range keys {
			if a.Exists(ctx, k).Val() == 0 {
				gone = append(gone, k)
			}
		}
		if len(gone) > 0 {
			break
		}
	}
	require.NoError(t, a.ConfigSet(ctx, "maxmemory", "0").Err())
	require.NoError(t, a.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())
	fills, err := a.Keys(ctx, "fill:*").Result()
	require.NoError(t, err)
	if len(fills) > 0 {
		require.NoError(t, a.Del(ctx, fills...).Err())
	}
	require.Greater(t, evictedKeys(t, a), before)
	return gone
}

func infoValue(t *testing.T, a *redis.Client, section, field string) string {
	t.Helper()
	info, err := a.Info(context.Background(), section).Result()
	require.NoError(t, err)
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	t.Fatalf("INFO %s has no %s", section, field)
	return ""
}

func evictedKeys(t *testing.T, a *redis.Client) int64 {
	n, err := strconv.ParseInt(infoValue(t, a, "stats", "evicted_keys"), 10, 64)
	require.NoError(t, err)
	return n
}

// charged reserves and finishes n keyed records, as n charges do, and
// returns their keys in Redis.
func charged(t *testing.T, r *redisrecords.Records, prefix string, n int) []string {
	t.Helper()
	ctx := context.Background()
	var keys []string
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		ok, err := r.Reserve(ctx, k, rec("t"), 24*time.Hour)
		require.NoError(t, err, k)
		require.True(t, ok, k)
		done := rec("d")
		done.State = idempotency.Done
		ok, err = r.Finish(ctx, k, "t", done, 24*time.Hour)
		require.NoError(t, err, k)
		require.True(t, ok, k)
		keys = append(keys, "cloudcall:"+k)
	}
	return keys
}

// The outside tester's episode: records evicted under a volatile-ttl policy
// set for a while, the fence (no TTL) and the counts of writes (a week)
// kept, the policy set back; 7 of 20 keys then charged twice with nothing
// said. At its next verdict the warm instance finds the evictions, writes
// the loss into the fence, says it once at ERROR and refuses; a new
// instance refuses too, and no evicted key is taken again.
func TestEvictedRecordsAreALoss(t *testing.T) {
	srv := redisproc.Start(t, true)
	ctx := context.Background()
	clock := &testClock{now: time.Now()}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	warm := open(t, redisrecords.Options{URL: srv.URL(), Timeout: testTimeout, Log: log, Now: clock.Now})
	keys := charged(t, warm, "k", 40)

	gone := evictBriefly(t, srv, keys)
	require.NotEmpty(t, gone, "some records were evicted")
	a := admin(t, srv)
	require.NoError(t, a.Get(ctx, "cloudcall:idem:fence").Err(), "the fence (no TTL) stayed")
	clock.Add(2 * time.Minute) // past Recheck: the next reservation takes a verdict

	key := func(k string) string { return strings.TrimPrefix(k, "cloudcall:") }
	ok, err := warm.Reserve(ctx, key(gone[0]), rec("again"), 24*time.Hour)
	require.ErrorIs(t, err, idempotency.ErrLost)
	require.False(t, ok)
	require.Contains(t, err.Error(), "cloudcall records reopen --reconciled")
	requireFenceLost(t, a)

	fresh := open(t, redisrecords.Options{URL: srv.URL(), Timeout: testTimeout, Log: log, Now: clock.Now})
	for _, r := range []*redisrecords.Records{warm, fresh} {
		for _, k := range gone {
			ok, err := r.Reserve(ctx, key(k), rec("again"), 24*time.Hour)
			require.ErrorIs(t, err, idempotency.ErrLost, k)
			require.False(t, ok, k)
		}
	}
	for _, k := range gone {
		require.Zero(t, a.Exists(ctx, k).Val(), "%s was not taken again", k)
	}
	require.Equal(t, 1, strings.Count(logs.String(), `"level":"ERROR"`), logs.String())
	require.Contains(t, logs.String(), "evicted")
	require.Contains(t, logs.String(), "maxmemory-policy other than noeviction")
	require.Contains(t, logs.String(), "cloudcall records reopen --reconciled")

	// Reopened after reconciling: the baseline is taken anew for the new
	// fence, and the evictions before it are no new loss.
	_, err = idempotency.Reopen(ctx, fresh, time.Now(), func(err error) { t.Errorf("clock: %v", err) })
	require.NoError(t, err)
	clock.Add(2 * time.Second) // past a refusal's second
	for i, r := range []*redisrecords.Records{warm, fresh} {
		ok, err := r.Reserve(ctx, fmt.Sprintf("reopened-%d", i), rec("t"), 24*time.Hour)
		require.NoError(t, err)
		require.True(t, ok)
	}
	base, err := a.Get(ctx, "cloudcall:idem:evictions").Result()
	require.NoError(t, err)
	reopened, err := a.Get(ctx, "cloudcall:idem:fence").Result()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(base, reopened+"\t"), base)
	require.Equal(t, 1, strings.Count(logs.String(), `"level":"ERROR"`), logs.String())
}

// With AfterLoss continue the evictions are said at ERROR, once, and the
// charges go on: the baseline moves up.
func TestEvictionsAreSaidWhenContinuing(t *testing.T) {
	srv := redisproc.Start(t, true)
	ctx := context.Background()
	clock := &testClock{now: time.Now()}
	logs := &syncBuffer{}
	r := open(t, redisrecords.Options{URL: srv.URL(), Timeout: testTimeout, Log: slog.New(slog.NewJSONHandler(logs, nil)), Now: clock.Now, AfterLoss: idempotency.AfterLossContinue})
	keys := charged(t, r, "k", 20)
	gone := evictBriefly(t, srv, keys)
	require.NotEmpty(t, gone)
	clock.Add(2 * time.Minute)
	ok, err := r.Reserve(ctx, strings.TrimPrefix(gone[0], "cloudcall:"), rec("again"), 24*time.Hour)
	require.NoError(t, err)
	require.True(t, ok, "continue: the evicted key is free again")
	require.Equal(t, 1, strings.Count(logs.String(), `"level":"ERROR"`), logs.String())
	require.Contains(t, logs.String(), idempotency.LossContinued)
	require.Contains(t, logs.String(), "evicted")
	clock.Add(2 * time.Minute)
	ok, err = r.Reserve(ctx, "next", rec("t"), 24*time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 1, strings.Count(logs.String(), `"level":"ERROR"`), "said once: the baseline moved up")
}

// A restart (with AOF, the same data) counts evictions from 0 under a new
// run_id: no loss, a new baseline, and evictions after it are found.
func TestARestartIsNotAnEvictionLoss(t *testing.T) {
	srv := redisproc.Start(t, true)
	ctx := context.Background()
	evictBriefly(t, srv, nil) // evictions before any charge: the baseline starts above 0
	clock := &testClock{now: time.Now()}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	warm := open(t, redisrecords.Options{URL: srv.URL(), Timeout: testTimeout, Log: log, Now: clock.Now})
	keys := charged(t, warm, "k", 20)
	a := admin(t, srv)
	run := infoValue(t, a, "server", "run_id")
	base, err := a.Get(ctx, "cloudcall:idem:evictions").Result()
	require.NoError(t, err)
	require.Contains(t, base, "\t"+run+"\t")
	require.NotContains(t, base, "\t"+run+"\t0", "evictions before the first charge")

	srv.Crash()
	clock.Add(2 * time.Minute)
	require.Eventually(t, func() bool {
		ok, err := warm.Reserve(ctx, "after", rec("t"), 24*time.Hour)
		return err == nil && ok
	}, 10*time.Second, 50*time.Millisecond)
	fresh := open(t, redisrecords.Options{URL: srv.URL(), Timeout: testTimeout, Log: log, Now: clock.Now})
	ok, err := fresh.Reserve(ctx, "fresh", rec("t"), 24*time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	require.NotContains(t, logs.String(), `"level":"ERROR"`)
	a = admin(t, srv)
	restarted := infoValue(t, a, "server", "run_id")
	require.NotEqual(t, run, restarted)
	base, err = a.Get(ctx, "cloudcall:idem:evictions").Result()
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(base, "\t"+restarted+"\t0"), base)

	gone := evictBriefly(t, srv, keys)
	require.NotEmpty(t, gone)
	clock.Add(2 * time.Minute)
	_, err = warm.Reserve(ctx, strings.TrimPrefix(gone[0], "cloudcall:"), rec("again"), 24*time.Hour)
	require.ErrorIs(t, err, idempotency.ErrLost, "evictions after the restart are found")
}

// CONFIG RESETSTAT sets evicted_keys to 0: no loss, a new baseline, and
// evictions after it are found.
func TestResetStatIsNotAnEvictionLoss(t *testing.T) {
	srv, clock, logs, r := afterEvictions(t)
	ctx := context.Background()
	keys := charged(t, r, "k", 20)
	a := admin(t, srv)
	require.NoError(t, a.ConfigResetStat(ctx).Err())
	require.Zero(t, evictedKeys(t, a))
	clock.Add(2 * time.Minute)
	ok, err := r.Reserve(ctx, "after", rec("t"), 24*time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	require.NotContains(t, logs.String(), `"level":"ERROR"`)
	base, err := a.Get(ctx, "cloudcall:idem:evictions").Result()
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(base, "\t0"), base)

	gone := evictBriefly(t, srv, keys)
	require.NotEmpty(t, gone)
	clock.Add(2 * time.Minute)
	_, err = r.Reserve(ctx, strings.TrimPrefix(gone[0], "cloudcall:"), rec("again"), 24*time.Hour)
	require.ErrorIs(t, err, idempotency.ErrLost, "evictions after the reset are found")
}

// appendfsync no is refused where CONFIG GET is allowed; where it is not
// (a managed service, CONFIG renamed away, an ACL), the charge runs and one
// WARN per instance says it could not be read: it went unsaid (an outside
// tester).
func TestAppendfsyncUnreadIsSaid(t *testing.T) {
	srv := redisproc.Start(t, true)
	ctx := context.Background()
	a := admin(t, srv)
	require.NoError(t, a.ConfigSet(ctx, "appendfsync", "no").Err())
	_, err := open(t, redisrecords.Options{URL: srv.URL(), Timeout: testTimeout}).Reserve(ctx, "k", rec("t"), time.Hour)
	require.ErrorIs(t, err, idempotency.ErrNotDurable)
	require.Contains(t, err.Error(), "appendfsync no")

	require.NoError(t, a.Do(ctx, "ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-config").Err())
	url := strings.Replace(srv.URL(), "redis://", "redis://app:pw@", 1)
	clock := &testClock{now: time.Now()}
	logs := &syncBuffer{}
	r := open(t, redisrecords.Options{URL: url, Timeout: testTimeout, Log: slog.New(slog.NewJSONHandler(logs, nil)), Now: clock.Now})
	for i := 0; i < 3; i++ {
		ok, err := r.Reserve(ctx, fmt.Sprintf("k%d", i), rec("t"), time.Hour)
		require.NoError(t, err)
		require.True(t, ok)
		clock.Add(2 * time.Minute) // a verdict each time
	}
	require.Equal(t, 1, strings.Count(logs.String(), `"level":"WARN"`), logs.String())
	require.Contains(t, logs.String(), "appendfsync could not be read")
}

// A failover to a node with evictions of its own from before (another
// run_id, a count above the baseline) is no eviction loss: its count says
// nothing of the records since the baseline. The baseline is taken anew.
func TestAFailoverToANodeThatEvictedBeforeIsNotAnEvictionLoss(t *testing.T) {
	ctx := context.Background()
	pair := newLaggedPair(t)
	evictBriefly(t, pair.replica, nil)
	evictBriefly(t, pair.replica, nil)
	clock := &testClock{now: time.Now()}
	logs := &syncBuffer{}
	r := open(t, redisrecords.Options{URL: pair.url, Timeout: testTimeout, Log: slog.New(slog.NewJSONHandler(logs, nil)), Now: clock.Now})
	charged(t, r, "k", 5)
	pair.cut() // the replica holds every write
	pair.failOver()
	clock.Add(2 * time.Minute)
	ok, err := reserveAfterFailOver(t, r, "after", "t")
	require.NoError(t, err)
	require.True(t, ok)
	require.NotContains(t, logs.String(), `"level":"ERROR"`)
	rep := admin(t, pair.replica)
	base, err := rep.Get(ctx, "cloudcall:idem:evictions").Result()
	require.NoError(t, err)
	require.Contains(t, base, "\t"+infoValue(t, rep, "server", "run_id")+"\t", "a baseline for the node failed over to")
}

// The outside re-tester's episode again, with the verdict still cached (the
// clock not moved past Recheck): 9 of 20 keys charged twice, since no check
// ran until the next verdict. Each reservation reads INFO stats in its round
// trip: the warm instance's next reservation of an evicted key is let go,
// the verdict taken again finds the evictions, the loss is written into the
// fence and said once, and no evicted key is taken again.
func TestEvictionsAreFoundAtTheNextReservation(t *testing.T) {
	ctx := context.Background()
	e := evictedEpisode(t)
	warm, gone, a, logs := e.warm, e.gone, e.admin, e.logs

	for _, k := range gone {
		ok, err := warm.Reserve(ctx, strings.TrimPrefix(k, "cloudcall:"), rec("again"), 24*time.Hour)
		require.ErrorIs(t, err, idempotency.ErrLost, k)
		require.False(t, ok, k)
		require.Zero(t, a.Exists(ctx, k).Val(), "%s was not taken again", k)
	}
	requireFenceLost(t, a)
	require.Equal(t, 1, strings.Count(logs.String(), `"level":"ERROR"`), logs.String())
	require.Contains(t, logs.String(), "evicted")
}

// The baseline is read once a verdict, so under allkeys-lru it is the
// coldest key: an outside re-tester saw it evicted with records, and the
// next verdict took a new one with nothing said (deleting it by hand did
// the same). A baseline missing next to the fence while evicted_keys is
// above 0 is a loss: found by an instance that never saw the store before,
// and by the warm one whose reservation saw the evictions.
func TestAMissingBaselineAfterEvictionsIsALoss(t *testing.T) {
	ctx := context.Background()
	e := evictedEpisode(t)
	warm, gone, a, logs := e.warm, e.gone, e.admin, e.logs
	require.NoError(t, a.Del(ctx, "cloudcall:idem:evictions").Err()) // as allkeys-lru, or a person, did

	fresh := open(t, redisrecords.Options{URL: e.srv.URL(), Timeout: testTimeout, Log: e.log, Now: e.clock.Now})
	for _, r := range []*redisrecords.Records{fresh, warm} {
		ok, err := r.Reserve(ctx, strings.TrimPrefix(gone[0], "cloudcall:"), rec("again"), 24*time.Hour)
		require.ErrorIs(t, err, idempotency.ErrLost)
		require.False(t, ok)
	}
	require.Zero(t, a.Exists(ctx, gone[0]).Val(), "not taken again")
	requireFenceLost(t, a)
	require.Equal(t, 1, strings.Count(logs.String(), `"level":"ERROR"`), logs.String())
	require.Contains(t, logs.String(), "baseline")
}

// A baseline missing next to the fence on a Redis that never evicted (an
// upgrade from a release without baselines, or one deleted while nothing
// was evicted) is taken anew: no loss.
func TestAMissingBaselineWithoutEvictionsIsTaken(t *testing.T) {
	srv := redisproc.Start(t, true)
	ctx := context.Background()
	clock := &testClock{now: time.Now()}
	logs := &syncBuffer{}
	r := open(t, redisrecords.Options{URL: srv.URL(), Timeout: testTimeout, Log: slog.New(slog.NewJSONHandler(logs, nil)), Now: clock.Now})
	charged(t, r, "k", 5)
	a := admin(t, srv)
	require.Zero(t, evictedKeys(t, a))
	require.NoError(t, a.Del(ctx, "cloudcall:idem:evictions").Err())
	clock.Add(2 * time.Minute) // a verdict
	ok, err := r.Reserve(ctx, "after", rec("t"), 24*time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	require.NotContains(t, logs.String(), `"level":"ERROR"`)
	fence, err := a.Get(ctx, "cloudcall:idem:fence").Result()
	require.NoError(t, err)
	base, err := a.Get(ctx, "cloudcall:idem:evictions").Result()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(base, fence+"\t") && strings.HasSuffix(base, "\t0"), base)
}

// A count of evictions that went down under a cached verdict (CONFIG
// RESETSTAT, or a restart) keeps the reservation that saw it and expires the
// verdict: the next call takes the baseline anew, so evictions after the
// reset are counted from it and not hidden under the old, higher count.
func TestACountThatWentDownIsVerifiedAgain(t *testing.T) {
	srv, _, logs, r := afterEvictions(t)
	ctx := context.Background()
	charged(t, r, "k", 3)
	a := admin(t, srv)
	require.NoError(t, a.ConfigResetStat(ctx).Err())
	for _, k := range []string{"after", "next"} {
		ok, err := r.Reserve(ctx, k, rec("t"), 24*time.Hour)
		require.NoError(t, err)
		require.True(t, ok, k)
	}
	base, err := a.Get(ctx, "cloudcall:idem:evictions").Result()
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(base, "\t0"), "taken anew with the clock not moved: %s", base)
	require.NotContains(t, logs.String(), `"level":"ERROR"`)
}

// requireFenceLost checks that the store's fence records a loss.
// afterEvictions is a Redis that evicted keys for a while and then stopped,
// and records on it with a test clock, logging into logs.
func afterEvictions(t *testing.T) (*redisproc.Server, *testClock, *syncBuffer, *redisrecords.Records) {
	t.Helper()
	srv := redisproc.Start(t, true)
	evictBriefly(t, srv, nil)
	clock := &testClock{now: time.Now()}
	logs := &syncBuffer{}
	r := open(t, redisrecords.Options{URL: srv.URL(), Timeout: testTimeout, Log: slog.New(slog.NewJSONHandler(logs, nil)), Now: clock.Now})
	return srv, clock, logs, r
}

func requireFenceLost(t *testing.T, a *redis.Client) {
	t.Helper()
	fence, err := a.Get(context.Background(), "cloudcall:idem:fence").Result()
	require.NoError(t, err)
	_, lost := idempotency.FenceLostAt(fence)
	require.True(t, lost, fence)
}

// episode is a warm instance that charged 40 keys on its own Redis, some of
// whose records were then evicted (evictBriefly).
type episode struct {
	srv   *redisproc.Server
	clock *testClock
	logs  *syncBuffer
	log   *slog.Logger
	warm  *redisrecords.Records
	gone  []string
	admin *redis.Client
}

func evictedEpisode(t *testing.T) episode {
	t.Helper()
	e := episode{srv: redisproc.Start(t, true), clock: &testClock{now: time.Now()}, logs: &syncBuffer{}}
	e.log = slog.New(slog.NewJSONHandler(e.logs, nil))
	e.warm = open(t, redisrecords.Options{URL: e.srv.URL(), Timeout: testTimeout, Log: e.log, Now: e.clock.Now})
	e.gone = evictBriefly(t, e.srv, charged(t, e.warm, "k", 40))
	require.NotEmpty(t, e.gone)
	e.admin = admin(t, e.srv)
	return e
}
