package emulator_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/linewriter"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/runtime"
)

// descriptorEmu has one function with a POST trigger, one with a timer and
// no trigger, as the registry describes them.
func descriptorEmu(t *testing.T, p runtimeapi.Platform, bodyTimeout time.Duration) (*emulator.Emulator, *httptest.Server) {
	t.Helper()
	bin := fixtures["hellofc"]
	if p == runtimeapi.Lambda {
		bin = fixtures["hellolambda"]
	}
	e := emulator.New(emulator.Options{Platform: p, BodyTimeout: bodyTimeout,
		Functions: []emulator.FunctionConfig{
			{Name: "hello", Binary: bin, Timeout: 3 * time.Second, MemoryMB: 128, MaxInstances: 1, HTTPMethods: []string{"POST"}},
			{Name: "ticker", Binary: bin, Timeout: 3 * time.Second, MaxInstances: 1, NoHTTPTrigger: true},
		},
		Timers: []emulator.Timer{{Function: "ticker", Name: "tick", Payload: `{}`}},
	})
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(func() { srv.Close(); e.Close() })
	return e, srv
}

func do(t *testing.T, method, u, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestLambdaWireFormat(t *testing.T) {
	_, srv := descriptorEmu(t, runtimeapi.Lambda, 0)
	inv := srv.URL + "/2015-03-31/functions/"
	cases := []struct {
		name, fn, body string
		hdr            map[string]string
		status         int
		errType        string
		msg            string
	}{
		{"unknown function", "nope", `{}`, nil, 404, "ResourceNotFoundException", "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope"},
		{"unknown ARN", "arn:aws:lambda:us-east-1:123456789012:function:nope", `{}`, nil, 404, "ResourceNotFoundException", "function:nope"},
		{"unknown qualifier", "hello:7", `{}`, nil, 404, "ResourceNotFoundException", "function:hello:7 (known functions"},
		{"a mistyped name", "helo", `{}`, nil, 404, "ResourceNotFoundException", `function:helo (did you mean "hello"?) (known functions: hello, ticker)`},
		{"not JSON", "hello", `{"a":`, nil, 400, "InvalidRequestContentException", "Could not parse request body into json"},
		{"too large", "hello", `"` + strings.Repeat("a", emulator.LambdaMaxPayload) + `"`, nil, 413, "RequestTooLargeException", "Request must be smaller than 6291456 bytes"},
		{"event too large", "hello", `"` + strings.Repeat("a", emulator.LambdaMaxEventPayload) + `"`, map[string]string{"X-Amz-Invocation-Type": "Event"}, 413, "RequestTooLargeException", "smaller than 1048576 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, "POST", inv+url.PathEscape(tc.fn)+"/invocations", tc.body, tc.hdr)
			require.Equal(t, tc.status, resp.StatusCode)
			require.Equal(t, tc.errType, resp.Header.Get("x-amzn-ErrorType"))
			require.NotEmpty(t, resp.Header.Get("x-amzn-RequestId"))
			var m map[string]string
			require.NoError(t, json.Unmarshal(body, &m))
			require.Equal(t, "User", m["Type"])
			require.Contains(t, m["message"], tc.msg)
		})
	}
	for typ, status := range map[string]int{"DryRun": 204, "Event": 202, "Bogus": 400} {
		resp, _ := do(t, "POST", inv+"hello/invocations", `{}`, map[string]string{"X-Amz-Invocation-Type": typ})
		require.Equal(t, status, resp.StatusCode, typ)
		require.NotEmpty(t, resp.Header.Get("x-amzn-RequestId"), typ)
	}
	for _, fn := range []string{"hello", "hello:$LATEST", "123456789012:function:hello", "arn:aws:lambda:us-east-1:123456789012:function:hello"} {
		t.Run("resolves "+fn, func(t *testing.T) {
			resp, body := do(t, "POST", inv+url.PathEscape(fn)+"/invocations", `{}`, map[string]string{"X-Amz-Log-Type": "Tail"})
			require.Equal(t, 200, resp.StatusCode, string(body))
			require.Equal(t, "$LATEST", resp.Header.Get("X-Amz-Executed-Version"))
			id := resp.Header.Get("x-amzn-RequestId")
			require.NotEmpty(t, id)
			tail, err := base64.StdEncoding.DecodeString(resp.Header.Get("X-Amz-Log-Result"))
			require.NoError(t, err)
			require.LessOrEqual(t, len(tail), 4096)
			require.Contains(t, string(tail), "START RequestId: "+id+" Version: $LATEST")
			require.Contains(t, string(tail), "REPORT RequestId: "+id)
			require.Contains(t, string(tail), "hello handled "+id+"\n", "the function's own line of this invocation")
			require.Equal(t, id, decode(t, body)["requestId"], "the answer's request id is the one the function saw")
		})
	}
}

func TestFCWireFormat(t *testing.T) {
	_, srv := descriptorEmu(t, runtimeapi.FC, 0)
	resp, body := do(t, "POST", srv.URL+"/2023-03-30/functions/nope/invocations", `{}`, nil)
	require.Equal(t, 404, resp.StatusCode)
	var m map[string]string
	require.NoError(t, json.Unmarshal(body, &m))
	require.Equal(t, "FunctionNotFound", m["Code"])
	require.Contains(t, m["Message"], "function 'nope' does not exist (known functions")
	// A timer of no function is that, not a missing timer.
	_, body = do(t, "POST", srv.URL+"/__timers/nope", `{}`, nil)
	require.Contains(t, string(body), `"Code":"FunctionNotFound"`)
	_, body = do(t, "POST", srv.URL+"/__timers/hello", `{}`, nil)
	require.Contains(t, string(body), `"Code":"TimerNotFound"`)
	_, body = do(t, "POST", srv.URL+"/2023-03-30/functions/tikcer/invocations", `{}`, nil)
	require.Contains(t, string(body), `function 'tikcer' does not exist (did you mean \"ticker\"?)`)
	require.Equal(t, resp.Header.Get("x-fc-request-id"), m["RequestId"])
	require.NotEmpty(t, m["RequestId"])

	resp, body = do(t, "POST", srv.URL+"/2023-03-30/functions/hello/invocations", `{}`, map[string]string{"x-fc-log-type": "Tail"})
	require.Equal(t, 200, resp.StatusCode, string(body))
	id := resp.Header.Get("x-fc-request-id")
	require.Equal(t, id, decode(t, body)["requestId"])
	tail, err := base64.StdEncoding.DecodeString(resp.Header.Get("x-fc-log-result"))
	require.NoError(t, err)
	require.Contains(t, string(tail), "START RequestId: "+id)
	require.Contains(t, string(tail), "hello handled "+id+"\n", "the function's own line of this invocation")

	resp, body = do(t, "POST", srv.URL+"/2023-03-30/functions/hello/invocations", strings.Repeat("a", emulator.FCMaxAsyncPayload+1), map[string]string{"x-fc-invocation-type": "Async"})
	require.Equal(t, 413, resp.StatusCode)
	require.Contains(t, string(body), `"Code":"PayloadTooLarge"`)
}

func TestDescriptorFaithful(t *testing.T) {
	for _, p := range platforms() {
		t.Run(string(p), func(t *testing.T) {
			idHeader := "x-fc-request-id"
			if p == runtimeapi.Lambda {
				idHeader = "Apigw-Requestid"
			}
			emu, srv := descriptorEmu(t, p, 0)
			cases := []struct {
				name, method, path string
				status             int
				allow, contains    string
			}{
				{"registry method", "POST", "/hello", 201, "", `"path":"/hello"`},
				{"other method", "GET", "/hello", 405, "POST", "hello takes POST"},
				{"PUT", "PUT", "/hello", 405, "POST", "hello takes POST"},
				{"no trigger in the descriptors", "POST", "/ticker", 404, "", "has no HTTP trigger"},
				{"unknown function", "POST", "/nope", 404, "", `function \"nope\" not found; known functions: hello, ticker`},
				{"a mistyped function", "POST", "/Hello", 404, "", `function \"Hello\" not found (did you mean \"hello\"?); known`},
				{"timer of a function without one", "POST", "/__timers/hello", 404, "", `function \"hello\" has no timer`},
				{"timer of no function", "POST", "/__timers/nope", 404, "", `function \"nope\" not found`},
				{"a call to the root", "POST", "/", 405, "GET", `POST / calls no function: call POST /NAME, where NAME is one of hello (GET / lists every function)`},
				{"timer", "POST", "/__timers/ticker", 200, "", `"hello"`},
			}
			// A method the trigger does not take gets the function's own
			// 405 (runtime.HTTPHandler's body) on both platforms, and no
			// instance starts: nothing ran.
			for _, m := range []string{"GET", "PUT", "DELETE", "PATCH"} {
				resp, body := do(t, m, srv.URL+"/hello", `{}`, nil)
				require.Equal(t, 405, resp.StatusCode, m)
				require.Equal(t, "POST", resp.Header.Get("Allow"), m)
				require.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"), m)
				id := resp.Header.Get(idHeader)
				require.Equal(t, id, resp.Header.Get("X-Request-Id"), m)
				require.Equal(t, `{"Code":"MethodNotAllowed","Message":"hello takes POST","RequestId":"`+id+`"}`, string(body), m)
			}
			require.Empty(t, emu.Instances("hello"), "a refused method starts no instance")
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					resp, body := do(t, tc.method, srv.URL+tc.path, `{}`, nil)
					require.Equal(t, tc.status, resp.StatusCode, string(body))
					require.Equal(t, tc.allow, resp.Header.Get("Allow"))
					require.Contains(t, string(body), tc.contains)
					require.NotEmpty(t, resp.Header.Get(idHeader), "every answer carries the platform's request id")
				})
			}
		})
	}
}

// TestRepeatedQueryNames: FC joins repeated names with commas in arrival
// order, so what a caller signed over ?a=1&a=0 is what the function sees.
func TestRepeatedQueryNames(t *testing.T) {
	e := emulator.New(emulator.Options{Platform: runtimeapi.FC})
	r := httptest.NewRequest("POST", "/hello?a=1&a=0&b=x%2Cy&c=", nil)
	var ev struct {
		Query map[string]string `json:"queryParameters"`
	}
	require.NoError(t, json.Unmarshal(e.HTTPEvent(r, nil), &ev))
	require.Equal(t, map[string]string{"a": "1,0", "b": "x,y", "c": ""}, ev.Query)

	_, srv := descriptorEmu(t, runtimeapi.FC, 0)
	resp, body := do(t, "POST", srv.URL+"/hello?a=1;b=2", `{}`, nil)
	require.Equal(t, 400, resp.StatusCode, "a query FC cannot parse is refused, not passed on in part")
	require.Contains(t, string(body), `"Code":"InvalidArgument"`)
}

// TestBodyThatStopsArriving: a caller that sends half a body is answered
// (408) when the body timeout passes, not held forever.
func TestBodyThatStopsArriving(t *testing.T) {
	for _, p := range platforms() {
		t.Run(string(p), func(t *testing.T) {
			_, srv := descriptorEmu(t, p, 200*time.Millisecond)
			for _, path := range []string{"/hello", "/2015-03-31/functions/hello/invocations", "/2023-03-30/functions/hello/invocations"} {
				c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
				require.NoError(t, err)
				_, err = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"half\":", path)
				require.NoError(t, err)
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				require.NoError(t, err, path)
				require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, path)
				_ = c.Close()
			}
		})
	}
}

// A body still arriving when the shutdown begins is cut: its caller hears
// 503 "shutting down" at once, and nothing starts from it. A stalled body
// held Ctrl-C for its whole timeout (6.4 s instead of 1.7, outside tester).
func TestShutdownCutsABodyStillArriving(t *testing.T) {
	for _, p := range platforms() {
		t.Run(string(p), func(t *testing.T) {
			e, srv := descriptorEmu(t, p, time.Minute)
			var conns []net.Conn
			for _, path := range []string{"/hello", "/2015-03-31/functions/hello/invocations", "/2023-03-30/functions/hello/invocations"} {
				c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close() })
				_, err = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"half\":", path)
				require.NoError(t, err)
				conns = append(conns, c)
			}
			time.Sleep(100 * time.Millisecond) // the handlers are reading
			e.StopAsync(context.Background())
			for _, c := range conns {
				// Far inside the body timeout (a minute): only the cut answers.
				require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				require.NoError(t, err)
				b, _ := io.ReadAll(resp.Body)
				require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, string(b))
				require.Contains(t, string(b), "emulator is shutting down: the invocation did not start")
			}
			p, _ := e.Pool("hello")
			require.Zero(t, p.InFlight())
		})
	}
}

// TestKilledInstanceHTTP: the HTTP caller whose instance is SIGKILLed gets a
// 502 naming the exit, in the platform's error shape, with no log lines.
func TestKilledInstanceHTTP(t *testing.T) {
	e, srv := descriptorEmu(t, runtimeapi.FC, 0)
	_, body := do(t, "POST", srv.URL+"/2023-03-30/functions/hello/invocations", `{}`, nil)
	pid := int(decode(t, body)["pid"].(float64))
	done := make(chan struct{})
	var resp *http.Response
	go func() {
		defer close(done)
		resp, body = do(t, "POST", srv.URL+"/hello", `{"action":"sleep","ms":2000}`, nil)
	}()
	p, _ := e.Pool("hello")
	require.Eventually(t, func() bool { return p.InFlight() == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	<-done
	require.Equal(t, 502, resp.StatusCode)
	var m map[string]string
	require.NoError(t, json.Unmarshal(body, &m))
	require.Equal(t, "FunctionFailed", m["Code"])
	require.Equal(t, fmt.Sprintf("instance exited: pid %d: signal: killed", pid), m["Message"])
	resp, _ = do(t, "POST", srv.URL+"/hello", `{}`, nil)
	require.Equal(t, 201, resp.StatusCode, "the next call gets a new instance")
}

// TestHTTPTriggerPayloadLimit: the trigger takes what the platform takes
// (6 MB behind API Gateway and Lambda, 32 MB on FC) and answers 413 over it.
func TestHTTPTriggerPayloadLimit(t *testing.T) {
	for p, limit := range map[runtimeapi.Platform]int{runtimeapi.Lambda: emulator.LambdaMaxPayload, runtimeapi.FC: emulator.FCMaxPayload} {
		t.Run(string(p), func(t *testing.T) {
			_, srv := descriptorEmu(t, p, 0)
			resp, body := do(t, "POST", srv.URL+"/hello", strings.Repeat("a", limit+1), nil)
			require.Equal(t, 413, resp.StatusCode)
			require.Contains(t, string(body), fmt.Sprintf("over the %d-byte limit", limit))
		})
	}
}

// TestCallerHangsUpHTTP: an HTTP caller that disconnects mid-invocation
// does not stop it. As on FC and Lambda, the instance runs the invocation
// to its end (a charge is not cut off half done), is not killed, and then
// serves the next call.
func TestCallerHangsUpHTTP(t *testing.T) {
	e, srv := descriptorEmu(t, runtimeapi.FC, 0)
	_, body := do(t, "POST", srv.URL+"/2023-03-30/functions/hello/invocations", `{}`, nil)
	pid := int(decode(t, body)["pid"].(float64))
	p, _ := e.Pool("hello")

	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/hello", strings.NewReader(`{"action":"sleep","ms":1500}`))
	require.NoError(t, err)
	gone := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		gone <- err
	}()
	require.Eventually(t, func() bool { return p.InFlight() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-gone, context.Canceled)
	require.Equal(t, 1, p.InFlight(), "the invocation is still running")
	require.Eventually(t, func() bool { return p.InFlight() == 0 }, 5*time.Second, 5*time.Millisecond)

	resp, body := do(t, "POST", srv.URL+"/2023-03-30/functions/hello/invocations", `{}`, nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, pid, int(decode(t, body)["pid"].(float64)), "the same instance, not killed")
	require.Equal(t, 1, p.Starts())
}

// loggedHello is one hello instance at most, its lines and the emulator's in
// one log the test reads.
func loggedHello(t *testing.T) (*emulator.Emulator, func() string) {
	var log bytes.Buffer
	var mu sync.Mutex
	sink := linewriter.New(lockedWriter{&mu, &log}, 0)
	e := emulator.New(emulator.Options{Platform: runtimeapi.FC, Log: sink, Functions: []emulator.FunctionConfig{
		{Name: "hello", Binary: fixtures["hellofc"], Timeout: 5 * time.Second, MaxInstances: 1, Stdout: sink, LogPrefix: "hello | "}}})
	t.Cleanup(e.Close)
	return e, func() string { mu.Lock(); defer mu.Unlock(); return log.String() }
}

// TestACallWhoseCallerLeftFirstNeverRuns: an in-process call whose context
// ended before it could start is not run (the doors run every call they
// took, as the platforms do: TestAHalfClosedCallerGetsItsAnswer).
func TestACallWhoseCallerLeftFirstNeverRuns(t *testing.T) {
	e, logged := loggedHello(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := e.Invoke(ctx, "hello", []byte(`{"action":"log"}`))
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "not run: the caller had gone before an instance took the call")
	// The instance is free and whole: the next call is its first, and cold.
	res, rep, err := e.Invoke(context.Background(), "hello", []byte(`{}`))
	require.NoError(t, err)
	require.True(t, rep.Cold)
	require.Equal(t, 1, strings.Count(logged(), "hello handled"), "only the second call ran: %s\n%s", res.Body, logged())
}

// TestACallWhoseCallerLeftIsReportedWhenItEnds: the REPORT and the
// console's record wait for the instance's answer; they said "context
// canceled" at the moment the caller left, with no response, for a charge
// that went through.
func TestACallWhoseCallerLeftIsReportedWhenItEnds(t *testing.T) {
	var log bytes.Buffer
	var mu sync.Mutex
	e := emulator.New(emulator.Options{Platform: runtimeapi.FC, Log: lockedWriter{&mu, &log}, Functions: []emulator.FunctionConfig{
		{Name: "hello", Binary: fixtures["hellofc"], Timeout: 5 * time.Second, MaxInstances: 1, HTTPMethods: []string{"POST"}}}})
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(func() { srv.Close(); e.Close() })
	p, _ := e.Pool("hello")
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/hello", strings.NewReader(`{"action":"sleep","ms":600}`))
	require.NoError(t, err)
	gone := make(chan error, 1)
	go func() {
		_, err := http.DefaultClient.Do(req)
		gone <- err
	}()
	require.Eventually(t, func() bool { return p.InFlight() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-gone, context.Canceled)
	var report string
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range strings.Split(log.String(), "\n") {
			if strings.Contains(l, "REPORT RequestId") {
				report = l
			}
		}
		return report != ""
	}, 5*time.Second, 5*time.Millisecond)
	require.NotContains(t, report, "context canceled")
	var ms float64
	_, err = fmt.Sscanf(report[strings.Index(report, "Duration: ")+len("Duration: "):], "%f ms", &ms)
	require.NoError(t, err)
	require.GreaterOrEqual(t, ms, 600.0, "the duration is the call's, not the caller's: %s", report)
	rec := e.Bus().Recent()
	require.Len(t, rec, 1)
	require.Contains(t, string(rec[0].Response), `"statusCode":201`, "the console keeps what the function answered")
}

// TestAtShutdownTheInvokeDoorsSayTheCallDidNotStart: a queued call through
// an invoke door was a 200 with an unhandled Runtime.ExitError, which reads
// as a function that ran and died: a charge that may have moved money.
func TestAtShutdownTheInvokeDoorsSayTheCallDidNotStart(t *testing.T) {
	for _, c := range []struct {
		p          runtimeapi.Platform
		door, want string
	}{
		{runtimeapi.FC, "/2023-03-30/functions/hello/invocations", `"Code":"ServiceUnavailable"`},
		{runtimeapi.Lambda, "/2015-03-31/functions/hello/invocations", `"Type":"Service"`},
		{runtimeapi.FC, "/hello", `"Code":"ServiceUnavailable"`}, // the HTTP trigger said 502 FunctionFailed
		{runtimeapi.Lambda, "/hello", `"Type":"Service"`},
	} {
		t.Run(string(c.p)+c.door, func(t *testing.T) {
			e, srv := descriptorEmu(t, c.p, 0)
			p, _ := e.Pool("hello")
			busy := make(chan error, 1)
			go func() {
				_, _, err := e.Invoke(context.Background(), "hello", []byte(`{"action":"sleep","ms":400}`))
				busy <- err
			}()
			require.Eventually(t, func() bool { return p.InFlight() == 1 }, 5*time.Second, time.Millisecond)
			type answer struct {
				status int
				body   string
			}
			queued := make(chan answer, 1)
			go func() {
				resp, body := do(t, "POST", srv.URL+c.door, `{}`, nil)
				queued <- answer{resp.StatusCode, string(body)}
			}()
			require.Eventually(t, func() bool { return p.Queued() == 1 }, 5*time.Second, time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			e.StopAsync(ctx)
			a := <-queued
			require.Equal(t, http.StatusServiceUnavailable, a.status, a.body)
			require.Contains(t, a.body, c.want)
			require.Contains(t, a.body, "the invocation did not start")
			require.NoError(t, <-busy)
		})
	}
}

// TestAHalfClosedCallerGetsItsAnswer: a client that sends its whole request
// and then closes its side (nc -N, some proxies) got a 502 "context
// canceled" from the HTTP trigger for a call that ran, a charge included.
func TestAHalfClosedCallerGetsItsAnswer(t *testing.T) {
	e, srv := descriptorEmu(t, runtimeapi.FC, 0)
	for _, c := range []struct{ fn, path string }{
		{"hello", "/hello"}, {"hello", "/2023-03-30/functions/hello/invocations"}, {"ticker", "/__timers/ticker"},
	} {
		// The one instance is busy, so the call waits for it: the wait is
		// where a half-closed caller was taken for gone.
		p, _ := e.Pool(c.fn)
		busy := make(chan error, 1)
		go func() {
			_, _, err := e.Invoke(context.Background(), c.fn, []byte(`{"action":"sleep","ms":300}`))
			busy <- err
		}()
		require.Eventually(t, func() bool { return p.InFlight() == 1 }, 5*time.Second, time.Millisecond)
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		require.NoError(t, err)
		body := `{}`
		_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", c.path, len(body), body)
		require.NoError(t, err)
		require.NoError(t, conn.(*net.TCPConn).CloseWrite())
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err, c.path)
		b, _ := io.ReadAll(resp.Body)
		_ = conn.Close()
		require.Less(t, resp.StatusCode, 300, "%s: %s", c.path, b)
		require.NoError(t, <-busy)
	}
}

// TestAtShutdownNoQueuedCallStarts: at Ctrl-C a synchronous call queued
// behind a busy instance was handed the instance when it freed, and then
// killed mid-call at the 3 s mark (a charge went through, its caller got a
// 502, and the records store went away with the emulator).
func TestAtShutdownNoQueuedCallStarts(t *testing.T) {
	e, logged := loggedHello(t)
	p, _ := e.Pool("hello")
	running := make(chan error, 1)
	go func() {
		_, _, err := e.Invoke(context.Background(), "hello", []byte(`{"action":"sleep","ms":500}`))
		running <- err
	}()
	require.Eventually(t, func() bool { return p.InFlight() == 1 }, 5*time.Second, time.Millisecond)
	queued := make(chan error, 1)
	go func() {
		_, _, err := e.Invoke(context.Background(), "hello", []byte(`{"action":"log"}`))
		queued <- err
	}()
	require.Eventually(t, func() bool { return p.Queued() == 1 }, 5*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	e.StopAsync(ctx)
	require.ErrorContains(t, <-queued, "emulator is shutting down")
	require.NoError(t, <-running, "the running call finishes")
	_, _, err := e.Invoke(context.Background(), "hello", []byte(`{}`))
	require.ErrorContains(t, err, "emulator is shutting down", "and none starts after")
	require.Equal(t, 1, strings.Count(logged(), "hello handled"), "only the running call ran: %s", logged())
}

// TestInvalidUTF8ReachesTheFunctionAsSent: a body with bytes that are not
// UTF-8 goes to the function base64-encoded, byte for byte, so its decoder
// refuses it. It used to go as a JSON string, where json.Marshal replaced the
// bytes with U+FFFD and a charge with a mangled desc went through.
func TestInvalidUTF8ReachesTheFunctionAsSent(t *testing.T) {
	body := []byte("{\"desc\":\"\xe4\xb8\"}")
	for _, p := range platforms() {
		t.Run(string(p), func(t *testing.T) {
			e := emulator.New(emulator.Options{Platform: p})
			r := httptest.NewRequest("POST", "/top-launch-extra-charge", nil)
			in, _, err := runtime.Detect(e.HTTPEvent(r, body))
			require.NoError(t, err)
			require.Equal(t, body, in.Body)

			var ev struct {
				Body string `json:"body"`
				B64  bool   `json:"isBase64Encoded"`
			}
			require.NoError(t, json.Unmarshal(e.HTTPEvent(r, []byte(`{"desc":"上门"}`)), &ev))
			require.False(t, ev.B64, "valid UTF-8 JSON goes as text")
			require.Equal(t, `{"desc":"上门"}`, ev.Body)
		})
	}
}

// TestAnHTTPEventIsNotHTMLEscaped: json.Marshal wrote each <, > and & of a
// body as \u003c, six bytes for one; a 2 MB body of them became a 12 MB
// event, and the function decoding it was killed at its 128 MB, once after
// its charge had gone out (outside tester). The event carries them as they
// came, and the function reads the body unchanged.
func TestAnHTTPEventIsNotHTMLEscaped(t *testing.T) {
	body := []byte(`{"desc":"` + strings.Repeat("<>&", 1000) + `"}`)
	for _, p := range platforms() {
		t.Run(string(p), func(t *testing.T) {
			e := emulator.New(emulator.Options{Platform: p})
			r := httptest.NewRequest("POST", "/top-launch-extra-charge", nil)
			ev := e.HTTPEvent(r, body)
			require.NotContains(t, string(ev), `\u003c`)
			require.Less(t, len(ev), len(body)+2000, "the event is the body and its wrapping")
			in, _, err := runtime.Detect(ev)
			require.NoError(t, err)
			require.Equal(t, body, in.Body)
		})
	}
}

// TestWebPagesCannotCallTheDoors: the doors run functions without
// credentials, so a page open in the developer's browser may not reach them,
// neither cross-site (a text/plain POST needs no preflight) nor through a DNS
// name rebound to 127.0.0.1. Backends and SDKs send no Origin and name the
// address they dialled.
func TestWebPagesCannotCallTheDoors(t *testing.T) {
	_, srv := descriptorEmu(t, runtimeapi.FC, 0)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	doors := []string{"/hello", "/2023-03-30/functions/hello/invocations", "/2015-03-31/functions/hello/invocations", "/__timers/ticker"}
	for _, tc := range []struct {
		name   string
		hdr    map[string]string
		status int
		says   string
	}{
		{"a backend", nil, 200, ""},
		{"localhost", map[string]string{"Host": "localhost:" + port}, 200, ""},
		{"an IP address", map[string]string{"Host": "10.0.0.7:" + port}, 200, ""},
		{"the console's own page", map[string]string{"Origin": srv.URL, "Sec-Fetch-Site": "same-origin"}, 200, ""},
		{"a cross-site page", map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"}, 403, `cross-origin request from \"http://evil.example\" refused`},
		{"a cross-site image", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "cross-site request refused"},
		{"a rebound DNS name", map[string]string{"Host": "evil.example:" + port, "Origin": "http://evil.example:" + port}, 403, `Host \"evil.example:` + port + `\" is a name other than localhost`},
	} {
		for _, door := range doors {
			req, err := http.NewRequest("POST", srv.URL+door, strings.NewReader(`{}`))
			require.NoError(t, err)
			for k, v := range tc.hdr {
				if k == "Host" {
					req.Host = v
				} else {
					req.Header.Set(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.status == 403 {
				require.Equal(t, 403, resp.StatusCode, "%s → %s: %s", tc.name, door, b)
				// Each door's own error shape, which its SDKs read.
				switch {
				case strings.HasPrefix(door, "/2015-03-31/"):
					require.Equal(t, "AccessDeniedException", resp.Header.Get("x-amzn-ErrorType"))
					require.Contains(t, decode(t, b), "message")
				case strings.HasPrefix(door, "/2023-03-30/"):
					require.Equal(t, "AccessDenied", decode(t, b)["Code"])
				default:
					require.Contains(t, decode(t, b), "error")
				}
			} else {
				require.Less(t, resp.StatusCode, 300, "%s → %s: %s", tc.name, door, b)
			}
			if tc.says != "" {
				require.Contains(t, string(b), tc.says, door)
			}
		}
	}
	// An HTTP/1.0 client that names no host (no browser does) is served.
	c0, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	require.NoError(t, err)
	defer c0.Close()
	_ = c0.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = fmt.Fprintf(c0, "POST /hello HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}")
	require.NoError(t, err)
	resp0, err := http.ReadResponse(bufio.NewReader(c0), nil)
	require.NoError(t, err)
	require.Less(t, resp0.StatusCode, 300)

	// Refused at once, even when its body never finishes arriving.
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = fmt.Fprintf(c, "POST /hello HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 100\r\n\r\n{\"half\":")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	require.Equal(t, 403, resp.StatusCode)
}

// TestAsyncQueueIsBounded: a flood of Event/Async calls filled memory
// without bound (316,906 accepted in 30 s, 3.5 GB) and starved synchronous
// callers behind the backlog. Past the queue the doors answer 429 in the
// platform's shape; a synchronous call is still served meanwhile.
func TestAsyncQueueIsBounded(t *testing.T) {
	for _, p := range platforms() {
		t.Run(string(p), func(t *testing.T) {
			bin := fixtures["hellofc"]
			if p == runtimeapi.Lambda {
				bin = fixtures["hellolambda"]
			}
			e := emulator.New(emulator.Options{Platform: p, AsyncQueue: 3, Functions: []emulator.FunctionConfig{
				{Name: "hello", Binary: bin, Timeout: 5 * time.Second, MaxInstances: 2}, // one async worker
			}})
			srv := httptest.NewServer(e.Handler())
			t.Cleanup(func() { srv.Close(); e.Close() })
			lambda := map[string]string{"X-Amz-Invocation-Type": "Event"}
			fc := map[string]string{"x-fc-invocation-type": "Async"}
			statuses := map[int]int{}
			var last *http.Response
			var lastBody []byte
			for range 20 {
				resp, body := post(t, srv.URL+"/2015-03-31/functions/hello/invocations", `{"action":"sleep","ms":300}`, lambda)
				statuses[resp.StatusCode]++
				if resp.StatusCode == 429 {
					last, lastBody = resp, body
				}
			}
			// One taken by the worker at most, three waiting; the rest refused.
			require.LessOrEqual(t, statuses[202], 4, "%v", statuses)
			require.GreaterOrEqual(t, statuses[202], 3, "%v", statuses)
			require.Equal(t, 20-statuses[202], statuses[429], "%v", statuses)
			require.Equal(t, "TooManyRequestsException", last.Header.Get("x-amzn-ErrorType"))
			require.Equal(t, "1", last.Header.Get("Retry-After"))
			require.Contains(t, string(lastBody), "3 asynchronous invocations of hello are already waiting")

			resp, body := post(t, srv.URL+"/2023-03-30/functions/hello/invocations", `{}`, fc)
			require.Equal(t, 429, resp.StatusCode, string(body))
			require.Equal(t, "ResourceThrottled", decode(t, body)["Code"])
			// Refused before the body is read: one over the size limit is
			// a 429, not a 413 (a flood of 1 MB events cost a read each).
			resp, _ = post(t, srv.URL+"/2015-03-31/functions/hello/invocations", `"`+strings.Repeat("a", emulator.LambdaMaxEventPayload)+`"`, lambda)
			require.Equal(t, 429, resp.StatusCode)

			// The second instance is the synchronous callers'.
			resp, body = post(t, srv.URL+"/2015-03-31/functions/hello/invocations", `{}`, nil)
			require.Equal(t, 200, resp.StatusCode, string(body))
			pool, _ := e.Pool("hello")
			require.Eventually(t, func() bool { return pool.InFlight() == 0 && len(e.Bus().Recent()) >= statuses[202]+1 }, 10*time.Second, 20*time.Millisecond,
				"the accepted invocations all ran")
		})
	}
}

// Close twice (a test and its cleanup both do): the second waits for the
// first and does nothing more.
func TestCloseTwice(t *testing.T) {
	e, _ := newEmu(t, runtimeapi.FC, 1)
	_, _, err := e.Invoke(context.Background(), "hello", []byte(`{}`))
	require.NoError(t, err)
	e.Close()
	require.NotPanics(t, e.Close)
}

// TestShutdownAccountsForEveryAcceptedAsyncCall: at shutdown the workers
// stop taking queued invocations, the one running finishes rather than
// being killed, and every accepted invocation either ran or is counted as
// dropped (a job taken as the workers stopped vanished, uncounted, and
// queued ones started during the 3 s shutdown only to be killed).
func TestShutdownAccountsForEveryAcceptedAsyncCall(t *testing.T) {
	for round := range 5 {
		var log bytes.Buffer // the emulator writes it through its line sink's lock; read after Close
		e := emulator.New(emulator.Options{Platform: runtimeapi.FC, Log: &log, Functions: []emulator.FunctionConfig{
			{Name: "hello", Binary: fixtures["hellofc"], Timeout: 5 * time.Second, MaxInstances: 2}, // one async worker
		}})
		srv := httptest.NewServer(e.Handler())
		accepted := 0
		for range 20 {
			resp, _ := post(t, srv.URL+"/2023-03-30/functions/hello/invocations", `{"action":"sleep","ms":100}`, map[string]string{"x-fc-invocation-type": "Async"})
			if resp.StatusCode == 202 {
				accepted++
			}
		}
		require.Eventually(t, func() bool { return len(e.Bus().Recent()) > 0 }, 5*time.Second, time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		e.StopAsync(ctx)
		cancel()
		srv.Close()
		e.Close()
		started := 0
		for _, inv := range e.Bus().Recent() {
			started++
			require.Empty(t, inv.Error, "round %d: %s was cut off at shutdown", round, inv.RequestID)
			require.False(t, inv.Running, "round %d: %s still running after Close", round, inv.RequestID)
		}
		dropped := 0
		if m := regexp.MustCompile(`hello: (\d+) queued asynchronous invocation\(s\) dropped at shutdown`).FindStringSubmatch(log.String()); m != nil {
			dropped, _ = strconv.Atoi(m[1])
		}
		require.Equal(t, accepted, started+dropped, "round %d: %d accepted, %d ran, %d reported dropped", round, accepted, started, dropped)
	}
}

// TestFailedAsyncInvocationsAreRetried: Lambda retries a failed Event
// invocation twice and FC a failed Async one three times, under the same
// request id, with a growing delay; an error envelope is a success and runs
// once; AsyncRetries overrides both, 0 turning retries off.
func TestFailedAsyncInvocationsAreRetried(t *testing.T) {
	zero := 0
	cases := []struct {
		name     string
		door     string
		hdr      map[string]string
		retries  *int
		body     string
		attempts int
	}{
		{"lambda door, panicking", "/2015-03-31/functions/hello/invocations", map[string]string{"X-Amz-Invocation-Type": "Event"}, nil, `{"action":"panic"}`, 1 + emulator.LambdaAsyncRetries},
		{"fc door, panicking", "/2023-03-30/functions/hello/invocations", map[string]string{"x-fc-invocation-type": "Async"}, nil, `{"action":"panic"}`, 1 + emulator.FCAsyncRetries},
		{"retries off", "/2023-03-30/functions/hello/invocations", map[string]string{"x-fc-invocation-type": "Async"}, &zero, `{"action":"panic"}`, 1},
		{"a success runs once", "/2023-03-30/functions/hello/invocations", map[string]string{"x-fc-invocation-type": "Async"}, nil, `{}`, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var log bytes.Buffer
			e := emulator.New(emulator.Options{Platform: runtimeapi.FC, Log: lockedWriter{&mu, &log}, AsyncRetries: c.retries, AsyncRetryDelay: 20 * time.Millisecond,
				Functions: []emulator.FunctionConfig{{Name: "hello", Binary: fixtures["hellofc"], Timeout: 5 * time.Second, MaxInstances: 2}}})
			srv := httptest.NewServer(e.Handler())
			t.Cleanup(func() { srv.Close(); e.Close() })
			resp, body := post(t, srv.URL+c.door, c.body, c.hdr)
			require.Equal(t, 202, resp.StatusCode, string(body))
			reports := func() int {
				mu.Lock()
				defer mu.Unlock()
				return strings.Count(log.String(), "hello REPORT RequestId: ")
			}
			require.Eventually(t, func() bool { return reports() >= c.attempts }, 10*time.Second, 10*time.Millisecond)
			time.Sleep(300 * time.Millisecond) // room for a retry too many (the last delay is 80 ms)
			mu.Lock()
			out := log.String()
			mu.Unlock()
			require.Equal(t, c.attempts, strings.Count(out, "hello REPORT RequestId: "), out)
			ids := regexp.MustCompile(`hello START RequestId: (\S+)`).FindAllStringSubmatch(out, -1)
			for _, id := range ids {
				require.Equal(t, ids[0][1], id[1], "a retry keeps the request id")
			}
			if c.attempts > 1 {
				require.Contains(t, out, "(attempt 1 of "+strconv.Itoa(c.attempts)+"); retrying in 20ms")
				require.Contains(t, out, "(attempt 2 of "+strconv.Itoa(c.attempts)+"); retrying in 40ms")
				require.Contains(t, out, "on its last attempt ("+strconv.Itoa(c.attempts)+" of "+strconv.Itoa(c.attempts)+"); dropped")
			}
			if c.retries != nil {
				require.Contains(t, out, "not retried (retries are off); dropped", "a failure says so with retries off too")
			}
			// The console keeps each attempt as a record of its own: the
			// retries shared one, with both attempts' log lines.
			rec := e.Bus().Recent()
			require.Len(t, rec, c.attempts)
			id := ids[0][1]
			for i, r := range rec {
				want := id
				if i < c.attempts-1 {
					want = id + "#" + strconv.Itoa(i+1)
				}
				require.Equal(t, want, r.RequestID)
				if c.attempts > 1 {
					require.Equal(t, i+1, r.Attempt)
				}
				require.False(t, r.Running)
				if c.attempts > 1 {
					require.NotEmpty(t, r.Error, "each attempt failed")
				}
			}
		})
	}
}

// lockedWriter lets a test read a log the emulator writes from its workers.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
