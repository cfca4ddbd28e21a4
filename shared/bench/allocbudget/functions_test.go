package allocbudget_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/alicloud"
	"github.com/cloudcall/cloudcall/shared/bench/allocbudget"
	"github.com/cloudcall/cloudcall/shared/ck1"
	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox/camssbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/ck1sbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
	"github.com/cloudcall/cloudcall/shared/top"
	"github.com/cloudcall/cloudcall/shared/wechat"
)

// serve starts a sandbox on loopback for the test.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// newHandler builds the function as its binary does (runtime.New: the
// production HTTP client, the memory store, the redacting logger).
func newHandler(t *testing.T, env map[string]string, f runtime.Factory) *runtime.Handler {
	t.Helper()
	e := config.FromMap(env)
	h, err := runtime.New(context.Background(), e, runtime.NewLogger(io.Discard, e), f)
	require.NoError(t, err)
	return h
}

// TestAllocationBudget is the regression guard: each function's warm call
// (its registry Example against its sandbox, in-process) must not allocate
// more than 10 % over its committed budget. The count includes the
// in-process sandbox's side of the call, which does not change with the
// function's code.
func TestAllocationBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every function against its sandbox")
	}
	ctx := context.Background()
	for _, tc := range []struct {
		fn    string
		runs  int
		setup func(t *testing.T) (h *runtime.Handler, meta runtime.Meta, next func() []byte)
	}{
		{"logistics-get-quota", 200, func(t *testing.T) (*runtime.Handler, runtime.Meta, func() []byte) {
			sbx := wechatsbx.New(wechatsbx.Options{})
			return newHandler(t, sbx.Env(serve(t, sbx.Handler())), wechat.GetQuotaFactory), runtime.Meta{}, example(t, "logistics-get-quota")
		}},
		{"ck1-pricing-inbound-box", 200, func(t *testing.T) (*runtime.Handler, runtime.Meta, func() []byte) {
			sbx := ck1sbx.New(ck1sbx.Options{})
			env := map[string]string{"CK1_API_BASE": serve(t, sbx.Handler()), "CK1_ACCESS_TOKEN": ck1sbx.DemoFixedToken}
			return newHandler(t, env, ck1.Factory), runtime.Meta{}, example(t, "ck1-pricing-inbound-box")
		}},
		// CAMS allows 10 requests/s per AccessKey and the function's limiter
		// waits for it, so fewer runs.
		{"cams-query-chatapp-bind-waba", 12, func(t *testing.T) (*runtime.Handler, runtime.Meta, func() []byte) {
			sbx := camssbx.New(camssbx.Options{})
			meta := runtime.Meta{Credentials: &envelope.Credentials{AccessKeyID: camssbx.DemoAccessKeyID, AccessKeySecret: camssbx.DemoAccessKeySecret}}
			return newHandler(t, sbx.Env(serve(t, sbx.Handler())), alicloud.CAMSFactory), meta, example(t, "cams-query-chatapp-bind-waba")
		}},
		// Every charge carries a new idempotency key (a repeated key is a
		// replay, a different path); the payloads are made before measuring.
		{"top-launch-extra-charge", 200, func(t *testing.T) (*runtime.Handler, runtime.Meta, func() []byte) {
			sbx := topsbx.New(topsbx.Options{})
			f, ok := registry.Lookup("top-launch-extra-charge")
			require.True(t, ok)
			pls := make([][]byte, 400)
			for i := range pls {
				pls[i] = []byte(strings.Replace(f.Example, `"demo-1"`, fmt.Sprintf(`"alloc-%d"`, i), 1))
			}
			i := 0
			// The records in memory (top.FactoryWith, for tests): the count is
			// the function's, not a store client's.
			return newHandler(t, sbx.Env(serve(t, sbx.Handler())), top.FactoryWith(idempotency.NewMemory(time.Now))), runtime.Meta{}, func() []byte { i++; return pls[i%len(pls)] }
		}},
	} {
		t.Run(tc.fn, func(t *testing.T) {
			h, meta, next := tc.setup(t)
			call := func() {
				if out := h.Invoke(ctx, next(), meta); !bytes.Contains(out, []byte(`"errCode":0`)) {
					t.Fatalf("%s: %s", tc.fn, out)
				}
			}
			call() // token, connections, lazy initialisation
			allocbudget.Check(t, tc.fn, tc.runs, call)
		})
	}
}

func example(t *testing.T, fn string) func() []byte {
	f, ok := registry.Lookup(fn)
	require.True(t, ok, fn)
	pl := []byte(f.Example)
	return func() []byte { return pl }
}
