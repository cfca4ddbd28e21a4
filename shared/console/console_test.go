package console_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/console"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/sandbox"
)

var hello string

func TestMain(m *testing.M) {
	os.Exit(emulator.WithBinaries([]string{"./shared/emulator/testdata/hellofc"}, func(b map[string]string) int {
		hello = b["hellofc"]
		return m.Run()
	}))
}

type fixture struct {
	emu  *emulator.Emulator
	con  *console.Console
	srv  *httptest.Server
	sbx  *sandbox.Sandbox
	good string
}

// serve runs the console on a server of its own, shut down as cloudcall
// local shuts it down (Close registered with RegisterOnShutdown).
func (f *fixture) serve(t *testing.T) (*http.Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: f.con.Handler()}
	srv.RegisterOnShutdown(f.con.Close)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return srv, ln.Addr().String()
}

// events opens the console's live stream, closed when the test ends.
func (f *fixture) events(t *testing.T) *http.Response {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/__console/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func newFixture(t *testing.T, builds map[string]console.Build) *fixture {
	return newPlatformFixture(t, builds, "fc")
}

func newPlatformFixture(t *testing.T, builds map[string]console.Build, platform string, set ...func(*console.Options)) *fixture {
	t.Helper()
	emu := emulator.New(emulator.Options{Platform: runtimeapi.FC, Functions: []emulator.FunctionConfig{
		{Name: "hello", Binary: hello, Timeout: 5 * time.Second, MaxInstances: 1},
	}})
	sbx := sandbox.New("demo")
	sbxSrv := httptest.NewServer(sbx.Wrap(http.NotFoundHandler()))
	opts := console.Options{Emulator: emu, Platform: platform,
		Functions: []console.Function{{Name: "hello", API: "demo.hello", Example: json.RawMessage(`{"action":"log"}`)}},
		Sandboxes: []console.Sandbox{{Vendor: "demo", URL: sbxSrv.URL}}}
	if builds != nil {
		opts.Builds = func() map[string]console.Build { return builds }
	}
	for _, f := range set {
		f(&opts)
	}
	con, err := console.New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(con.Handler())
	t.Cleanup(func() { srv.Close(); sbxSrv.Close(); emu.Close() })
	return &fixture{emu: emu, con: con, srv: srv, sbx: sbx, good: con.Token()}
}

func (f *fixture) do(t *testing.T, method, path, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPageCarriesTheRunToken(t *testing.T) {
	f := newFixture(t, nil)
	status, body := f.do(t, "GET", "/", "", nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `<meta name="cloudcall-token" content="`+f.good+`">`)
	require.Len(t, f.good, 64)
	other := newFixture(t, nil)
	require.NotEqual(t, f.good, other.good, "each run has its own token")
	status, _ = f.do(t, "GET", "/__console/assets/app.js", "", nil)
	require.Equal(t, http.StatusOK, status)
}

func TestStateChangingCallsNeedTheTokenAndTheConsoleOrigin(t *testing.T) {
	f := newFixture(t, nil)
	tok := console.TokenHeader
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		hdr    map[string]string
		status int
	}{
		{"no token", "POST", "/__console/api/invoke/hello", `{}`, nil, 403},
		{"cross-site form post (text/plain, no header)", "POST", "/__console/api/invoke/hello", `{}`, map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}, 403},
		{"wrong token", "POST", "/__console/api/invoke/hello", `{}`, map[string]string{tok: strings.Repeat("0", 64)}, 403},
		{"right token from another origin", "POST", "/__console/api/invoke/hello", `{}`, map[string]string{tok: f.good, "Origin": "http://evil.example"}, 403},
		{"timer without token", "POST", "/__console/api/timers/hello", ``, nil, 403},
		{"fault without token", "POST", "/__console/api/sandbox/demo/faults", `{"kind":"reset"}`, nil, 403},
		{"clock without token", "POST", "/__console/api/sandbox/demo/clock", `{"advance":"1h"}`, nil, 403},
		{"a rebound DNS name (Host evil.example)", "GET", "/", ``, map[string]string{"Host": "evil.example:9000"}, 403},
		{"state under a rebound DNS name", "GET", "/__console/api/state", ``, map[string]string{"Host": "evil.example"}, 403},
		{"not JSON, with the token", "POST", "/__console/api/invoke/hello", `{"action":`, map[string]string{tok: f.good}, 400},
		{"unknown function", "POST", "/__console/api/invoke/nope", `{}`, map[string]string{tok: f.good}, 404},
		// POST /__timers/hello answers 404 TimerNotFound; the console ran it
		// with a made-up timer event (an outside tester).
		{"a function without a timer", "POST", "/__console/api/timers/hello", ``, map[string]string{tok: f.good}, 404},
		{"unknown sandbox", "GET", "/__console/api/sandbox/nope/calls", ``, nil, 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := f.do(t, c.method, c.path, c.body, c.hdr)
			require.Equal(t, c.status, status, body)
		})
	}
	require.Empty(t, f.emu.Bus().Recent(), "no refused call ran the function")
	require.Empty(t, f.sbx.Faults(), "no refused call reached the sandbox")

	status, body := f.do(t, "POST", "/__console/api/invoke/hello", `{"action":"log"}`, map[string]string{tok: f.good, "Origin": f.srv.URL})
	require.Equal(t, 200, status, body)
	var inv emulator.Invocation
	require.NoError(t, json.Unmarshal([]byte(body), &inv))
	require.Equal(t, "hello", inv.Function)
	require.Equal(t, "invoke", inv.Trigger)
	require.Contains(t, string(inv.Response), `"hello":"fc"`)
	require.Len(t, f.emu.Bus().Recent(), 1)

	// As the page sends it: its own Origin and Sec-Fetch-Site, which the
	// sandbox's admin endpoints refuse from anyone but the console.
	status, body = f.do(t, "POST", "/__console/api/sandbox/demo/faults", `{"path":"/x","kind":"reset"}`,
		map[string]string{tok: f.good, "Origin": f.srv.URL, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"})
	require.Equal(t, 200, status, body)
	require.Equal(t, []sandbox.Fault{{Path: "/x", Kind: sandbox.FaultReset}}, f.sbx.Faults())
	status, body = f.do(t, "GET", "/__console/api/sandbox/demo/faults", ``, nil)
	require.Equal(t, 200, status)
	require.JSONEq(t, `{"faults":[{"path":"/x","kind":"reset"}]}`, body)
}

func TestOnlyLoopbackPeers(t *testing.T) {
	f := newFixture(t, nil)
	for _, c := range []struct {
		remote string
		status int
	}{{"192.0.2.7:40000", 403}, {"[2001:db8::1]:40000", 403}, {"127.0.0.1:40000", 200}, {"[::1]:40000", 200}} {
		req := httptest.NewRequest("GET", "http://127.0.0.1:9000/__console/api/state", nil)
		req.RemoteAddr = c.remote
		rec := httptest.NewRecorder()
		f.con.Handler().ServeHTTP(rec, req)
		require.Equal(t, c.status, rec.Code, c.remote)
	}
	for _, host := range []string{"localhost:9000", "[::1]:9000", "127.0.0.1"} {
		req := httptest.NewRequest("GET", "http://"+host+"/", nil)
		req.RemoteAddr = "127.0.0.1:5000"
		rec := httptest.NewRecorder()
		f.con.Handler().ServeHTTP(rec, req)
		require.Equal(t, 200, rec.Code, host)
	}
}

func TestLiveEventsReplayAndState(t *testing.T) {
	f := newFixture(t, map[string]console.Build{"hello": {OK: false, Error: "functions/hello/main.go:7:2: undefined: x"}})
	_, rep, err := f.emu.Invoke(context.Background(), "hello", []byte(`{"action":"log"}`))
	require.NoError(t, err)

	resp := f.events(t)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	events := make(chan emulator.Invocation, 64)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var in emulator.Invocation
				if json.Unmarshal([]byte(data), &in) == nil {
					events <- in
				}
			}
		}
		close(events)
	}()
	next := func() emulator.Invocation {
		select {
		case in := <-events:
			return in
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
			return emulator.Invocation{}
		}
	}
	first := next()
	require.Equal(t, rep.RequestID, first.RequestID, "the stream starts with what was kept")

	status, body := f.do(t, "POST", "/__console/api/replay/"+rep.RequestID, ``, map[string]string{console.TokenHeader: f.good})
	require.Equal(t, 200, status, body)
	var again emulator.Invocation
	require.NoError(t, json.Unmarshal([]byte(body), &again))
	require.NotEqual(t, rep.RequestID, again.RequestID)
	require.JSONEq(t, string(first.Request), string(again.Request), "a replay sends the same request")
	for in := next(); in.RequestID != again.RequestID || in.Running; in = next() {
	}

	status, body = f.do(t, "GET", "/__console/api/state", ``, nil)
	require.Equal(t, 200, status)
	var st struct {
		Functions []console.FunctionState `json:"functions"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	require.Len(t, st.Functions, 1)
	fn := st.Functions[0]
	require.Equal(t, "hello", fn.Name)
	require.Equal(t, "demo.hello", fn.API)
	require.Equal(t, "build-failed", fn.State, "a failed build shows even while the old binary serves")
	require.Equal(t, "functions/hello/main.go:7:2: undefined: x", fn.Build.Error)
	require.Len(t, fn.Instances, 1)
	require.Equal(t, 2, fn.Instances[0].Invocations)

	status, _ = f.do(t, "GET", "/__console/api/invocations/"+again.RequestID, ``, nil)
	require.Equal(t, 200, status)
	status, _ = f.do(t, "GET", "/__console/api/invocations/nope", ``, nil)
	require.Equal(t, 404, status)
}

func TestReplayOfARequestTooLargeToKeep(t *testing.T) {
	f := newFixture(t, nil)
	big := `{"action":"x","pad":"` + strings.Repeat("a", emulator.MaxKept) + `"}`
	_, rep, err := f.emu.Invoke(context.Background(), "hello", []byte(big))
	require.NoError(t, err)
	status, body := f.do(t, "POST", "/__console/api/replay/"+rep.RequestID, ``, map[string]string{console.TokenHeader: f.good})
	require.Equal(t, http.StatusConflict, status)
	require.Contains(t, body, "cannot replay it")
	require.Len(t, f.emu.Bus().Recent(), 1, "nothing ran")
}

// The state shows the asynchronous invocations waiting for an instance and
// the queue's size: a flood of Event calls was invisible until it answered
// 429.
func TestStateShowsTheAsyncQueue(t *testing.T) {
	f := newFixture(t, nil)
	emuSrv := httptest.NewServer(f.emu.Handler())
	defer emuSrv.Close()
	post := func(body string) int {
		req, _ := http.NewRequest("POST", emuSrv.URL+"/2023-03-30/functions/hello/invocations", strings.NewReader(body))
		req.Header.Set("x-fc-invocation-type", "Async")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	// One instance, one worker: the first call sleeps, the rest wait.
	for range 4 {
		require.Equal(t, http.StatusAccepted, post(`{"action":"sleep","ms":1500}`))
	}
	var st struct {
		Functions []console.FunctionState `json:"functions"`
	}
	require.Eventually(t, func() bool {
		status, body := f.do(t, "GET", "/__console/api/state", "", nil)
		require.Equal(t, http.StatusOK, status)
		require.NoError(t, json.Unmarshal([]byte(body), &st))
		return st.Functions[0].Queued == 3
	}, 5*time.Second, 20*time.Millisecond, "three wait while the first runs")
	require.Equal(t, emulator.DefaultAsyncQueue, st.Functions[0].QueueLimit)
}

// An open console tab held Ctrl-C for the whole shutdown timeout (6.7 s
// instead of 1.2 s, an outside tester), because its event stream never
// ended and http.Server.Shutdown waits for every handler. Close, registered
// with RegisterOnShutdown, ends the streams: Shutdown returns with no
// deadline to run out.
func TestShutdownDoesNotWaitForAnOpenTab(t *testing.T) {
	f := newFixture(t, nil)
	srv, addr := f.serve(t)
	resp, err := http.Get("http://" + addr + "/__console/api/events")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx), "the stream ended, so Shutdown did not run into its deadline")
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err, "the stream ended cleanly")
}

// TestAChattyCallStreamsABoundedAmount: each log line pushed the whole
// record so far to every subscriber, a call of 200 lines of 1 KB sent 21 MB
// over one stream for a 203 KB record. Now its lines go out at most every
// emulator.PublishEvery, plus its start and its end.
func TestAChattyCallStreamsABoundedAmount(t *testing.T) {
	f := newFixture(t, nil)
	resp := f.events(t)
	type event struct {
		id      string
		running bool
		size    int
	}
	events := make(chan event, 4096)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 8<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var in emulator.Invocation
				if json.Unmarshal([]byte(data), &in) == nil {
					events <- event{in.RequestID, in.Running, len(data)}
				}
			}
		}
		close(events)
	}()

	start := time.Now()
	_, rep, err := f.emu.Invoke(context.Background(), "hello", []byte(`{"action":"chatty","lines":3000}`))
	require.NoError(t, err)
	n, total, final := 0, 0, 0
	for final == 0 {
		select {
		case ev, ok := <-events:
			require.True(t, ok, "the stream ended")
			if ev.id != rep.RequestID {
				continue
			}
			n, total = n+1, total+ev.size
			if !ev.running {
				final = ev.size
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no final event after %d events (%d bytes)", n, total)
		}
	}
	elapsed := time.Since(start)
	t.Logf("%d updates, %d bytes, final record %d bytes, in %v", n, total, final, elapsed)
	// Its start, its end, and one batch of lines per PublishEvery at most;
	// no update is larger than the final record (plus a marker digit or so).
	most := 2 + int(elapsed/emulator.PublishEvery) + 1
	require.LessOrEqual(t, n, most, "updates for a call of %v", elapsed)
	require.LessOrEqual(t, total, most*(final+64), "%d bytes in %d updates, the record is %d bytes", total, n, final)
}

// A tab that stops reading (paused, or a curl that stalled) blocked its
// stream's write for ever: the bus's cut-off never reached it and Ctrl-C
// waited for it. Its writes now have a deadline, and shutdown ends them.
func TestAStalledReaderDoesNotHoldShutdown(t *testing.T) {
	f := newFixture(t, nil)
	srv, addr := f.serve(t)
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.(*net.TCPConn).SetReadBuffer(4096))
	_, err = fmt.Fprintf(conn, "GET /__console/api/events HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	require.NoError(t, err)
	// Never read: fill what the kernel holds for the stream, many times over.
	for range 60 {
		_, _, err := f.emu.Invoke(context.Background(), "hello", []byte(`{"action":"chatty","lines":3000}`))
		require.NoError(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx), "the stalled stream ended, so Shutdown did not run into its deadline")
}

// A reader that keeps reading, however slowly, gets the whole backlog: one
// deadline over all of it (up to 64 MiB) cut off every reader slower than
// about 30 MB/s, and the page, reconnecting, was sent it all again (an
// outside tester).
func TestASlowReaderGetsTheWholeBacklog(t *testing.T) {
	const kept, pad = 24, 250_000
	f := newPlatformFixture(t, nil, "fc", func(o *console.Options) { o.StallTimeout = 250 * time.Millisecond })
	for i := range kept {
		_, _, err := f.emu.Invoke(context.Background(), "hello", []byte(fmt.Sprintf(`{"action":"pad%d","pad":%q}`, i, strings.Repeat("p", pad))))
		require.NoError(t, err)
	}
	u, err := url.Parse(f.srv.URL)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "GET /__console/api/events HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host)
	require.NoError(t, err)
	// Under 4 MB/s (16 KiB a read, a few milliseconds apart): the 6 MB
	// backlog takes seconds, several times the stall timeout.
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(slowReader{conn}), nil)
	require.NoError(t, err)
	// The stream never ends: conn.Close ends it (Body.Close would drain it).
	buf := make([]byte, 16<<10)
	var got bytes.Buffer
	complete := func() int {
		b := got.Bytes()
		n := bytes.Count(b, []byte("event: invocation"))
		if last := bytes.LastIndex(b, []byte("\ndata: ")); last < 0 || !bytes.Contains(b[last:], []byte("\n\n")) {
			n-- // the last one is still coming
		}
		return n
	}
	for complete() < kept {
		n, err := resp.Body.Read(buf)
		got.Write(buf[:n])
		require.NoError(t, err, "the stream ended after %d of %d invocations (%d bytes)", complete(), kept, got.Len())
	}
	for i := range kept {
		whole := fmt.Sprintf(`"request":{"action":"pad%d","pad":"%s"}`, i, strings.Repeat("p", pad))
		if !strings.Contains(got.String(), whole) {
			at := strings.Index(got.String(), fmt.Sprintf(`"pad%d"`, i))
			t.Fatalf("invocation %d did not come whole: %.200s", i, got.String()[max(at-100, 0):])
		}
	}
}

// slowReader reads at most 16 KiB at a time, 4 ms apart.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(4 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 16<<10)])
}

// The console's invoke door takes what the platform's does: under aws it
// ran events of 6–32 MB that Lambda's Invoke refuses (a re-tester).
func TestTheConsoleTakesThePlatformsPayloadCap(t *testing.T) {
	for _, tc := range []struct {
		platform, says string
		size           int
	}{
		{"aws", "payload too large: Lambda's Invoke takes at most 6 MB", 6<<20 + 10},
		{"fc", "payload too large: FC's InvokeFunction takes at most 32 MB", 32<<20 + 10},
	} {
		f := newPlatformFixture(t, nil, tc.platform)
		body := `"` + strings.Repeat("x", tc.size-2) + `"`
		status, got := f.do(t, "POST", "/__console/api/invoke/hello", body, map[string]string{console.TokenHeader: f.good, "Origin": f.srv.URL})
		require.Equal(t, 413, status, tc.platform)
		require.Contains(t, got, tc.says)
		require.Empty(t, f.emu.Bus().Recent(), "nothing ran")
	}
}
