package wechat

import (
	"errors"
	"testing"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

// FuzzEnvelope: any errcode/errmsg pair keeps WeChat's code as errCode and
// its rid in upstream.
func FuzzEnvelope(f *testing.F) {
	f.Add(40001, "invalid credential rid: 66bac357-0a1b", false)
	f.Add(-1, "", true)
	f.Add(9300531, "rid: ", false)
	f.Fuzz(func(t *testing.T, code int, msg string, token bool) {
		e := Envelope(&APIError{Code: code, Msg: msg, Token: token})
		var ee *envelope.Error
		if !errors.As(e, &ee) || ee.Code != code || ee.Upstream == nil || ee.Upstream.RequestID != (&APIError{Msg: msg}).RID() {
			t.Fatalf("Envelope(%d, %q) = %+v", code, msg, e)
		}
	})
}
