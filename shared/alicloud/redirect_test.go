package alicloud_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/alicloud"
	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox/camssbx"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/upstream/upstreamtest"
)

// A 307 from the vendor's address is an error (-1302, nothing was acted on),
// never a request sent again to where it points. The client passed in
// follows redirects by default: the vendor package itself refuses them.
func TestNeverFollowsRedirects(t *testing.T) {
	for _, tc := range []struct{ name, prefix string }{{"every call", "/"}} {
		t.Run(tc.name, func(t *testing.T) {
			sbx := camssbx.New(camssbx.Options{})
			front := upstreamtest.NewRedirector(t, sbx.Handler(), tc.prefix)
			for k, v := range sbx.Env(front.URL) {
				t.Setenv(k, v) // the credentials chain reads the process environment
			}
			op, err := alicloud.CAMSFactory(context.Background(), runtime.Deps{Env: config.FromMap(sbx.Env(front.URL)),
				Store: store.NewMemory(store.MemoryOptions{}), HTTP: &http.Client{}})
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp := op.Invoke(ctx, &envelope.Input{Body: []byte(`{"custSpaceId":"293483949493"}`), Trigger: envelope.TriggerDirect})
			var m map[string]any
			require.NoError(t, json.Unmarshal(resp.Body, &m), string(resp.Body))
			require.Equal(t, -1302.0, m["errCode"], m)
			require.Contains(t, m["errMsg"], "redirect")
			require.Equal(t, 502, resp.Status)
			require.Equal(t, int32(1), front.Redirected.Load(), "one request, not retried")
			require.Equal(t, int32(0), front.Elsewhere.Load(), "nothing was sent where the redirect points")
		})
	}
}
