package runtime

import (
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
)

type quotaInput struct {
	DeliveryID string `json:"deliveryId"`
	BizID      string `json:"bizId"`
}

func (q *quotaInput) Validate() error {
	if q.DeliveryID == "" {
		return envelope.Invalid("deliveryId", "required")
	}
	return nil
}

// validatingHandler is the registry's function of api whose operation
// decodes {deliveryId, bizId} strictly and requires deliveryId.
func validatingHandler(t *testing.T, api string) *Handler {
	t.Helper()
	f := func(context.Context, Deps) (envelope.Op, error) {
		return envelope.Op{API: api, Handle: func(_ context.Context, in *envelope.Input) (any, error) {
			var v quotaInput
			if err := envelope.Decode(in.Body, &v); err != nil {
				return nil, err
			}
			return map[string]int{"quotaNum": 1}, nil
		}}, nil
	}
	e := config.FromMap(map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true"})
	h, err := New(context.Background(), e, NewLogger(io.Discard, e), f)
	require.NoError(t, err)
	return h
}

// errMsgOf is the envelope's errMsg, from an event's answer or an HTTP one.
func errMsgOf(t *testing.T, out []byte) (msg, field string, status int) {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(out, &m), string(out))
	if body, ok := m["body"].(string); ok {
		status = int(m["statusCode"].(float64))
		m = nil
		require.NoError(t, json.Unmarshal([]byte(body), &m), body)
	}
	msg, _ = m["errMsg"].(string)
	field, _ = m["field"].(string)
	return msg, field, status
}

// A direct input that looks like an event is read as that event; a refusal
// of its input says which event, by which members, and what to do, where
// it said "deliveryId: required" of an input never sent, or "the request
// body is empty" (a black-box tester). The messages an input sent as meant
// gets stay as they were.
func TestARefusedInputNamesTheEventItWasReadAs(t *testing.T) {
	const lq = "openapi.logistics.getQuota:fail invalid input: "
	quota := validatingHandler(t, "openapi.logistics.getQuota") // no timer
	alert := validatingHandler(t, "cloudcall.quotaAlert")       // a timer
	cases := []struct {
		name    string
		h       *Handler
		payload string
		msg     string
		field   string
		status  int // an HTTP answer's; 0: an event's envelope
	}{
		{"timer keys in a direct input, a function with no timer", quota,
			`{"triggerTime":"2026-12-01T00:00:00Z","triggerName":"t","deliveryId":"YTO","bizId":"xyz"}`,
			lq + "the payload was read as an FC timer event (it has triggerTime and triggerName), whose input is its payload; this function has no timer — send the input JSON directly (read as that event: deliveryId: required)", "deliveryId", 0},
		{"an FC timer's own event, a function with no timer", quota,
			`{"triggerTime":"2026-12-01T00:00:00Z","triggerName":"t","payload":"{}"}`,
			lq + "the payload was read as an FC timer event (it has triggerTime and triggerName), whose input is its payload; this function has no timer — send the input JSON directly (read as that event: deliveryId: required)", "deliveryId", 0},
		{"the schedule's source in a direct input", quota,
			`{"source":"cloudcall.schedule","deliveryId":"YTO","bizId":"xyz"}`,
			lq + `the payload was read as a schedule event (it has source "cloudcall.schedule"), whose input is its payload; this function has no timer — send the input JSON directly (read as that event: deliveryId: required)`, "deliveryId", 0},
		{"EventBridge's markers in a direct input", quota,
			`{"detail-type":"Scheduled Event","source":"aws.events","deliveryId":"YTO"}`,
			lq + `the payload was read as an EventBridge scheduled event (it has detail-type "Scheduled Event" and source), whose input is its detail; this function has no timer — send the input JSON directly (read as that event: deliveryId: required)`, "deliveryId", 0},
		// requestContext and traceSource in a direct input: an HTTP event
		// naming no method, refused with a 405 that says so
		// (TestAnHTTPEventWithoutAPostIsRefused).
		{"a timer event to the function with a timer", alert,
			`{"triggerTime":"2026-12-01T00:00:00Z","triggerName":"t","deliveryId":"YTO"}`,
			"cloudcall.quotaAlert:fail invalid input: the payload was read as an FC timer event (it has triggerTime and triggerName), whose input is its payload, and that input is what was refused — to invoke directly instead, send the input JSON without the members the event was recognised by (read as that event: deliveryId: required)", "deliveryId", 0},
		// As they were: an input sent as meant.
		{"a direct input", quota, `{"bizId":"xyz"}`, lq + "deliveryId: required", "deliveryId", 0},
		{"an FC HTTP event as FC sends it, its body empty", quota,
			`{"version":"v1","rawPath":"/logistics-get-quota","body":"","headers":{},"requestContext":{"requestId":"r","http":{"method":"POST","sourceIp":"1.2.3.4"}}}`,
			lq + "the request body is empty; send a JSON object", "", 400},
		{"an API Gateway v2 event as API Gateway sends it", quota,
			`{"version":"2.0","routeKey":"POST /logistics-get-quota","rawPath":"/logistics-get-quota","rawQueryString":"","headers":{},"body":"{\"bizId\":\"xyz\"}","isBase64Encoded":false,"requestContext":{"requestId":"r","http":{"method":"POST","sourceIp":"1.2.3.4"}}}`,
			lq + "deliveryId: required", "deliveryId", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg, field, status := errMsgOf(t, c.h.Invoke(context.Background(), []byte(c.payload), Meta{RequestID: "r"}))
			require.Equal(t, c.msg, msg)
			require.Equal(t, c.field, field)
			require.Equal(t, c.status, status)
		})
	}
}
