package redisrecords

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Record writes are counted, in the round trip of each write and after it:
// Redis replicates in order, so a replica promoted without a write lacks
// its count too, and a later write is told a count no higher than one seen
// before. The fence, written long before, cannot show that loss (an outside
// tester: 10 keys charged twice after a failover to a replica that lagged).
// Two counts: every instance's writes (writesKey), which any busy instance
// that saw the lost ones finds at its next write; and this instance's own
// (ownKey), which it finds at its next write however many others wrote
// since (with the shared count alone, a re-tester's repeats sent to another
// instance pushed the count past what the first had seen, and nothing was
// found).

// ownTTL keeps an instance's own count a week after its last write; one
// idle for a day counts afresh (ownIdle), so an expired count is never
// taken for a loss.
const (
	ownTTL  = 7 * 24 * time.Hour
	ownIdle = 24 * time.Hour
)

// counts is what this instance was told.
type counts struct {
	all, own atomic.Int64 // the highest counts told
	last     atomic.Int64 // unix ms of its last counted write
}

// tally is one write's counts, queued in its round trip, with what was
// seen before it was sent.
type tally struct {
	all, own       int64
	allCmd, ownCmd *redis.IntCmd
}

func (r *Records) writesKey() string { return r.o.Prefix + "idem:writes" }
func (r *Records) ownKey() string    { return r.o.Prefix + "idem:writes:" + r.id }

func instanceID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// queueCount adds the counts to pipe, after the write queued before them.
func (r *Records) queueCount(ctx context.Context, pipe redis.Pipeliner) tally {
	now := r.o.Now().UnixMilli()
	if last := r.counts.last.Swap(now); last != 0 && now-last > ownIdle.Milliseconds() {
		r.counts.own.Store(0)
	}
	t := tally{all: r.counts.all.Load(), own: r.counts.own.Load()}
	t.allCmd = pipe.Incr(ctx, r.writesKey())
	t.ownCmd = pipe.Incr(ctx, r.ownKey())
	pipe.PExpire(ctx, r.ownKey(), ownTTL)
	return t
}

// recount counts a write sent on its own (after NOSCRIPT).
func (r *Records) recount(ctx context.Context) tally {
	pipe := r.rdb.Pipeline()
	t := r.queueCount(ctx, pipe)
	_, _ = pipe.Exec(ctx)
	return t
}

// back reports whether a count went back: the store lost writes this
// instance saw or made. It keeps the counts told.
func (r *Records) back(t tally) (bool, error) {
	if err := t.allCmd.Err(); err != nil {
		return false, err
	}
	if err := t.ownCmd.Err(); err != nil {
		return false, err
	}
	all, own := t.allCmd.Val(), t.ownCmd.Val()
	raise(&r.counts.all, all)
	raise(&r.counts.own, own)
	return all <= t.all || own <= t.own, nil
}

// forgetCounts is for another fence: counts told under the one before say
// nothing of it (a store emptied and reopened counts from 1 again).
func (r *Records) forgetCounts() {
	r.counts.all.Store(0)
	r.counts.own.Store(0)
}

func raise(v *atomic.Int64, n int64) {
	for {
		cur := v.Load()
		if n <= cur || v.CompareAndSwap(cur, n) {
			return
		}
	}
}
