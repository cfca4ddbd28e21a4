package emulator

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// freeAfter is how many body bytes pass through before an idle budget gives
// the heap back to the system: Go keeps freed memory for minutes, and a
// burst of 32 MB bodies left the emulator at 2.3 GB two minutes later.
const freeAfter = 64 << 20

// errBodyBudget is a call that found no room in the body budget in time.
var errBodyBudget = errors.New("the emulator holds as many request bodies as its budget allows")

// bodyBudget bounds the bytes of request bodies held at once across the
// doors. A call reserves its Content-Length (a chunked one, the door's
// limit, cut to what arrived) before reading, and gives it back when its
// payload is no longer needed; the semaphore is first in, first out, so a
// large body is not starved by small ones.
type bodyBudget struct {
	size     int64
	sem      *semaphore.Weighted
	reserved atomic.Int64 // bytes reserved now
	held     atomic.Int64 // bytes read into memory now
	peak     atomic.Int64 // the most ever read into memory at once
	since    atomic.Int64 // bytes read since the heap was last given back
	freeing  atomic.Bool
}

func newBodyBudget(size int64) *bodyBudget {
	return &bodyBudget{size: size, sem: semaphore.NewWeighted(size)}
}

// acquire waits for n bytes of room until ctx ends.
func (b *bodyBudget) acquire(ctx context.Context, n int64) error {
	if err := b.sem.Acquire(ctx, n); err != nil {
		return err
	}
	b.reserved.Add(n)
	return nil
}

// shrink gives back the part of a reservation a body did not use.
func (b *bodyBudget) shrink(n int64) {
	if n > 0 {
		b.reserved.Add(-n)
		b.sem.Release(n)
	}
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

// readBody reads a request body of at most limit bytes within the body
// budget: a Content-Length over the limit is "over" without a byte read,
// and a call that finds no room for its body within BodyWait gets
// errBodyBudget, its body unread. release gives the body's room back: call
// it once the payload is no longer needed (it is never nil). A body that
// stops arriving for the body timeout is errBodyTimeout.
func (e *Emulator) readBody(w http.ResponseWriter, r *http.Request, limit int) (body []byte, release func(), over bool, err error) {
	release = func() {}
	if r.ContentLength > int64(limit) {
		// Known to be over before it is read: no read, no memory.
		w.Header().Set("Connection", "close")
		return nil, release, true, nil
	}
	need := r.ContentLength
	if need < 0 {
		need = int64(limit) + 1 // chunked: room for the limit and one byte to tell "over"
	}
	if err := e.reserveBody(r, need); err != nil {
		w.Header().Set("Connection", "close") // its body is not read
		return nil, release, false, err
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(e.opts.BodyTimeout))
	e.readMu.Lock()
	select {
	case <-e.stop:
		e.readMu.Unlock()
		e.bodies.release(need, 0)
		w.Header().Set("Connection", "close")
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
		body, err = io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	}
	e.readMu.Lock()
	delete(e.reading, rc)
	e.readMu.Unlock()
	if err != nil || len(body) > limit {
		e.bodies.release(need, 0)
		// The rest of the body is not worth waiting for: answer, then
		// close the connection (the deadline stays, so nothing waits).
		w.Header().Set("Connection", "close")
		var ne net.Error
		switch {
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

// reserveBody waits for n bytes of the body budget while the caller is
// there, for at most BodyWait, and not past the start of a shutdown.
func (e *Emulator) reserveBody(r *http.Request, n int64) error {
	if n == 0 {
		return nil
	}
	if e.bodies.sem.TryAcquire(n) {
		// Room now, as for nearly every call: no timer, no watcher.
		e.bodies.reserved.Add(n)
		return nil
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
