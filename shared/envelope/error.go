// Package envelope is the cloud-call envelope every caller sees: strict
// lowerCamelCase input, {errCode, errMsg} output, and the HTTP status that goes
// with each outcome.
package envelope

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// The bundle's own error codes, for failures that happen before or around the
// vendor call. Vendor failures keep the vendor's code (WeChat) or use
// CodeUpstream with the vendor's code in Upstream. The README has this table.
const (
	CodeInvalidInput        = -1001 // 400: the input broke a documented rule
	CodePayloadTooLarge     = -1002 // 413: body or headers over the limit
	CodeUnauthenticated     = -1101 // 401: caller signature missing, wrong, expired or replayed
	CodeForbidden           = -1102 // 403: caller known but not allowed
	CodeThrottled           = -1201 // 429: a limit (ours or the vendor's) says wait
	CodeUpstreamTimeout     = -1301 // 504: the deadline passed before the vendor answered
	CodeUpstreamUnreachable = -1302 // 502: connection refused, reset, DNS, 5xx after retries
	CodeUpstreamMalformed   = -1303 // 502: the vendor's answer could not be read
	CodeOutcomeUnknown      = -1304 // 504: a write may or may not have happened; reconcile first
	CodeUpstream            = -1305 // 502: the vendor refused; see upstream.code
	CodeIdempotencyConflict = -1401 // 409: the same key is in flight, or was used for another request
	CodeStoreUnavailable    = -1501 // 503: shared state is down and the operation refuses to run without it
	CodeConfig              = -1601 // 500: the function is missing configuration (a variable, a credential)
	CodeInternal            = -1999 // 500: a bug; the request id is in the logs
)

// Upstream keeps what the vendor said, verbatim, for support tickets.
type Upstream struct {
	Vendor     string         `json:"vendor"`
	HTTPStatus int            `json:"httpStatus,omitempty"`
	Code       string         `json:"code,omitempty"`
	Message    string         `json:"message,omitempty"`
	SubCode    string         `json:"subCode,omitempty"`
	SubMessage string         `json:"subMessage,omitempty"`
	RequestID  string         `json:"requestId,omitempty"`
	Extra      map[string]any `json:"extra,omitempty"`
}

// Error is a handled failure. Handlers return it (or wrap it); the envelope
// turns it into {errCode, errMsg:"<api>:fail <Reason>", ...}.
type Error struct {
	Code       int       // errCode
	Reason     string    // what follows "fail "
	Status     int       // HTTP status for HTTP triggers; derived from Code when 0
	Field      string    // the input field at fault, for CodeInvalidInput
	RetryAfter int       // seconds, for throttling
	Upstream   *Upstream // what the vendor said, when it said anything
	Err        error     // the cause, for logs and errors.Is; never shown to callers
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("errCode %d: %s: %v", e.Code, e.Reason, e.Err)
	}
	return fmt.Sprintf("errCode %d: %s", e.Code, e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

// HTTPStatus is the status an HTTP trigger answers with for this error.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return StatusFor(e.Code)
}

// StatusFor maps an errCode to the HTTP status of DESIGN §3. Vendor codes
// (positive, or anything not in the bundle table) are 502.
func StatusFor(code int) int {
	switch code {
	case 0:
		return http.StatusOK
	case CodeInvalidInput:
		return http.StatusBadRequest
	case CodePayloadTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeThrottled:
		return http.StatusTooManyRequests
	case CodeUpstreamTimeout, CodeOutcomeUnknown:
		return http.StatusGatewayTimeout
	case CodeIdempotencyConflict:
		return http.StatusConflict
	case CodeStoreUnavailable:
		return http.StatusServiceUnavailable
	case CodeConfig, CodeInternal:
		return http.StatusInternalServerError
	default:
		return http.StatusBadGateway
	}
}

// Invalid is a CodeInvalidInput error naming the field and what was expected.
func Invalid(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	field = clip(field, maxEcho)
	msg = clip(msg, 2*maxEcho)
	reason := msg
	if field != "" {
		reason = field + ": " + msg
	}
	return &Error{Code: CodeInvalidInput, Reason: "invalid input: " + reason, Field: field}
}

// maxEcho bounds what a refusal repeats of the input: a 60,000-character
// unknown key came back twice, in the message and in field.
const maxEcho = 256

// clip cuts s to about n bytes on a rune boundary, saying how long it was.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + fmt.Sprintf("… (%d bytes in all)", len(s))
}

// MaxQuoted is how many bytes of a value the caller sent a refusal repeats
// (a header, a member's name, a number as written).
const MaxQuoted = 40

// Quote is s quoted as a refusal repeats a value the caller sent: at most
// MaxQuoted bytes of it, cut on a rune boundary, the cut marked and the
// whole length given ("kkk…" (10000 bytes in all)). A 10,000-byte
// Idempotency-Key header came back whole, in the answer and the log line
// (an outside tester).
func Quote(s string) string {
	if len(s) <= MaxQuoted {
		return strconv.Quote(s)
	}
	i := MaxQuoted
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return strconv.Quote(s[:i]+"…") + fmt.Sprintf(" (%d bytes in all)", len(s))
}

// Clip is s cut as Quote cuts it, unquoted: a name or a value shown as it
// was read ("number 1111…").
func Clip(s string) string { return clip(s, MaxQuoted) }

// ConfigError says which configuration is missing or wrong, and what to set.
func ConfigError(format string, args ...any) *Error {
	return &Error{Code: CodeConfig, Reason: "configuration: " + fmt.Sprintf(format, args...)}
}

// As returns the *Error inside err, or an internal error wrapping err.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Reason: "internal error", Err: err}
}
