package quotaalert

import (
	"context"
	"sync"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/registry"
)

// API is the errMsg prefix of the function.
const API = "cloudcall.quotaAlert"

// RunInput is what a timer or a "run now" invocation sends. Nothing is
// required: the watch list comes only from configuration, so a caller can
// neither add accounts nor point notifications anywhere.
type RunInput struct{}

// Op is the function's operation: one run, answered with its summary.
func (a *Alerter) Op() envelope.Op {
	schema := sync.OnceValue(func() *envelope.Schema {
		return envelope.MustCompileSchema(registry.InputSchema("quota-alert"))
	})
	// The compile (~0.15 ms in a fresh process) runs in the runtime's
	// background warm-up, overlapping its first poll.
	return envelope.Op{API: API, Warm: func(context.Context) { schema() }, Handle: func(ctx context.Context, in *envelope.Input) (any, error) {
		var q RunInput
		if err := envelope.DecodeInput(in.Body, schema().For(in), &q); err != nil {
			return nil, err
		}
		return a.Run(ctx)
	}}
}
