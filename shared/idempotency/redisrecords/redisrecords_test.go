package redisrecords_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/cloudcall/cloudcall/shared/syncbuf"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/idempotency/recordstest"
	"github.com/cloudcall/cloudcall/shared/idempotency/redisrecords"
	"github.com/cloudcall/cloudcall/shared/idempotency/redisrecords/redisproc"
	"github.com/cloudcall/cloudcall/shared/store/redisstore/redistest"
)

func open(t *testing.T, o redisrecords.Options) *redisrecords.Records {
	r, err := redisrecords.Open(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// The protocol on the shared test Redis (which has no AOF: persistence is
// assumed here; the tests below are about persistence).
func TestConformance(t *testing.T) {
	url := redistest.URL(t)
	recordstest.Run(t, open(t, redisrecords.Options{URL: url, Prefix: redistest.Keyspace(t, url), Persistence: redisrecords.Assume, Timeout: testTimeout}), recordstest.Options{})
}

// The protocol on a Redis with AOF, verified as money needs it.
func TestConformanceWithAOF(t *testing.T) {
	srv := redisproc.Start(t, true)
	recordstest.Run(t, open(t, redisrecords.Options{URL: srv.URL(), Timeout: testTimeout}), recordstest.Options{})
}

func rec(tok string) idempotency.Record {
	return idempotency.Record{Token: tok, State: idempotency.InProgress, Fingerprint: "fp"}
}

// A Redis without persistence never takes a record: a restart would forget
// it and let the key charge again.
func TestRefusesRedisWithoutPersistence(t *testing.T) {
	srv := redisproc.Start(t, false)
	r := open(t, redisrecords.Options{URL: srv.URL()})
	ok, err := r.Reserve(context.Background(), "k", rec("t"), time.Minute)
	require.ErrorIs(t, err, idempotency.ErrNotDurable)
	require.False(t, ok)
	require.Contains(t, err.Error(), "aof_enabled:0")
	require.Contains(t, err.Error(), "appendonly yes")
	require.Contains(t, err.Error(), "CLOUDCALL_IDEMPOTENCY_STORE")
	require.Equal(t, int64(0), srv.Keys(), "nothing written")
}

// A record taken on a Redis with AOF survives a crash; the fence too, so
// the verdict holds.
func TestRecordSurvivesACrashWithAOF(t *testing.T) {
	srv := redisproc.Start(t, true)
	r := open(t, redisrecords.Options{URL: srv.URL()})
	ctx := context.Background()
	ok, err := r.Reserve(ctx, "k", rec("t1"), time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	srv.Crash()
	require.Eventually(t, func() bool { _, err := r.Read(ctx, "k"); return err == nil }, 10*time.Second, 50*time.Millisecond)
	got, err := r.Read(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "t1", got.Token)
	ok, err = r.Reserve(ctx, "k", rec("t2"), time.Hour)
	require.NoError(t, err)
	require.False(t, ok, "the key is still taken after the crash")
}

// A warm instance that verified a Redis with AOF notices when that Redis
// comes back empty without persistence (the fence is gone) and refuses at
// once, not after its verdict would have expired.
func TestFenceCatchesARedisReplacedByAnEmptyOne(t *testing.T) {
	withAOF := redisproc.Start(t, true)
	r := open(t, redisrecords.Options{URL: withAOF.URL(), Recheck: time.Hour})
	ctx := context.Background()
	ok, err := r.Reserve(ctx, "k", rec("t1"), time.Hour)
	require.NoError(t, err)
	require.True(t, ok)

	// Same address, new server: no persistence, empty.
	withAOF.Reconfigure(false)
	require.Eventually(t, func() bool {
		_, err := r.Reserve(ctx, "k", rec("t2"), time.Hour)
		return err != nil
	}, 10*time.Second, 50*time.Millisecond)
	_, err = r.Reserve(ctx, "k", rec("t2"), time.Hour)
	require.ErrorIs(t, err, idempotency.ErrNotDurable)
}

func TestAssumeIsExplicit(t *testing.T) {
	_, err := redisrecords.Open(redisrecords.Options{URL: "redis://127.0.0.1:6379/0", Persistence: "yes"})
	require.ErrorContains(t, err, "expected verify or assume")
	srv := redisproc.Start(t, false)
	r := open(t, redisrecords.Options{URL: srv.URL(), Persistence: redisrecords.Assume})
	ok, err := r.Reserve(context.Background(), "k", rec("t"), time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
}

func TestUnreachableIsUnavailable(t *testing.T) {
	r := open(t, redisrecords.Options{URL: "redis://:hunter2@127.0.0.1:1/0", Timeout: 200 * time.Millisecond})
	_, err := r.Reserve(context.Background(), "k", rec("t"), time.Minute)
	require.ErrorIs(t, err, idempotency.ErrUnavailable)
	require.NotContains(t, err.Error(), "hunter2")
}

// The emulator's embedded store (miniredis) runs the same scripts, so the
// charge works under `cloudcall local`, which sets Persistence: Assume for
// it (no real money moves against the sandboxes).
func TestConformanceOnMiniredis(t *testing.T) {
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true) // wall-clock TTLs, as the emulator runs it
	require.NoError(t, m.Start())
	t.Cleanup(m.Close)
	url := "redis://" + m.Addr() + "/0"
	recordstest.Run(t, open(t, redisrecords.Options{URL: url, Persistence: redisrecords.Assume, Timeout: testTimeout}), recordstest.Options{})
	// Verified, it refuses: miniredis does not report its persistence. That
	// is a setting (-1601, ErrNotDurable), not an outage to retry (-1501):
	// `cloudcall local --upstream real` answered "retry when the records
	// store is back" for ever.
	_, err := open(t, redisrecords.Options{URL: url}).Reserve(context.Background(), "k", rec("t"), time.Minute)
	require.ErrorIs(t, err, idempotency.ErrNotDurable)
	require.NotErrorIs(t, err, idempotency.ErrUnavailable)
	require.ErrorContains(t, err, "does not report its persistence")
	require.ErrorIs(t, redisrecords.Persistence(context.Background(), url), idempotency.ErrNotDurable)
}

// Records the charge wrote before this format (a JSON string, SET NX) are
// still honoured after an upgrade: the key stays taken and its answer is
// read back.
func TestLegacyRecordsAreHonoured(t *testing.T) {
	url := redistest.URL(t)
	prefix := redistest.Keyspace(t, url)
	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	c := redis.NewClient(opts)
	defer c.Close()
	ctx := context.Background()
	legacy := `{"state":"done","fingerprint":"fp","started":1700000000000,"status":200,"response":{"errCode":0,"errMsg":"top.ascp.launchExtraCharge:ok"}}`
	require.NoError(t, c.Set(ctx, prefix+"idem:top:1:old", legacy, time.Hour).Err())
	r := open(t, redisrecords.Options{URL: url, Prefix: prefix, Persistence: redisrecords.Assume})
	ok, err := r.Reserve(ctx, "idem:top:1:old", rec("new"), time.Hour)
	require.NoError(t, err)
	require.False(t, ok, "the old record still holds its key")
	got, err := r.Read(ctx, "idem:top:1:old")
	require.NoError(t, err)
	require.Equal(t, idempotency.Done, got.State)
	require.Equal(t, 200, got.Status)
	require.JSONEq(t, `{"errCode":0,"errMsg":"top.ascp.launchExtraCharge:ok"}`, string(got.Body))
}

// Warm, run in the background at cold start, leaves the first charge only
// its own commands: the three scripts are loaded and durability is checked,
// with no record written (only the durability fence).
func TestWarmLoadsScriptsAndChecksDurability(t *testing.T) {
	srv := redisproc.Start(t, true)
	r := open(t, redisrecords.Options{URL: srv.URL(), Timeout: testTimeout})
	require.NoError(t, r.Warm(context.Background()))
	opts, err := redis.ParseURL(srv.URL())
	require.NoError(t, err)
	c := redis.NewClient(opts)
	defer c.Close()
	info, err := c.Info(context.Background(), "memory").Result()
	require.NoError(t, err)
	require.Contains(t, info, "number_of_cached_scripts:3")
	require.Equal(t, int64(2), srv.Keys(), "only the durability fence and its eviction baseline")
	ok, err := r.Reserve(context.Background(), "k", rec("t"), time.Minute)
	require.NoError(t, err)
	require.True(t, ok)

	// Without persistence Warm says so and writes nothing; the charge then
	// hears the same refusal.
	bare := redisproc.Start(t, false)
	nr := open(t, redisrecords.Options{URL: bare.URL(), Timeout: testTimeout})
	require.ErrorIs(t, nr.Warm(context.Background()), idempotency.ErrNotDurable)
	require.Equal(t, int64(0), bare.Keys())
	_, err = nr.Reserve(context.Background(), "k", rec("t"), time.Minute)
	require.ErrorIs(t, err, idempotency.ErrNotDurable)
}

// With persistence verified, a reservation is one round trip: the fence is
// read in the same pipeline as the reservation, taken or refused.
func TestVerifiedReservationIsOneRoundTrip(t *testing.T) {
	srv := redisproc.Start(t, true)
	hp, db := redistest.HostPort(srv.URL())
	p := redistest.NewProxy(t, hp)
	r := open(t, redisrecords.Options{URL: "redis://" + p.Addr() + db, Timeout: testTimeout})
	ctx := context.Background()
	require.NoError(t, r.Warm(ctx)) // verified: INFO, CONFIG, the fence, the scripts
	for _, c := range []struct {
		token string
		taken bool
	}{{"t1", true}, {"t2", false}} {
		before := p.Sends()
		ok, err := r.Reserve(ctx, "k", rec(c.token), time.Minute)
		require.NoError(t, err)
		require.Equal(t, c.taken, ok)
		require.Equal(t, int64(1), p.Sends()-before, "one round trip for %s", c.token)
	}
	got, err := r.Read(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "t1", got.Token)
}

// The fence read with a reservation decides it: when the fence has gone
// (here deleted; in life a Redis emptied by a restart or failover), the
// reservation taken in that round trip is released and the Redis verified
// again. By default the loss is then written into the fence and the charge
// refused; with AfterLoss continue the key is taken. On a Redis that no
// longer persists, the charge is refused. Nothing is left behind but the
// fence.
func TestAReservationWithoutItsFenceIsReleased(t *testing.T) {
	for _, c := range []struct {
		name      string
		persist   bool
		afterLoss string
	}{
		{"still persistent: the loss is written and the charge refused", true, ""},
		{"still persistent, continue: verified again, then taken", true, idempotency.AfterLossContinue},
		{"no longer persistent: released and refused", false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := redisproc.Start(t, true)
			r := open(t, redisrecords.Options{URL: srv.URL(), Timeout: testTimeout, Recheck: time.Hour, AfterLoss: c.afterLoss})
			ctx := context.Background()
			require.NoError(t, r.Warm(ctx))
			opts, err := redis.ParseURL(srv.URL())
			require.NoError(t, err)
			admin := redis.NewClient(opts)
			defer admin.Close()
			old, err := admin.Get(ctx, "cloudcall:idem:fence").Result()
			require.NoError(t, err)
			require.NoError(t, admin.Del(ctx, "cloudcall:idem:fence").Err())
			if !c.persist {
				require.NoError(t, admin.ConfigSet(ctx, "appendonly", "no").Err())
			}

			ok, err := r.Reserve(ctx, "k", rec("t1"), time.Minute)
			if !c.persist {
				require.ErrorIs(t, err, idempotency.ErrNotDurable)
				require.False(t, ok)
				require.Empty(t, recordKeys(t, srv), "the reservation taken with the missing fence was released")
				return
			}
			if c.afterLoss == "" {
				require.ErrorIs(t, err, idempotency.ErrLost)
				require.False(t, ok)
				fence, err := admin.Get(ctx, "cloudcall:idem:fence").Result()
				require.NoError(t, err)
				require.True(t, strings.HasPrefix(fence, "lost "), fence)
				require.Empty(t, recordKeys(t, srv), "the reservation was released")
				return
			}
			require.NoError(t, err)
			require.True(t, ok)
			fence, err := admin.Get(ctx, "cloudcall:idem:fence").Result()
			require.NoError(t, err)
			require.NotEqual(t, old, fence, "verified again: a new fence")
			got, err := r.Read(ctx, "k")
			require.NoError(t, err)
			require.Equal(t, "t1", got.Token)
			require.Equal(t, []string{"cloudcall:k"}, recordKeys(t, srv))
		})
	}
}

// A password the server refuses, or a database number it does not have, is
// ErrSettings (-1601 at the charge), not the retryable ErrUnavailable.
func TestRefusedSettingsAreNotRetryable(t *testing.T) {
	srv := redisproc.Start(t, true)
	u := strings.TrimSuffix(srv.URL(), "/0")
	o, err := redis.ParseURL(srv.URL())
	require.NoError(t, err)
	admin := redis.NewClient(o)
	require.NoError(t, admin.ConfigSet(context.Background(), "requirepass", "right-pass").Err())
	t.Cleanup(func() { _ = admin.Close() })
	right := strings.Replace(u, "redis://", "redis://:right-pass@", 1)
	for _, raw := range []string{u + "/0", strings.Replace(u, "redis://", "redis://:hunter2@", 1) + "/0", right + "/99"} {
		r := open(t, redisrecords.Options{URL: raw, Timeout: testTimeout})
		_, err := r.Reserve(context.Background(), "k", rec("t"), time.Minute)
		require.ErrorIs(t, err, idempotency.ErrSettings, raw)
		require.NotErrorIs(t, err, idempotency.ErrUnavailable)
		require.NotContains(t, err.Error(), "hunter2")
	}
	// The right settings work.
	ok, err := open(t, redisrecords.Options{URL: right + "/0", Timeout: testTimeout}).Reserve(context.Background(), "k", rec("t"), time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
}

// verifiedRecord is a Redis with AOF, verified, holding the record "k", and
// the log of its Records.
func verifiedRecord(t *testing.T, afterLoss string, now func() time.Time) (*redisproc.Server, *redisrecords.Records, *bytes.Buffer) {
	t.Helper()
	srv := redisproc.Start(t, true)
	logs := &bytes.Buffer{}
	r := open(t, redisrecords.Options{URL: srv.URL(), Recheck: time.Hour, Log: slog.New(slog.NewJSONHandler(logs, nil)), AfterLoss: afterLoss, Now: now})
	ok, err := r.Reserve(context.Background(), "k", rec("t1"), time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	return srv, r, logs
}

// With AfterLoss continue, a Redis with AOF that loses its data (FLUSHALL
// here; a wiped disk or a failover to a node without the data) still
// persists what comes next, so reservations go on after the check, but what
// was lost is lost: the instance that had verified the fence says so at
// ERROR, once, for the operator to reconcile.
func TestALostFenceIsLoggedAsDataLossWhenContinuing(t *testing.T) {
	srv, r, logs := verifiedRecord(t, idempotency.AfterLossContinue, nil)
	ctx := context.Background()
	require.Empty(t, logs.String(), "a first verification is not a loss")

	o, err := redis.ParseURL(srv.URL())
	require.NoError(t, err)
	admin := redis.NewClient(o)
	t.Cleanup(func() { _ = admin.Close() })
	require.NoError(t, admin.FlushAll(ctx).Err())

	ok, err := r.Reserve(ctx, "k", rec("t2"), time.Hour)
	require.NoError(t, err)
	require.True(t, ok, "the lost record is gone: the key is free again")
	require.Equal(t, 1, strings.Count(logs.String(), `"level":"ERROR"`), logs.String())
	require.Contains(t, logs.String(), "lost its data")
	ok, err = r.Reserve(ctx, "k2", rec("t3"), time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 1, strings.Count(logs.String(), `"level":"ERROR"`), "said once")
}

// A Redis that came back empty without AOF (refused, -1601) and was then
// set right and restarted empty again let the keys charged before charge
// again without the ERROR line: the fence found gone was forgotten when the
// first check after the loss failed (outside tester). The loss is judged at
// the first verification that succeeds: refused from then on.
func TestALossIsSaidAfterAFailedCheck(t *testing.T) {
	srv, r, logs := verifiedRecord(t, "", nil)
	ctx := context.Background()

	srv.Reconfigure(false) // back empty, appendonly off
	require.Eventually(t, func() bool {
		_, err := r.Reserve(ctx, "k", rec("t2"), time.Hour)
		return errors.Is(err, idempotency.ErrNotDurable)
	}, 10*time.Second, 50*time.Millisecond)
	require.Empty(t, logs.String(), "refused: nothing charged, nothing said yet")

	srv.Reconfigure(true) // set right, and empty again
	require.Eventually(t, func() bool {
		_, err := r.Reserve(ctx, "k", rec("t3"), time.Hour)
		return errors.Is(err, idempotency.ErrLost)
	}, 15*time.Second, 100*time.Millisecond, "the key charged before is refused, not free again")
	require.Equal(t, 1, strings.Count(logs.String(), `"level":"ERROR"`), logs.String())
	require.Contains(t, logs.String(), "lost its data")
}

// admin is a plain client of srv.
func admin(t *testing.T, srv *redisproc.Server) *redis.Client {
	o, err := redis.ParseURL(srv.URL())
	require.NoError(t, err)
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// A Redis with AOF that lost its data let the keys charged before charge
// again: an outside tester deleted the AOF under charge load and 30 keys
// were charged 96 times. The warm instance that finds its fence gone writes
// the loss into the fence, and from then on every instance refuses charges,
// a new one that re-fenced the empty Redis before the loss was found too,
// until a person reopens the store. The record of a call that did run is
// still written (Rewrite), so its repeats answer from it after the reopening.
func TestALossRefusesEveryInstanceUntilReopened(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	srv, warm, logs := verifiedRecord(t, "", clock)
	ctx := context.Background()
	for i := 0; i < 20; i++ { // the warm instance has seen a count of writes the emptied store is far from
		ok, err := warm.Reserve(ctx, fmt.Sprintf("before-%d", i), rec("b"), time.Hour)
		require.NoError(t, err)
		require.True(t, ok)
	}
	a := admin(t, srv)
	require.NoError(t, a.FlushAll(ctx).Err())

	// A new instance comes first: it cannot tell an emptied store from a
	// new one, and takes a key.
	fresh := open(t, redisrecords.Options{URL: srv.URL(), Recheck: time.Hour, Now: clock})
	ok, err := fresh.Reserve(ctx, "k-new", rec("n1"), time.Hour)
	require.NoError(t, err)
	require.True(t, ok)

	// The warm instance finds the fence replaced: the loss is written.
	ok, refusal := warm.Reserve(ctx, "k", rec("t2"), time.Hour)
	require.ErrorIs(t, refusal, idempotency.ErrLost)
	require.False(t, ok)
	require.Contains(t, refusal.Error(), "cloudcall records reopen --reconciled")
	fence, err := a.Get(ctx, "cloudcall:idem:fence").Result()
	require.NoError(t, err)
	at, lost := idempotency.FenceLostAt(fence)
	require.True(t, lost, fence)
	require.Contains(t, refusal.Error(), "found "+at)
	require.Equal(t, 1, strings.Count(logs.String(), `"level":"ERROR"`), logs.String())
	_, err = warm.Read(ctx, "k")
	require.ErrorIs(t, err, idempotency.ErrNotFound, "the refused reservation was released")

	// The new instance refuses too, at its next reservation, and so does
	// one started after the loss was found.
	ok, err = fresh.Reserve(ctx, "k-new-2", rec("n2"), time.Hour)
	require.ErrorIs(t, err, idempotency.ErrLost)
	require.False(t, ok)
	later := open(t, redisrecords.Options{URL: srv.URL(), Recheck: time.Hour, Now: clock})
	_, err = later.Reserve(ctx, "k", rec("l1"), time.Hour)
	require.ErrorIs(t, err, idempotency.ErrLost)

	// A call that ran writes its record again regardless.
	ok, err = warm.Rewrite(ctx, "k-ran", rec("r1"), time.Hour)
	require.NoError(t, err)
	require.True(t, ok)

	// A fence that records no loss is not reopened; a lost one is, once.
	was, err := idempotency.Reopen(ctx, later, time.Now(), func(err error) { t.Errorf("clock: %v", err) })
	require.NoError(t, err)
	require.Equal(t, fence, was)
	was, err = idempotency.Reopen(ctx, later, time.Now(), func(err error) { t.Errorf("clock: %v", err) })
	require.NoError(t, err)
	require.Empty(t, was, "nothing to reopen any more")

	// Each instance takes the reopening once its refusal's second is over,
	// and goes on writing: the store counts its writes from 1 again, below
	// what the warm instances saw before the loss, and that is no new loss.
	now = now.Add(2 * time.Second)
	for i, r := range []*redisrecords.Records{warm, fresh, later} {
		for j := 0; j < 3; j++ {
			k := fmt.Sprintf("after-%d-%d", i, j)
			ok, err := r.Reserve(ctx, k, rec("x"), time.Hour)
			require.NoError(t, err, k)
			require.True(t, ok, k)
			ok, err = r.Finish(ctx, k, "x", rec("y"), time.Hour)
			require.NoError(t, err, k)
			require.True(t, ok, k)
		}
	}
	got, err := later.Read(ctx, "k-ran")
	require.NoError(t, err)
	require.Equal(t, "r1", got.Token)
	require.Equal(t, 1, strings.Count(logs.String(), `"level":"WARN"`), logs.String())
	require.Contains(t, logs.String(), "reopened after a loss")
}

// A Redis with AOF that may evict keys when full is refused too: an outside
// tester filled one (maxmemory 8mb, volatile-lru, the default of ApsaraDB
// for Redis), every record was evicted while the fence (no TTL) stayed, and
// every key charged again with nothing logged. With noeviction, or with no
// memory limit, it runs.
func TestRefusesARedisThatMayEvict(t *testing.T) {
	srv := redisproc.Start(t, true)
	admin := redis.NewClient(&redis.Options{Addr: strings.TrimSuffix(strings.TrimPrefix(srv.URL(), "redis://"), "/0")})
	t.Cleanup(func() { _ = admin.Close() })
	ctx := context.Background()
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory", "8mb").Err())
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory-policy", "volatile-lru").Err())

	now := time.Now()
	r := open(t, redisrecords.Options{URL: srv.URL(), Now: func() time.Time { return now }})
	ok, err := r.Reserve(ctx, "k", rec("t"), time.Minute)
	require.ErrorIs(t, err, idempotency.ErrNotDurable)
	require.False(t, ok)
	require.Contains(t, err.Error(), "maxmemory_policy:volatile-lru")
	require.Contains(t, err.Error(), "maxmemory-policy noeviction")
	require.Equal(t, int64(0), srv.Keys(), "nothing written, not even the fence")
	require.ErrorIs(t, redisrecords.Persistence(ctx, srv.URL()), idempotency.ErrNotDurable, "cloudcall local says it at start too")

	// No memory limit: nothing is evicted whatever the policy.
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory", "0").Err())
	now = now.Add(2 * time.Second) // past the refusal's one-second hold
	ok, err = r.Reserve(ctx, "k", rec("t"), time.Minute)
	require.NoError(t, err)
	require.True(t, ok)

	// A limit with noeviction: a full Redis refuses writes instead.
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory", "8mb").Err())
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())
	require.NoError(t, redisrecords.Persistence(ctx, srv.URL()))
}

// Two warm instances reserve from 16 goroutines each while the Redis loses
// its data: no reservation taken after the loss stays (each read the fence
// in its own round trip), every one after the first refusal is refused too,
// and the fence records the loss. Run with -race: the verdict, the refusal
// and the fence are shared by the goroutines of an instance.
func TestALossUnderConcurrentReservations(t *testing.T) {
	srv := redisproc.Start(t, true)
	ctx := context.Background()
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	var insts []*redisrecords.Records
	for i := 0; i < 2; i++ {
		r := open(t, redisrecords.Options{URL: srv.URL(), Recheck: time.Hour, Timeout: testTimeout, Log: log})
		require.NoError(t, r.Warm(ctx))
		insts = append(insts, r)
	}
	var (
		stop    atomic.Bool
		refused atomic.Bool
		after   atomic.Int32 // reservations taken after some goroutine was refused
		wg      sync.WaitGroup
		n       atomic.Int64
	)
	for _, r := range insts {
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					seen := refused.Load()
					ok, err := r.Reserve(ctx, fmt.Sprintf("k%d", n.Add(1)), rec("t"), time.Hour)
					switch {
					case errors.Is(err, idempotency.ErrLost):
						refused.Store(true)
					case err != nil:
						t.Errorf("reserve: %v", err)
						return
					case ok && seen:
						after.Add(1)
					}
				}
			}()
		}
	}
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, admin(t, srv).FlushAll(ctx).Err())
	require.Eventually(t, refused.Load, 5*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	require.Zero(t, after.Load(), "no reservation taken once the loss was found")
	require.Empty(t, recordKeys(t, srv), "every reservation taken after the loss was let go")
	fence, err := admin(t, srv).Get(ctx, "cloudcall:idem:fence").Result()
	require.NoError(t, err)
	_, lost := idempotency.FenceLostAt(fence)
	require.True(t, lost, fence)
	errs := strings.Count(logs.String(), `"level":"ERROR"`)
	require.True(t, errs == 1 || errs == 2, "one ERROR per instance that found the loss, at most: %d", errs)
}

// recordKeys lists the keys in srv but the fence, the counts of writes and
// the eviction baseline.
func recordKeys(t *testing.T, srv *redisproc.Server) []string {
	t.Helper()
	keys, err := admin(t, srv).Keys(context.Background(), "*").Result()
	require.NoError(t, err)
	var out []string
	for _, k := range keys {
		if k != "cloudcall:idem:fence" && k != "cloudcall:idem:evictions" && !strings.HasPrefix(k, "cloudcall:idem:writes") {
			out = append(out, k)
		}
	}
	return out
}

// syncBuffer is a log sink many goroutines write to.
type syncBuffer = syncbuf.Buffer

// laggedPair is a primary with AOF, reached through a proxy, and a replica
// that holds its data up to now. cut stops the replica's replication (it
// lags from then on); failOver sends the proxy's connections to it.
type laggedPair struct {
	url      string // the proxy's
	replica  *redisproc.Server
	cut      func()
	failOver func()
}

func newLaggedPair(t *testing.T) laggedPair {
	ctx := context.Background()
	primary, replica := redisproc.Start(t, true), redisproc.Start(t, true)
	primaryAddr, _ := redistest.HostPort(primary.URL())
	replicaAddr, _ := redistest.HostPort(replica.URL())
	proxy := redistest.NewProxy(t, primaryAddr)
	rep := admin(t, replica)
	return laggedPair{url: "redis://" + proxy.Addr() + "/0", replica: replica,
		cut: func() {
			// Redis waits 5 s for more replicas before a diskless full sync.
			require.NoError(t, admin(t, primary).ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err())
			host, port, _ := strings.Cut(primaryAddr, ":")
			require.NoError(t, rep.SlaveOf(ctx, host, port).Err())
			require.Eventually(t, func() bool {
				info := rep.Info(ctx, "replication").Val()
				return strings.Contains(info, "master_link_status:up") && admin(t, primary).DBSize(ctx).Val() == rep.DBSize(ctx).Val()
			}, 10*time.Second, 20*time.Millisecond)
			require.NoError(t, rep.SlaveOf(ctx, "NO", "ONE").Err())
		},
		failOver: func() { proxy.FailOver(replicaAddr) }}
}

// reserveAfterFailOver reserves key on r until the pool has reconnected.
func reserveAfterFailOver(t *testing.T, r *redisrecords.Records, key, tok string) (bool, error) {
	var ok bool
	var err error
	require.Eventually(t, func() bool {
		ok, err = r.Reserve(context.Background(), key, rec(tok), time.Hour)
		return !errors.Is(err, idempotency.ErrUnavailable)
	}, 10*time.Second, 50*time.Millisecond)
	return ok, err
}

// A failover to a replica that lagged: it holds the fence (written long
// before) but not the last writes. An outside tester charged 10 keys, cut
// the replica off, failed over to it, and every repeat charged again with
// nothing said. The counts of record writes went back with them: the next
// write of the instance that saw them is refused and the loss written into
// the fence.
func TestAFailoverToAReplicaThatLaggedIsALoss(t *testing.T) {
	for _, c := range []struct {
		afterLoss string
		idle      bool // past Recheck: the repeat's reservation comes right after a new verification
	}{{"", false}, {"", true}, {idempotency.AfterLossContinue, false}} {
		t.Run(fmt.Sprintf("afterLoss=%s,idle=%v", c.afterLoss, c.idle), func(t *testing.T) {
			now := time.Now()
			var mu sync.Mutex
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			ctx := context.Background()
			pair := newLaggedPair(t)
			logs := &syncBuffer{}
			r := open(t, redisrecords.Options{URL: pair.url, Recheck: time.Minute, Timeout: testTimeout,
				Log: slog.New(slog.NewJSONHandler(logs, nil)), AfterLoss: c.afterLoss, Now: clock})
			ok, err := r.Reserve(ctx, "k1", rec("t1"), time.Hour)
			require.NoError(t, err)
			require.True(t, ok)
			pair.cut()

			ok, err = r.Reserve(ctx, "k2", rec("t2"), time.Hour) // charged on the primary only
			require.NoError(t, err)
			require.True(t, ok)
			pair.failOver()
			if c.idle {
				mu.Lock()
				now = now.Add(2 * time.Minute)
				mu.Unlock()
			}

			// The repeat of k2 finds no record on the promoted replica.
			_, err = reserveAfterFailOver(t, r, "k2", "t3")
			require.Contains(t, logs.String(), "lost its latest writes")
			fence, ferr := admin(t, pair.replica).Get(ctx, "cloudcall:idem:fence").Result()
			require.NoError(t, ferr)
			_, lost := idempotency.FenceLostAt(fence)
			if c.afterLoss == idempotency.AfterLossContinue {
				require.NoError(t, err, "continue: charged on, said at ERROR")
				require.False(t, lost)
				return
			}
			require.ErrorIs(t, err, idempotency.ErrLost)
			require.True(t, lost, fence)
			require.Equal(t, []string{"cloudcall:k1"}, recordKeys(t, pair.replica), "the refused reservation was let go")
		})
	}
}

// The instance whose writes were lost finds it at its next write however
// many writes other instances made since: with only the shared count, a
// re-tester's repeats on another instance pushed it past what the first had
// seen, and nothing was ever found. (Those repeats themselves, on an
// instance that saw none of the lost writes, cannot be refused: documented.)
func TestALaggedFailoverIsFoundByTheInstanceThatLostWrites(t *testing.T) {
	ctx := context.Background()
	pair := newLaggedPair(t)
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	a := open(t, redisrecords.Options{URL: pair.url, Recheck: time.Hour, Timeout: testTimeout, Log: log})
	b := open(t, redisrecords.Options{URL: pair.url, Recheck: time.Hour, Timeout: testTimeout, Log: log})
	for _, r := range []*redisrecords.Records{a, b} {
		require.NoError(t, r.Warm(ctx))
	}
	pair.cut()
	for i := 0; i < 5; i++ { // lost with the failover
		ok, err := a.Reserve(ctx, fmt.Sprintf("a%d", i), rec("ta"), time.Hour)
		require.NoError(t, err)
		require.True(t, ok)
	}
	pair.failOver()
	ok, err := reserveAfterFailOver(t, b, "b0", "tb")
	require.NoError(t, err)
	require.True(t, ok)
	for i := 1; i < 20; i++ { // far past the shared count a saw
		ok, err := b.Reserve(ctx, fmt.Sprintf("b%d", i), rec("tb"), time.Hour)
		require.NoError(t, err)
		require.True(t, ok)
	}
	require.NotContains(t, logs.String(), "lost its latest writes", "b saw none of the lost writes")

	_, err = reserveAfterFailOver(t, a, "a-next", "ta2")
	require.ErrorIs(t, err, idempotency.ErrLost)
	require.Contains(t, logs.String(), "lost its latest writes")
	_, err = b.Reserve(ctx, "b-next", rec("tb2"), time.Hour)
	require.ErrorIs(t, err, idempotency.ErrLost, "every instance refuses once it is written into the fence")
}

// A replica that lagged behind a reopening holds the one before: taking it
// as good (any reopened fence held) forgot the counts too, and the repeats
// of the writes the failover lost charged again (an outside tester: 10 of
// 10). A reopening older than the one an instance knew is a loss. And the
// reopening that closes it goes past what the instances knew, also when the
// loss was marked over the replica's older fence (a re-tester: an epoch one
// past the replica's fell below theirs, and they found a new loss within a
// second of the reopening).
func TestAReplicaBehindAReopeningIsALoss(t *testing.T) {
	for _, markedByHand := range []bool{false, true} {
		t.Run(fmt.Sprintf("markedByHand=%v", markedByHand), func(t *testing.T) {
			ctx := context.Background()
			now := time.Now()
			var mu sync.Mutex
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			tick := func() { mu.Lock(); now = now.Add(2 * time.Second); mu.Unlock() } // past a refusal's second
			pair := newLaggedPair(t)
			logs := &syncBuffer{}
			r := open(t, redisrecords.Options{URL: pair.url, Recheck: time.Hour, Timeout: testTimeout, Log: slog.New(slog.NewJSONHandler(logs, nil)), Now: clock})
			operator := open(t, redisrecords.Options{URL: pair.url, Timeout: testTimeout})
			reopen := func() {
				_, err := idempotency.MarkLost(ctx, operator, time.Now())
				require.NoError(t, err)
				_, err = r.Reserve(ctx, fmt.Sprintf("refused-%d", clock().UnixNano()), rec("x"), time.Hour)
				require.ErrorIs(t, err, idempotency.ErrLost)
				was, err := idempotency.Reopen(ctx, operator, time.Now(), func(err error) { t.Errorf("clock: %v", err) })
				require.NoError(t, err)
				require.NotEmpty(t, was)
				tick()
			}
			reserve := func(key string) {
				ok, err := r.Reserve(ctx, key, rec("t"), time.Hour)
				require.NoError(t, err, key)
				require.True(t, ok, key)
			}
			reserve("k1")
			reopen()
			reserve("k2") // takes the first reopening
			pair.cut()    // the replica holds it, and lags from here
			reopen()
			reserve("k3") // takes the second
			reserve("k4") // lost with the failover
			pair.failOver()

			if markedByHand {
				// A failover nobody watched: the operator marks it first, over
				// the replica's older reopening.
				require.Eventually(t, func() bool {
					_, err := idempotency.MarkLost(ctx, operator, time.Now())
					return err == nil
				}, 10*time.Second, 50*time.Millisecond)
			} else {
				_, err := reserveAfterFailOver(t, r, "k4", "t2")
				require.ErrorIs(t, err, idempotency.ErrLost)
			}
			fence, ferr := admin(t, pair.replica).Get(ctx, "cloudcall:idem:fence").Result()
			require.NoError(t, ferr)
			_, lost := idempotency.FenceLostAt(fence)
			require.True(t, lost, fence)
			// Reconciled and reopened: every instance goes on, none finds a
			// new loss.
			_, err := idempotency.Reopen(ctx, operator, time.Now(), func(err error) { t.Errorf("clock: %v", err) })
			require.NoError(t, err)
			tick()
			if markedByHand {
				_, err = reserveAfterFailOver(t, r, "k5", "t")
				require.NoError(t, err)
			} else {
				reserve("k5")
			}
			reserve("k6")
			fence, ferr = admin(t, pair.replica).Get(ctx, "cloudcall:idem:fence").Result()
			require.NoError(t, ferr)
			_, reopened := idempotency.FenceReopenedAt(fence)
			require.True(t, reopened, fence)
			require.Equal(t, 1-btoi(markedByHand), strings.Count(logs.String(), `"level":"ERROR"`), logs.String())
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A store emptied before any instance charged again shows no fence, as a
// new one does: a person who knows it lost its data marks it, and the first
// charge is refused instead of fencing it anew.
func TestAnUnfencedStoreCanBeMarkedLost(t *testing.T) {
	srv := redisproc.Start(t, true)
	ctx := context.Background()
	operator := open(t, redisrecords.Options{URL: srv.URL(), Timeout: testTimeout})
	was, err := idempotency.MarkLost(ctx, operator, time.Now())
	require.NoError(t, err)
	require.Equal(t, "none", was)
	r := open(t, redisrecords.Options{URL: srv.URL(), Timeout: testTimeout})
	_, err = r.Reserve(ctx, "k", rec("t"), time.Hour)
	require.ErrorIs(t, err, idempotency.ErrLost)
	require.Empty(t, recordKeys(t, srv))
}

// A store whose persistence is assumed (Tair persistent memory, MemoryDB,
// the emulator's embedded store) still keeps the fence: mark-lost was
// reported done while charges went on (an outside tester: a key charged
// twice).
func TestAStoreAssumedDurableStillHonoursALoss(t *testing.T) {
	srv := redisproc.Start(t, false)
	ctx := context.Background()
	r := open(t, redisrecords.Options{URL: srv.URL(), Persistence: redisrecords.Assume, Timeout: testTimeout})
	ok, err := r.Reserve(ctx, "k1", rec("t1"), time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	operator := open(t, redisrecords.Options{URL: srv.URL(), Persistence: redisrecords.Assume, Timeout: testTimeout})
	_, err = idempotency.MarkLost(ctx, operator, time.Now())
	require.NoError(t, err)
	_, err = r.Reserve(ctx, "k2", rec("t2"), time.Hour)
	require.ErrorIs(t, err, idempotency.ErrLost)
	clock, err := operator.Clock(ctx)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), clock, time.Minute, "the server's time")
}

// A loss an instance finds is dated by the later of its clock and the
// store's, as mark-lost dates one: reopen waits from that time, and an
// instance whose clock ran an hour slow dated it an hour early (an outside
// re-tester, by reading).
func TestALossIsDatedByTheLaterClock(t *testing.T) {
	slow := func() time.Time { return time.Now().Add(-time.Hour) }
	srv, warm, _ := verifiedRecord(t, "", slow)
	ctx := context.Background()
	a := admin(t, srv)
	require.NoError(t, a.FlushAll(ctx).Err())
	_, refusal := warm.Reserve(ctx, "k2", rec("t2"), time.Hour)
	require.ErrorIs(t, refusal, idempotency.ErrLost)
	fence, err := a.Get(ctx, "cloudcall:idem:fence").Result()
	require.NoError(t, err)
	at, lost := idempotency.FenceLostAt(fence)
	require.True(t, lost, fence)
	found, err := time.Parse(time.RFC3339, at)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), found, time.Minute, "the store's time, not the instance's hour-slow one")
}
