package runtime

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

func TestDetect(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte(`{"a":1}`))
	cases := []struct {
		name, payload string
		shape         Shape
		trigger       envelope.Trigger
		body, method  string
		path, query   string
	}{
		{"direct", `{"deliveryId":"YTO"}`, ShapeDirect, envelope.TriggerDirect, `{"deliveryId":"YTO"}`, "", "", ""},
		{"direct non-object", `[1]`, ShapeDirect, envelope.TriggerDirect, `[1]`, "", "", ""},
		{"fc http", `{"version":"v1","rawPath":"/f/x","body":"{\"a\":1}","isBase64Encoded":false,"headers":{"X-Key":"k"},"queryParameters":{"q":"1"},"requestContext":{"requestId":"r","http":{"method":"POST","sourceIp":"1.2.3.4"}}}`,
			ShapeFCHTTP, envelope.TriggerHTTP, `{"a":1}`, "POST", "/f/x", "q=1"},
		{"fc http base64", `{"version":"v1","rawPath":"/f","body":"` + b64 + `","isBase64Encoded":true,"headers":{},"requestContext":{"http":{"method":"POST"}}}`,
			ShapeFCHTTP, envelope.TriggerHTTP, `{"a":1}`, "POST", "/f", ""},
		{"apigw v2", `{"version":"2.0","routeKey":"$default","rawPath":"/f","rawQueryString":"a=b&c=d","headers":{"content-type":"application/json"},"body":"` + b64 + `","isBase64Encoded":true,"requestContext":{"requestId":"r2","http":{"method":"POST","sourceIp":"5.6.7.8"}}}`,
			ShapeAPIGatewayV2, envelope.TriggerHTTP, `{"a":1}`, "POST", "/f", "a=b&c=d"},
		{"fc timer", `{"triggerTime":"2023-12-26T07:49:00Z","triggerName":"t","payload":"{\"x\":1}"}`, ShapeFCTimer, envelope.TriggerTimer, `{"x":1}`, "", "", ""},
		{"fc timer non-json payload", `{"triggerTime":"2023-12-26T07:49:00Z","triggerName":"t","payload":"hello"}`, ShapeFCTimer, envelope.TriggerTimer, `{}`, "", "", ""},
		{"fc timer note in braces", `{"triggerTime":"2023-12-26T07:49:00Z","triggerName":"t","payload":"{hourly check}"}`, ShapeFCTimer, envelope.TriggerTimer, `{}`, "", "", ""},
		// Cut off, but begun as an object (a brace and a name): the input,
		// which the function's decoder refuses, not a note read as {}.
		{"fc timer cut-off object", `{"triggerTime":"2023-12-26T07:49:00Z","triggerName":"t","payload":"{\"a\":"}`, ShapeFCTimer, envelope.TriggerTimer, `{"a":`, "", "", ""},
		{"eventbridge", `{"version":"0","id":"1","detail-type":"Scheduled Event","source":"aws.events","account":"1","time":"2023-01-01T00:00:00Z","region":"us-east-1","resources":[],"detail":{}}`, ShapeEventBridge, envelope.TriggerTimer, `{}`, "", "", ""},
		{"apigw rest v1 (not deployed; still an HTTP call)", `{"httpMethod":"POST","path":"/f","queryStringParameters":{"q":"1"},"headers":{"X-Key":"k"},"body":"{\"a\":1}","requestContext":{"requestId":"r3"}}`,
			ShapeHTTPOther, envelope.TriggerHTTP, `{"a":1}`, "POST", "/f", "q=1"},
		{"apigw rest v1 behind a stage: the path called", `{"httpMethod":"POST","resource":"/f","path":"/f","body":"{}","requestContext":{"requestId":"r4","stage":"prod","path":"/prod/f"}}`,
			ShapeHTTPOther, envelope.TriggerHTTP, `{}`, "POST", "/prod/f", ""},
		{"alb: query values as sent, not encoded again", `{"httpMethod":"POST","path":"/f","queryStringParameters":{"x":"a%20b","y":"a+b","z":"%E4%B8%AD"},"body":"{}","requestContext":{"elb":{"targetGroupArn":"arn"}}}`,
			ShapeHTTPOther, envelope.TriggerHTTP, `{}`, "POST", "/f", "x=a%20b&y=a+b&z=%E4%B8%AD"},
		{"schedule v2 input", `{"source":"cloudcall.schedule","schedule":"quota-alert-hourly","payload":{"y":2}}`, ShapeSchedule, envelope.TriggerTimer, `{"y":2}`, "", "", ""},
		// An HTTP marker wins over any timer key beside it: such an event
		// ran as a timer, unsigned.
		{"rest v1 with timer keys: still an HTTP call", `{"httpMethod":"POST","path":"/f","body":"{\"a\":1}","requestContext":{"stage":"prod","path":"/prod/f"},"triggerTime":"2026-12-01T00:00:00Z","triggerName":"t","payload":"{\"a\":2}"}`,
			ShapeHTTPOther, envelope.TriggerHTTP, `{"a":1}`, "POST", "/prod/f", ""},
		{"rest v1 with schedule v2 keys: still an HTTP call", `{"httpMethod":"POST","path":"/f","body":"{}","source":"cloudcall.schedule","payload":{"a":2}}`,
			ShapeHTTPOther, envelope.TriggerHTTP, `{}`, "POST", "/f", ""},
		{"httpMethod null with timer keys: still an HTTP call", `{"httpMethod":null,"path":"/f","body":"{}","triggerTime":"2026-12-01T00:00:00Z","triggerName":"t","payload":"{}"}`,
			ShapeHTTPOther, envelope.TriggerHTTP, `{}`, "", "/f", ""},
		{"requestContext with eventbridge keys: still an HTTP call", `{"requestContext":{"requestId":"r5"},"httpMethod":"POST","path":"/f","body":"{}","detail-type":"Scheduled Event","source":"aws.events","detail":{"a":2}}`,
			ShapeHTTPOther, envelope.TriggerHTTP, `{}`, "POST", "/f", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, shape, err := Detect([]byte(c.payload))
			require.NoError(t, err)
			require.Equal(t, c.shape, shape)
			require.Equal(t, c.trigger, in.Trigger)
			require.Equal(t, c.body, string(in.Body))
			require.Equal(t, c.method, in.Method)
			require.Equal(t, c.path, in.Path)
			require.Equal(t, c.query, in.RawQuery)
		})
	}
}

func TestDetectHeadersAndSource(t *testing.T) {
	in, _, err := Detect([]byte(`{"version":"2.0","rawPath":"/f","headers":{"idempotency-key":"k1","x-cloudcall-key":"id"},"requestContext":{"requestId":"r9","http":{"method":"POST","sourceIp":"9.9.9.9"}}}`))
	require.NoError(t, err)
	require.Equal(t, "k1", in.HeaderValue("Idempotency-Key"))
	require.Equal(t, "9.9.9.9", in.SourceIP)
	require.Equal(t, "r9", in.RequestID)
}

func TestDetectMalformedEvents(t *testing.T) {
	long, digits := strings.Repeat("n", 10000), strings.Repeat("1", 10000)
	for name, c := range map[string]struct{ payload, reason string }{
		"bad base64":   {`{"version":"v1","rawPath":"/f","body":"%%%","isBase64Encoded":true,"requestContext":{"http":{"method":"POST"}}}`, "invalid input: isBase64Encoded is true but the body is not base64"},
		"headers type": {`{"version":"2.0","rawPath":"/f","headers":[1],"requestContext":{}}`, "invalid input: malformed API Gateway v2 event: headers: expected an object, got array"},
		"timer type":   {`{"triggerTime":"2023-12-26T07:49:00Z","triggerName":"t","payload":5}`, "invalid input: malformed FC timer event: payload: expected a string, got number"},
		// It said only "malformed FC HTTP trigger event", naming no member.
		"body an object": {`{"version":"v1","rawPath":"/f","body":{"a":1},"requestContext":{"http":{"method":"POST"}}}`, "invalid input: malformed FC HTTP trigger event: body: expected a string, got object"},
		// What the caller wrote is repeated in part (envelope.MaxQuoted
		// bytes): both came back whole, 10,000 bytes and more.
		"a 10,000-byte name twice": {`{"version":"2.0","rawPath":"/f","requestContext":{"` + long + `":1,"` + long + `":2}}`,
			"invalid input: malformed platform event: requestContext." + long[:40] + "… (10000 bytes in all) is given twice (names compared without regard to case, as the event is read)"},
		"a 10,000-digit timeEpoch": {`{"version":"2.0","rawPath":"/f","requestContext":{"timeEpoch":` + digits + `}}`,
			"invalid input: malformed API Gateway v2 event: requestContext.timeEpoch: expected an integer, got number " + digits[:40] + "… (10000 bytes in all)"},
		// The number's own length, not the phrase's: it was 33 digits "(10007 bytes in all)".
		"a 501-byte negative timeEpoch": {`{"version":"2.0","rawPath":"/f","requestContext":{"timeEpoch":-` + digits[:500] + `}}`,
			"invalid input: malformed API Gateway v2 event: requestContext.timeEpoch: expected an integer, got number -" + digits[:39] + "… (501 bytes in all)"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := Detect([]byte(c.payload))
			var e *envelope.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, envelope.CodeInvalidInput, e.Code)
			require.Equal(t, c.reason, e.Reason)
		})
	}
}

// eventDuplicate looks only where the runtime reads: names in a header map
// differ by case legitimately (the guard refuses two Authorization
// spellings itself), and what it does not read (a Lambda authorizer's
// context, JWT claims) is the platform's or the owner's to write.
func TestEventDuplicateLooksWhereTheEventIsRead(t *testing.T) {
	for _, tc := range []struct{ name, payload, dup string }{
		{"authorizer.iam in two cases", `{"requestContext":{"authorizer":{"iam":{},"Iam":{}}}}`, "requestContext.authorizer.Iam"},
		{"a member of iam in two cases", `{"requestContext":{"Authorizer":{"IAM":{"userArn":"a","USERARN":"b"}}}}`, "requestContext.Authorizer.IAM.USERARN"},
		{"identity.sourceIp twice", `{"requestContext":{"identity":{"sourceIp":"a","sourceIp":"b"}}}`, "requestContext.identity.sourceIp"},
		{"a header twice", `{"Headers":{"x-a":"1","x-a":"2"}}`, "Headers.x-a"},
		{"two spellings of a header", `{"headers":{"Authorization":"a","authorization":"b"}}`, ""},
		{"a Lambda authorizer's context", `{"requestContext":{"authorizer":{"lambda":{"id":"a","ID":"b"}}}}`, ""},
		{"JWT claims", `{"requestContext":{"authorizer":{"jwt":{"claims":{"sub":"a","Sub":"b"}}}}}`, ""},
		{"headers inside requestContext are no header map", `{"requestContext":{"headers":{"a":"1","A":"2"}}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, dup := eventDuplicate([]byte(tc.payload))
			require.Equal(t, tc.dup, got)
			require.Equal(t, tc.dup != "", dup)
		})
	}
}

// The warm path skips the event probe for a plain input; every spelling
// encoding/json would take for an event's name still reaches the probe.
func TestMayBeEvent(t *testing.T) {
	for _, tc := range []struct {
		payload string
		want    bool
	}{
		{`{"deliveryId":"YTO","bizId":"xyz"}`, false},
		{`{"warehouseId":"US","boxes":[{"weight":1}]}`, false},
		{`{"rawPath":"/"}`, true},
		{`{"RAWPATH":"/"}`, true},
		{`{"requestContext":{}}`, true},
		{`{"HttpMethod":"GET"}`, true},
		{`{"triggerTime":"t"}`, true},
		{`{"Source":"cloudcall.schedule"}`, true},
		{`{"\u0072awPath":"/"}`, true},            // an escape: the probe decides
		{`{"ſource":"cloudcall.schedule"}`, true}, // U+017F folds to s in encoding/json
		{`{"note":"the source of truth"}`, true},  // a marker in a value: the probe decides
	} {
		require.Equal(t, tc.want, mayBeEvent([]byte(tc.payload)), tc.payload)
	}
	// A direct input still reads as one; an event with a folded name too.
	in, shape, err := Detect([]byte(`{"deliveryId":"YTO","bizId":"xyz"}`))
	require.NoError(t, err)
	require.Equal(t, ShapeDirect, shape)
	require.Equal(t, `{"deliveryId":"YTO","bizId":"xyz"}`, string(in.Body))
	_, shape, err = Detect([]byte(`{"SOURCE":"cloudcall.schedule","payload":{"a":1}}`))
	require.NoError(t, err)
	require.Equal(t, ShapeSchedule, shape)
}

// A direct payload keeps what JSON does not call whitespace: \v or NBSP
// around the object was trimmed here, so the decoder never saw it and a
// body that is not JSON reached the vendor (an outside tester's charge).
func TestDetectTrimsOnlyJSONWhitespace(t *testing.T) {
	for _, p := range []string{"\v{\"a\":1}", "{\"a\":1}\u00a0", "\u3000{\"a\":1}\u2028"} {
		in, shape, err := Detect([]byte(p))
		require.NoError(t, err)
		require.Equal(t, ShapeDirect, shape)
		require.Equal(t, p, string(in.Body), "%q", p)
	}
	in, _, err := Detect([]byte(" \t{\"a\":1}\r\n"))
	require.NoError(t, err)
	require.Equal(t, `{"a":1}`, string(in.Body))
}
