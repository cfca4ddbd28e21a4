package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/callerauth"
	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/runtime"
)

// The invocation line carries the same fields whether the op succeeds or
// fails, requestId first, and is redacted like every other line.
func TestInvocationLogLine(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		level string
		want  map[string]any
	}{
		{"success", nil, "INFO", map[string]any{"status": 200.0, "errCode": 0.0}},
		{"upstream refusal", &envelope.Error{Code: envelope.CodeUpstream, Reason: "vendor said no to the-app-secret-value",
			Upstream: &envelope.Upstream{Vendor: "v", HTTPStatus: 200, Code: "E1"}, Err: errors.New("cause text")}, "INFO",
			map[string]any{"errCode": float64(envelope.CodeUpstream), "reason": "vendor said no to [REDACTED]", "upstreamStatus": 200.0, "upstreamCode": "E1", "cause": "cause text"}},
		{"internal", &envelope.Error{Code: envelope.CodeInternal, Reason: "internal error"}, "ERROR",
			map[string]any{"errCode": float64(envelope.CodeInternal), "reason": "internal error"}},
		// A person must reconcile it: an ERROR, whatever level the
		// deployment logs at (an outside tester's warn-level FC had no line).
		{"outcome unknown", &envelope.Error{Code: envelope.CodeOutcomeUnknown, Reason: "outcome unknown — reconcile"}, "ERROR",
			map[string]any{"errCode": float64(envelope.CodeOutcomeUnknown)}},
		{"store down", &envelope.Error{Code: envelope.CodeStoreUnavailable, Reason: "the records store is unavailable"}, "WARN", nil},
		{"configuration missing", envelope.ConfigError("no TOP_APP_KEY"), "WARN", nil},
		{"a signed request delivered twice", &envelope.Error{Code: envelope.CodeUnauthenticated, Reason: "unauthenticated: replayed nonce", Err: callerauth.ErrReplayed}, "WARN", nil},
		// A malformed header quotes the caller's own text: no text decides the level.
		{"a header naming a field 'replayed nonce'", &envelope.Error{Code: envelope.CodeUnauthenticated, Reason: `unauthenticated: malformed Authorization header: bad or repeated field "replayed nonce"`}, "INFO", nil},
		{"a transport failure has no vendor status", &envelope.Error{Code: envelope.CodeOutcomeUnknown, Reason: "outcome unknown", Upstream: &envelope.Upstream{Vendor: "top"}, Err: errors.New("Post: EOF")}, "ERROR",
			map[string]any{"upstreamStatus": nil, "upstreamCode": nil, "cause": "Post: EOF"}},
		{"a caller's bad signature", &envelope.Error{Code: envelope.CodeUnauthenticated, Reason: "unauthenticated: signature does not match"}, "INFO", nil},
		{"a caller's bad input", &envelope.Error{Code: envelope.CodeInvalidInput, Reason: "invalid input: x"}, "INFO", nil},
		{"the vendor's request id", &envelope.Error{Code: envelope.CodeUpstream, Reason: "refused",
			Upstream: &envelope.Upstream{Vendor: "top", Code: "15", RequestID: "top-rid-1"}}, "INFO",
			map[string]any{"upstreamRequestId": "top-rid-1", "upstreamStatus": 0.0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := config.FromMap(map[string]string{"FC_FUNCTION_NAME": "fn-1", "APP_SECRET": "the-app-secret-value"})
			_, err := env.Secret("APP_SECRET")
			require.NoError(t, err)
			var buf bytes.Buffer
			h, err := runtime.New(context.Background(), env, runtime.NewLogger(&buf, env), func(context.Context, runtime.Deps) (envelope.Op, error) {
				return envelope.Op{API: "demo.api", Handle: func(context.Context, *envelope.Input) (any, error) {
					if tc.err != nil {
						return nil, tc.err
					}
					return map[string]int{"x": 1}, nil
				}}, nil
			})
			require.NoError(t, err)
			h.Invoke(context.Background(), []byte(`{}`), runtime.Meta{RequestID: "req-9"})
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			require.Len(t, lines, 1)
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(lines[0]), &m))
			require.Equal(t, "invocation", m["msg"])
			require.Equal(t, tc.level, m["level"])
			require.Equal(t, "fn-1", m["function"])
			require.Equal(t, "demo.api", m["api"])
			require.Equal(t, "req-9", m["requestId"])
			require.Contains(t, m, "event")
			require.Contains(t, m, "latencyMs")
			for k, v := range tc.want {
				require.Equal(t, v, m[k], k)
			}
			require.NotContains(t, lines[0], "the-app-secret-value")
			require.Contains(t, lines[0], `"msg":"invocation","requestId":"req-9","function":"fn-1","api":"demo.api","event":`)
		})
	}
}

// A deployment that logs at WARN keeps the lines its alarms read (-1304),
// and the charge's line carries what reconciling needs: the key, TOP's
// order id and request id.
func TestInvocationLineAtWarnKeepsWhatNeedsAPerson(t *testing.T) {
	for _, tc := range []struct {
		name  string
		resp  envelope.Response
		lines int
	}{
		{"a success is not written", envelope.Response{Status: 200, Body: []byte(`{"errCode":0,"errMsg":"demo.api:ok"}`),
			Trace: envelope.Trace{IdempotencyKey: "k-1", VendorID: "ECS1", UpstreamRequestID: "rid-1"}}, 0},
		{"an outcome unknown is", envelope.Failure("demo.api", &envelope.Error{Code: envelope.CodeOutcomeUnknown, Reason: "outcome unknown"}), 1},
		{"a charge whose record was not finished is", func() envelope.Response {
			r := envelope.Response{Status: 200, Body: []byte(`{"errCode":0,"errMsg":"demo.api:ok"}`), Unrecorded: true}
			return r
		}(), 1},
		{"a recorded outcome unknown answered again is, at WARN", func() envelope.Response {
			r := envelope.Failure("demo.api", &envelope.Error{Code: envelope.CodeOutcomeUnknown, Reason: "replayed: outcome unknown"})
			r.Replayed = true
			return r
		}(), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := config.FromMap(map[string]string{"FC_FUNCTION_NAME": "fn-1", "CLOUDCALL_LOG_LEVEL": "warn"})
			var buf bytes.Buffer
			resp := tc.resp
			resp.Trace = envelope.Trace{IdempotencyKey: "k-1", VendorID: "ECS1", UpstreamRequestID: "rid-1"}
			h, err := runtime.New(context.Background(), env, runtime.NewLogger(&buf, env), func(context.Context, runtime.Deps) (envelope.Op, error) {
				return envelope.Op{API: "demo.api", Handle: func(context.Context, *envelope.Input) (any, error) {
					return envelope.Prepared(resp), nil
				}}, nil
			})
			require.NoError(t, err)
			h.Invoke(context.Background(), []byte(`{}`), runtime.Meta{RequestID: "req-9"})
			out := strings.TrimSpace(buf.String())
			if tc.lines == 0 {
				require.Empty(t, out)
				return
			}
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(out), &m))
			want := "ERROR"
			if tc.resp.Replayed {
				want = "WARN"
			}
			require.Equal(t, want, m["level"])
			require.Equal(t, "k-1", m["idempotencyKey"])
			require.Equal(t, "ECS1", m["vendorId"])
			require.Equal(t, "rid-1", m["upstreamRequestId"])
			if tc.resp.Unrecorded {
				require.Equal(t, true, m["unrecorded"])
			}
		})
	}
}
