package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/callerauth"
	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
)

const testCallerSecret = "runtime-test-caller-secret-0001"

// No listener, path, method or header combination reaches the operation
// unsigned while HTTP triggers are protected; the one way in without a
// signature is FC's own control path on the FC listener (FC refuses
// x-fc-* headers from callers).
func TestNoUnsignedPathToTheOperation(t *testing.T) {
	s := &seen{}
	h, _ := newHandler(t, map[string]string{"CLOUDCALL_CALLER_KEYS": "backend:" + testCallerSecret}, s, nil)
	listeners := map[string]*httptest.Server{
		"plain (CLOUDCALL_PORT)":            httptest.NewServer(h.HTTPHandler()),
		"fc custom (FC_CUSTOM_LISTEN_PORT)": httptest.NewServer(h.FCCustomRuntimeHandler()),
	}
	for _, srv := range listeners {
		defer srv.Close()
	}
	paths := []string{"/", "/invoke", "/invoke/", "//invoke", "/INVOKE", "/%69nvoke", "/echo/../invoke", "/invoke?x=1",
		"/initialize", "/pre-stop", "/http-invoke", "/echo", "/2023-03-30/functions/echo/invocations",
		"/2015-03-31/functions/echo/invocations", "/2020-11-11/runtime/invocation/next"}
	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"}
	headerSets := []map[string]string{
		nil,
		{"Content-Type": "application/json"},
		{"x-fc-control-path": "/http-invoke"},
		{"x-fc-control-path": "/Invoke"},
		{"x-fc-control-path": "/invoke/"},
		{"x-fc-control-path": "invoke"},
		{"x-fc-control-path": "/invoke?x=1"},
		{"x-fc-function-type": "1"},
		{"X-Fc-Event-Type": "Default"},
		{"x-fc-control-path": "/invoke"},     // only FC can send it on the FC listener
		{"X-FC-CONTROL-PATH": "/initialize"}, // lifecycle: answered, nothing runs
		{"Authorization": "Bearer x"},
		{"Authorization": ""},
	}
	total := 0
	for name, srv := range listeners {
		fc := strings.HasPrefix(name, "fc custom")
		for _, path := range paths {
			for _, method := range methods {
				for _, hdr := range headerSets {
					req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(`{"name":"x"}`))
					require.NoError(t, err)
					for k, v := range hdr {
						req.Header.Set(k, v)
					}
					before := s.calls
					resp, err := srv.Client().Do(req)
					require.NoError(t, err)
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					total++
					label := fmt.Sprintf("%s %s %s %v", name, method, path, hdr)
					control := http.Header{}
					for k, v := range hdr {
						control.Set(k, v)
					}
					cp := control.Get(ControlPathHeader)
					switch {
					case fc && cp == "/invoke":
						require.Equal(t, before+1, s.calls, label+": FC's event reaches the operation")
						require.Equal(t, 200, resp.StatusCode, label)
					case fc && (cp == "/initialize" || cp == "/pre-stop"):
						require.Equal(t, before, s.calls, label)
						require.Equal(t, 200, resp.StatusCode, label)
					default:
						require.Equal(t, before, s.calls, label+": reached the operation unsigned")
						require.Equal(t, 401, resp.StatusCode, label)
						if method != "HEAD" {
							require.Contains(t, string(b), `"errCode":-1101`, label)
						}
					}
				}
			}
		}
	}
	t.Logf("%d combinations; the operation ran only for FC's own /invoke control path", total)
}

// One request must carry one signature: two spellings of Authorization in a
// platform event, or two headers on the wire, are refused whichever is good.
func TestDuplicatedAuthorizationIsRefused(t *testing.T) {
	s := &seen{}
	h, _ := newHandler(t, map[string]string{"CLOUDCALL_CALLER_KEYS": "backend:" + testCallerSecret}, s, nil)
	body := `{"name":"a"}`
	sign := func(nonce string) string {
		a, err := callerauth.Sign("backend", testCallerSecret, "POST", "/echo", "", time.Now().Unix(), nonce, []byte(body))
		require.NoError(t, err)
		return a
	}
	ev := func(headers map[string]string) []byte {
		b, _ := json.Marshal(map[string]any{"version": "v1", "rawPath": "/echo", "body": body, "headers": headers,
			"requestContext": map[string]any{"http": map[string]string{"method": "POST"}}})
		return b
	}
	for _, headers := range []map[string]string{
		{"Authorization": sign("dup-nonce-000000001"), "authorization": "CLOUDCALL-HMAC-SHA256 junk"},
		{"Authorization": sign("dup-nonce-000000002"), "authorization": sign("dup-nonce-000000003")},
		// As FC and API Gateway deliver two: one value, joined by a comma.
		{"Authorization": sign("dup-nonce-000000005") + "," + sign("dup-nonce-000000006")},
	} {
		r, m := decodeHTTP(t, h.Invoke(context.Background(), ev(headers), Meta{}))
		require.Equal(t, 401, r.StatusCode, m)
		require.Contains(t, m["errMsg"], "more than one Authorization header")
	}
	r, _ := decodeHTTP(t, h.Invoke(context.Background(), ev(map[string]string{"authorization": sign("dup-nonce-000000004")}), Meta{}))
	require.Equal(t, 200, r.StatusCode, "one lower-case header is one header")

	srv := httptest.NewServer(h.HTTPHandler())
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/echo", strings.NewReader(body))
	req.Header.Add("Authorization", sign("dup-nonce-000000005"))
	req.Header.Add("Authorization", sign("dup-nonce-000000006"))
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode)
	require.Equal(t, 1, s.calls)
}

// The runtime's own configuration errors never stop the process: every
// invocation answers -1601 naming the variable and what it expects, and the
// operation never runs.
func TestRuntimeConfigErrorsAreAnswered(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys")
	require.NoError(t, os.WriteFile(keyFile, []byte("backend:"+testCallerSecret+" \n"), 0o600))
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"short caller secret", map[string]string{"CLOUDCALL_CALLER_KEYS": "backend:short"}, []string{"CLOUDCALL_CALLER_KEYS", "at least 16 bytes"}},
		{"caller secret with a trailing space", map[string]string{"CLOUDCALL_CALLER_KEYS": "backend:" + testCallerSecret + " "}, []string{"CLOUDCALL_CALLER_KEYS", "whitespace", "verbatim"}},
		{"caller secret after a space after the colon", map[string]string{"CLOUDCALL_CALLER_KEYS": "backend: " + testCallerSecret}, []string{"CLOUDCALL_CALLER_KEYS", "entry 1: the secret", "whitespace", "verbatim"}},
		{"caller key id before a space before the colon", map[string]string{"CLOUDCALL_CALLER_KEYS": "other:" + testCallerSecret + "x,backend :" + testCallerSecret}, []string{"CLOUDCALL_CALLER_KEYS", "entry 2: the key id", "whitespace", "verbatim"}},
		{"caller secret before a space before a comma", map[string]string{"CLOUDCALL_CALLER_KEYS": "backend:" + testCallerSecret + " ,other:" + testCallerSecret + "x"}, []string{"CLOUDCALL_CALLER_KEYS", "entry 1", "whitespace", "verbatim"}},
		{"caller keys file with a trailing space", map[string]string{"CLOUDCALL_CALLER_KEYS_FILE": keyFile}, []string{"CLOUDCALL_CALLER_KEYS_FILE", "whitespace"}},
		{"caller keys file missing", map[string]string{"CLOUDCALL_CALLER_KEYS_FILE": filepath.Join(dir, "nope")}, []string{"CLOUDCALL_CALLER_KEYS_FILE"}},
		{"caller keys not id:secret", map[string]string{"CLOUDCALL_CALLER_KEYS": "just-a-secret-value-here"}, []string{"CLOUDCALL_CALLER_KEYS", "expected id:secret"}},
		{"store URL scheme", map[string]string{"CLOUDCALL_STORE": "postgres://x", "CLOUDCALL_ALLOW_ANONYMOUS": "true"}, []string{"CLOUDCALL_STORE", "expected memory or a redis://"}},
		{"store URL unparseable", map[string]string{"CLOUDCALL_STORE": "redis://:pw@host:notaport/0", "CLOUDCALL_ALLOW_ANONYMOUS": "true"}, []string{"CLOUDCALL_STORE"}},
		{"timeout not a duration", map[string]string{"CLOUDCALL_TIMEOUT": "soon", "CLOUDCALL_ALLOW_ANONYMOUS": "true"}, []string{"CLOUDCALL_TIMEOUT", "expected a duration"}},
		{"timeout not positive", map[string]string{"CLOUDCALL_TIMEOUT": "-5s", "CLOUDCALL_ALLOW_ANONYMOUS": "true"}, []string{"CLOUDCALL_TIMEOUT", "positive"}},
		{"several at once", map[string]string{"CLOUDCALL_TIMEOUT": "0s", "CLOUDCALL_CALLER_KEYS": "a:b"}, []string{"CLOUDCALL_TIMEOUT", "CLOUDCALL_CALLER_KEYS"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &seen{}
			e := config.FromMap(c.env)
			h, err := New(context.Background(), e, NewLogger(io.Discard, e), echoFactory(s, nil))
			require.NoError(t, err, "the process starts")
			check := func(status int, m map[string]any) {
				require.Equal(t, 500, status)
				require.Equal(t, float64(envelope.CodeConfig), m["errCode"], m)
				for _, w := range c.want {
					require.Contains(t, m["errMsg"], w)
				}
				require.NotContains(t, m["errMsg"], testCallerSecret)
				require.NotContains(t, m["errMsg"], "pw@")
			}
			var m map[string]any
			require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), []byte(`{"name":"a"}`), Meta{}), &m))
			check(500, m)
			r, m := decodeHTTP(t, h.Invoke(context.Background(), fcHTTP(`{"name":"a"}`, false), Meta{}))
			check(r.StatusCode, m)
			srv := httptest.NewServer(h.HTTPHandler())
			defer srv.Close()
			resp, err := srv.Client().Post(srv.URL+"/echo", "application/json", strings.NewReader(`{"name":"a"}`))
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, json.Unmarshal(b, &m))
			if c.env["CLOUDCALL_ALLOW_ANONYMOUS"] == "" && !strings.Contains(c.name, "caller") && c.name != "several at once" {
				require.Equal(t, 401, resp.StatusCode, "no caller keys: still default deny")
			} else {
				check(resp.StatusCode, m)
			}
			require.Equal(t, 0, s.calls, "nothing runs while the runtime is misconfigured")
		})
	}
}

// HTTP events of shapes the bundle does not deploy (API Gateway REST 1.0,
// ALB) and anything carrying a requestContext are HTTP calls: guarded,
// never taken for a platform-authenticated direct invocation.
func TestOtherHTTPEventsAreGuarded(t *testing.T) {
	s := &seen{}
	h, _ := newHandler(t, map[string]string{"CLOUDCALL_CALLER_KEYS": "backend:" + testCallerSecret}, s, nil)
	body := `{"name":"a"}`
	restV1 := func(auth string) []byte {
		ev := map[string]any{"resource": "/echo", "path": "/echo", "httpMethod": "POST", "body": body, "isBase64Encoded": false,
			"headers": map[string]string{"Content-Type": "application/json"}, "multiValueQueryStringParameters": map[string][]string{"b": {"2", "1"}},
			"requestContext": map[string]any{"requestId": "v1-req", "identity": map[string]string{"sourceIp": "1.2.3.4"}}}
		if auth != "" {
			ev["multiValueHeaders"] = map[string][]string{"Authorization": {auth}}
		}
		b, _ := json.Marshal(ev)
		return b
	}
	alb := []byte(`{"requestContext":{"elb":{"targetGroupArn":"arn"}},"httpMethod":"POST","path":"/echo","headers":{"content-type":"application/json"},"body":"{\"name\":\"a\"}","isBase64Encoded":false}`)
	for name, ev := range map[string][]byte{
		"rest v1 unsigned":           restV1(""),
		"alb unsigned":               alb,
		"direct with requestContext": []byte(`{"name":"a","requestContext":{}}`),
		"direct with httpMethod":     []byte(`{"name":"a","httpMethod":"POST"}`),
	} {
		r, m := decodeHTTP(t, h.Invoke(context.Background(), ev, Meta{}))
		require.Equal(t, 401, r.StatusCode, name)
		require.Equal(t, float64(envelope.CodeUnauthenticated), m["errCode"], name)
	}
	require.Equal(t, 0, s.calls)

	auth, err := callerauth.Sign("backend", testCallerSecret, "POST", "/echo", "b=2&b=1", time.Now().Unix(), "v1-nonce-0000000001", []byte(body))
	require.NoError(t, err)
	r, m := decodeHTTP(t, h.Invoke(context.Background(), restV1(auth), Meta{}))
	require.Equal(t, 200, r.StatusCode, m)
	require.Equal(t, "a", m["hello"])
	require.Equal(t, "v1-req", s.in.RequestID)
	require.Equal(t, "1.2.3.4", s.in.SourceIP)

	// Behind a stage the caller signs the path it called, stage included;
	// behind an ALB, the query as it sent it.
	staged := map[string]any{"resource": "/echo", "path": "/echo", "httpMethod": "POST", "body": body,
		"requestContext": map[string]any{"requestId": "v1-staged", "stage": "prod", "path": "/prod/echo"}}
	auth, err = callerauth.Sign("backend", testCallerSecret, "POST", "/prod/echo", "", time.Now().Unix(), "v1-nonce-0000000002", []byte(body))
	require.NoError(t, err)
	staged["headers"] = map[string]string{"Authorization": auth}
	ev, _ := json.Marshal(staged)
	r, m = decodeHTTP(t, h.Invoke(context.Background(), ev, Meta{}))
	require.Equal(t, 200, r.StatusCode, m)
	auth, err = callerauth.Sign("backend", testCallerSecret, "POST", "/echo", "x=a%20b&y=%E4%B8%AD", time.Now().Unix(), "alb-nonce-0000000003", []byte(body))
	require.NoError(t, err)
	albQ, _ := json.Marshal(map[string]any{"httpMethod": "POST", "path": "/echo", "body": body, "queryStringParameters": map[string]string{"x": "a%20b", "y": "%E4%B8%AD"},
		"headers": map[string]string{"Authorization": auth}, "requestContext": map[string]any{"elb": map[string]string{"targetGroupArn": "arn"}}})
	r, m = decodeHTTP(t, h.Invoke(context.Background(), albQ, Meta{}))
	require.Equal(t, 200, r.StatusCode, m)
}

// A refused signature's line names the key id it claimed, so an operator
// can tell which backend is misconfigured or replayed; never its secret.
func TestRefusedSignatureLogsItsKeyID(t *testing.T) {
	s := &seen{}
	h, logs := newHandler(t, map[string]string{"CLOUDCALL_CALLER_KEYS": "backend:" + testCallerSecret}, s, nil)
	srv := httptest.NewServer(h.HTTPHandler())
	defer srv.Close()
	body := `{"name":"x"}`
	for _, tc := range []struct{ auth, keyID string }{
		{callerauth.Header("backend", "not-the-secret-00000000", "POST", "/echo", "", time.Now().Unix(), callerauth.NewNonce(), []byte(body)), "backend"},
		{callerauth.Header("billing-svc", testCallerSecret, "POST", "/echo", "", time.Now().Unix(), callerauth.NewNonce(), []byte(body)), "billing-svc"},
		{"Bearer x", ""},
	} {
		logs.Reset()
		req, err := http.NewRequest("POST", srv.URL+"/echo", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", tc.auth)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 401, resp.StatusCode)
		var m map[string]any
		require.NoError(t, json.Unmarshal(bytes.TrimSpace(logs.Bytes()), &m), logs.String())
		if tc.keyID == "" {
			require.NotContains(t, m, "callerKeyId")
		} else {
			require.Equal(t, tc.keyID, m["callerKeyId"])
		}
		require.NotContains(t, logs.String(), testCallerSecret)
	}
	require.Zero(t, s.calls)
}

// A correctly signed request delivered twice is a WARN (something between
// the caller and the function sent it again, or a capture was replayed); a
// header that merely says "replayed nonce" is a caller's mistake, INFO.
func TestAReplayedSignatureIsAWarning(t *testing.T) {
	s := &seen{}
	h, logs := newHandler(t, map[string]string{"CLOUDCALL_CALLER_KEYS": "backend:" + testCallerSecret}, s, nil)
	srv := httptest.NewServer(h.HTTPHandler())
	defer srv.Close()
	body := `{"name":"x"}`
	signed := callerauth.Header("backend", testCallerSecret, "POST", "/echo", "", time.Now().Unix(), callerauth.NewNonce(), []byte(body))
	level := func(auth string) (int, string) {
		logs.Reset()
		req, err := http.NewRequest("POST", srv.URL+"/echo", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", auth)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		var m map[string]any
		require.NoError(t, json.Unmarshal(bytes.TrimSpace(logs.Bytes()), &m), logs.String())
		return resp.StatusCode, m["level"].(string)
	}
	status, lvl := level(signed)
	require.Equal(t, 200, status)
	require.Equal(t, "INFO", lvl)
	status, lvl = level(signed)
	require.Equal(t, 401, status)
	require.Equal(t, "WARN", lvl)
	status, lvl = level(callerauth.Scheme + " replayed nonce")
	require.Equal(t, 401, status)
	require.Equal(t, "INFO", lvl)
}
