package main

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/bench/allocbudget"
	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
)

// TestAllocationBudget is quota-alert's part of the benchmark regression
// guard (shared/bench/allocbudget): a "run now" check of every account
// against the WeChat sandbox, with the production logger and store.
func TestAllocationBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the function against its sandbox")
	}
	sbx := wechatsbx.New(wechatsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	env := config.FromMap(sbx.Env(srv.URL))
	h, err := runtime.New(context.Background(), env, runtime.NewLogger(io.Discard, env), factory)
	require.NoError(t, err)
	call := func() {
		if out := h.Invoke(context.Background(), []byte(`{}`), runtime.Meta{}); !bytes.Contains(out, []byte(`"errCode":0`)) {
			t.Fatalf("quota-alert: %s", out)
		}
	}
	call() // token, discovery, first alerts
	allocbudget.Check(t, "quota-alert", 100, call)
}
