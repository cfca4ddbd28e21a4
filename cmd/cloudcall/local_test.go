package main

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
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/idempotency/redisrecords"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/store/redisstore/redistest"
)

// The real CLI, built once; its function binaries go to binDir.
var cliBin, binDir string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "cloudcall-cli")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		root, err := emulator.ModuleRoot(".")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		args := []string{"build", "-o", filepath.Join(dir, "cloudcall")}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/cloudcall")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build ./cmd/cloudcall: %v\n%s", err, out)
			return 1
		}
		cliBin, binDir = filepath.Join(dir, "cloudcall"), dir
		return m.Run()
	}())
}

// local is a running `cloudcall local` and everything it printed.
type local struct {
	t         *testing.T
	cmd       *exec.Cmd
	base      string
	sandboxes map[string]string

	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

var (
	bannerRe  = regexp.MustCompile(`^cloudcall local on (http://\S+) `)
	sandboxRe = regexp.MustCompile(`^sandbox (\S+)\s+(http://\S+)`)
)

// startLocal runs the real CLI on free ports, timers off, and waits for its
// banner.
func startLocal(t *testing.T, args ...string) *local {
	t.Helper()
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	all := append([]string{"local", "--addr", "127.0.0.1:0", "--sandbox-addr", "127.0.0.1:0", "--bin", binDir, "--timers", "off"}, args...)
	cmd := exec.Command(cliBin, all...)
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	l := &local{t: t, cmd: cmd, sandboxes: map[string]string{}, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(l.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			l.mu.Lock()
			l.lines = append(l.lines, line)
			if m := bannerRe.FindStringSubmatch(line); m != nil {
				l.base = m[1]
			}
			if m := sandboxRe.FindStringSubmatch(line); m != nil {
				l.sandboxes[m[1]] = m[2]
			}
			l.mu.Unlock()
			if !signalled && line == "Ctrl-C stops everything." {
				signalled = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-l.done:
		t.Fatalf("cloudcall local exited before its banner:\n%s", strings.Join(l.output(), "\n"))
	case <-time.After(5 * time.Minute):
		t.Fatal("no banner within 5 minutes")
	}
	t.Cleanup(func() { l.stop() })
	return l
}

func (l *local) output() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// stop sends Ctrl-C and returns everything printed.
func (l *local) stop() []string {
	if l.cmd.ProcessState == nil {
		_ = l.cmd.Process.Signal(os.Interrupt)
		<-l.done
		_ = l.cmd.Wait()
	}
	return l.output()
}

// instances lists the pids of the function processes the CLI started.
func (l *local) instances(t *testing.T, function string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(l.cmd.Process.Pid) {
			continue
		}
		exe, _ := os.Readlink("/proc/" + e.Name() + "/exe")
		if function == "" || filepath.Base(exe) == function {
			pids = append(pids, pid)
		}
	}
	return pids
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: time.Minute}

type answer struct {
	status    int
	body      []byte
	requestID string
}

func (l *local) post(t *testing.T, path, body string, hdr map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, l.base+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("POST %s: %v (the emulator must stay up)", path, err)
		return answer{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	id := resp.Header.Get("x-fc-request-id")
	if id == "" {
		id = resp.Header.Get("x-amzn-RequestId") // Lambda door, or an HTTP trigger under --platform aws
	}
	return answer{status: resp.StatusCode, body: b, requestID: id}
}

func (l *local) getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}

func errCode(b []byte) (float64, bool) {
	var m struct {
		ErrCode *float64 `json:"errCode"`
	}
	if json.Unmarshal(b, &m) != nil || m.ErrCode == nil {
		return 0, false
	}
	return *m.ErrCode, true
}

// TestLocalDefaults is the emulator under `make run` defaults (embedded
// shared store, default instance limit): what a deployment guarantees holds
// across instances, and a soak with instances killed under it.
func TestLocalDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real CLI and every function")
	}
	l := startLocal(t)
	require.NotEmpty(t, l.base)
	require.Len(t, l.sandboxes, 5)

	// The platform SDK reads the whole event before the function can look
	// at its size; without a soft memory limit a 30 MB body got the 128 MB
	// instance killed, and a second one killed a warm instance.
	t.Run("a 30 MB body is refused three times and its instance lives", func(t *testing.T) {
		body := strings.Repeat("a", 30_000_000)
		for i := range 3 {
			a := l.post(t, "/logistics-get-quota", body, nil)
			require.Equal(t, 413, a.status, "attempt %d: %.300s", i, a.body)
			c, _ := errCode(a.body)
			require.Equal(t, float64(-1002), c, "%.300s", a.body)
		}
	})

	t.Run("200 concurrent CK1 quotes refresh the token once", func(t *testing.T) {
		f, _ := registry.Lookup("ck1-pricing-inbound-box")
		var wg sync.WaitGroup
		codes := make([]float64, 200)
		got := make([]string, 200)
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := l.post(t, "/ck1-pricing-inbound-box", f.Example, nil)
				c, ok := errCode(a.body)
				if a.status != 200 || !ok {
					c = -999999
				}
				codes[i], got[i] = c, fmt.Sprintf("HTTP %d %s", a.status, a.body)
			}()
		}
		wg.Wait()
		for i, c := range codes {
			require.Zero(t, c, "quote %d: %s", i, got[i])
		}
		var calls map[string]int
		l.getJSON(t, l.sandboxes["ck1"]+"/__sandbox/calls", &calls)
		require.Equal(t, 1, calls["refresh"], "one refresh-token exchange for every instance: %v", calls)
		require.Equal(t, 1, calls["oauth2/token"], "%v", calls)
		require.Equal(t, 200, calls["pricing"])
		require.GreaterOrEqual(t, len(l.instances(t, "ck1-pricing-inbound-box")), 2, "the quotes ran on several instances")
	})

	t.Run("100 concurrent charges with one key charge once", func(t *testing.T) {
		body := `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-LOCAL-1","price":12345,"type":2,"desc":"once"},"idempotencyKey":"local-once-1"}`
		var wg sync.WaitGroup
		answers := make([]answer, 100)
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i] = l.post(t, "/top-launch-extra-charge", body, nil)
			}()
		}
		wg.Wait()
		var ledger struct {
			Charges []struct {
				ID      string `json:"id"`
				OrderID string `json:"orderId"`
			} `json:"charges"`
		}
		l.getJSON(t, l.sandboxes["top"]+"/__sandbox/top/charges", &ledger)
		var entries []string
		for _, c := range ledger.Charges {
			if c.OrderID == "BFC-LOCAL-1" {
				entries = append(entries, c.ID)
			}
		}
		require.Len(t, entries, 1, "exactly one ledger entry")
		first, conflicts := 0, 0
		for i, a := range answers {
			c, _ := errCode(a.body)
			switch {
			case a.status == 200 && c == 0:
				require.Contains(t, string(a.body), `"extraChargeServiceOrderId":"`+entries[0]+`"`, "answer %d is the first result", i)
				first++
			case a.status == 409 && c == -1401:
				conflicts++
			default:
				t.Fatalf("answer %d: %d %s", i, a.status, a.body)
			}
		}
		require.Equal(t, 100, first+conflicts)
		require.GreaterOrEqual(t, first, 1)
		require.GreaterOrEqual(t, len(l.instances(t, "top-launch-extra-charge")), 2, "the charges ran on several instances")
	})

	t.Run("platform clients", func(t *testing.T) { platformClients(t, l) })

	t.Run("a timer run that finds low balances alerts every channel", func(t *testing.T) {
		a := l.post(t, "/__timers/quota-alert", "", nil)
		require.Equal(t, 200, a.status, string(a.body))
		var run struct {
			ErrCode float64 `json:"errCode"`
			Levels  map[string]int
		}
		require.NoError(t, json.Unmarshal(a.body, &run))
		require.Equal(t, 1, run.Levels["low"], string(a.body))
		var got struct {
			Messages []struct {
				Channel  string `json:"channel"`
				Accepted bool   `json:"accepted"`
			} `json:"messages"`
		}
		l.getJSON(t, l.sandboxes["notify"]+"/__sandbox/notify/messages", &got)
		channels := map[string]int{}
		for _, m := range got.Messages {
			require.True(t, m.Accepted, "every channel's signature verified: %+v", m)
			channels[m.Channel]++
		}
		for _, c := range []string{"dingtalk", "feishu", "wecom", "slack", "webhook"} {
			require.Positive(t, channels[c], "an alert reached %s: %v", c, channels)
		}
	})

	t.Run("soak: 1, 8 and 32 callers with instances killed", func(t *testing.T) {
		soak(t, l, []phase{{1, 400}, {8, 800}, {32, 800}}, 2000)
	})
}

// exitRe is the answer of a call whose instance was killed under it (while
// serving, or while starting for it).
var exitRe = regexp.MustCompile(`^(?:[a-z0-9-]+ failed to start: )?instance exited: pid (\d+): signal: killed$`)

// soak drives every function through its front door at 1, 8 and 32
// callers, SIGKILLing instances while the 8- and 32-caller phases run, then
// stops the CLI and checks its whole output line by line.
type phase struct{ callers, total int }

func soak(t *testing.T, l *local, phases []phase, wantCalls int) {
	type call struct{ path, body string }
	var calls []call
	for _, f := range registry.All() {
		if len(f.HTTPMethods) > 0 {
			calls = append(calls, call{"/" + f.Name, f.Example})
		} else {
			calls = append(calls, call{"/2023-03-30/functions/" + f.Name + "/invocations", f.Example})
		}
	}
	var mu sync.Mutex
	killed := map[int]bool{}
	ok := map[string]bool{} // request ids answered by the function
	sent, failed := 0, 0
	for _, ph := range phases {
		began := time.Now()
		var done sync.WaitGroup
		work := make(chan int)
		stopKiller := make(chan struct{})
		if ph.callers > 1 {
			done.Add(1)
			go func() {
				defer done.Done()
				for i := 0; ; i++ {
					select {
					case <-stopKiller:
						return
					case <-time.After(250 * time.Millisecond):
					}
					// Not CK1's: a SIGKILL between its refresh-token exchange
					// and the store write loses the single-use token (open
					// issue, reported; the soak found it).
					var pids []int
					for _, fn := range registry.Names() {
						if fn != "ck1-pricing-inbound-box" {
							pids = append(pids, l.instances(t, fn)...)
						}
					}
					if len(pids) == 0 {
						continue
					}
					pid := pids[i%len(pids)]
					mu.Lock()
					killed[pid] = true
					mu.Unlock()
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}()
		}
		var wg sync.WaitGroup
		for range ph.callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					c := calls[i%len(calls)]
					body := c.body
					if strings.Contains(c.path, "extra-charge") {
						body = strings.Replace(body, `"demo-1"`, fmt.Sprintf(`"soak-%d-%d"`, ph.callers, i), 1)
					}
					a := l.post(t, c.path, body, nil)
					mu.Lock()
					sent++
					switch code, isEnvelope := errCode(a.body); {
					case a.status == 200 && isEnvelope && code == 0:
						ok[a.requestID] = true
					case a.status == 200 && strings.Contains(c.path, "/invocations") && bytes.Contains(a.body, []byte(`"errorType":"UnhandledInvocationError"`)):
						// FC InvokeFunction: the instance died mid-call.
						var e struct{ ErrorMessage string }
						_ = json.Unmarshal(a.body, &e)
						m := exitRe.FindStringSubmatch(e.ErrorMessage)
						if m == nil {
							t.Errorf("%s: %s", c.path, a.body)
						} else if pid, _ := strconv.Atoi(m[1]); !killed[pid] {
							t.Errorf("%s names pid %d, which the test did not kill", c.path, pid)
						}
						failed++
					case a.status == 502:
						// FC's error shape, or Lambda's (--platform aws).
						var e struct {
							Code, Message, RequestId string
							Type                     string
							LambdaMessage            string `json:"message"`
						}
						_ = json.Unmarshal(a.body, &e)
						if e.Type != "" {
							e.Code, e.Message, e.RequestId = "FunctionFailed", e.LambdaMessage, a.requestID
						}
						m := exitRe.FindStringSubmatch(e.Message)
						if m == nil || e.Code != "FunctionFailed" || e.RequestId != a.requestID {
							t.Errorf("%s: 502 %s", c.path, a.body)
						} else if pid, _ := strconv.Atoi(m[1]); !killed[pid] {
							t.Errorf("%s names pid %d, which the test did not kill", c.path, pid)
						}
						failed++
					default:
						t.Errorf("%s: %d %s", c.path, a.status, a.body)
					}
					mu.Unlock()
				}
			}()
		}
		for i := range ph.total {
			work <- i
		}
		close(work)
		wg.Wait()
		close(stopKiller)
		done.Wait()
		t.Logf("soak: %d calls at %d callers in %v", ph.total, ph.callers, time.Since(began).Round(time.Millisecond))
	}
	require.Equal(t, wantCalls, sent)
	t.Logf("soak: %d calls, %d answered by the function, %d failed with their instance (%d instances killed)", sent, len(ok), failed, len(killed))
	require.NotEmpty(t, killed)

	// The emulator is still up and serves.
	f, _ := registry.Lookup("logistics-get-quota")
	a := l.post(t, "/logistics-get-quota", f.Example, nil)
	require.Equal(t, 200, a.status, string(a.body))

	lines := l.stop()
	checkLog(t, lines, ok)
}

var (
	emuLineRe = regexp.MustCompile(`^(\S+) (START RequestId: (\S+) Version: \$LATEST|END RequestId: (\S+)|REPORT RequestId: (\S+)\t.*)$`)
	fnLineRe  = regexp.MustCompile(`^(\S+) \| (.*)$`)
	fcSDKRe   = regexp.MustCompile(`^FC Invoke (Start|End) RequestId: [0-9a-f-]{36}(, Error: Unhandled function error)?$`)
)

// checkLog: every line is whole (a known emulator line, or a function line
// that is JSON or an SDK marker), every invocation has its START, END and
// REPORT, and every call the function answered has its invocation line.
func checkLog(t *testing.T, lines []string, answered map[string]bool) {
	i := 0
	for ; i < len(lines) && lines[i] != "Ctrl-C stops everything."; i++ {
	}
	require.Less(t, i, len(lines))
	starts, ends, reports := map[string]int{}, map[string]int{}, map[string]int{}
	invocationLines := map[string]int{}
	known := map[string]bool{}
	for _, n := range registry.Names() {
		known[n] = true
	}
	for _, line := range lines[i+1:] {
		if line == "" || line == "cloudcall local: stopping (instances, sandboxes)" {
			continue
		}
		if m := emuLineRe.FindStringSubmatch(line); m != nil && known[m[1]] {
			switch {
			case m[3] != "":
				starts[m[3]]++
			case m[4] != "":
				ends[m[4]]++
			default:
				reports[m[5]]++
			}
			continue
		}
		m := fnLineRe.FindStringSubmatch(line)
		require.NotNil(t, m, "a line that is neither the emulator's nor a function's (cut or spliced?): %q", line)
		require.True(t, known[m[1]], "unknown prefix: %q", line)
		if fcSDKRe.MatchString(m[2]) {
			continue
		}
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(m[2]), &rec), "a function line that is not whole JSON: %q", line)
		if rec["msg"] == "invocation" {
			id, _ := rec["requestId"].(string)
			require.Equal(t, m[1], rec["function"], "a line under another function's prefix: %q", line)
			invocationLines[id]++
		}
	}
	require.Len(t, starts, len(ends))
	for id, n := range starts {
		require.Equal(t, 1, n, id)
		require.Equal(t, 1, ends[id], "END of %s", id)
		require.Equal(t, 1, reports[id], "REPORT of %s", id)
	}
	for id := range answered {
		require.Equal(t, 1, starts[id], "START of answered call %s", id)
		require.Equal(t, 1, invocationLines[id], "the invocation line of answered call %s", id)
	}
}

// awsCLIs finds the AWS CLIs on this machine (v1 and v2 may both be there:
// `aws` on PATH and Debian's /usr/bin/aws).
func awsCLIs(t *testing.T) map[string]string {
	t.Helper()
	found := map[string]string{}
	var candidates []string
	if p, err := exec.LookPath("aws"); err == nil {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, "/usr/bin/aws", "/usr/local/bin/aws")
	for _, p := range candidates {
		out, err := exec.Command(p, "--version").CombinedOutput()
		if err != nil {
			continue
		}
		if m := regexp.MustCompile(`aws-cli/(\d+)\.`).FindSubmatch(out); m != nil {
			if _, ok := found["v"+string(m[1])]; !ok {
				found["v"+string(m[1])] = p
			}
		}
	}
	return found
}

func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; CI=true needs it (.ci/run installs it)", what)
	}
	t.Skipf("%s; skipping", what)
}

// platformClients: the AWS CLI (v1 and v2 when present) and the Node SDKs of
// both platforms against the front doors.
func platformClients(t *testing.T, l *local) {
	t.Run("aws cli", func(t *testing.T) {
		clis := awsCLIs(t)
		if len(clis) == 0 {
			missing(t, "no AWS CLI (apt-get install awscli)")
		}
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "in.json"), []byte(`{"deliveryId":"YTO","bizId":"xyz"}`), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`not json`), 0o644))
		for v, bin := range clis {
			t.Run(v, func(t *testing.T) {
				aws := func(args ...string) (string, string, error) {
					// The banner's line: credentials and region from the
					// environment, the payload from a file (v1 and v2 read
					// fileb:// raw).
					cmd := exec.Command(bin, append([]string{"lambda", "invoke", "--region", "us-east-1", "--endpoint-url", l.base}, args...)...)
					cmd.Dir = dir
					cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=x", "AWS_PAGER=", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
					var out, errb bytes.Buffer
					cmd.Stdout, cmd.Stderr = &out, &errb
					err := cmd.Run()
					return out.String(), errb.String(), err
				}
				out, stderr, err := aws("--function-name", "logistics-get-quota", "--payload", "fileb://in.json", "--log-type", "Tail", "out.json")
				require.NoError(t, err, stderr)
				var meta struct {
					StatusCode      int
					LogResult       string
					ExecutedVersion string
				}
				require.NoError(t, json.Unmarshal([]byte(out), &meta), out)
				require.Equal(t, 200, meta.StatusCode)
				require.Equal(t, "$LATEST", meta.ExecutedVersion)
				tail, err := base64Decode(meta.LogResult)
				require.NoError(t, err)
				require.Regexp(t, `(?m)^START RequestId: [0-9a-f-]{36} Version: \$LATEST$`, tail)
				b, err := os.ReadFile(filepath.Join(dir, "out.json"))
				require.NoError(t, err)
				require.JSONEq(t, `{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":210}`, string(b))

				_, stderr, err = aws("--function-name", "nope", "--payload", "fileb://in.json", "out.json")
				require.Error(t, err)
				require.Contains(t, stderr, "(ResourceNotFoundException)")
				require.Contains(t, stderr, "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope")

				_, stderr, err = aws("--function-name", "logistics-get-quota", "--payload", "fileb://bad.json", "out.json")
				require.Error(t, err)
				require.Contains(t, stderr, "(InvalidRequestContentException)")
			})
		}
	})

	t.Run("node SDKs", func(t *testing.T) {
		node, err := exec.LookPath("node")
		if err != nil {
			missing(t, "node is not installed")
		}
		npm, err := exec.LookPath("npm")
		if err != nil {
			missing(t, "npm is not installed")
		}
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"private":true}`), 0o644))
		// Pinned: the clients users install, at versions this test knows.
		install := exec.Command(npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
			"@aws-sdk/client-lambda@3.1162.0", "@alicloud/fc20230330@4.7.6", "@alicloud/openapi-core@"+alicloudOpenAPICore)
		install.Dir = dir
		if out, err := install.CombinedOutput(); err != nil {
			missing(t, fmt.Sprintf("npm install failed (%v): %s", err, out))
		}
		script, err := filepath.Abs("testdata/sdk_clients.js")
		require.NoError(t, err)
		b, err := os.ReadFile(script)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "sdk_clients.js"), b, 0o644))
		cmd := exec.Command(node, "sdk_clients.js", l.base)
		cmd.Dir = dir
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		require.NoError(t, cmd.Run(), errb.String())
		type failure struct {
			Name      string `json:"name"`
			Code      string `json:"code"`
			Message   string `json:"message"`
			Status    int    `json:"status"`
			RequestID string `json:"requestId"`
		}
		type success struct {
			Status    int    `json:"status"`
			Version   string `json:"version"`
			Payload   string `json:"payload"`
			Log       string `json:"log"`
			RequestID string `json:"requestId"`
		}
		var res struct {
			Lambda struct {
				Unknown failure `json:"unknown"`
				OK      success `json:"ok"`
			} `json:"lambda"`
			FC struct {
				Unknown failure `json:"unknown"`
				OK      success `json:"ok"`
			} `json:"fc"`
		}
		require.NoError(t, json.Unmarshal(out.Bytes(), &res), out.String())
		require.Equal(t, "ResourceNotFoundException", res.Lambda.Unknown.Name, "LambdaClient's typed error")
		require.Contains(t, res.Lambda.Unknown.Message, "function:nope")
		require.Equal(t, 404, res.Lambda.Unknown.Status)
		require.Equal(t, 200, res.Lambda.OK.Status)
		require.Equal(t, "$LATEST", res.Lambda.OK.Version)
		require.JSONEq(t, `{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":210}`, res.Lambda.OK.Payload)
		require.Contains(t, res.Lambda.OK.Log, "START RequestId: "+res.Lambda.OK.RequestID+" Version: $LATEST")
		require.Equal(t, "FunctionNotFound", res.FC.Unknown.Code, "the FC client's typed error: %+v", res.FC.Unknown)
		require.Contains(t, res.FC.Unknown.Message, "function 'nope' does not exist")
		require.Equal(t, 404, res.FC.Unknown.Status)
		require.NotEmpty(t, res.FC.Unknown.RequestID)
		require.Equal(t, 200, res.FC.OK.Status)
		require.JSONEq(t, `{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":210}`, res.FC.OK.Payload)
		require.Contains(t, res.FC.OK.Log, "START RequestId: "+res.FC.OK.RequestID)
	})
}

// alicloudOpenAPICore is the pinned version of the FC client's config package.
const alicloudOpenAPICore = "1.0.8"

func base64Decode(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	return string(b), err
}

// TestLocalLambdaSoak: the same soak, shorter, with the Lambda runtime API
// (aws-lambda-go binaries, API Gateway events, Lambda's error shapes).
func TestLocalLambdaSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real CLI and every function")
	}
	// The embedded store on a port the user chose (--store-addr), as on a
	// firewalled machine.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	storeAddr := ln.Addr().String()
	require.NoError(t, ln.Close())
	l := startLocal(t, "--platform", "aws", "--store-addr", storeAddr)
	require.True(t, slices.ContainsFunc(l.output(), func(line string) bool {
		return strings.HasPrefix(line, "store: embedded Redis at redis://default:") && strings.Contains(line, "@"+storeAddr+"/0")
	}), "the banner names the store on the chosen port")
	soak(t, l, []phase{{1, 100}, {8, 300}}, 400)
}

// TestLocalSettings: --caller-keys, --env-file and --platform aws as a user
// passes them through make run ARGS.
func TestLocalSettings(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real CLI and every function")
	}
	envFile := filepath.Join(t.TempDir(), "local.env")
	require.NoError(t, os.WriteFile(envFile, []byte("# raise every threshold\nQUOTA_ALERT_THRESHOLD=500\n"), 0o644))
	l := startLocal(t, "--platform", "aws", "--caller-keys", "dev:0123456789abcdef0123", "--env-file", envFile)
	out := strings.Join(l.output(), "\n")
	require.NotContains(t, out, "WARNING: CLOUDCALL_ALLOW_ANONYMOUS")
	require.Contains(t, out, "caller auth: on")

	f, _ := registry.Lookup("logistics-get-quota")
	req, err := http.NewRequest(http.MethodPost, l.base+"/logistics-get-quota", strings.NewReader(f.Example))
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode, "an unsigned call is refused, as deployed: %s", b)
	code, _ := errCode(b)
	require.Equal(t, float64(-1101), code)
	require.NotEmpty(t, resp.Header.Get("Apigw-Requestid"), "the HTTP trigger answers with API Gateway's request id")

	// Events through the invoke API are not HTTP calls: no caller auth.
	a := l.post(t, "/2015-03-31/functions/quota-alert/invocations", "{}", nil)
	require.Equal(t, 200, a.status, string(a.body))
	require.Contains(t, string(a.body), `"threshold":500`, "the env file reached the function")
}

// On an external store a sandbox run's keys get a namespace of their own;
// against the real vendors one namespace serves every run, so the charge's
// records, CK1's rotated refresh token and the tokens outlive the run (a
// second run charged the same key again). A prefix the user set is kept.
func TestStorePrefix(t *testing.T) {
	now := time.Date(2026, 12, 1, 4, 44, 11, 0, time.UTC)
	a, b := storePrefix("sandbox", "", now), storePrefix("sandbox", "", now)
	require.Regexp(t, `^cloudcall:local:20261201T044411-[0-9a-f]{8}:$`, a)
	require.NotEqual(t, a, b, "each sandbox run its own")
	require.Equal(t, "cloudcall:local:real:", storePrefix("real", "", now))
	require.Equal(t, storePrefix("real", "", now), storePrefix("real", "", now.Add(time.Hour)), "every real run the same")
	require.Equal(t, "team:", storePrefix("real", "team:", now))
	require.Equal(t, "team:", storePrefix("sandbox", "team:", now))
}

// TestLocalExternalStore: --store redis://… puts this run's keys under a
// prefix of its own (fresh sandboxes never see an old run's tokens), and the
// charge's records go there too.
func TestLocalExternalStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real CLI and every function")
	}
	url := redistest.URL(t)
	// The test Redis keeps nothing on disk, so the charge would refuse it
	// (-1601, appendonly off); a user waives the check the same way.
	envFile := filepath.Join(t.TempDir(), "store.env")
	require.NoError(t, os.WriteFile(envFile, []byte("CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE=assume\n"), 0o644))
	l := startLocal(t, "--store", url, "--env-file", envFile)
	var prefix string
	for _, line := range l.output() {
		if m := regexp.MustCompile(`^store: \S+, keys under (cloudcall:local:\S+:)$`).FindStringSubmatch(line); m != nil {
			prefix = m[1]
		}
	}
	require.NotEmpty(t, prefix, "the banner names the run's key prefix")
	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	rdb := redis.NewClient(opts)
	keys := func() []string {
		ks, err := rdb.Keys(context.Background(), prefix+"*").Result()
		require.NoError(t, err)
		return ks
	}
	t.Cleanup(func() {
		if ks := keys(); len(ks) > 0 {
			rdb.Del(context.Background(), ks...)
		}
		_ = rdb.Close()
	})
	f, _ := registry.Lookup("ck1-pricing-inbound-box")
	a := l.post(t, "/"+f.Name, f.Example, nil)
	require.Equal(t, 200, a.status, string(a.body))
	a = l.post(t, "/top-launch-extra-charge", `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-EXT","price":100,"type":2},"idempotencyKey":"ext-1"}`, nil)
	require.Equal(t, 200, a.status, string(a.body))
	ks := keys()
	require.NotEmpty(t, ks)
	joined := strings.Join(ks, " ")
	require.Contains(t, joined, prefix+"ck1:", "the CK1 token under the run's prefix")
	require.Contains(t, joined, "ext-1", "the charge's record under the run's prefix")
}

// Ctrl-C while calls are still running past the 3 s given to finish: each
// caller hears a 502 naming the instance's exit. Some heard nothing at all
// (the process ended while those handlers were writing; outside tester).
func TestShutdownAnswersCallsStillRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real CLI")
	}
	l := startLocal(t)
	fault := `{"path":"/cgi-bin/express/business/quota/get","kind":"hang","delay":"30s","times":10}`
	resp, err := client.Post(l.sandboxes["wechat"]+"/__sandbox/faults", "application/json", strings.NewReader(fault))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	type got struct {
		status int
		body   string
		err    error
	}
	answers := make(chan got, 3)
	for range 3 {
		go func() {
			resp, err := client.Post(l.base+"/logistics-get-quota", "application/json", strings.NewReader(`{"deliveryId":"YTO","bizId":"xyz"}`))
			if err != nil {
				answers <- got{err: err}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers <- got{status: resp.StatusCode, body: string(b)}
		}()
	}
	time.Sleep(1500 * time.Millisecond) // the calls are in the instances, waiting on WeChat
	require.NoError(t, l.cmd.Process.Signal(os.Interrupt))
	for range 3 {
		a := <-answers
		require.NoError(t, a.err, "every caller gets an answer")
		require.Equal(t, 502, a.status, a.body)
		require.Contains(t, a.body, "instance exited")
	}
	l.stop()
}

// A Redis without AOF given to --store was found out only at the first
// charge (-1601): the banner says so at start.
func TestLocalWarnsOfAStoreTheChargeWillRefuse(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real CLI and every function")
	}
	url := redistest.URL(t)
	if redisrecords.Persistence(context.Background(), url) == nil {
		t.Skip("the test Redis persists: nothing to warn of")
	}
	l := startLocal(t, "--store", url)
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(l.output(), func(s string) bool {
			return strings.HasPrefix(s, "WARNING: --store ") && strings.Contains(s, "will refuse it (-1601)") && strings.Contains(s, "appendonly off")
		})
	}, 5*time.Second, 50*time.Millisecond, "%s", strings.Join(l.output(), "\n"))
	l.stop()

	// The same Redis named as the records store in an env file.
	env := filepath.Join(t.TempDir(), "records.env")
	require.NoError(t, os.WriteFile(env, []byte("CLOUDCALL_IDEMPOTENCY_STORE="+url+"\n"), 0o600))
	l = startLocal(t, "--env-file", env)
	require.True(t, slices.ContainsFunc(l.output(), func(s string) bool {
		return strings.HasPrefix(s, "WARNING: --env-file CLOUDCALL_IDEMPOTENCY_STORE ") && strings.Contains(s, "will refuse it (-1601)")
	}), "%s", strings.Join(l.output(), "\n"))
}
