package sandbox

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFaultsAndCounters(t *testing.T) {
	s := New("test")
	var handled atomic.Int32
	srv := httptest.NewServer(s.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled.Add(1)
		_, _ = w.Write([]byte(`{"ok":true}`))
	})))
	defer srv.Close()
	get := func(path string) (*http.Response, error) { return http.Get(srv.URL + path) }

	s.Inject(Fault{Path: "/a", Kind: FaultStatus, Status: 503, Body: `{"err":1}`, Times: 1})
	r, err := get("/a")
	require.NoError(t, err)
	require.Equal(t, 503, r.StatusCode)
	r, err = get("/a")
	require.NoError(t, err)
	require.Equal(t, 200, r.StatusCode, "a Times:1 fault fires once")
	require.Equal(t, int32(1), handled.Load())

	s.Inject(Fault{Path: "/b", Kind: FaultDropAfter, Times: 1})
	_, err = get("/b")
	require.Error(t, err, "the connection closes without an answer")
	require.Equal(t, int32(2), handled.Load(), "drop-after still handles the request: the ambiguous outcome")

	s.Inject(Fault{Kind: FaultReset, Times: 1})
	_, err = get("/c")
	require.Error(t, err)
	require.Equal(t, int32(2), handled.Load(), "reset does not handle the request")

	s.Inject(Fault{Path: "/m", Kind: FaultMalformed, Times: 1})
	r, err = get("/m")
	require.NoError(t, err)
	b, _ := io.ReadAll(r.Body)
	require.NotContains(t, string(b), `"ok"`)

	require.Equal(t, 2, s.Calls("http:/a"))
	require.Equal(t, 1, s.Calls("http:/b"))

	// A hang without a delay holds until the caller gives up (it hung up
	// at once, a reset in all but name).
	s.Inject(Fault{Path: "/h", Kind: FaultHang, Times: 1})
	start := time.Now()
	_, err = (&http.Client{Timeout: 300 * time.Millisecond}).Get(srv.URL + "/h")
	require.Error(t, err)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "held until the caller's timeout")
}

// TestStackedFaultsAllFire: a second fault on a path adds to the first. A
// drop-after posted after a latency without Times never fired, and tests
// that stacked them checked nothing.
func TestStackedFaultsAllFire(t *testing.T) {
	s := New("test")
	var handled atomic.Int32
	srv := httptest.NewServer(s.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled.Add(1)
		_, _ = w.Write([]byte(`{"ok":true}`))
	})))
	defer srv.Close()
	s.Inject(Fault{Path: "/r", Kind: FaultLatency, Delay: 100 * time.Millisecond})
	s.Inject(Fault{Path: "/r", Kind: FaultLatency, Delay: 50 * time.Millisecond, Times: 1})
	s.Inject(Fault{Path: "/r", Kind: FaultDropAfter, Times: 1})
	s.Inject(Fault{Path: "/r", Kind: FaultStatus, Status: 503, Times: 1})

	start := time.Now()
	_, err := http.Get(srv.URL + "/r")
	require.Error(t, err, "the drop-after fired, after both delays")
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
	require.Equal(t, int32(1), handled.Load())

	start = time.Now()
	r, err := http.Get(srv.URL + "/r")
	require.NoError(t, err)
	require.Equal(t, 503, r.StatusCode, "the status fault is next, once the drop-after is spent")
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "the lasting latency still adds")

	r, err = http.Get(srv.URL + "/r")
	require.NoError(t, err)
	require.Equal(t, 200, r.StatusCode)
	require.Equal(t, int32(2), handled.Load())
	require.Len(t, s.Faults(), 1, "only the lasting latency is left")
}

func TestAdminEndpoints(t *testing.T) {
	s := New("test")
	srv := httptest.NewServer(s.Wrap(http.NotFoundHandler()))
	defer srv.Close()
	before := s.Clock.Now()
	r, err := http.Post(srv.URL+"/__sandbox/clock", "application/json", strings.NewReader(`{"advance":"2h"}`))
	require.NoError(t, err)
	require.Equal(t, 200, r.StatusCode)
	require.GreaterOrEqual(t, s.Clock.Now().Sub(before), 2*time.Hour)

	r, err = http.Post(srv.URL+"/__sandbox/faults", "application/json", strings.NewReader(`{"path":"/x","kind":"status","status":500,"times":1}`))
	require.NoError(t, err)
	require.Equal(t, 200, r.StatusCode)
	r, err = http.Get(srv.URL + "/x")
	require.NoError(t, err)
	require.Equal(t, 500, r.StatusCode)

	r, err = http.Post(srv.URL+"/__sandbox/clock", "application/json", strings.NewReader(`{"advance":"soon"}`))
	require.NoError(t, err)
	require.Equal(t, 400, r.StatusCode)
}

func TestFaultKindRefused(t *testing.T) {
	s := New("test")
	srv := httptest.NewServer(s.Wrap(http.NotFoundHandler()))
	defer srv.Close()
	for _, tc := range []struct{ body, want string }{
		{`{"kind":"explode"}`, `unknown fault kind \"explode\"; expected one of latency, status, reset, malformed, drop-after, hang`},
		{`{"kind":""}`, `unknown fault kind \"\"`},
		{`{"kind":"status"}`, `a status fault needs a status between 100 and 599`},
		{`{"kind":"latency","delay":"1s","retryAfter":5}`, `retryAfter is seconds (0 or more) of a status fault's Retry-After header`},
		{`{"kind":"status","status":503,"retryAfter":-1}`, `retryAfter is seconds`},
	} {
		r, err := http.Post(srv.URL+"/__sandbox/faults", "application/json", strings.NewReader(tc.body))
		require.NoError(t, err)
		b, _ := io.ReadAll(r.Body)
		require.Equal(t, 400, r.StatusCode)
		require.Contains(t, string(b), tc.want)
	}
	r, err := http.Get(srv.URL + "/x")
	require.NoError(t, err)
	require.Equal(t, 404, r.StatusCode, "no fault was added")
}

// TestAdminRefusesWebPages: a page could POST a fault (text/plain needs no
// preflight), clear it, or read the counters through a rebound DNS name;
// the admin endpoints now refuse what only a browser sends. The vendor
// paths, which functions call server to server, are untouched.
func TestAdminRefusesWebPages(t *testing.T) {
	s := New("test")
	srv := httptest.NewServer(s.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"ok":true}`))
	})))
	defer srv.Close()
	fault := `{"path":"/a","kind":"status","status":500,"body":"{}"}`
	for name, hdr := range map[string]map[string]string{
		"another origin":   {"Origin": "http://evil.example", "Content-Type": "text/plain"},
		"cross-site fetch": {"Sec-Fetch-Site": "cross-site"},
		"a rebound name":   {"Host": "evil.example"},
	} {
		for _, path := range []string{"/__sandbox/faults", "/__sandbox/faults/clear", "/__sandbox/calls", "/__sandbox/clock", "/__sandbox/vendor/own"} {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(fault))
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			if h := hdr["Host"]; h != "" {
				req.Host = h
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusForbidden, resp.StatusCode, "%s %s: %s", name, path, b)
			require.Contains(t, string(b), "the sandbox's admin endpoints")
		}
		// The vendor path still answers, whoever asks.
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/a", strings.NewReader(`{}`))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, name)
	}
	require.Empty(t, s.Faults(), "no fault got in")

	// curl, the console and the tests: no Origin, an IP or localhost.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/__sandbox/faults", strings.NewReader(fault))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, s.Faults(), 1)
}

// The clock moves forward only, and not so far that its offset wraps (two
// advances of 2562047h took it back to today).
func TestClockAdvanceIsBounded(t *testing.T) {
	s := New("test")
	srv := httptest.NewServer(s.Wrap(http.NotFoundHandler()))
	defer srv.Close()
	advance := func(d string) int {
		resp, err := http.Post(srv.URL+"/__sandbox/clock", "application/json", strings.NewReader(`{"advance":"`+d+`"}`))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	before := s.Clock.Now()
	require.Equal(t, 400, advance("-1h"))
	require.Equal(t, 400, advance("0s"))
	require.Equal(t, 200, advance("48h"))
	require.Equal(t, 400, advance("2562047h"))
	require.Equal(t, 400, advance("87553h"), "48h + this passes ten years")
	require.WithinDuration(t, before.Add(48*time.Hour), s.Clock.Now(), time.Minute)
}
