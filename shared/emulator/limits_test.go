package emulator_test

import (
	"fmt"
	"io"
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
