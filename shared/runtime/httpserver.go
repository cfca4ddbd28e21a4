package runtime

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/netutil"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

// MaxBodyBytes bounds an input's body (an HTTP trigger's, or a direct
// invocation's payload) unless CLOUDCALL_MAX_BODY_BYTES says otherwise: a
// policy, not a vendor rule. A typical input is a few hundred bytes and 64
// KiB holds about 1,000 CK1 boxes, without inviting abuse.
const MaxBodyBytes = 64 << 10

// The range CLOUDCALL_MAX_BODY_BYTES takes: up to Lambda's synchronous
// payload limit (6 MB), the smaller of the two platforms'.
const (
	minBodyLimit = 1 << 10
	maxBodyLimit = 6 << 20
)

// maxEventBytes bounds an event FC posts to /invoke (FC's synchronous limit).
const maxEventBytes = 32 << 20

// The HTTP server's bounds (CLOUDCALL_PORT, FC_CUSTOM_LISTEN_PORT): a
// request's headers and body must arrive within BodyTimeout, as the
// emulator's front door requires; an idle keep-alive connection is closed
// after IdleTimeout; at most MaxConns connections are open at once (FC
// sends an instance at most 200 concurrent requests).
const (
	BodyTimeout = 30 * time.Second
	IdleTimeout = 30 * time.Second
	MaxConns    = 256
)

// ControlPathHeader is how FC's custom-runtime proxy says what a request is
// (/invoke, /http-invoke, /initialize, /pre-stop, /pre-freeze). FC refuses
// caller-supplied x-fc-* headers, so behind FC only FC can set it; without FC
// in front (CLOUDCALL_PORT) anybody can, and it is ignored.
const ControlPathHeader = "x-fc-control-path"

// ServeHTTP serves the handler as an HTTP server until ctx ends. Behind FC
// (PlatformFCCustom) a request is an event only when FC's control path says
// /invoke; every other request, on any path with any method, is an HTTP
// trigger and goes through caller authentication. As a plain server
// (PlatformHTTP) every request is an HTTP trigger.
func ServeHTTP(ctx context.Context, addr string, h *Handler, platform Platform) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	handler := h.HTTPHandler()
	if platform == PlatformFCCustom {
		handler = h.FCCustomRuntimeHandler()
	}
	h.Deps.Log.Info("listening", "addr", ln.Addr().String(), "api", h.Op.API, "platform", string(platform))
	return serveOn(ctx, ln, handler, h.Deps.Log, serverBounds{Body: BodyTimeout, Idle: IdleTimeout, Conns: MaxConns, Grace: h.Timeout + time.Second})
}

type serverBounds struct {
	Body, Idle time.Duration
	Conns      int
	// Grace is how long the calls in flight get when ctx ends: the
	// function's own timeout bounds them, so they finish inside it.
	Grace time.Duration
}

// serveOn serves until ctx ends, bounded like a server on the internet,
// since it may be one: a request must arrive within b.Body and an idle
// keep-alive connection is closed after b.Idle, so unsigned callers trickling
// bytes cannot hold connections for ever (one held 3,000 until the process
// ran out of descriptors and signed calls timed out); past b.Conns, new
// connections wait in the kernel's backlog instead of failing accept.
// net/http's own messages (a failed accept) become JSON lines like every
// other.
func serveOn(ctx context.Context, ln net.Listener, handler http.Handler, log *slog.Logger, b serverBounds) error {
	ln = netutil.LimitListener(ln, b.Conns)
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: min(10*time.Second, b.Body), ReadTimeout: b.Body, IdleTimeout: b.Idle,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		grace := cmp.Or(b.Grace, 5*time.Second)
		log.Info("stopping: no new calls; the calls in flight finish", "grace", grace.String())
		shut, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	// Serve returns as Shutdown begins; the process must outlive the calls
	// still running, or it exits under them.
	<-stopped
	return nil
}

// HTTPHandler is the plain HTTP face of the handler (CLOUDCALL_PORT): every
// request, whatever its path, method or headers, is an HTTP trigger call, and
// no x-fc-* header is believed.
func (h *Handler) HTTPHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.takesMethod(r.Method) {
			// As the deployed trigger and the emulator answer: a PUT ran
			// the function here, a GET read as an empty body (a user).
			h.refuseMethod(w, r, newRequestID())
			return
		}
		h.serveTrigger(w, r, false)
	})
}

// takesMethod says whether the function's HTTP trigger takes the method:
// every HTTP entry (this server, FC's custom runtime, an HTTP event) refuses
// the others alike, before anything runs.
func (h *Handler) takesMethod(method string) bool {
	return len(h.methods) == 0 || slices.Contains(h.methods, method)
}

// methodNotAllowed is the 405 answer's headers and body, the same on every
// entry and the emulator's FC front door: {Code, Message, RequestId}.
// note, when not empty, follows the message (an event that names no method).
func (h *Handler) methodNotAllowed(requestID, note string) (map[string]string, []byte) {
	allow := strings.Join(h.methods, ", ")
	msg := h.Deps.Function + " takes " + allow
	if note != "" {
		msg += ": " + note
	}
	b, _ := json.Marshal(map[string]string{"Code": "MethodNotAllowed", "Message": msg, "RequestId": requestID})
	return map[string]string{"Allow": allow, "X-Request-Id": requestID}, b
}

// refuseMethod writes the 405 to an HTTP caller, its body read and dropped
// (bounded) so the connection can be kept.
func (h *Handler) refuseMethod(w http.ResponseWriter, r *http.Request, requestID string) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, int64(h.maxBody)))
	hdr, body := h.methodNotAllowed(requestID, "")
	for k, v := range hdr {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusMethodNotAllowed)
	_, _ = w.Write(body)
}

// FCCustomRuntimeHandler is the face FC's custom-runtime proxy talks to
// (FC_CUSTOM_LISTEN_PORT). Only FC's control path makes a request anything
// but an HTTP trigger call: a public POST /invoke is a trigger call like any
// other and needs a signature.
func (h *Handler) FCCustomRuntimeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get(ControlPathHeader) {
		case "/invoke":
			h.serveEvent(w, r)
		case "/initialize", "/pre-stop", "/pre-freeze":
			// Lifecycle hooks: the instance is built at start, nothing to do.
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxEventBytes))
			w.WriteHeader(http.StatusOK)
		default: // "/http-invoke", or nothing FC said
			if !h.takesMethod(r.Method) {
				// FC's proxy passes any method on: a PUT ran the function
				// (a black-box tester).
				h.refuseMethod(w, r, cmp.Or(r.Header.Get("x-fc-request-id"), newRequestID()))
				return
			}
			h.serveTrigger(w, r, true)
		}
	})
}

// serveEvent runs a platform event FC posted (FC custom runtime /invoke).
func (h *Handler) serveEvent(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEventBytes+1))
	if err != nil || len(body) > maxEventBytes {
		http.Error(w, "event too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	ctx, cancel := requestDeadline(r, h.Timeout, true)
	defer cancel()
	out := h.Invoke(ctx, body, Meta{RequestID: r.Header.Get("x-fc-request-id")})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// serveTrigger runs one HTTP trigger call; fromFC says FC's proxy stands in
// front, so its x-fc-* headers are FC's own.
func (h *Handler) serveTrigger(w http.ResponseWriter, r *http.Request, fromFC bool) {
	start := time.Now()
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(h.maxBody)+1))
	in := &envelope.Input{
		Body: body, Trigger: envelope.TriggerHTTP, Header: r.Header, Method: r.Method,
		Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, SourceIP: remoteIP(r),
	}
	if fromFC {
		in.RequestID = r.Header.Get("x-fc-request-id")
	}
	if in.RequestID == "" {
		// A standalone server: no platform named the request, so it gets
		// an id of its own, in its log line and in the answer.
		in.RequestID = newRequestID()
	}
	w.Header().Set("X-Request-Id", in.RequestID)
	ctx, cancel := requestDeadline(r, h.Timeout, fromFC)
	defer cancel()
	var resp envelope.Response
	if err != nil {
		resp = envelope.Failure(h.Op.API, &envelope.Error{Code: envelope.CodeInvalidInput, Reason: "invalid input: the request body could not be read", Err: err})
	} else {
		resp = h.serve(ctx, in, Meta{RequestID: in.RequestID})
	}
	h.logInvocation(ctx, in, "http", Meta{RequestID: in.RequestID}, resp, time.Since(start))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	for k, v := range answerHeaders(resp) {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

// requestDeadline honours FC's deadline headers when FC sent them (trusted),
// and the handler's timeout otherwise.
func requestDeadline(r *http.Request, def time.Duration, trusted bool) (context.Context, context.CancelFunc) {
	if trusted {
		if ms, err := strconv.ParseInt(r.Header.Get("x-fc-function-deadline"), 10, 64); err == nil && ms > 0 {
			return context.WithDeadline(r.Context(), time.UnixMilli(ms))
		}
		if s, err := strconv.Atoi(r.Header.Get("x-fc-function-timeout")); err == nil && s > 0 {
			return context.WithTimeout(r.Context(), time.Duration(s)*time.Second)
		}
	}
	return context.WithTimeout(r.Context(), def)
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// newRequestID is a UUID-shaped id for a request no platform named.
func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
