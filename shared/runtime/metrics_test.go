package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
)

// The metrics hook: cold start on the first invocation only, EMF only when
// the process serves the Lambda runtime API, the namespace from the
// environment (a bad one falls back to the default, with a warning).
func TestMetricsHook(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       map[string]string
		emf       bool
		namespace string
		warn      bool
	}{
		{"lambda", map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}, true, "cloudcall", false},
		{"lambda, own namespace", map[string]string{"AWS_LAMBDA_RUNTIME_API": "x", "CLOUDCALL_METRICS_NAMESPACE": "shop/prod"}, true, "shop/prod", false},
		{"lambda, bad namespace", map[string]string{"AWS_LAMBDA_RUNTIME_API": "x", "CLOUDCALL_METRICS_NAMESPACE": ":bad"}, true, "cloudcall", true},
		{"fc", map[string]string{"FC_RUNTIME_API": "127.0.0.1:9000"}, false, "", false},
		{"fc wins over lambda", map[string]string{"FC_RUNTIME_API": "a", "AWS_LAMBDA_RUNTIME_API": "b"}, false, "", false},
		{"http server", map[string]string{"CLOUDCALL_PORT": "8080"}, false, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs, out bytes.Buffer
			env := config.FromMap(tc.env)
			h, err := New(context.Background(), env, NewLogger(&logs, env), func(context.Context, Deps) (envelope.Op, error) {
				return envelope.Op{API: "test.api", Handle: func(context.Context, *envelope.Input) (any, error) {
					return nil, &envelope.Error{Code: envelope.CodeOutcomeUnknown, Reason: "x"}
				}}, nil
			})
			require.NoError(t, err)
			h.metrics.emf = nil
			h.setupMetrics(env, &out)
			require.Equal(t, tc.warn, strings.Contains(logs.String(), "metrics: using the default namespace"))
			for i := 0; i < 2; i++ {
				h.Invoke(context.Background(), []byte(`{}`), Meta{RequestID: "r"})
			}
			var lines []map[string]any
			for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				var m map[string]any
				require.NoError(t, json.Unmarshal([]byte(l), &m))
				if m["msg"] == "invocation" {
					lines = append(lines, m)
				}
			}
			require.Len(t, lines, 2)
			require.Equal(t, true, lines[0]["coldStart"])
			require.Equal(t, false, lines[1]["coldStart"])
			require.Equal(t, "unknown", lines[0]["errClass"])
			if !tc.emf {
				require.Zero(t, out.Len(), "no EMF off Lambda")
				return
			}
			recs := strings.Split(strings.TrimSpace(out.String()), "\n")
			require.Len(t, recs, 2)
			for i, r := range recs {
				var m map[string]any
				require.NoError(t, json.Unmarshal([]byte(r), &m))
				require.Equal(t, tc.namespace, m["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)["Namespace"])
				require.Equal(t, 1.0, m["outcomeUnknown"])
				require.Equal(t, float64(1-i), m["coldStart"])
				require.Equal(t, "test.api", m["function"], "no function name: the api names the dimension")
			}
		})
	}
}

// Off Lambda the hook costs the invocation no allocation (the log line's
// fields are an array; no EMF record is built).
func TestMetricsHookAllocatesNothingOffLambda(t *testing.T) {
	h := &Handler{}
	resp := envelope.Response{Status: 502, Err: &envelope.Error{Code: envelope.CodeUpstreamUnreachable}}
	allocs := testing.AllocsPerRun(200, func() { _ = h.observe(Meta{RequestID: "r"}, resp, time.Millisecond) })
	require.Zero(t, allocs)
	require.True(t, h.metrics.served.Load())
}

// partialRun is a success payload that lists failures.
type partialRun struct {
	Failures []string `json:"failures"`
}

func (p partialRun) PartlyFailed() bool { return len(p.Failures) > 0 }

func (p partialRun) PartialReason() string { return strings.Join(p.Failures, "; ") }

// A success whose result lists failures (a quota-alert run whose alert no
// channel took) was errClass ok and no fault: an alarm on faults never saw
// a silent alert. It is errClass partial and a fault now; errCode stays 0
// for the caller, and errors counts only errCode != 0.
func TestAPartlyFailedSuccessIsAFault(t *testing.T) {
	for _, failures := range [][]string{nil, {"notify webhook: HTTP 500"}} {
		var logs, out bytes.Buffer
		env := config.FromMap(map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"})
		h, err := New(context.Background(), env, NewLogger(&logs, env), func(context.Context, Deps) (envelope.Op, error) {
			return envelope.Op{API: "test.api", Handle: func(context.Context, *envelope.Input) (any, error) {
				return partialRun{Failures: failures}, nil
			}}, nil
		})
		require.NoError(t, err)
		h.setupMetrics(env, &out)
		body := h.Invoke(context.Background(), []byte(`{}`), Meta{RequestID: "r"})
		require.Contains(t, string(body), `"errCode":0`)
		var line, rec map[string]any
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(l), &m))
			if m["msg"] == "invocation" {
				line = m
			}
		}
		require.NoError(t, json.Unmarshal(bytes.TrimSpace(out.Bytes()), &rec))
		class, faults := "ok", 0.0
		if len(failures) > 0 {
			class, faults = "partial", 1.0
		}
		require.Equal(t, class, line["errClass"])
		require.Equal(t, 0.0, line["errCode"])
		// What failed is on the line: a timer's answer is thrown away.
		if len(failures) > 0 {
			require.Equal(t, "notify webhook: HTTP 500", line["reason"])
		} else {
			require.NotContains(t, line, "reason")
		}
		require.Equal(t, class, rec["errClass"])
		require.Equal(t, faults, rec["faults"])
		require.Equal(t, 0.0, rec["errors"])
	}
}
