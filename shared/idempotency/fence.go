package idempotency

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrLost: the store lost records it had (a Redis back empty, a records
// table emptied or dropped), found by an instance whose fence was gone, and
// it refuses every new charge until a person has reconciled the charges the
// lost records covered and reopened it (-1601). Refusing is what keeps a key
// charged before the loss from charging again.
var ErrLost = errors.New("idempotency: the records store lost its data")

// What a store does after it found its data lost (CLOUDCALL_IDEMPOTENCY_AFTER_LOSS).
const (
	// AfterLossRefuse (the default) marks the loss in the store itself, so
	// every instance, new ones too, refuses charges until `cloudcall records
	// reopen`.
	AfterLossRefuse = "refuse"
	// AfterLossContinue logs the loss at ERROR and goes on charging: a key
	// charged before the loss can charge again. For stores emptied on
	// purpose (test environments that flush Redis).
	AfterLossContinue = "continue"
)

// VarAfterLoss names the setting.
const VarAfterLoss = "CLOUDCALL_IDEMPOTENCY_AFTER_LOSS"

// CheckAfterLoss accepts "" (the default, refuse), refuse and continue.
func CheckAfterLoss(v string) (string, error) {
	switch v {
	case "":
		return AfterLossRefuse, nil
	case AfterLossRefuse, AfterLossContinue:
		return v, nil
	}
	return "", fmt.Errorf("%s=%q: expected %s (the default) or %s", VarAfterLoss, v, AfterLossRefuse, AfterLossContinue)
}

// A fence is the value a store keeps, never expiring, beside its records: an
// instance remembers the one it saw, and a different one means the records
// it vouched for are gone. It is one of:
//   - 32 hex digits: written by the first instance to use the store;
//   - "lost <time> <epoch>": a loss found at that time, refusing charges,
//     over a fence of that epoch;
//   - "reopened <epoch> <time> <16 hex>": written by cloudcall records
//     reopen after a person reconciled a loss; its epoch is the time of the
//     reopening in unix milliseconds (or one past the loss's, if that is
//     later: a clock behind).
//
// The epoch orders reopenings: a replica that lagged behind a reopening
// holds an older one, which an instance that saw the newer one refuses (an
// outside tester: 10 keys charged twice when an older reopened fence was
// taken as good). A time, not a count: the loss found on such a replica
// may carry only the replica's epoch, and a count one past it fell below
// what warm instances knew, which then found a new loss within a second (a
// re-tester). Every form fits the SQL token column (64 ASCII bytes).
const (
	lostPrefix     = "lost "
	reopenedPrefix = "reopened "
)

// NewFence is the fence of a store used for the first time.
func NewFence() string { return randomHex(16) }

// LostFence records a loss found at at over the fence found, by an
// instance that knew the fence it had (its epoch may be the later one: a
// replica that lagged holds an older reopening).
func LostFence(at time.Time, found, had string) string {
	return fmt.Sprintf("%s%s %d", lostPrefix, at.UTC().Format(time.RFC3339), max(epoch(found), epoch(had)))
}

// ReopenedFence is what cloudcall records reopen writes at at over the
// fence lost, which records a loss.
func ReopenedFence(at time.Time, lost string) string {
	e := max(at.UnixMilli(), epoch(lost)+1)
	return fmt.Sprintf("%s%d %s %s", reopenedPrefix, e, at.UTC().Format(time.RFC3339), randomHex(8))
}

// FenceLostAt says whether fence records a loss, and when it was found.
func FenceLostAt(fence string) (string, bool) {
	rest, ok := strings.CutPrefix(fence, lostPrefix)
	if !ok {
		return "", false
	}
	at, _, _ := strings.Cut(rest, " ")
	return at, true
}

// FenceReopenedAt says whether fence was written by a reopening, and when.
func FenceReopenedAt(fence string) (string, bool) {
	rest, ok := strings.CutPrefix(fence, reopenedPrefix)
	if !ok {
		return "", false
	}
	if f := strings.Fields(rest); len(f) > 1 {
		return f[1], true
	}
	return "", true
}

// epoch orders the reopenings the fence comes after: 0 for a store's first
// fence.
func epoch(fence string) int64 {
	var field string
	if rest, ok := strings.CutPrefix(fence, lostPrefix); ok {
		_, field, _ = strings.Cut(rest, " ")
	} else if rest, ok := strings.CutPrefix(fence, reopenedPrefix); ok {
		field, _, _ = strings.Cut(rest, " ")
	}
	n, _ := strconv.ParseInt(field, 10, 64)
	return n
}

// FenceVerdict is what a fence read says to an instance that saw another one.
type FenceVerdict int

const (
	// FenceHolds: the records this instance relied on are all there (the
	// same fence, a store used for the first time, or a later reopening).
	FenceHolds FenceVerdict = iota
	// FenceRecordsLoss: the store already records a loss.
	FenceRecordsLoss
	// FenceGone: this instance finds the loss: its fence was replaced by a
	// new store's one or an older reopening, or is gone.
	FenceGone
)

// Judge compares the fence read (cur) with the one this instance saw last
// (prev, "" when it saw none). A reopening later than prev holds whatever
// came before: the person who wrote it reconciled what was lost.
func Judge(prev, cur string) FenceVerdict {
	if _, lost := FenceLostAt(cur); lost {
		return FenceRecordsLoss
	}
	if prev == "" || cur == prev {
		return FenceHolds
	}
	if _, reopened := FenceReopenedAt(cur); reopened && epoch(cur) > epoch(prev) {
		return FenceHolds
	}
	return FenceGone
}

// LostError is the refusal of a store that lost its data; it wraps ErrLost.
// Callers hear it: the store's address is in the function's log only.
func LostError(store, fence string) error {
	at, _ := FenceLostAt(fence)
	return fmt.Errorf("%w (%s, found %s: a restart, failover, eviction or deletion lost records, and a key charged before could charge again); "+
		"charges are refused until a person reconciles the last 24 h of charges against TOP and runs cloudcall records reopen --reconciled (docs/operate.md)",
		ErrLost, store, at)
}

// ErrRecordExists: a restore found a record under the key; it writes none
// over it.
var ErrRecordExists = errors.New("idempotency: a record is there already")

// What a store logs about a loss, after saying how it found it.
const (
	// LossContinued ends the ERROR of a loss under AfterLossContinue.
	LossContinued = "records written before are gone, so a key charged before this moment can charge again: reconcile the last 24 h of charges against TOP"
	// LossRefused ends the ERROR of a loss under AfterLossRefuse.
	LossRefused = "records written before are gone, so a key charged before could charge again: every instance now refuses charges (-1601) until a person reconciles the last 24 h of charges against TOP and runs cloudcall records reopen --reconciled"
	// Reopened is the WARN of an instance that finds the store reopened.
	Reopened = "idempotency: the records store was reopened after a loss; charges go ahead again"
)

// Fencer is a store that keeps a fence: cloudcall records status, reopen
// and mark-lost read and replace it.
type Fencer interface {
	// Fence is the fence as stored, "" when none was written yet.
	Fence(ctx context.Context) (string, error)
	// SwapFence writes fence over was ("" for none), only if was is still
	// there.
	SwapFence(ctx context.Context, was, fence string) error
	// Clock is the store's time: a reopening's epoch is taken from it, not
	// from the clock of the machine a person runs cloudcall records on (one
	// a year ahead carried its epochs forward, and one behind fell below
	// what instances knew: an outside tester).
	Clock(ctx context.Context) (time.Time, error)
}

// Reopen replaces a fence that records a loss with its ReopenedFence at the
// store's time, and reports the one replaced; it changes nothing ("", nil)
// when the fence records no loss. A store whose clock cannot be read (a
// Redis user without TIME, a proxy that does not pass it on) is reopened
// at local's time, and warn says so: the brake must not depend on a clock.
func Reopen(ctx context.Context, f Fencer, local time.Time, warn func(error)) (string, error) {
	was, err := f.Fence(ctx)
	if _, lost := FenceLostAt(was); err != nil || !lost {
		return "", err
	}
	at, err := f.Clock(ctx)
	if err != nil {
		warn(err)
		at = local
	}
	return was, f.SwapFence(ctx, was, ReopenedFence(at, was))
}

// MarkLost writes a loss found at at (the brake needs no clock; a reopening
// waits from it for the calls running then) over a fence that records none, for a person who knows the store
// lost records the fence cannot show (a restore from a backup, rows deleted
// by hand); it reports the fence replaced ("none" for no fence), and changes
// nothing ("", nil) when the fence records a loss already.
func MarkLost(ctx context.Context, f Fencer, at time.Time) (string, error) {
	was, err := f.Fence(ctx)
	if _, already := FenceLostAt(was); err != nil || already {
		return "", err
	}
	if err := f.SwapFence(ctx, was, LostFence(at, was, "")); err != nil {
		return "", err
	}
	if was == "" {
		return "none", nil
	}
	return was, nil
}

// EarlierClock is the earlier of store, a time the records store's clock
// gave, and this machine's now: what a person's tool judges a running call
// by (may it still be running, may its request still reach the vendor), so
// that neither clock alone running ahead takes it for dead.
func EarlierClock(store time.Time) time.Time {
	if now := time.Now(); now.Before(store) {
		return now
	}
	return store
}

// LaterClock is the later of store and this machine's now: what a person's
// tool dates a loss by, since the calls running then are waited for from
// it (a loss dated by a clock an hour behind let a reopening in at once,
// before a call cut by the loss had charged: an outside tester).
func LaterClock(store time.Time) time.Time {
	if now := time.Now(); now.After(store) {
		return now
	}
	return store
}

// Rewriter is a store that can write a record again after losing it even
// while it refuses new charges: the record of a call that did run, whose
// repeats must answer from it (Reserve, without the refusal of ErrLost).
type Rewriter interface {
	Rewrite(ctx context.Context, key string, rec Record, ttl time.Duration) (bool, error)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
