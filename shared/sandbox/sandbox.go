// Package sandbox holds what every vendor sandbox shares: a controllable
// clock, fault injection, call counting and the /__sandbox/ admin endpoints.
// The vendor sandboxes (sandbox/wechatsbx, ...) are product: users run them to
// develop against, and the tests count on them behaving like the vendor.
package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudcall/cloudcall/shared/browserguard"
)

// Clock is the sandbox's notion of now: real time plus an offset the tests
// (or a user, through /__sandbox/clock) can move forward.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
	base   func() time.Time
}

// NewClock starts at real time.
func NewClock() *Clock { return &Clock{base: time.Now} }

// Now is the sandbox time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base().Add(c.offset)
}

// Advance moves the clock forward (or back, with a negative d).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// MaxClockOffset is how far the admin endpoint moves the clock in all: ten
// years covers every token and record lifetime, and the offset cannot wrap.
const MaxClockOffset = 10 * 365 * 24 * time.Hour

// advanceWithin moves the clock forward by d unless that would pass max.
func (c *Clock) advanceWithin(d, max time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d <= 0 || d > max-c.offset {
		return false
	}
	c.offset += d
	return true
}

// FaultKind is what goes wrong.
type FaultKind string

const (
	FaultLatency   FaultKind = "latency"   // wait Delay, then answer normally
	FaultStatus    FaultKind = "status"    // answer Status with Body instead of handling
	FaultReset     FaultKind = "reset"     // close the connection without answering, request not handled
	FaultMalformed FaultKind = "malformed" // answer 200 with a body that is not JSON
	// FaultDropAfter handles the request (a charge is recorded) and then
	// closes the connection without answering: the ambiguous outcome.
	FaultDropAfter FaultKind = "drop-after"
	// FaultHang handles nothing and holds the connection for Delay (a
	// timeout), or until the caller gives up (ten minutes at most) when no
	// Delay is given.
	FaultHang FaultKind = "hang"
)

// Fault is one injected failure. It matches requests whose path starts with
// Path (empty: every path) and fires Times times (0: until cleared).
type Fault struct {
	Path   string        `json:"path"`
	Kind   FaultKind     `json:"kind"`
	Status int           `json:"status,omitempty"`
	Body   string        `json:"body,omitempty"`
	Delay  time.Duration `json:"delay,omitempty"`
	Times  int           `json:"times,omitempty"`
	// RetryAfter, with a status fault, is sent as its Retry-After header
	// in seconds: a 503 or 429 that says how long it lasts.
	RetryAfter int `json:"retryAfter,omitempty"`

	fired int
}

// Sandbox is the shared machinery one vendor sandbox embeds.
type Sandbox struct {
	Name  string
	Clock *Clock

	mu     sync.Mutex
	faults []*Fault
	calls  map[string]int
}

// New returns a sandbox with a real-time clock and no faults.
func New(name string) *Sandbox {
	return &Sandbox{Name: name, Clock: NewClock(), calls: map[string]int{}}
}

// Inject adds a fault.
func (s *Sandbox) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fc := f
	s.faults = append(s.faults, &fc)
}

// Faults lists the faults in force (the console shows them as toggles).
func (s *Sandbox) Faults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Fault, 0, len(s.faults))
	for _, f := range s.faults {
		out = append(out, *f)
	}
	return out
}

// ClearFaults removes every fault.
func (s *Sandbox) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Count adds one call under key (the vendor handler names keys, e.g. the API
// path or "token").
func (s *Sandbox) Count(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[key]++
}

// Calls returns how many times key was counted.
func (s *Sandbox) Calls(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[key]
}

// AllCalls copies every counter.
func (s *Sandbox) AllCalls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// ResetCalls zeroes the counters.
func (s *Sandbox) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
}

// take fires the faults a request to path meets: every latency fault on it
// (their delays add up) and the first fault of any other kind, which decides
// the answer. Each counts a firing and leaves once it has fired Times times.
// It returned only the first fault, so a drop-after posted after a latency
// without Times never fired.
func (s *Sandbox) take(path string) (time.Duration, *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var delay time.Duration
	var out *Fault
	kept := s.faults[:0]
	for _, f := range s.faults {
		fires := (f.Path == "" || strings.HasPrefix(path, f.Path)) && (f.Kind == FaultLatency || out == nil)
		if fires {
			f.fired++
			if f.Kind == FaultLatency {
				delay += f.Delay
			} else {
				cp := *f
				out = &cp
			}
		}
		if !fires || f.Times <= 0 || f.fired < f.Times {
			kept = append(kept, f)
		}
	}
	clear(s.faults[len(kept):])
	s.faults = kept
	return delay, out
}

// Admin is the path of the counters a user reads to see what arrived.
func (s *Sandbox) Admin() string { return "/__sandbox/calls" }

// FaultKinds lists the kinds Inject understands.
var faultKinds = []FaultKind{FaultLatency, FaultStatus, FaultReset, FaultMalformed, FaultDropAfter, FaultHang}

// Valid says what is wrong with a fault a user posted, or nil.
func (f Fault) Valid() error {
	for _, k := range faultKinds {
		if f.Kind == k {
			if k == FaultStatus && (f.Status < 100 || f.Status > 599) {
				return fmt.Errorf("a status fault needs a status between 100 and 599")
			}
			if f.RetryAfter < 0 || f.RetryAfter > 0 && k != FaultStatus {
				return fmt.Errorf("retryAfter is seconds (0 or more) of a status fault's Retry-After header")
			}
			return nil
		}
	}
	names := make([]string, len(faultKinds))
	for i, k := range faultKinds {
		names[i] = string(k)
	}
	return fmt.Errorf("unknown fault kind %q; expected one of %s", f.Kind, strings.Join(names, ", "))
}

// GuardAdmin refuses web pages on /__sandbox/ (browserguard): faults, the
// clock and balances steer what the functions see and the counters and
// ledgers show what they did. The console reaches them from the emulator
// process, with its own token; the vendor paths are left as they are
// (functions call them server to server, by whatever name).
func GuardAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/__sandbox/") {
			if refuse := browserguard.Refusal(r, "the sandbox's admin endpoints"); refuse != "" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": refuse})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Wrap puts fault injection and the admin endpoints in front of the vendor
// handler. Every request is counted under "http:<path>" before any fault.
func (s *Sandbox) Wrap(vendor http.Handler) http.Handler {
	return GuardAdmin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/__sandbox/calls", "/__sandbox/calls/reset", "/__sandbox/faults", "/__sandbox/faults/clear", "/__sandbox/clock":
			s.admin(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/__sandbox/") {
			vendor.ServeHTTP(w, r) // a vendor sandbox's own admin endpoints (e.g. /__sandbox/wechat/rotate)
			return
		}
		s.Count("http:" + r.URL.Path)
		delay, f := s.take(r.URL.Path)
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		if f == nil {
			vendor.ServeHTTP(w, r)
			return
		}
		switch f.Kind {
		case FaultStatus:
			w.Header().Set("Content-Type", "application/json")
			if f.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
			}
			w.WriteHeader(f.Status)
			_, _ = w.Write([]byte(f.Body))
		case FaultMalformed:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"this is": not json`))
		case FaultReset:
			hangUp(w)
		case FaultDropAfter:
			vendor.ServeHTTP(httptest.NewRecorder(), r)
			hangUp(w)
		case FaultHang:
			// No delay: until the caller gives up, ten minutes at most (it
			// hung up at once, which is a reset, not a hang).
			d := f.Delay
			if d <= 0 {
				d = 10 * time.Minute
			}
			select {
			case <-time.After(d):
			case <-r.Context().Done():
			}
			hangUp(w)
		default:
			vendor.ServeHTTP(w, r)
		}
	}))
}

// hangUp closes the connection without a response.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			_ = c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// admin serves:
//
//	GET  /__sandbox/calls            the counters
//	POST /__sandbox/calls/reset      zero them
//	GET  /__sandbox/faults           the faults in force
//	POST /__sandbox/faults           add a Fault (JSON; delay as "250ms")
//	POST /__sandbox/faults/clear     remove every fault
//	POST /__sandbox/clock            {"advance":"2h"}
func (s *Sandbox) admin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/__sandbox/calls":
		_ = json.NewEncoder(w).Encode(s.AllCalls())
	case r.Method == http.MethodGet && r.URL.Path == "/__sandbox/faults":
		_ = json.NewEncoder(w).Encode(map[string]any{"faults": s.Faults()})
	case r.Method == http.MethodPost && r.URL.Path == "/__sandbox/calls/reset":
		s.ResetCalls()
		_, _ = w.Write([]byte(`{"ok":true}`))
	case r.Method == http.MethodPost && r.URL.Path == "/__sandbox/faults":
		var in struct {
			Fault
			Delay string `json:"delay"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, `{"error":"body must be a fault object"}`, http.StatusBadRequest)
			return
		}
		f := in.Fault
		if in.Delay != "" {
			d, err := time.ParseDuration(in.Delay)
			if err != nil {
				http.Error(w, `{"error":"delay must be a duration such as 250ms"}`, http.StatusBadRequest)
				return
			}
			f.Delay = d
		}
		if err := f.Valid(); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		s.Inject(f)
		_, _ = w.Write([]byte(`{"ok":true}`))
	case r.Method == http.MethodPost && r.URL.Path == "/__sandbox/faults/clear":
		s.ClearFaults()
		_, _ = w.Write([]byte(`{"ok":true}`))
	case r.Method == http.MethodPost && r.URL.Path == "/__sandbox/clock":
		var in struct {
			Advance string `json:"advance"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, `{"error":"body must be {\"advance\":\"1h\"}"}`, http.StatusBadRequest)
			return
		}
		d, err := time.ParseDuration(in.Advance)
		if err != nil {
			http.Error(w, `{"error":"advance must be a duration such as 1h"}`, http.StatusBadRequest)
			return
		}
		if !s.Clock.advanceWithin(d, MaxClockOffset) {
			http.Error(w, fmt.Sprintf(`{"error":"advance must be positive, and the clock moves at most %s ahead in all"}`, MaxClockOffset), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `{"now":%q}`, s.Clock.Now().UTC().Format(time.RFC3339))
	default:
		http.Error(w, `{"error":"unknown sandbox admin endpoint"}`, http.StatusNotFound)
	}
}
