package emulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cloudcall/cloudcall/shared/browserguard"
	"github.com/cloudcall/cloudcall/shared/emulator/linewriter"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/openapi"
	"github.com/cloudcall/cloudcall/shared/suggest"
)

// Payload limits of the platforms, per front door.
const (
	LambdaMaxPayload      = 6 << 20   // Invoke, RequestResponse: 6 MB
	LambdaMaxEventPayload = 1 << 20   // Invoke, Event (asynchronous): 1 MB
	FCMaxPayload          = 32 << 20  // InvokeFunction, Sync: 32 MB
	FCMaxAsyncPayload     = 128 << 10 // InvokeFunction, Async: 128 KB
)

// DefaultBodyTimeout bounds how long a front door waits for a request body
// that stops arriving.
const DefaultBodyTimeout = 30 * time.Second

// DefaultBodyBudget bounds the bytes of request bodies the doors hold at
// once, across the emulator: 48 concurrent 32 MB calls took it from 166 MB
// to 2.9 GB. Eight of the largest FC payloads fit.
const DefaultBodyBudget = 256 << 20

// DefaultBodyWait is how long a call waits for room in the body budget
// before its door answers 429.
const DefaultBodyWait = 10 * time.Second

// Timer fires a function on a schedule.
type Timer struct {
	Function string
	Name     string
	Cron     *Cron
	Payload  string
}

// Options configures the emulator.
type Options struct {
	Platform  runtimeapi.Platform
	Functions []FunctionConfig
	Timers    []Timer
	Log       io.Writer // START / END / REPORT lines (pass the functions' *linewriter.Sink)
	Region    string
	AccountID string
	// BodyTimeout bounds reading a request body (default DefaultBodyTimeout).
	BodyTimeout time.Duration
	// BodyBudget bounds the bytes of request bodies held at once by every
	// door together (default DefaultBodyBudget; raised to the largest
	// payload a door takes, so every call that fits a door can be read).
	// A body is counted from before it is read until its call's payload is
	// no longer needed.
	BodyBudget int64
	// BodyWait is how long a call waits for room in BodyBudget (default
	// DefaultBodyWait); then its door answers 429, its body unread.
	BodyWait time.Duration
	// AsyncQueue is how many accepted asynchronous invocations (Event,
	// Async) may wait per function (default DefaultAsyncQueue); past it the
	// front door answers 429.
	AsyncQueue int
	// AsyncRetries is how many times a failed asynchronous invocation (a
	// function error, a crash, a timeout; not an error envelope, which is a
	// successful invocation) runs again: nil is each platform's default,
	// LambdaAsyncRetries through the Lambda door and FCAsyncRetries through
	// FC's; a pointer to 0 turns retries off.
	AsyncRetries *int
	// AsyncRetryDelay is the wait before the first retry (default
	// DefaultAsyncRetryDelay); it doubles for each retry after it.
	AsyncRetryDelay time.Duration
}

// The platforms' default retries of a failed asynchronous invocation:
// Lambda's MaximumRetryAttempts (2, about a minute and then two minutes
// apart) and FC's maxAsyncRetryAttempts (3).
const (
	LambdaAsyncRetries     = 2
	FCAsyncRetries         = 3
	DefaultAsyncRetryDelay = time.Minute
)

// DefaultAsyncQueue bounds each function's waiting asynchronous
// invocations: at the largest payloads, 100 MB per function.
const DefaultAsyncQueue = 100

// asyncJob is one accepted asynchronous invocation.
type asyncJob struct {
	requestID string
	body      []byte
	// attempt counts the runs so far; retries is how many more a failure
	// earns in all (the door's platform default or Options.AsyncRetries).
	attempt, retries int
}

// Emulator serves the front doors and owns the pools.
type Emulator struct {
	opts  Options
	log   *linewriter.Sink
	bus   *Bus
	pools map[string]*Pool
	names []string
	wg    sync.WaitGroup
	// Asynchronous invocations wait in a bounded queue per function, run
	// by half the function's instance limit of workers (at least one), so
	// a flood of Event calls neither grows without bound nor takes every
	// instance from synchronous callers.
	queues   map[string]chan asyncJob
	dropped  map[string]*atomic.Int64 // taken from a queue as the workers stopped, or waiting to retry
	retryWG  sync.WaitGroup           // retries waiting for their delay
	stop     chan struct{}
	stopping sync.Once
	closing  sync.Once
	// reading holds the requests whose body is still arriving: a shutdown
	// cuts them, or one stalled body held Ctrl-C for its whole timeout.
	readMu  sync.Mutex
	reading map[*http.ResponseController]struct{}
	bodies  *bodyBudget
}

// New builds the emulator; instances start on first use.
func New(opts Options) *Emulator {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Region == "" {
		opts.Region = "cn-hangzhou"
	}
	if opts.AccountID == "" {
		opts.AccountID = "123456789012"
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = DefaultBodyTimeout
	}
	if opts.AsyncQueue <= 0 {
		opts.AsyncQueue = DefaultAsyncQueue
	}
	if opts.AsyncRetryDelay <= 0 {
		opts.AsyncRetryDelay = DefaultAsyncRetryDelay
	}
	if opts.BodyBudget <= 0 {
		opts.BodyBudget = DefaultBodyBudget
	}
	if opts.BodyWait <= 0 {
		opts.BodyWait = DefaultBodyWait
	}
	sink, ok := opts.Log.(*linewriter.Sink)
	if !ok {
		sink = linewriter.New(opts.Log, 0)
	}
	e := &Emulator{opts: opts, log: sink, pools: map[string]*Pool{}, bus: NewBus(500), queues: map[string]chan asyncJob{},
		dropped: map[string]*atomic.Int64{}, stop: make(chan struct{}), reading: map[*http.ResponseController]struct{}{}}
	largest := int64(LambdaMaxPayload)
	for _, f := range opts.Functions {
		if f.Platform == "" {
			f.Platform = opts.Platform
		}
		largest = max(largest, int64(instanceMaxPayload(f.Platform)))
		if f.Stdout != nil && f.Stdout == opts.Log {
			f.Stdout = sink // one writer, one lock: its lines and ours never race
		}
		f.OnLine = e.tapLines(f.OnLine)
		p := NewPool(f)
		e.pools[f.Name] = p
		e.names = append(e.names, f.Name)
		q := make(chan asyncJob, opts.AsyncQueue)
		e.queues[f.Name] = q
		e.dropped[f.Name] = &atomic.Int64{}
		for range max(1, p.cfg.MaxInstances/2) {
			e.wg.Add(1)
			go e.asyncWorker(f.Name, q)
		}
	}
	sort.Strings(e.names)
	e.bodies = newBodyBudget(max(opts.BodyBudget, largest+1)) // +1: a chunked body reads one byte past its limit
	return e
}

// Pool returns a function's pool.
func (e *Emulator) Pool(name string) (*Pool, bool) {
	p, ok := e.pools[name]
	return p, ok
}

// Close stops every instance and the asynchronous workers, and says how
// many queued asynchronous invocations it dropped. A second Close (a test
// and its cleanup) waits for the first.
func (e *Emulator) Close() {
	e.closing.Do(func() {
		e.stopping.Do(func() { close(e.stop) })
		for _, p := range e.pools {
			p.Close()
		}
		e.wg.Wait()
		e.retryWG.Wait()
		for _, fn := range e.names {
			if n := int64(len(e.queues[fn])) + e.dropped[fn].Load(); n > 0 {
				e.logf("%s: %d queued asynchronous invocation(s) dropped at shutdown", fn, n)
			}
		}
	})
}

// StopStarting is the first step of a shutdown: from now on no invocation
// starts (each is answered "shutting down"), and request bodies still
// arriving are cut, since they would hold the shutdown for their timeout
// and nothing starts from them anyway.
func (e *Emulator) StopStarting() {
	e.stopping.Do(func() { close(e.stop) })
	e.readMu.Lock()
	for rc := range e.reading {
		_ = rc.SetReadDeadline(time.Now())
	}
	e.readMu.Unlock()
}

// StopAsync is the start of a shutdown: no invocation starts any more, the
// queued synchronous ones are answered "shutting down", the asynchronous
// workers take no more, and those running get until ctx ends to finish
// before Close stops their instances (a charge cut off mid-call is an
// unknown outcome).
func (e *Emulator) StopAsync(ctx context.Context) {
	e.StopStarting()
	for _, p := range e.pools {
		p.Drain()
	}
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// instanceMaxPayload is the largest event the instance's runtime API takes:
// Lambda's never hands a function more than 6 MB, whatever door the call
// came through, and an aws-lambda-go function of 128 MB given 32 MB was
// killed for memory where Lambda would have refused the call.
func instanceMaxPayload(p runtimeapi.Platform) int {
	if p == runtimeapi.Lambda {
		return LambdaMaxPayload
	}
	return FCMaxPayload
}

// logf writes one whole line to the shared sink (atomic with the
// functions' own lines).
func (e *Emulator) logf(format string, args ...any) {
	_, _ = e.log.Write([]byte(fmt.Sprintf(format+"\n", args...)))
}

// Invoke runs one invocation and prints START / END / REPORT.
func (e *Emulator) Invoke(ctx context.Context, fn string, payload []byte) (runtimeapi.Result, Report, error) {
	return e.invoke(ctx, fn, runtimeapi.NewRequestID(), payload)
}

// invoke runs one invocation under a given request id; the Report's Log is
// the invocation's log as Lambda tails it: START, the function's lines, END,
// REPORT (the last 4 KiB).
func (e *Emulator) invoke(ctx context.Context, fn, requestID string, payload []byte) (runtimeapi.Result, Report, error) {
	p, ok := e.pools[fn]
	if !ok {
		return runtimeapi.Result{}, Report{RequestID: requestID}, e.unknown(fn)
	}
	inv := runtimeapi.Invocation{RequestID: requestID, Payload: payload, Region: e.opts.Region, AccountID: e.opts.AccountID, Handler: handlerName(p.cfg.Platform)}
	start := fmt.Sprintf("START RequestId: %s Version: $LATEST", inv.RequestID)
	e.logf("%s %s", fn, start)
	e.bus.begin(fn, inv.RequestID, payload)
	res, rep, err := p.Invoke(ctx, inv)
	e.bus.finish(inv.RequestID, res, rep, err)
	end := "END RequestId: " + inv.RequestID
	e.logf("%s %s", fn, end)
	line := fmt.Sprintf("REPORT RequestId: %s\tDuration: %.2f ms\tMemory Size: %d MB\tMax Memory Used: %d MB", inv.RequestID,
		float64(rep.Duration.Microseconds())/1000, p.cfg.MemoryMB, (rep.MaxRSSKiB+1023)/1024)
	if rep.Cold {
		line += fmt.Sprintf("\tInit Duration: %.2f ms", float64(rep.InitDuration.Microseconds())/1000)
	}
	switch {
	case err != nil:
		// One line per record: a start failure's output tail stays out.
		first, _, _ := strings.Cut(err.Error(), "\n")
		line += "\tStatus: " + first
	case res.Error != nil:
		line += "\tStatus: error " + res.Error.Type
	}
	e.logf("%s %s", fn, line)
	tail := make([]byte, 0, len(start)+len(rep.Log)+len(end)+len(line)+3)
	tail = append(append(tail, start...), '\n')
	tail = append(tail, rep.Log...)
	tail = append(append(tail, end...), '\n')
	tail = append(append(tail, line...), '\n')
	if len(tail) > 4096 {
		tail = tail[len(tail)-4096:]
	}
	rep.Log = tail
	rep.RequestID = inv.RequestID
	return res, rep, err
}

// detached is the context a door runs a call under. As on FC and Lambda,
// a caller that leaves (or half-closes its side, as nc -N and some proxies
// do, which net/http cannot tell from leaving) does not cancel the call: it
// runs to its answer, which the door then writes if it can.
func detached(r *http.Request) context.Context { return context.WithoutCancel(r.Context()) }

func handlerName(p runtimeapi.Platform) string {
	if p == runtimeapi.Lambda {
		return "bootstrap"
	}
	return "main"
}

// UnknownFunctionError lists what exists.
type UnknownFunctionError struct {
	Name  string
	Known []string
}

func (e *UnknownFunctionError) Error() string {
	return fmt.Sprintf("function %q not found%s; known functions: %s", e.Name, suggest.Hint(e.Name, e.Known), strings.Join(e.Known, ", "))
}

func (e *Emulator) unknown(fn string) error { return &UnknownFunctionError{Name: fn, Known: e.names} }

// hint is "did you mean" for a function name that is none of them.
func (e *Emulator) hint(fn string) string {
	if _, ok := e.pools[fn]; ok {
		return "" // known: the qualifier was what did not match
	}
	return suggest.Hint(fn, e.names)
}

// Names lists the functions.
func (e *Emulator) Names() []string { return append([]string(nil), e.names...) }

// Handler is the front doors:
//
//	POST /2015-03-31/functions/<fn>/invocations   Lambda Invoke (aws lambda invoke --endpoint-url); <fn> may be an ARN
//	POST /2023-03-30/functions/<fn>/invocations   FC InvokeFunction
//	POST /__timers/<fn>                           fire the function's timer now
//	ANY  /<fn>[/...]                              the function's HTTP trigger (the registry's methods only; sub-paths under fc only)
//	GET  /openapi.json                            the OpenAPI 3.1 document (shared/openapi)
func (e *Emulator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/2015-03-31/functions/{fn}/invocations", e.lambdaInvoke)
	mux.HandleFunc("/2023-03-30/functions/{fn}/invocations", e.fcInvoke)
	mux.HandleFunc("/__timers/{fn}", e.fireTimer)
	mux.Handle("GET /openapi.json", openapi.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"functions": e.names, "platform": e.opts.Platform})
	})
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		// A call to the root was a bare "Method Not Allowed" in text.
		requestID := runtimeapi.NewRequestID()
		e.setRequestID(w, requestID)
		w.Header().Set("Allow", http.MethodGet)
		var triggered []string
		for _, n := range e.names {
			if !e.pools[n].cfg.NoHTTPTrigger {
				triggered = append(triggered, n)
			}
		}
		e.platformError(w, http.StatusMethodNotAllowed, "MethodNotAllowed",
			fmt.Sprintf("%s / calls no function: call POST /NAME, where NAME is one of %s (GET / lists every function)", r.Method, strings.Join(triggered, ", ")), requestID)
	})
	mux.HandleFunc("/{fn}/", e.httpTrigger)
	mux.HandleFunc("/{fn}", e.httpTrigger)
	return browserGuard(mux)
}

// browserGuard keeps web pages away from the doors: on a developer's
// machine they run functions with no credentials (the invoke APIs, the
// timers, an anonymous trigger), and with --upstream real a charge is real
// money.
func browserGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse := browserguard.Refusal(r, "the emulator's doors"); refuse != "" {
			w.Header().Set("Connection", "close") // its body is not worth reading
			// In the door's own error shape, so the SDKs read it.
			switch {
			case strings.HasPrefix(r.URL.Path, "/2015-03-31/"):
				lambdaError(w, http.StatusForbidden, "AccessDeniedException", refuse)
			case strings.HasPrefix(r.URL.Path, "/2023-03-30/"):
				fcError(w, http.StatusForbidden, "AccessDenied", refuse, runtimeapi.NewRequestID())
			default:
				writeJSON(w, http.StatusForbidden, map[string]string{"error": refuse})
			}
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// lambdaError answers as Lambda's REST API does: x-amzn-ErrorType and a
// JSON body with Type and message (what the AWS SDKs and CLI decode).
func lambdaError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("x-amzn-ErrorType", typ)
	kind := "User"
	if status >= 500 {
		kind = "Service"
	}
	writeJSON(w, status, map[string]string{"Type": kind, "message": msg})
}

// fcError answers as FC's OpenAPI does: Code, Message, RequestId.
func fcError(w http.ResponseWriter, status int, code, msg, requestID string) {
	writeJSON(w, status, map[string]string{"Code": code, "Message": msg, "RequestId": requestID})
}

// stopped says whether the shutdown has begun.
func (e *Emulator) stopped() bool {
	select {
	case <-e.stop:
		return true
	default:
		return false
	}
}

// errBodyTimeout is a body that stopped arriving.
var errBodyTimeout = errors.New("request body timed out")

// lambdaFunction resolves what the Lambda API accepts as FunctionName: a
// name, a partial ARN (account:function:name) or a full ARN, each with an
// optional qualifier; only $LATEST exists locally.
func (e *Emulator) lambdaFunction(raw, qualifier string) (string, string, bool) {
	name := raw
	parts := strings.Split(raw, ":")
	switch {
	case len(parts) >= 7 && parts[0] == "arn" && parts[5] == "function":
		name = parts[6]
		if len(parts) == 8 {
			qualifier = parts[7]
		}
	case len(parts) >= 3 && parts[1] == "function":
		name = parts[2]
		if len(parts) == 4 {
			qualifier = parts[3]
		}
	case len(parts) == 2:
		name, qualifier = parts[0], parts[1]
	}
	arn := fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", e.lambdaRegion(), e.opts.AccountID, name)
	if qualifier != "" {
		arn += ":" + qualifier
	}
	_, ok := e.pools[name]
	return name, arn, ok && (qualifier == "" || qualifier == "$LATEST")
}

// lambdaRegion is the region of the local Lambda front door (the one the
// functions' AWS_REGION names under --platform aws).
func (e *Emulator) lambdaRegion() string { return "us-east-1" }

func (e *Emulator) lambdaInvoke(w http.ResponseWriter, r *http.Request) {
	requestID := runtimeapi.NewRequestID()
	w.Header().Set("x-amzn-RequestId", requestID)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		lambdaError(w, http.StatusMethodNotAllowed, "MethodNotAllowedException", "Invoke takes POST")
		return
	}
	fn, arn, ok := e.lambdaFunction(r.PathValue("fn"), r.URL.Query().Get("Qualifier"))
	if !ok {
		lambdaError(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+arn+e.hint(fn)+" (known functions: "+strings.Join(e.names, ", ")+")")
		return
	}
	typ := r.Header.Get("X-Amz-Invocation-Type")
	limit := min(LambdaMaxPayload, instanceMaxPayload(e.pools[fn].cfg.Platform))
	if typ == "Event" {
		limit = LambdaMaxEventPayload
		if e.asyncFullNow(fn) {
			// Refused before its body is read: a flood of large events
			// would otherwise cost a read and a parse each.
			w.Header().Set("Connection", "close")
			w.Header().Set("Retry-After", "1")
			lambdaError(w, http.StatusTooManyRequests, "TooManyRequestsException", e.asyncFull(fn))
			return
		}
	}
	body, release, over, err := e.readBody(w, r, limit)
	defer release()
	switch {
	case errors.Is(err, errShuttingDown):
		lambdaError(w, http.StatusServiceUnavailable, "ServiceException", "emulator is shutting down: the invocation did not start")
		return
	case errors.Is(err, errBodyBudget):
		w.Header().Set("Retry-After", "1")
		lambdaError(w, http.StatusTooManyRequests, "TooManyRequestsException", e.budgetFull())
		return
	case errors.Is(err, errBodyTimeout):
		lambdaError(w, http.StatusRequestTimeout, "RequestTimeoutException", "the request body stopped arriving")
		return
	case err != nil:
		lambdaError(w, http.StatusBadRequest, "InvalidRequestContentException", "Could not read the request body: "+err.Error())
		return
	case over:
		lambdaError(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException", fmt.Sprintf("Request must be smaller than %d bytes for the InvokeFunction operation", limit))
		return
	case len(bytes.TrimSpace(body)) > 0 && !json.Valid(body):
		lambdaError(w, http.StatusBadRequest, "InvalidRequestContentException", "Could not parse request body into json: the payload is not valid JSON")
		return
	}
	switch typ {
	case "", "RequestResponse":
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return
	case "Event":
		// A queued body is bounded by the queue, not the budget: room
		// held until it runs would starve synchronous callers.
		release()
		if !e.async(fn, requestID, body, LambdaAsyncRetries) {
			w.Header().Set("Retry-After", "1")
			lambdaError(w, http.StatusTooManyRequests, "TooManyRequestsException", e.asyncFull(fn))
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	default:
		lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", "X-Amz-Invocation-Type must be RequestResponse, Event or DryRun")
		return
	}
	res, rep, err := e.invoke(detached(r), fn, requestID, body)
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	if r.Header.Get("X-Amz-Log-Type") == "Tail" {
		w.Header().Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString(rep.Log))
	}
	if errors.Is(err, errShuttingDown) {
		// Never started: a service's refusal, not the function's error
		// (Runtime.ExitError read as a charge that may have run).
		lambdaError(w, http.StatusServiceUnavailable, "ServiceException", "emulator is shutting down: the invocation did not start")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case errors.Is(err, ErrTimedOut):
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		writeJSON(w, http.StatusOK, map[string]string{"errorType": "Sandbox.Timedout", "errorMessage": fmt.Sprintf("RequestId: %s Error: %v", requestID, err)})
	case err != nil:
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		writeJSON(w, http.StatusOK, map[string]string{"errorType": "Runtime.ExitError", "errorMessage": fmt.Sprintf("RequestId: %s Error: %v", requestID, err)})
	case res.Error != nil:
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		_, _ = w.Write(res.Body)
	default:
		_, _ = w.Write(res.Body)
	}
}

func (e *Emulator) fcInvoke(w http.ResponseWriter, r *http.Request) {
	requestID := runtimeapi.NewRequestID()
	w.Header().Set("x-fc-request-id", requestID)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fcError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "InvokeFunction takes POST", requestID)
		return
	}
	fn := r.PathValue("fn")
	if _, ok := e.pools[fn]; !ok {
		fcError(w, http.StatusNotFound, "FunctionNotFound", fmt.Sprintf("function '%s' does not exist%s (known functions: %s)", fn, e.hint(fn), strings.Join(e.names, ", ")), requestID)
		return
	}
	if q := r.URL.Query().Get("qualifier"); q != "" && q != "LATEST" {
		fcError(w, http.StatusNotFound, "VersionNotFound", fmt.Sprintf("qualifier '%s' of function '%s' does not exist (only LATEST runs locally)", q, fn), requestID)
		return
	}
	async := strings.EqualFold(r.Header.Get("x-fc-invocation-type"), "Async")
	// Under --platform aws the instance polls Lambda's runtime API, which
	// takes 6 MB at most: past that, the door refuses the call rather than
	// hand it on to be killed for memory.
	limit := min(FCMaxPayload, instanceMaxPayload(e.pools[fn].cfg.Platform))
	if async {
		limit = FCMaxAsyncPayload
		if e.asyncFullNow(fn) {
			w.Header().Set("Connection", "close") // its body is not read
			w.Header().Set("Retry-After", "1")
			fcError(w, http.StatusTooManyRequests, "ResourceThrottled", e.asyncFull(fn), requestID)
			return
		}
	}
	// FC passes the event bytes as they are: the runtime, not the API,
	// decides whether they are JSON.
	body, release, over, err := e.readBody(w, r, limit)
	defer release()
	switch {
	case errors.Is(err, errShuttingDown):
		fcError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "emulator is shutting down: the invocation did not start", requestID)
		return
	case errors.Is(err, errBodyBudget):
		w.Header().Set("Retry-After", "1")
		fcError(w, http.StatusTooManyRequests, "ResourceThrottled", e.budgetFull(), requestID)
		return
	case errors.Is(err, errBodyTimeout):
		fcError(w, http.StatusRequestTimeout, "RequestTimeout", "the request body stopped arriving", requestID)
		return
	case err != nil:
		fcError(w, http.StatusBadRequest, "InvalidArgument", "could not read the request body: "+err.Error(), requestID)
		return
	case over:
		msg := fmt.Sprintf("payload is over the %d-byte limit of %s invocation", limit, map[bool]string{true: "an asynchronous", false: "a synchronous"}[async])
		if !async && limit < FCMaxPayload {
			msg += " here: the function runs Lambda's runtime API (--platform aws), which takes at most 6 MB"
		}
		fcError(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge", msg, requestID)
		return
	}
	if async {
		release() // bounded by the queue, as at the Lambda door
		if !e.async(fn, requestID, body, FCAsyncRetries) {
			w.Header().Set("Retry-After", "1")
			fcError(w, http.StatusTooManyRequests, "ResourceThrottled", e.asyncFull(fn), requestID)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	res, rep, err := e.invoke(detached(r), fn, requestID, body)
	w.Header().Set("x-fc-invocation-duration", fmt.Sprint(rep.Duration.Milliseconds()))
	w.Header().Set("x-fc-max-memory-usage", fmt.Sprint((rep.MaxRSSKiB+1023)/1024))
	if strings.EqualFold(r.Header.Get("x-fc-log-type"), "Tail") {
		w.Header().Set("x-fc-log-result", base64.StdEncoding.EncodeToString(rep.Log))
	}
	if errors.Is(err, errShuttingDown) {
		fcError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "emulator is shutting down: the invocation did not start", requestID)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case err != nil:
		w.Header().Set("x-fc-error-type", "UnhandledInvocationError")
		writeJSON(w, http.StatusOK, map[string]string{"errorType": "UnhandledInvocationError", "errorMessage": err.Error()})
	case res.Error != nil:
		w.Header().Set("x-fc-error-type", "UnhandledInvocationError")
		_, _ = w.Write(res.Body)
	default:
		_, _ = w.Write(res.Body)
	}
}

// async queues an asynchronous invocation; false when the function's
// queue is full (the front door answers 429). retries is the door's
// platform default, unless Options.AsyncRetries says otherwise.
func (e *Emulator) async(fn, requestID string, body []byte, retries int) bool {
	if e.opts.AsyncRetries != nil {
		retries = max(0, *e.opts.AsyncRetries)
	}
	select {
	case e.queues[fn] <- asyncJob{requestID: requestID, body: body, retries: retries}:
		return true
	default:
		return false
	}
}

// retry queues a failed asynchronous invocation again after its delay, as
// the platforms do, under the same request id; it says so in the log. An
// invocation out of retries is dropped with a line saying so (a platform
// would hand it to its on-failure destination).
func (e *Emulator) retry(fn string, j asyncJob, res runtimeapi.Result, err error) {
	why := "failed"
	switch {
	case err != nil:
		first, _, _ := strings.Cut(err.Error(), "\n")
		why = "failed: " + first
	case res.Error != nil:
		why = "failed: " + res.Error.Type
	}
	j.attempt++
	if j.attempt > j.retries {
		if j.retries > 0 {
			e.logf("%s: asynchronous invocation %s %s on its last attempt (%d of %d); dropped", fn, j.requestID, why, j.attempt, j.retries+1)
		} else {
			e.logf("%s: asynchronous invocation %s %s; not retried (retries are off); dropped", fn, j.requestID, why)
		}
		return
	}
	delay := e.opts.AsyncRetryDelay << (j.attempt - 1)
	e.logf("%s: asynchronous invocation %s %s (attempt %d of %d); retrying in %s", fn, j.requestID, why, j.attempt, j.retries+1, delay)
	e.retryWG.Add(1)
	go func() {
		defer e.retryWG.Done()
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-e.stop:
			e.dropped[fn].Add(1)
			return
		}
		// A retry waits for room in the queue rather than being refused:
		// the platform accepted this invocation already.
		select {
		case e.queues[fn] <- j:
		case <-e.stop:
			e.dropped[fn].Add(1)
		}
	}()
}

func (e *Emulator) asyncWorker(fn string, q <-chan asyncJob) {
	defer e.wg.Done()
	for {
		select {
		case <-e.stop:
			return
		case j := <-q:
			select {
			case <-e.stop: // both were ready: shutting down wins
				e.dropped[fn].Add(1)
				return
			default:
			}
			res, _, err := e.invoke(context.Background(), fn, j.requestID, j.body)
			if err != nil || res.Error != nil {
				select {
				case <-e.stop: // cut off by the shutdown: it ran, and its REPORT says how it ended
				default:
					e.retry(fn, j, res, err)
				}
			}
		}
	}
}

// asyncFullNow says fn's queue is full at this moment (checked again when
// the invocation is queued).
func (e *Emulator) asyncFullNow(fn string) bool {
	q := e.queues[fn]
	return len(q) == cap(q)
}

// budgetFull explains a 429 for a full body budget.
func (e *Emulator) budgetFull() string {
	return fmt.Sprintf("the emulator already holds %d MB of request bodies, its budget, and none was given back within %s; retry later",
		e.bodies.size>>20, e.opts.BodyWait)
}

// asyncFull explains a 429 for a full queue.
func (e *Emulator) asyncFull(fn string) string {
	return fmt.Sprintf("%d asynchronous invocations of %s are already waiting (the emulator's queue per function); retry later, or invoke synchronously", e.opts.AsyncQueue, fn)
}

// platformError answers a front-door error in the emulated platform's shape.
func (e *Emulator) platformError(w http.ResponseWriter, status int, code, msg, requestID string) {
	if e.opts.Platform == runtimeapi.Lambda {
		lambdaError(w, status, code, msg)
		return
	}
	fcError(w, status, code, msg, requestID)
}

// setRequestID sets the emulated platform's request-id header on an HTTP
// trigger answer (FC: x-fc-request-id; API Gateway: apigw-requestid).
func (e *Emulator) setRequestID(w http.ResponseWriter, id string) {
	if e.opts.Platform == runtimeapi.Lambda {
		w.Header().Set("Apigw-Requestid", id)
		w.Header().Set("x-amzn-RequestId", id)
		return
	}
	w.Header().Set("x-fc-request-id", id)
}

// gatewayRequestID is an id in API Gateway's form (base64 of 11 bytes, as
// "JcTBchR5IAMEbIw="). A deployed HTTP API names a call with its own id
// (apigw-requestid, requestContext.requestId), never the Lambda one: the
// emulator gives them different values too, so a reader who keys on one
// where the other is meant finds out here, not in production.
func gatewayRequestID() string {
	var b [11]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

func (e *Emulator) fireTimer(w http.ResponseWriter, r *http.Request) {
	requestID := runtimeapi.NewRequestID()
	e.setRequestID(w, requestID)
	fn := r.PathValue("fn")
	var timer *Timer
	for i, t := range e.opts.Timers {
		if t.Function == fn {
			timer = &e.opts.Timers[i]
		}
	}
	if timer == nil {
		code, msg := "TimerNotFound", fmt.Sprintf("function %q has no timer", fn)
		if _, ok := e.pools[fn]; !ok {
			code, msg = "FunctionNotFound", e.unknown(fn).Error()
		}
		e.platformError(w, http.StatusNotFound, code, msg, requestID)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		e.platformError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "fire a timer with POST", requestID)
		return
	}
	res, _, err := e.invoke(detached(r), fn, requestID, e.TimerEvent(timer.Name, timer.Payload))
	if err != nil {
		e.platformError(w, http.StatusBadGateway, "FunctionFailed", err.Error(), requestID)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(res.Body)
}

// httpResponse is what both platforms' HTTP trigger events take back.
type httpResponse struct {
	StatusCode      int               `json:"statusCode"`
	Headers         map[string]string `json:"headers"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
}

func (e *Emulator) httpTrigger(w http.ResponseWriter, r *http.Request) {
	requestID := runtimeapi.NewRequestID()
	e.setRequestID(w, requestID)
	gatewayID := requestID
	if e.opts.Platform == runtimeapi.Lambda {
		gatewayID = gatewayRequestID()
		w.Header().Set("Apigw-Requestid", gatewayID)
	}
	fn := r.PathValue("fn")
	p, ok := e.pools[fn]
	if !ok {
		e.platformError(w, http.StatusNotFound, "FunctionNotFound", e.unknown(fn).Error(), requestID)
		return
	}
	if p.cfg.NoHTTPTrigger {
		e.platformError(w, http.StatusNotFound, "TriggerNotFound",
			fmt.Sprintf("function %q has no HTTP trigger in its descriptors; invoke it with POST /2023-03-30/functions/%s/invocations or /2015-03-31/functions/%s/invocations", fn, fn, fn), requestID)
		return
	}
	if e.opts.Platform == runtimeapi.Lambda && r.URL.Path != "/"+fn {
		// template.yaml routes the exact Path /<fn> (an HttpApi event, no
		// {proxy+}), so API Gateway answers any other path 404 before a
		// function runs; FC's trigger is the function's whole domain and
		// takes every sub-path, so --platform fc passes them on.
		e.logf("%s %s: no route under --platform aws (template.yaml routes only /%s); answered 404 as API Gateway does", r.Method, r.URL.EscapedPath(), fn)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"message":"Not Found"}`)
		return
	}
	if p.cfg.HTTPMethods != nil && !slices.Contains(p.cfg.HTTPMethods, r.Method) {
		// The function's own 405, byte for byte (runtime.HTTPHandler's), on
		// either platform: a Lambda function URL or FC's proxy passes every
		// method on to the function, which answers so.
		allow := strings.Join(p.cfg.HTTPMethods, ", ")
		// The id is the one the function's event would carry: on AWS the
		// gateway's (requestContext.requestId), on FC the request's.
		b, _ := json.Marshal(map[string]string{"Code": "MethodNotAllowed", "Message": fn + " takes " + allow, "RequestId": gatewayID})
		w.Header().Set("Allow", allow)
		w.Header().Set("X-Request-Id", gatewayID)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write(b)
		return
	}
	limit := instanceMaxPayload(p.cfg.Platform)
	body, release, over, err := e.readBody(w, r, limit)
	defer release()
	switch {
	case errors.Is(err, errShuttingDown):
		e.platformError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "emulator is shutting down: the invocation did not start", requestID)
		return
	case errors.Is(err, errBodyBudget):
		code := "ResourceThrottled"
		if e.opts.Platform == runtimeapi.Lambda {
			code = "TooManyRequestsException"
		}
		w.Header().Set("Retry-After", "1")
		e.platformError(w, http.StatusTooManyRequests, code, e.budgetFull(), requestID)
		return
	case errors.Is(err, errBodyTimeout):
		e.platformError(w, http.StatusRequestTimeout, "RequestTimeout", "the request body stopped arriving", requestID)
		return
	case err != nil:
		e.platformError(w, http.StatusBadRequest, "InvalidArgument", "could not read the request body: "+err.Error(), requestID)
		return
	case over:
		e.platformError(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge", fmt.Sprintf("request body over the %d-byte limit of %s", limit, e.opts.Platform), requestID)
		return
	}
	if e.opts.Platform != runtimeapi.Lambda {
		// FC's event carries parsed query parameters only: a query that
		// cannot be parsed is refused, never passed on with a part dropped
		// (the function would verify a signature without it).
		if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			e.platformError(w, http.StatusBadRequest, "InvalidArgument", "the query string cannot be parsed (a ';' or a bad % escape)", requestID)
			return
		}
	}
	ev := e.httpEvent(r, body, requestID, gatewayID)
	if p.cfg.Platform == runtimeapi.Lambda && len(ev) > limit {
		// The event is larger than its body (base64, a string's escapes):
		// within the door's limit, it went past the 6 MB Lambda's invoke
		// takes, which API Gateway's event must fit (a re-tester). FC's
		// trigger takes a 32 MB body and hands the function its event,
		// larger: the function refuses it by size (-1002).
		e.platformError(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge", fmt.Sprintf("the event this body makes is %d bytes, over the %d bytes the %s runtime API hands a function (a body in base64, or with characters a JSON string escapes, is larger in the event than on the wire); send less", len(ev), limit, p.cfg.Platform), requestID)
		return
	}
	res, _, err := e.invoke(detached(r), fn, requestID, ev)
	if errors.Is(err, errShuttingDown) {
		// Never started: said as the service's refusal, as the invoke
		// doors say it (a 502 FunctionFailed reads as a charge that may
		// have run).
		e.platformError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "emulator is shutting down: the invocation did not start", requestID)
		return
	}
	if err != nil || res.Error != nil {
		msg := "the function failed"
		if err != nil {
			msg = err.Error() // names the instance's exit, never its output
		} else {
			msg += ": " + res.Error.Message
		}
		status := http.StatusBadGateway
		if errors.Is(err, ErrTimedOut) {
			status = http.StatusGatewayTimeout
		}
		e.platformError(w, status, "FunctionFailed", msg, requestID)
		return
	}
	var hr httpResponse
	if err := json.Unmarshal(res.Body, &hr); err != nil || hr.StatusCode == 0 {
		// A function that returns a plain value: FC answers it as the body.
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(res.Body)
		return
	}
	for k, v := range hr.Headers {
		w.Header().Set(k, v)
	}
	out := []byte(hr.Body)
	if hr.IsBase64Encoded {
		if b, err := base64.StdEncoding.DecodeString(hr.Body); err == nil {
			out = b
		}
	}
	w.WriteHeader(hr.StatusCode)
	_, _ = w.Write(out)
}

// TimerEvent renders the platform's timer event for a payload.
func (e *Emulator) TimerEvent(name, payload string) []byte {
	var ev any
	if e.opts.Platform == runtimeapi.Lambda {
		var p json.RawMessage = json.RawMessage("{}")
		if json.Valid([]byte(payload)) {
			p = json.RawMessage(payload)
		}
		ev = map[string]any{"source": "cloudcall.schedule", "schedule": name, "payload": p}
	} else {
		ev = map[string]any{"triggerTime": time.Now().UTC().Format(time.RFC3339), "triggerName": name, "payload": payload}
	}
	b, _ := json.Marshal(ev)
	return b
}

// RunTimers fires the timers on their schedules until ctx ends.
func (e *Emulator) RunTimers(ctx context.Context) {
	for _, t := range e.opts.Timers {
		go func() {
			for {
				next := t.Cron.Next(time.Now())
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(next)):
				}
				_, _, _ = e.Invoke(ctx, t.Function, e.TimerEvent(t.Name, t.Payload))
			}
		}()
	}
}

// HTTPEvent renders an HTTP request as the platform's trigger event: FC 3.0
// (version v1) or API Gateway HTTP API payload 2.0.
func (e *Emulator) HTTPEvent(r *http.Request, body []byte) []byte {
	return e.httpEvent(r, body, runtimeapi.NewRequestID(), gatewayRequestID())
}

// httpEvent is the trigger's event; on Lambda its requestContext.requestId
// is the gateway's id, as API Gateway sends it.
func (e *Emulator) httpEvent(r *http.Request, body []byte, reqID, gatewayID string) []byte {
	headers := map[string]string{}
	for k, vs := range r.Header {
		headers[k] = strings.Join(vs, ",")
	}
	path := r.URL.EscapedPath()
	// A body that is not JSON text goes as base64 (binary, as both platforms
	// send it): json.Valid passes invalid UTF-8 inside strings, and
	// json.Marshal would then replace it with U+FFFD, so the function would
	// see text the caller never sent instead of refusing what it did send.
	b64 := len(body) > 0 && (!utf8.Valid(body) || !json.Valid(body))
	bodyStr := string(body)
	if b64 {
		bodyStr = base64.StdEncoding.EncodeToString(body)
	}
	now := time.Now()
	src := r.RemoteAddr
	if i := strings.LastIndex(src, ":"); i > 0 {
		src = src[:i]
	}
	var ev any
	if e.opts.Platform == runtimeapi.Lambda {
		lh := map[string]string{}
		for k, v := range headers {
			lh[strings.ToLower(k)] = v
		}
		ev = map[string]any{
			"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": r.URL.RawQuery,
			"headers": lh, "body": bodyStr, "isBase64Encoded": b64,
			"requestContext": map[string]any{"accountId": e.opts.AccountID, "apiId": "local", "requestId": gatewayID, "timeEpoch": now.UnixMilli(),
				"http": map[string]string{"method": r.Method, "path": path, "protocol": r.Proto, "sourceIp": src, "userAgent": r.UserAgent()}},
		}
	} else {
		// FC joins a repeated name's values with commas, in arrival order
		// (?a=1&a=0 → "a":"1,0"), as it joins repeated headers.
		q := map[string]string{}
		vals, _ := url.ParseQuery(r.URL.RawQuery)
		for k, vs := range vals {
			q[k] = strings.Join(vs, ",")
		}
		ev = map[string]any{
			"version": "v1", "rawPath": path, "headers": headers, "queryParameters": q, "body": bodyStr, "isBase64Encoded": b64,
			"requestContext": map[string]any{"accountId": e.opts.AccountID, "domainName": "local.fcapp.run", "domainPrefix": "local", "requestId": reqID,
				"time": now.UTC().Format(time.RFC3339), "timeEpoch": fmt.Sprint(now.UnixMilli()),
				"http": map[string]string{"method": r.Method, "path": r.URL.Path, "protocol": r.Proto, "sourceIp": src, "userAgent": r.UserAgent()}},
		}
	}
	// Not HTML-escaped: json.Marshal writes each <, > and & as \u003c, six
	// bytes for one, and a 2 MB body of them became a 12 MB event that
	// killed a 128 MB function decoding it (a charge already sent, once).
	// The platforms' gateways do not escape them either.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(ev)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
