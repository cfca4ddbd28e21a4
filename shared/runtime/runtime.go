// Package runtime runs one cloud-call operation on whichever platform started
// the process: the FC go1 runtime API, the Lambda runtime API, or a plain HTTP
// server (FC custom runtime, local use). It knows nothing about vendors.
package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cloudcall/cloudcall/shared/callerauth"
	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/logging"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/store"
)

// Deps is what an operation is built from, once per instance (cold start).
type Deps struct {
	Env      *config.Env
	Store    store.Store
	Log      *slog.Logger
	HTTP     *http.Client // one pooled client for every upstream call
	Function string       // the platform's function name, when it says
	// Timeout is CLOUDCALL_TIMEOUT, zero when it is not set (or invalid,
	// which every invocation reports): a factory that sizes something by
	// the deadline applies its own default, the one it declares in
	// Op.Timeout, or DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout is the deadline when neither the platform, CLOUDCALL_TIMEOUT
// nor the operation sets one.
const DefaultTimeout = 10 * time.Second

// Factory builds the operation at cold start. When it fails (say a secret is
// missing) the function still starts and every invocation answers with the
// error, so the caller learns what to configure instead of seeing a crash loop.
// The returned Op must carry its API even when err is not nil.
type Factory func(ctx context.Context, d Deps) (envelope.Op, error)

// Platform is where the process runs.
type Platform string

const (
	PlatformFC     Platform = "fc"
	PlatformLambda Platform = "lambda"
	// PlatformFCCustom is an HTTP server behind FC's custom-runtime proxy
	// (FC_CUSTOM_LISTEN_PORT): FC says which requests are events.
	PlatformFCCustom Platform = "fc-custom"
	// PlatformHTTP is a plain HTTP server (CLOUDCALL_PORT, local use): nobody
	// vouches for any request, so every request is an HTTP trigger.
	PlatformHTTP Platform = "http"
)

// Pick chooses the platform from the environment (DESIGN §4).
func Pick(env *config.Env) (Platform, error) {
	switch {
	case env.Get("FC_RUNTIME_API", "") != "":
		return PlatformFC, nil
	case env.Get("AWS_LAMBDA_RUNTIME_API", "") != "":
		return PlatformLambda, nil
	case env.Get("FC_CUSTOM_LISTEN_PORT", "") != "":
		// Only FC's proxy strips a caller's x-fc-* headers, and this mode
		// takes x-fc-control-path: /invoke for an event: run elsewhere, an
		// unsigned POST /invoke charged (an outside tester). FC sets these
		// two with the port.
		if env.Get("FC_FUNCTION_NAME", "") == "" || env.Get("FC_REGION", "") == "" {
			return "", fmt.Errorf("FC_CUSTOM_LISTEN_PORT is set without FC_FUNCTION_NAME and FC_REGION, which Function Compute sets with it: " +
				"outside FC nothing strips a caller's x-fc-control-path header, so an unsigned POST /invoke would run as an event; " +
				"to serve HTTP elsewhere use CLOUDCALL_PORT (and CLOUDCALL_HOST)")
		}
		return PlatformFCCustom, nil
	case env.Get("CLOUDCALL_PORT", "") != "":
		return PlatformHTTP, nil
	}
	return "", fmt.Errorf("no platform: set FC_RUNTIME_API (Function Compute go1), AWS_LAMBDA_RUNTIME_API (Lambda), or FC_CUSTOM_LISTEN_PORT / CLOUDCALL_PORT (HTTP server); or run it under `cloudcall local`")
}

func listenAddr(env *config.Env) string {
	if p := env.Get("FC_CUSTOM_LISTEN_PORT", ""); p != "" {
		// FC custom runtimes must listen on all interfaces; CLOUDCALL_HOST
		// narrows it for tests.
		return net.JoinHostPort(env.Get("CLOUDCALL_HOST", "0.0.0.0"), p)
	}
	if p := env.Get("CLOUDCALL_PORT", ""); p != "" {
		return net.JoinHostPort(env.Get("CLOUDCALL_HOST", "127.0.0.1"), p)
	}
	return ""
}

// Main builds the operation and serves it until the platform stops the
// process. It is all a function's main needs to call.
func Main(f Factory) {
	env := config.FromOS()
	limit, warn := MemoryLimit(env, debug.SetMemoryLimit(-1))
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	log := NewLogger(os.Stderr, env)
	if warn != "" {
		log.Warn(warn)
	}
	platform, err := Pick(env)
	if err != nil {
		log.Error("cannot start", "error", err.Error())
		os.Exit(2)
	}
	ctx := context.Background()
	h, err := New(ctx, env, log, f)
	if err != nil {
		log.Error("cannot start", "error", err.Error())
		os.Exit(2)
	}
	switch platform {
	case PlatformFC:
		startFC(h)
	case PlatformLambda:
		startLambda(h)
	case PlatformFCCustom, PlatformHTTP:
		// SIGTERM (a platform or orchestrator scaling in, a redeploy) ends
		// the serving, not the calls in flight: a charge killed between
		// TOP's answer and its record had to be reconciled by hand.
		sctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
		defer stop()
		if err := ServeHTTP(sctx, listenAddr(env), h, platform); err != nil {
			log.Error("http server stopped", "error", err.Error())
			os.Exit(1)
		}
	}
}

// Handler is a built operation plus everything around it: event detection,
// caller checks, deadlines and logs.
type Handler struct {
	Op      envelope.Op
	Deps    Deps
	Guard   Guard
	Timeout time.Duration      // used when the platform gives no deadline
	maxBody int                // an HTTP trigger's largest body (CLOUDCALL_MAX_BODY_BYTES)
	methods []string           // the HTTP trigger's methods (the registry's); nil: any
	sched   *registry.Schedule // the function's timer (the registry's); nil: none
	unknown string             // the unknown-field policy (CLOUDCALL_UNKNOWN_FIELDS)
	nulls   string             // the null policy (CLOUDCALL_NULL_FIELDS)
	initErr error
	metrics invocationMetrics // cold start, EMF (metrics.go)
}

// New builds the handler: store, HTTP client, the operation, the guard.
// Configuration errors of the runtime itself (CLOUDCALL_STORE,
// CLOUDCALL_CALLER_KEYS, CLOUDCALL_TIMEOUT) are not start-up failures: like
// the operation's own, they are answered by every invocation as -1601 naming
// the variable, so a platform sees a running function that says what to fix
// rather than a crash loop. While any is set, nothing runs: HTTP triggers are
// refused before the operation and events get the -1601. The error result is
// nil today; it stays for failures a running process could not answer.
func New(ctx context.Context, env *config.Env, log *slog.Logger, f Factory) (*Handler, error) {
	var problems []string
	st, err := OpenStore(ctx, env, log)
	if err != nil {
		problems = append(problems, err.Error())
		st = store.NewMemory(store.MemoryOptions{}) // lets the factory build; nothing runs
	}
	deps := Deps{
		Env:      env,
		Store:    st,
		Log:      log,
		HTTP:     NewHTTPClient(),
		Function: env.Get("FC_FUNCTION_NAME", env.Get("AWS_LAMBDA_FUNCTION_NAME", env.Get("CLOUDCALL_FUNCTION", binaryName()))),
	}
	if _, err := logLevel(env); err != nil {
		problems = append(problems, err.Error())
	}
	if log.Enabled(ctx, slog.LevelDebug) {
		deps.HTTP.Transport = debugTransport{next: deps.HTTP.Transport, log: log}
	}
	guard, err := NewGuard(env, st, log)
	if err != nil {
		problems = append(problems, err.Error())
	}
	timeout, err := env.Duration("CLOUDCALL_TIMEOUT", 0)
	switch {
	case err != nil:
		problems = append(problems, err.Error())
		timeout = 0
	case timeout < 0 || timeout == 0 && env.Get("CLOUDCALL_TIMEOUT", "") != "":
		problems = append(problems, fmt.Sprintf("CLOUDCALL_TIMEOUT=%q: expected a positive duration such as 10s", env.Get("CLOUDCALL_TIMEOUT", "")))
		timeout = 0
	}
	deps.Timeout = timeout
	maxBody, err := env.Int("CLOUDCALL_MAX_BODY_BYTES", MaxBodyBytes)
	switch {
	case err != nil:
		problems = append(problems, err.Error())
		maxBody = maxBodyLimit // nothing runs: every call hears the -1601, not a size it did not set
	case maxBody < minBodyLimit || maxBody > maxBodyLimit:
		problems = append(problems, fmt.Sprintf("CLOUDCALL_MAX_BODY_BYTES=%d: expected %d to %d bytes", maxBody, minBodyLimit, maxBodyLimit))
		maxBody = maxBodyLimit
	}
	unknown := env.Get("CLOUDCALL_UNKNOWN_FIELDS", envelope.UnknownRefuse)
	if unknown != envelope.UnknownRefuse && unknown != envelope.UnknownIgnore {
		problems = append(problems, fmt.Sprintf("CLOUDCALL_UNKNOWN_FIELDS=%q: expected %s or %s", unknown, envelope.UnknownRefuse, envelope.UnknownIgnore))
	}
	nulls := env.Get("CLOUDCALL_NULL_FIELDS", envelope.NullRefuse)
	if nulls != envelope.NullRefuse && nulls != envelope.NullAbsent {
		problems = append(problems, fmt.Sprintf("CLOUDCALL_NULL_FIELDS=%q: expected %s or %s", nulls, envelope.NullRefuse, envelope.NullAbsent))
	}
	op, opErr := f(ctx, deps)
	if op.API == "" {
		op.API = deps.Function
	}
	if deps.Function == "" {
		// A binary run by hand as main or bootstrap: its log lines and
		// metrics still name the function, from the registry.
		if fn, ok := registry.ByAPI(op.API); ok {
			deps.Function = fn.Name
		}
	}
	if opErr != nil {
		problems = append(problems, opErr.Error())
	}
	var initErr error
	if len(problems) > 0 {
		initErr = errors.New(strings.Join(problems, "; "))
	}
	fn, known := registry.ByAPI(op.API)
	if op.Handle != nil {
		op.Handle = noteEvent(op.Handle, known, fn.Schedule)
	}
	h := &Handler{Op: op, Deps: deps, Guard: guard, Timeout: cmp.Or(timeout, op.Timeout, DefaultTimeout), maxBody: maxBody, unknown: unknown, nulls: nulls, initErr: initErr}
	if known {
		h.methods, h.sched = fn.HTTPMethods, fn.Schedule
	}
	if _, open := guard.(openGuard); open && (!known || len(fn.HTTPMethods) > 0) {
		// Said at every start, wherever it runs: left over in a deployer's
		// shell, it deployed an open charge that nothing logged (an outside
		// tester). Not by a function with no HTTP trigger (quota-alert),
		// which no unsigned call reaches. cloudcall local sets it, and
		// says so too.
		log.Warn(AnonymousWarning)
	}
	h.setupMetrics(env, os.Stdout)
	if initErr != nil {
		log.Warn("function is not configured; every invocation will say why", "api", op.API, "error", initErr.Error())
	} else if op.Warm != nil {
		// Alongside the platform's first poll, not before it: the first
		// call waits only for what the warm-up has not finished.
		go op.Warm(context.WithoutCancel(ctx))
	}
	return h, nil
}

// NewHTTPClient is the one pooled client per instance. Deadlines come from each
// invocation's context, so the client itself has no timeout.
func NewHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 64
	t.MaxIdleConnsPerHost = 32
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = 0
	return &http.Client{Transport: t}
}

// Invoke handles one platform payload and returns the platform's answer: the
// envelope for events, an HTTP response object for HTTP trigger events. It
// never fails at the platform level: handled errors are data (DESIGN §3).
func (h *Handler) Invoke(ctx context.Context, payload []byte, meta Meta) []byte {
	start := time.Now()
	in, shape, err := detect(payload, h.maxBody)
	httpShape := shape == ShapeFCHTTP || shape == ShapeAPIGatewayV2 || shape == ShapeHTTPOther
	var resp envelope.Response
	switch {
	case err != nil:
		resp = envelope.Failure(h.Op.API, envelope.As(err))
	case httpShape && !h.takesMethod(in.Method):
		// As HTTPHandler and the emulator answer: a PUT through FC's
		// go1 HTTP event ran the function (a black-box tester). Like
		// theirs, the refusal is no invocation of the function: no
		// line, no metrics. An HTTP event that names no method is
		// refused too: no platform sends one, and read on it moved
		// money (a re-tester: requestContext.httpMethod "GET" alone).
		note := ""
		if in.Method == "" {
			note = "the payload was read as " + in.Event + ", and it names no method (or two that differ); to invoke directly, send the input JSON without the event's members"
		}
		hdr, body := h.methodNotAllowed(cmp.Or(in.RequestID, meta.RequestID), note)
		return encodeHTTP(envelope.Response{Status: http.StatusMethodNotAllowed, Body: body}, hdr)
	default:
		resp = h.serve(ctx, in, meta)
	}
	h.logInvocation(ctx, in, shape, meta, resp, time.Since(start))
	if httpShape {
		return encodeHTTP(resp, answerHeaders(resp))
	}
	return resp.Body
}

// serve runs an already-decoded input (the local HTTP server uses it). A
// failure may quote a vendor, and a vendor may echo a credential (a WAF page
// quoting the token request's URL, an error naming the app secret), so a
// failure's answer is redacted as the log lines are. Successes carry the
// vendor's data and are left as they are.
func (h *Handler) serve(ctx context.Context, in *envelope.Input, meta Meta) envelope.Response {
	resp := h.answer(ctx, in, meta)
	if resp.Err != nil {
		resp.Body = logging.Redactor{Secrets: h.Deps.Env.Secrets, Encoded: h.Deps.Env.EncodedSecrets}.Redact(resp.Body)
	}
	return resp
}

func (h *Handler) answer(ctx context.Context, in *envelope.Input, meta Meta) envelope.Response {
	if in.RequestID == "" {
		in.RequestID = meta.RequestID
	}
	in.InvocationID = meta.RequestID
	in.Function = h.Deps.Function
	in.UnknownFields = h.unknown
	in.NullFields = h.nulls
	in.Credentials = meta.Credentials
	// The work ends a little before the deadline (the platform's, else the
	// handler's timeout), so the answer (-1301, -1304, quota-alert's partial
	// run) is written and delivered before the platform gives up on the
	// invocation: Lambda and FC kill it at the deadline, and its caller got
	// the platform's timeout instead. One context either way.
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(h.Timeout)
	}
	if m := AnswerReserve(time.Until(dl)); m > 0 || !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-m))
		defer cancel()
	}
	if in.Trigger != envelope.TriggerHTTP && len(in.Body) > h.maxBody {
		// A direct invocation is bounded by the platform only (FC takes 32
		// MB): decoding 30 MB got a 128 MB instance killed for its memory.
		e := &envelope.Error{Code: envelope.CodePayloadTooLarge,
			Reason: fmt.Sprintf("input is %d bytes; at most %d are accepted (CLOUDCALL_MAX_BODY_BYTES)", len(in.Body), h.maxBody)}
		if h.sched != nil && in.Trigger == envelope.TriggerTimer {
			// A timer's payload is configuration, as for one the function
			// refuses (noteEvent): FC takes 128 KB there, and a -1002 at
			// INFO was an hourly run that never happened, seen by no
			// alarm on faults (a re-tester).
			if source, ok := timerSource(in); ok {
				e = timerConfigError(e, source, in.Body, h.sched)
			}
		}
		return envelope.Failure(h.Op.API, e)
	}
	if in.Trigger == envelope.TriggerHTTP {
		if n := headerBytes(in.Header); n > MaxHeaderBytes {
			return envelope.Failure(h.Op.API, &envelope.Error{Code: envelope.CodePayloadTooLarge,
				Reason: fmt.Sprintf("request headers are %d bytes; at most %d are accepted", n, MaxHeaderBytes)})
		}
		if len(in.Body) > h.maxBody {
			return envelope.Failure(h.Op.API, &envelope.Error{Code: envelope.CodePayloadTooLarge,
				// No size is claimed: an HTTP server reads one byte past
				// the limit and stops there.
				Reason: fmt.Sprintf("request body is over the limit; at most %d bytes are accepted (CLOUDCALL_MAX_BODY_BYTES)", h.maxBody)})
		}
		// A guard that cannot run (malformed caller keys) has refused; the
		// answer below names every configuration problem at once. A caller
		// the platform authenticated (AWS_IAM) needs no signature of ours.
		if in.PlatformCaller == "" {
			if e := h.Guard.Check(ctx, in); e != nil && (e.Code != envelope.CodeConfig || h.initErr == nil) {
				return envelope.Failure(h.Op.API, e)
			}
		}
		if ce := in.HeaderValue("Content-Encoding"); ce != "" && !strings.EqualFold(strings.TrimSpace(ce), "identity") {
			// A gzipped body is refused by its bytes; one that only claimed
			// to be ran as if the header were not there (a user).
			return envelope.Failure(h.Op.API, envelope.Invalid("", "Content-Encoding %s: compressed bodies are not accepted; send the JSON uncompressed, without Content-Encoding", envelope.Quote(ce)))
		}
	}
	if h.initErr != nil {
		return envelope.Failure(h.Op.API, envelope.ConfigError("%v", h.initErr))
	}
	return h.Op.Invoke(ctx, in)
}

// AnswerReserve is the time kept back from an invocation with left to go,
// to write and deliver its answer: a tenth of it, from 100 ms to 1 s, and
// none when less than 200 ms is left (the answer then races the deadline
// whatever is kept).
func AnswerReserve(left time.Duration) time.Duration {
	if left < 200*time.Millisecond {
		return 0
	}
	return min(max(left/10, 100*time.Millisecond), time.Second)
}

// MaxHeaderBytes bounds an HTTP trigger's headers (FC's own limit is 8 KB
// per header block; 16 KiB leaves room for API gateways' additions).
const MaxHeaderBytes = 16 << 10

func headerBytes(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// answerHeaders are an HTTP answer's headers beyond its content type: the
// wait a throttle asks for, and whether the answer was replayed from an
// idempotency record (Stripe's Idempotent-Replayed, which HTTP clients of
// idempotent APIs know).
func answerHeaders(resp envelope.Response) map[string]string {
	var h map[string]string
	if resp.Err != nil && resp.Err.RetryAfter > 0 {
		h = map[string]string{"Retry-After": strconv.Itoa(resp.Err.RetryAfter)}
	}
	if resp.Replayed {
		if h == nil {
			h = map[string]string{}
		}
		h[ReplayedHeader] = "true"
	}
	return h
}

// ReplayedHeader marks an HTTP answer read from an idempotency record.
const ReplayedHeader = "Idempotent-Replayed"

// Meta is what the platform says about an invocation besides its payload.
type Meta struct {
	RequestID   string
	Credentials *envelope.Credentials
}

func (h *Handler) logInvocation(ctx context.Context, in *envelope.Input, shape Shape, meta Meta, resp envelope.Response, d time.Duration) {
	extra := h.observe(meta, resp, d) // first: metrics are written whatever the log level
	log := h.Deps.Log
	level := invocationLevel(resp)
	if !log.Enabled(ctx, level) {
		return
	}
	// A fixed-size array keeps the attributes off the heap on the common
	// path; typed attributes skip the boxing of key-value pairs. The field
	// order (requestId first) is what readers of the line rely on.
	var buf [20]slog.Attr
	attrs := append(buf[:0],
		slog.String("requestId", meta.RequestID),
		slog.String("function", h.Deps.Function),
		slog.String("api", h.Op.API),
		slog.String("event", string(shape)),
		slog.Int("status", resp.Status),
		slog.Float64("latencyMs", float64(d.Microseconds())/1000),
	)
	if in != nil && in.RequestID != "" && in.RequestID != meta.RequestID {
		// API Gateway names the call with its own id (apigw-requestid, the
		// answer's requestId), never the Lambda one: the id a caller
		// reports must be in the line too.
		attrs = append(attrs, slog.String("gatewayRequestId", in.RequestID))
	}
	if resp.Err != nil {
		attrs = append(attrs, slog.Int("errCode", resp.Err.Code), slog.String("reason", resp.Err.Reason))
		if u := resp.Err.Upstream; u != nil && (u.HTTPStatus != 0 || u.Code != "") { // the vendor answered
			attrs = append(attrs, slog.Int("upstreamStatus", u.HTTPStatus), slog.String("upstreamCode", u.Code))
			if u.RequestID != "" {
				attrs = append(attrs, slog.String("upstreamRequestId", u.RequestID))
			}
		}
		if resp.Err.Err != nil {
			attrs = append(attrs, slog.String("cause", resp.Err.Err.Error()))
		}
	} else {
		attrs = append(attrs, slog.Int("errCode", 0))
		if resp.PartialReason != "" {
			attrs = append(attrs, slog.String("reason", resp.PartialReason))
		}
	}
	if resp.Replayed {
		attrs = append(attrs, slog.Bool("replayed", true))
	}
	if resp.Unrecorded {
		attrs = append(attrs, slog.Bool("unrecorded", true))
	}
	if resp.Err != nil && resp.Err.Code == envelope.CodeUnauthenticated && resp.Trace.CallerKeyID == "" && in != nil {
		// Which caller's key was refused (by the guard, or by the charge
		// for a nonce spent with a key header): a key id that parses is a
		// name, never the secret.
		if a, err := callerauth.Parse(in.HeaderValue("Authorization")); err == nil {
			resp.Trace.CallerKeyID = a.KeyID
		}
	}
	if t := resp.Trace; t != (envelope.Trace{}) {
		attrs = traceAttrs(attrs, t)
	}
	attrs = append(attrs, extra[:]...) // errClass, coldStart (metrics.go)
	if fh, ok := log.Handler().(*logging.Handler); ok {
		_ = fh.HandleFlat(ctx, time.Now(), level, "invocation", attrs)
		return
	}
	// The record is built here rather than by Logger.LogAttrs, which looks
	// up its caller's program counter on every call for a source attribute
	// this handler never writes.
	r := slog.NewRecord(time.Now(), level, "invocation", 0)
	r.AddAttrs(attrs...)
	_ = log.Handler().Handle(ctx, r)
}

// invocationLevel is the invocation line's level: ERROR where a person must
// act (an outcome unknown to reconcile, a bug), WARN where the deployment
// is unwell (its store down, its configuration missing, a signed request
// delivered twice, a run that failed in part), INFO for the rest, a
// caller's mistake included. A deployment logging at WARN keeps what needs
// a person (docs/operate.md says what its rate queries lose).
func invocationLevel(resp envelope.Response) slog.Level {
	e := resp.Err
	switch {
	case resp.Unrecorded:
		return slog.LevelError // repeats hear -1304 until a person settles it
	case e == nil && resp.Partial:
		return slog.LevelWarn
	case e == nil:
		return slog.LevelInfo
	case e.Code == envelope.CodeOutcomeUnknown && resp.Replayed:
		// A recorded -1304 answered again: its first answer was the ERROR.
		return slog.LevelWarn
	case e.Code == envelope.CodeInternal, e.Code == envelope.CodeOutcomeUnknown:
		return slog.LevelError
	case e.Code == envelope.CodeStoreUnavailable, e.Code == envelope.CodeConfig,
		e.Code == envelope.CodeUnauthenticated && errors.Is(e.Err, callerauth.ErrReplayed):
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// traceAttrs appends the call's identifiers that are set.
func traceAttrs(attrs []slog.Attr, t envelope.Trace) []slog.Attr {
	for _, f := range [...]struct{ k, v string }{
		{"idempotencyKey", t.IdempotencyKey}, {"keylessKey", t.KeylessKey}, {"vendorId", t.VendorID}, {"upstreamRequestId", t.UpstreamRequestID}, {"orderId", t.OrderID}, {"callerKeyId", t.CallerKeyID},
	} {
		if f.v != "" {
			attrs = append(attrs, slog.String(f.k, f.v))
		}
	}
	return attrs
}

// binaryName names the function when no platform variable does (HTTP-server
// mode started by hand): the binary is built as bin/<function>. A packaged
// binary is "main" (FC) or "bootstrap" (Lambda), whose platforms name it.
func binaryName() string {
	n := filepath.Base(os.Args[0])
	if n == "main" || n == "bootstrap" || strings.HasSuffix(n, ".test") {
		return ""
	}
	return n
}
