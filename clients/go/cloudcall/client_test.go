package cloudcall_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/clients/go/cloudcall"
	"github.com/cloudcall/cloudcall/shared/callerauth"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/sandbox/camssbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/ck1sbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
	"github.com/cloudcall/cloudcall/shared/store/redisstore/redistest"
)

const (
	keyID  = "backend-go"
	secret = "go-client-test-secret-0001"
)

var bins map[string]string

func TestMain(m *testing.M) {
	var pkgs []string
	for _, f := range registry.All() {
		if len(f.HTTPMethods) > 0 {
			pkgs = append(pkgs, "./functions/"+f.Name)
		}
	}
	os.Exit(emulator.WithBinaries(pkgs, func(b map[string]string) int {
		bins = b
		return m.Run()
	}))
}

// rig is the emulator with the real function binaries behind caller keys,
// against fresh vendor sandboxes.
type rig struct {
	url string
	top *topsbx.Server
}

// newRig runs every function; the charge keeps its records in Redis (the
// money records never live in an instance's memory).
func newRig(t *testing.T, wrap func(http.Handler) http.Handler) *rig {
	return newRigOn(t, runtimeapi.FC, wrap, chargeStore(t))
}

// chargeStore is the shared Redis of the tests under a fresh prefix, taken as
// durable (the machine's Redis need not run AOF).
func chargeStore(t *testing.T) map[string]string {
	url := redistest.URL(t)
	return map[string]string{"CLOUDCALL_STORE": url, "CLOUDCALL_STORE_PREFIX": redistest.Keyspace(t, url), "CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE": "assume"}
}

func newRigOn(t *testing.T, platform runtimeapi.Platform, wrap func(http.Handler) http.Handler, store map[string]string) *rig {
	t.Helper()
	top := topsbx.New(topsbx.Options{})
	sbx := map[string]interface {
		Handler() http.Handler
		Env(string) map[string]string
	}{"wechat": wechatsbx.New(wechatsbx.Options{}), "top": top, "ck1": ck1sbx.New(ck1sbx.Options{}), "alicloud": camssbx.New(camssbx.Options{})}
	var fns []emulator.FunctionConfig
	for _, f := range registry.All() {
		if bins[f.Name] == "" {
			continue
		}
		s := sbx[f.Vendor]
		srv := httptest.NewServer(s.Handler())
		t.Cleanup(srv.Close)
		env := s.Env(srv.URL)
		env["CLOUDCALL_CALLER_KEYS"] = keyID + ":" + secret
		for k, v := range store {
			env[k] = v
		}
		fns = append(fns, emulator.FunctionConfig{Name: f.Name, Binary: bins[f.Name], Platform: platform, Env: env,
			Timeout: time.Duration(f.TimeoutSec) * time.Second, MemoryMB: f.MemoryMB, MaxInstances: 2, Stdout: io.Discard})
	}
	emu := emulator.New(emulator.Options{Platform: platform, Functions: fns, Log: io.Discard})
	h := emu.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); emu.Close() })
	return &rig{url: srv.URL, top: top}
}

func client(t *testing.T, base, sec string, o ...func(*cloudcall.Options)) *cloudcall.Client {
	t.Helper()
	opts := cloudcall.Options{BaseURL: base, KeyID: keyID, Secret: sec, Timeout: 20 * time.Second}
	for _, f := range o {
		f(&opts)
	}
	c, err := cloudcall.New(opts)
	require.NoError(t, err)
	return c
}

func asError(t *testing.T, err error) *cloudcall.Error {
	t.Helper()
	var ce *cloudcall.Error
	require.True(t, errors.As(err, &ce), "want *cloudcall.Error, got %v", err)
	return ce
}

func num(s string) json.Number { return json.Number(s) }

// Per function: a call that works, one with a bad input and the field the
// function names.
type fnCase struct {
	fn    string
	good  func(ctx context.Context, c *cloudcall.Client) (any, error)
	check func(t *testing.T, out any)
	bad   func(ctx context.Context, c *cloudcall.Client) error
	field string
}

func cases() []fnCase {
	return []fnCase{
		{
			fn: "logistics-get-quota",
			good: func(ctx context.Context, c *cloudcall.Client) (any, error) {
				return c.OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
			},
			check: func(t *testing.T, out any) {
				require.Equal(t, int64(210), out.(*cloudcall.GetQuotaOutput).QuotaNum)
				require.Equal(t, "openapi.logistics.getQuota:ok", out.(*cloudcall.GetQuotaOutput).ErrMsg)
			},
			// No bad case: WeChat documents two strings and nothing more, so
			// every GetQuotaInput this type can hold is a valid input.
		},
		{
			fn: "ck1-pricing-inbound-box",
			good: func(ctx context.Context, c *cloudcall.Client) (any, error) {
				return c.CK1.Pricing.InboundBox(ctx, cloudcall.InboundBoxInput{WarehouseID: "US",
					Boxes: []cloudcall.InboundBoxInputBoxesItem{{Weight: 1200, Length: num("30"), Width: num("20"), Height: num("15"), Quantity: 2}}})
			},
			check: func(t *testing.T, out any) {
				s := out.(*cloudcall.InboundBoxOutput).Services
				require.Len(t, s, 2)
				require.Equal(t, "USSEA", s[0].ServiceCode)
				require.Equal(t, cloudcall.InboundBoxOutputMoney{Currency: "CNY", Amount: "96.00"}, *s[0].TotalCharge, "CK1's exact digits")
				require.Equal(t, cloudcall.InboundBoxOutputMoney{Currency: "USD", Amount: "31.57"}, *s[1].TotalCharge)
			},
			bad: func(ctx context.Context, c *cloudcall.Client) error {
				_, err := c.CK1.Pricing.InboundBox(ctx, cloudcall.InboundBoxInput{WarehouseID: "US",
					Boxes: []cloudcall.InboundBoxInputBoxesItem{{Weight: 0, Length: num("30"), Width: num("20"), Height: num("15"), Quantity: 2}}})
				return err
			},
			field: "boxes[0].weight",
		},
		{
			fn: "cams-query-chatapp-bind-waba",
			good: func(ctx context.Context, c *cloudcall.Client) (any, error) {
				return c.CAMS.QueryChatappBindWaba(ctx, cloudcall.QueryChatappBindWabaInput{CustSpaceID: new("293483949493")})
			},
			check: func(t *testing.T, out any) {
				require.Equal(t, "Alibaba", out.(*cloudcall.QueryChatappBindWabaOutput).Data.BusinessName)
			},
			// No bad input: CAMS documents both fields as optional strings
			// without limits, so a typed Go input cannot break its schema (the
			// Node suite sends a number and gets -1001 naming custSpaceId).
		},
		{
			fn: "top-launch-extra-charge",
			good: func(ctx context.Context, c *cloudcall.Client) (any, error) {
				return c.TOP.ASCP.LaunchExtraCharge(ctx, cloudcall.LaunchExtraChargeInput{OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{
					WdsCoordinationOrderID: "BFC-GO-1", Price: 12345, Type: 2, Desc: new("second visit")}})
			},
			check: func(t *testing.T, out any) {
				o := out.(*cloudcall.LaunchExtraChargeOutput)
				require.True(t, o.Result.Success)
				require.NotEmpty(t, o.Result.Data.ExtraChargeServiceOrderID)
				require.Regexp(t, `^auto:[0-9a-f]{64}$`, o.IdempotencyKey, "the function's fingerprint key, echoed")
			},
			bad: func(ctx context.Context, c *cloudcall.Client) error {
				_, err := c.TOP.ASCP.LaunchExtraCharge(ctx, cloudcall.LaunchExtraChargeInput{OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{
					WdsCoordinationOrderID: "BFC-GO-2", Price: 100, Type: 9}})
				return err
			},
			field: "omsLaunchExtraChargeParameter.type",
		},
	}
}

// throttleOnce answers the first request of each path with 429 and
// Retry-After: 1, then passes requests through; it keeps what it saw.
type throttleOnce struct {
	mu     sync.Mutex
	seen   map[string][]http.Header
	bodies map[string][]string
}

func (p *throttleOnce) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.seen[r.URL.Path] = append(p.seen[r.URL.Path], r.Header.Clone())
		p.bodies[r.URL.Path] = append(p.bodies[r.URL.Path], string(b))
		first := len(p.seen[r.URL.Path]) == 1
		p.mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"errCode":-1201,"errMsg":"proxy:fail throttled","retryAfter":1}`))
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		next.ServeHTTP(w, r)
	})
}

func TestEveryFunctionAgainstTheEmulator(t *testing.T) {
	p := &throttleOnce{seen: map[string][]http.Header{}, bodies: map[string][]string{}}
	direct := newRig(t, nil)
	proxied := newRig(t, p.wrap)
	ctx := context.Background()
	good := client(t, direct.url, secret)
	wrong := client(t, direct.url, "not-the-secret-000000000")
	viaProxy := client(t, proxied.url, secret)
	for _, tc := range cases() {
		t.Run(tc.fn, func(t *testing.T) {
			out, err := tc.good(ctx, good)
			require.NoError(t, err)
			tc.check(t, out)

			if tc.bad != nil {
				ce := asError(t, tc.bad(ctx, good))
				require.Equal(t, -1001, ce.ErrCode, ce.ErrMsg)
				require.Equal(t, tc.field, ce.Field)
				require.Equal(t, 400, ce.Status)
				require.Equal(t, tc.fn, ce.Function)
				require.Regexp(t, `^[0-9a-f-]{36}$`, ce.RequestID, "the invocation's request id")
			}

			_, err = tc.good(ctx, wrong)
			ce := asError(t, err)
			require.Equal(t, -1101, ce.ErrCode)
			require.Equal(t, 401, ce.Status)

			out, err = tc.good(ctx, viaProxy)
			require.NoError(t, err, "a 429 with Retry-After is waited out")
			tc.check(t, out)
			p.mu.Lock()
			defer p.mu.Unlock()
			require.Len(t, p.seen["/"+tc.fn], 2)
			require.Equal(t, p.bodies["/"+tc.fn][0], p.bodies["/"+tc.fn][1], "byte-identical retry")
			require.NotEqual(t, p.seen["/"+tc.fn][0].Get("Authorization"), p.seen["/"+tc.fn][1].Get("Authorization"), "signed anew")
		})
	}
	require.Len(t, proxied.top.Charges("BFC-GO-1"), 1, "the throttled charge ran once")
}

// On Lambda (API Gateway HTTP API events) the same client works unchanged.
func TestOnLambda(t *testing.T) {
	r := newRigOn(t, runtimeapi.Lambda, nil, nil)
	ctx := context.Background()
	out, err := client(t, r.url, secret).OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "ZTO", BizID: "zero-balance"})
	require.NoError(t, err)
	require.Equal(t, int64(0), out.QuotaNum, "a zero balance is a balance")
	_, err = client(t, r.url, "not-the-secret-000000000").OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
	ce := asError(t, err)
	require.Equal(t, -1101, ce.ErrCode)
	require.Regexp(t, `^[0-9a-f-]{36}$`, ce.RequestID, "apigw-requestid")
}

func TestChargeTwiceIsOneLedgerEntry(t *testing.T) {
	r := newRig(t, nil)
	c := client(t, r.url, secret)
	ctx := context.Background()
	in := cloudcall.LaunchExtraChargeInput{OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{
		WdsCoordinationOrderID: "BFC-GO-TWICE", Price: 2500, Type: 2, Desc: new("二次上门")}}
	first, err := c.TOP.ASCP.LaunchExtraCharge(ctx, in)
	require.NoError(t, err)
	second, err := c.TOP.ASCP.LaunchExtraCharge(ctx, in)
	require.NoError(t, err)
	require.Equal(t, first, second)
	require.Len(t, r.top.Charges("BFC-GO-TWICE"), 1)

	// The caller's key, as an option: echoed; another request under it is refused.
	in.OmsLaunchExtraChargeParameter.WdsCoordinationOrderID = "BFC-GO-KEY"
	k, err := c.TOP.ASCP.LaunchExtraCharge(ctx, in, cloudcall.WithIdempotencyKey("order-7-visit-2"))
	require.NoError(t, err)
	require.Equal(t, "order-7-visit-2", k.IdempotencyKey)
	in.OmsLaunchExtraChargeParameter.Price++
	_, err = c.TOP.ASCP.LaunchExtraCharge(ctx, in, cloudcall.WithIdempotencyKey("order-7-visit-2"))
	ce := asError(t, err)
	require.Equal(t, -1401, ce.ErrCode)
	require.Equal(t, 409, ce.Status)
	require.Equal(t, "order-7-visit-2", ce.IdempotencyKey)
	require.Len(t, r.top.Charges("BFC-GO-KEY"), 1)

	// TOP's 42 s ban is longer than the client waits: returned at once.
	in.OmsLaunchExtraChargeParameter.WdsCoordinationOrderID = topsbx.OrderThrottled
	_, err = c.TOP.ASCP.LaunchExtraCharge(ctx, in)
	ce = asError(t, err)
	require.Equal(t, -1201, ce.ErrCode)
	require.Equal(t, 429, ce.Status)
	require.Equal(t, 42, ce.RetryAfter)
	require.Equal(t, 1, ce.Attempts)
	require.Regexp(t, `^auto:`, ce.IdempotencyKey)
	require.Equal(t, "7", ce.Upstream.Code)
	require.Empty(t, r.top.Charges(topsbx.OrderThrottled))
}

// fake is a function that misbehaves on cue.
func fake(t *testing.T, h func(w http.ResponseWriter, r *http.Request, n int)) (*httptest.Server, func() int) {
	t.Helper()
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		h(w, r, k)
	}))
	t.Cleanup(srv.Close)
	return srv, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func drop(w http.ResponseWriter) {
	conn, _, _ := w.(http.Hijacker).Hijack()
	_ = conn.Close()
}

func TestTransportRetryRules(t *testing.T) {
	ctx := context.Background()
	okQuota := func(w http.ResponseWriter) {
		_, _ = w.Write([]byte(`{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":7}`))
	}
	t.Run("a read is retried after the connection drops", func(t *testing.T) {
		srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			if k == 1 {
				drop(w)
				return
			}
			okQuota(w)
		})
		out, err := client(t, srv.URL, secret).OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
		require.NoError(t, err)
		require.Equal(t, int64(7), out.QuotaNum)
		require.Equal(t, 2, n())

		// Dropped every time: the request arrived, so "could not reach" would be false.
		srv, n = fake(t, func(w http.ResponseWriter, r *http.Request, k int) { drop(w) })
		_, err = client(t, srv.URL, secret).OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeUnreachable, ce.ErrCode)
		require.Equal(t, 3, n())
		require.Contains(t, ce.ErrMsg, "openapi.logistics.getQuota:fail the connection to "+strings.TrimPrefix(srv.URL, "http://")+" failed before an answer: ")
	})
	t.Run("a charge is not, and says the outcome is unknown", func(t *testing.T) {
		srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) { drop(w) })
		_, err := client(t, srv.URL, secret).TOP.ASCP.LaunchExtraCharge(ctx, cloudcall.LaunchExtraChargeInput{
			OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{WdsCoordinationOrderID: "B", Price: 1, Type: 1}},
			cloudcall.WithIdempotencyKey("k-9"))
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeOutcomeUnknown, ce.ErrCode)
		require.Equal(t, 0, ce.Status)
		require.Equal(t, "k-9", ce.IdempotencyKey)
		require.Equal(t, 1, n(), "never re-sent")
	})
	// A "replayed nonce" means something between the client and the
	// function delivered the request twice (the client signs every attempt
	// anew): the first delivery may have run. An outside tester's balancer
	// retried a charge on another instance, and the caller read the 401 as
	// "not charged" and charged again under a new key.
	t.Run("a replayed nonce: a read is asked again, a charge is -1304 with its key", func(t *testing.T) {
		replayed := func(api string) func(w http.ResponseWriter, r *http.Request, k int) {
			return func(w http.ResponseWriter, r *http.Request, k int) {
				if k == 1 {
					w.WriteHeader(401)
					_, _ = w.Write([]byte(`{"errCode":-1101,"errMsg":"` + api + `:fail unauthenticated: replayed nonce"}`))
					return
				}
				okQuota(w)
			}
		}
		srv, n := fake(t, replayed("openapi.logistics.getQuota"))
		out, err := client(t, srv.URL, secret).OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
		require.NoError(t, err)
		require.Equal(t, int64(7), out.QuotaNum)
		require.Equal(t, 2, n())

		srv, n = fake(t, replayed("top.ascp.launchExtraCharge"))
		_, err = client(t, srv.URL, secret).TOP.ASCP.LaunchExtraCharge(ctx, cloudcall.LaunchExtraChargeInput{
			OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{WdsCoordinationOrderID: "B", Price: 1, Type: 1}},
			cloudcall.WithIdempotencyKey("k-r"))
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeOutcomeUnknown, ce.ErrCode)
		require.Equal(t, 401, ce.Status)
		require.Equal(t, "k-r", ce.IdempotencyKey)
		require.Contains(t, ce.ErrMsg, "refused this request as a replay")
		require.Contains(t, ce.ErrMsg, "call again with the same input and key")
		require.Equal(t, 1, n(), "never re-sent")

		srv, _ = fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"errCode":-1101,"errMsg":"top.ascp.launchExtraCharge:fail unauthenticated: signature does not match"}`))
		})
		_, err = client(t, srv.URL, secret).TOP.ASCP.LaunchExtraCharge(ctx, cloudcall.LaunchExtraChargeInput{
			OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{WdsCoordinationOrderID: "B", Price: 1, Type: 1}})
		require.Equal(t, cloudcall.CodeUnauthenticated, asError(t, err).ErrCode, "any other refusal is what it says")
	})
	t.Run("429 without Retry-After is not retried; retries are bounded", func(t *testing.T) {
		srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			if k > 1 {
				w.Header().Set("Retry-After", "0")
			}
			w.WriteHeader(429)
			_, _ = w.Write([]byte(`{"errCode":-1201,"errMsg":"x:fail throttled"}`))
		})
		c := client(t, srv.URL, secret, func(o *cloudcall.Options) { o.MaxRetries = 3 })
		_, err := c.OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
		require.Equal(t, 1, asError(t, err).Attempts, "no Retry-After: no retry")
		_, err = c.OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
		require.Equal(t, 4, asError(t, err).Attempts)
		require.Equal(t, 5, n())
	})
	t.Run("the timeout gives -1301 for a read, -1304 for a charge", func(t *testing.T) {
		srv, _ := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			_, _ = io.ReadAll(r.Body) // so the server notices the client leaving
			<-r.Context().Done()
		})
		c := client(t, srv.URL, secret, func(o *cloudcall.Options) { o.Timeout = 200 * time.Millisecond })
		_, err := c.OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
		require.Equal(t, cloudcall.CodeTimeout, asError(t, err).ErrCode)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		_, err = c.TOP.ASCP.LaunchExtraCharge(ctx, cloudcall.LaunchExtraChargeInput{
			OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{WdsCoordinationOrderID: "B", Price: 1, Type: 1}})
		require.Equal(t, cloudcall.CodeOutcomeUnknown, asError(t, err).ErrCode)
		require.Contains(t, asError(t, err).ErrMsg, "no answer before the deadline; call again with the same input:")
		// With a key, the key is what makes the repeat safe: say so, as Node does.
		_, err = c.TOP.ASCP.LaunchExtraCharge(ctx, cloudcall.LaunchExtraChargeInput{
			OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{WdsCoordinationOrderID: "B", Price: 1, Type: 1}},
			cloudcall.WithIdempotencyKey("k-late"))
		require.Contains(t, asError(t, err).ErrMsg, "no answer before the deadline; call again with the same input and key:")
		// A caller that cancels is not told of a deadline.
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err = c.OpenAPI.Logistics.GetQuota(cctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
		require.ErrorIs(t, err, context.Canceled)
		require.Contains(t, asError(t, err).ErrMsg, "the caller's context was canceled before an answer came")
	})
	t.Run("a 429 whose wait leaves no room for another attempt as long is answered as the 429", func(t *testing.T) {
		srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			time.Sleep(800 * time.Millisecond)
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			_, _ = w.Write([]byte(`{"errCode":-1201,"errMsg":"cams.queryChatappBindWaba:fail throttled","retryAfter":1}`))
		})
		c := client(t, srv.URL, secret, func(o *cloudcall.Options) { o.Timeout = 2 * time.Second })
		_, err := c.CAMS.QueryChatappBindWaba(ctx, cloudcall.QueryChatappBindWabaInput{})
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeThrottled, ce.ErrCode, ce.ErrMsg)
		require.Equal(t, 1, ce.RetryAfter)
		require.Equal(t, 1, n(), "a retry the deadline would cut is not made")
	})
	t.Run("an answer that is not an envelope", func(t *testing.T) {
		srv, _ := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			w.WriteHeader(502)
			_, _ = w.Write([]byte("<html>Bad Gateway</html>"))
		})
		_, err := client(t, srv.URL, secret).CAMS.QueryChatappBindWaba(ctx, cloudcall.QueryChatappBindWabaInput{})
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeUnreadable, ce.ErrCode)
		require.Equal(t, 502, ce.Status)
		require.Contains(t, ce.ErrMsg, "Bad Gateway")
	})
	charge := cloudcall.LaunchExtraChargeInput{OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{WdsCoordinationOrderID: "B", Price: 1, Type: 1}}
	t.Run("a 5xx that is not an envelope leaves a charge unknown, with its key", func(t *testing.T) {
		srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			w.WriteHeader(500)
			_, _ = w.Write([]byte("<html>Internal</html>"))
		})
		_, err := client(t, srv.URL, secret).TOP.ASCP.LaunchExtraCharge(ctx, charge, cloudcall.WithIdempotencyKey("k-html500"))
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeOutcomeUnknown, ce.ErrCode)
		require.Equal(t, "k-html500", ce.IdempotencyKey, "the caller retries with it")
		require.Equal(t, 1, n())
	})
	t.Run("a body cut after the headers: unreadable for a read, unknown for a charge", func(t *testing.T) {
		srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			w.Header().Set("Content-Length", "1000")
			w.Header().Set("X-Fc-Request-Id", "rid-partial")
			w.WriteHeader(200)
			_, _ = w.Write([]byte(`{"errCode":0,`))
			w.(http.Flusher).Flush()
			drop(w)
		})
		_, err := client(t, srv.URL, secret).OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeUnreadable, ce.ErrCode, ce.ErrMsg)
		require.Equal(t, "rid-partial", ce.RequestID)
		require.Equal(t, 200, ce.Status)
		require.NotContains(t, ce.ErrMsg, "<nil>")
		require.Equal(t, 1, n(), "the function answered: not sent again")
		_, err = client(t, srv.URL, secret).TOP.ASCP.LaunchExtraCharge(ctx, charge, cloudcall.WithIdempotencyKey("k-cut"))
		ce = asError(t, err)
		require.Equal(t, cloudcall.CodeOutcomeUnknown, ce.ErrCode)
		require.Equal(t, "k-cut", ce.IdempotencyKey)
		require.Equal(t, "rid-partial", ce.RequestID)
	})
	t.Run("a charge answered by something that is no envelope is -1304 with its key, whatever the status", func(t *testing.T) {
		for _, status := range []int{200, 400, 307} {
			srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(status)
				_, _ = w.Write([]byte("<html>proxy page</html>"))
			})
			_, err := client(t, srv.URL, secret).TOP.ASCP.LaunchExtraCharge(ctx, charge, cloudcall.WithIdempotencyKey("k-html"))
			ce := asError(t, err)
			require.Equal(t, cloudcall.CodeOutcomeUnknown, ce.ErrCode, "%d: %s", status, ce.ErrMsg)
			require.Equal(t, "k-html", ce.IdempotencyKey)
			require.Equal(t, status, ce.Status)
			require.Equal(t, 1, n())
		}
	})
	t.Run("a charge that succeeded in a shape the types do not hold: -1304 with the key", func(t *testing.T) {
		srv, _ := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			w.Header().Set("X-Fc-Request-Id", "rid-shape")
			_, _ = w.Write([]byte(`{"errCode":0,"errMsg":"top.ascp.launchExtraCharge:ok","idempotencyKey":"k-shape","result":"weird"}`))
		})
		_, err := client(t, srv.URL, secret).TOP.ASCP.LaunchExtraCharge(ctx, charge, cloudcall.WithIdempotencyKey("k-shape"))
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeOutcomeUnknown, ce.ErrCode)
		require.Equal(t, "k-shape", ce.IdempotencyKey)
		require.Equal(t, "rid-shape", ce.RequestID)
		require.Contains(t, ce.ErrMsg, "errCode 0")
	})
	t.Run("a context already ended sends nothing, a charge neither", func(t *testing.T) {
		srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) { okQuota(w) })
		done, cancel := context.WithCancel(ctx)
		cancel()
		_, err := client(t, srv.URL, secret).TOP.ASCP.LaunchExtraCharge(done, charge, cloudcall.WithIdempotencyKey("k-pre"))
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeTimeout, ce.ErrCode)
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, 0, n())
	})
	t.Run("a platform's 429, not an envelope, is a throttle and is waited out", func(t *testing.T) {
		srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			if k == 1 {
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(429)
				_, _ = w.Write([]byte(`{"message":"Too Many Requests"}`))
				return
			}
			okQuota(w)
		})
		out, err := client(t, srv.URL, secret).OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
		require.NoError(t, err)
		require.Equal(t, int64(7), out.QuotaNum)
		require.Equal(t, 2, n())
		srv, _ = fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			w.WriteHeader(429)
			_, _ = w.Write([]byte(`{"message":"Too Many Requests"}`))
		})
		_, err = client(t, srv.URL, secret).TOP.ASCP.LaunchExtraCharge(ctx, charge, cloudcall.WithIdempotencyKey("k-429"))
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeThrottled, ce.ErrCode)
		require.Equal(t, 429, ce.Status)
		require.Equal(t, "k-429", ce.IdempotencyKey)
	})
}

func TestOptionsAreChecked(t *testing.T) {
	for name, o := range map[string]cloudcall.Options{
		"no key":                     {BaseURL: "http://x", Secret: secret},
		"short secret":               {BaseURL: "http://x", KeyID: keyID, Secret: "short"},
		"key id with a newline":      {BaseURL: "http://x", KeyID: "back\nend", Secret: secret},
		"key id with a space":        {BaseURL: "http://x", KeyID: "back end", Secret: secret},
		"negative timeout":           {BaseURL: "http://x", KeyID: keyID, Secret: secret, Timeout: -5 * time.Second},
		"no endpoint":                {KeyID: keyID, Secret: secret},
		"bad url":                    {BaseURL: "ftp://x", KeyID: keyID, Secret: secret},
		"credentials in the url":     {BaseURL: "http://user:pw@127.0.0.1:9000", KeyID: keyID, Secret: secret},
		"a query in the base url":    {BaseURL: "http://127.0.0.1:9000?x=1", KeyID: keyID, Secret: secret},
		"a fragment in the base url": {BaseURL: "http://127.0.0.1:9000#prod", KeyID: keyID, Secret: secret},
		"no scheme":                  {BaseURL: "localhost:9000", KeyID: keyID, Secret: secret},
		"a mistyped endpoint name":   {Endpoints: map[string]string{"logistics-get-qouta": "http://x/q"}, KeyID: keyID, Secret: secret},
		"semicolon":                  {Endpoints: map[string]string{"logistics-get-quota": "http://x/q?a=1;b=2"}, KeyID: keyID, Secret: secret},
		"bad escape":                 {Endpoints: map[string]string{"logistics-get-quota": "http://x/q?a=%zz"}, KeyID: keyID, Secret: secret},
		"not UTF-8":                  {Endpoints: map[string]string{"logistics-get-quota": "http://x/q?a=%FF"}, KeyID: keyID, Secret: secret},
	} {
		_, err := cloudcall.New(o)
		require.Error(t, err, name)
	}
	for _, bare := range []string{"http://127.0.0.1:9000#prod", "http://127.0.0.1:9000#", "http://127.0.0.1:9000/?"} {
		_, err := cloudcall.New(cloudcall.Options{BaseURL: bare, KeyID: keyID, Secret: secret})
		require.ErrorContains(t, err, "must not carry a query or fragment (functions are at <BaseURL>/<function>)", bare)
	}
	for _, raw := range []string{"localhost:9000", "127.0.0.1:9000/x", "[::1]:9000"} {
		_, err := cloudcall.New(cloudcall.Options{BaseURL: raw, KeyID: keyID, Secret: secret})
		require.ErrorContains(t, err, "has no scheme: write http://"+raw, raw)
	}
	_, err := cloudcall.New(cloudcall.Options{BaseURL: "http://[::1]:9000/prefix/", KeyID: keyID, Secret: secret})
	require.NoError(t, err)
	_, err = cloudcall.New(cloudcall.Options{Endpoints: map[string]string{"logistics-get-qouta": "http://x/q"}, KeyID: keyID, Secret: secret})
	require.ErrorContains(t, err, `Endpoints names "logistics-get-qouta", which is no function; known: logistics-get-quota`)
	c, err := cloudcall.New(cloudcall.Options{Endpoints: map[string]string{"logistics-get-quota": "http://127.0.0.1:1/q"}, KeyID: keyID, Secret: secret})
	require.NoError(t, err)
	_, err = c.CK1.Pricing.InboundBox(context.Background(), cloudcall.InboundBoxInput{})
	require.ErrorContains(t, err, "no endpoint for ck1-pricing-inbound-box")
}

// TestDotSegmentsAreResolvedAsNodeDoes: a BaseURL with "." or ".."
// segments went out as written, so a server's mux redirected (which the
// client does not follow) where Node's fetch, resolving them, was answered.
func TestDotSegmentsAreResolvedAsNodeDoes(t *testing.T) {
	var got []string
	var mu sync.Mutex
	srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
		mu.Lock()
		got = append(got, r.URL.Path)
		mu.Unlock()
		_, _ = w.Write([]byte(`{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":1}`))
	})
	for _, base := range []string{srv.URL + "/stage/../fn/./", srv.URL + "/fn/x/..", srv.URL + "/fn/x/%2e%2E", srv.URL + "/fn/%2e/"} {
		c := client(t, base, secret)
		_, err := c.OpenAPI.Logistics.GetQuota(context.Background(), cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "b"})
		require.NoError(t, err, base)
	}
	require.Equal(t, 4, n())
	require.Equal(t, []string{"/fn/logistics-get-quota", "/fn/logistics-get-quota", "/fn/logistics-get-quota", "/fn/logistics-get-quota"}, got)
	// An empty segment cannot be resolved away: refused at creation, as it
	// drew a redirect on every call.
	_, err := cloudcall.New(cloudcall.Options{Endpoints: map[string]string{"top-launch-extra-charge": srv.URL + "//top-launch-extra-charge"}, KeyID: keyID, Secret: secret})
	require.ErrorContains(t, err, "has an empty path segment (//)")
	require.ErrorContains(t, err, `cloudcall: endpoint of top-launch-extra-charge "`+srv.URL+"//top-launch-extra-charge"+`"`)
	// A bad BaseURL is named as written, not as the endpoint it was joined
	// into (a user could not find "//x/logistics-get-quota" anywhere).
	_, err = cloudcall.New(cloudcall.Options{BaseURL: srv.URL + "//x", KeyID: keyID, Secret: secret})
	require.EqualError(t, err, `cloudcall: BaseURL "`+srv.URL+`//x" has an empty path segment (//): every call would be redirected, which the client does not follow`)
	_, err = cloudcall.New(cloudcall.Options{BaseURL: "ftp://h/x", KeyID: keyID, Secret: secret})
	require.EqualError(t, err, `cloudcall: BaseURL "ftp://h/x" is not an http(s) URL (e.g. http://127.0.0.1:9000)`)
}

// TestOnlyThisFunctionsEnvelopeIsAnAnswer: errCode 0 is a success only as
// the function's own "<api>:ok" with a 2xx. A charge pointed at the wrong
// endpoint, or answered errCode 0 by a gateway's 502, resolved as a charge
// with no order id; with the caller's own http.Client it also followed a
// redirect and sent the charge again as a GET.
func TestOnlyThisFunctionsEnvelopeIsAnAnswer(t *testing.T) {
	ctx := context.Background()
	charge := cloudcall.LaunchExtraChargeInput{OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{
		WdsCoordinationOrderID: "BFC1", Price: 100, Type: 2}}
	for _, a := range []struct {
		status int
		body   string
	}{
		{502, `{"errCode":0,"errMsg":"top.ascp.launchExtraCharge:ok"}`},
		{200, `{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":1}`},
		{200, `{"errCode":0,"errMsg":"x:ok"}`},
		{200, `{"errCode":0}`},
	} {
		srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			w.WriteHeader(a.status)
			_, _ = w.Write([]byte(a.body))
		})
		c := client(t, srv.URL, secret)
		_, err := c.TOP.ASCP.LaunchExtraCharge(ctx, charge, cloudcall.WithIdempotencyKey("not-ours"))
		e := asError(t, err)
		require.Equal(t, cloudcall.CodeOutcomeUnknown, e.ErrCode, a.body)
		require.Equal(t, "not-ours", e.IdempotencyKey)
		require.Equal(t, a.status, e.Status)
		require.Contains(t, e.ErrMsg, "is not a cloudcall envelope", a.body)
		require.Contains(t, e.ErrMsg, "call again with the same input and key:")
		require.Equal(t, 1, n(), "never sent again")
		// Without a key there is none to repeat with (an outside tester).
		_, err = c.TOP.ASCP.LaunchExtraCharge(ctx, charge)
		e = asError(t, err)
		require.Equal(t, cloudcall.CodeOutcomeUnknown, e.ErrCode, a.body)
		require.Contains(t, e.ErrMsg, "call again with the same input:")
		_, err = c.CAMS.QueryChatappBindWaba(ctx, cloudcall.QueryChatappBindWabaInput{})
		require.Equal(t, cloudcall.CodeUnreadable, asError(t, err).ErrCode, a.body)
	}

	var gets int
	var mu sync.Mutex
	srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
		if r.Method == http.MethodGet {
			mu.Lock()
			gets++
			mu.Unlock()
			_, _ = w.Write([]byte(`{"errCode":0,"errMsg":"top.ascp.launchExtraCharge:ok"}`))
			return
		}
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	c := client(t, srv.URL, secret, func(o *cloudcall.Options) { o.HTTPClient = &http.Client{} })
	_, err := c.TOP.ASCP.LaunchExtraCharge(ctx, charge, cloudcall.WithIdempotencyKey("rk"))
	e := asError(t, err)
	require.Equal(t, cloudcall.CodeOutcomeUnknown, e.ErrCode)
	require.Equal(t, http.StatusFound, e.Status)
	require.Equal(t, 1, n())
	require.Zero(t, gets, "the redirect was not followed")

	_, err = cloudcall.New(cloudcall.Options{BaseURL: "http://u:p@127.0.0.1:9000", KeyID: keyID, Secret: secret})
	require.EqualError(t, err, "cloudcall: BaseURL must not carry credentials (user:password@); the client signs every request")
}

// TestInputThatWouldGoOutChangedIsRefused: encoding/json would send text
// that is not UTF-8 with U+FFFD in its place (so the function could not
// refuse it) and an empty json.Number as 0; the client refuses both with
// -1001 naming the field, as the function would, and sends nothing.
func TestInputThatWouldGoOutChangedIsRefused(t *testing.T) {
	srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
		_, _ = w.Write([]byte(`{"errCode":0,"errMsg":"ck1.pricing.inboundBox:ok","services":[]}`))
	})
	c := client(t, srv.URL, secret)
	ctx := context.Background()
	box := func(l string) cloudcall.InboundBoxInputBoxesItem {
		return cloudcall.InboundBoxInputBoxesItem{Weight: 1, Length: json.Number(l), Width: "1", Height: "1", Quantity: 1}
	}
	for _, tc := range []struct {
		name, field string
		call        func() error
	}{
		{"bizId not UTF-8", "bizId", func() error {
			_, err := c.OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "ab\xffc"})
			return err
		}},
		{"desc not UTF-8", "omsLaunchExtraChargeParameter.desc", func() error {
			_, err := c.TOP.ASCP.LaunchExtraCharge(ctx, cloudcall.LaunchExtraChargeInput{OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{
				WdsCoordinationOrderID: "1", Price: 1, Type: 1, Desc: new("\xfe")}}, cloudcall.WithIdempotencyKey("k1"))
			return err
		}},
		{"a length that is no number", "boxes[1].length", func() error {
			_, err := c.CK1.Pricing.InboundBox(ctx, cloudcall.InboundBoxInput{WarehouseID: "US", Boxes: []cloudcall.InboundBoxInputBoxesItem{box("30"), box("30cm")}})
			return err
		}},
		{"an empty length", "boxes[0].length", func() error {
			_, err := c.CK1.Pricing.InboundBox(ctx, cloudcall.InboundBoxInput{WarehouseID: "US", Boxes: []cloudcall.InboundBoxInputBoxesItem{box("")}})
			return err
		}},
		{"a length with a space after it", "boxes[0].length", func() error {
			_, err := c.CK1.Pricing.InboundBox(ctx, cloudcall.InboundBoxInput{WarehouseID: "US", Boxes: []cloudcall.InboundBoxInputBoxesItem{box("1 ")}})
			return err
		}},
		{"a key not in UTF-8", "idempotencyKey", func() error {
			_, err := c.TOP.ASCP.LaunchExtraCharge(ctx, cloudcall.LaunchExtraChargeInput{OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{
				WdsCoordinationOrderID: "1", Price: 1, Type: 1}}, cloudcall.WithIdempotencyKey("k\xff"))
			return err
		}},
		{"a length that is JSON but not a number", "boxes[0].length", func() error {
			_, err := c.CK1.Pricing.InboundBox(ctx, cloudcall.InboundBoxInput{WarehouseID: "US", Boxes: []cloudcall.InboundBoxInputBoxesItem{box("true")}})
			return err
		}},
		// encoding/json writes a nil slice as null, which the function
		// refuses; the schema takes [].
		{"no boxes as a nil slice", "boxes", func() error {
			_, err := c.CK1.Pricing.InboundBox(ctx, cloudcall.InboundBoxInput{WarehouseID: "US"})
			return err
		}},
	} {
		e := asError(t, tc.call())
		require.Equal(t, cloudcall.CodeInvalidInput, e.ErrCode, tc.name)
		require.Equal(t, tc.field, e.Field, tc.name)
		require.Contains(t, e.ErrMsg, ":fail invalid input: "+tc.field+": ", tc.name)
	}
	require.Equal(t, 0, n(), "nothing was sent")
	// What goes out as given still goes.
	_, err := c.CK1.Pricing.InboundBox(ctx, cloudcall.InboundBoxInput{WarehouseID: "US", Boxes: []cloudcall.InboundBoxInputBoxesItem{box("-0.5e1")}})
	require.NoError(t, err)
	require.Equal(t, 1, n())
	_, err = c.CK1.Pricing.InboundBox(ctx, cloudcall.InboundBoxInput{WarehouseID: "US", Boxes: []cloudcall.InboundBoxInputBoxesItem{}})
	require.NoError(t, err, "an empty list goes out as []")
	require.Equal(t, 2, n())
}

// TestEmptyStringIsSentAsGiven: desc "" reaches TOP as "" and absent desc is
// left out, so the Go client must be able to send either. With `omitempty`
// on a plain string it dropped "", and the same keyless request sent once
// from Go and once from Node (which sends an empty desc) was two fingerprints and
// two charges. Here the second request is the raw JSON a Node caller sends.
func TestEmptyStringIsSentAsGiven(t *testing.T) {
	r := newRig(t, nil)
	c := client(t, r.url, secret)
	ctx := context.Background()
	raw := func(body string) map[string]any {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, r.url+"/top-launch-extra-charge", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", callerauth.Header(keyID, secret, http.MethodPost, "/top-launch-extra-charge", "", time.Now().Unix(), callerauth.NewNonce(), []byte(body)))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		require.Equal(t, 200, resp.StatusCode, "%v", m)
		return m
	}
	for _, tc := range []struct {
		order string
		desc  *string
		body  string
	}{
		{"BFC-GO-EMPTY", new(""), `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-GO-EMPTY","price":100,"type":2,"desc":""}}`},
		{"BFC-GO-NODESC", nil, `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-GO-NODESC","price":100,"type":2}}`},
	} {
		out, err := c.TOP.ASCP.LaunchExtraCharge(ctx, cloudcall.LaunchExtraChargeInput{OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{
			WdsCoordinationOrderID: tc.order, Price: 100, Type: 2, Desc: tc.desc}})
		require.NoError(t, err)
		again := raw(tc.body)
		require.Equal(t, out.IdempotencyKey, again["idempotencyKey"], "%s: the same request from Go and as raw JSON has one fingerprint", tc.order)
		require.Len(t, r.top.Charges(tc.order), 1, tc.order)
	}
	// "" and absent are different requests to TOP, so different charges.
	require.NotEqual(t, raw(`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-GO-EMPTY","price":100,"type":2,"desc":""}}`)["idempotencyKey"],
		raw(`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-GO-EMPTY","price":100,"type":2}}`)["idempotencyKey"])
}

// A caller's context that ends while the client waits to retry is the
// caller's doing: errors.Is says so, whatever the last attempt said (an
// outside tester's canceled calls read as "throttled" and "unreachable").
func TestContextEndingDuringARetryWait(t *testing.T) {
	in := cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"}
	t.Run("canceled while waiting out a 429", func(t *testing.T) {
		srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(429)
			_, _ = w.Write([]byte(`throttled`))
		})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		_, err := client(t, srv.URL, secret).OpenAPI.Logistics.GetQuota(ctx, in)
		require.ErrorIs(t, err, context.Canceled)
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeTimeout, ce.ErrCode)
		require.Equal(t, 1, ce.Attempts)
		require.Equal(t, 0, ce.Status)
		require.Equal(t, "openapi.logistics.getQuota:fail the caller's context was canceled while waiting to retry (last attempt: throttled before the function (HTTP 429 from "+srv.URL+"/logistics-get-quota): throttled)", ce.ErrMsg)
		require.Equal(t, 1, n())
	})
	t.Run("canceled while backing off a refused connection", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		base := srv.URL
		srv.Close() // refuses from now on
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(30*time.Millisecond, cancel)
		_, err := client(t, base, secret, func(o *cloudcall.Options) { o.MaxRetries = 50 }).OpenAPI.Logistics.GetQuota(ctx, in)
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, err, syscall.ECONNREFUSED, "the last attempt's cause stays")
		require.NotContains(t, err.(*cloudcall.Error).Err.Error(), "\n", "one line in a log")
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeTimeout, ce.ErrCode)
		require.Contains(t, ce.ErrMsg, "canceled while waiting to retry (last attempt: could not reach")
	})
}

// A read's 429 retry that the deadline cuts (it took longer than the attempt
// before it) is answered with the 429 it retried, not -1301 (an outside
// tester, of the Node client; Go did the same). The first attempt takes 200
// ms and asks for 1 s, so the retry fits a 2 s budget (200 + 1000 + 200 ms);
// the second answers only after the deadline, or stops mid-body. A charge's
// cut retry stays -1304 with its key: it was sent, and may have charged.
func TestARetryTheDeadlineCutsIsAnsweredWithIts429(t *testing.T) {
	const envelope = `{"errCode":-1201,"errMsg":"openapi.logistics.getQuota:fail throttled by the vendor","retryAfter":1,"upstream":{"vendor":"wechat","code":"45009","message":"reach max api daily quota limit"}}`
	in := cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"}
	twoSeconds := func(o *cloudcall.Options) { o.Timeout = 2 * time.Second }
	// hold keeps a request past the client's deadline; the body read first,
	// so the server sees the client hang up.
	hold := func(r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(4 * time.Second):
		}
	}
	throttle := func(w http.ResponseWriter, r *http.Request, body string) {
		select {
		case <-time.After(200 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Retry-After", "1")
		w.Header().Set("X-Fc-Request-Id", "rid-429")
		w.WriteHeader(429)
		_, _ = w.Write([]byte(body))
	}
	second := map[string]func(w http.ResponseWriter, r *http.Request){
		"slow": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-time.After(1500 * time.Millisecond):
				throttle(w, r, envelope)
			case <-r.Context().Done():
			}
		},
		"stalled": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "200")
			w.WriteHeader(200)
			_, _ = w.Write([]byte(`{"errCode":0,`))
			w.(http.Flusher).Flush()
			hold(r)
		},
	}
	for name, answer := range second {
		t.Run("the function's 429, the retry "+name, func(t *testing.T) {
			srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
				if k == 1 {
					throttle(w, r, envelope)
				} else {
					answer(w, r)
				}
			})
			_, err := client(t, srv.URL, secret, twoSeconds).OpenAPI.Logistics.GetQuota(context.Background(), in)
			ce := asError(t, err)
			require.Equal(t, cloudcall.CodeThrottled, ce.ErrCode, ce.ErrMsg)
			require.Equal(t, 429, ce.Status)
			require.Equal(t, 1, ce.RetryAfter)
			require.Equal(t, "openapi.logistics.getQuota:fail throttled by the vendor", ce.ErrMsg)
			require.Equal(t, &cloudcall.Upstream{Vendor: "wechat", Code: "45009", Message: "reach max api daily quota limit"}, ce.Upstream)
			require.Equal(t, "rid-429", ce.RequestID)
			require.Equal(t, 2, ce.Attempts)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.Equal(t, 2, n(), "the retry was sent")
		})
	}
	t.Run("a platform's 429", func(t *testing.T) {
		srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			if k == 1 {
				throttle(w, r, `{"message":"Too Many Requests"}`)
				return
			}
			hold(r)
		})
		_, err := client(t, srv.URL, secret, twoSeconds).OpenAPI.Logistics.GetQuota(context.Background(), in)
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeThrottled, ce.ErrCode, ce.ErrMsg)
		require.Equal(t, 429, ce.Status)
		require.Equal(t, 1, ce.RetryAfter)
		require.Equal(t, "openapi.logistics.getQuota:fail throttled before the function (HTTP 429 from "+srv.URL+"/logistics-get-quota): {\"message\":\"Too Many Requests\"}", ce.ErrMsg)
		require.Equal(t, 2, ce.Attempts)
		require.Equal(t, 2, n())
	})
	t.Run("a charge: -1304 with its key", func(t *testing.T) {
		srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			if k == 1 {
				throttle(w, r, `{"errCode":-1201,"errMsg":"top.ascp.launchExtraCharge:fail throttled","retryAfter":1,"idempotencyKey":"k-cut-429"}`)
				return
			}
			hold(r)
		})
		charge := cloudcall.LaunchExtraChargeInput{OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{WdsCoordinationOrderID: "B", Price: 1, Type: 1}}
		_, err := client(t, srv.URL, secret, twoSeconds).TOP.ASCP.LaunchExtraCharge(context.Background(), charge, cloudcall.WithIdempotencyKey("k-cut-429"))
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeOutcomeUnknown, ce.ErrCode, ce.ErrMsg)
		require.Equal(t, 0, ce.Status)
		require.Equal(t, "k-cut-429", ce.IdempotencyKey)
		require.Equal(t, 2, ce.Attempts)
		require.Equal(t, 2, n())
	})
	// Without a key of its own the charge is keyed by its fingerprint,
	// which the 429 echoed: the -1304 named none (an outside re-tester).
	t.Run("a keyless charge: -1304 with the key the function echoed", func(t *testing.T) {
		key := "auto:" + strings.Repeat("ab", 32)
		srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			if k == 1 {
				throttle(w, r, `{"errCode":-1201,"errMsg":"top.ascp.launchExtraCharge:fail throttled","retryAfter":1,"idempotencyKey":"`+key+`"}`)
				return
			}
			hold(r)
		})
		charge := cloudcall.LaunchExtraChargeInput{OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{WdsCoordinationOrderID: "B", Price: 1, Type: 1}}
		_, err := client(t, srv.URL, secret, twoSeconds).TOP.ASCP.LaunchExtraCharge(context.Background(), charge)
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeOutcomeUnknown, ce.ErrCode, ce.ErrMsg)
		require.Equal(t, key, ce.IdempotencyKey)
		require.Contains(t, ce.ErrMsg, "call again with the same input and key:")
		require.Equal(t, 2, n())
	})
}

// An empty idempotency key is no key (docs/envelope.md, Policies): with a key
// in WithIdempotencyKey it is no second key, and an empty WithIdempotencyKey
// leaves the input's key alone. (The Node client refused the first.)
func TestEmptyIdempotencyKeyIsNoKey(t *testing.T) {
	var mu sync.Mutex
	var sent []string
	srv, _ := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
		var m map[string]any
		b, _ := io.ReadAll(r.Body)
		key := "(not JSON)"
		if json.Unmarshal(b, &m) == nil {
			key = fmt.Sprint(m["idempotencyKey"]) // <nil> when there is none
		}
		mu.Lock()
		sent = append(sent, key)
		mu.Unlock()
		_, _ = w.Write([]byte(`{"errCode":0,"errMsg":"top.ascp.launchExtraCharge:ok","idempotencyKey":"x","requestId":"r","result":{"success":true,"data":{"extraChargeServiceOrderId":"E1","feature":""}}}`))
	})
	c := client(t, srv.URL, secret)
	in := func(key string) cloudcall.LaunchExtraChargeInput {
		return cloudcall.LaunchExtraChargeInput{IdempotencyKey: key,
			OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{WdsCoordinationOrderID: "B", Price: 1, Type: 1}}
	}
	ctx := context.Background()
	_, err := c.TOP.ASCP.LaunchExtraCharge(ctx, in(""), cloudcall.WithIdempotencyKey("k"))
	require.NoError(t, err)
	_, err = c.TOP.ASCP.LaunchExtraCharge(ctx, in("a"), cloudcall.WithIdempotencyKey(""))
	require.NoError(t, err)
	_, err = c.TOP.ASCP.LaunchExtraCharge(ctx, in(""), cloudcall.WithIdempotencyKey(""))
	require.NoError(t, err)
	_, err = c.TOP.ASCP.LaunchExtraCharge(ctx, in("a"), cloudcall.WithIdempotencyKey("b"))
	ce := asError(t, err)
	require.Equal(t, cloudcall.CodeInvalidInput, ce.ErrCode)
	require.Equal(t, "idempotencyKey", ce.Field)
	require.Equal(t, []string{"k", "a", "<nil>"}, sent, "two keys that are both there still disagree, and nothing was sent")
}

// An answer's fields that the generated types do not name reach Go callers
// in Extra, as they reach Node's, and go back out with MarshalJSON.
func TestFieldsTheVendorAddsLaterPassThrough(t *testing.T) {
	srv, _ := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
		_, _ = w.Write([]byte(`{"errCode":0,"errMsg":"cams.queryChatappBindWaba:ok","requestId":"R1","data":{"id":"W1","futureField":{"addedBy":"a later release","n":10.50}}}`))
	})
	out, err := client(t, srv.URL, secret).CAMS.QueryChatappBindWaba(context.Background(), cloudcall.QueryChatappBindWabaInput{})
	require.NoError(t, err)
	require.Equal(t, "W1", out.Data.ID)
	require.Equal(t, map[string]any{"futureField": map[string]any{"addedBy": "a later release", "n": json.Number("10.50")}}, out.Data.Extra)
	b, err := json.Marshal(out.Data)
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"W1","futureField":{"addedBy":"a later release","n":10.50}}`, string(b))
	require.Contains(t, string(b), `10.50`, "the digits as CAMS sent them")

	var none cloudcall.QueryChatappBindWabaOutputData
	require.NoError(t, json.Unmarshal([]byte(`{"id":"W2"}`), &none))
	require.Nil(t, none.Extra)

	// A named field in another case is encoding/json's to match, not Extra's
	// (it was in both), and a free-form member keeps the vendor's digits.
	srv, _ = fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
		_, _ = w.Write([]byte(`{"errCode":0,"errMsg":"cams.queryChatappBindWaba:ok","requestId":"R1","data":{"id":"W1","Name":"upper","authInternationalRateEligibility":{"big":12345678901234567890,"f":1.10}}}`))
	})
	out, err = client(t, srv.URL, secret).CAMS.QueryChatappBindWaba(context.Background(), cloudcall.QueryChatappBindWabaInput{})
	require.NoError(t, err)
	require.Equal(t, "upper", out.Data.Name)
	require.Nil(t, out.Data.Extra)
	require.Equal(t, map[string]any{"big": json.Number("12345678901234567890"), "f": json.Number("1.10")}, out.Data.AuthInternationalRateEligibility)

	// A failure's upstream.extra too.
	srv, _ = fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
		w.WriteHeader(502)
		_, _ = w.Write([]byte(`{"errCode":-1305,"errMsg":"cams.queryChatappBindWaba:fail refused","upstream":{"vendor":"cams","extra":{"quota":9007199254740993,"price":1.10}}}`))
	})
	_, err = client(t, srv.URL, secret).CAMS.QueryChatappBindWaba(context.Background(), cloudcall.QueryChatappBindWabaInput{})
	require.Equal(t, map[string]any{"quota": json.Number("9007199254740993"), "price": json.Number("1.10")}, asError(t, err).Upstream.Extra)
}

// The client's codes are the envelope's.
func TestCodesAreTheEnvelopes(t *testing.T) {
	for got, want := range map[int]int{
		cloudcall.CodeInvalidInput: envelope.CodeInvalidInput, cloudcall.CodePayloadTooLarge: envelope.CodePayloadTooLarge,
		cloudcall.CodeUnauthenticated: envelope.CodeUnauthenticated, cloudcall.CodeForbidden: envelope.CodeForbidden,
		cloudcall.CodeThrottled: envelope.CodeThrottled, cloudcall.CodeTimeout: envelope.CodeUpstreamTimeout,
		cloudcall.CodeUnreachable: envelope.CodeUpstreamUnreachable, cloudcall.CodeUnreadable: envelope.CodeUpstreamMalformed,
		cloudcall.CodeOutcomeUnknown: envelope.CodeOutcomeUnknown, cloudcall.CodeVendorRefused: envelope.CodeUpstream,
		cloudcall.CodeIdempotencyConflict: envelope.CodeIdempotencyConflict, cloudcall.CodeStoreUnavailable: envelope.CodeStoreUnavailable,
		cloudcall.CodeConfig: envelope.CodeConfig, cloudcall.CodeInternal: envelope.CodeInternal,
	} {
		require.Equal(t, want, got)
	}
}

// CK1's serviceCode and locationId are sent to CK1 as given, "" included:
// the Go client sends "" as "" and nil as nothing, as Node sends ” and no
// field (an outside tester: both were string with omitempty, and "" was
// dropped).
func TestCK1EmptyStringsGoOutAsGiven(t *testing.T) {
	for _, tc := range []struct {
		name          string
		service, loc  *string
		want, missing []string
	}{
		{"empty", new(""), new(""), []string{`"serviceCode":""`, `"locationId":""`}, nil},
		{"absent", nil, nil, nil, []string{`serviceCode`, `locationId`}},
		{"given", new("USSEA"), new("SZ"), []string{`"serviceCode":"USSEA"`, `"locationId":"SZ"`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bodies := make(chan string, 1)
			srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
				b, _ := io.ReadAll(r.Body)
				bodies <- string(b)
				_, _ = w.Write([]byte(`{"errCode":0,"errMsg":"ck1.pricing.inboundBox:ok","services":[]}`))
			})
			_, err := client(t, srv.URL, secret).CK1.Pricing.InboundBox(context.Background(), cloudcall.InboundBoxInput{
				ServiceCode: tc.service, WarehouseID: "US", LocationID: tc.loc,
				Boxes: []cloudcall.InboundBoxInputBoxesItem{{Weight: 1200, Length: num("30"), Width: num("20"), Height: num("15"), Quantity: 2}}})
			require.NoError(t, err)
			require.Equal(t, 1, n())
			body := <-bodies
			for _, w := range tc.want {
				require.Contains(t, body, w)
			}
			for _, m := range tc.missing {
				require.NotContains(t, body, m)
			}
		})
	}
}

// An outside tester: {"errCode":0,"errMsg":"...:ok"} with no quotaNum gave
// QuotaNum 0, which the schema says means "no balance left". A success
// answer missing a field its schema requires, or with a field of another
// JSON type, is -1303 naming the field, in the Node client's words
// (clients/node/test/unit.test.mjs: "success answers are checked against the
// output schema"); the charge's is -1304 with its key (errCode 0: it charged).
func TestSuccessAnswerIsCheckedAgainstTheSchema(t *testing.T) {
	ctx := context.Background()
	quota := func(c *cloudcall.Client) error {
		_, err := c.OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
		return err
	}
	box := func(c *cloudcall.Client) error {
		_, err := c.CK1.Pricing.InboundBox(ctx, cloudcall.InboundBoxInput{WarehouseID: "US", Boxes: []cloudcall.InboundBoxInputBoxesItem{}})
		return err
	}
	waba := func(c *cloudcall.Client) error {
		_, err := c.CAMS.QueryChatappBindWaba(ctx, cloudcall.QueryChatappBindWabaInput{})
		return err
	}
	for _, tc := range []struct {
		api, answer, problem string
		call                 func(*cloudcall.Client) error
	}{
		{"openapi.logistics.getQuota", `{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok"}`, "quotaNum: required, missing", quota},
		{"openapi.logistics.getQuota", `{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":"210"}`, "quotaNum: expected an integer, got a string", quota},
		{"openapi.logistics.getQuota", `{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":null}`, "quotaNum: expected an integer, got null", quota},
		{"openapi.logistics.getQuota", `{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":2.5}`, "quotaNum: expected an integer, got a number", quota},
		{"ck1.pricing.inboundBox", `{"errCode":0,"errMsg":"ck1.pricing.inboundBox:ok","services":[{"serviceCode":"A","serviceName":"n","success":true,"message":"","chargeInfo":{"summary":[{"currency":"CNY"}],"detail":[]}}]}`,
			"services[0].chargeInfo.summary[0].amount: required, missing", box},
		{"ck1.pricing.inboundBox", `{"errCode":0,"errMsg":"ck1.pricing.inboundBox:ok","services":{}}`, "services: expected an array, got an object", box},
		{"cams.queryChatappBindWaba", `{"errCode":0,"errMsg":"cams.queryChatappBindWaba:ok","requestId":"R1","data":{"id":"W1","name":5}}`, "data.name: expected a string, got a number", waba},
	} {
		t.Run(tc.problem, func(t *testing.T) {
			srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
				w.Header().Set("X-Fc-Request-Id", "rid-shape")
				_, _ = w.Write([]byte(tc.answer))
			})
			ce := asError(t, tc.call(client(t, srv.URL, secret)))
			require.Equal(t, cloudcall.CodeUnreadable, ce.ErrCode)
			require.Equal(t, tc.api+":fail the answer does not match the generated type: "+tc.problem, ce.ErrMsg)
			require.Equal(t, 200, ce.Status)
			require.Equal(t, "rid-shape", ce.RequestID)
			require.Equal(t, 1, ce.Attempts)
			require.Equal(t, 1, n())
		})
	}
	t.Run("a charge that answered errCode 0 without its result is -1304 with the key", func(t *testing.T) {
		srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			_, _ = w.Write([]byte(`{"errCode":0,"errMsg":"top.ascp.launchExtraCharge:ok","requestId":"r","idempotencyKey":"k-shape"}`))
		})
		_, err := client(t, srv.URL, secret).TOP.ASCP.LaunchExtraCharge(ctx, cloudcall.LaunchExtraChargeInput{OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{
			WdsCoordinationOrderID: "BFC1", Price: 100, Type: 2}}, cloudcall.WithIdempotencyKey("k-shape"))
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeOutcomeUnknown, ce.ErrCode)
		require.Equal(t, "k-shape", ce.IdempotencyKey)
		require.Equal(t, "top.ascp.launchExtraCharge:fail the function answered errCode 0 (done) in a shape this client's types do not hold (result: required, missing); reconcile with the idempotency key", ce.ErrMsg)
		require.Equal(t, 1, n())
	})
}

// Retry-After as RFC 9110 writes it, or none (as the Node client reads it):
// "+1" and asctime's day after one space were taken, and 18446744074 s
// wrapped past int64 and was waited out as 0.29 s (an outside re-tester).
func TestRetryAfterIsReadAsRFC9110WritesIt(t *testing.T) {
	in := cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"}
	soon := time.Now().Add(2 * time.Second).UTC()
	for _, tc := range []struct {
		value      string
		requests   int
		retryAfter int
	}{
		{"+1", 1, 0},
		{"+0", 1, 0},
		{"-1", 1, 0},
		{"1.5", 1, 0},
		{"Sun Nov 6 08:49:37 1994", 1, 0}, // asctime pads a day to two: "Nov  6"
		{"18446744074", 1, 18446744074},
		{"99999999999999999999999", 1, math.MaxInt},
		{"0", 3, 0},
		{soon.Format(http.TimeFormat), 3, 2},
		{soon.Format(time.ANSIC), 3, 2},
	} {
		t.Run(tc.value, func(t *testing.T) {
			srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
				w.Header().Set("Retry-After", tc.value)
				w.WriteHeader(429)
				_, _ = w.Write([]byte(`throttled`))
			})
			_, err := client(t, srv.URL, secret, func(o *cloudcall.Options) { o.MaxRetries = 2 }).OpenAPI.Logistics.GetQuota(context.Background(), in)
			ce := asError(t, err)
			require.Equal(t, cloudcall.CodeThrottled, ce.ErrCode)
			require.Equal(t, tc.requests, n())
			if tc.requests == 1 && tc.retryAfter == 0 {
				require.Zero(t, ce.RetryAfter, "no Retry-After")
			} else if tc.retryAfter > 2 {
				require.Equal(t, tc.retryAfter, ce.RetryAfter)
			}
		})
	}
}

// The typed value is the checked one: beside a named field another
// spelling of it is dropped, a repeated name keeps its last value, and an
// integer written 210.0 or 2.1e2 is one, as in Node (an outside re-tester:
// {"quotaNum":210,"QuotaNum":5} gave 5, and 210.0 was refused).
func TestTheTypedAnswerIsTheCheckedOne(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		answer string
		quota  int64
		fail   string
	}{
		{`{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":210,"QuotaNum":5}`, 210, ""},
		{`{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","QUOTANUM":0,"quotaNum":210}`, 210, ""},
		{`{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":"x","quotaNum":210}`, 210, ""},
		{`{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":210.0}`, 210, ""},
		{`{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":2.1e2}`, 210, ""},
		{`{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":1e20}`, 0, "quotaNum: expected an integer the Go client holds (64 bits), got 1e20"},
		{`{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":210,"QuotaNum":"x"}`, 210, ""},
	} {
		t.Run(tc.answer, func(t *testing.T) {
			srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) { _, _ = w.Write([]byte(tc.answer)) })
			out, err := client(t, srv.URL, secret).OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
			require.Equal(t, 1, n())
			if tc.fail != "" {
				ce := asError(t, err)
				require.Equal(t, cloudcall.CodeUnreadable, ce.ErrCode)
				require.Equal(t, "openapi.logistics.getQuota:fail the answer does not match the generated type: "+tc.fail, ce.ErrMsg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.quota, out.QuotaNum)
		})
	}
	t.Run("the charge's key and result are the checked ones", func(t *testing.T) {
		srv, _ := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
			_, _ = w.Write([]byte(`{"errCode":0,"errMsg":"top.ascp.launchExtraCharge:ok","requestId":"r","idempotencyKey":"k1","IdempotencyKey":"other","result":{"success":true,"Success":false,"data":{"extraChargeServiceOrderId":"1","feature":""}}}`))
		})
		out, err := client(t, srv.URL, secret).TOP.ASCP.LaunchExtraCharge(ctx, cloudcall.LaunchExtraChargeInput{OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{
			WdsCoordinationOrderID: "BFC1", Price: 100, Type: 2}}, cloudcall.WithIdempotencyKey("k1"))
		require.NoError(t, err)
		require.Equal(t, "k1", out.IdempotencyKey)
		require.True(t, out.Result.Success)
	})
}

// A function that allows anonymous calls (plain `make run`, or FC's
// authType: function with CLOUDCALL_ALLOW_ANONYMOUS=true) takes unsigned
// calls: New refused a client without a secret (an outside tester).
func TestUnsignedClient(t *testing.T) {
	t.Run("calls a function that allows anonymous calls, with no Authorization header", func(t *testing.T) {
		var mu sync.Mutex
		var auth [][]string
		record := func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				auth = append(auth, r.Header.Values("Authorization"))
				mu.Unlock()
				h.ServeHTTP(w, r)
			})
		}
		r := newRigOn(t, runtimeapi.FC, record, map[string]string{"CLOUDCALL_CALLER_KEYS": "", "CLOUDCALL_ALLOW_ANONYMOUS": "true"})
		cc, err := cloudcall.New(cloudcall.Options{BaseURL: r.url, Timeout: 20 * time.Second})
		require.NoError(t, err)
		out, err := cc.OpenAPI.Logistics.GetQuota(context.Background(), cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
		require.NoError(t, err)
		require.Equal(t, int64(210), out.QuotaNum)
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, [][]string{nil}, auth, "one request, unsigned")
	})

	t.Run("a -1101 keeps the function's errMsg; Error() says the client had no key", func(t *testing.T) {
		r := newRigOn(t, runtimeapi.FC, nil, nil) // caller keys on: unsigned calls are refused
		cc, err := cloudcall.New(cloudcall.Options{BaseURL: r.url, Timeout: 20 * time.Second})
		require.NoError(t, err)
		_, err = cc.OpenAPI.Logistics.GetQuota(context.Background(), cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeUnauthenticated, ce.ErrCode)
		require.Equal(t, 401, ce.Status)
		require.Equal(t, "openapi.logistics.getQuota:fail unauthenticated: missing Authorization header: sign the request (CLOUDCALL-HMAC-SHA256)", ce.ErrMsg)
		require.Equal(t, "cloudcall: errCode -1101: "+ce.ErrMsg+" (this client sends unsigned calls: it was made without KeyID and Secret; set both, a key of the functions' CLOUDCALL_CALLER_KEYS)", ce.Error())
		// A signed client's -1101 is the function's errMsg alone.
		_, err = client(t, r.url, "not-the-secret-0000000000").OpenAPI.Logistics.GetQuota(context.Background(), cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
		ce = asError(t, err)
		require.Equal(t, cloudcall.CodeUnauthenticated, ce.ErrCode)
		require.Equal(t, "cloudcall: errCode -1101: "+ce.ErrMsg, ce.Error())
	})

	t.Run("a half-configured client fails at creation, saying what to do", func(t *testing.T) {
		const neither = "or leave both KeyID and Secret empty for a function that allows anonymous calls (unsigned calls)"
		for name, c := range map[string]struct {
			o    cloudcall.Options
			want string
		}{
			"KeyID without Secret (CLOUDCALL_KEY unset)": {cloudcall.Options{KeyID: keyID}, "cloudcall: KeyID is set without Secret: set both (a key of the functions' CLOUDCALL_CALLER_KEYS), " + neither},
			"Secret without KeyID":                       {cloudcall.Options{Secret: secret}, "cloudcall: Secret is set without KeyID: set both (a key of the functions' CLOUDCALL_CALLER_KEYS), " + neither},
			"a short secret":                             {cloudcall.Options{KeyID: keyID, Secret: "short"}, "cloudcall: Secret must be the key's secret (at least 16 bytes), " + neither},
			"a bad KeyID":                                {cloudcall.Options{KeyID: "back end", Secret: secret}, `cloudcall: KeyID "back end" must be 1-64 of A-Z a-z 0-9 _ . - (the id in CLOUDCALL_CALLER_KEYS), ` + neither},
		} {
			c.o.BaseURL = "http://127.0.0.1:9000"
			_, err := cloudcall.New(c.o)
			require.EqualError(t, err, c.want, name)
		}
	})
}

// A request cut by the caller's own http.Client.Timeout (or a transport's
// timeout) may have been delivered: a read is -1301 and not sent again,
// a charge -1304 with its key. It was -1302 and the vendor was called three
// times (an outside tester).
func TestTheHTTPClientsOwnTimeoutIsATimeout(t *testing.T) {
	ctx := context.Background()
	charge := cloudcall.LaunchExtraChargeInput{
		OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{WdsCoordinationOrderID: "B", Price: 1, Type: 1}}
	tests := []struct {
		name     string
		late     func(w http.ResponseWriter) // what the function does once it is late
		call     func(c *cloudcall.Client) error
		code     int
		status   int
		key      string
		inErrMsg string
	}{
		{
			name: "a read with no headers in time",
			call: func(c *cloudcall.Client) error {
				_, err := c.OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
				return err
			},
			code: cloudcall.CodeTimeout, inErrMsg: "openapi.logistics.getQuota:fail no answer before the HTTP client's own timeout",
		},
		{
			name: "a read whose body stops arriving",
			late: func(w http.ResponseWriter) {
				w.WriteHeader(200)
				_, _ = w.Write([]byte(`{"errCode":0,`))
				w.(http.Flusher).Flush()
			},
			call: func(c *cloudcall.Client) error {
				_, err := c.OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
				return err
			},
			code: cloudcall.CodeTimeout, status: 200, inErrMsg: "openapi.logistics.getQuota:fail no answer before the HTTP client's own timeout",
		},
		{
			name: "a charge",
			call: func(c *cloudcall.Client) error {
				_, err := c.TOP.ASCP.LaunchExtraCharge(ctx, charge, cloudcall.WithIdempotencyKey("k-ht"))
				return err
			},
			code: cloudcall.CodeOutcomeUnknown, key: "k-ht", inErrMsg: "outcome unknown — no answer before the HTTP client's own timeout (Options.HTTPClient) after the charge may have been sent; call again with the same input and key",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
				_, _ = io.ReadAll(r.Body)
				if tt.late != nil {
					tt.late(w)
				}
				select {
				case <-r.Context().Done():
				case <-time.After(2 * time.Second):
				}
			})
			c := client(t, srv.URL, secret, func(o *cloudcall.Options) {
				o.HTTPClient = &http.Client{Timeout: 300 * time.Millisecond}
			})
			err := tt.call(c)
			ce := asError(t, err)
			require.Equal(t, tt.code, ce.ErrCode, ce.ErrMsg)
			require.Equal(t, 1, ce.Attempts)
			require.Equal(t, 1, n(), "sent once: it may have been delivered")
			require.Equal(t, tt.status, ce.Status)
			require.Equal(t, tt.key, ce.IdempotencyKey)
			require.Contains(t, ce.ErrMsg, tt.inErrMsg)
			require.ErrorIs(t, err, context.DeadlineExceeded, "the cause is wrapped")
		})
	}
}

// Misuse is a plain error, sent nowhere: a Client not made by New, a nil
// context. Both panicked with a nil pointer dereference (an outside tester).
func TestMisuseIsAPlainError(t *testing.T) {
	srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) {
		_, _ = w.Write([]byte(`{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":7}`))
	})
	made := client(t, srv.URL, secret)
	var zero cloudcall.Client
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"a zero Client's read", func() error {
			_, err := zero.OpenAPI.Logistics.GetQuota(context.Background(), cloudcall.GetQuotaInput{})
			return err
		}, "cloudcall: the Client was not made by cloudcall.New: use cloudcall.New(cloudcall.Options{...})"},
		{"a zero Client's charge", func() error {
			_, err := zero.TOP.ASCP.LaunchExtraCharge(context.Background(), cloudcall.LaunchExtraChargeInput{})
			return err
		}, "cloudcall: the Client was not made by cloudcall.New: use cloudcall.New(cloudcall.Options{...})"},
		{"a zero API value", func() error {
			_, err := cloudcall.CAMSAPI{}.QueryChatappBindWaba(context.Background(), cloudcall.QueryChatappBindWabaInput{})
			return err
		}, "cloudcall: the Client was not made by cloudcall.New: use cloudcall.New(cloudcall.Options{...})"},
		{"a nil context", func() error {
			//lint:ignore SA1012 the misuse under test
			_, err := made.OpenAPI.Logistics.GetQuota(nil, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"}) //nolint:staticcheck
			return err
		}, "cloudcall: nil Context"},
		{"a nil context to a zero Client", func() error {
			_, err := zero.CK1.Pricing.InboundBox(nil, cloudcall.InboundBoxInput{}) //nolint:staticcheck
			return err
		}, "cloudcall: nil Context"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { err = tt.call() })
			require.EqualError(t, err, tt.want)
			var ce *cloudcall.Error
			require.False(t, errors.As(err, &ce), "a misuse is no *Error")
			require.Equal(t, 0, n(), "nothing is sent")
		})
	}
}

// roundTrip is an http.RoundTripper from a function: a caller's own
// transport (a platform's signer, a gateway's client).
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A read is sent again only after a connection failure (refused, DNS, reset
// or closed by the peer). A timeout or cancel of the HTTP client's own, or
// its transport's own error, may come after the request arrived: one
// attempt. Re-testers found a transport that canceled its own context, and
// one that failed with its own error after sending, sent three times, the
// second as "failed before an answer".
func TestOnlyAConnectionFailureSendsAReadAgain(t *testing.T) {
	ctx := context.Background()
	read := func(c *cloudcall.Client) error {
		_, err := c.OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
		return err
	}
	charge := func(c *cloudcall.Client) error {
		_, err := c.TOP.ASCP.LaunchExtraCharge(ctx, cloudcall.LaunchExtraChargeInput{
			OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{WdsCoordinationOrderID: "B", Price: 1, Type: 1}},
			cloudcall.WithIdempotencyKey("k-tr"))
		return err
	}
	hang := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	}
	answer := func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":7}`))
	}
	reset := func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		_ = conn.(*net.TCPConn).SetLinger(0) // close with a RST
		_ = conn.Close()
	}
	// The transport cancels its own request (context.WithCancel and a timer).
	ownCancel := func(tr http.RoundTripper) http.RoundTripper {
		return roundTrip(func(r *http.Request) (*http.Response, error) {
			cctx, cancel := context.WithCancel(r.Context())
			time.AfterFunc(400*time.Millisecond, cancel)
			return tr.RoundTrip(r.WithContext(cctx))
		})
	}
	// The transport sends the request, then fails with its own error.
	ownError := func(tr http.RoundTripper) http.RoundTripper {
		return roundTrip(func(r *http.Request) (*http.Response, error) {
			resp, err := tr.RoundTrip(r)
			if err == nil {
				_ = resp.Body.Close()
			}
			return nil, errors.New("gateway gave up")
		})
	}
	tests := []struct {
		name     string
		handler  func(w http.ResponseWriter, r *http.Request)
		refused  bool // the server is gone before the call
		wrap     func(http.RoundTripper) http.RoundTripper
		call     func(*cloudcall.Client) error
		code     int
		attempts int
		hits     int
		key      string
		is       error // in the chain
		inErrMsg string
	}{
		{name: "own cancel, a read", handler: hang, wrap: ownCancel, call: read, code: cloudcall.CodeTimeout, attempts: 1, hits: 1, is: context.Canceled,
			inErrMsg: "openapi.logistics.getQuota:fail the HTTP client (Options.HTTPClient) canceled the request on its own before an answer; not sent again, it may have arrived: context canceled"},
		{name: "own cancel, a charge", handler: hang, wrap: ownCancel, call: charge, code: cloudcall.CodeOutcomeUnknown, attempts: 1, hits: 1, key: "k-tr", is: context.Canceled,
			inErrMsg: "top.ascp.launchExtraCharge:fail outcome unknown — the HTTP client (Options.HTTPClient) canceled the request on its own after the charge may have been sent (context canceled); call again with the same input and key:"},
		{name: "own error after sending, a read", handler: answer, wrap: ownError, call: read, code: cloudcall.CodeUnreachable, attempts: 1, hits: 1,
			inErrMsg: "openapi.logistics.getQuota:fail the HTTP client (Options.HTTPClient) failed with: gateway gave up; not sent again, it may have arrived"},
		{name: "own error after sending, a charge", handler: answer, wrap: ownError, call: charge, code: cloudcall.CodeOutcomeUnknown, attempts: 1, hits: 1, key: "k-tr",
			inErrMsg: "top.ascp.launchExtraCharge:fail outcome unknown — the HTTP client (Options.HTTPClient) failed with: gateway gave up, after the charge may have been sent; call again with the same input and key:"},
		{name: "reset by the server every time, a read", handler: reset, call: read, code: cloudcall.CodeUnreachable, attempts: 3, hits: 3, is: syscall.ECONNRESET,
			inErrMsg: " failed before an answer: "},
		{name: "reset by the server, a charge", handler: reset, call: charge, code: cloudcall.CodeOutcomeUnknown, attempts: 1, hits: 1, key: "k-tr", is: syscall.ECONNRESET,
			inErrMsg: "top.ascp.launchExtraCharge:fail outcome unknown — the connection failed before an answer ("},
		{name: "closed by the server every time, a read", handler: func(w http.ResponseWriter, r *http.Request) { drop(w) }, call: read, code: cloudcall.CodeUnreachable, attempts: 3, hits: 3,
			inErrMsg: " failed before an answer: "},
		{name: "refused, a read", refused: true, call: read, code: cloudcall.CodeUnreachable, attempts: 3, hits: 0, is: syscall.ECONNREFUSED,
			inErrMsg: "openapi.logistics.getQuota:fail could not reach "},
		{name: "refused, a charge", refused: true, call: charge, code: cloudcall.CodeUnreachable, attempts: 1, hits: 0, key: "k-tr", is: syscall.ECONNREFUSED,
			inErrMsg: "top.ascp.launchExtraCharge:fail could not reach "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := fake(t, func(w http.ResponseWriter, r *http.Request, k int) { tt.handler(w, r) })
			if tt.refused {
				srv.Close()
			}
			c := client(t, srv.URL, secret, func(o *cloudcall.Options) {
				var tr http.RoundTripper = &http.Transport{}
				if tt.wrap != nil {
					tr = tt.wrap(tr)
				}
				o.HTTPClient = &http.Client{Transport: tr}
			})
			err := tt.call(c)
			ce := asError(t, err)
			require.Equal(t, tt.code, ce.ErrCode, ce.ErrMsg)
			require.Equal(t, tt.attempts, ce.Attempts, ce.ErrMsg)
			require.Equal(t, tt.hits, n(), "requests the server saw")
			require.Equal(t, 0, ce.Status)
			require.Equal(t, tt.key, ce.IdempotencyKey)
			require.Contains(t, ce.ErrMsg, tt.inErrMsg)
			if tt.is != nil {
				require.ErrorIs(t, err, tt.is)
			}
		})
	}
}

// A TLS handshake that fails sends nothing: the request is written only
// after it. A charge read -1304 "may have been sent" for a certificate it
// never got past, and asked to reconcile with TOP (a re-tester).
func TestAFailedTLSHandshakeSentNothing(t *testing.T) {
	ctx := context.Background()
	var hits atomic.Int32
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(tlsSrv.Close)
	plain, _ := fake(t, func(w http.ResponseWriter, r *http.Request, k int) { hits.Add(1) })
	for _, base := range []string{
		tlsSrv.URL, // a certificate the client does not trust
		"https://" + strings.TrimPrefix(plain.URL, "http://"), // HTTPS to a plain-HTTP server
	} {
		c := client(t, base, secret)
		_, err := c.TOP.ASCP.LaunchExtraCharge(ctx, cloudcall.LaunchExtraChargeInput{
			OmsLaunchExtraChargeParameter: cloudcall.LaunchExtraChargeInputOmsLaunchExtraChargeParameter{WdsCoordinationOrderID: "B", Price: 1, Type: 1}},
			cloudcall.WithIdempotencyKey("k-tls"))
		ce := asError(t, err)
		require.Equal(t, cloudcall.CodeUnreachable, ce.ErrCode, ce.ErrMsg)
		require.Contains(t, ce.ErrMsg, "top.ascp.launchExtraCharge:fail could not reach ", base)
		require.Equal(t, 1, ce.Attempts)
		require.Equal(t, "k-tls", ce.IdempotencyKey)
	}
	require.Zero(t, hits.Load(), "nothing reached a server")
}
