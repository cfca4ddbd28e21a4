package emulator_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

// TestConcurrentLargeBodiesStayWithinTheBudget: 48 concurrent 32 MB calls
// took the emulator from 166 MB to 2.9 GB (outside tester), every body read
// whole before its call waited for an instance. Now the doors hold at most
// the body budget at once: the calls that fit run, and those that find no
// room within BodyWait are answered the door's 429, their bodies unread.
func TestConcurrentLargeBodiesStayWithinTheBudget(t *testing.T) {
	const (
		callers = 10
		size    = 2 << 20
		budget  = emulator.LambdaMaxPayload + 1 // the least it can be under aws: three 2 MB bodies fit
		fit     = 3
	)
	pad := size - len(`{"action":"sleep","ms":1500,"pad":""}`)
	body := `{"action":"sleep","ms":1500,"pad":"` + strings.Repeat("a", pad) + `"}`
	require.Len(t, body, size)
	cases := []struct {
		door, path  string
		ok          int
		header, val string // how the door says 429
	}{
		{"Lambda Invoke", "/2015-03-31/functions/hello/invocations", 200, "x-amzn-ErrorType", "TooManyRequestsException"},
		{"FC InvokeFunction", "/2023-03-30/functions/hello/invocations", 200, "", `"Code":"ResourceThrottled"`},
		{"HTTP trigger", "/hello", 201, "x-amzn-ErrorType", "TooManyRequestsException"},
	}
	for _, tc := range cases {
		t.Run(tc.door, func(t *testing.T) {
			e := emulator.New(emulator.Options{Platform: runtimeapi.Lambda, BodyBudget: budget, BodyWait: 300 * time.Millisecond,
				Functions: []emulator.FunctionConfig{
					{Name: "hello", Binary: fixtures["hellolambda"], Timeout: 10 * time.Second, MaxInstances: fit, HTTPMethods: []string{"POST"}},
				}})
			srv := httptest.NewServer(e.Handler())
			t.Cleanup(func() { srv.Close(); e.Close() })
			type answer struct {
				status int
				hdr    http.Header
				body   string
				err    error
			}
			answers := make(chan answer, callers)
			for range callers {
				go func() {
					resp, err := http.Post(srv.URL+tc.path, "application/json", strings.NewReader(body))
					if err != nil {
						answers <- answer{err: err}
						return
					}
					defer resp.Body.Close()
					b, _ := io.ReadAll(resp.Body)
					answers <- answer{status: resp.StatusCode, hdr: resp.Header, body: string(b)}
				}()
			}
			statuses := map[int]int{}
			for range callers {
				a := <-answers
				require.NoError(t, a.err, "every caller gets an answer")
				statuses[a.status]++
				if a.status == http.StatusTooManyRequests {
					require.Equal(t, "1", a.hdr.Get("Retry-After"))
					if tc.header != "" {
						require.Equal(t, tc.val, a.hdr.Get(tc.header))
					} else {
						require.Contains(t, a.body, tc.val)
					}
					require.Contains(t, a.body, "request bodies, its budget")
				}
			}
			require.Equal(t, map[int]int{tc.ok: fit, http.StatusTooManyRequests: callers - fit}, statuses)
			require.Equal(t, int64(fit*size), emulator.BodyPeak(e), "the bodies held at once: the budget's worth, never all ten")
		})
	}
}

// TestTheFCDoorTakesWhatTheInstanceTakes: under --platform aws the instance
// polls Lambda's runtime API, which never hands a function more than 6 MB;
// a 32 MB call through the FC door got the instance killed for memory
// (outside tester). It is refused at the door instead, and nothing starts.
// Under --platform fc the FC door takes its 32 MB.
func TestTheFCDoorTakesWhatTheInstanceTakes(t *testing.T) {
	payload := `{"pad":"` + strings.Repeat("a", emulator.LambdaMaxPayload) + `"}` // over 6 MB, an event the fixtures take
	for _, tc := range []struct {
		platform runtimeapi.Platform
		status   int
		contains string
	}{
		{runtimeapi.Lambda, 413, fmt.Sprintf(`"Code":"PayloadTooLarge","Message":"payload is over the %d-byte limit of a synchronous invocation here`, emulator.LambdaMaxPayload)},
		{runtimeapi.FC, 200, `"hello":"fc"`},
	} {
		t.Run(string(tc.platform), func(t *testing.T) {
			e, srv := descriptorEmu(t, tc.platform, 0)
			resp, body := do(t, "POST", srv.URL+"/2023-03-30/functions/hello/invocations", payload, nil)
			require.Equal(t, tc.status, resp.StatusCode, string(body))
			require.Contains(t, string(body), tc.contains)
			if tc.status == 413 {
				require.Empty(t, e.Instances("hello"), "a refused call starts no instance")
			}
		})
	}
}

// TestAWSRoutesOnlyTheExactPath: template.yaml routes POST /<function> and
// nothing under it, so a deployed HTTP API answers a sub-path 404
// {"message":"Not Found"}; the emulator ran the function (outside tester),
// and code that worked locally failed deployed. FC's trigger is the
// function's whole domain: there sub-paths reach the function.
func TestAWSRoutesOnlyTheExactPath(t *testing.T) {
	subPaths := []string{"/hello/extra", "/hello/a%2Fb", "/hello/"}
	t.Run("aws", func(t *testing.T) {
		e, srv := descriptorEmu(t, runtimeapi.Lambda, 0)
		for _, path := range subPaths {
			for _, method := range []string{"POST", "GET"} {
				resp, body := do(t, method, srv.URL+path, `{}`, nil)
				require.Equal(t, 404, resp.StatusCode, method+" "+path)
				require.Equal(t, `{"message":"Not Found"}`, string(body), method+" "+path)
				require.NotEmpty(t, resp.Header.Get("Apigw-Requestid"), method+" "+path)
			}
		}
		require.Empty(t, e.Instances("hello"), "no route, no instance")
		resp, body := do(t, "POST", srv.URL+"/hello", `{}`, nil)
		require.Equal(t, 201, resp.StatusCode, string(body))
	})
	t.Run("fc", func(t *testing.T) {
		_, srv := descriptorEmu(t, runtimeapi.FC, 0)
		for _, path := range subPaths {
			resp, body := do(t, "POST", srv.URL+path, `{}`, nil)
			require.Equal(t, 201, resp.StatusCode, path)
			require.Contains(t, string(body), `"path":"`+path+`"`)
		}
	})
}

// stalled opens a raw connection to srv and sends a POST to path whose body
// (Content-Length n, or chunked when n < 0) stops after its first bytes:
// a caller that holds its body's room and sends nothing more.
func stalled(t *testing.T, srv *httptest.Server, path string, n int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	head := "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
	if n < 0 {
		head += "Transfer-Encoding: chunked\r\n\r\n2\r\n{\"\r\n"
	} else {
		head += fmt.Sprintf("Content-Length: %d\r\n\r\n{\"pad\":\"", n)
	}
	_, err = c.Write([]byte(head))
	require.NoError(t, err)
	return c
}

func budgetEmu(t *testing.T, wait time.Duration) (*emulator.Emulator, *httptest.Server) {
	e := emulator.New(emulator.Options{Platform: runtimeapi.Lambda, BodyBudget: emulator.LambdaMaxPayload + 1, BodyWait: wait,
		Functions: []emulator.FunctionConfig{{Name: "hello", Binary: fixtures["hellolambda"], Timeout: 10 * time.Second, MaxInstances: 2, HTTPMethods: []string{"POST"}}}})
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(func() { srv.Close(); e.Close() })
	return e, srv
}

// TestASmallBodyGoesAheadOfALargeOneWaiting: the budget was first in, first
// out, so a 32-byte call waited 10 s behind 32 MB ones and some were
// refused 429 (a re-tester). A body that fits the room left goes ahead; the
// large one still waits for its room.
func TestASmallBodyGoesAheadOfALargeOneWaiting(t *testing.T) {
	e, srv := budgetEmu(t, 20*time.Second)
	const lambda = "/2015-03-31/functions/hello/invocations"
	stalled(t, srv, lambda, 5<<20) // holds 5 MB of the 6 MB + 1
	require.Eventually(t, func() bool { return emulator.BodyReserved(e) == 5<<20 }, 5*time.Second, 5*time.Millisecond)
	stalled(t, srv, lambda, 5<<20) // waits for room
	require.Eventually(t, func() bool { return emulator.BodyWaiting(e) == 1 }, 5*time.Second, 5*time.Millisecond)
	resp, body := do(t, "POST", srv.URL+lambda, `{"small":true}`, nil)
	require.Equal(t, 200, resp.StatusCode, string(body))
	require.Equal(t, int64(1), emulator.BodyWaiting(e), "the large one is still waiting for its room")
}

// TestChunkedBodiesReserveAsTheyArrive: a chunked body reserved the door's
// whole limit before a byte arrived, so a few idle chunked connections held
// the budget and every other call waited, then heard 429 (a re-tester). It
// now reserves room as its bytes arrive.
func TestChunkedBodiesReserveAsTheyArrive(t *testing.T) {
	e, srv := budgetEmu(t, 300*time.Millisecond)
	const lambda = "/2015-03-31/functions/hello/invocations"
	for range 5 {
		stalled(t, srv, lambda, -1)
	}
	require.Eventually(t, func() bool { return emulator.BodyReserved(e) == 5<<20 }, 5*time.Second, 5*time.Millisecond, "1 MB each")
	payload := `{"pad":"` + strings.Repeat("a", 1_000_000) + `"}`
	resp, body := do(t, "POST", srv.URL+lambda, payload, nil)
	require.Equal(t, 200, resp.StatusCode, string(body))
}

// TestARefusedBodyIsNotWaitedFor: a chunked caller refused 429 for want of
// room kept its connection open while the server drained a body it would
// never use, for as long as the caller kept it (70 s; a re-tester). The
// answer goes, then the connection closes.
func TestARefusedBodyIsNotWaitedFor(t *testing.T) {
	e, srv := budgetEmu(t, 300*time.Millisecond)
	const lambda = "/2015-03-31/functions/hello/invocations"
	stalled(t, srv, lambda, emulator.LambdaMaxPayload) // the whole budget, all but one byte
	require.Eventually(t, func() bool { return emulator.BodyReserved(e) == emulator.LambdaMaxPayload }, 5*time.Second, 5*time.Millisecond)
	c := stalled(t, srv, lambda, -1)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "closed by the server, not left to the caller's timeout")
}

// TestAnEventOverTheRuntimeLimitIsRefused: the HTTP trigger checked the
// body against the runtime API's limit, but the event carries it in base64
// or as an escaped JSON string, larger: a 6 MB binary body made an 8 MB
// event for a Lambda instance (a re-tester). The event is checked too.
func TestAnEventOverTheRuntimeLimitIsRefused(t *testing.T) {
	e, srv := descriptorEmu(t, runtimeapi.Lambda, 0)
	resp, body := do(t, "POST", srv.URL+"/hello", strings.Repeat("\xff", 5<<20), map[string]string{"Content-Type": "application/octet-stream"})
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, string(body))
	require.Contains(t, string(body), fmt.Sprintf("bytes, over the %d bytes the aws runtime API hands a function", emulator.LambdaMaxPayload))
	require.Empty(t, e.Instances("hello"), "nothing started")
}
