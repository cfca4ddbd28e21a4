package envelope

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
)

// Trigger says how an invocation arrived.
type Trigger string

const (
	TriggerDirect Trigger = "direct" // InvokeFunction / Lambda Invoke: the platform authenticated the caller
	TriggerHTTP   Trigger = "http"   // a public HTTP trigger: the bundle authenticates the caller
	TriggerTimer  Trigger = "timer"  // FC timer, EventBridge schedule
)

// Credentials are per-invocation cloud credentials the platform hands over
// (FC passes the function role's STS credentials in the invocation context).
type Credentials struct {
	AccessKeyID     string
	AccessKeySecret string
	SecurityToken   string
}

// Input is one invocation as the operation sees it, whatever the platform.
type Input struct {
	Body     []byte      // the envelope input: a JSON object
	Trigger  Trigger     // how it arrived
	Header   http.Header // HTTP triggers only (canonical keys)
	Method   string      // HTTP triggers only
	Path     string      // HTTP triggers only
	RawQuery string      // HTTP triggers only
	// QueryJoined says the platform delivered the query as one value per
	// name, repeated names joined with commas (FC 3.0 HTTP triggers): a value
	// with a comma may stand for several.
	QueryJoined bool
	SourceIP    string // HTTP triggers only
	RequestID   string // the platform's request id
	// InvocationID is the platform invocation's own id, the log line's
	// requestId, when RequestID is an API gateway's.
	InvocationID string
	Function     string // the function's name
	// Credentials from the platform context, when it passes any (FC does).
	Credentials *Credentials
	// SignedNonce is the nonce of the caller signature the guard
	// verified, set when the call carries an Idempotency-Key header (the one
	// unsigned header that changes what runs: the charge records the nonce
	// as durably as its own writes); empty otherwise.
	SignedNonce string
	// PlatformCaller names a caller the platform authenticated before the
	// function ran ("aws-iam:<user ARN>": an HTTP API route or function URL
	// with AWS_IAM). Such a call needs no caller signature of ours: SigV4
	// takes the Authorization header ours would use.
	PlatformCaller string
	// UnknownFields is the unknown-field policy the input is read under
	// (UnknownRefuse, the default when empty, or UnknownIgnore).
	UnknownFields string
	// NullFields is the null policy (NullRefuse, the default when empty,
	// or NullAbsent).
	NullFields string
	// Event says which event the platform payload was read as, and by
	// which members ("an FC timer event (it has triggerTime and
	// triggerName)"); empty for a direct invocation. A refusal of the input
	// names it: a direct input that looked like an event was told
	// "deliveryId: required" of an input it never sent.
	Event string
	// EventPayload is that payload as it came (nil for a direct one).
	EventPayload []byte
}

// Op is one cloud-call operation: the errMsg prefix and the handler. The
// handler returns the success payload (a struct or map that marshals to a JSON
// object of lowerCamelCase fields) or an error (an *Error for handled failures).
type Op struct {
	API    string
	Handle func(ctx context.Context, in *Input) (any, error)
	// Warm, when set, prepares what the first call needs (its compiled
	// schema, a dialled records store) so the first call does not wait for
	// it. The runtime runs it once per built instance, in the background at
	// cold start; building an Op starts nothing, so tests and embedders
	// that only call Handle get no goroutines they did not ask for.
	Warm func(ctx context.Context)
	// Timeout is the operation's deadline when neither the platform nor
	// CLOUDCALL_TIMEOUT gives one (HTTP-server mode); zero means the
	// runtime's default.
	Timeout time.Duration
}

// Response is the envelope as bytes plus the HTTP status that goes with it.
type Response struct {
	Status int
	Body   []byte
	Err    *Error // nil on success; kept for logs and metrics
	// Partial marks a success whose result says part of its work failed
	// (a PartialResult): metrics count it as a fault, errCode stays 0.
	Partial bool
	// PartialReason says what failed (a PartialReasoner), for the log line:
	// a timer's answer is thrown away by the platform, so the line is the
	// only record of which account or channel failed.
	PartialReason string
	// Replayed marks an answer read from an idempotency record, not made
	// now: HTTP answers say so in Idempotent-Replayed, the log line too.
	Replayed bool
	// Trace is what the log line adds to find the call again.
	Trace Trace
	// Unrecorded marks a charge that ran whose record could not be
	// finished: its repeats hear -1304 until a person settles it, so it is
	// counted and logged as an outcome unknown, though its caller heard
	// the vendor's answer.
	Unrecorded bool
}

// Trace holds a call's identifiers for its log line: what an operator needs
// to reconcile a charge or to ask a vendor about a call. Never a secret.
type Trace struct {
	IdempotencyKey    string // the charge's key in force (auto:<fingerprint> without one)
	KeylessKey        string // a keyed charge's keyless slot (auto:<fingerprint>): restored with it after a loss
	VendorID          string // what the vendor made: the charge's order id
	UpstreamRequestID string // the vendor's request id of a success (a failure's is in Upstream)
	OrderID           string // the order a charge is on (its wdsCoordinationOrderId): what TOP is searched by
	CallerKeyID       string // the caller key id a refused signature named
}

// PartialReasoner is a PartialResult that says what failed.
type PartialReasoner interface {
	PartialReason() string
}

// PartialResult is a success payload that can report part of its work
// failed: quota-alert's run summary, when an alert reached no channel or an
// account could not be checked. The caller still gets errCode 0 and the
// result; the operator's metrics see the failure.
type PartialResult interface {
	PartlyFailed() bool
}

// Prepared is an envelope that is already finished (an idempotent replay of
// a first call's answer): a handler returns it and Invoke passes it through
// byte for byte.
type Prepared Response

// Invoke runs the operation and always produces an envelope: a panic in the
// handler becomes CodeInternal, never a crash.
func (o Op) Invoke(ctx context.Context, in *Input) (resp Response) {
	defer func() {
		if r := recover(); r != nil {
			e := &Error{Code: CodeInternal, Reason: "internal error", Err: fmt.Errorf("panic: %v\n%s", r, debug.Stack())}
			resp = Failure(o.API, e)
		}
	}()
	out, err := o.Handle(ctx, in)
	if err != nil {
		return Failure(o.API, As(err))
	}
	if p, ok := out.(Prepared); ok {
		return Response(p)
	}
	resp = Success(o.API, out)
	if p, ok := out.(PartialResult); ok && resp.Err == nil {
		resp.Partial = p.PartlyFailed()
		if r, ok := out.(PartialReasoner); ok && resp.Partial {
			resp.PartialReason = r.PartialReason()
		}
	}
	return resp
}

// Success encodes {"errCode":0,"errMsg":"<api>:ok", ...fields of out}. The
// result is encoded straight into the envelope's buffer (one buffer, no
// copy of the fields), byte for byte what json.Marshal writes.
func Success(api string, out any) Response {
	var buf bytes.Buffer
	buf.Grow(len(api) + 128)
	buf.WriteString(`{"errCode":0,"errMsg":`)
	writeString(&buf, api+":ok")
	if out != nil {
		p := buf.Len()
		if err := json.NewEncoder(&buf).Encode(out); err != nil { // Marshal's bytes plus a newline
			return Failure(api, &Error{Code: CodeInternal, Reason: "internal error", Err: fmt.Errorf("encode result: %w", err)})
		}
		obj := bytes.TrimRight(buf.Bytes()[p:], "\n")
		if len(obj) < 2 || obj[0] != '{' {
			return Failure(api, &Error{Code: CodeInternal, Reason: "internal error", Err: fmt.Errorf("result of %s is not a JSON object", api)})
		}
		if len(TrimSpace(obj[1:len(obj)-1])) == 0 {
			buf.Truncate(p) // {}: no fields to add
		} else {
			obj[0] = ','                   // the fields follow errMsg
			buf.Truncate(p + len(obj) - 1) // and the envelope's own } closes them
		}
	}
	buf.WriteByte('}')
	return Response{Status: http.StatusOK, Body: buf.Bytes()}
}

// failureBody is the wire shape of a failure.
type failureBody struct {
	ErrCode    int       `json:"errCode"`
	ErrMsg     string    `json:"errMsg"`
	Field      string    `json:"field,omitempty"`
	RetryAfter int       `json:"retryAfter,omitempty"`
	Upstream   *Upstream `json:"upstream,omitempty"`
}

// StoreRetryAfter is the retryAfter of a -1501 that names none: the store
// is down or briefly inconsistent, and a retry a second later may find it
// back (docs/envelope.md and openapi.json promise a -1501 one; an outside
// tester found it missing on CK1's and the charge's).
const StoreRetryAfter = 1

// Failure encodes {"errCode":N,"errMsg":"<api>:fail <reason>", ...}.
func Failure(api string, e *Error) Response {
	if e.Code == CodeStoreUnavailable && e.RetryAfter <= 0 {
		c := *e
		c.RetryAfter = StoreRetryAfter
		e = &c
	}
	b, err := json.Marshal(failureBody{
		ErrCode:    e.Code,
		ErrMsg:     api + ":fail " + e.Reason,
		Field:      e.Field,
		RetryAfter: e.RetryAfter,
		Upstream:   e.Upstream,
	})
	if err != nil { // only an unencodable Upstream.Extra can get here
		b, _ = json.Marshal(failureBody{ErrCode: e.Code, ErrMsg: api + ":fail " + e.Reason})
	}
	return Response{Status: e.HTTPStatus(), Body: b, Err: e}
}

// FailureOf reads back the error an encoded envelope carries (a recorded
// answer replayed, say), the inverse of Failure: nil for a success or for
// bytes that are no envelope.
func FailureOf(api string, body []byte) *Error {
	var f failureBody
	if json.Unmarshal(body, &f) != nil || f.ErrCode == 0 {
		return nil
	}
	return &Error{Code: f.ErrCode, Reason: strings.TrimPrefix(f.ErrMsg, api+":fail "), Field: f.Field, RetryAfter: f.RetryAfter, Upstream: f.Upstream}
}

// writeString writes s as json.Marshal quotes it: as is when no byte needs
// an escape (an API name always), through json.Marshal otherwise.
func writeString(buf *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			buf.Write(b)
			return
		}
	}
	buf.WriteByte('"')
	buf.WriteString(s)
	buf.WriteByte('"')
}

// Header returns the first value of an HTTP header, case-insensitively; empty
// for non-HTTP invocations.
func (in *Input) HeaderValue(name string) string {
	if in == nil || in.Header == nil {
		return ""
	}
	if v := in.Header.Get(name); v != "" {
		return v
	}
	for k, vs := range in.Header {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}
