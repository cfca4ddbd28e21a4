package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

// ErrNotSettleable: the record holds no outcome for a person to settle (it
// finished with a definite answer, nothing was sent, the call may still be
// running, or it is the alias of another key). Its message says which.
var ErrNotSettleable = errors.New("idempotency: nothing to settle")

// Inspect reads key's record, for a person reconciling a charge.
func (g *Guard) Inspect(ctx context.Context, key string) (Record, error) {
	return g.o.Records.Read(ctx, g.o.Namespace+key)
}

// Settleable says whether rec's outcome is unknown, so a person who
// reconciled with the vendor may settle it: a recorded -1304, or a call in
// progress for longer than it could run (its instance died).
func (g *Guard) Settleable(rec Record) error {
	switch {
	case rec.Alias != "":
		return fmt.Errorf("%w: this is the keyless slot of the call with idempotency key %q: settle that key", ErrNotSettleable, rec.Alias)
	case rec.State == Reserved:
		return fmt.Errorf("%w: nothing was sent under this key (reserved only); a retry takes it over", ErrNotSettleable)
	case rec.State == InProgress && rec.Known == "" && g.mayRun(rec):
		return fmt.Errorf("%w: the call started %s ago and may still be running; look again once it cannot be (a minute past its deadline)",
			ErrNotSettleable, g.o.Now().Sub(time.UnixMilli(rec.Started)).Round(time.Second))
	case rec.State == Done:
		if code := errCode(rec.Body); code != envelope.CodeOutcomeUnknown {
			return fmt.Errorf("%w: the call finished with a definite answer (errCode %d), replayed to every retry", ErrNotSettleable, code)
		}
	}
	return nil
}

// Settle records what a person found at the vendor for key's unknown
// outcome: answer is what a retry will be told from now on (the charge as
// made); nil means the vendor did nothing, so the record goes and a retry
// with the key runs again. It writes only over the record it judged (the
// same token), so a call that finished meanwhile is never overwritten.
func (g *Guard) Settle(ctx context.Context, key string, answer *envelope.Response) error {
	k := g.o.Namespace + key
	rec, err := g.o.Records.Read(ctx, k)
	if err != nil {
		return err
	}
	if err := g.Settleable(rec); err != nil {
		return err
	}
	var ok bool
	if answer == nil {
		ok, err = g.o.Records.Release(ctx, k, rec.Token)
	} else {
		done := rec
		done.State, done.Status, done.Body, done.Known = Done, answer.Status, answer.Body, ""
		ok, err = g.o.Records.Finish(ctx, k, rec.Token, done, g.o.Retention)
	}
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%w: the record changed while it was being settled (its call may have just finished); inspect it again", ErrNotSettleable)
	}
	return nil
}

// errCode reads a recorded envelope's errCode (0 when it has none).
func errCode(body []byte) int {
	var e struct {
		ErrCode int `json:"errCode"`
	}
	_ = json.Unmarshal(body, &e)
	return e.ErrCode
}
