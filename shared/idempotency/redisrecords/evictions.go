package redisrecords

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/cloudcall/cloudcall/shared/idempotency"
)

// Evictions are counted against a baseline kept in Redis: a Redis briefly
// switched to volatile-ttl with a small maxmemory evicted records (24 h TTL)
// first, while the fence (no TTL) and the counts of writes (a week) stayed,
// and the refusal of such a policy at the next verdict came after the
// records were gone: 7 of 20 keys charged twice with nothing said (an
// outside tester). INFO stats evicted_keys counts every eviction since the
// server started (or since CONFIG RESETSTAT), so a count above the one
// recorded under the same fence and run is a loss the fence cannot show.

// evictions is what INFO stats and INFO server told, and the baseline read
// with the fence.
type evictions struct {
	run   string // INFO server run_id: a restart counts from 0 again
	count int64  // INFO stats evicted_keys
	base  string // <fence>\t<run>\t<count>, "" when there is none
	// missing: there was no baseline next to a fence that was there (the
	// verification's SET NX of the baseline took, the fence's did not).
	missing bool
}

func (r *Records) evictionsKey() string { return r.o.Prefix + "idem:evictions" }

// readEvictions reads the two INFO sections; a section refused, or a field
// missing, leaves the evictions unknown.
func readEvictions(stats, server string) evictions {
	run := infoField(server, "run_id")
	n, err := strconv.ParseInt(infoField(stats, "evicted_keys"), 10, 64)
	if run == "" || err != nil {
		return evictions{}
	}
	return evictions{run: run, count: n}
}

func (e evictions) known() bool { return e.run != "" }

// baseline is the value kept under fence.
func (e evictions) baseline(fence string) string {
	return fence + "\t" + e.run + "\t" + strconv.FormatInt(e.count, 10)
}

// parseBaseline splits a baseline; ok is false for none or a garbled one.
func parseBaseline(v string) (fence, run string, count int64, ok bool) {
	f := strings.Split(v, "\t")
	if len(f) != 3 {
		return "", "", 0, false
	}
	n, err := strconv.ParseInt(f[2], 10, 64)
	return f[0], f[1], n, err == nil
}

// judgeEvictions compares the evictions INFO told with the baseline kept
// for the fence, which was judged sound; r.mu is held. Evictions above it
// are handled as the other losses: the loss written into the fence and the
// charge refused, unless AfterLoss is continue.
func (r *Records) judgeEvictions(ctx context.Context, fence string, ev evictions) error {
	if r.o.Persistence == Assume {
		return nil // INFO is not read: the store is taken as evicting nothing
	}
	if !ev.known() {
		if !r.warnedStats {
			r.warnedStats = true
			r.o.Log.Warn("idempotency: the records store's Redis does not report its evictions (INFO stats evicted_keys, INFO server run_id), so records evicted by a maxmemory-policy other than noeviction set for a while cannot be found; keep maxmemory-policy noeviction",
				"store", "redis", "host", r.host)
		}
		return nil
	}
	bf, brun, bn, ok := parseBaseline(ev.base)
	if ok && bf == fence && brun == ev.run && ev.count == bn {
		return nil
	}
	if ev.missing && ev.count > 0 {
		// A baseline missing next to an existing fence is a loss when
		// evictions happened (the baseline, read once a verdict, is the
		// coldest key: evicted under allkeys-lru, or deleted, it hid the
		// evictions of records); with evicted_keys 0 it is an upgrade from a
		// release without baselines, or nothing was evicted, and it is taken.
		return r.evictionLoss(ctx, fence, ev, fmt.Sprintf("idempotency: the records store's eviction baseline (%s) is gone while the fence stayed, and its Redis has evicted %d keys (INFO stats evicted_keys): the baseline was evicted or deleted, and an evicted record lets its key charge again; ",
			r.evictionsKey(), ev.count))
	}
	if !ok || bf != fence || brun != ev.run || ev.count < bn {
		// None yet, another fence (a reopening), another run (a restart
		// counts from 0) or a count reset (CONFIG RESETSTAT): nothing to
		// compare with, so this is where counting starts.
		return r.moveBaseline(ctx, ev, fence)
	}
	return r.evictionLoss(ctx, fence, ev, fmt.Sprintf("idempotency: the records store's Redis evicted %d keys since this fence was written (INFO stats evicted_keys %d → %d): a maxmemory-policy other than noeviction was in force, and an evicted record lets its key charge again; ",
		ev.count-bn, bn, ev.count))
}

// evictionLoss handles evictions found under fence as the other losses;
// msg says how they were found. r.mu is held.
func (r *Records) evictionLoss(ctx context.Context, fence string, ev evictions, msg string) error {
	if r.o.AfterLoss == idempotency.AfterLossContinue {
		r.o.Log.Error(msg+idempotency.LossContinued, "store", "redis", "host", r.host, "afterLoss", r.o.AfterLoss)
		// The counts of writes (a week's TTL) may have been evicted too:
		// counted afresh, the same loss is not said twice.
		r.forgetCounts()
		return r.moveBaseline(ctx, ev, fence)
	}
	lost := idempotency.LostFence(r.lossTime(ctx), fence, fence)
	// Only over the fence judged: a reopening in between stands.
	if err := casFenceScript().Run(ctx, r.rdb, []string{r.fenceKey()}, fence, lost).Err(); err != nil {
		return r.wrap(err)
	}
	r.o.Log.Error(msg+idempotency.LossRefused, "store", "redis", "host", r.host, "afterLoss", r.o.AfterLoss)
	return idempotency.LostError("redis", lost)
}

// moveBaseline writes ev as the baseline of fence, only over the one read:
// an instance whose INFO was read earlier must not write over a baseline
// written since (which the next verdict judges).
func (r *Records) moveBaseline(ctx context.Context, ev evictions, fence string) error {
	err := casFenceScript().Run(ctx, r.rdb, []string{r.evictionsKey()}, ev.base, ev.baseline(fence)).Err()
	return r.wrap(err)
}
