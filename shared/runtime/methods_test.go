package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
)

// upstreamHandler is logistics-get-quota (its trigger takes POST only)
// whose operation calls an upstream that counts the calls reaching it.
func upstreamHandler(t *testing.T) (*Handler, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, `{"quotaNum":1}`)
	}))
	t.Cleanup(up.Close)
	factory := func(_ context.Context, d Deps) (envelope.Op, error) {
		return envelope.Op{API: "openapi.logistics.getQuota", Handle: func(ctx context.Context, _ *envelope.Input) (any, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, up.URL, nil)
			if err != nil {
				return nil, err
			}
			resp, err := d.HTTP.Do(req)
			if err != nil {
				return nil, err
			}
			resp.Body.Close()
			return map[string]int{"quotaNum": 1}, nil
		}}, nil
	}
	e := config.FromMap(map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true"})
	h, err := New(context.Background(), e, NewLogger(io.Discard, e), factory)
	require.NoError(t, err)
	require.Equal(t, "logistics-get-quota", h.Deps.Function)
	return h, &hits
}

// refusal is HTTPHandler's 405 body for a request id: every entry answers it.
func refusal(id string) string {
	return `{"Code":"MethodNotAllowed","Message":"logistics-get-quota takes POST","RequestId":"` + id + `"}`
}

// Every HTTP entry refuses a method the trigger does not take as
// HTTPHandler does, before anything runs: through FC's go1 HTTP event and
// FC's custom runtime a PUT ran the function (a black-box tester).
func TestEveryHTTPEntryRefusesOtherMethodsAlike(t *testing.T) {
	body := `{"deliveryId":"YTO","bizId":"xyz"}`
	methods := []string{http.MethodPut, http.MethodGet, http.MethodDelete, http.MethodPatch}

	t.Run("events", func(t *testing.T) {
		// Methods are case-sensitive (RFC 9110 9.1): "post" is not POST, as
		// net/http's server and the emulator read it (a re-tester).
		methods := append(methods, "post")
		h, hits := upstreamHandler(t)
		event := func(shape, method string) []byte {
			var ev map[string]any
			switch shape {
			case "fc-http":
				ev = map[string]any{"version": "v1", "rawPath": "/logistics-get-quota", "body": body, "headers": map[string]string{},
					"requestContext": map[string]any{"requestId": "gw-1", "http": map[string]string{"method": method, "sourceIp": "10.0.0.1"}}}
			case "apigw-v2":
				ev = map[string]any{"version": "2.0", "rawPath": "/logistics-get-quota", "body": body, "headers": map[string]string{},
					"requestContext": map[string]any{"requestId": "gw-1", "http": map[string]string{"method": method, "sourceIp": "10.0.0.1"}}}
			case "http-other":
				ev = map[string]any{"httpMethod": method, "path": "/logistics-get-quota", "body": body, "headers": map[string]string{},
					"requestContext": map[string]any{"requestId": "gw-1"}}
			}
			b, err := json.Marshal(ev)
			require.NoError(t, err)
			return b
		}
		for _, shape := range []string{"fc-http", "apigw-v2", "http-other"} {
			for _, m := range methods {
				var r HTTPResponse
				require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), event(shape, m), Meta{RequestID: "inv-1"}), &r))
				require.Equal(t, http.StatusMethodNotAllowed, r.StatusCode, shape+" "+m)
				require.Equal(t, "POST", r.Headers["Allow"], shape+" "+m)
				require.Equal(t, "gw-1", r.Headers["X-Request-Id"], shape+" "+m)
				require.Equal(t, "application/json; charset=utf-8", r.Headers["Content-Type"], shape+" "+m)
				require.Equal(t, refusal("gw-1"), r.Body, shape+" "+m)
			}
			require.Equal(t, int32(0), hits.Load(), "%s: nothing ran", shape)
			var r HTTPResponse
			require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), event(shape, "POST"), Meta{RequestID: "inv-1"}), &r))
			require.Equal(t, http.StatusOK, r.StatusCode, "%s: POST runs: %s", shape, r.Body)
			require.Equal(t, int32(1), hits.Swap(0), shape)
		}
	})

	servers := map[string]func(*Handler) http.Handler{
		"http server":                     (*Handler).HTTPHandler,
		"fc custom runtime, no path":      (*Handler).FCCustomRuntimeHandler,
		"fc custom runtime, /http-invoke": (*Handler).FCCustomRuntimeHandler,
	}
	for name, face := range servers {
		t.Run(name, func(t *testing.T) {
			h, hits := upstreamHandler(t)
			srv := httptest.NewServer(face(h))
			defer srv.Close()
			send := func(method string) (*http.Response, string) {
				req, err := http.NewRequest(method, srv.URL+"/logistics-get-quota", strings.NewReader(body))
				require.NoError(t, err)
				if strings.HasPrefix(name, "fc") {
					req.Header.Set("x-fc-request-id", "fc-7")
				}
				if strings.HasSuffix(name, "/http-invoke") {
					req.Header.Set(ControlPathHeader, "/http-invoke")
				}
				resp, err := srv.Client().Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				return resp, string(b)
			}
			for _, m := range methods {
				resp, b := send(m)
				require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, m)
				require.Equal(t, "POST", resp.Header.Get("Allow"), m)
				require.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"), m)
				id := resp.Header.Get("X-Request-Id")
				if strings.HasPrefix(name, "fc") {
					require.Equal(t, "fc-7", id, "FC's request id names the refusal")
				}
				require.NotEmpty(t, id)
				require.Equal(t, refusal(id), b, m)
			}
			require.Equal(t, int32(0), hits.Load(), "nothing ran")
			resp, b := send(http.MethodPost)
			require.Equal(t, http.StatusOK, resp.StatusCode, b)
			require.Equal(t, int32(1), hits.Load())
		})
	}
}

// An HTTP event whose method is missing, empty, null, only in REST's
// requestContext copy as something else, or given twice differently, is
// refused before anything runs: read on, a valid body moved money (a
// re-tester charged an order through {"requestContext":{"httpMethod":"GET"},
// "path":..., "body":...}). REST's requestContext copy alone is read.
func TestAnHTTPEventWithoutAPostIsRefused(t *testing.T) {
	h, hits := upstreamHandler(t)
	body := `"{\"deliveryId\":\"YTO\",\"bizId\":\"xyz\"}"`
	const noMethod = "the payload was read as %s, and it names no method (or two that differ); to invoke directly, send the input JSON without the event's members"
	for _, tc := range []struct {
		name, event, note string
	}{
		{"REST, requestContext.httpMethod GET only", `{"requestContext":{"httpMethod":"GET","path":"/p"},"path":"/p","body":` + body + `}`, ""},
		{"REST, httpMethod null", `{"httpMethod":null,"requestContext":{"httpMethod":"GET"},"body":` + body + `}`, fmt.Sprintf(noMethod, "an HTTP event (it has requestContext), whose input is its body")},
		{"REST, httpMethod empty beside a POST copy", `{"httpMethod":"","requestContext":{"httpMethod":"POST"},"body":` + body + `}`, fmt.Sprintf(noMethod, "an HTTP event (it has requestContext), whose input is its body")},
		{"REST, httpMethod null beside a POST copy", `{"httpMethod":null,"requestContext":{"httpMethod":"POST"},"body":` + body + `}`, fmt.Sprintf(noMethod, "an HTTP event (it has requestContext), whose input is its body")},
		{"v2, a top-level httpMethod GET beside POST", `{"version":"2.0","rawPath":"/x","httpMethod":"GET","requestContext":{"http":{"method":"POST"}},"body":` + body + `}`, fmt.Sprintf(noMethod, `an API Gateway v2 event (it has version "2.0", rawPath and requestContext), whose input is its body`)},
		{"FC, requestContext.httpMethod GET beside http.method POST", `{"version":"v1","rawPath":"/x","requestContext":{"httpMethod":"GET","http":{"method":"POST"}},"body":` + body + `}`, fmt.Sprintf(noMethod, "an FC HTTP trigger event (it has rawPath and requestContext), whose input is its body")},
		{"v2, requestContext.httpMethod null beside http.method POST", `{"version":"2.0","rawPath":"/x","requestContext":{"httpMethod":null,"http":{"method":"POST"}},"body":` + body + `}`, fmt.Sprintf(noMethod, `an API Gateway v2 event (it has version "2.0", rawPath and requestContext), whose input is its body`)},
		{"v2, a routeKey saying GET", `{"version":"2.0","rawPath":"/x","routeKey":"GET /x","requestContext":{"http":{"method":"POST"}},"body":` + body + `}`, fmt.Sprintf(noMethod, `an API Gateway v2 event (it has version "2.0", rawPath and requestContext), whose input is its body`)},
		{"v2, a routeKey that is only a method", `{"version":"2.0","rawPath":"/x","routeKey":"GET","requestContext":{"http":{"method":"POST"}},"body":` + body + `}`, fmt.Sprintf(noMethod, `an API Gateway v2 event (it has version "2.0", rawPath and requestContext), whose input is its body`)},
		{"v2, a routeKey with a tab", `{"version":"2.0","rawPath":"/x","routeKey":"GET\t/x","requestContext":{"http":{"method":"POST"}},"body":` + body + `}`, fmt.Sprintf(noMethod, `an API Gateway v2 event (it has version "2.0", rawPath and requestContext), whose input is its body`)},
		{"v2, a null routeKey", `{"version":"2.0","rawPath":"/x","requestContext":{"routeKey":null,"http":{"method":"POST"}},"body":` + body + `}`, fmt.Sprintf(noMethod, `an API Gateway v2 event (it has version "2.0", rawPath and requestContext), whose input is its body`)},
		{"v2, requestContext.routeKey saying GET", `{"version":"2.0","rawPath":"/x","requestContext":{"routeKey":"GET /x","http":{"method":"POST"}},"body":` + body + `}`, fmt.Sprintf(noMethod, `an API Gateway v2 event (it has version "2.0", rawPath and requestContext), whose input is its body`)},
		{"REST POST with requestContext.http.method GET", `{"httpMethod":"POST","requestContext":{"httpMethod":"POST","http":{"method":"GET"}},"body":` + body + `}`, fmt.Sprintf(noMethod, "an HTTP event (it has requestContext), whose input is its body")},
		{"REST POST with requestContext.http null", `{"httpMethod":"POST","requestContext":{"http":null},"body":` + body + `}`, fmt.Sprintf(noMethod, "an HTTP event (it has requestContext), whose input is its body")},
		{"REST POST with requestContext.http a string", `{"httpMethod":"POST","requestContext":{"http":"GET"},"body":` + body + `}`, fmt.Sprintf(noMethod, "an HTTP event (it has requestContext), whose input is its body")},
		{"FC, a top-level httpMethod GET beside POST", `{"version":"v1","rawPath":"/x","httpMethod":"GET","requestContext":{"http":{"method":"POST"}},"body":` + body + `}`, fmt.Sprintf(noMethod, "an FC HTTP trigger event (it has rawPath and requestContext), whose input is its body")},
		{"REST, httpMethod empty", `{"httpMethod":"","body":` + body + `}`, fmt.Sprintf(noMethod, "an HTTP event (it has httpMethod), whose input is its body")},
		{"REST, two methods that differ", `{"httpMethod":"POST","requestContext":{"httpMethod":"GET"},"body":` + body + `}`, fmt.Sprintf(noMethod, "an HTTP event (it has requestContext), whose input is its body")},
		{"a direct input with requestContext and traceSource", `{"requestContext":{"requestId":"x"},"traceSource":"y","deliveryId":"YTO","bizId":"xyz"}`, fmt.Sprintf(noMethod, "an HTTP event (it has requestContext), whose input is its body")},
		{"REST, requestContext only", `{"requestContext":{},"body":` + body + `}`, fmt.Sprintf(noMethod, "an HTTP event (it has requestContext), whose input is its body")},
		{"v2, no requestContext.http", `{"version":"2.0","rawPath":"/x","requestContext":{},"body":` + body + `}`, fmt.Sprintf(noMethod, `an API Gateway v2 event (it has version "2.0", rawPath and requestContext), whose input is its body`)},
		{"v2, empty method", `{"version":"2.0","rawPath":"/x","requestContext":{"http":{"method":""}},"body":` + body + `}`, fmt.Sprintf(noMethod, `an API Gateway v2 event (it has version "2.0", rawPath and requestContext), whose input is its body`)},
		{"v2, httpMethod GET beside it", `{"version":"2.0","rawPath":"/x","httpMethod":"GET","requestContext":{},"body":` + body + `}`, fmt.Sprintf(noMethod, `an API Gateway v2 event (it has version "2.0", rawPath and requestContext), whose input is its body`)},
		{"FC, no method", `{"version":"v1","rawPath":"/x","requestContext":{"requestId":"r"},"body":` + body + `}`, fmt.Sprintf(noMethod, "an FC HTTP trigger event (it has rawPath and requestContext), whose input is its body")},
	} {
		var r HTTPResponse
		require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), []byte(tc.event), Meta{RequestID: "inv-1"}), &r), tc.name)
		require.Equal(t, http.StatusMethodNotAllowed, r.StatusCode, "%s: %s", tc.name, r.Body)
		require.Equal(t, "POST", r.Headers["Allow"], tc.name)
		var b struct{ Code, Message string }
		require.NoError(t, json.Unmarshal([]byte(r.Body), &b), tc.name)
		require.Equal(t, "MethodNotAllowed", b.Code, tc.name)
		if tc.note == "" {
			require.Equal(t, "logistics-get-quota takes POST", b.Message, tc.name)
		} else {
			require.Equal(t, "logistics-get-quota takes POST: "+tc.note, b.Message, tc.name)
		}
	}
	require.Equal(t, int32(0), hits.Load(), "nothing reached the vendor")
	// Real events with every copy saying POST, and v2's routeKeys, run.
	for _, ev := range []string{
		`{"version":"2.0","rawPath":"/x","routeKey":"POST /x","requestContext":{"routeKey":"POST /x","http":{"method":"POST"}},"body":` + body + `}`,
		`{"version":"2.0","rawPath":"/x","routeKey":"$default","requestContext":{"routeKey":"$default","http":{"method":"POST"}},"body":` + body + `}`,
		`{"version":"2.0","rawPath":"/x","routeKey":"ANY /x","requestContext":{"http":{"method":"POST"}},"body":` + body + `}`,
		`{"httpMethod":"POST","requestContext":{"httpMethod":"POST"},"path":"/p","body":` + body + `}`,
	} {
		var r HTTPResponse
		require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), []byte(ev), Meta{RequestID: "inv-1"}), &r))
		require.Equal(t, http.StatusOK, r.StatusCode, "%s: %s", ev, r.Body)
	}
	require.Equal(t, int32(4), hits.Swap(0))
	// REST's requestContext copy alone, when it says POST, is a POST.
	var r HTTPResponse
	require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), []byte(`{"requestContext":{"httpMethod":"POST"},"path":"/p","body":`+body+`}`), Meta{RequestID: "inv-1"}), &r))
	require.Equal(t, http.StatusOK, r.StatusCode, r.Body)
	require.Equal(t, int32(1), hits.Load())
}

// An event the probe cannot read as one (a marker member of another type),
// or one that gives a member it is read from twice (exactly or in another
// case: encoding/json takes the last), is a malformed event (-1001), never
// a direct input: under CLOUDCALL_UNKNOWN_FIELDS=ignore the input decoder
// skipped its httpMethod and requestContext, and a GET charged (a
// re-tester), as did {"httpMethod":"GET","httpMethod":"POST",...}.
func TestAMalformedEventIsNeverADirectInput(t *testing.T) {
	h, hits := upstreamHandler(t)
	direct := `"deliveryId":"YTO","bizId":"xyz"`
	for _, tc := range []struct{ name, payload, says string }{
		{"version a number", `{"version":1,"requestContext":{"httpMethod":"GET"},"httpMethod":"GET",` + direct + `}`, "malformed platform event"},
		{"triggerTime a number", `{"triggerTime":1,"requestContext":{"httpMethod":"GET"},` + direct + `}`, "malformed platform event"},
		{"source a number", `{"source":5,"httpMethod":"GET",` + direct + `}`, "malformed platform event"},
		{"rawPath a list", `{"rawPath":[],"httpMethod":"GET",` + direct + `}`, "malformed platform event"},
		{"httpMethod twice", `{"httpMethod":"GET","httpMethod":"POST","requestContext":{},` + direct + `}`, "httpMethod is given twice"},
		{"httpMethod twice in two cases", `{"HttpMethod":"GET","httpMethod":"POST",` + direct + `}`, "httpMethod is given twice"},
		{"requestContext twice", `{"requestContext":{"httpMethod":"GET"},"requestContext":{"httpMethod":"POST"},` + direct + `}`, "requestContext is given twice"},
		{"requestContext twice in two cases", `{"RequestContext":{"httpMethod":"GET"},"requestContext":{"httpMethod":"POST"},` + direct + `}`, "requestContext is given twice"},
		{"REST's method twice inside requestContext", `{"requestContext":{"httpMethod":"GET","HTTPMethod":"POST"},` + direct + `}`, "requestContext.HTTPMethod is given twice"},
		{"v2's method twice", `{"version":"2.0","rawPath":"/x","requestContext":{"http":{"method":"GET","method":"POST"}},"body":"{}"}`, "requestContext.http.method is given twice"},
		{"v2's method twice in two cases", `{"version":"2.0","rawPath":"/x","requestContext":{"http":{"Method":"GET","method":"POST"}},"body":"{}"}`, "requestContext.http.method is given twice"},
		// Every object read for what runs or who called (an outside re-tester: "iam" beside "IAM" ran the charge).
		{"an IAM description twice", `{"version":"2.0","rawPath":"/x","requestContext":{"http":{"method":"POST"},"authorizer":{"iam":{},"IAM":{"accessKey":"A","userArn":"u"}}},"body":"{}"}`, "requestContext.authorizer.IAM is given twice"},
		{"REST's source address twice", `{"httpMethod":"POST","requestContext":{"identity":{"sourceIp":"1.1.1.1","SourceIp":"2.2.2.2"}},"body":"{}"}`, "requestContext.identity.SourceIp is given twice"},
		{"a header twice in one spelling", `{"version":"2.0","rawPath":"/x","headers":{"authorization":"a","authorization":"b"},"requestContext":{"http":{"method":"POST"}},"body":"{}"}`, "headers.authorization is given twice"},
		{"a multi-value header twice in one spelling", `{"httpMethod":"POST","multiValueHeaders":{"Authorization":["a"],"Authorization":["b"]},"requestContext":{},"body":"{}"}`, "multiValueHeaders.Authorization is given twice"},
	} {
		// The operation here reads no input, as one under the ignore
		// policy skips every member it does not take: only the event's
		// refusal keeps it from running.
		msg, _, _ := errMsgOf(t, h.Invoke(context.Background(), []byte(tc.payload), Meta{RequestID: "r"}))
		require.Contains(t, msg, "openapi.logistics.getQuota:fail invalid input: ", tc.name)
		require.Contains(t, msg, tc.says, tc.name)
	}
	require.Equal(t, int32(0), hits.Load(), "nothing reached the vendor")
}
