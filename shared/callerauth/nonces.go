package callerauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cloudcall/cloudcall/shared/store"
)

// NonceTTL is how long a spent nonce is remembered: a timestamp is good for
// Window either side of the clock, so a nonce can be replayed at most 2×Window
// after it was first used; one minute more covers clock steps.
const NonceTTL = 2*Window + time.Minute

// Nonces remembers spent nonces twice over: in this instance's memory for
// NonceTTL whatever the shared store's state, and in the shared store so
// every instance refuses them. A nonce spent while the store is unreachable is
// accepted (fresh calls keep being served), kept in memory, and written to the
// store as soon as it answers again, so a replay to another instance after
// the outage is refused too.
type Nonces struct {
	shared     store.KV // nil: this instance only
	now        func() time.Time
	probeEvery time.Duration
	log        *slog.Logger
	// mark is what this instance writes for a nonce: a write whose answer
	// was lost (a timeout after the store applied it) is then told from
	// another instance's spend when the flush finds the nonce there.
	mark []byte

	mu   sync.Mutex
	seen map[string]time.Time // key → when it may be forgotten
	// accepted is the part of seen this instance let through: the nonces
	// it writes back after the store lost them (not the replays it refused).
	accepted  map[string]time.Time
	pending   []string // spent while the store was unreachable, oldest first
	inflight  int      // of them, taken by a flush and not yet written
	down      bool
	nextProbe time.Time
	flushing  bool // a background flush loop is running
	nextSweep time.Time
	// fence is the value of the store's fence this instance last saw: a
	// store that loses its data (a Redis restarted empty) loses it too,
	// and the instance then writes back the nonces it accepted, which a
	// replay to another instance would otherwise pass for 11 minutes.
	fence     []byte
	checking  bool
	nextCheck time.Time
	watching  bool // the background fence watch is running
	kicked    bool // a call's background write-back is running
}

// fenceKey cannot be a nonce's key (a nonce has no '~').
const fenceKey = "nonce:~fence"

// fenceTTL outlives every nonce by far; a fence that expired would only
// cost one write-back.
const fenceTTL = 365 * 24 * time.Hour

// NoncesOptions configures NewNonces.
type NoncesOptions struct {
	// Shared is the store every instance sees (never a fallback that would
	// hide an outage: pass store.Durable(s)); nil keeps nonces per instance.
	Shared     store.KV
	Now        func() time.Time
	ProbeEvery time.Duration // how often an unreachable store is tried again; default 1s
	Log        *slog.Logger
}

// NewNonces builds the nonce memory of one instance.
func NewNonces(opts NoncesOptions) *Nonces {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ProbeEvery <= 0 {
		opts.ProbeEvery = time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	mark := make([]byte, 8)
	_, _ = rand.Read(mark)
	return &Nonces{shared: opts.Shared, now: opts.Now, probeEvery: opts.ProbeEvery, log: opts.Log, seen: map[string]time.Time{},
		accepted: map[string]time.Time{}, mark: []byte(hex.EncodeToString(mark))}
}

// Spend records key and reports whether it was fresh. It never fails: when
// the shared store cannot answer, this instance's memory decides.
func (n *Nonces) Spend(ctx context.Context, key string) bool {
	n.mu.Lock()
	now := n.now()
	n.sweep(now)
	if exp, ok := n.seen[key]; ok && now.Before(exp) {
		n.mu.Unlock()
		return false
	}
	// Taken here, before the store answers, so two copies racing into this
	// instance cannot both pass.
	n.seen[key] = now.Add(NonceTTL)
	try := n.shared != nil && (!n.down || !now.Before(n.nextProbe))
	n.mu.Unlock()
	if n.shared == nil {
		return true
	}
	if try {
		// Nonces waiting to be written back go in the background: writing
		// thousands of them here held calls for seconds after a store
		// loss, and cut their vendor call short.
		n.kick()
		fresh, err := n.shared.SetNX(ctx, key, n.mark, NonceTTL)
		if err == nil {
			n.settle(nil)
			if fresh {
				n.accept(key)
			}
			n.checkFence()
			return fresh
		}
		n.settle(err)
	}
	n.mu.Lock()
	n.accepted[key] = n.seen[key]
	n.pending = append(n.pending, key)
	start := !n.flushing
	n.flushing = true
	n.mu.Unlock()
	if start {
		go n.flushLoop()
	}
	return true
}

// SpendShared records key only where every instance sees it: in the shared
// store as well as here. When the store cannot answer it spends nothing and
// returns an error wrapping store.ErrUnavailable, for calls whose replay on
// another instance must be stopped even during an outage.
func (n *Nonces) SpendShared(ctx context.Context, key string) (bool, error) {
	n.mu.Lock()
	now := n.now()
	n.sweep(now)
	if exp, ok := n.seen[key]; ok && now.Before(exp) {
		n.mu.Unlock()
		return false, nil
	}
	n.mu.Unlock()
	if n.shared == nil {
		return n.Spend(ctx, key), nil
	}
	n.kick()
	fresh, err := n.shared.SetNX(ctx, key, n.mark, NonceTTL)
	n.settle(err)
	if err != nil {
		return false, fmt.Errorf("nonce store: %w", err)
	}
	n.checkFence()
	n.mu.Lock()
	if exp, ok := n.seen[key]; ok && n.now().Before(exp) {
		fresh = false // spent here meanwhile (by a Spend that went to memory)
	}
	n.seen[key] = n.now().Add(NonceTTL)
	if fresh {
		n.accepted[key] = n.seen[key]
	}
	n.mu.Unlock()
	return fresh, nil
}

// Pending is how many nonces wait to be written to the shared store,
// counting those a flush is writing right now: 0 means every one is there.
func (n *Nonces) Pending() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.pending) + n.inflight
}

// settle records whether the store answered.
func (n *Nonces) settle(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case err != nil && !n.down:
		n.down = true
		n.nextProbe = n.now().Add(n.probeEvery)
		n.log.Warn("nonce store unavailable: nonces are checked against this instance's memory and written to the store when it is back", "error", err.Error())
	case err != nil:
		n.nextProbe = n.now().Add(n.probeEvery)
	case n.down:
		n.down = false
		n.log.Info("nonce store is back")
	}
}

// flush writes the nonces spent during an outage to the shared store. One
// that is already there was spent elsewhere too: a replay across instances
// during the outage, which only a reachable store could have stopped.
func (n *Nonces) flush(ctx context.Context) {
	n.mu.Lock()
	batch := n.pending
	n.pending = nil
	n.inflight += len(batch)
	n.mu.Unlock()
	for len(batch) > 0 {
		chunk := batch[:min(len(batch), flushChunk)]
		keys, ttls := make([]string, 0, len(chunk)), make([]time.Duration, 0, len(chunk))
		n.mu.Lock()
		now := n.now()
		for _, key := range chunk {
			if ttl := n.seen[key].Sub(now); ttl > 0 {
				keys, ttls = append(keys, key), append(ttls, ttl)
			}
		}
		n.mu.Unlock()
		fresh, err := n.setMany(ctx, keys, ttls)
		if err != nil {
			n.settle(err)
			n.mu.Lock()
			n.inflight -= len(batch)
			n.pending = append(batch[:len(batch):len(batch)], n.pending...)
			n.mu.Unlock()
			return
		}
		n.mu.Lock()
		n.inflight -= len(chunk)
		n.mu.Unlock()
		n.settle(nil)
		for i, ok := range fresh {
			if !ok && !n.ours(ctx, keys[i]) {
				n.log.Warn("a nonce this instance accepted was also spent on another instance: a replay got through while the store was down or had lost its data", "nonce", keys[i])
				// Said once: the store has it now, and so does the other
				// instance's memory; written back again at the next loss,
				// it was said again each time.
				n.mu.Lock()
				delete(n.accepted, keys[i])
				n.mu.Unlock()
			}
		}
		batch = batch[len(chunk):]
	}
}

// kick starts one write-back of the pending nonces now, in the background,
// when the store answers again (a call got through to it), rather than at
// the flush loop's next tick.
func (n *Nonces) kick() {
	n.mu.Lock()
	if len(n.pending) == 0 || n.kicked {
		n.mu.Unlock()
		return
	}
	n.kicked = true
	n.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.flush(ctx)
		n.mu.Lock()
		n.kicked = false
		n.mu.Unlock()
	}()
}

// flushChunk is how many nonces one write-back round trip carries.
const flushChunk = 1000

// setMany writes keys absent from the store in one round trip when the
// store can (a Redis pipeline), else one by one.
func (n *Nonces) setMany(ctx context.Context, keys []string, ttls []time.Duration) ([]bool, error) {
	if b, ok := n.shared.(store.BatchSetter); ok {
		return b.SetNXMany(ctx, keys, n.mark, ttls)
	}
	fresh := make([]bool, len(keys))
	for i, k := range keys {
		ok, err := n.shared.SetNX(ctx, k, n.mark, ttls[i])
		if err != nil {
			return nil, err
		}
		fresh[i] = ok
	}
	return fresh, nil
}

// ours reports whether the stored nonce is this instance's own write: the
// store applied a write whose answer timed out, which is no replay (under
// load on the emulator, every store timeout was followed by one false
// replay warning per instance). Unsure is not a replay either.
func (n *Nonces) ours(ctx context.Context, key string) bool {
	v, err := n.shared.Get(ctx, key)
	return err != nil && !errors.Is(err, store.ErrNotFound) || bytes.Equal(v, n.mark)
}

// flushLoop retries the flush while nonces are pending, so an idle instance
// still hands them over once the store is back.
func (n *Nonces) flushLoop() {
	t := time.NewTicker(n.probeEvery)
	defer t.Stop()
	for first := true; ; first = false {
		if !first {
			<-t.C
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.flush(ctx)
		cancel()
		n.mu.Lock()
		// Nonces the store failed come back to pending: an idle instance
		// must still hand them over.
		if len(n.pending)+n.inflight == 0 {
			n.flushing = false
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
	}
}

// accept records key as let through by this instance.
func (n *Nonces) accept(key string) {
	n.mu.Lock()
	n.accepted[key] = n.seen[key]
	n.mu.Unlock()
}

// checkFence looks at the store's fence at most once per probe interval, in
// the background (a call never waits for it), and keeps looking while this
// instance holds nonces it accepted: the instance whose write-back stops a
// replay is the one that accepted the original, and it may get no call of
// its own after the loss (a platform that freezes an idle instance lets it
// look again at its next call).
func (n *Nonces) checkFence() {
	n.mu.Lock()
	if !n.watching {
		n.watching = true
		go n.watch()
	}
	n.mu.Unlock()
	n.lookAtFence()
}

// watch checks the fence every probe interval while accepted nonces live.
func (n *Nonces) watch() {
	t := time.NewTicker(n.probeEvery)
	defer t.Stop()
	for range t.C {
		n.mu.Lock()
		n.sweep(n.now())
		if len(n.accepted) == 0 {
			n.watching = false
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
		n.lookAtFence()
	}
}

// lookAtFence runs one fence check in the background, at most once per
// probe interval.
func (n *Nonces) lookAtFence() {
	n.mu.Lock()
	now := n.now()
	if n.checking || now.Before(n.nextCheck) {
		n.mu.Unlock()
		return
	}
	n.checking, n.nextCheck = true, now.Add(n.probeEvery)
	n.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.fenceCheck(ctx)
		n.mu.Lock()
		n.checking = false
		n.mu.Unlock()
	}()
}

// fenceCheck reads the fence, writing one when there is none. A fence this
// instance saw that is gone, or replaced (another instance found it gone
// first), means the store lost the nonces: every one this instance
// accepted and still remembers is written back.
func (n *Nonces) fenceCheck(ctx context.Context) {
	cur, err := n.shared.Get(ctx, fenceKey)
	if errors.Is(err, store.ErrNotFound) {
		v := make([]byte, 8)
		_, _ = rand.Read(v)
		if _, err = n.shared.SetNX(ctx, fenceKey, []byte(hex.EncodeToString(v)), fenceTTL); err == nil {
			cur, err = n.shared.Get(ctx, fenceKey)
		}
	}
	if err != nil {
		return // unreachable: the outage path handles nonces meanwhile
	}
	n.mu.Lock()
	lost := n.fence != nil && !bytes.Equal(n.fence, cur)
	n.fence = cur
	if !lost {
		n.mu.Unlock()
		return
	}
	now := n.now()
	var back []string
	for k, exp := range n.accepted {
		if now.Before(exp) {
			back = append(back, k)
		}
	}
	// Newest first: a capture replayed now is most likely of a recent call,
	// and 16,000 nonces took seconds to write back.
	slices.SortFunc(back, func(a, b string) int { return n.accepted[b].Compare(n.accepted[a]) })
	n.pending = append(back, n.pending...)
	start := len(back) > 0 && !n.flushing
	if start {
		n.flushing = true
	}
	n.mu.Unlock()
	n.log.Warn("nonce store lost its data (its fence is gone: a restart without persistence, or a failover): this instance writes back the nonces it accepted in the last 11 minutes, so their replays are refused again",
		"nonces", len(back))
	if start {
		go n.flushLoop()
	}
}

// sweep forgets expired nonces now and then; the caller holds mu.
func (n *Nonces) sweep(now time.Time) {
	if now.Before(n.nextSweep) {
		return
	}
	n.nextSweep = now.Add(time.Minute)
	for k, exp := range n.seen {
		if !now.Before(exp) {
			delete(n.seen, k)
		}
	}
	for k, exp := range n.accepted {
		if !now.Before(exp) {
			delete(n.accepted, k)
		}
	}
}
