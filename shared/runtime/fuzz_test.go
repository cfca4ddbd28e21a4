package runtime

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

// FuzzDetect: every payload becomes an input or a 400-class envelope error.
func FuzzDetect(f *testing.F) {
	for _, s := range []string{`{"deliveryId":"x"}`, `{"version":"v1","rawPath":"/","body":"e30=","isBase64Encoded":true,"requestContext":{"http":{"method":"POST"}}}`,
		`{"version":"2.0","rawPath":"/","rawQueryString":"a=b","requestContext":{}}`, `{"triggerTime":"t","triggerName":"n","payload":"{}"}`,
		`{"detail-type":"Scheduled Event","source":"aws.events","detail":{}}`, `{"source":"cloudcall.schedule","payload":[1]}`, `[]`, ``, `{"httpMethod":"GET","multiValueHeaders":{"a":["1","2"]},"requestContext":{}}`} {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"RAWPATH":"/","RequestContext":{}}`))
	f.Add([]byte(`{"\u0072awPath":"/","requestContext":{}}`))
	f.Add([]byte(`{"\u017fource":"cloudcall.schedule"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		// The shortcut never hides an event: what it calls direct, the
		// probe (encoding/json, names without case) finds no marker in.
		if !mayBeEvent(b) {
			var p probe
			if json.Unmarshal(b, &p) == nil && (p.RawPath != nil || p.RequestContext != nil || p.HTTPMethod != nil || p.TriggerTime != nil || p.Source != nil) {
				t.Fatalf("mayBeEvent(%q) = false, but the probe reads %+v", b, p)
			}
		}
		in, _, err := Detect(b)
		if err != nil {
			var e *envelope.Error
			if !errors.As(err, &e) || e.Code != envelope.CodeInvalidInput {
				t.Fatalf("Detect(%q) = %v", b, err)
			}
			return
		}
		if in == nil {
			t.Fatalf("Detect(%q): nil input without error", b)
		}
	})
}
