package top_test

import (
	"context"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/top"
)

func BenchmarkSign(b *testing.B) {
	for _, m := range []string{"md5", "hmac", "hmac-sha256"} {
		b.Run(m, func(b *testing.B) {
			p := officialParams(m)
			p["oms_launch_extra_charge_parameter"] = `{"wds_coordination_order_id":"BFC123","price":12345,"type":1,"desc":"1","feature":"{\"test\":\"xx\"}"}`
			b.ReportAllocs()
			for b.Loop() {
				if _, err := top.Sign("helloworld", p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchOp(b *testing.B) (envelope.Op, *topsbx.Server) {
	sbx := topsbx.New(topsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	b.Cleanup(srv.Close)
	op, err := top.FactoryWith(idempotency.NewMemory(nil))(context.Background(), runtime.Deps{Env: config.FromMap(sbx.Env(srv.URL)), Store: store.NewMemory(store.MemoryOptions{}), HTTP: srv.Client()})
	if err != nil {
		b.Fatal(err)
	}
	return op, sbx
}

// A first call: validate, take the record, sign, one round trip to the
// sandbox on loopback, record the answer.
func BenchmarkChargeFirstCall(b *testing.B) {
	op, sbx := benchOp(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		resp := op.Invoke(context.Background(), &envelope.Input{Body: []byte(charge("BFC1", 100, "b-"+strconv.Itoa(i)))})
		if resp.Status != 200 {
			b.Fatal(string(resp.Body))
		}
	}
	if len(sbx.Charges("BFC1")) != i {
		b.Fatalf("%d charges for %d calls", len(sbx.Charges("BFC1")), i)
	}
}

// A repeat: validate and replay the recorded answer; TOP is not called.
func BenchmarkChargeReplay(b *testing.B) {
	op, sbx := benchOp(b)
	body := []byte(charge("BFC1", 100, "replay"))
	op.Invoke(context.Background(), &envelope.Input{Body: body})
	b.ReportAllocs()
	for b.Loop() {
		if resp := op.Invoke(context.Background(), &envelope.Input{Body: body}); resp.Status != 200 {
			b.Fatal(string(resp.Body))
		}
	}
	if n := sbx.Calls("http:/router/rest"); n != 1 {
		b.Fatalf("replays reached TOP: %d calls", n)
	}
}
