package emulator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/openapi"
)

// Payload limits of the platforms' synchronous invocations.
const (
	LambdaMaxPayload = 6 << 20
	FCMaxPayload     = 32 << 20
)

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
	Log       io.Writer // START / END / REPORT lines
	Region    string
	AccountID string
}

// Emulator serves the front doors and owns the pools.
type Emulator struct {
	opts  Options
	pools map[string]*Pool
	names []string
	logMu sync.Mutex
	wg    sync.WaitGroup
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
	e := &Emulator{opts: opts, pools: map[string]*Pool{}}
	for _, f := range opts.Functions {
		if f.Platform == "" {
			f.Platform = opts.Platform
		}
		e.pools[f.Name] = NewPool(f)
		e.names = append(e.names, f.Name)
	}
	sort.Strings(e.names)
	return e
}

// Pool returns a function's pool.
func (e *Emulator) Pool(name string) (*Pool, bool) {
	p, ok := e.pools[name]
	return p, ok
}

// Close stops every instance and waits for async invocations.
func (e *Emulator) Close() {
	for _, p := range e.pools {
		p.Close()
	}
	e.wg.Wait()
}

func (e *Emulator) maxPayload() int {
	if e.opts.Platform == runtimeapi.Lambda {
		return LambdaMaxPayload
	}
	return FCMaxPayload
}

func (e *Emulator) logf(format string, args ...any) {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	fmt.Fprintf(e.opts.Log, format+"\n", args...)
}

// Invoke runs one invocation and prints START / END / REPORT.
func (e *Emulator) Invoke(ctx context.Context, fn string, payload []byte) (runtimeapi.Result, Report, error) {
	p, ok := e.pools[fn]
	if !ok {
		return runtimeapi.Result{}, Report{}, e.unknown(fn)
	}
	inv := runtimeapi.Invocation{RequestID: runtimeapi.NewRequestID(), Payload: payload, Region: e.opts.Region, AccountID: e.opts.AccountID, Handler: handlerName(p.cfg.Platform)}
	e.logf("%s START RequestId: %s Version: $LATEST", fn, inv.RequestID)
	res, rep, err := p.Invoke(ctx, inv)
	e.logf("%s END RequestId: %s", fn, inv.RequestID)
	line := fmt.Sprintf("%s REPORT RequestId: %s\tDuration: %.2f ms\tMemory Size: %d MB\tMax Memory Used: %d MB", fn, inv.RequestID,
		float64(rep.Duration.Microseconds())/1000, p.cfg.MemoryMB, (rep.MaxRSSKiB+1023)/1024)
	if rep.Cold {
		line += fmt.Sprintf("\tInit Duration: %.2f ms", float64(rep.InitDuration.Microseconds())/1000)
	}
	switch {
	case err != nil:
		line += "\tStatus: " + err.Error()
	case res.Error != nil:
		line += "\tStatus: error " + res.Error.Type
	}
	e.logf("%s", line)
	return res, rep, err
}

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
	return fmt.Sprintf("function %q not found; known functions: %s", e.Name, strings.Join(e.Known, ", "))
}

func (e *Emulator) unknown(fn string) error { return &UnknownFunctionError{Name: fn, Known: e.names} }

// Names lists the functions.
func (e *Emulator) Names() []string { return append([]string(nil), e.names...) }

// Handler is the front doors:
//
//	POST /2015-03-31/functions/<fn>/invocations   Lambda Invoke (aws lambda invoke --endpoint-url)
//	POST /2023-03-30/functions/<fn>/invocations   FC InvokeFunction
//	POST /__timers/<fn>                           fire the function's timer now
//	ANY  /<fn>[/...]                              the function's HTTP trigger
//	GET  /openapi.json                            the OpenAPI 3.1 document (shared/openapi)
func (e *Emulator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2015-03-31/functions/{fn}/invocations", e.lambdaInvoke)
	mux.HandleFunc("POST /2023-03-30/functions/{fn}/invocations", e.fcInvoke)
	mux.HandleFunc("POST /__timers/{fn}", e.fireTimer)
	mux.Handle("GET /openapi.json", openapi.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"functions": e.names, "platform": e.opts.Platform})
	})
	mux.HandleFunc("/{fn}/", e.httpTrigger)
	mux.HandleFunc("/{fn}", e.httpTrigger)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (e *Emulator) errorJSON(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]string{"errorType": typ, "errorMessage": msg})
}

// readPayload reads an invoke body within the platform's limit and checks it
// is JSON.
func (e *Emulator) readPayload(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	fn := r.PathValue("fn")
	if _, ok := e.pools[fn]; !ok {
		e.errorJSON(w, http.StatusNotFound, "ResourceNotFoundException", e.unknown(fn).Error())
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(e.maxPayload())+1))
	if err != nil {
		e.errorJSON(w, http.StatusBadRequest, "InvalidRequestContentException", "could not read the request body")
		return nil, false
	}
	if len(body) > e.maxPayload() {
		e.errorJSON(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException", fmt.Sprintf("payload is over the %d-byte limit of %s", e.maxPayload(), e.opts.Platform))
		return nil, false
	}
	if len(strings.TrimSpace(string(body))) > 0 && !json.Valid(body) {
		e.errorJSON(w, http.StatusBadRequest, "InvalidRequestContentException", "the payload is not valid JSON")
		return nil, false
	}
	return body, true
}

func (e *Emulator) lambdaInvoke(w http.ResponseWriter, r *http.Request) {
	body, ok := e.readPayload(w, r)
	if !ok {
		return
	}
	fn := r.PathValue("fn")
	switch r.Header.Get("X-Amz-Invocation-Type") {
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return
	case "Event":
		e.async(fn, body)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	res, _, err := e.Invoke(r.Context(), fn, body)
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	switch {
	case errors.Is(err, ErrTimedOut):
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		e.errorJSON(w, http.StatusOK, "Sandbox.Timedout", err.Error())
	case err != nil:
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		e.errorJSON(w, http.StatusOK, "Runtime.ExitError", err.Error())
	case res.Error != nil:
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(res.Body)
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(res.Body)
	}
}

func (e *Emulator) fcInvoke(w http.ResponseWriter, r *http.Request) {
	body, ok := e.readPayload(w, r)
	if !ok {
		return
	}
	fn := r.PathValue("fn")
	if strings.EqualFold(r.Header.Get("x-fc-invocation-type"), "Async") {
		e.async(fn, body)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	res, rep, err := e.Invoke(r.Context(), fn, body)
	w.Header().Set("x-fc-request-id", rep.RequestID)
	w.Header().Set("x-fc-invocation-duration", fmt.Sprint(rep.Duration.Milliseconds()))
	w.Header().Set("x-fc-max-memory-usage", fmt.Sprint((rep.MaxRSSKiB+1023)/1024))
	switch {
	case err != nil:
		w.Header().Set("x-fc-error-type", "UnhandledInvocationError")
		e.errorJSON(w, http.StatusOK, "UnhandledInvocationError", err.Error())
	case res.Error != nil:
		w.Header().Set("x-fc-error-type", "UnhandledInvocationError")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(res.Body)
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(res.Body)
	}
}

func (e *Emulator) async(fn string, body []byte) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		_, _, _ = e.Invoke(context.Background(), fn, body)
	}()
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

func (e *Emulator) fireTimer(w http.ResponseWriter, r *http.Request) {
	fn := r.PathValue("fn")
	if _, ok := e.pools[fn]; !ok {
		e.errorJSON(w, http.StatusNotFound, "ResourceNotFoundException", e.unknown(fn).Error())
		return
	}
	name, payload := fn+"-manual", "{}"
	for _, t := range e.opts.Timers {
		if t.Function == fn {
			name, payload = t.Name, t.Payload
		}
	}
	res, _, err := e.Invoke(r.Context(), fn, e.TimerEvent(name, payload))
	if err != nil {
		e.errorJSON(w, http.StatusBadGateway, "UnhandledInvocationError", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(res.Body)
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

// httpResponse is what both platforms' HTTP trigger events take back.
type httpResponse struct {
	StatusCode      int               `json:"statusCode"`
	Headers         map[string]string `json:"headers"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
}

func (e *Emulator) httpTrigger(w http.ResponseWriter, r *http.Request) {
	fn := r.PathValue("fn")
	if _, ok := e.pools[fn]; !ok {
		e.errorJSON(w, http.StatusNotFound, "ResourceNotFoundException", e.unknown(fn).Error())
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(e.maxPayload())+1))
	if err != nil {
		e.errorJSON(w, http.StatusBadRequest, "InvalidRequestContentException", "could not read the request body")
		return
	}
	if len(body) > e.maxPayload() {
		e.errorJSON(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException", "request body over the platform limit")
		return
	}
	res, _, err := e.Invoke(r.Context(), fn, e.HTTPEvent(r, body))
	if err != nil || res.Error != nil {
		msg := "the function failed"
		if err != nil {
			msg = err.Error()
		} else {
			msg += ": " + res.Error.Message
		}
		status := http.StatusBadGateway
		if errors.Is(err, ErrTimedOut) {
			status = http.StatusGatewayTimeout
		}
		e.errorJSON(w, status, "FunctionError", msg)
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

// HTTPEvent renders an HTTP request as the platform's trigger event: FC 3.0
// (version v1) or API Gateway HTTP API payload 2.0.
func (e *Emulator) HTTPEvent(r *http.Request, body []byte) []byte {
	headers := map[string]string{}
	for k, vs := range r.Header {
		headers[k] = strings.Join(vs, ",")
	}
	path := r.URL.EscapedPath()
	b64 := !json.Valid(body) && len(body) > 0
	bodyStr := string(body)
	if b64 {
		bodyStr = base64.StdEncoding.EncodeToString(body)
	}
	now := time.Now()
	reqID := runtimeapi.NewRequestID()
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
			"requestContext": map[string]any{"accountId": e.opts.AccountID, "apiId": "local", "requestId": reqID, "timeEpoch": now.UnixMilli(),
				"http": map[string]string{"method": r.Method, "path": path, "protocol": r.Proto, "sourceIp": src, "userAgent": r.UserAgent()}},
		}
	} else {
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
	b, _ := json.Marshal(ev)
	return b
}
