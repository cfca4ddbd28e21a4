package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
)

// timerHandler is a Lambda instance (EMF on, into out) of the registry's
// function api whose operation takes no fields, as quota-alert's does.
func timerHandler(t *testing.T, api string) (h *Handler, logs, out *bytes.Buffer) {
	t.Helper()
	logs, out = &bytes.Buffer{}, &bytes.Buffer{}
	env := config.FromMap(map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"})
	h, err := New(context.Background(), env, NewLogger(logs, env), func(context.Context, Deps) (envelope.Op, error) {
		return envelope.Op{API: api, Handle: func(_ context.Context, in *envelope.Input) (any, error) {
			var none struct{}
			if err := envelope.Decode(in.Body, &none); err != nil {
				return nil, err
			}
			return map[string]int{"checked": 0}, nil
		}}, nil
	})
	require.NoError(t, err)
	h.setupMetrics(env, out)
	return h, logs, out
}

// invocationOf is the invocation line and the EMF record of one call.
func invocationOf(t *testing.T, logs, out *bytes.Buffer) (line, rec map[string]any) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		if m["msg"] == "invocation" {
			line = m
		}
	}
	recs := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.NoError(t, json.Unmarshal([]byte(recs[len(recs)-1]), &rec))
	return line, rec
}

// A timer has no caller: its payload is the deployment's configuration. A
// payload the function refused was -1001, logged at INFO and counted in
// errors only, so an hourly quota alert that never ran was seen by nobody
// alarming on faults (an outside tester). It is -1601 now, WARN, a fault,
// naming the trigger's member and what the function expected; a caller's
// direct input stays -1001.
func TestATimerPayloadTheFunctionRefusesIsConfiguration(t *testing.T) {
	cases := []struct {
		name, payload string
		code          float64
		level         string
		faults        float64
		says          []string
	}{
		{"FC timer", `{"triggerTime":"2026-12-01T00:00:00Z","triggerName":"t","payload":"{\"threshold\":100}"}`,
			-1601, "WARN", 1, []string{"the FC timer trigger's payload", `{"threshold":100}`, "threshold: unknown field", "quota-alert-hourly", "QUOTA_ALERT_"}},
		{"ScheduleV2 input", `{"source":"cloudcall.schedule","schedule":"quota-alert-hourly","payload":{"threshold":100}}`,
			-1601, "WARN", 1, []string{"the ScheduleV2 Input's payload", "threshold: unknown field", "QUOTA_ALERT_"}},
		{"EventBridge detail", `{"version":"0","id":"e1","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-12-01T00:00:00Z","region":"ap-east-1","resources":[],"detail":{"a":1}}`,
			-1601, "WARN", 1, []string{"the EventBridge scheduled event's detail", "a: unknown field", "QUOTA_ALERT_"}},
		// Over CLOUDCALL_MAX_BODY_BYTES (64 KiB; FC takes 128 KB in a
		// timer's payload): configuration too, not a caller's -1002.
		{"FC timer, payload over the limit", `{"triggerTime":"2026-12-01T00:00:00Z","triggerName":"t","payload":"{\"note\":\"` + strings.Repeat("x", 70000) + `\"}"}`,
			-1601, "WARN", 1, []string{"the FC timer trigger's payload", "at most 65536 are accepted (CLOUDCALL_MAX_BODY_BYTES)", "quota-alert-hourly"}},
		// A caller's input, as before.
		{"direct", `{"x":1}`, -1001, "INFO", 0, []string{"x: unknown field"}},
		// Timer keys beside a member no platform's timer event has: a
		// caller's direct input that looked like a timer (eventnote_test).
		{"timer keys in a direct input", `{"triggerTime":"2026-12-01T00:00:00Z","triggerName":"t","x":1}`, 0, "INFO", 0, nil},
		// A payload that begins as an object but does not parse is an
		// object with a typo, not a note: read as {}, the run went on
		// with the defaults the payload meant to change (a re-tester).
		{"FC timer, broken object", `{"triggerTime":"2026-12-01T00:00:00Z","triggerName":"t","payload":"{\"threshold\":100"}`,
			-1601, "WARN", 1, []string{"the FC timer trigger's payload", `{"threshold":100`, "QUOTA_ALERT_"}},
		{"EventBridge, detail a string holding a broken object", `{"version":"0","id":"e1","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-12-01T00:00:00Z","region":"ap-east-1","resources":[],"detail":" {\"a\":"}`,
			0, "INFO", 0, nil},
		// FC's own text payloads are the timer's note, read as {}.
		{"FC timer, text payload", `{"triggerTime":"2026-12-01T00:00:00Z","triggerName":"t","payload":"awesome-fc"}`, 0, "INFO", 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, logs, out := timerHandler(t, "cloudcall.quotaAlert")
			body := h.Invoke(context.Background(), []byte(c.payload), Meta{RequestID: "r"})
			var a struct {
				ErrCode float64 `json:"errCode"`
				ErrMsg  string  `json:"errMsg"`
			}
			require.NoError(t, json.Unmarshal(body, &a), string(body))
			require.Equal(t, c.code, a.ErrCode, a.ErrMsg)
			for _, s := range c.says {
				require.Contains(t, a.ErrMsg, s)
			}
			line, rec := invocationOf(t, logs, out)
			require.Equal(t, c.level, line["level"])
			require.Equal(t, c.code, line["errCode"])
			require.Equal(t, c.faults, rec["faults"])
			errs := 0.0
			if c.code != 0 {
				errs = 1
			}
			require.Equal(t, errs, rec["errors"])
		})
	}
}

// A function with no timer: a timer event's input is a caller's mistake
// (someone pointed a timer at it, or sent its markers), -1001 as before.
func TestATimerEventToAFunctionWithoutATimerStaysInvalidInput(t *testing.T) {
	h, logs, out := timerHandler(t, "openapi.logistics.getQuota")
	body := h.Invoke(context.Background(), []byte(`{"triggerTime":"2026-12-01T00:00:00Z","triggerName":"t","payload":"{\"threshold\":100}"}`), Meta{RequestID: "r"})
	require.Contains(t, string(body), `"errCode":-1001`)
	line, rec := invocationOf(t, logs, out)
	require.Equal(t, "INFO", line["level"])
	require.Equal(t, 0.0, rec["faults"])
}

// The anonymous-trigger warning is about HTTP triggers: a function with
// none (quota-alert, a timer) said it at every start (an outside tester).
func TestTheAnonymousWarningIsForFunctionsWithAnHTTPTrigger(t *testing.T) {
	for api, warned := range map[string]bool{"cloudcall.quotaAlert": false, "openapi.logistics.getQuota": true, "test.api": true} {
		var logs bytes.Buffer
		env := config.FromMap(map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true"})
		_, err := New(context.Background(), env, NewLogger(&logs, env), func(context.Context, Deps) (envelope.Op, error) {
			return envelope.Op{API: api, Handle: func(context.Context, *envelope.Input) (any, error) { return nil, nil }}, nil
		})
		require.NoError(t, err)
		require.Equal(t, warned, strings.Contains(logs.String(), AnonymousWarning), "%s: %s", api, logs.String())
	}
}
