package ck1

import (
	"errors"
	"testing"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

// FuzzErrorFrom: any CK1 error answer maps to an envelope error that keeps
// the status.
func FuzzErrorFrom(f *testing.F) {
	f.Add(400, []byte(`{"Errors":[{"Code":"800F1533","Message":"x"}],"TicketId":"t","UtcDateTime":"2016-03-20T07:19:25Z","RequestUri":"u"}`))
	f.Add(401, []byte(`not json`))
	f.Add(500, []byte(`{"Errors":null}`))
	f.Fuzz(func(t *testing.T, status int, b []byte) {
		var e *envelope.Error
		if !errors.As(errorFrom(status, b, false), &e) || e.Upstream == nil || e.Upstream.HTTPStatus != status {
			t.Fatalf("errorFrom(%d, %q) lost the status", status, b)
		}
	})
}
