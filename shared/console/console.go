// Package console is the emulator's web console, served at the emulator's
// "/": functions and their instances, timers, live invocations with their
// request, response and log lines, an invoke form per function generated
// from its input schema, and the vendor sandboxes' state and faults.
//
// The assets are plain HTML, CSS and JavaScript embedded in the binary: no
// build step. Security: the console answers only loopback peers that name a
// loopback host (no DNS rebinding), and every state-changing endpoint needs
// the per-run token the page carries, which a cross-site page can neither
// read nor send without a CORS preflight the console never grants.
package console

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cloudcall/cloudcall/shared/callerauth"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/runtime"
)

//go:embed assets
var assets embed.FS

// TokenHeader carries the per-run token on state-changing requests.
const TokenHeader = "X-Cloudcall-Console-Token"

// Emulator is what the console needs of the emulator (*emulator.Emulator
// implements it).
type Emulator interface {
	Names() []string
	Instances(fn string) []emulator.InstanceInfo
	Queued(fn string) (waiting, limit int)
	Timers(now time.Time) []emulator.TimerInfo
	Bus() *emulator.Bus
	Invoke(ctx context.Context, fn string, payload []byte) (runtimeapi.Result, emulator.Report, error)
	FireTimer(ctx context.Context, fn string) (runtimeapi.Result, emulator.Report, error)
}

// Function is what the console shows about a function besides its
// instances.
type Function struct {
	Name        string          `json:"name"`
	API         string          `json:"api"`
	Description string          `json:"description"`
	Vendor      string          `json:"vendor"`
	HTTP        bool            `json:"http"`
	Example     json.RawMessage `json:"example,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"` // the input JSON Schema, when there is one
}

// Sandbox is a vendor sandbox the console can show and drive.
type Sandbox struct {
	Vendor string `json:"vendor"`
	URL    string `json:"url"`
}

// Build is the outcome of a function's latest build under --watch.
type Build struct {
	OK         bool      `json:"ok"`
	At         time.Time `json:"at"`
	DurationMs int64     `json:"durationMs"`
	Error      string    `json:"error,omitempty"` // the compiler's output (file:line: message), or the start's
	// Failed says which step refused the build: "compile", or "start" (it
	// compiled, but exited or hung before asking for work).
	Failed string `json:"failed,omitempty"`
}

// Options configures the console.
type Options struct {
	Emulator  Emulator
	Functions []Function
	Sandboxes []Sandbox
	Platform  string
	// Builds reports --watch builds by function; nil when not watching.
	Builds func() map[string]Build
	// Debug names the function running under Delve, if any.
	Debug string
	// Token is the per-run token; a random one when empty.
	Token string
	// CallerKeys (key id → secret, the functions' CLOUDCALL_CALLER_KEYS)
	// lets Replay sign a replayed HTTP trigger call again: its nonce is
	// spent, so the very same request is refused as a replay.
	CallerKeys map[string]string
	// StallTimeout is how long an event stream's reader may take nothing
	// before the stream ends; StallTimeout (the constant) when zero.
	StallTimeout time.Duration
}

// Console serves the web console.
type Console struct {
	opts    Options
	token   string
	proxies map[string]*httputil.ReverseProxy
	page    *template.Template
	closing chan struct{} // closed by Close: event streams end
	once    sync.Once
}

// Close ends the console's event streams. A stream never ends on its own,
// and http.Server.Shutdown waits for every handler: an open console tab held
// Ctrl-C for the whole shutdown timeout, with the sandboxes' ports still
// taken. Register it with the server's RegisterOnShutdown.
func (c *Console) Close() { c.once.Do(func() { close(c.closing) }) }

// New builds the console.
func New(opts Options) (*Console, error) {
	if opts.Emulator == nil {
		return nil, errors.New("console: no emulator")
	}
	tok := opts.Token
	if tok == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("console: token: %w", err)
		}
		tok = hex.EncodeToString(b)
	}
	page, err := template.ParseFS(assets, "assets/index.html")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c := &Console{opts: opts, token: tok, proxies: map[string]*httputil.ReverseProxy{}, page: page, closing: make(chan struct{})}
	for _, s := range opts.Sandboxes {
		u, err := url.Parse(s.URL)
		if err != nil {
			return nil, fmt.Errorf("console: sandbox %s: %w", s.Vendor, err)
		}
		c.proxies[s.Vendor] = &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.URL.Path = "/__sandbox/" + r.In.PathValue("path")
			r.Out.URL.RawPath = ""
			r.Out.Header.Del(TokenHeader)
			r.Out.Header.Del("Cookie")
			// The console checked the page (token, Origin, Host); what goes
			// on is the console's own request, which the sandbox's guard
			// would refuse with the page's headers.
			for _, h := range []string{"Origin", "Referer", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-User"} {
				r.Out.Header.Del(h)
			}
		}}
	}
	return c, nil
}

// Token is the per-run token (tests; the page embeds it).
func (c *Console) Token() string { return c.token }

// Handler serves GET / and everything under /__console/.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.HandleFunc("GET /{$}", c.index)
	mux.Handle("GET /__console/assets/", http.StripPrefix("/__console/assets/", http.FileServerFS(static)))
	mux.HandleFunc("GET /__console/api/state", c.state)
	mux.HandleFunc("GET /__console/api/events", c.events)
	mux.HandleFunc("GET /__console/api/invocations/{id}", c.invocation)
	mux.HandleFunc("POST /__console/api/invoke/{fn}", c.guard(c.invoke))
	mux.HandleFunc("POST /__console/api/replay/{id}", c.guard(c.replay))
	mux.HandleFunc("POST /__console/api/timers/{fn}", c.guard(c.fireTimer))
	mux.HandleFunc("GET /__console/api/sandbox/{vendor}/{path...}", c.sandbox)
	mux.HandleFunc("POST /__console/api/sandbox/{vendor}/{path...}", c.guard(c.sandbox))
	return c.loopbackOnly(mux)
}

// loopbackOnly refuses peers that are not on this machine, and requests
// whose Host is not a loopback name: a page on another site that rebinds
// its DNS name to 127.0.0.1 sends its own Host and is refused.
func (c *Console) loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackAddr(r.RemoteAddr) {
			http.Error(w, "the console answers only on this machine (loopback)", http.StatusForbidden)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		if !LoopbackHost(host) {
			http.Error(w, "the console answers only to a loopback host name (127.0.0.1, ::1 or localhost)", http.StatusForbidden)
			return
		}
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoopbackHost says whether a host name or address ("localhost",
// "127.0.0.1", "[::1]") names this machine only.
func LoopbackHost(h string) bool {
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// guard lets a state-changing request through only with the per-run token
// and, when the browser names an origin, only from the console's own.
func (c *Console) guard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get(TokenHeader)
		if subtle.ConstantTimeCompare([]byte(got), []byte(c.token)) != 1 {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "missing or wrong " + TokenHeader + ": state-changing console calls need the token of this run (open the console page)"})
			return
		}
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || u.Host != r.Host {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin console call refused"})
				return
			}
		}
		next(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (c *Console) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	_ = c.page.Execute(w, map[string]string{"Token": c.token})
}

// FunctionState is one function in GET /__console/api/state.
type FunctionState struct {
	Function
	State     string                  `json:"state"` // idle, warm, busy, build-failed
	Instances []emulator.InstanceInfo `json:"instances"`
	// Queued asynchronous invocations (Event / x-fc-invocation-type:
	// Async) waiting for an instance, out of QueueLimit.
	Queued     int                 `json:"queued"`
	QueueLimit int                 `json:"queueLimit"`
	Timer      *emulator.TimerInfo `json:"timer,omitempty"`
	Build      *Build              `json:"build,omitempty"`
	Debug      bool                `json:"debug,omitempty"`
}

func (c *Console) state(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	timers := map[string]emulator.TimerInfo{}
	for _, t := range c.opts.Emulator.Timers(now) {
		timers[t.Function] = t
	}
	var builds map[string]Build
	if c.opts.Builds != nil {
		builds = c.opts.Builds()
	}
	meta := map[string]Function{}
	for _, f := range c.opts.Functions {
		meta[f.Name] = f
	}
	out := []FunctionState{}
	for _, name := range c.order() {
		f := meta[name]
		f.Name = name
		st := FunctionState{Function: f, Instances: c.opts.Emulator.Instances(name), Debug: name == c.opts.Debug}
		st.Queued, st.QueueLimit = c.opts.Emulator.Queued(name)
		st.State = "idle"
		for _, in := range st.Instances {
			if in.Busy {
				st.State = "busy"
				break
			}
			st.State = "warm"
		}
		if t, ok := timers[name]; ok {
			st.Timer = &t
		}
		if b, ok := builds[name]; ok {
			st.Build = &b
			if !b.OK {
				st.State = "build-failed"
			}
		}
		out = append(out, st)
	}
	writeJSON(w, http.StatusOK, map[string]any{"platform": c.opts.Platform, "functions": out, "sandboxes": c.opts.Sandboxes, "now": now})
}

// StallTimeout is how long a console event stream may go without its reader
// taking anything before it is ended (Options.StallTimeout's default).
const StallTimeout = 2 * time.Second

// MinStreamRate is the slowest a reader may take a burst of events (the
// kept ones when it connects) on average: each burst has StallTimeout plus
// its size at this rate.
const MinStreamRate = 256 << 10 // bytes a second

// pacedWriter gives each burst of writes a deadline that grows with what it
// has written. One deadline of StallTimeout over the whole backlog (up to
// BusMaxBytes) cut off every tab reading slower than about 30 MB/s, which
// then reconnected and was sent it all again (an outside tester). A
// deadline per write does not measure the reader either: the kernel's send
// buffer (megabytes on loopback) wakes a blocked writer only when half of
// it has drained, seconds later for a reader reading steadily at 1 MB/s.
type pacedWriter struct {
	w       io.Writer
	rc      *http.ResponseController
	timeout time.Duration
	closing <-chan struct{}
	start   time.Time // of the burst
	sent    int       // in the burst
}

const pacedChunk = 32 << 10

var errClosing = errors.New("console: closing")

// burst starts a burst: the writes until the next burst share its deadline.
func (s *pacedWriter) burst() { s.start, s.sent = time.Now(), 0 }

func (s *pacedWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), pacedChunk)]
		s.sent += len(chunk)
		pace := time.Duration(float64(s.sent) / MinStreamRate * float64(time.Second))
		_ = s.rc.SetWriteDeadline(s.start.Add(s.timeout + pace))
		// After the deadline is set, not before: Close's short deadline
		// set in between would be overwritten by this one.
		select {
		case <-s.closing:
			return n, errClosing
		default:
		}
		m, err := s.w.Write(chunk)
		n += m
		if err != nil {
			return n, err
		}
		p = p[m:]
	}
	return n, nil
}

// events streams every invocation change as server-sent events: first the
// ones kept so far, then each start, end and batch of log lines. The stream
// ends when the bus cuts off a subscriber that fell behind; the page's
// EventSource then connects again and gets every kept invocation afresh, so
// no finished call is left showing as running.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	recent, ch, cancel := c.opts.Emulator.Bus().Subscribe()
	defer cancel()
	// A reader that stops reading (a paused tab, a stalled curl) blocked a
	// write for ever: the bus's cut-off never reached it, and Ctrl-C waited
	// 5 s for five of them. A burst of writes not taken within StallTimeout
	// plus its size at MinStreamRate ends the stream (the page reconnects
	// when it reads again); shutdown ends it at once.
	rc := http.NewResponseController(w)
	written := make(chan struct{})
	defer close(written)
	go func() {
		select {
		case <-c.closing:
			// Soon, not now: a handler that is not stuck ends its
			// response cleanly in the meantime.
			_ = rc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		case <-written:
		}
	}()
	sw := &pacedWriter{w: w, rc: rc, timeout: cmp.Or(c.opts.StallTimeout, StallTimeout), closing: c.closing}
	sw.burst()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// Reconnect after a second (browsers wait about three by default).
	if _, err := io.WriteString(sw, "retry: 1000\n\n"); err != nil {
		return
	}
	send := func(in emulator.Invocation) error {
		b, _ := json.Marshal(in)
		_, err := fmt.Fprintf(sw, "event: invocation\ndata: %s\n\n", b)
		return err
	}
	for _, in := range recent {
		if send(in) != nil {
			return
		}
	}
	fl.Flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.closing:
			return
		case in, ok := <-ch:
			sw.burst()
			if !ok || send(in) != nil {
				return
			}
			fl.Flush()
		case <-ping.C:
			sw.burst()
			if _, err := io.WriteString(sw, ": ping\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

func (c *Console) invocation(w http.ResponseWriter, r *http.Request) {
	in, ok := c.opts.Emulator.Bus().Get(r.PathValue("id"))
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no invocation with that request id is kept"})
		return
	}
	writeJSON(w, http.StatusOK, in)
}

// order lists the functions as Options.Functions does (the registry's
// order), then any others the emulator runs.
func (c *Console) order() []string {
	running := map[string]bool{}
	for _, n := range c.opts.Emulator.Names() {
		running[n] = true
	}
	var out []string
	for _, f := range c.opts.Functions {
		if running[f.Name] {
			out = append(out, f.Name)
			delete(running, f.Name)
		}
	}
	for _, n := range c.opts.Emulator.Names() {
		if running[n] {
			out = append(out, n)
		}
	}
	return out
}

func (c *Console) known(fn string) bool {
	for _, n := range c.opts.Emulator.Names() {
		if n == fn {
			return true
		}
	}
	return false
}

// answer runs an invocation and answers with its record as the bus keeps it.
func (c *Console) answer(w http.ResponseWriter, rep emulator.Report, err error) {
	in, ok := c.opts.Emulator.Bus().Get(rep.RequestID)
	if !ok {
		msg := "the invocation was not recorded"
		if err != nil {
			msg = err.Error()
		}
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": msg})
		return
	}
	writeJSON(w, http.StatusOK, in)
}

func (c *Console) invoke(w http.ResponseWriter, r *http.Request) {
	fn := r.PathValue("fn")
	if !c.known(fn) {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "unknown function", "known": c.opts.Emulator.Names()})
		return
	}
	// The platform's own cap, as its invoke door has: under aws the console
	// ran events of 6–32 MB that Lambda's Invoke refuses (a re-tester).
	limit, door := emulator.FCMaxPayload, "FC's InvokeFunction"
	if c.opts.Platform == string(runtimeapi.Lambda) {
		limit, door = emulator.LambdaMaxPayload, "Lambda's Invoke"
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil || len(body) > limit {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("payload too large: %s takes at most %d MB", door, limit>>20)})
		return
	}
	if !json.Valid(body) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the event is not valid JSON"})
		return
	}
	_, rep, err := c.opts.Emulator.Invoke(r.Context(), fn, body)
	c.answer(w, rep, err)
}

func (c *Console) replay(w http.ResponseWriter, r *http.Request) {
	old, ok := c.opts.Emulator.Bus().Get(r.PathValue("id"))
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no invocation with that request id is kept"})
		return
	}
	var t emulator.Truncated
	if json.Unmarshal(old.Request, &t) == nil && t.Truncated {
		writeJSON(w, http.StatusConflict, map[string]string{"error": fmt.Sprintf("the request was %d bytes; the console keeps %d at most, so it cannot replay it", t.Bytes, emulator.MaxKept)})
		return
	}
	_, rep, err := c.opts.Emulator.Invoke(r.Context(), old.Function, resign(old.Request, c.opts.CallerKeys, time.Now()))
	c.answer(w, rep, err)
}

// resign gives a replayed HTTP trigger event a fresh caller signature (new
// timestamp and nonce) with the key it was signed with, when the console
// knows that key and the recorded signature was that key's, as of its own
// timestamp; any other event is replayed as it was (and refused again).
// Re-signing whatever named a known KeyId turned a forged call, recorded as
// refused, into a signed one at a developer's click (outside tester: a
// charge with an attacker's order and price).
func resign(event []byte, keys map[string]string, now time.Time) []byte {
	if len(keys) == 0 {
		return event
	}
	in, _, err := runtime.Detect(event)
	if err != nil || in.Trigger != envelope.TriggerHTTP {
		return event
	}
	a, err := callerauth.Parse(in.Header.Get("Authorization"))
	if err != nil {
		return event
	}
	secret, ok := keys[a.KeyID]
	if !ok {
		return event
	}
	// The function's own check, at the moment it was signed and with no
	// nonce seen: only freshness and replay are set aside.
	then := callerauth.NewVerifier(keys, callerauth.NewNonces(callerauth.NoncesOptions{}), func() time.Time { return time.Unix(a.Timestamp, 0) })
	if then.Verify(context.Background(), callerauth.Request{Authorization: in.Header.Get("Authorization"),
		Method: in.Method, Path: in.Path, RawQuery: in.RawQuery, QueryJoined: in.QueryJoined, Body: in.Body}) != nil {
		return event
	}
	auth := callerauth.Header(a.KeyID, secret, in.Method, in.Path, in.RawQuery, now.Unix(), callerauth.NewNonce(), in.Body)
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber()
	if dec.Decode(&m) != nil {
		return event
	}
	headers, _ := m["headers"].(map[string]any)
	for k := range headers {
		if strings.EqualFold(k, "Authorization") {
			headers[k] = auth
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return event
	}
	return b
}

func (c *Console) fireTimer(w http.ResponseWriter, r *http.Request) {
	fn := r.PathValue("fn")
	if !c.known(fn) {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "unknown function", "known": c.opts.Emulator.Names()})
		return
	}
	_, rep, err := c.opts.Emulator.FireTimer(r.Context(), fn)
	if errors.Is(err, emulator.ErrNoTimer) {
		var with []string
		for _, t := range c.opts.Emulator.Timers(time.Now()) {
			with = append(with, t.Function)
		}
		writeJSON(w, http.StatusNotFound, map[string]any{"error": fmt.Sprintf("function %q has no timer", fn), "timers": with})
		return
	}
	c.answer(w, rep, err)
}

// sandbox passes /__console/api/sandbox/<vendor>/<path> to the sandbox's
// /__sandbox/<path> admin endpoints (and nothing else of it).
func (c *Console) sandbox(w http.ResponseWriter, r *http.Request) {
	p, ok := c.proxies[r.PathValue("vendor")]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such sandbox"})
		return
	}
	p.ServeHTTP(w, r)
}
