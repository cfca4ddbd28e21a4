package envelope_test

import (
	"testing"

	"github.com/cloudcall/cloudcall/shared/ck1"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/wechat"
)

// BenchmarkDecodeInput is the warm-path input decode of two functions: the
// hygiene pass, the schema, the typed value. Allocations per call are the
// figure issue #20 budgets (docs: README, Contracts).
func BenchmarkDecodeInput(b *testing.B) {
	quota := envelope.MustCompileSchema(registry.InputSchema("logistics-get-quota"))
	box := envelope.MustCompileSchema(registry.InputSchema("ck1-pricing-inbound-box"))
	b.Run("logistics-get-quota", func(b *testing.B) {
		body := []byte(`{"deliveryId":"YTO","bizId":"xyz"}`)
		b.ReportAllocs()
		for b.Loop() {
			var q wechat.QuotaInput
			if err := envelope.DecodeInput(body, quota, &q); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ck1-pricing-inbound-box", func(b *testing.B) {
		body := []byte(`{"warehouseId":"US","boxes":[{"weight":1200,"length":30,"width":20,"height":15,"quantity":2}]}`)
		b.ReportAllocs()
		for b.Loop() {
			var q ck1.BoxInput
			if err := envelope.DecodeInput(body, box, &q); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCompileSchema is what a function's first call pays once.
func BenchmarkCompileSchema(b *testing.B) {
	raw, err := registry.InputSchema("ck1-pricing-inbound-box")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := envelope.CompileSchema(raw); err != nil {
			b.Fatal(err)
		}
	}
}
