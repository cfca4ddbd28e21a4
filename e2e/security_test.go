package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/callerauth"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/sandbox/camssbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/ck1sbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
)

// The security suite: every attack of issue 16 against the real binaries,
// each asserting the status, the errCode and zero vendor calls (counted at
// the sandboxes). Targets: the HTTP server as a plain listener
// (CLOUDCALL_PORT) and behind FC's custom-runtime contract
// (FC_CUSTOM_LISTEN_PORT), and the emulator's HTTP-trigger front door
// (security_emulator_test.go).

const (
	suiteKeyID     = "backend"
	suiteSecret    = "suite-caller-secret-0123456789"
	suiteOtherID   = "other"
	suiteOtherKey  = "suite-other-secret-9876543210"
	suiteCallerEnv = suiteKeyID + ":" + suiteSecret + "," + suiteOtherID + ":" + suiteOtherKey
)

// httpFunctions are the registry functions with an HTTP trigger.
func httpFunctions() []registry.Function {
	var out []registry.Function
	for _, f := range registry.All() {
		if len(f.HTTPMethods) > 0 {
			out = append(out, f)
		}
	}
	return out
}

// sandboxes is one of each vendor sandbox, served on loopback.
type sandboxes struct {
	env   map[string]map[string]string // vendor → the env that points a function at it
	calls func() int                   // every vendor HTTP request so far, all sandboxes, but stable tokens
	// stableTokens counts WeChat's stable_token requests: a new instance
	// makes one at its start (docs/vendors.md), whoever's call started it.
	stableTokens func() int
}

// stableTokenPath is fetched by a WeChat function's new instance at its
// start, not by any call: the suite bounds it per instance instead of
// counting it as the call's.
const stableTokenPath = "http:/cgi-bin/stable_token"

// vendorCalls sums a sandbox's request counters, stable tokens aside.
func vendorCalls(counters map[string]int) int {
	n := 0
	for k, v := range counters {
		if strings.HasPrefix(k, "http:") && k != stableTokenPath {
			n += v
		}
	}
	return n
}

func startSandboxes(t *testing.T) *sandboxes {
	t.Helper()
	type sbx interface {
		Handler() http.Handler
		Env(string) map[string]string
		AllCalls() map[string]int
	}
	all := map[string]sbx{
		"wechat":   wechatsbx.New(wechatsbx.Options{}),
		"ck1":      ck1sbx.New(ck1sbx.Options{}),
		"alicloud": camssbx.New(camssbx.Options{}),
		"top":      topsbx.New(topsbx.Options{}),
	}
	s := &sandboxes{env: map[string]map[string]string{}}
	for vendor, sb := range all {
		srv := httptest.NewServer(sb.Handler())
		t.Cleanup(srv.Close)
		s.env[vendor] = sb.Env(srv.URL)
	}
	// The charge runs only on a shared records store (never memory): an
	// in-test Redis, taken as durable as the emulator's embedded one is.
	records := miniredis.RunT(t)
	s.env["top"]["CLOUDCALL_IDEMPOTENCY_STORE"] = "redis://" + records.Addr()
	s.env["top"]["CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE"] = "assume"
	s.calls = func() int {
		n := 0
		for _, sb := range all {
			n += vendorCalls(sb.AllCalls())
		}
		return n
	}
	s.stableTokens = func() int { return all["wechat"].AllCalls()[stableTokenPath] }
	return s
}

// functionEnv is what f needs: its sandbox (and records store) and the
// suite's caller keys.
func functionEnv(t *testing.T, sbx *sandboxes, f registry.Function) map[string]string {
	return merge(sbx.env[f.Vendor], map[string]string{"CLOUDCALL_CALLER_KEYS": suiteCallerEnv})
}

// httpServer is one function binary in HTTP-server mode.
type httpServer struct {
	url    string
	stderr *syncBuf
	cmd    *exec.Cmd
}

// startHTTPServer runs bin with env plus the listener variables of mode
// ("plain": CLOUDCALL_PORT; "fc-custom": FC_CUSTOM_LISTEN_PORT narrowed to
// loopback) on a free port, and waits for its "listening" line.
func startHTTPServer(t *testing.T, bin, mode string, env map[string]string) *httpServer {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	switch mode {
	case "plain":
		cmd.Env = append(cmd.Env, "CLOUDCALL_PORT=0")
	case "fc-custom":
		cmd.Env = append(cmd.Env, "FC_CUSTOM_LISTEN_PORT=0", "FC_FUNCTION_NAME="+filepath.Base(bin), "FC_REGION=cn-hangzhou", "CLOUDCALL_HOST=127.0.0.1")
	default:
		t.Fatalf("mode %q", mode)
	}
	pipe, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	s := &httpServer{stderr: &syncBuf{}, cmd: cmd}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = s.stderr.Write([]byte(line + "\n"))
			var m struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "listening" {
				addr <- m.Addr
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		require.True(t, ok, "%s exited before listening:\n%s", bin, s.stderr.String())
		s.url = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not listen within 30s:\n%s", bin, s.stderr.String())
	}
	return s
}

// wire is one HTTP request exactly as it goes out: header names are kept as
// given (lower-case, duplicates).
type wire struct {
	method, path, query string
	body                []byte
	header              [][2]string
}

func (w wire) send(t *testing.T, base string) (int, map[string]any, string) {
	t.Helper()
	u := base + w.path
	if w.query != "" {
		u += "?" + w.query
	}
	req, err := http.NewRequest(w.method, u, strings.NewReader(string(w.body)))
	require.NoError(t, err)
	for _, h := range w.header {
		req.Header[h[0]] = append(req.Header[h[0]], h[1]) // as given: no canonical name
	}
	client := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m, string(b)
}

var nonceSeq atomic.Int64

func freshNonce() string {
	return fmt.Sprintf("suite-%d-%010d", time.Now().UnixNano()%1e9, nonceSeq.Add(1))
}

// signed is a correctly signed request for method, path, query and body.
func signed(t *testing.T, keyID, secret, method, path, query string, body []byte, ts int64) wire {
	t.Helper()
	auth, err := callerauth.Sign(keyID, secret, method, path, query, ts, freshNonce(), body)
	require.NoError(t, err)
	return wire{method: method, path: path, query: query, body: body, header: [][2]string{{"Authorization", auth}, {"Content-Type", "application/json"}}}
}

// attack is one row of the suite: how to build the request from the
// function's trigger path and example body, and what must come back.
type attack struct {
	name    string
	build   func(t *testing.T, path string, body []byte) wire
	status  int
	errCode float64
	reason  string            // part of errMsg ("" when the body is not an envelope)
	skip    map[string]string // target kind (plain, fc-custom, emulator) → why the row does not apply there
	// on overrides the expectation for one target (e.g. "emulator-fc"),
	// where the platform in front answers before the function.
	on map[string]expect
}

// onEmulators is x for every emulator target; onFCEmulators for those that
// send FC events (cloudcall local's default platform is fc).
func onEmulators(x expect) map[string]expect {
	return map[string]expect{"emulator-fc": x, "emulator-aws": x, "cloudcall-local": x}
}

// withPlain adds HTTP-server mode (CLOUDCALL_PORT), which answers as the
// trigger does.
func withPlain(m map[string]expect) map[string]expect {
	m["plain"] = m["emulator-fc"]
	return m
}

// withFCCustom adds FC's custom runtime, which refuses a method as
// HTTP-server mode does: FC's proxy passes every method on.
func withFCCustom(m map[string]expect) map[string]expect {
	m["fc-custom"] = m["plain"]
	return m
}

// apiGatewayRoutesOneExactPath: under aws the emulator routes as the
// HttpApi of template.yaml does, /<function> alone, so another path is
// API Gateway's 404 and never reaches the function.
func apiGatewayRoutesOneExactPath() map[string]expect {
	return map[string]expect{"emulator-aws": {404, "API Gateway routes only the exact /<function> (template.yaml)"}}
}

func onFCEmulators(x expect) map[string]expect {
	return map[string]expect{"emulator-fc": x, "cloudcall-local": x}
}

// expect is an answer from in front of the function: no envelope, so no
// errCode, and still no vendor call.
type expect struct {
	status int
	why    string
}

func withHeader(w wire, name, value string) wire {
	w.header = append(append([][2]string(nil), w.header...), [2]string{name, value})
	return w
}

func attacks() []attack {
	now := func() int64 { return time.Now().Unix() }
	good := func(t *testing.T, path string, body []byte) wire {
		return signed(t, suiteKeyID, suiteSecret, "POST", path, "", body, now())
	}
	return []attack{
		{name: "unsigned", status: 401, errCode: -1101, reason: "missing Authorization",
			build: func(t *testing.T, path string, body []byte) wire {
				return wire{method: "POST", path: path, body: body}
			}},
		{name: "unsigned POST /invoke (the audit's charge)", status: 401, errCode: -1101, reason: "missing Authorization",
			build: func(t *testing.T, path string, body []byte) wire {
				return wire{method: "POST", path: "/invoke", body: body}
			}, skip: map[string]string{"emulator": "/invoke is not a function there"}},
		{name: "unsigned POST /invoke claiming FC's control path", status: 401, errCode: -1101, reason: "missing Authorization",
			build: func(t *testing.T, path string, body []byte) wire {
				return wire{method: "POST", path: "/invoke", body: body, header: [][2]string{{"X-Fc-Control-Path", "/invoke"}}}
			}, skip: map[string]string{"fc-custom": "FC refuses x-fc-* headers from callers, so only FC sends it there", "emulator": "/invoke is not a function there"}},
		{name: "unsigned POST /initialize", status: 401, errCode: -1101, reason: "missing Authorization",
			build: func(t *testing.T, path string, body []byte) wire {
				return wire{method: "POST", path: "/initialize", body: body}
			}, skip: map[string]string{"emulator": "/initialize is not a function there"}},
		{name: "tampered method", status: 401, errCode: -1101, reason: "signature does not match",
			build: func(t *testing.T, path string, body []byte) wire {
				w := good(t, path, body)
				w.method = "PUT"
				return w
			}, on: withFCCustom(withPlain(onEmulators(expect{405, "the trigger takes POST only (its descriptors' methods)"})))},
		{name: "tampered path", status: 401, errCode: -1101, reason: "signature does not match",
			build: func(t *testing.T, path string, body []byte) wire {
				w := good(t, path, body)
				w.path = path + "/other"
				return w
			}, on: apiGatewayRoutesOneExactPath()},
		{name: "signed for another function", status: 401, errCode: -1101, reason: "signature does not match",
			build: func(t *testing.T, path string, body []byte) wire {
				w := good(t, "/logistics-get-quota-x", body)
				w.path = path
				return w
			}},
		{name: "tampered query", status: 401, errCode: -1101, reason: "signature does not match",
			build: func(t *testing.T, path string, body []byte) wire {
				w := good(t, path, body)
				w.query = "x=1"
				return w
			}},
		{name: "query with ; appended", status: 401, errCode: -1101, reason: "query string cannot be canonicalized",
			build: func(t *testing.T, path string, body []byte) wire {
				w := good(t, path, body)
				w.query = "a=1;b=2"
				return w
			}, on: onFCEmulators(expect{400, "FC's event carries parsed query parameters: the front door refuses what it cannot parse"})},
		{name: "query with a bad % escape appended", status: 401, errCode: -1101, reason: "query string cannot be canonicalized",
			build: func(t *testing.T, path string, body []byte) wire {
				w := good(t, path, body)
				w.query = "a=%zz"
				return w
			}, on: onFCEmulators(expect{400, "as above"})},
		{name: "tampered body", status: 401, errCode: -1101, reason: "signature does not match",
			build: func(t *testing.T, path string, body []byte) wire {
				w := good(t, path, body)
				w.body = append([]byte(" "), body...)
				return w
			}},
		{name: "key id swapped to another configured key", status: 401, errCode: -1101, reason: "signature does not match",
			build: func(t *testing.T, path string, body []byte) wire {
				w := good(t, path, body)
				w.header[0][1] = strings.Replace(w.header[0][1], "KeyId="+suiteKeyID, "KeyId="+suiteOtherID, 1)
				return w
			}},
		{name: "unknown key id", status: 401, errCode: -1101, reason: "unknown key id",
			build: func(t *testing.T, path string, body []byte) wire {
				return signed(t, "ghost", suiteSecret, "POST", path, "", body, now())
			}},
		{name: "wrong secret", status: 401, errCode: -1101, reason: "signature does not match",
			build: func(t *testing.T, path string, body []byte) wire {
				return signed(t, suiteKeyID, suiteOtherKey, "POST", path, "", body, now())
			}},
		{name: "timestamp 301 s old", status: 401, errCode: -1101, reason: "timestamp is",
			build: func(t *testing.T, path string, body []byte) wire {
				return signed(t, suiteKeyID, suiteSecret, "POST", path, "", body, now()-301)
			}},
		{name: "timestamp 301 s ahead", status: 401, errCode: -1101, reason: "timestamp is",
			build: func(t *testing.T, path string, body []byte) wire {
				// The server's second may tick once before it checks: 302
				// is 301 by then at the latest.
				return signed(t, suiteKeyID, suiteSecret, "POST", path, "", body, now()+302)
			}},
		{name: "timestamp rewritten in a good header", status: 401, errCode: -1101, reason: "signature does not match",
			build: func(t *testing.T, path string, body []byte) wire {
				w := good(t, path, body)
				a, err := callerauth.Parse(w.header[0][1])
				require.NoError(t, err)
				w.header[0][1] = strings.Replace(w.header[0][1], "Timestamp="+strconv.FormatInt(a.Timestamp, 10), "Timestamp="+strconv.FormatInt(a.Timestamp+1, 10), 1)
				return w
			}},
		{name: "malformed Authorization", status: 401, errCode: -1101, reason: "expected the CLOUDCALL-HMAC-SHA256 scheme",
			build: func(t *testing.T, path string, body []byte) wire {
				return wire{method: "POST", path: path, body: body, header: [][2]string{{"Authorization", "Bearer " + suiteSecret}}}
			}},
		{name: "two Authorization headers, both good", status: 401, errCode: -1101, reason: "",
			build: func(t *testing.T, path string, body []byte) wire {
				w := good(t, path, body)
				return withHeader(w, "Authorization", good(t, path, body).header[0][1])
			}},
		{name: "good Authorization plus a lower-case authorization", status: 401, errCode: -1101, reason: "",
			build: func(t *testing.T, path string, body []byte) wire {
				return withHeader(good(t, path, body), "authorization", "CLOUDCALL-HMAC-SHA256 KeyId=x")
			}},
		{name: "upper-case AUTHORIZATION plus a good Authorization", status: 401, errCode: -1101, reason: "",
			build: func(t *testing.T, path string, body []byte) wire {
				w := good(t, path, body)
				w.header = append([][2]string{{"AUTHORIZATION", "Bearer x"}}, w.header...)
				return w
			}},
		{name: "oversize headers", status: 413, errCode: -1002, reason: "request headers are",
			build: func(t *testing.T, path string, body []byte) wire {
				return withHeader(good(t, path, body), "X-Pad", strings.Repeat("p", 17<<10))
			}},
		{name: "oversize body", status: 413, errCode: -1002, reason: "request body is",
			build: func(t *testing.T, path string, body []byte) wire {
				big := []byte(`{"pad":"` + strings.Repeat("p", 65<<10) + `"}`)
				return signed(t, suiteKeyID, suiteSecret, "POST", path, "", big, now())
			}},
		{name: "dot-dot path", status: 401, errCode: -1101, reason: "signature does not match",
			build: func(t *testing.T, path string, body []byte) wire {
				w := good(t, path, body)
				w.path = "/x/.." + path
				return w
			}, skip: map[string]string{"emulator": "its router answers a non-canonical path with a redirect (TestSecuritySuiteThroughTheEmulator checks it)"}},
		{name: "%2F path", status: 401, errCode: -1101, reason: "signature does not match",
			build: func(t *testing.T, path string, body []byte) wire {
				w := good(t, path+"/a/b", body)
				w.path = path + "/a%2Fb"
				return w
			}, on: apiGatewayRoutesOneExactPath()},
	}
}

// runSuite drives every attack at base (path = the function's trigger
// path) and checks nothing reached a vendor; then a good call does and its
// replay does not.
func runSuite(t *testing.T, kind, target string, base func(fn string) string, calls, stableTokens func() int) {
	// The WeChat function's one instance fetched its token at its start,
	// once, whichever call started it; its calls, refused or not, none.
	defer func() { require.Equal(t, 1, stableTokens(), "one stable token, at the instance's start") }()
	for _, f := range httpFunctions() {
		path := "/" + f.Name
		body := []byte(f.Example)
		t.Run(f.Name, func(t *testing.T) {
			for _, a := range attacks() {
				if _, ok := a.skip[kind]; ok {
					continue
				}
				t.Run(a.name, func(t *testing.T) {
					before := calls()
					st, m, raw := a.build(t, path, body).send(t, base(f.Name))
					if x, ok := a.on[target]; ok {
						require.Equal(t, x.status, st, x.why+": "+raw)
						require.Equal(t, before, calls(), "no vendor call")
						return
					}
					require.Equal(t, a.status, st, raw)
					require.Equal(t, a.errCode, m["errCode"], raw)
					if a.reason != "" {
						require.Contains(t, m["errMsg"], a.reason)
					}
					require.Equal(t, before, calls(), "no vendor call")
				})
			}
			// The counter counts: a good call reaches the vendor, its replay
			// does not; a lower-case header name alone is one header.
			before := calls()
			good := signed(t, suiteKeyID, suiteSecret, "POST", path, "", body, time.Now().Unix())
			st, m, raw := good.send(t, base(f.Name))
			require.Equal(t, 200, st, raw)
			require.Equal(t, 0.0, m["errCode"], raw)
			after := calls()
			require.Greater(t, after, before, "a signed call reaches the vendor")
			st, m, raw = good.send(t, base(f.Name))
			require.Equal(t, 401, st, raw)
			require.Contains(t, m["errMsg"], "replayed nonce")
			require.Equal(t, after, calls(), "the replay did not")

			lower := signed(t, suiteOtherID, suiteOtherKey, "POST", path, "", body, time.Now().Unix())
			lower.header[0][0] = "authorization"
			st, _, raw = lower.send(t, base(f.Name))
			require.Equal(t, 200, st, raw)
		})
	}
}

func TestSecuritySuiteHTTPServerMode(t *testing.T) {
	for _, mode := range []string{"plain", "fc-custom"} {
		t.Run(mode, func(t *testing.T) {
			sbx := startSandboxes(t)
			servers := map[string]*httpServer{}
			for _, f := range httpFunctions() {
				servers[f.Name] = startHTTPServer(t, bins[f.Name], mode, functionEnv(t, sbx, f))
			}
			runSuite(t, mode, mode, func(fn string) string { return servers[fn].url }, sbx.calls, sbx.stableTokens)
			for fn, s := range servers {
				require.NotContains(t, s.stderr.String(), suiteSecret, fn+": no caller secret in logs")
			}
		})
	}
}

// Behind FC, FC's own control path makes an event: the one unsigned way in,
// which only the platform can take (FC refuses x-fc-* headers from callers).
func TestFCControlPathIsTheOnlyEventDoor(t *testing.T) {
	sbx := startSandboxes(t)
	s := startHTTPServer(t, bins["logistics-get-quota"], "fc-custom", merge(sbx.env["wechat"], map[string]string{"CLOUDCALL_CALLER_KEYS": suiteCallerEnv}))
	ev := wire{method: "POST", path: "/invoke", body: []byte(`{"deliveryId":"YTO","bizId":"xyz"}`), header: [][2]string{{"x-fc-control-path", "/invoke"}, {"x-fc-request-id", "fc-req-1"}}}
	st, m, raw := ev.send(t, s.url)
	require.Equal(t, 200, st, raw)
	require.Equal(t, 0.0, m["errCode"], raw)
	require.Equal(t, 210.0, m["quotaNum"], raw)

	plain := startHTTPServer(t, bins["logistics-get-quota"], "plain", merge(sbx.env["wechat"], map[string]string{"CLOUDCALL_CALLER_KEYS": suiteCallerEnv}))
	before := sbx.calls()
	st, m, raw = ev.send(t, plain.url)
	require.Equal(t, 401, st, raw)
	require.Equal(t, -1101.0, m["errCode"])
	require.Equal(t, before, sbx.calls())
	// Each of the two instances fetched its token once, at its start.
	require.Eventually(t, func() bool { return sbx.stableTokens() == 2 }, 5*time.Second, 10*time.Millisecond)
}

// The runtime's configuration errors: the real binary starts, stays up and
// answers every call -1601 naming the variable; nothing reaches a vendor.
func TestConfigErrorsOnTheRealBinary(t *testing.T) {
	sbx := startSandboxes(t)
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"short caller secret", map[string]string{"CLOUDCALL_CALLER_KEYS": "backend:short"}, []string{"CLOUDCALL_CALLER_KEYS", "at least 16"}},
		{"caller secret with a trailing space", map[string]string{"CLOUDCALL_CALLER_KEYS": suiteKeyID + ":" + suiteSecret + " "}, []string{"CLOUDCALL_CALLER_KEYS", "whitespace"}},
		{"store URL", map[string]string{"CLOUDCALL_CALLER_KEYS": suiteCallerEnv, "CLOUDCALL_STORE": "redis//nohost"}, []string{"CLOUDCALL_STORE", "expected memory or a redis://"}},
		{"timeout", map[string]string{"CLOUDCALL_CALLER_KEYS": suiteCallerEnv, "CLOUDCALL_TIMEOUT": "ten seconds"}, []string{"CLOUDCALL_TIMEOUT", "expected a duration"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := startHTTPServer(t, bins["logistics-get-quota"], "fc-custom", merge(sbx.env["wechat"], c.env))
			body := []byte(`{"deliveryId":"YTO","bizId":"xyz"}`)
			for status, w := range map[int]wire{
				500: signed(t, suiteKeyID, suiteSecret, "POST", "/logistics-get-quota", "", body, time.Now().Unix()),
				// An event's answer is the envelope; the platform call succeeded.
				200: {method: "POST", path: "/invoke", body: body, header: [][2]string{{"x-fc-control-path", "/invoke"}}},
			} {
				st, m, raw := w.send(t, s.url)
				require.Equal(t, status, st, raw)
				require.Equal(t, -1601.0, m["errCode"], raw)
				for _, want := range c.want {
					require.Contains(t, m["errMsg"], want)
				}
				require.NotContains(t, raw, suiteSecret)
			}
			// It answered both after starting: it did not exit on the error.
			require.Equal(t, 0, sbx.calls())
		})
	}
}

// The audit's Slack leak, on the real quota-alert binary: Slack answers 400
// with the webhook path echoed; the run summary names the channel and the
// status, never the path or the body.
func TestQuotaAlertSlackErrorCarriesNoSecret(t *testing.T) {
	const hookPath = "/services/T0AUDIT/B0AUDIT/s3cr3tW3bh00kPath"
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "invalid_payload for "+r.URL.Path)
	}))
	defer slack.Close()
	sbx := startSandboxes(t)
	env := merge(sbx.env["wechat"], map[string]string{
		"QUOTA_ALERT_WATCH":     `[{"deliveryId":"YTO","bizId":"xyz","threshold":100000}]`,
		"QUOTA_ALERT_SLACK_URL": slack.URL + hookPath,
	})
	s := startHTTPServer(t, bins["quota-alert"], "fc-custom", env)
	ev := wire{method: "POST", path: "/invoke", body: []byte(`{"triggerTime":"2026-11-29T00:00:00Z","triggerName":"quota-alert-hourly","payload":"{}"}`),
		header: [][2]string{{"x-fc-control-path", "/invoke"}}}
	st, m, raw := ev.send(t, s.url)
	require.Equal(t, 200, st, raw)
	require.Contains(t, raw, "notify slack", "the failure is reported")
	require.Contains(t, raw, "HTTP 400")
	for _, leak := range []string{"s3cr3t", "T0AUDIT", "invalid_payload", slack.URL} {
		require.NotContains(t, raw, leak)
		require.NotContains(t, s.stderr.String(), leak)
	}
	require.Equal(t, 0.0, m["errCode"], raw)
}
