package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

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
