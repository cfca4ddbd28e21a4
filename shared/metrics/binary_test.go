package metrics_test

import (
	"encoding/json"
	"flag"
	"github.com/cloudcall/cloudcall/shared/syncbuf"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
)

var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(emulator.WithBinaries([]string{"./functions/logistics-get-quota"}, func(b map[string]string) int {
		binary = b["logistics-get-quota"]
		return m.Run()
	}))
}

type lockedBuffer = syncbuf.Buffer

// runFunction starts the emulator on one platform with the real
// logistics-get-quota binary against the WeChat sandbox, sends the calls
// through the platform's Invoke front door, and returns everything the
// function printed.
func runFunction(t *testing.T, p runtimeapi.Platform, calls []string) []string {
	t.Helper()
	sbx := wechatsbx.New(wechatsbx.Options{})
	up := httptest.NewServer(sbx.Handler())
	t.Cleanup(up.Close)
	env := sbx.Env(up.URL)
	env["CLOUDCALL_ALLOW_ANONYMOUS"] = "true"
	env["AWS_LAMBDA_FUNCTION_NAME"] = "logistics-get-quota"
	env["FC_FUNCTION_NAME"] = "logistics-get-quota"
	logs := &lockedBuffer{}
	e := emulator.New(emulator.Options{Platform: p, Functions: []emulator.FunctionConfig{{
		Name: "logistics-get-quota", Binary: binary, Env: env, Timeout: 10 * time.Second, MemoryMB: 128, MaxInstances: 1, Stdout: logs,
	}}})
	front := httptest.NewServer(e.Handler())
	t.Cleanup(func() { front.Close(); e.Close() })
	door := front.URL + "/2015-03-31/functions/logistics-get-quota/invocations"
	if p == runtimeapi.FC {
		door = front.URL + "/2023-03-30/functions/logistics-get-quota/invocations"
	}
	for _, c := range calls {
		resp, err := http.Post(door, "application/json", strings.NewReader(c))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	e.Close() // flush: the instance has written everything once it is gone
	return logs.Lines()
}

var calls = []string{
	`{"deliveryId":"YTO","bizId":"xyz"}`,            // ok, cold
	`{"deliveryId":"YTO","bizId":"xyz"}`,            // ok, warm
	`{"deliveryId":"YTO","bizId":"wrong-password"}`, // WeChat 9300531
	`{"deliveryId":"YTO"}`,                          // -1001
}

type expect struct {
	class            string
	code, errs, cold int
}

var expected = []expect{{"ok", 0, 0, 1}, {"ok", 0, 0, 0}, {"vendor", 9300531, 1, 0}, {"input", -1001, 1, 0}}

// TestEMFFromTheRealBinaryOnLambda: under the emulator's Lambda platform the
// deployed binary writes exactly one EMF record per invocation, each meeting
// the specification, with the function, class, cold start and latency of
// that invocation; the token was fetched once (one "token fetched" line).
func TestEMFFromTheRealBinaryOnLambda(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the function")
	}
	var records []map[string]any
	tokenLines := 0
	for _, l := range runFunction(t, runtimeapi.Lambda, calls) {
		if strings.Contains(l, `"msg":"token fetched"`) {
			tokenLines++
		}
		i := strings.Index(l, `{"_aws"`)
		if i < 0 {
			continue
		}
		root, err := checkEMF([]byte(l[i:]))
		require.NoError(t, err, l)
		records = append(records, root)
	}
	require.Len(t, records, len(calls), "one EMF record per invocation")
	require.Equal(t, 1, tokenLines, "one token fetch for four calls")
	for i, r := range records {
		w := expected[i]
		dir := r["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
		require.Equal(t, "cloudcall", dir["Namespace"])
		require.Equal(t, "logistics-get-quota", r["function"])
		require.Equal(t, "openapi.logistics.getQuota", r["api"])
		require.Equal(t, w.class, r["errClass"], "call %d", i)
		require.Equal(t, json.Number(itoa(w.code)), r["errCode"], "call %d", i)
		require.Equal(t, json.Number(itoa(w.errs)), r["errors"], "call %d", i)
		require.Equal(t, json.Number("0"), r["faults"], "call %d", i)
		require.Equal(t, json.Number(itoa(w.cold)), r["coldStart"], "call %d", i)
		require.Equal(t, json.Number("1"), r["invocations"])
		lat, err := r["latencyMs"].(json.Number).Float64()
		require.NoError(t, err)
		require.Greater(t, lat, 0.0)
		require.NotEmpty(t, r["requestId"])
	}
}

// TestFCLogLineCarriesTheSameFields: on FC there is no EMF record; the JSON
// invocation line carries the same fields for SLS.
func TestFCLogLineCarriesTheSameFields(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the function")
	}
	var inv []map[string]any
	for _, l := range runFunction(t, runtimeapi.FC, calls) {
		require.NotContains(t, l, `"_aws"`, "no EMF off Lambda")
		i := strings.Index(l, `{`)
		if i < 0 || !strings.Contains(l, `"msg":"invocation"`) {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l[i:]), &m), l)
		inv = append(inv, m)
	}
	require.Len(t, inv, len(calls))
	for i, m := range inv {
		w := expected[i]
		require.Equal(t, "logistics-get-quota", m["function"])
		require.Equal(t, "openapi.logistics.getQuota", m["api"])
		require.Equal(t, w.class, m["errClass"], "call %d", i)
		require.Equal(t, float64(w.code), m["errCode"], "call %d", i)
		require.Equal(t, w.cold == 1, m["coldStart"], "call %d", i)
		require.Contains(t, m, "latencyMs")
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
