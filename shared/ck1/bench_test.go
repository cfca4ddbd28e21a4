package ck1_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

// One warm quote through the operation, OAuth token cached, against the
// sandbox over loopback HTTP.
func BenchmarkInboundBoxWarm(b *testing.B) {
	r := newRig(b, nil)
	in := &envelope.Input{Body: []byte(`{"warehouseId":"US","boxes":[` + box("1200", "30", "20", "15", 2) + `]}`)}
	ctx := context.Background()
	if out := r.op.Invoke(ctx, in); !strings.Contains(string(out.Body), `"errCode":0`) {
		b.Fatal(string(out.Body))
	}
	b.ReportAllocs()
	for b.Loop() {
		r.op.Invoke(ctx, in)
	}
}

// Rejecting a 500-box request whose last box is invalid: the cost of the
// rules themselves, no network.
func BenchmarkValidate500Boxes(b *testing.B) {
	r := newRig(b, nil)
	boxes := make([]string, 500)
	for i := range boxes {
		boxes[i] = box("1200", "30.25", "20", "15", 2)
	}
	boxes[499] = box("1200", "30.255", "20", "15", 2)
	in := &envelope.Input{Body: []byte(`{"warehouseId":"US","boxes":[` + strings.Join(boxes, ",") + `]}`)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r.op.Invoke(ctx, in)
	}
	if n := r.sbx.Calls("http:/v1/pricing/inbound/box"); n != 0 {
		b.Fatalf("%d upstream calls", n)
	}
}
