package redisrecords

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// roundTrips counts what the client sends: one per command, one per
// pipeline.
type roundTrips struct{ n atomic.Int32 }

func (c *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

// An instance's first verification of a store taken as durable (the
// emulator's, Tair persistent memory) writes the fence if there is none and
// reads it back in one round trip: a first charge waited for two.
func TestTheFirstVerificationIsOneRoundTrip(t *testing.T) {
	m := miniredis.RunT(t)
	for _, existing := range []bool{false, true} {
		if existing {
			m.Set("cloudcall:idem:fence", "0123456789abcdef0123456789abcdef")
		}
		r, err := Open(Options{URL: "redis://" + net.JoinHostPort(m.Host(), m.Port()) + "/0", Persistence: Assume})
		require.NoError(t, err)
		rt := &roundTrips{}
		r.rdb.AddHook(rt)
		require.NoError(t, r.Durable(context.Background()))
		require.Equal(t, int32(1), rt.n.Load(), "fence there before: %v", existing)
		fence, err := r.Fence(context.Background())
		require.NoError(t, err)
		require.Equal(t, r.fence, fence)
		require.NoError(t, r.Close())
	}
}
