package localstore_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator/localstore"
	"github.com/cloudcall/cloudcall/shared/idempotency/recordstest"
	"github.com/cloudcall/cloudcall/shared/idempotency/redisrecords"
	"github.com/cloudcall/cloudcall/shared/store/redisstore"
	"github.com/cloudcall/cloudcall/shared/store/storetest"
)

func start(t *testing.T) *localstore.Server {
	t.Helper()
	s, err := localstore.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// TestRedisStoreConformance runs the whole Store contract through the real
// redisstore (every Lua script it uses: compare-and-swap, compare-and-delete,
// the TIME-based sliding-window limiter) against the embedded server.
func TestRedisStoreConformance(t *testing.T) {
	s := start(t)
	// A generous per-command bound: under -race on a busy 2-core machine the
	// default 300 ms is about load, not about the store.
	rs, err := redisstore.Open(redisstore.Options{URL: s.URL(), Prefix: "t:", Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rs.Close() })
	storetest.Run(t, rs, "")
}

// TestSharedBetweenClients: two instances (two connections, as two function
// processes) see one store; a lock taken by one holds against the other.
func TestSharedBetweenClients(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	a, err := redisstore.Open(redisstore.Options{URL: s.URL()})
	require.NoError(t, err)
	b, err := redisstore.Open(redisstore.Options{URL: s.URL()})
	require.NoError(t, err)
	var wg sync.WaitGroup
	wins := make(chan string, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := a
			if i%2 == 1 {
				c = b
			}
			ok, err := c.SetNX(ctx, "refresh-lock", []byte(strconv.Itoa(i)), time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				wins <- strconv.Itoa(i)
			}
		}()
	}
	wg.Wait()
	close(wins)
	require.Len(t, wins, 1, "one winner across both clients")
	w := <-wins
	v, err := b.Get(ctx, "refresh-lock")
	require.NoError(t, err)
	require.Equal(t, w, string(v))
}

// TestTimeAndWallClockTTL: TIME answers the wall clock (the limiter script
// reads it) and a key's TTL runs out on its own, as on Redis.
func TestTimeAndWallClockTTL(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	opts, err := redis.ParseURL(s.URL())
	require.NoError(t, err)
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	before := time.Now().Truncate(time.Second)
	now, err := c.Time(ctx).Result()
	require.NoError(t, err)
	require.False(t, now.Before(before), "TIME %v is not before %v", now, before)
	require.False(t, now.After(time.Now().Add(time.Second)))

	require.NoError(t, c.Set(ctx, "short", "v", 20*time.Millisecond).Err())
	require.Eventually(t, func() bool {
		return c.Exists(ctx, "short").Val() == 0
	}, 5*time.Second, 10*time.Millisecond, "the key expired by the wall clock")
}

func TestLoopbackOnly(t *testing.T) {
	_, err := localstore.Start("0.0.0.0:0")
	require.ErrorContains(t, err, "loopback only")
}

// TestIdempotencyRecordsConformance runs the charge's idempotency-record
// protocol (shared/idempotency/redisrecords: its Lua scripts, the fence, the
// hash records) against the embedded store, the way the emulator configures
// the charge (persistence assumed: the embedded store has no AOF).
func TestIdempotencyRecordsConformance(t *testing.T) {
	s := start(t)
	r, err := redisrecords.Open(redisrecords.Options{URL: s.URL(), Prefix: "t:", Persistence: redisrecords.Assume, Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	recordstest.Run(t, r, recordstest.Options{})
}

// BenchmarkGetWithKeys: a command's cost must not grow with the keys the
// store holds (a `make run` left serving keeps about 25,000: nonces for 11
// minutes, charge records for a day). Compare the sub-benchmarks' ns/op.
func BenchmarkGetWithKeys(b *testing.B) {
	for _, n := range []int{1000, 25000, 200000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			s, err := localstore.Start("127.0.0.1:0")
			require.NoError(b, err)
			defer s.Close()
			c := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.Password()})
			defer c.Close()
			ctx := context.Background()
			p := c.Pipeline()
			for i := range n {
				p.Set(ctx, "k"+strconv.Itoa(i), "v", time.Hour)
			}
			_, err = p.Exec(ctx)
			require.NoError(b, err)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := c.Get(ctx, "k1").Err(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The store advances TTLs at most a twentieth of its time: with many keys
// an advance takes long (163 ms at 250,000), and every 250 ms it held the
// store locked most of the time (outside tester: GETs fell to 9/s).
func TestTheTTLClockBacksOffWithTheKeys(t *testing.T) {
	for _, tc := range []struct{ took, want time.Duration }{
		{time.Millisecond, localstore.Tick},
		{50 * time.Millisecond, time.Second},
		{163 * time.Millisecond, 3260 * time.Millisecond},
		{5 * time.Second, localstore.MaxTick},
	} {
		require.Equal(t, tc.want, localstore.Period(tc.took), "%s", tc.took)
	}
}

// A slow expiry pass at 9,000 keys was a busy machine, not the keys: the
// warning to move them to a Redis is given only where they are many.
func TestTheSlowStoreWarningNeedsManyKeys(t *testing.T) {
	require.False(t, localstore.ManyKeys(9251))
	require.True(t, localstore.ManyKeys(localstore.WarnKeys))
}

// The store is on loopback, where any local user can connect: without the
// password made at start it answers nothing (an outside tester read a cached
// access token with a bare redis-cli).
func TestTheStoreWantsItsPassword(t *testing.T) {
	s, err := localstore.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(s.Close)
	ctx := context.Background()
	stranger := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = stranger.Close() })
	require.ErrorContains(t, stranger.Get(ctx, "k").Err(), "NOAUTH")
	require.ErrorContains(t, stranger.Keys(ctx, "*").Err(), "NOAUTH")
	guess := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: "guess"})
	t.Cleanup(func() { _ = guess.Close() })
	require.Error(t, guess.Ping(ctx).Err())
	opts, err := redis.ParseURL(s.URL())
	require.NoError(t, err)
	require.Len(t, opts.Password, 32)
	own := redis.NewClient(opts)
	t.Cleanup(func() { _ = own.Close() })
	require.NoError(t, own.Set(ctx, "k", "v", 0).Err())
	// The banner's URL is for redis-cli -u too, which with an empty user
	// sent no password (an outside tester): it names the default user.
	require.Equal(t, "default", opts.Username)
	if cli, err := exec.LookPath("redis-cli"); err == nil {
		out, err := exec.Command(cli, "-u", s.URL(), "get", "k").Output() // its warning goes to stderr
		require.NoError(t, err)
		require.Equal(t, "v", strings.TrimSpace(string(out)))
	}
}
