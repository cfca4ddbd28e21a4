package idempotency

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

// A Migration is a change in how a function computes a request's
// fingerprint. Records written before it name the request by the old one
// for as long as they live, and a repeat that looked only for the new one
// would read as another request: a keyed repeat would hear -1401 ("use a
// new key", which charges again) and a keyless one would charge again. So
// for a while after the first call that used the new fingerprint, a call
// looks for its request's records under the old one too, and keeps to it
// when it finds them.
type Migration struct {
	g      *Guard
	marker string
	// until is when records under the old fingerprint may last have been
	// written or renewed (unix ms), known from the store's marker; 0 until
	// it has been read. checked is when it was read (unix ms).
	until, checked atomic.Int64
}

// markerTTL keeps the marker for as long as a store is likely to be used:
// were it to expire, the next call would start another window of lookups
// (costly, never wrong).
const markerTTL = 10 * 365 * 24 * time.Hour

// recheck is how often an instance reads the marker again: a person who
// forgot it after a rollback (cloudcall records migration --restart)
// reaches instances already running within it, and the next of their
// calls writes it anew (an instance that kept its window open left the
// store without a marker while it looked, and the tool said none had
// charged: an outside tester).
const recheck = time.Minute

// Migration names a change of fingerprint. Its marker lives in the records
// store (the space keeps it apart from every call's key).
func (g *Guard) Migration(name string) *Migration {
	return &Migration{g: g, marker: g.o.Namespace + "once migration " + name}
}

// open says whether records under the old fingerprint may still be live.
// The first call to ask writes the time into the store; every instance
// then counts from it. The window is two retentions: one for the records
// the old release wrote before the first new call, one more for an old
// release still running beside the new one (a rolling or canary update).
// The marker is read again every recheck. A store that cannot say keeps
// the window open (one more read, nothing lost).
func (m *Migration) open(ctx context.Context) (bool, error) {
	now := m.g.o.Now().UnixMilli()
	if u := m.until.Load(); u != 0 && now-m.checked.Load() < recheck.Milliseconds() {
		return now < u, nil
	}
	// Read first: the marker is there for all but the very first call on a
	// store, and a cold instance whose call comes before its warm-up read
	// it then makes one round trip, not two.
	rec, err := m.g.o.Records.Read(ctx, m.marker)
	if errors.Is(err, ErrNotFound) {
		rec = Record{Token: newToken(), State: Done, Started: now}
		var ok bool
		if ok, err = m.g.o.Records.Reserve(ctx, m.marker, rec, markerTTL); err == nil && !ok {
			rec, err = m.g.o.Records.Read(ctx, m.marker) // another call wrote it meanwhile
		}
	}
	if err != nil {
		return true, err
	}
	until := m.end(rec)
	m.until.Store(until)
	m.checked.Store(now)
	return now < until, nil
}

// Warm reads the marker at cold start, off the first call's time. It
// writes nothing (a warm-up changes no record): when the marker is not
// there yet, the first call writes it.
func (m *Migration) Warm(ctx context.Context) {
	rec, err := m.g.o.Records.Read(ctx, m.marker)
	switch {
	case err == nil:
		m.until.Store(m.end(rec))
		m.checked.Store(m.g.o.Now().UnixMilli())
	case !errors.Is(err, ErrNotFound):
		m.g.o.Log.Debug("idempotency: fingerprint migration marker not read at cold start; the first call will retry", "error", err.Error())
	}
}

// end is when the window that the marker rec opened closes (unix ms).
func (m *Migration) end(rec Record) int64 {
	return m.Until(time.UnixMilli(rec.Started)).UnixMilli()
}

// Fingerprint says which fingerprint the call with key (empty: keyless)
// runs under: the old one (computed by old, only when needed) while the
// window is open and the store holds this request under it (the key's
// record, or the old keyless slot, which a keyless call or another key's
// alias left), fp otherwise. A key naming the old keyless slot is this
// request's own and keeps to the old one. On a store failure it returns fp
// with the error.
func (m *Migration) Fingerprint(ctx context.Context, key, fp string, old func() string) (string, *envelope.Error) {
	if IsKeylessKey(key) {
		if o := old(); key == KeylessKey(o) {
			return o, nil
		}
	}
	if open, err := m.open(ctx); !open {
		return fp, nil
	} else if err != nil {
		m.g.o.Log.Debug("idempotency: fingerprint migration marker not read; looking under the old fingerprint too", "error", err.Error())
	}
	o := old()
	if o == fp {
		return fp, nil
	}
	if key != "" {
		rec, err := m.g.o.Records.Read(ctx, m.g.o.Namespace+key)
		switch {
		case err == nil && rec.Fingerprint == o:
			return o, nil
		case err == nil && rec.Fingerprint == fp:
			return fp, nil
		case err != nil && !errors.Is(err, ErrNotFound):
			return fp, storeError(err)
		}
	}
	_, err := m.g.o.Records.Read(ctx, m.g.o.Namespace+KeylessKey(o))
	switch {
	case err == nil:
		return o, nil
	case errors.Is(err, ErrNotFound):
		return fp, nil
	}
	return fp, storeError(err)
}

// Since is when the window opened (the marker's time) and whether a marker
// is there at all: none means no call of the new release has reached this
// store yet.
func (m *Migration) Since(ctx context.Context) (time.Time, bool, error) {
	rec, err := m.g.o.Records.Read(ctx, m.marker)
	if errors.Is(err, ErrNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	return time.UnixMilli(rec.Started), true, nil
}

// Until is when a window opened at since closes.
func (m *Migration) Until(since time.Time) time.Time {
	return since.Add(2 * m.g.o.Retention)
}

// Forget removes the marker, for a person who rolled back to a release
// before the change and will update again: the old release writes records
// under the old fingerprint meanwhile, and a window counted from the first
// update may close before they expire. The next call of a release with the
// change writes the marker anew and counts two days from then; instances
// already running read it again within a minute of their window closing.
// It reports whether there was a marker to remove.
func (m *Migration) Forget(ctx context.Context) (bool, error) {
	for attempt := 0; attempt < 3; attempt++ {
		cur, err := m.g.o.Records.Read(ctx, m.marker)
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if ok, err := m.g.o.Records.Release(ctx, m.marker, cur.Token); err != nil || ok {
			return ok, err
		}
	}
	return false, errors.New("idempotency: the migration marker kept changing; run it again")
}
