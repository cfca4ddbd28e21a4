package top

import "testing"

// FuzzParseReply: any gateway answer is classified; nothing panics, and an
// answered reply has either an error layer or a response object.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{`{"error_response":{"code":7,"msg":"App Call Limited","sub_msg":"This ban will last for 42 more seconds"}}`,
		`{"alibaba_ascp_industry_launch_extra_charge_response":{"result":{"success":true,"data":{"extra_charge_service_order_id":"1"}}}}`,
		`{"x":1}`, `[]`, `{"error_response":[]}`, ``} {
		f.Add(200, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, b []byte) {
		r := ParseReply(status, b)
		if r.Outcome == Answered && r.Error == nil && len(r.Body) == 0 {
			t.Fatalf("answered without content: %q", b)
		}
		if r.Error != nil {
			_ = EnvelopeError(r.Error)
			_ = r.Error.RetryAfter()
		}
	})
}
