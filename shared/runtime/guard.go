package runtime

import (
	"context"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/store"
)

// Guard decides whether an HTTP trigger call may run. Direct and timer
// invocations are authenticated by the platform and never reach it.
type Guard interface {
	Check(ctx context.Context, in *envelope.Input) *envelope.Error
}

// GuardFunc adapts a function to Guard.
type GuardFunc func(ctx context.Context, in *envelope.Input) *envelope.Error

func (f GuardFunc) Check(ctx context.Context, in *envelope.Input) *envelope.Error { return f(ctx, in) }

// NewGuard is default deny (DESIGN §5): with CLOUDCALL_ALLOW_ANONYMOUS=true
// every call passes; otherwise calls need caller keys.
func NewGuard(env *config.Env, st store.Store) (Guard, error) {
	if env.Bool("CLOUDCALL_ALLOW_ANONYMOUS", false) {
		return GuardFunc(func(context.Context, *envelope.Input) *envelope.Error { return nil }), nil
	}
	return GuardFunc(func(context.Context, *envelope.Input) *envelope.Error {
		return &envelope.Error{Code: envelope.CodeUnauthenticated,
			Reason: "unauthenticated: this HTTP trigger refuses every call until CLOUDCALL_CALLER_KEYS is set (or CLOUDCALL_ALLOW_ANONYMOUS=true for local use)"}
	}), nil
}
