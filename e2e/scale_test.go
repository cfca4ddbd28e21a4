// Package e2e runs the real function binaries as several instances sharing
// one Redis and the vendor sandboxes: what a busy deployment looks like on
// FC or Lambda.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/sandbox/camssbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/ck1sbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
	"github.com/cloudcall/cloudcall/shared/store/redisstore/redistest"
)

var bins = map[string]string{}

func TestMain(m *testing.M) {
	var pkgs []string
	for _, fn := range []string{"logistics-get-quota", "ck1-pricing-inbound-box", "cams-query-chatapp-bind-waba", "top-launch-extra-charge", "quota-alert"} {
		pkgs = append(pkgs, "./functions/"+fn)
	}
	os.Exit(emulator.WithBinaries(pkgs, func(b map[string]string) int {
		bins = b
		return m.Run()
	}))
}

// fleet is n instances of one function sharing env (and so one Redis).
type fleet struct {
	t    *testing.T
	fn   string
	env  map[string]string
	inst []*emulator.Instance
}

func startFleet(t *testing.T, fn string, n int, env map[string]string) *fleet {
	f := &fleet{t: t, fn: fn, env: env}
	for i := 0; i < n; i++ {
		f.inst = append(f.inst, f.start())
	}
	return f
}

func (f *fleet) start() *emulator.Instance {
	in, err := emulator.StartInstance(emulator.InstanceConfig{Binary: bins[f.fn], Platform: runtimeapi.FC, Env: f.env})
	require.NoError(f.t, err)
	f.t.Cleanup(in.Stop)
	return in
}

func (f *fleet) invoke(i int, payload string) map[string]any {
	res, err := f.inst[i%len(f.inst)].Invoke(context.Background(), runtimeapi.Invocation{Payload: []byte(payload), Timeout: 20 * time.Second})
	require.NoError(f.t, err)
	var m map[string]any
	require.NoError(f.t, json.Unmarshal(res.Body, &m), string(res.Body))
	return m
}

// run sends total invocations across the fleet with workers in parallel
// and returns the errCodes seen.
func (f *fleet) run(total, workers int, payload func(i int) string) map[float64]int {
	var next atomic.Int64
	var mu sync.Mutex
	codes := map[float64]int{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				m := f.invoke(i, payload(i))
				if m["errCode"] != 0.0 {
					f.t.Logf("%s call %d: %v", f.fn, i, m)
				}
				mu.Lock()
				codes[m["errCode"].(float64)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return codes
}

func redisEnv(t *testing.T, url string) map[string]string {
	return map[string]string{"CLOUDCALL_STORE": url, "CLOUDCALL_STORE_PREFIX": redistest.Keyspace(t, url)}
}

// assumePersistence lets the charge keep records on the shared test Redis,
// which has no AOF: these tests are about instances and outages; the
// persistence check has its own tests (shared/idempotency/redisrecords,
// shared/top) on redis-servers they start themselves.
var assumePersistence = map[string]string{"CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE": "assume"}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestFourQuotaProcessesFetchOneToken(t *testing.T) {
	url := redistest.URL(t)
	sbx := wechatsbx.New(wechatsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	f := startFleet(t, "logistics-get-quota", 4, merge(sbx.Env(srv.URL), redisEnv(t, url)))
	codes := f.run(2000, 16, func(int) string { return `{"deliveryId":"YTO","bizId":"xyz"}` })
	require.Equal(t, map[float64]int{0: 2000}, codes)
	require.Equal(t, 2000, sbx.Calls("quota"))
	require.Equal(t, 1, sbx.Calls("token"), "one token fetch for four instances and 2,000 calls")
}

func TestFourCK1ProcessesRefreshOnceAndSurviveARestart(t *testing.T) {
	url := redistest.URL(t)
	sbx := ck1sbx.New(ck1sbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	f := startFleet(t, "ck1-pricing-inbound-box", 4, merge(sbx.Env(srv.URL), redisEnv(t, url)))
	quote := func(int) string {
		return `{"warehouseId":"US","boxes":[{"weight":1200,"length":30,"width":20,"height":15,"quantity":2}]}`
	}
	require.Equal(t, map[float64]int{0: 40}, f.run(40, 8, quote))
	require.Equal(t, 1, sbx.Calls("refresh"), "the first token: one refresh for the fleet")

	sbx.ExpireAccessTokens()
	require.Equal(t, map[float64]int{0: 80}, f.run(80, 16, quote))
	require.Equal(t, 2, sbx.Calls("refresh"), "the expired token: one more refresh for the fleet")

	// A new instance starts with the original refresh token in its
	// environment — consumed long ago — and works from the rotated pair in Redis.
	f.inst[0].Stop()
	f.inst[0] = f.start()
	sbx.ExpireAccessTokens()
	m := f.invoke(0, quote(0))
	require.Equal(t, 0.0, m["errCode"], m)
	require.Equal(t, 3, sbx.Calls("refresh"))
	require.Equal(t, map[float64]int{0: 20}, f.run(20, 4, quote))
	require.Equal(t, 3, sbx.Calls("refresh"))
}

func TestFourCAMSProcessesStayUnderTenPerSecond(t *testing.T) {
	url := redistest.URL(t)
	sbx := camssbx.New(camssbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	f := startFleet(t, "cams-query-chatapp-bind-waba", 4, merge(sbx.Env(srv.URL), redisEnv(t, url)))
	codes := f.run(60, 16, func(i int) string { return fmt.Sprintf(`{"custSpaceId":"space-%d"}`, i) })
	require.Equal(t, map[float64]int{0: 60}, codes)
	require.LessOrEqual(t, sbx.MaxPerSecond(camssbx.DemoAccessKeyID), 10)
	require.Equal(t, 0, sbx.Calls("error:System.LimitControl"))
}

func TestSameKeyOnFourTOPProcessesChargesOnce(t *testing.T) {
	url := redistest.URL(t)
	sbx := topsbx.New(topsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	f := startFleet(t, "top-launch-extra-charge", 4, merge(sbx.Env(srv.URL), redisEnv(t, url), assumePersistence))
	body := `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-FLEET","price":12345,"type":2},"idempotencyKey":"fleet-1"}`
	codes := f.run(4, 4, func(int) string { return body })
	require.Len(t, sbx.Charges("BFC-FLEET"), 1, "one charge")
	require.Equal(t, 4, codes[0]+codes[-1401], "the others got the first result or 409: %v", codes)
	require.GreaterOrEqual(t, codes[0], 1)
}

func TestRedisOutageMidRun(t *testing.T) {
	url := redistest.URL(t)
	target, db := redistest.HostPort(url)
	proxy := redistest.NewProxy(t, target)
	store := merge(redisEnv(t, url), map[string]string{"CLOUDCALL_STORE": "redis://" + proxy.Addr() + db})

	wsbx := wechatsbx.New(wechatsbx.Options{})
	wsrv := httptest.NewServer(wsbx.Handler())
	defer wsrv.Close()
	quota := startFleet(t, "logistics-get-quota", 4, merge(wsbx.Env(wsrv.URL), store))
	tsbx := topsbx.New(topsbx.Options{})
	tsrv := httptest.NewServer(tsbx.Handler())
	defer tsrv.Close()
	charge := startFleet(t, "top-launch-extra-charge", 1, merge(tsbx.Env(tsrv.URL), store, assumePersistence))
	ask := func(int) string { return `{"deliveryId":"YTO","bizId":"xyz"}` }
	pay := func(k string) string {
		return `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-OUT","price":100,"type":1},"idempotencyKey":"` + k + `"}`
	}

	require.Equal(t, map[float64]int{0: 40}, quota.run(40, 8, ask))
	require.Equal(t, 1, wsbx.Calls("token"))
	require.Equal(t, 0.0, charge.invoke(0, pay("before"))["errCode"])

	proxy.Cut()
	require.Equal(t, map[float64]int{0: 200}, quota.run(200, 8, ask), "reads keep answering without Redis")
	require.LessOrEqual(t, wsbx.Calls("token"), 1+4, "at most one token fetch per process")
	m := charge.invoke(0, pay("during"))
	require.Equal(t, -1501.0, m["errCode"], m)
	require.Contains(t, m["errMsg"], "did not run")
	require.Equal(t, 1.0, m["retryAfter"], "a -1501 says when to retry, as docs/envelope.md promises")
	require.Len(t, tsbx.Charges("BFC-OUT"), 1, "no charge without its idempotency record")

	proxy.Restore()
	require.Eventually(t, func() bool { return charge.invoke(0, pay("after"))["errCode"] == 0.0 }, 10*time.Second, 300*time.Millisecond,
		"the write works again without a restart once Redis is back")
	require.Len(t, tsbx.Charges("BFC-OUT"), 2)
	require.Equal(t, map[float64]int{0: 40}, quota.run(40, 8, ask))
}
