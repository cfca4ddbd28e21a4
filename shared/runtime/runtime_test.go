package runtime

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/logging"
)

func TestPick(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want Platform
	}{
		{"fc", map[string]string{"FC_RUNTIME_API": "127.0.0.1:9000"}, PlatformFC},
		{"lambda", map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}, PlatformLambda},
		{"fc wins over lambda", map[string]string{"FC_RUNTIME_API": "a", "AWS_LAMBDA_RUNTIME_API": "b"}, PlatformFC},
		{"fc custom runtime port", map[string]string{"FC_CUSTOM_LISTEN_PORT": "9000", "FC_FUNCTION_NAME": "f", "FC_REGION": "cn-hangzhou"}, PlatformFCCustom},
		{"local port", map[string]string{"CLOUDCALL_PORT": "8080"}, PlatformHTTP},
		{"fc custom wins over a local port", map[string]string{"FC_CUSTOM_LISTEN_PORT": "9000", "FC_FUNCTION_NAME": "f", "FC_REGION": "cn-hangzhou", "CLOUDCALL_PORT": "8080"}, PlatformFCCustom},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Pick(config.FromMap(c.env))
			require.NoError(t, err)
			require.Equal(t, c.want, p)
		})
	}
	_, err := Pick(config.FromMap(nil))
	require.ErrorContains(t, err, "FC_RUNTIME_API")
	require.ErrorContains(t, err, "AWS_LAMBDA_RUNTIME_API")
	// Outside FC nothing strips a caller's x-fc-control-path: this mode
	// would run an unsigned POST /invoke as an event.
	for _, env := range []map[string]string{{"FC_CUSTOM_LISTEN_PORT": "9000"}, {"FC_CUSTOM_LISTEN_PORT": "9000", "FC_FUNCTION_NAME": "f"},
		{"FC_CUSTOM_LISTEN_PORT": "9000", "FC_REGION": "cn-hangzhou", "CLOUDCALL_PORT": "8080"}} {
		_, err = Pick(config.FromMap(env))
		require.ErrorContains(t, err, "FC_CUSTOM_LISTEN_PORT is set without FC_FUNCTION_NAME and FC_REGION", env)
		require.ErrorContains(t, err, "use CLOUDCALL_PORT")
	}

	require.Equal(t, "0.0.0.0:9000", listenAddr(config.FromMap(map[string]string{"FC_CUSTOM_LISTEN_PORT": "9000"})), "FC custom runtimes listen on every interface")
	require.Equal(t, "127.0.0.1:8080", listenAddr(config.FromMap(map[string]string{"CLOUDCALL_PORT": "8080"})), "local use stays on loopback")
	require.Equal(t, "127.0.0.1:9000", listenAddr(config.FromMap(map[string]string{"FC_CUSTOM_LISTEN_PORT": "9000", "CLOUDCALL_HOST": "127.0.0.1"})), "tests narrow it to loopback")
}

// seen is what the test operation was handed.
type seen struct {
	mu       sync.Mutex
	calls    int
	in       envelope.Input
	deadline time.Time
	hasDL    bool
}

type echoIn struct {
	Name string `json:"name"`
}

func (e *echoIn) Validate() error {
	if e.Name == "" {
		return envelope.Invalid("name", "required")
	}
	return nil
}

// echoFactory builds "test.echo": it decodes {name} strictly and answers
// {"hello": name}.
func echoFactory(s *seen, initErr error) Factory {
	return func(_ context.Context, _ Deps) (envelope.Op, error) {
		return envelope.Op{API: "test.echo", Handle: func(ctx context.Context, in *envelope.Input) (any, error) {
			s.mu.Lock()
			s.calls++
			s.in = *in
			s.deadline, s.hasDL = ctx.Deadline()
			s.mu.Unlock()
			var v echoIn
			if err := envelope.Decode(in.Body, &v); err != nil {
				return nil, err
			}
			if v.Name == "store-down" {
				return nil, &envelope.Error{Code: envelope.CodeStoreUnavailable, Reason: "the store is down"}
			}
			return map[string]string{"hello": v.Name}, nil
		}}, initErr
	}
}

func newHandler(t *testing.T, env map[string]string, s *seen, initErr error) (*Handler, *bytes.Buffer) {
	t.Helper()
	e := config.FromMap(env)
	logs := &bytes.Buffer{}
	h, err := New(context.Background(), e, NewLogger(logs, e), echoFactory(s, initErr))
	require.NoError(t, err)
	return h, logs
}

func fcHTTP(body string, b64 bool) []byte {
	if b64 {
		body = base64.StdEncoding.EncodeToString([]byte(body))
	}
	ev := map[string]any{"version": "v1", "rawPath": "/echo", "body": body, "isBase64Encoded": b64,
		"headers":        map[string]string{"Content-Type": "application/json"},
		"requestContext": map[string]any{"requestId": "req-1", "http": map[string]string{"method": "POST", "path": "/echo", "sourceIp": "10.0.0.1"}}}
	b, _ := json.Marshal(ev)
	return b
}

func apigwV2(body string) []byte {
	ev := map[string]any{"version": "2.0", "routeKey": "$default", "rawPath": "/echo", "rawQueryString": "x=1", "body": body, "isBase64Encoded": false,
		"headers":        map[string]string{"content-type": "application/json"},
		"requestContext": map[string]any{"requestId": "req-2", "http": map[string]string{"method": "POST", "path": "/echo", "sourceIp": "10.0.0.2"}}}
	b, _ := json.Marshal(ev)
	return b
}

// apigwV2IAM is an HTTP API route or function URL with AWS_IAM: API Gateway
// verified the SigV4 Authorization and says who signed.
func apigwV2IAM(body string) []byte {
	ev := map[string]any{"version": "2.0", "routeKey": "POST /echo", "rawPath": "/echo", "rawQueryString": "", "body": body, "isBase64Encoded": false,
		"headers": map[string]string{"content-type": "application/json", "authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261130/cn-north-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"},
		"requestContext": map[string]any{"requestId": "req-3", "http": map[string]string{"method": "POST", "path": "/echo", "sourceIp": "10.0.0.3"},
			"authorizer": map[string]any{"iam": map[string]any{"accessKey": "AKIDEXAMPLE", "accountId": "111122223333", "userArn": "arn:aws:iam::111122223333:user/backend"}}}}
	b, _ := json.Marshal(ev)
	return b
}

func decodeHTTP(t *testing.T, out []byte) (HTTPResponse, map[string]any) {
	t.Helper()
	var r HTTPResponse
	require.NoError(t, json.Unmarshal(out, &r), string(out))
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.Body), &m), r.Body)
	return r, m
}

// A function whose HTTP triggers take unsigned calls says so at start, on
// every platform: left over in a deployer's shell, it deployed an open
// charge that nothing logged (an outside tester).
func TestAnonymousTriggersAreSaidAtStart(t *testing.T) {
	_, logs := newHandler(t, map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true"}, &seen{}, nil)
	require.Contains(t, logs.String(), `"level":"WARN","msg":"`+AnonymousWarning+`"`)
	_, logs = newHandler(t, map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true", "CLOUDCALL_CALLER_KEYS": "k:0123456789abcdef0123"}, &seen{}, nil)
	require.NotContains(t, logs.String(), "CLOUDCALL_ALLOW_ANONYMOUS", "caller keys set: every trigger call is signed")
	_, logs = newHandler(t, nil, &seen{}, nil)
	require.NotContains(t, logs.String(), "WARN")
}

func TestInvokeShapes(t *testing.T) {
	anon := map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true"}
	cases := []struct {
		name    string
		env     map[string]string
		payload []byte
		http    bool // the answer is an HTTP response object
		status  int  // HTTP status, when http
		code    float64
		calls   int // operation runs
		trigger envelope.Trigger
	}{
		{"direct", nil, []byte(`{"name":"a"}`), false, 0, 0, 1, envelope.TriggerDirect},
		{"direct bad input", nil, []byte(`{"nom":"a"}`), false, 0, -1001, 1, envelope.TriggerDirect},
		{"direct non-object", nil, []byte(`42`), false, 0, -1001, 1, envelope.TriggerDirect},
		{"fc http", anon, fcHTTP(`{"name":"a"}`, false), true, 200, 0, 1, envelope.TriggerHTTP},
		{"fc http base64", anon, fcHTTP(`{"name":"a"}`, true), true, 200, 0, 1, envelope.TriggerHTTP},
		{"fc http bad body", anon, fcHTTP(`{"name":`, false), true, 400, -1001, 1, envelope.TriggerHTTP},
		{"fc http broken base64", anon, []byte(`{"version":"v1","rawPath":"/echo","body":"%%","isBase64Encoded":true,"requestContext":{"http":{"method":"POST"}}}`), true, 400, -1001, 0, ""},
		{"fc http refused by default", nil, fcHTTP(`{"name":"a"}`, false), true, 401, -1101, 0, ""},
		{"apigw v2", anon, apigwV2(`{"name":"a"}`), true, 200, 0, 1, envelope.TriggerHTTP},
		{"apigw v2 refused by default", nil, apigwV2(`{"name":"a"}`), true, 401, -1101, 0, ""},
		{"apigw v2 with AWS_IAM runs without our signature", nil, apigwV2IAM(`{"name":"a"}`), true, 200, 0, 1, envelope.TriggerHTTP},
		{"apigw v2 with AWS_IAM and caller keys set", map[string]string{"CLOUDCALL_CALLER_KEYS": "k:0123456789abcdef0123"}, apigwV2IAM(`{"name":"a"}`), true, 200, 0, 1, envelope.TriggerHTTP},
		{"apigw v2 with an empty AWS_IAM description is not believed", nil, []byte(strings.Replace(string(apigwV2(`{"name":"a"}`)), `"requestContext":{`, `"requestContext":{"authorizer":{"iam":{}},`, 1)), true, 401, -1101, 0, ""},
		{"an FC event claiming an authorizer is not believed", nil, []byte(strings.Replace(string(fcHTTP(`{"name":"a"}`, false)), `"requestContext":{`, `"requestContext":{"authorizer":{"iam":{"userArn":"x"}},`, 1)), true, 401, -1101, 0, ""},
		{"fc timer", nil, []byte(`{"triggerTime":"2024-01-01T00:00:00Z","triggerName":"t","payload":"{\"name\":\"tick\"}"}`), false, 0, 0, 1, envelope.TriggerTimer},
		{"eventbridge", nil, []byte(`{"version":"0","detail-type":"Scheduled Event","source":"aws.events","detail":{"name":"tick"}}`), false, 0, 0, 1, envelope.TriggerTimer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &seen{}
			h, _ := newHandler(t, c.env, s, nil)
			out := h.Invoke(context.Background(), c.payload, Meta{RequestID: "platform-req"})
			var m map[string]any
			if c.http {
				r, body := decodeHTTP(t, out)
				require.Equal(t, c.status, r.StatusCode)
				require.Equal(t, "application/json; charset=utf-8", r.Headers["Content-Type"])
				m = body
			} else {
				require.NoError(t, json.Unmarshal(out, &m), string(out))
			}
			require.Equal(t, c.code, m["errCode"], m)
			if c.code == 0 {
				require.Equal(t, "test.echo:ok", m["errMsg"])
			} else {
				require.True(t, strings.HasPrefix(m["errMsg"].(string), "test.echo:fail "), m["errMsg"])
			}
			require.Equal(t, c.calls, s.calls)
			if c.calls > 0 {
				require.Equal(t, c.trigger, s.in.Trigger)
			}
		})
	}
}

// rawPath and requestContext are FC 3.0's and API Gateway v2's, told apart
// by version: "v1" and "2.0". An event with another version is refused
// naming the version, what came and what is read; such a v2-shaped event
// was read as a broken FC one ("requestContext.timeEpoch: expected a
// string, got number", an outside tester). What the table in
// docs/envelope.md recognises is answered as before.
func TestAnEventOfAnUnknownVersionIsRefused(t *testing.T) {
	anon := map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true"}
	v2 := func(version any) []byte {
		ev := map[string]any{"routeKey": "$default", "rawPath": "/echo", "rawQueryString": "", "body": `{"name":"a"}`, "isBase64Encoded": false,
			"headers":        map[string]string{"content-type": "application/json"},
			"requestContext": map[string]any{"requestId": "req-2", "timeEpoch": 1764771200000, "http": map[string]string{"method": "POST", "path": "/echo", "sourceIp": "10.0.0.2"}}}
		if version != "absent" {
			ev["version"] = version
		}
		b, err := json.Marshal(ev)
		require.NoError(t, err)
		return b
	}
	// API Gateway HTTP API payload 1.0: version "1.0", httpMethod, no rawPath.
	payload10 := []byte(`{"version":"1.0","resource":"/echo","path":"/echo","httpMethod":"POST","headers":{"content-type":"application/json"},` +
		`"multiValueHeaders":{"content-type":["application/json"]},"queryStringParameters":null,"multiValueQueryStringParameters":null,` +
		`"requestContext":{"accountId":"111122223333","apiId":"api-id","domainName":"id.execute-api.us-east-1.amazonaws.com","domainPrefix":"id",` +
		`"extendedRequestId":"x","httpMethod":"POST","identity":{"sourceIp":"10.0.0.4","userAgent":"ua"},"path":"/echo","protocol":"HTTP/1.1",` +
		`"requestId":"req-4","requestTime":"03/Dec/2026:14:00:00 +0000","requestTimeEpoch":1764770400000,"resourceId":"POST /echo","resourcePath":"/echo","stage":"$default"},` +
		`"pathParameters":null,"stageVariables":null,"body":"{\"name\":\"a\"}","isBase64Encoded":false}`)
	refused := func(got string) string {
		return `test.echo:fail invalid input: malformed platform event: version: expected "v1" (an FC 3.0 HTTP trigger event) or "2.0" (an API Gateway HTTP API v2 or function URL event) beside rawPath and requestContext, got ` + got + "; no platform sends another (to invoke directly, send the input JSON without rawPath and requestContext)"
	}
	long := strings.Repeat("9", 10000)
	for _, tc := range []struct {
		name    string
		payload []byte
		status  int
		errMsg  string
	}{
		{`"1.0"`, v2("1.0"), 400, refused(`"1.0"`)},
		{`"3.0"`, v2("3.0"), 400, refused(`"3.0"`)},
		{`"v2"`, v2("v2"), 400, refused(`"v2"`)},
		{`""`, v2(""), 400, refused(`""`)},
		{`"V1"`, v2("V1"), 400, refused(`"V1"`)},
		{`"2"`, v2("2"), 400, refused(`"2"`)},
		{"absent", v2("absent"), 400, refused("none")},
		{"null", v2(nil), 400, refused("none")},
		{"10,000 bytes", v2(long), 400, refused(`"` + long[:40] + `…" (10000 bytes in all)`)},
		// What the table recognises, answered as before.
		{`"2.0"`, v2("2.0"), 200, "test.echo:ok"},
		{`"v1" with v2's numeric timeEpoch: a broken FC event`, v2("v1"), 400, "test.echo:fail invalid input: malformed FC HTTP trigger event: requestContext.timeEpoch: expected a string, got number"},
		{`"v1"`, fcHTTP(`{"name":"a"}`, false), 200, "test.echo:ok"},
		{"HTTP API payload 1.0 (httpMethod, no rawPath)", payload10, 200, "test.echo:ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &seen{}
			h, _ := newHandler(t, anon, s, nil)
			r, m := decodeHTTP(t, h.Invoke(context.Background(), tc.payload, Meta{RequestID: "platform-req"}))
			require.Equal(t, tc.status, r.StatusCode, m)
			require.Equal(t, tc.errMsg, m["errMsg"])
			if tc.status == 200 {
				require.Equal(t, 1, s.calls)
				require.Equal(t, envelope.TriggerHTTP, s.in.Trigger)
				return
			}
			require.Equal(t, -1001.0, m["errCode"])
			require.Equal(t, 0, s.calls, "a refused event runs nothing")
		})
	}
}

func TestInvokeHTTPEventFieldsReachTheOperation(t *testing.T) {
	s := &seen{}
	h, _ := newHandler(t, map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true", "CLOUDCALL_FUNCTION": "echo"}, s, nil)
	h.Invoke(context.Background(), apigwV2(`{"name":"a"}`), Meta{RequestID: "platform-req"})
	require.Equal(t, "POST", s.in.Method)
	require.Equal(t, "/echo", s.in.Path)
	require.Equal(t, "x=1", s.in.RawQuery)
	require.Equal(t, "10.0.0.2", s.in.SourceIP)
	require.Equal(t, "req-2", s.in.RequestID, "the event's request id wins")
	require.Equal(t, "echo", s.in.Function)
	require.Equal(t, "application/json", s.in.HeaderValue("Content-Type"))

	h.Invoke(context.Background(), []byte(`{"name":"a"}`), Meta{RequestID: "platform-req"})
	require.Equal(t, "platform-req", s.in.RequestID, "direct invocations take the platform's")
}

func TestAnswerReserve(t *testing.T) {
	for left, want := range map[time.Duration]time.Duration{
		100 * time.Millisecond: 0, 199 * time.Millisecond: 0, 200 * time.Millisecond: 100 * time.Millisecond,
		3 * time.Second: 300 * time.Millisecond, 10 * time.Second: time.Second, 15 * time.Minute: time.Second,
	} {
		require.Equal(t, want, AnswerReserve(left), left)
	}
}

func TestInvokeDeadlines(t *testing.T) {
	s := &seen{}
	h, _ := newHandler(t, map[string]string{"CLOUDCALL_TIMEOUT": "7s"}, s, nil)

	before := time.Now()
	h.Invoke(context.Background(), []byte(`{"name":"a"}`), Meta{})
	require.True(t, s.hasDL, "without a platform deadline the handler sets one")
	// A tenth is kept back to answer: 700 ms of 7 s.
	require.WithinRange(t, s.deadline, before.Add(7*time.Second-700*time.Millisecond-time.Millisecond), time.Now().Add(7*time.Second-700*time.Millisecond))

	platform := time.Now().Add(90 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), platform)
	defer cancel()
	h.Invoke(ctx, []byte(`{"name":"a"}`), Meta{})
	require.Equal(t, platform.Add(-time.Second), s.deadline, "the platform's deadline less the answer's reserve (at most 1 s), never extended")

	// Too little left to keep anything back: the deadline as it is.
	soon := time.Now().Add(150 * time.Millisecond)
	ctx, cancel = context.WithDeadline(context.Background(), soon)
	defer cancel()
	h.Invoke(ctx, []byte(`{"name":"a"}`), Meta{})
	require.Equal(t, soon, s.deadline)

}

// An operation's own default deadline (the charge's 15 s) is the one used
// when the platform gives none and CLOUDCALL_TIMEOUT is not set; the
// setting, when present, wins and is what the factory sees in Deps.
func TestTheOperationsDefaultDeadline(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      map[string]string
		opTO     time.Duration
		want     time.Duration
		depsSeen time.Duration
	}{
		{"runtime default", nil, 0, DefaultTimeout, 0},
		{"operation default", nil, 15 * time.Second, 15 * time.Second, 0},
		{"setting wins", map[string]string{"CLOUDCALL_TIMEOUT": "3s"}, 15 * time.Second, 3 * time.Second, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &seen{}
			var deps Deps
			f := func(ctx context.Context, d Deps) (envelope.Op, error) {
				deps = d
				op, err := echoFactory(s, nil)(ctx, d)
				op.Timeout = tc.opTO
				return op, err
			}
			e := config.FromMap(tc.env)
			h, err := New(context.Background(), e, NewLogger(io.Discard, e), f)
			require.NoError(t, err)
			require.Equal(t, tc.depsSeen, deps.Timeout)
			before := time.Now()
			out := h.Invoke(context.Background(), []byte(`{"name":"a"}`), Meta{})
			require.Contains(t, string(out), `"errCode":0`)
			require.True(t, s.hasDL)
			want := tc.want - AnswerReserve(tc.want)
			require.WithinRange(t, s.deadline, before.Add(want-time.Millisecond), time.Now().Add(want))
		})
	}
}

func TestInvokeUnconfiguredFunction(t *testing.T) {
	s := &seen{}
	h, logs := newHandler(t, map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true"}, s, errors.New("set WECHAT_APPSECRET (or WECHAT_APPSECRET_FILE)"))
	var m map[string]any
	require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), []byte(`{"name":"a"}`), Meta{}), &m))
	require.Equal(t, float64(envelope.CodeConfig), m["errCode"])
	require.Contains(t, m["errMsg"], "WECHAT_APPSECRET")
	require.Equal(t, 0, s.calls)
	require.Contains(t, logs.String(), "not configured", "said once at cold start")

	r, _ := decodeHTTP(t, h.Invoke(context.Background(), fcHTTP(`{"name":"a"}`, false), Meta{}))
	require.Equal(t, 500, r.StatusCode)
}

func TestInvokeHTTPLimits(t *testing.T) {
	s := &seen{}
	h, _ := newHandler(t, map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true"}, s, nil)
	big := `{"name":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	r, m := decodeHTTP(t, h.Invoke(context.Background(), fcHTTP(big, false), Meta{}))
	require.Equal(t, 413, r.StatusCode)
	require.Equal(t, float64(envelope.CodePayloadTooLarge), m["errCode"])
	require.Contains(t, m["errMsg"], "request body is over the limit; at most 65536 bytes are accepted (CLOUDCALL_MAX_BODY_BYTES)")
	require.Equal(t, 0, s.calls)

	// The limit is a policy: raised, the same body runs, over HTTP too.
	h, _ = newHandler(t, map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true", "CLOUDCALL_MAX_BODY_BYTES": "131072"}, s, nil)
	r, m = decodeHTTP(t, h.Invoke(context.Background(), fcHTTP(big, false), Meta{}))
	require.Equal(t, 200, r.StatusCode, m)
	require.Equal(t, 1, s.calls)
	srv := httptest.NewServer(h.HTTPHandler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/x", "application/json", strings.NewReader(big))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, 2, s.calls)

	for _, v := range []string{"1e6", "100", "7000000"} {
		h, _ = newHandler(t, map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true", "CLOUDCALL_MAX_BODY_BYTES": v}, s, nil)
		for _, body := range []string{`{"name":"a"}`, big} {
			_, m = decodeHTTP(t, h.Invoke(context.Background(), fcHTTP(body, false), Meta{}))
			require.Equal(t, float64(envelope.CodeConfig), m["errCode"], v)
			require.Contains(t, m["errMsg"], "CLOUDCALL_MAX_BODY_BYTES", v)
		}
	}
	require.Equal(t, 2, s.calls, "a misconfigured function runs nothing")
}

func TestHTTPHandler(t *testing.T) {
	s := &seen{}
	h, logs := newHandler(t, map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true", "CLOUDCALL_FUNCTION": "echo-fn"}, s, nil)
	srv := httptest.NewServer(h.HTTPHandler())
	defer srv.Close()

	post := func(path, body string, hdr map[string]string) (*http.Response, map[string]any) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &m)
		return resp, m
	}

	resp, m := post("/echo?x=1", `{"name":"a"}`, nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "a", m["hello"])
	// No platform named the request: it gets an id, in the answer and in
	// its log line, with the function's name.
	id := resp.Header.Get("X-Request-Id")
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`, id)
	require.Equal(t, id, s.in.RequestID)
	require.Contains(t, logs.String(), `"requestId":"`+id+`","function":"echo-fn"`)
	require.Equal(t, "/echo", s.in.Path)
	require.Equal(t, "x=1", s.in.RawQuery)

	resp, m = post("/echo", `{"name":1}`, nil)
	require.Equal(t, 400, resp.StatusCode)
	require.Equal(t, -1001.0, m["errCode"])

	// A -1501 says when to retry, in the body and the header, as
	// docs/envelope.md and openapi.json promise (an outside tester found
	// neither on CK1's and the charge's).
	resp, m = post("/echo", `{"name":"store-down"}`, nil)
	require.Equal(t, 503, resp.StatusCode)
	require.Equal(t, -1501.0, m["errCode"])
	require.Equal(t, 1.0, m["retryAfter"])
	require.Equal(t, "1", resp.Header.Get("Retry-After"))

	resp, _ = post("/echo", `{"name":"`+strings.Repeat("a", MaxBodyBytes)+`"}`, nil)
	require.Equal(t, 413, resp.StatusCode)

	// A plain server believes no x-fc-* header: /invoke is a trigger call
	// and the caller's deadline header is ignored.
	resp, m = post("/invoke", `{"name":"b"}`, map[string]string{"x-fc-control-path": "/invoke", "x-fc-function-deadline": "1", "x-fc-request-id": "fc-1"})
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "b", m["hello"])
	require.Equal(t, envelope.TriggerHTTP, s.in.Trigger)
	require.Equal(t, "/invoke", s.in.Path)
	require.NotEqual(t, "fc-1", s.in.RequestID, "the caller's x-fc-request-id is not believed")
	require.Equal(t, resp.Header.Get("X-Request-Id"), s.in.RequestID)
	require.True(t, s.deadline.After(time.Now()), "the handler's own timeout, not the caller's header")
}

// Behind FC's custom-runtime proxy, FC's control path says what a request is.
func TestFCCustomRuntimeHandler(t *testing.T) {
	s := &seen{}
	h, _ := newHandler(t, map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true"}, s, nil)
	srv := httptest.NewServer(h.FCCustomRuntimeHandler())
	defer srv.Close()
	send := func(method, path, body string, hdr map[string]string) (int, map[string]any) {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	dl := time.Now().Add(42 * time.Second).Truncate(time.Millisecond)
	st, m := send("POST", "/invoke", `{"name":"b"}`, map[string]string{"x-fc-control-path": "/invoke", "x-fc-function-deadline": strconv.FormatInt(dl.UnixMilli(), 10), "x-fc-request-id": "fc-1"})
	require.Equal(t, 200, st)
	require.Equal(t, "b", m["hello"])
	require.Equal(t, envelope.TriggerDirect, s.in.Trigger)
	require.True(t, s.deadline.Equal(dl.Add(-time.Second)), fmt.Sprint(s.deadline, dl), "FC's deadline less the answer's reserve")
	require.Equal(t, "fc-1", s.in.RequestID)

	st, _ = send("POST", "/initialize", ``, map[string]string{"x-fc-control-path": "/initialize"})
	require.Equal(t, 200, st)
	st, _ = send("GET", "/pre-stop", ``, map[string]string{"x-fc-control-path": "/pre-stop"})
	require.Equal(t, 200, st)
	require.Equal(t, 1, s.calls, "lifecycle hooks run nothing")

	st, m = send("POST", "/echo", `{"name":"c"}`, map[string]string{"x-fc-control-path": "/http-invoke", "x-fc-request-id": "fc-2"})
	require.Equal(t, 200, st)
	require.Equal(t, envelope.TriggerHTTP, s.in.Trigger)
	require.Equal(t, "fc-2", s.in.RequestID)
}

func TestHTTPHandlerRefusesByDefault(t *testing.T) {
	s := &seen{}
	h, _ := newHandler(t, nil, s, nil)
	srv := httptest.NewServer(h.HTTPHandler())
	defer srv.Close()
	resp, err := srv.Client().Post(srv.URL+"/echo", "application/json", strings.NewReader(`{"name":"a"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode)
	require.Equal(t, 0, s.calls)
}

func TestBinaryNameNamesTheFunction(t *testing.T) {
	saved := os.Args[0]
	defer func() { os.Args[0] = saved }()
	for arg0, want := range map[string]string{
		"/srv/bin/logistics-get-quota": "logistics-get-quota",
		"./quota-alert":                "quota-alert",
		"/code/main":                   "",
		"/var/task/bootstrap":          "",
		"/tmp/go-build1/runtime.test":  "",
	} {
		os.Args[0] = arg0
		require.Equal(t, want, binaryName(), arg0)
	}
}

// A binary run by hand as ./main or ./bootstrap, with no platform naming
// it, still names its function in every log line: the registry knows it
// by its api.
func TestAnUnnamedBinaryNamesItsFunctionFromTheRegistry(t *testing.T) {
	e := config.FromMap(map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true"})
	logs := &bytes.Buffer{}
	factory := func(context.Context, Deps) (envelope.Op, error) {
		return envelope.Op{API: "openapi.logistics.getQuota", Handle: func(context.Context, *envelope.Input) (any, error) {
			return map[string]any{"quotaNum": 1}, nil
		}}, nil
	}
	h, err := New(context.Background(), e, NewLogger(logs, e), factory)
	require.NoError(t, err)
	require.Equal(t, "logistics-get-quota", h.Deps.Function)
	h.Invoke(context.Background(), []byte(`{}`), Meta{RequestID: "r-1"})
	require.Contains(t, logs.String(), `"requestId":"r-1","function":"logistics-get-quota","api":"openapi.logistics.getQuota"`)
}

// A built function's warm-up runs once, in the background: New returns
// while it is still running, so the runtime's first poll never waits for
// it. A function that is not configured warms nothing (nothing will run).
func TestNewRunsTheWarmUpOnceInTheBackground(t *testing.T) {
	for _, c := range []struct {
		name    string
		initErr error
		want    int32
	}{
		{"configured", nil, 1},
		{"not configured", errors.New("set TOP_APP_KEY"), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var runs atomic.Int32
			release := make(chan struct{})
			done := make(chan struct{})
			f := func(context.Context, Deps) (envelope.Op, error) {
				return envelope.Op{API: "warm.test", Handle: func(context.Context, *envelope.Input) (any, error) { return nil, nil },
					Warm: func(context.Context) {
						runs.Add(1)
						<-release
						close(done)
					}}, c.initErr
			}
			e := config.FromMap(map[string]string{})
			built := make(chan *Handler, 1)
			go func() {
				h, _ := New(context.Background(), e, NewLogger(io.Discard, e), f)
				built <- h
			}()
			select {
			case h := <-built:
				require.NotNil(t, h)
			case <-time.After(5 * time.Second):
				t.Fatal("New waited for the warm-up")
			}
			close(release)
			if c.want == 0 {
				require.Never(t, func() bool { return runs.Load() > 0 }, 100*time.Millisecond, 5*time.Millisecond)
				return
			}
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("the warm-up never ran")
			}
			require.Equal(t, c.want, runs.Load())
		})
	}
}

// CLOUDCALL_LOG_LEVEL=debug (any case) adds a line per vendor request:
// method, host, path, status and time, never the query that carries
// WeChat's token. A level it does not know is a configuration problem.
func TestDebugLogsVendorRequests(t *testing.T) {
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer vendor.Close()
	for _, lvl := range []string{"debug", "DEBUG"} {
		h, logs := newHandler(t, map[string]string{"CLOUDCALL_LOG_LEVEL": lvl}, &seen{}, nil)
		resp, err := h.Deps.HTTP.Get(vendor.URL + "/cgi-bin/express/business/quota/get?access_token=TOKEN-s3cret")
		require.NoError(t, err)
		resp.Body.Close()
		require.Contains(t, logs.String(), `"msg":"vendor request"`, lvl)
		require.Contains(t, logs.String(), `"path":"/cgi-bin/express/business/quota/get"`)
		require.Contains(t, logs.String(), `"status":204`)
		require.NotContains(t, logs.String(), "s3cret")
	}
	// A webhook whose token is in its path (Slack, Feishu): the path is
	// redacted like the secret URL it belongs to.
	hook := vendor.URL + "/services/T0/B0/s3cretslack"
	h, logs := newHandler(t, map[string]string{"CLOUDCALL_LOG_LEVEL": "debug", "QUOTA_ALERT_SLACK_URL": hook}, &seen{}, nil)
	_, err := h.Deps.Env.Secret("QUOTA_ALERT_SLACK_URL")
	require.NoError(t, err)
	resp, err := h.Deps.HTTP.Post(hook, "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, logs.String(), `"msg":"vendor request"`)
	require.NotContains(t, logs.String(), "s3cretslack")

	h, logs = newHandler(t, nil, &seen{}, nil)
	resp, err = h.Deps.HTTP.Get(vendor.URL + "/x")
	require.NoError(t, err)
	resp.Body.Close()
	require.NotContains(t, logs.String(), "vendor request", "info: no line per request")

	s := &seen{}
	h, _ = newHandler(t, map[string]string{"CLOUDCALL_LOG_LEVEL": "loud"}, s, nil)
	var m map[string]any
	require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), []byte(`{"name":"a"}`), Meta{}), &m))
	require.Equal(t, float64(envelope.CodeConfig), m["errCode"])
	require.Contains(t, m["errMsg"], `CLOUDCALL_LOG_LEVEL="loud": expected debug, info, warn or error`)
	require.Equal(t, 0, s.calls)
}

// An answer replayed from an idempotency record says so: the HTTP answer in
// Idempotent-Replayed (as Stripe's API does), the log line in "replayed";
// a fresh answer carries neither.
func TestAReplayedAnswerIsMarked(t *testing.T) {
	for _, replayed := range []bool{true, false} {
		e := config.FromMap(map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true"})
		logs := &bytes.Buffer{}
		factory := func(context.Context, Deps) (envelope.Op, error) {
			return envelope.Op{API: "demo.api", Handle: func(context.Context, *envelope.Input) (any, error) {
				return envelope.Prepared{Status: 200, Body: []byte(`{"errCode":0,"errMsg":"demo.api:ok"}`), Replayed: replayed}, nil
			}}, nil
		}
		h, err := New(context.Background(), e, NewLogger(logs, e), factory)
		require.NoError(t, err)
		var ev HTTPResponse
		require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), apigwV2(`{}`), Meta{RequestID: "r1"}), &ev))
		srv := httptest.NewServer(h.HTTPHandler())
		resp, err := srv.Client().Post(srv.URL+"/demo", "application/json", strings.NewReader(`{}`))
		require.NoError(t, err)
		resp.Body.Close()
		srv.Close()
		if replayed {
			require.Equal(t, "true", ev.Headers["Idempotent-Replayed"])
			require.Equal(t, "true", resp.Header.Get("Idempotent-Replayed"))
			require.Equal(t, 2, strings.Count(logs.String(), `"replayed":true`))
			continue
		}
		require.NotContains(t, ev.Headers, "Idempotent-Replayed")
		require.Empty(t, resp.Header.Values("Idempotent-Replayed"))
		require.NotContains(t, logs.String(), "replayed")
	}
}

// TestTheGatewaysRequestIDIsInTheLogLine: behind an API Gateway HTTP API the
// caller hears the gateway's id (apigw-requestid, the answer's requestId),
// which is never the Lambda invocation's; the line names both, so the id a
// client reports finds its line (it was in no line at all).
func TestTheGatewaysRequestIDIsInTheLogLine(t *testing.T) {
	s := &seen{}
	h, logs := newHandler(t, map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true", "CLOUDCALL_FUNCTION": "echo"}, s, nil)
	h.Invoke(context.Background(), apigwV2(`{"name":"a"}`), Meta{RequestID: "lambda-req"})
	require.Equal(t, "req-2", s.in.RequestID, "the call goes by the gateway's id (answers name it)")
	line := lastLine(t, logs)
	require.Equal(t, "lambda-req", line["requestId"])
	require.Equal(t, "req-2", line["gatewayRequestId"])

	// A direct invocation has one id: no second field.
	h.Invoke(context.Background(), []byte(`{"name":"a"}`), Meta{RequestID: "lambda-req-2"})
	line = lastLine(t, logs)
	require.Equal(t, "lambda-req-2", line["requestId"])
	require.NotContains(t, line, "gatewayRequestId")
}

// lastLine is the last JSON line written to logs.
func lastLine(t *testing.T, logs *bytes.Buffer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &m))
	return m
}

// TestADirectInvocationHasTheBodyLimitToo: the platforms take far larger
// invocations (FC 32 MB) than a 128 MB instance can decode; a 30 MB direct
// invoke got the instance killed for its memory. The input's limit is the
// HTTP trigger's, refused before anything decodes it.
func TestADirectInvocationHasTheBodyLimitToo(t *testing.T) {
	s := &seen{}
	h, _ := newHandler(t, map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true", "CLOUDCALL_FUNCTION": "echo", "CLOUDCALL_MAX_BODY_BYTES": "1024"}, s, nil)
	pad := func(n int) []byte { // {"name":"aaa…"} of exactly n bytes
		return []byte(`{"name":"` + strings.Repeat("a", n-len(`{"name":""}`)) + `"}`)
	}
	var ans map[string]any
	require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), pad(1024), Meta{RequestID: "r1"}), &ans))
	require.Equal(t, 0.0, ans["errCode"], ans)
	require.Equal(t, 1, s.calls)

	require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), pad(1025), Meta{RequestID: "r2"}), &ans))
	require.Equal(t, float64(envelope.CodePayloadTooLarge), ans["errCode"])
	require.Equal(t, "test.echo:fail input is 1025 bytes; at most 1024 are accepted (CLOUDCALL_MAX_BODY_BYTES)", ans["errMsg"])
	require.Equal(t, 1, s.calls, "the operation never saw it")
}

// TestAnEventTooLargeForAnyInputIsRefusedBeforeItIsDecoded: an HTTP or timer
// event is refused by its size before its body is copied and decoded (a 30
// MB body got the 128 MB instance killed first), in the trigger's own shape;
// an input at the limit, however its event escapes it, still runs.
func TestAnEventTooLargeForAnyInputIsRefusedBeforeItIsDecoded(t *testing.T) {
	s := &seen{}
	h, _ := newHandler(t, map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true", "CLOUDCALL_FUNCTION": "echo", "CLOUDCALL_MAX_BODY_BYTES": "1024"}, s, nil)
	var resp struct {
		StatusCode int    `json:"statusCode"`
		Body       string `json:"body"`
	}
	big := fcHTTP(`{"name":"`+strings.Repeat("a", 1<<20)+`"}`, true)
	require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), big, Meta{RequestID: "r1"}), &resp))
	require.Equal(t, 413, resp.StatusCode)
	require.Contains(t, resp.Body, `"errCode":-1002`)
	require.Contains(t, resp.Body, fmt.Sprintf("the fc-http event is %d bytes, more than an input within the limit arrives in; at most 1024 bytes of input are accepted (CLOUDCALL_MAX_BODY_BYTES)", len(big)))

	// The refusal copies nothing of the body: a few KiB whatever its size.
	huge := fcHTTP(`{"name":"`+strings.Repeat("a", 16<<20)+`"}`, true)
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	out := h.Invoke(context.Background(), huge, Meta{RequestID: "r0"})
	goruntime.ReadMemStats(&after)
	require.Contains(t, string(out), `"statusCode":413`)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(256<<10), "bytes allocated to refuse a %d-byte event", len(huge))

	timer, _ := json.Marshal(map[string]string{"triggerTime": "2026-12-01T00:00:00Z", "triggerName": "t", "payload": strings.Repeat("x", 1<<20)})
	var ans map[string]any
	require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), timer, Meta{RequestID: "r2"}), &ans))
	require.Equal(t, float64(envelope.CodePayloadTooLarge), ans["errCode"])
	require.Equal(t, 0, s.calls)

	// A 1024-byte body of escaped backslashes: the event escapes each
	// backslash again, twice the body's size, and it is still an input
	// within the limit.
	body := `{"name":"` + strings.Repeat(`\\`, 506) + `a"}`
	require.Len(t, body, 1024)
	ev := apigwV2(body)
	require.Greater(t, len(ev), 2*1024)
	require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), ev, Meta{RequestID: "r3"}), &resp))
	require.NotEqual(t, 413, resp.StatusCode, resp.Body)
	require.Equal(t, 1, s.calls, "an input at the limit runs, however its event spells it")
}

// A vendor error that quotes a credential percent-encoded, as a gateway
// quotes the request it refused, is masked in the answer and the log line
// however the encoding spells it (an STS token went out in clear with
// lower-case hex, '/' left as it is, or encoded twice: outside testers).
func TestASecretQuotedPercentEncodedIsMasked(t *testing.T) {
	const token = "CAIS+st5/tok=en+ABC/xyz=="
	for _, quoted := range []string{"CAIS%2Bst5%2Ftok%3Den%2BABC%2Fxyz%3D%3D", "CAIS%2bst5%2ftok%3den%2bABC%2fxyz%3d%3d",
		"CAIS%2Bst5/tok%3Den%2BABC/xyz%3D%3D", "CAIS%252Bst5%252Ftok%253Den%252BABC%252Fxyz%253D%253D"} {
		e := config.FromMap(map[string]string{"TEST_TOKEN": token, "CLOUDCALL_ALLOW_ANONYMOUS": "true"})
		logs := &bytes.Buffer{}
		h, err := New(context.Background(), e, NewLogger(logs, e), func(_ context.Context, d Deps) (envelope.Op, error) {
			_, err := d.Env.Secret("TEST_TOKEN")
			return envelope.Op{API: "test.echo", Handle: func(context.Context, *envelope.Input) (any, error) {
				return nil, &envelope.Error{Code: envelope.CodeUpstream, Reason: "vendor refused: SecurityToken=" + quoted + "&Action=x",
					Upstream: &envelope.Upstream{Vendor: "cams", Message: "bad token " + quoted}}
			}}, err
		})
		require.NoError(t, err)
		out := h.Invoke(context.Background(), []byte(`{}`), Meta{RequestID: "r"})
		for what, text := range map[string]string{"answer": string(out), "log": logs.String()} {
			require.NotContains(t, text, quoted, "%s: %s", what, quoted)
			require.NotContains(t, text, "st5", what)
			require.Contains(t, text, logging.Mask, what)
		}
	}
}

// HTTP-server mode takes the methods the function's trigger takes, as the
// deployed trigger and the emulator do: a PUT ran the function, and a GET
// was told its body was empty (a user).
func TestHTTPServerModeTakesTheTriggersMethods(t *testing.T) {
	calls := 0
	factory := func(context.Context, Deps) (envelope.Op, error) {
		return envelope.Op{API: "openapi.logistics.getQuota", Handle: func(context.Context, *envelope.Input) (any, error) {
			calls++
			return map[string]int{"quotaNum": 1}, nil
		}}, nil
	}
	e := config.FromMap(map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true"})
	h, err := New(context.Background(), e, NewLogger(io.Discard, e), factory)
	require.NoError(t, err)
	srv := httptest.NewServer(h.HTTPHandler())
	defer srv.Close()
	for _, method := range []string{http.MethodPut, http.MethodGet, http.MethodDelete, http.MethodPatch} {
		req, err := http.NewRequest(method, srv.URL+"/", strings.NewReader(`{"deliveryId":"YTO","bizId":"xyz"}`))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, method)
		require.Equal(t, "POST", resp.Header.Get("Allow"))
		require.Contains(t, string(body), `"Message":"logistics-get-quota takes POST"`)
	}
	require.Equal(t, 0, calls, "nothing ran")
	resp, err := http.Post(srv.URL+"/", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 1, calls)
}

// A body that says it is compressed is refused as a compressed one is,
// whatever its bytes: one that only claimed gzip ran (a user). Identity is
// no compression.
func TestAContentEncodingIsRefused(t *testing.T) {
	s := &seen{}
	h, _ := newHandler(t, map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "true"}, s, nil)
	srv := httptest.NewServer(h.HTTPHandler())
	defer srv.Close()
	post := func(enc string) (int, map[string]any) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader(`{"name":"a"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if enc != "" {
			req.Header.Set("Content-Encoding", enc)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		return resp.StatusCode, m
	}
	for _, enc := range []string{"gzip", "br", "deflate, gzip"} {
		code, m := post(enc)
		require.Equal(t, 400, code, enc)
		require.Equal(t, float64(envelope.CodeInvalidInput), m["errCode"])
		require.Contains(t, m["errMsg"], `Content-Encoding "`+enc+`": compressed bodies are not accepted; send the JSON uncompressed, without Content-Encoding`)
	}
	// A long one is quoted in part, and the message still says what to do
	// (cut at 512 bytes, it ended inside the caller's value).
	long := strings.Repeat("g", 10000)
	code, m := post(long)
	require.Equal(t, 400, code)
	require.Equal(t, `test.echo:fail invalid input: Content-Encoding "`+long[:40]+`…" (10000 bytes in all): compressed bodies are not accepted; send the JSON uncompressed, without Content-Encoding`, m["errMsg"])
	require.Equal(t, 0, s.calls)
	for _, enc := range []string{"", "identity", "Identity"} {
		code, m := post(enc)
		require.Equal(t, 200, code, "%q: %v", enc, m)
	}
	require.Equal(t, 3, s.calls)
}
