package callerauth_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/callerauth"
	"github.com/cloudcall/cloudcall/shared/store"
)

// flaky is a shared store that can be cut.
type flaky struct {
	store.KV
	down   atomic.Bool
	failed atomic.Int32 // writes refused while down
}

func (f *flaky) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if f.down.Load() {
		f.failed.Add(1)
		return false, fmt.Errorf("dial: %w", store.ErrUnavailable)
	}
	return f.KV.SetNX(ctx, key, value, ttl)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestNoncesThroughAnOutage(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(1767225600, 0)}
	mem := store.NewMemory(store.MemoryOptions{Now: clk.now})
	shared := &flaky{KV: mem}
	// Two instances sharing one store.
	a := callerauth.NewNonces(callerauth.NoncesOptions{Shared: shared, Now: clk.now, ProbeEvery: time.Second})
	b := callerauth.NewNonces(callerauth.NoncesOptions{Shared: shared, Now: clk.now, ProbeEvery: time.Second})

	require.True(t, a.Spend(ctx, "before"))
	require.False(t, b.Spend(ctx, "before"), "the shared store refuses it on another instance")

	shared.down.Store(true)
	require.False(t, a.Spend(ctx, "before"), "seen before the cut: refused from memory during it")
	require.True(t, a.Spend(ctx, "during"), "fresh calls are served during the cut")
	require.False(t, a.Spend(ctx, "during"), "and replays of them refused")
	require.Equal(t, 1, a.Pending())

	shared.down.Store(false)
	clk.add(2 * time.Second) // the next probe is due
	require.True(t, a.Spend(ctx, "after"), "the next call on a probes the store and hands over what it accepted")
	require.Eventually(t, func() bool { return a.Pending() == 0 }, 10*time.Second, time.Millisecond, "in the background")
	_, err := mem.Get(ctx, "during")
	require.NoError(t, err)
	require.False(t, b.Spend(ctx, "during"), "signed during the cut, replayed elsewhere after it: refused")
	require.False(t, a.Spend(ctx, "during"))

	clk.add(callerauth.NonceTTL)
	require.True(t, a.Spend(ctx, "during"), "forgotten once no timestamp could still be in the window")
}

// An idle instance hands its outage nonces over by itself.
func TestNoncesFlushWithoutTraffic(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMemory(store.MemoryOptions{})
	shared := &flaky{KV: mem}
	shared.down.Store(true)
	a := callerauth.NewNonces(callerauth.NoncesOptions{Shared: shared, ProbeEvery: 10 * time.Millisecond})
	require.True(t, a.Spend(ctx, "n1"))
	require.True(t, a.Spend(ctx, "n2"))
	shared.down.Store(false)
	require.Eventually(t, func() bool { return a.Pending() == 0 }, 10*time.Second, 5*time.Millisecond)
	for _, k := range []string{"n1", "n2"} {
		_, err := mem.Get(ctx, k)
		require.NoError(t, err, k)
	}
}

// gated holds every SetNX until released, saying when one has started.
type gated struct {
	flaky
	entered chan string
	release chan struct{}
}

func (g *gated) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if !g.down.Load() {
		g.entered <- key
		<-g.release
	}
	return g.flaky.SetNX(ctx, key, value, ttl)
}

// Pending counts a nonce while the flush is still writing it: 0 means the
// store has every one (this was 0 as soon as a flush took its batch).
func TestPendingCountsNoncesBeingWritten(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMemory(store.MemoryOptions{})
	g := &gated{flaky: flaky{KV: mem}, entered: make(chan string, 1), release: make(chan struct{})}
	g.down.Store(true)
	a := callerauth.NewNonces(callerauth.NoncesOptions{Shared: g, ProbeEvery: 10 * time.Millisecond})
	require.True(t, a.Spend(ctx, "n1"))
	g.down.Store(false)
	require.Equal(t, "n1", <-g.entered, "the flush loop writes it")
	require.Equal(t, 1, a.Pending(), "still being written")
	_, err := mem.Get(ctx, "n1")
	require.ErrorIs(t, err, store.ErrNotFound)
	close(g.release)
	require.Eventually(t, func() bool { return a.Pending() == 0 }, 10*time.Second, 5*time.Millisecond)
	_, err = mem.Get(ctx, "n1")
	require.NoError(t, err)
}

// A call's background write-back that is still writing when the flush loop
// finds nothing pending keeps the loop alive: if the store fails that write, the
// nonce comes back to pending and the idle instance still hands it over.
func TestNoncesLoopOutlivesAFlushThatFails(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMemory(store.MemoryOptions{})
	const probe = 50 * time.Millisecond
	g := &gated{flaky: flaky{KV: mem}, entered: make(chan string, 16), release: make(chan struct{})}
	g.down.Store(true)
	a := callerauth.NewNonces(callerauth.NoncesOptions{Shared: g, ProbeEvery: probe})
	require.True(t, a.Spend(ctx, "n1"), "accepted during the outage; the loop starts")
	g.down.Store(false)
	done := make(chan error, 1)
	go func() {
		_, err := a.SpendShared(ctx, "s1")
		done <- err
	}()
	// The call's own nonce and its background write-back of n1 both reach
	// the store; the call does not wait for the write-back.
	require.ElementsMatch(t, []string{"n1", "s1"}, []string{<-g.entered, <-g.entered})
	time.Sleep(3 * probe) // the loop ticks meanwhile and finds nothing pending
	g.down.Store(true)    // the write of n1 fails
	close(g.release)
	require.ErrorIs(t, <-done, store.ErrUnavailable)
	require.Equal(t, 1, a.Pending(), "n1 is back in pending")
	g.down.Store(false)
	require.Eventually(t, func() bool { return a.Pending() == 0 }, 10*time.Second, 5*time.Millisecond,
		"with no further call, the loop hands n1 over")
	_, err := mem.Get(ctx, "n1")
	require.NoError(t, err)
}

// Copies of one request racing into one instance: exactly one passes.
func TestNoncesConcurrentCopies(t *testing.T) {
	for _, shared := range []store.KV{nil, store.NewMemory(store.MemoryOptions{})} {
		n := callerauth.NewNonces(callerauth.NoncesOptions{Shared: shared})
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if n.Spend(context.Background(), "same") {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		require.Equal(t, int32(1), wins.Load())
	}
}

// SpendShared accepts only what the shared store recorded.
func TestSpendSharedFailsClosed(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMemory(store.MemoryOptions{})
	shared := &flaky{KV: mem}
	a := callerauth.NewNonces(callerauth.NoncesOptions{Shared: shared})
	b := callerauth.NewNonces(callerauth.NoncesOptions{Shared: shared})

	shared.down.Store(true)
	fresh, err := a.SpendShared(ctx, "w1")
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.False(t, fresh)
	shared.down.Store(false)
	fresh, err = a.SpendShared(ctx, "w1")
	require.NoError(t, err)
	require.True(t, fresh, "refused during the outage, so not spent: the same request works once the store is back")
	fresh, err = b.SpendShared(ctx, "w1")
	require.NoError(t, err)
	require.False(t, fresh)
	require.False(t, a.Spend(ctx, "w1"))

	require.True(t, a.Spend(ctx, "r1"))
	fresh, err = a.SpendShared(ctx, "r1")
	require.NoError(t, err)
	require.False(t, fresh)
}

// lateWrite applies a SetNX and then answers with a timeout, once: what a
// Redis slower than the client's 300 ms does.
type lateWrite struct {
	store.KV
	once sync.Once
}

func (l *lateWrite) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	ok, err := l.KV.SetNX(ctx, key, value, ttl)
	late := false
	l.once.Do(func() { late = true })
	if late {
		return false, fmt.Errorf("i/o timeout: %w", store.ErrUnavailable)
	}
	return ok, err
}

// A nonce write the store applied after the client gave up was flushed
// again once the store answered, found there, and reported as "also spent
// on another instance": a replay warning with no replay (under load on the
// emulator, one per store timeout per instance). The instance's own write is
// told apart; another instance's spend is still reported.
func TestANonceWriteWhoseAnswerWasLostIsNoReplay(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(1767225600, 0)}
	mem := store.NewMemory(store.MemoryOptions{Now: clk.now})
	var logMu sync.Mutex
	var logBuf bytes.Buffer
	logs := lockedBuffer{&logMu, &logBuf}
	log := slog.New(slog.NewTextHandler(logs, nil))
	a := callerauth.NewNonces(callerauth.NoncesOptions{Shared: &lateWrite{KV: mem}, Now: clk.now, ProbeEvery: time.Second, Log: log})
	require.True(t, a.Spend(ctx, "n1"), "the store timed out: memory decides")
	clk.add(2 * time.Second)
	require.True(t, a.Spend(ctx, "n2"))
	require.Eventually(t, func() bool { return a.Pending() == 0 }, 10*time.Second, time.Millisecond)
	require.NotContains(t, logs.String(), "also spent on another instance", "its own write")

	// A real replay across instances during an outage is still reported.
	shared := &flaky{KV: mem}
	b := callerauth.NewNonces(callerauth.NoncesOptions{Shared: shared, Now: clk.now, ProbeEvery: time.Second, Log: log})
	c := callerauth.NewNonces(callerauth.NoncesOptions{Shared: mem, Now: clk.now})
	shared.down.Store(true)
	require.True(t, b.Spend(ctx, "n3"))
	require.True(t, c.Spend(ctx, "n3"), "another instance, the store reachable to it")
	shared.down.Store(false)
	clk.add(2 * time.Second)
	require.True(t, b.Spend(ctx, "n4"))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "also spent on another instance") }, 10*time.Second, time.Millisecond)
}

// wipeable is a shared store that can lose everything at once, as a Redis
// restarted without persistence does.
type wipeable struct {
	mu sync.Mutex
	store.KV
}

func (w *wipeable) wipe() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.KV = store.NewMemory(store.MemoryOptions{})
}

func (w *wipeable) kv() store.KV { w.mu.Lock(); defer w.mu.Unlock(); return w.KV }
func (w *wipeable) Get(ctx context.Context, key string) ([]byte, error) {
	return w.kv().Get(ctx, key)
}
func (w *wipeable) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	return w.kv().SetNX(ctx, key, value, ttl)
}

// A store that came back empty forgot every nonce: a capture accepted before
// was accepted again by another instance for up to 11 minutes (outside
// tester). The instance that accepted it sees the store's fence gone within
// a probe interval and writes its nonces back.
func TestNoncesAreWrittenBackAfterTheStoreLostThem(t *testing.T) {
	shared := &wipeable{KV: store.NewMemory(store.MemoryOptions{})}
	var logs bytes.Buffer
	var logMu sync.Mutex
	a := callerauth.NewNonces(callerauth.NoncesOptions{Shared: shared, ProbeEvery: 10 * time.Millisecond,
		Log: slog.New(slog.NewJSONHandler(lockedBuffer{&logMu, &logs}, nil))})
	var bLogs bytes.Buffer
	var bMu sync.Mutex
	b := callerauth.NewNonces(callerauth.NoncesOptions{Shared: shared, ProbeEvery: 10 * time.Millisecond,
		Log: slog.New(slog.NewJSONHandler(lockedBuffer{&bMu, &bLogs}, nil))})
	ctx := context.Background()
	require.True(t, a.Spend(ctx, "nonce:captured-0000000001"))
	require.False(t, b.Spend(ctx, "nonce:captured-0000000001"), "a replay before the loss")
	require.True(t, b.Spend(ctx, "nonce:b-own-000000000003"))
	time.Sleep(50 * time.Millisecond) // past a probe interval

	// a gets no call after the loss: it still looks at the fence, so the
	// replay is refused (it was accepted for as long as a stayed idle).
	shared.wipe()
	require.Eventually(t, func() bool {
		_, err := shared.Get(ctx, "nonce:captured-0000000001")
		return err == nil && a.Pending() == 0
	}, 2*time.Second, 5*time.Millisecond, "a wrote its nonce back, idle")
	require.False(t, b.Spend(ctx, "nonce:captured-0000000001"), "the replay to another instance is refused again")
	require.Eventually(t, func() bool {
		_, err := shared.Get(ctx, "nonce:b-own-000000000003")
		return err == nil && b.Pending() == 0
	}, 2*time.Second, 5*time.Millisecond)
	logMu.Lock()
	require.Contains(t, logs.String(), "nonce store lost its data")
	require.Contains(t, logs.String(), `"nonces":1`, "a wrote back the one it accepted")
	logMu.Unlock()
	bMu.Lock()
	defer bMu.Unlock()
	require.Contains(t, bLogs.String(), `"nonces":1`, "b wrote back its own, not the replay it refused")
	require.NotContains(t, bLogs.String(), "also spent on another instance", "no false replay warning")
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A call does not carry the write-back of the nonces an instance accepted
// while the store was away: after a Redis restart, calls waited while
// thousands were written one by one, and failed as the vendor's timeout.
func TestACallDoesNotWaitForTheWriteBack(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMemory(store.MemoryOptions{})
	g := &gatedOld{flaky: flaky{KV: mem}, release: make(chan struct{})}
	g.down.Store(true)
	clk := &clock{t: time.Unix(1767225600, 0)}
	// A minute between the loop's ticks: the write-back is the call's kick.
	a := callerauth.NewNonces(callerauth.NoncesOptions{Shared: g, Now: clk.now, ProbeEvery: time.Minute})
	for i := range 20 {
		require.True(t, a.Spend(ctx, fmt.Sprintf("old-%d", i)))
	}
	// The background write-back's first try fails too; its failure, landing
	// after the clock moves on, would put off the next probe past the call
	// below (a flake under -race on a busy machine). Let it land first.
	require.Eventually(t, func() bool { return g.failed.Load() >= 2 }, 10*time.Second, time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	g.down.Store(false)      // back, and writing the old nonces hangs
	clk.add(2 * time.Minute) // past the next probe: the call goes to the store
	done := make(chan bool, 1)
	go func() { done <- a.Spend(ctx, "new") }()
	select {
	case fresh := <-done:
		require.True(t, fresh)
	case <-time.After(10 * time.Second):
		t.Fatal("the call waited for the write-back")
	}
	_, err := mem.Get(ctx, "new")
	require.NoError(t, err, "the call's own nonce is in the store")
	close(g.release)
	require.Eventually(t, func() bool { return a.Pending() == 0 }, 10*time.Second, 5*time.Millisecond, "and the old ones follow")
	_, err = mem.Get(ctx, "old-19")
	require.NoError(t, err)
}

// gatedOld holds the writes of nonces named old-* until released.
type gatedOld struct {
	flaky
	release chan struct{}
}

func (g *gatedOld) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if !g.down.Load() && strings.HasPrefix(key, "old-") {
		<-g.release
	}
	return g.flaky.SetNX(ctx, key, value, ttl)
}

// orderedKV records the order of the writes after it is armed.
type orderedKV struct {
	wipeable
	mu     sync.Mutex
	armed  bool
	writes []string
}

func (o *orderedKV) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	o.mu.Lock()
	if o.armed && key != "nonce:~fence" {
		o.writes = append(o.writes, key)
	}
	o.mu.Unlock()
	return o.wipeable.SetNX(ctx, key, value, ttl)
}

// After a loss the newest nonces are written back first: a capture replayed
// then is most likely of a recent call, and a large backlog took seconds.
func TestTheWriteBackStartsWithTheNewest(t *testing.T) {
	clk := &clock{t: time.Unix(1767225600, 0)}
	kv := &orderedKV{wipeable: wipeable{KV: store.NewMemory(store.MemoryOptions{})}}
	a := callerauth.NewNonces(callerauth.NoncesOptions{Shared: kv, Now: clk.now, ProbeEvery: 10 * time.Millisecond})
	ctx := context.Background()
	for i := range 5 {
		require.True(t, a.Spend(ctx, fmt.Sprintf("nonce:n%d", i)))
		clk.add(time.Second)
	}
	time.Sleep(50 * time.Millisecond) // the fence is seen
	kv.mu.Lock()
	kv.armed = true
	kv.mu.Unlock()
	kv.wipe()
	require.Eventually(t, func() bool {
		clk.add(20 * time.Millisecond) // the watch looks again once a probe interval has passed
		kv.mu.Lock()
		defer kv.mu.Unlock()
		return len(kv.writes) == 5 && a.Pending() == 0
	}, 5*time.Second, 5*time.Millisecond)
	kv.mu.Lock()
	defer kv.mu.Unlock()
	require.Equal(t, []string{"nonce:n4", "nonce:n3", "nonce:n2", "nonce:n1", "nonce:n0"}, kv.writes)
}
