// Package runtimeapi serves the two runtime APIs a function binary polls, so
// the very binary that gets deployed runs locally:
//
//   - Function Compute go1, /2020-11-11/runtime/invocation/...: replies 200,
//     always sends x-fc-function-deadline and x-fc-function-timeout (the SDK
//     hangs without them), lets several next polls wait at once and matches
//     completions by request id;
//   - AWS Lambda, /2018-06-01/runtime/invocation/...: replies 202 (anything
//     else makes aws-lambda-go exit), accepts chunked bodies with trailers,
//     /runtime/init/error, and stubs the extensions API.
//
// One Server backs one instance (one process). Invoke queues a payload and
// waits for the binary to post its response or error.
package runtimeapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudcall/cloudcall/shared/browserguard"
)

// Platform names a runtime API.
type Platform string

const (
	FC     Platform = "fc"
	Lambda Platform = "aws"
)

// Credentials are passed to FC functions with each invocation.
type Credentials struct {
	AccessKeyID, AccessKeySecret, SecurityToken string
}

// Invocation is one call to deliver.
type Invocation struct {
	RequestID   string // generated when empty
	Payload     []byte // "{}" when empty: both SDKs fail on an empty payload
	Timeout     time.Duration
	Function    string
	Handler     string
	MemoryMB    int
	Region      string
	AccountID   string
	Credentials *Credentials
}

// FunctionError is what a binary posts to /error.
type FunctionError struct {
	Message    string          `json:"errorMessage"`
	Type       string          `json:"errorType"`
	StackTrace json.RawMessage `json:"stackTrace,omitempty"`
}

// Result is the outcome of one invocation.
type Result struct {
	RequestID string
	Body      []byte         // the response body, or the raw error body
	Error     *FunctionError // set when the binary posted to /error
	TimedOut  bool           // the deadline passed with no answer
}

// ErrNotDelivered says no poll took the invocation before ctx ended: the
// binary never saw it, so it is safe to run elsewhere.
var ErrNotDelivered = errors.New("runtimeapi: invocation not delivered")

// ErrClosed is returned for invocations pending when the server closes.
var ErrClosed = errors.New("runtimeapi: server closed")

// InitError is a binary's report through /runtime/init/error.
type InitError struct{ Type, Body string }

func (e *InitError) Error() string { return fmt.Sprintf("init error %s: %s", e.Type, e.Body) }

type pending struct {
	inv  Invocation
	done chan Result
	// deadline carries the deadline the poll wrote into the invocation's
	// headers, the instant the function's time starts.
	deadline chan time.Time
}

// Server is a runtime API for one instance.
type Server struct {
	platform Platform
	ln       net.Listener
	srv      *http.Server
	queue    chan *pending
	closed   chan struct{}
	once     sync.Once

	mu        sync.Mutex
	inflight  map[string]*pending
	initErr   *InitError
	polls     int
	firstPoll time.Time
}

// New listens on a loopback port and serves the platform's runtime API.
func New(p Platform) (*Server, error) {
	if p != FC && p != Lambda {
		return nil, fmt.Errorf("runtimeapi: platform %q: expected fc or aws", p)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("runtimeapi: listen: %w", err)
	}
	s := &Server{platform: p, ln: ln, queue: make(chan *pending), closed: make(chan struct{}), inflight: map[string]*pending{}}
	s.srv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the value for FC_RUNTIME_API or AWS_LAMBDA_RUNTIME_API.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Platform returns the API this server speaks.
func (s *Server) Platform() Platform { return s.platform }

// Polls counts next requests received so far (how many the SDK keeps open).
func (s *Server) Polls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polls
}

// InFlight counts invocations the binary has taken and not yet answered.
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inflight)
}

// FirstPoll is when the binary first asked for work: the end of its init.
func (s *Server) FirstPoll() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstPoll
}

// InitErr returns what the binary reported through init/error, if anything.
func (s *Server) InitErr() *InitError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.initErr
}

// Close stops serving and fails pending invocations.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closed)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.srv.Shutdown(ctx)
		_ = s.srv.Close()
	})
}

// NewRequestID makes an id shaped like the platforms' (a random UUID,
// version 4, as Lambda's are: a caller that checks the form accepts it).
func NewRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Invoke delivers inv to the next poll and waits for the answer, the
// invocation's deadline (TimedOut), or ctx.
func (s *Server) Invoke(ctx context.Context, inv Invocation) (Result, error) {
	if inv.RequestID == "" {
		inv.RequestID = NewRequestID()
	}
	if len(bytes.TrimSpace(inv.Payload)) == 0 { // no string(): a 32 MB payload was copied to be trimmed
		inv.Payload = []byte("{}")
	}
	if inv.Timeout <= 0 {
		inv.Timeout = 3 * time.Second
	}
	p := &pending{inv: inv, done: make(chan Result, 1), deadline: make(chan time.Time, 1)}
	// Waiting to be taken (a cold start's init included) is bounded apart,
	// as the platforms bound init apart from the invocation.
	timer := time.NewTimer(inv.Timeout + 250*time.Millisecond)
	defer timer.Stop()
	select {
	case s.queue <- p:
		// Taken: an answer after the deadline the function was given is no
		// answer, as on Lambda and FC (an answer 10 ms late was accepted,
		// hiding a function that answered past its deadline).
		select {
		case dl := <-p.deadline:
			timer.Reset(time.Until(dl))
		case <-s.closed:
			return Result{}, fmt.Errorf("%w: %w", ErrNotDelivered, ErrClosed)
		}
	case <-timer.C:
		return Result{RequestID: inv.RequestID, TimedOut: true}, nil
	case <-ctx.Done():
		return Result{}, fmt.Errorf("%w: %w", ErrNotDelivered, ctx.Err())
	case <-s.closed:
		return Result{}, fmt.Errorf("%w: %w", ErrNotDelivered, ErrClosed)
	}
	select {
	case r := <-p.done:
		return r, nil
	case <-timer.C:
		s.mu.Lock()
		delete(s.inflight, inv.RequestID)
		s.mu.Unlock()
		return Result{RequestID: inv.RequestID, TimedOut: true}, nil
	case <-ctx.Done():
		return s.posted(p, ctx.Err())
	case <-s.closed:
		return s.posted(p, ErrClosed)
	}
}

// posted is the answer the function posted before the end came, else err: a
// Lambda binary posts its panic and exits at once, and when both were ready
// the select took the exit about half the time (a test saw
// Runtime.ExitError instead of the panic it posted).
func (s *Server) posted(p *pending, err error) (Result, error) {
	select {
	case r := <-p.done:
		return r, nil
	default:
		return Result{}, err
	}
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	switch s.platform {
	case FC:
		base := "/2020-11-11/runtime/invocation/"
		mux.HandleFunc("GET "+base+"next", s.next)
		mux.HandleFunc("POST "+base+"{id}/response", s.complete(false))
		mux.HandleFunc("POST "+base+"{id}/error", s.complete(true))
	case Lambda:
		base := "/2018-06-01/runtime/invocation/"
		mux.HandleFunc("GET "+base+"next", s.next)
		mux.HandleFunc("POST "+base+"{id}/response", s.complete(false))
		mux.HandleFunc("POST "+base+"{id}/error", s.complete(true))
		mux.HandleFunc("POST /2018-06-01/runtime/init/error", s.initError)
		mux.HandleFunc("POST /2020-01-01/extension/register", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Lambda-Extension-Identifier", NewRequestID())
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"functionName":"","functionVersion":"$LATEST","handler":"bootstrap"}`))
		})
		mux.HandleFunc("GET /2020-01-01/extension/event/next", func(w http.ResponseWriter, r *http.Request) {
			select { // no lifecycle events locally; hold the poll until shutdown
			case <-r.Context().Done():
			case <-s.closed:
			}
		})
	}
	// Only the function's process calls its runtime API. A web page could
	// otherwise take an invocation, read its event (a caller's fresh
	// signature included) and answer it with a forged success, as the front
	// doors' own guard keeps pages from calling them.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if why := browserguard.Refusal(r, "the runtime API"); why != "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			b, _ := json.Marshal(map[string]string{"errorType": "AccessDenied", "errorMessage": why})
			_, _ = w.Write(b)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) next(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.polls++
	if s.firstPoll.IsZero() {
		s.firstPoll = time.Now()
	}
	s.mu.Unlock()
	var p *pending
	select {
	case p = <-s.queue:
	case <-r.Context().Done():
		return
	case <-s.closed:
		return
	}
	inv := p.inv
	s.mu.Lock()
	s.inflight[inv.RequestID] = p
	s.mu.Unlock()
	dl := time.Now().Add(inv.Timeout)
	p.deadline <- dl
	deadline := dl.UnixMilli()
	h := w.Header()
	switch s.platform {
	case FC:
		h.Set("x-fc-request-id", inv.RequestID)
		h.Set("x-fc-function-deadline", strconv.FormatInt(deadline, 10))
		h.Set("x-fc-function-timeout", strconv.Itoa(int((inv.Timeout+time.Second-1)/time.Second)))
		h.Set("x-fc-function-name", inv.Function)
		h.Set("x-fc-function-handler", inv.Handler)
		h.Set("x-fc-function-memory", strconv.Itoa(inv.MemoryMB))
		h.Set("x-fc-region", inv.Region)
		h.Set("x-fc-account-id", inv.AccountID)
		if c := inv.Credentials; c != nil {
			h.Set("x-fc-access-key-id", c.AccessKeyID)
			h.Set("x-fc-access-key-secret", c.AccessKeySecret)
			h.Set("x-fc-security-token", c.SecurityToken)
		}
	case Lambda:
		h.Set("Lambda-Runtime-Aws-Request-Id", inv.RequestID)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(deadline, 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", inv.Region, inv.AccountID, inv.Function))
		h.Set("Lambda-Runtime-Trace-Id", "Root=1-"+strconv.FormatInt(time.Now().Unix(), 16)+"-"+strings.ReplaceAll(inv.RequestID, "-", "")[:24])
	}
	h.Set("Content-Type", "application/json")
	_, _ = w.Write(inv.Payload)
}

func (s *Server) ok(w http.ResponseWriter) {
	if s.platform == Lambda {
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"status":"OK"}`))
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) complete(isErr bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		body, err := io.ReadAll(r.Body) // chunked bodies and trailers are read by net/http
		if err != nil {
			http.Error(w, `{"errorType":"InvalidRequest","errorMessage":"body unreadable"}`, http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		p, ok := s.inflight[id]
		delete(s.inflight, id)
		s.mu.Unlock()
		if !ok {
			http.Error(w, `{"errorType":"InvalidRequestID","errorMessage":"unknown or finished request id"}`, http.StatusBadRequest)
			return
		}
		res := Result{RequestID: id, Body: body}
		if isErr {
			var fe FunctionError
			if json.Unmarshal(body, &fe) != nil || fe.Type == "" && fe.Message == "" {
				fe = FunctionError{Type: r.Trailer.Get("Lambda-Runtime-Function-Error-Type"), Message: string(body)}
			}
			res.Error = &fe
		}
		p.done <- res
		s.ok(w)
	}
}

func (s *Server) initError(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	s.initErr = &InitError{Type: r.Header.Get("Lambda-Runtime-Function-Error-Type"), Body: string(body)}
	s.mu.Unlock()
	s.ok(w)
}
