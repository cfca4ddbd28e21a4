package emulator_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/openapi"
)

var fixtures = map[string]string{}

func TestMain(m *testing.M) {
	pkgs := []string{"./shared/emulator/testdata/hellofc", "./shared/emulator/testdata/hellolambda", "./shared/emulator/testdata/broken", "./shared/emulator/testdata/quitter"}
	os.Exit(emulator.WithBinaries(pkgs, func(b map[string]string) int {
		fixtures = b
		return m.Run()
	}))
}

func newEmu(t *testing.T, p runtimeapi.Platform, maxInst int) (*emulator.Emulator, *httptest.Server) {
	t.Helper()
	bin := fixtures["hellofc"]
	if p == runtimeapi.Lambda {
		bin = fixtures["hellolambda"]
	}
	e := emulator.New(emulator.Options{Platform: p, Functions: []emulator.FunctionConfig{
		{Name: "hello", Binary: bin, Timeout: 2 * time.Second, MemoryMB: 128, MaxInstances: maxInst, HTTPMethods: []string{"POST", "GET"}},
		{Name: "broken", Binary: fixtures["broken"], Timeout: 2 * time.Second},
	}})
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(func() { srv.Close(); e.Close() })
	return e, srv
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), string(b))
	return m
}

func post(t *testing.T, url string, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func platforms() []runtimeapi.Platform {
	return []runtimeapi.Platform{runtimeapi.FC, runtimeapi.Lambda}
}

func TestDirectAndFrontDoors(t *testing.T) {
	for _, p := range platforms() {
		t.Run(string(p), func(t *testing.T) {
			e, srv := newEmu(t, p, 2)
			res, rep, err := e.Invoke(context.Background(), "hello", []byte(`{}`))
			require.NoError(t, err)
			require.Equal(t, string(p), decode(t, res.Body)["hello"])
			require.True(t, rep.Cold)
			require.Equal(t, rep.RequestID, decode(t, res.Body)["requestId"], "the binary sees the emulator's request id")
			_, rep, err = e.Invoke(context.Background(), "hello", nil)
			require.NoError(t, err)
			require.False(t, rep.Cold, "the second call is warm")

			// Lambda Invoke API.
			resp, body := post(t, srv.URL+"/2015-03-31/functions/hello/invocations", `{}`, nil)
			require.Equal(t, 200, resp.StatusCode)
			require.Empty(t, resp.Header.Get("X-Amz-Function-Error"))
			require.Equal(t, string(p), decode(t, body)["hello"])
			resp, _ = post(t, srv.URL+"/2015-03-31/functions/hello/invocations", `{}`, map[string]string{"X-Amz-Invocation-Type": "Event"})
			require.Equal(t, 202, resp.StatusCode)

			// FC InvokeFunction API.
			resp, body = post(t, srv.URL+"/2023-03-30/functions/hello/invocations", `{}`, nil)
			require.Equal(t, 200, resp.StatusCode)
			require.Equal(t, string(p), decode(t, body)["hello"])
			require.NotEmpty(t, resp.Header.Get("x-fc-request-id"))

			// HTTP trigger: the platform's event goes in, its response comes
			// out. FC's trigger passes sub-paths on; template.yaml's HttpApi
			// route is the exact path.
			path := "/hello/sub/path"
			if p == runtimeapi.Lambda {
				path = "/hello"
			}
			resp, body = post(t, srv.URL+path+"?x=1", `{"ping":1}`, map[string]string{"Content-Type": "application/json"})
			require.Equal(t, 201, resp.StatusCode)
			require.Equal(t, string(p), resp.Header.Get("X-Hello"))
			m := decode(t, body)
			require.Equal(t, path, m["path"])
			require.Equal(t, `{"ping":1}`, m["echo"])
		})
	}
}

func TestPanic(t *testing.T) {
	for _, p := range platforms() {
		t.Run(string(p), func(t *testing.T) {
			e, srv := newEmu(t, p, 1)
			_, _, err := e.Invoke(context.Background(), "hello", []byte(`{}`))
			require.NoError(t, err)
			resp, body := post(t, srv.URL+"/2015-03-31/functions/hello/invocations", `{"action":"panic"}`, nil)
			require.Equal(t, 200, resp.StatusCode)
			require.Equal(t, "Unhandled", resp.Header.Get("X-Amz-Function-Error"))
			require.Contains(t, string(body), "hello panics")
			pool, _ := e.Pool("hello")
			// Give a Lambda binary the moment it takes to exit after posting.
			require.Eventually(t, func() bool {
				_, rep, err := e.Invoke(context.Background(), "hello", []byte(`{}`))
				require.NoError(t, err)
				if p == runtimeapi.FC {
					require.False(t, rep.Cold, "an FC instance lives on after a panic")
					return true
				}
				return rep.Cold
			}, 5*time.Second, 50*time.Millisecond)
			if p == runtimeapi.FC {
				require.Equal(t, 1, pool.Starts())
			} else {
				require.Equal(t, 2, pool.Starts(), "the Lambda instance was replaced: the next call is a cold start")
			}
		})
	}
}

func TestTimeoutRecyclesInstance(t *testing.T) {
	for _, p := range platforms() {
		t.Run(string(p), func(t *testing.T) {
			e, srv := newEmu(t, p, 1)
			resp, body := post(t, srv.URL+"/2015-03-31/functions/hello/invocations", `{"action":"sleep","ms":5000}`, nil)
			require.Equal(t, 200, resp.StatusCode)
			require.Equal(t, "Unhandled", resp.Header.Get("X-Amz-Function-Error"))
			require.Contains(t, string(body), "task timed out after 2.00 seconds")
			_, rep, err := e.Invoke(context.Background(), "hello", []byte(`{}`))
			require.NoError(t, err)
			require.True(t, rep.Cold, "the overrun instance was recycled")
		})
	}
}

func TestScaleOut(t *testing.T) {
	e, _ := newEmu(t, runtimeapi.Lambda, 4)
	var wg sync.WaitGroup
	pids := sync.Map{}
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, _, err := e.Invoke(context.Background(), "hello", []byte(`{"action":"sleep","ms":200}`))
			if err == nil {
				var m map[string]any
				_ = json.Unmarshal(res.Body, &m)
				pids.Store(m["pid"], true)
			}
		}()
	}
	wg.Wait()
	n := 0
	pids.Range(func(any, any) bool { n++; return true })
	require.Greater(t, n, 1, "16 parallel calls ran on more than one instance")
	require.LessOrEqual(t, n, 4, "never more than the instance limit")
}

func TestErrorsAtTheFrontDoor(t *testing.T) {
	_, srv := newEmu(t, runtimeapi.Lambda, 1)
	resp, body := post(t, srv.URL+"/2015-03-31/functions/nope/invocations", `{}`, nil)
	require.Equal(t, 404, resp.StatusCode)
	require.Contains(t, string(body), "known functions: broken, hello")
	require.Equal(t, "ResourceNotFoundException", resp.Header.Get("x-amzn-ErrorType"))

	resp, _ = post(t, srv.URL+"/2015-03-31/functions/hello/invocations", `{"not json`, nil)
	require.Equal(t, 400, resp.StatusCode)

	big := `{"x":"` + strings.Repeat("a", emulator.LambdaMaxPayload) + `"}`
	resp, _ = post(t, srv.URL+"/2015-03-31/functions/hello/invocations", big, nil)
	require.Equal(t, 413, resp.StatusCode)
}

func TestBinaryFailingAtStart(t *testing.T) {
	e, _ := newEmu(t, runtimeapi.FC, 1)
	_, _, err := e.Invoke(context.Background(), "broken", []byte(`{}`))
	var se *emulator.StartError
	require.ErrorAs(t, err, &se)
	require.Contains(t, se.Error(), "WECHAT_APPID is not set (fixture)", "the error carries the binary's stderr tail")
}

func TestTimerEvents(t *testing.T) {
	fc := emulator.New(emulator.Options{Platform: runtimeapi.FC})
	require.Contains(t, string(fc.TimerEvent("t1", `{"a":1}`)), `"triggerName":"t1"`)
	aws := emulator.New(emulator.Options{Platform: runtimeapi.Lambda})
	require.JSONEq(t, `{"source":"cloudcall.schedule","schedule":"t1","payload":{"a":1}}`, string(aws.TimerEvent("t1", `{"a":1}`)))
}

func TestCron(t *testing.T) {
	c, err := emulator.ParseCron("0 * * * *", "Asia/Shanghai")
	require.NoError(t, err)
	from := time.Date(2026, 1, 1, 10, 30, 0, 0, time.UTC)
	require.Equal(t, time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC), c.Next(from).UTC())
	c, err = emulator.ParseCron("*/15 9-17 * * 1-5", "UTC")
	require.NoError(t, err)
	sat := time.Date(2026, 1, 3, 12, 0, 0, 0, time.UTC) // a Saturday
	require.Equal(t, time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC), c.Next(sat))
	_, err = emulator.ParseCron("61 * * * *", "UTC")
	require.Error(t, err)
}

// GET /openapi.json is the registry's OpenAPI document, not a function.
func TestServesOpenAPI(t *testing.T) {
	_, srv := newEmu(t, runtimeapi.FC, 1)
	resp, err := http.Get(srv.URL + "/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, _ := io.ReadAll(resp.Body)
	want, err := openapi.Document()
	require.NoError(t, err)
	// The committed document names make run's default front door; served,
	// it names the emulator that answered.
	require.Equal(t, strings.Replace(string(want), `"http://127.0.0.1:9000"`, `"`+srv.URL+`"`, 1), string(b))
}
