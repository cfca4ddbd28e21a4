package emulator

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// freeAfter is how many body bytes pass through before an idle budget gives
// the heap back to the system: Go keeps freed memory for minutes, and a
// burst of 32 MB bodies left the emulator at 2.3 GB two minutes later.
const freeAfter = 64 << 20

// errBodyBudget is a call that found no room in the body budget in time.
var errBodyBudget = errors.New("the emulator holds as many request bodies as its budget allows")

// bodyBudget bounds the bytes of request bodies held at once across the
// doors. A call reserves its Content-Length (a chunked one, room as its
// bytes arrive) before reading, and gives it back when its payload is no
// longer needed. It is not first in, first out: a call whose body fits the
// room left goes ahead of a larger one that is waiting (with FIFO, a
// 32-byte call waited 10 s behind 32 MB ones, and a few idle chunked
// connections holding 32 MB each stalled every call: a re-tester); a large
// one that finds no room waits at most BodyWait, then hears its door's 429.
type bodyBudget struct {
	size     int64
	mu       sync.Mutex
	free     int64
	wake     chan struct{} // closed, and replaced, when room is given back
	reserved atomic.Int64  // bytes reserved now
	held     atomic.Int64  // bytes read into memory now
	peak     atomic.Int64  // the most ever read into memory at once
	since    atomic.Int64  // bytes read since the heap was last given back
	waiting  atomic.Int64  // calls waiting for room now
	freeing  atomic.Bool
}

func newBodyBudget(size int64) *bodyBudget {
	return &bodyBudget{size: size, free: size, wake: make(chan struct{})}
}

// take reserves n bytes when there is room now; otherwise it returns what
// closes when room is given back.
func (b *bodyBudget) take(n int64) (bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.free >= n {
		b.free -= n
		b.reserved.Add(n)
		return true, nil
	}
	return false, b.wake
}

// acquire waits for n bytes of room until ctx ends.
func (b *bodyBudget) acquire(ctx context.Context, n int64) error {
	b.waiting.Add(1)
	defer b.waiting.Add(-1)
	for {
		ok, wake := b.take(n)
		if ok {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// shrink gives back the part of a reservation a body did not use.
func (b *bodyBudget) shrink(n int64) {
	if n <= 0 {
		return
	}
	b.reserved.Add(-n)
	b.mu.Lock()
	b.free += n
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}

// hold counts n bytes read into memory.
func (b *bodyBudget) hold(n int64) {
	now := b.held.Add(n)
	b.since.Add(n)
	for {
		p := b.peak.Load()
		if now <= p || b.peak.CompareAndSwap(p, now) {
			return
		}
	}
}

// release ends a reservation of n bytes of which read were read; once
// nothing is reserved after large bodies, the heap goes back to the system.
func (b *bodyBudget) release(n, read int64) {
	b.held.Add(-read)
	b.shrink(n)
	if b.reserved.Load() == 0 && b.since.Load() >= freeAfter && b.freeing.CompareAndSwap(false, true) {
		b.since.Store(0)
		go func() {
			defer b.freeing.Store(false)
			debug.FreeOSMemory()
		}()
	}
}

// Peak is the most request-body bytes the doors ever held at once.
func (b *bodyBudget) Peak() int64 { return b.peak.Load() }

// chunkRoom is the room a chunked body reserves first, and the least it
// asks for again each time it fills what it has (doubling): idle chunked
// connections reserved the door's whole limit each, 32 MB, and seven of
// them held the budget (a re-tester).
const chunkRoom = 1 << 20

// readBody reads a request body of at most limit bytes within the body
// budget: a Content-Length over the limit is "over" without a byte read,
// and a call that finds no room for its body within BodyWait gets
// errBodyBudget, the rest of its body unread. release gives the body's room
// back: call it once the payload is no longer needed (it is never nil). A
// body that stops arriving for the body timeout is errBodyTimeout.
func (e *Emulator) readBody(w http.ResponseWriter, r *http.Request, limit int) (body []byte, release func(), over bool, err error) {
	release = func() {}
	rc := http.NewResponseController(w)
	// A body left unread is not waited for: the answer goes, then the
	// connection closes (a refused chunked body was drained for as long as
	// its caller kept sending, 70 s).
	unread := func() {
		w.Header().Set("Connection", "close")
		_ = rc.SetReadDeadline(time.Now())
	}
	if r.ContentLength > int64(limit) {
		// Known to be over before it is read: no read, no memory.
		unread()
		return nil, release, true, nil
	}
	need := r.ContentLength
	if need < 0 {
		need = min(int64(limit)+1, chunkRoom) // chunked: more as it arrives
	}
	if err := e.reserveBody(r, need); err != nil {
		unread()
		return nil, release, false, err
	}
	_ = rc.SetReadDeadline(time.Now().Add(e.opts.BodyTimeout))
	e.readMu.Lock()
	select {
	case <-e.stop:
		e.readMu.Unlock()
		e.bodies.release(need, 0)
		unread()
		return nil, release, false, errShuttingDown
	default:
	}
	e.reading[rc] = struct{}{}
	e.readMu.Unlock()
	if r.ContentLength >= 0 {
		// One buffer of the right size: io.ReadAll's growing copies were
		// garbage twice the body's size.
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, need, err = e.readChunked(r, limit, need)
	}
	e.readMu.Lock()
	delete(e.reading, rc)
	e.readMu.Unlock()
	if err != nil || len(body) > limit {
		e.bodies.release(need, 0)
		unread()
		var ne net.Error
		switch {
		case errors.Is(err, errBodyBudget) || errors.Is(err, errShuttingDown):
			return nil, release, false, err
		case errors.As(err, &ne) && ne.Timeout() && e.stopped():
			return nil, release, false, errShuttingDown // cut by the shutdown
		case errors.As(err, &ne) && ne.Timeout():
			return nil, release, false, errBodyTimeout
		}
		return nil, release, err == nil, err
	}
	_ = rc.SetReadDeadline(time.Time{})
	read := int64(len(body))
	e.bodies.shrink(need - read)
	e.bodies.hold(read)
	var once sync.Once
	return body, func() { once.Do(func() { e.bodies.release(read, read) }) }, false, nil
}

// readChunked reads a body of unknown length, reserving room as it fills
// what it has, up to limit+1 bytes (one more than the limit tells "over").
// It returns the room it holds in the end; a reservation that fails is
// errBodyBudget.
func (e *Emulator) readChunked(r *http.Request, limit int, room int64) ([]byte, int64, error) {
	var body []byte
	for {
		if int64(len(body)) == room {
			if room > int64(limit) {
				return body, room, nil // over: the caller says so
			}
			more := min(max(room, chunkRoom), int64(limit)+1-room)
			if err := e.reserveBody(r, more); err != nil {
				return nil, room, err
			}
			room += more
		}
		if int64(cap(body)) < room {
			body = slices.Grow(body, int(min(room, int64(max(2*cap(body), 4096))))-len(body))
		}
		n, err := r.Body.Read(body[len(body):min(int64(cap(body)), room)])
		body = body[:len(body)+n]
		if err == io.EOF {
			return body, room, nil
		}
		if err != nil {
			return nil, room, err
		}
	}
}

// reserveBody waits for n bytes of the body budget while the caller is
// there, for at most BodyWait, and not past the start of a shutdown.
func (e *Emulator) reserveBody(r *http.Request, n int64) error {
	if n == 0 {
		return nil
	}
	if ok, _ := e.bodies.take(n); ok {
		return nil // room now, as for nearly every call: no timer, no watcher
	}
	ctx, cancel := context.WithTimeout(r.Context(), e.opts.BodyWait)
	defer cancel()
	go func() {
		select {
		case <-e.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := e.bodies.acquire(ctx, n); err != nil {
		if e.stopped() {
			return errShuttingDown
		}
		return errBodyBudget
	}
	return nil
}
