package runtime

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

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

// denyAll refuses every HTTP call with reason.
func denyAll(code int, reason string) Guard {
	return GuardFunc(func(context.Context, *envelope.Input) *envelope.Error {
		return &envelope.Error{Code: code, Reason: reason}
	})
}

// openGuard lets every HTTP call through (CLOUDCALL_ALLOW_ANONYMOUS=true,
// no caller keys).
type openGuard struct{}

func (openGuard) Check(context.Context, *envelope.Input) *envelope.Error { return nil }

// AnonymousWarning is logged at start by a function whose HTTP triggers take
// unsigned calls.
const AnonymousWarning = "CLOUDCALL_ALLOW_ANONYMOUS=true and no CLOUDCALL_CALLER_KEYS: HTTP triggers run every call unsigned; " +
	"safe only where the platform checks callers first (an FC trigger with authType: function, an API Gateway authorizer) or under cloudcall local"

// NewGuard is default deny (DESIGN §5): CLOUDCALL_CALLER_KEYS turns on
// signature checks; without keys every HTTP call is refused unless
// CLOUDCALL_ALLOW_ANONYMOUS=true. Nonces are kept in this instance's memory
// and in the shared store behind st (never its memory fallback, which would
// hide an outage). When the keys are malformed the error says why and the
// returned guard refuses every HTTP call, so nothing runs unsigned.
func NewGuard(env *config.Env, st store.Store, log *slog.Logger) (Guard, error) {
	raw, err := env.Secret("CLOUDCALL_CALLER_KEYS")
	if err == nil && raw != "" {
		var keys map[string]string
		if keys, err = callerauth.ParseKeys(raw); err == nil {
			for _, s := range keys {
				env.Remember(s)
			}
			var shared store.KV
			if st != nil {
				shared = store.Durable(st)
			}
			nonces := callerauth.NewNonces(callerauth.NoncesOptions{Shared: shared, Log: log})
			return SignatureGuard(callerauth.NewVerifier(keys, nonces, nil)), nil
		}
	}
	if err != nil {
		return denyAll(envelope.CodeConfig, "configuration: "+err.Error()), err
	}
	if env.Bool("CLOUDCALL_ALLOW_ANONYMOUS", false) {
		// New says so at start (AnonymousWarning), once it knows the
		// function has an HTTP trigger.
		return openGuard{}, nil
	}
	return denyAll(envelope.CodeUnauthenticated,
		"unauthenticated: this HTTP trigger refuses every call until CLOUDCALL_CALLER_KEYS is set (or CLOUDCALL_ALLOW_ANONYMOUS=true for local use)"), nil
}

// SignatureGuard checks callerauth signatures. Exactly one Authorization
// value is accepted: with two, which one a proxy or the platform's header map
// keeps is anyone's guess.
func SignatureGuard(v *callerauth.Verifier) Guard {
	return GuardFunc(func(ctx context.Context, in *envelope.Input) *envelope.Error {
		if headerCount(in.Header, "Authorization") > 1 {
			return &envelope.Error{Code: envelope.CodeUnauthenticated, Reason: "unauthenticated: more than one Authorization header; send exactly one"}
		}
		// The Idempotency-Key header is not signed: only the shared nonce
		// record stops a capture replayed on another instance with a new key
		// during a store outage, so such calls wait for the store.
		shared := headerCount(in.Header, "Idempotency-Key") > 0
		err := v.Verify(ctx, callerauth.Request{Method: in.Method, Path: in.Path, RawQuery: in.RawQuery, QueryJoined: in.QueryJoined,
			Authorization: in.HeaderValue("Authorization"), Body: in.Body, SharedNonce: shared})
		var r *callerauth.Refusal
		switch {
		case err == nil:
			if shared { // only then does an operation need it: no second parse on every call
				if a, perr := callerauth.Parse(in.HeaderValue("Authorization")); perr == nil {
					in.SignedNonce = a.Nonce
				}
			}
			return nil
		case errors.As(err, &r):
			e := &envelope.Error{Code: envelope.CodeUnauthenticated, Reason: "unauthenticated: " + r.Reason}
			if r.Replayed {
				e.Err = callerauth.ErrReplayed // the log line's level: no text a caller can write decides it
			}
			return e
		case errors.Is(err, store.ErrUnavailable):
			return &envelope.Error{Code: envelope.CodeStoreUnavailable, RetryAfter: 1,
				Reason: "replay protection is unavailable for a call with an Idempotency-Key header (the shared store is down); nothing ran, retry shortly", Err: err}
		default:
			return &envelope.Error{Code: envelope.CodeInternal, Reason: "caller authentication failed", Err: err}
		}
	})
}

// headerCount counts the values of name under every spelling of it (a header
// map built from an event may hold "authorization" and "Authorization").
func headerCount(h http.Header, name string) int {
	n := 0
	for k, vs := range h {
		if strings.EqualFold(k, name) {
			n += len(vs)
		}
	}
	return n
}
