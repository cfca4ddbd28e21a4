package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

// MaxBodyBytes bounds an HTTP trigger's body: every documented input is a few
// hundred bytes, so 64 KiB leaves room without inviting abuse.
const MaxBodyBytes = 64 << 10

// maxEventBytes bounds an event posted to /invoke (FC's synchronous limit).
const maxEventBytes = 32 << 20

// ServeHTTP serves the handler as an HTTP server until ctx ends:
//   - POST /invoke takes a platform event as the body (FC custom runtime);
//   - POST /initialize answers 200 (FC custom runtime lifecycle);
//   - any other request is an HTTP trigger: its body is the envelope input.
func ServeHTTP(ctx context.Context, addr string, h *Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	h.Deps.Log.Info("listening", "addr", ln.Addr().String(), "api", h.Op.API)
	srv := &http.Server{Handler: h.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// HTTPHandler is the net/http face of the handler.
func (h *Handler) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /initialize", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST /invoke", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxEventBytes+1))
		if err != nil || len(body) > maxEventBytes {
			http.Error(w, "event too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
		ctx, cancel := requestDeadline(r, h.Timeout)
		defer cancel()
		out := h.Invoke(ctx, body, Meta{RequestID: r.Header.Get("x-fc-request-id")})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
		var resp envelope.Response
		in := &envelope.Input{
			Body: body, Trigger: envelope.TriggerHTTP, Header: r.Header, Method: r.Method,
			Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, SourceIP: remoteIP(r),
			RequestID: r.Header.Get("x-fc-request-id"),
		}
		if in.RequestID == "" {
			// A standalone server: no platform named the request, so it gets
			// an id of its own, in its log line and in the answer.
			in.RequestID = newRequestID()
		}
		w.Header().Set("X-Request-Id", in.RequestID)
		ctx, cancel := requestDeadline(r, h.Timeout)
		defer cancel()
		if err != nil {
			resp = envelope.Failure(h.Op.API, &envelope.Error{Code: envelope.CodeInvalidInput, Reason: "invalid input: the request body could not be read", Err: err})
		} else {
			resp = h.serve(ctx, in, Meta{RequestID: in.RequestID})
		}
		h.logInvocation(ctx, in, "http", Meta{RequestID: in.RequestID}, resp, time.Since(start))
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		for k, v := range retryAfterHeader(resp) {
			w.Header().Set(k, v)
		}
		w.WriteHeader(resp.Status)
		_, _ = w.Write(resp.Body)
	})
	return mux
}

// requestDeadline honours the FC headers when a caller (the emulator, FC's
// custom runtime) sends them, and the handler's timeout otherwise.
func requestDeadline(r *http.Request, def time.Duration) (context.Context, context.CancelFunc) {
	if ms, err := strconv.ParseInt(r.Header.Get("x-fc-function-deadline"), 10, 64); err == nil && ms > 0 {
		return context.WithDeadline(r.Context(), time.UnixMilli(ms))
	}
	if s, err := strconv.Atoi(r.Header.Get("x-fc-function-timeout")); err == nil && s > 0 {
		return context.WithTimeout(r.Context(), time.Duration(s)*time.Second)
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
