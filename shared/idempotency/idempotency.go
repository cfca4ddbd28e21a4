// Package idempotency makes a money-moving write happen at most once per key:
// the first call takes a record in the shared store, a repeat within the
// retention window gets the first call's answer without reaching the vendor,
// a concurrent repeat gets a conflict, and a call whose outcome is unknown
// stays unknown for every repeat until someone reconciles it.
package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/store"
)

// States of a record.
const (
	InProgress = "in_progress"
	Done       = "done"
)

// Record is what the store keeps per key.
type Record struct {
	State       string          `json:"state"`
	Fingerprint string          `json:"fingerprint"`
	Started     int64           `json:"started"` // unix ms
	Status      int             `json:"status,omitempty"`
	Response    json.RawMessage `json:"response,omitempty"` // the envelope the first call answered
}

// Options configures a Guard.
type Options struct {
	KV        store.KV
	Namespace string        // e.g. "idem:top:<app key>:"
	Retention time.Duration // how long a finished answer is replayed (default 24h)
	// Stuck is how long an in-progress record may be before the call that
	// took it must have ended (its timeout plus a margin). A repeat after
	// that learns the outcome is unknown: the first call died mid-way.
	Stuck time.Duration
	Now   func() time.Time
}

// Guard runs calls at most once per key.
type Guard struct{ o Options }

// New builds a Guard. Records go through store.Durable: without the shared
// store the write refuses rather than risk running twice.
func New(o Options) *Guard {
	if o.Retention <= 0 {
		o.Retention = 24 * time.Hour
	}
	if o.Stuck <= 0 {
		o.Stuck = 2 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.KV = store.Durable(o.KV)
	return &Guard{o: o}
}

// Fingerprint hashes the canonical request: callers pass the bytes of a
// canonical encoding (sorted keys, no insignificant spaces).
func Fingerprint(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

// Verdict says what to do with the final answer of the call.
type Verdict int

const (
	// Keep records the answer: it is replayed to every repeat (success, a
	// business refusal, an unknown outcome).
	Keep Verdict = iota
	// Release forgets the key: the vendor certainly did nothing, so a repeat
	// may try again (a throttle, a request that never left).
	Release
)

// Run executes fn at most once for key. fn returns the envelope it answered
// and whether to keep it. A repeat gets the kept envelope (replayed true); a
// concurrent one, or one with another request under the same key, gets an
// *envelope.Error with CodeIdempotencyConflict.
func (g *Guard) Run(ctx context.Context, key, fingerprint string, fn func(ctx context.Context) (envelope.Response, Verdict)) (resp envelope.Response, replayed bool, e *envelope.Error) {
	k := g.o.Namespace + key
	start := Record{State: InProgress, Fingerprint: fingerprint, Started: g.o.Now().UnixMilli()}
	raw, _ := json.Marshal(start)
	// The in-progress record lives as long as a finished one: if this call
	// dies after sending, its repeats must learn "unknown", never run again.
	ok, err := g.o.KV.SetNX(ctx, k, raw, g.o.Retention)
	if err != nil {
		return envelope.Response{}, false, unavailable(err)
	}
	if !ok {
		return g.repeat(ctx, k, fingerprint)
	}
	resp, verdict := fn(ctx)
	// The record must be written even if the invocation's context is ending.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if verdict == Release {
		// On failure the record stays in progress and repeats are told to
		// reconcile: safe, if less convenient.
		_, _ = g.o.KV.CompareAndDelete(wctx, k, raw)
		return resp, false, nil
	}
	done := Record{State: Done, Fingerprint: fingerprint, Started: start.Started, Status: resp.Status, Response: resp.Body}
	fin, _ := json.Marshal(done)
	// On failure the call ran but the record stays in progress: repeats are
	// told the outcome is unknown rather than run it again.
	_, _ = g.o.KV.CompareAndSwap(wctx, k, raw, fin, g.o.Retention)
	return resp, false, nil
}

func (g *Guard) repeat(ctx context.Context, k, fingerprint string) (envelope.Response, bool, *envelope.Error) {
	raw, err := g.o.KV.Get(ctx, k)
	if errors.Is(err, store.ErrNotFound) {
		// Released between our SetNX and Get: the caller may simply retry.
		return envelope.Response{}, false, &envelope.Error{Code: envelope.CodeIdempotencyConflict, Reason: "idempotency conflict: the first call with this key just finished without effect; retry"}
	}
	if err != nil {
		return envelope.Response{}, false, unavailable(err)
	}
	var rec Record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return envelope.Response{}, false, &envelope.Error{Code: envelope.CodeInternal, Reason: "internal error", Err: fmt.Errorf("idempotency record unreadable: %w", err)}
	}
	switch {
	case rec.Fingerprint != fingerprint:
		return envelope.Response{}, false, &envelope.Error{Code: envelope.CodeIdempotencyConflict, Reason: "idempotency conflict: this key was used for a different request; use a new key for a new charge"}
	case rec.State == Done:
		return envelope.Response{Status: rec.Status, Body: rec.Response}, true, nil
	case g.o.Now().Sub(time.UnixMilli(rec.Started)) > g.o.Stuck:
		return envelope.Response{}, false, &envelope.Error{Code: envelope.CodeOutcomeUnknown, Reason: "outcome unknown — reconcile before retrying: the first call with this key stopped before recording its result"}
	default:
		return envelope.Response{}, false, &envelope.Error{Code: envelope.CodeIdempotencyConflict, Reason: "idempotency conflict: a call with this key is in progress; wait for its answer"}
	}
}

func unavailable(err error) *envelope.Error {
	return &envelope.Error{Code: envelope.CodeStoreUnavailable,
		Reason: "the idempotency record cannot be written, so the charge did not run; retry when the shared store is back", Err: err}
}
