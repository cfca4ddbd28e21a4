package runtime

import (
	"context"
	"errors"

	"github.com/cloudcall/cloudcall/shared/callerauth"
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

// NewGuard is default deny (DESIGN §5): CLOUDCALL_CALLER_KEYS turns on
// signature checks; without keys every HTTP call is refused unless
// CLOUDCALL_ALLOW_ANONYMOUS=true.
func NewGuard(env *config.Env, st store.Store) (Guard, error) {
	raw, err := env.Secret("CLOUDCALL_CALLER_KEYS")
	if err != nil {
		return nil, err
	}
	if raw != "" {
		keys, err := callerauth.ParseKeys(raw)
		if err != nil {
			return nil, err
		}
		for _, s := range keys {
			env.Remember(s)
		}
		return SignatureGuard(callerauth.NewVerifier(keys, st, nil)), nil
	}
	if env.Bool("CLOUDCALL_ALLOW_ANONYMOUS", false) {
		return GuardFunc(func(context.Context, *envelope.Input) *envelope.Error { return nil }), nil
	}
	return GuardFunc(func(context.Context, *envelope.Input) *envelope.Error {
		return &envelope.Error{Code: envelope.CodeUnauthenticated,
			Reason: "unauthenticated: this HTTP trigger refuses every call until CLOUDCALL_CALLER_KEYS is set (or CLOUDCALL_ALLOW_ANONYMOUS=true for local use)"}
	}), nil
}

// SignatureGuard checks callerauth signatures.
func SignatureGuard(v *callerauth.Verifier) Guard {
	return GuardFunc(func(ctx context.Context, in *envelope.Input) *envelope.Error {
		err := v.Verify(ctx, callerauth.Request{Method: in.Method, Path: in.Path, RawQuery: in.RawQuery,
			Authorization: in.HeaderValue("Authorization"), Body: in.Body})
		var r *callerauth.Refusal
		switch {
		case err == nil:
			return nil
		case errors.As(err, &r):
			return &envelope.Error{Code: envelope.CodeUnauthenticated, Reason: "unauthenticated: " + r.Reason}
		default:
			return &envelope.Error{Code: envelope.CodeStoreUnavailable, Reason: "replay protection is unavailable; retry shortly", Err: err}
		}
	})
}
