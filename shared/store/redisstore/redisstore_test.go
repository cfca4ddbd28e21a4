package redisstore_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/store/redisstore"
	"github.com/cloudcall/cloudcall/shared/store/redisstore/redistest"
	"github.com/cloudcall/cloudcall/shared/store/storetest"
)

func TestConformance(t *testing.T) {
	url := redistest.URL(t)
	s, err := redisstore.Open(redisstore.Options{URL: url, Prefix: redistest.Keyspace(t, url)})
	require.NoError(t, err)
	defer s.Close()
	storetest.Run(t, s, "")
}

// Two clients are two instances: a compare-and-expire by one is seen by the
// other, and the limiter counts both.
func TestSharedAcrossClients(t *testing.T) {
	url := redistest.URL(t)
	prefix := redistest.Keyspace(t, url)
	a, err := redisstore.Open(redisstore.Options{URL: url, Prefix: prefix})
	require.NoError(t, err)
	defer a.Close()
	b, err := redisstore.Open(redisstore.Options{URL: url, Prefix: prefix})
	require.NoError(t, err)
	defer b.Close()
	ctx := context.Background()

	require.NoError(t, a.Set(ctx, "token", []byte("t1"), time.Minute))
	ok, err := b.CompareAndDelete(ctx, "token", []byte("t1"))
	require.NoError(t, err)
	require.True(t, ok)
	_, err = a.Get(ctx, "token")
	require.ErrorIs(t, err, store.ErrNotFound)

	granted := 0
	for i := 0; i < 12; i++ {
		c := a
		if i%2 == 1 {
			c = b
		}
		w, err := c.Reserve(ctx, "cams:AK", 10, time.Second)
		require.NoError(t, err)
		if w == 0 {
			granted++
		}
	}
	require.Equal(t, 10, granted, "ten slots per second across both instances")
}

func TestSubMillisecondTTLIsNotZero(t *testing.T) {
	url := redistest.URL(t)
	s, err := redisstore.Open(redisstore.Options{URL: url, Prefix: redistest.Keyspace(t, url)})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Set(context.Background(), "k", []byte("v"), time.Microsecond))
}

func TestUnreachableIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	s, err := redisstore.Open(redisstore.Options{URL: "redis://" + addr + "/0"})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Get(context.Background(), "k")
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.False(t, errors.Is(err, store.ErrNotFound))
}

func TestBadURLHidesPassword(t *testing.T) {
	_, err := redisstore.Open(redisstore.Options{URL: "redis://user:s3cr3t-pw@[::1:6379/x"})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cr3t-pw")
}

// TestOutageAndRecovery cuts Redis away mid-run through a proxy: the fallback
// keeps reads answering from memory, Durable writes refuse, and service comes
// back by itself when Redis does.
func TestOutageAndRecovery(t *testing.T) {
	url := redistest.URL(t)
	target, db := redistest.HostPort(url)
	p := redistest.NewProxy(t, target)
	s, err := redisstore.Open(redisstore.Options{URL: "redis://" + p.Addr() + db, Prefix: redistest.Keyspace(t, url)})
	require.NoError(t, err)
	defer s.Close()
	now := time.Now()
	clock := func() time.Time { return now }
	f := store.NewFallback(s, store.FallbackOptions{ProbeEvery: time.Second, Now: clock})
	ctx := context.Background()

	require.NoError(t, f.Set(ctx, "k", []byte("shared"), time.Minute))
	require.False(t, f.Degraded())

	p.Cut()
	_, err = f.Get(ctx, "k")
	require.ErrorIs(t, err, store.ErrNotFound, "degraded reads come from the (empty) instance memory")
	require.True(t, f.Degraded())
	require.NoError(t, f.Set(ctx, "k", []byte("local"), time.Minute), "degraded writes land in memory")
	v, err := f.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "local", string(v))
	_, err = store.Durable(f).SetNX(ctx, "idem", []byte("x"), time.Minute)
	require.ErrorIs(t, err, store.ErrUnavailable, "a durable write refuses rather than pretend")

	p.Restore()
	now = now.Add(2 * time.Second) // past the probe interval
	v, err = f.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "shared", string(v), "back on Redis without a restart")
	require.False(t, f.Degraded())
}

// SetNXMany writes what is absent in one pipeline and says which it wrote,
// with each key's own TTL.
func TestSetNXMany(t *testing.T) {
	url := redistest.URL(t)
	s, err := redisstore.Open(redisstore.Options{URL: url, Prefix: redistest.Keyspace(t, url)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	ok, err := s.SetNX(ctx, "b", []byte("theirs"), time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	got, err := s.SetNXMany(ctx, []string{"a", "b", "c"}, []byte("mine"), []time.Duration{time.Minute, time.Minute, 50 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, []bool{true, false, true}, got)
	v, err := s.Get(ctx, "b")
	require.NoError(t, err)
	require.Equal(t, "theirs", string(v), "an existing key is left as it is")
	require.Eventually(t, func() bool {
		_, err := s.Get(ctx, "c")
		return errors.Is(err, store.ErrNotFound)
	}, 5*time.Second, 10*time.Millisecond, "each key keeps its own TTL")
	_, err = s.SetNXMany(ctx, []string{"x"}, []byte("v"), []time.Duration{0})
	require.ErrorIs(t, err, store.ErrBadTTL)
}

// A negative database number is refused: go-redis selects nothing for it,
// and the keys went to database 0 without a word.
func TestANegativeDatabaseIsRefused(t *testing.T) {
	_, err := redisstore.Open(redisstore.Options{URL: "redis://:pw@127.0.0.1:6379/-1"})
	require.EqualError(t, err, "CLOUDCALL_STORE: database -1: expected a number from 0")
	_, err = redisstore.Open(redisstore.Options{URL: "redis://127.0.0.1:6379/3"})
	require.NoError(t, err)
}
