package top

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/logging"
	"github.com/cloudcall/cloudcall/shared/upstream"
)

// Options configures a Client.
type Options struct {
	AppKey, Secret string
	Session        string // default session when a call passes none
	SignMethod     string // default hmac-sha256
	Gateway        string
	HTTP           *http.Client
	Now            func() time.Time
}

// Client calls the TOP router.
type Client struct{ o Options }

// NewClient checks the options.
func NewClient(o Options) (*Client, error) {
	if o.SignMethod == "" {
		o.SignMethod = SignHMACSHA256
	}
	if !ValidSignMethod(o.SignMethod) {
		return nil, fmt.Errorf("TOP_SIGN_METHOD=%q: expected md5, hmac or hmac-sha256", o.SignMethod)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	// A 3xx is an error, never a re-POST of the signed charge elsewhere.
	o.HTTP = upstream.NoRedirects(o.HTTP)
	return &Client{o: o}, nil
}

// ErrorResponse is TOP's platform failure layer.
type ErrorResponse struct {
	Code      int    `json:"code"`
	Msg       string `json:"msg"`
	SubCode   string `json:"sub_code"`
	SubMsg    string `json:"sub_msg"`
	RequestID string `json:"request_id"`
}

func (e *ErrorResponse) Error() string {
	s := fmt.Sprintf("top error %d %s", e.Code, e.Msg)
	if e.SubCode != "" {
		s += fmt.Sprintf(" (%s: %s)", e.SubCode, e.SubMsg)
	}
	return s
}

// Params builds the signed parameter set for one call. Empty values are
// dropped (TOP neither sends nor signs them).
func (c *Client) Params(method, session string, api map[string]string) (map[string]string, error) {
	if session == "" {
		session = c.o.Session
	}
	p := map[string]string{
		"method": method, "app_key": c.o.AppKey, "session": session,
		"timestamp": Timestamp(c.o.Now()), "v": "2.0", "sign_method": c.o.SignMethod, "format": "json",
	}
	for k, v := range api {
		p[k] = v
	}
	for k, v := range p {
		if v == "" {
			delete(p, k)
		}
	}
	sig, err := Sign(c.o.Secret, p)
	if err != nil {
		return nil, err
	}
	p["sign"] = sig
	return p, nil
}

// Outcome of a call as far as the caller can know it.
type Outcome int

const (
	// NotSent: the request never reached TOP (safe to retry, nothing done).
	NotSent Outcome = iota
	// Answered: TOP answered; the body says what happened.
	Answered
	// Unknown: the request may have reached TOP and nobody knows what it did.
	Unknown
)

// Reply is TOP's answer to one call.
type Reply struct {
	Outcome  Outcome
	Status   int
	Body     json.RawMessage // the method's response object (inside <name>_response)
	Error    *ErrorResponse  // the error_response layer, when present
	TransErr error           // what went wrong when Outcome != Answered
}

// Do sends one call once. It never retries: the caller knows whether the
// method is a read or a write.
func (c *Client) Do(ctx context.Context, method, session string, api map[string]string) Reply {
	params, err := c.Params(method, session, api)
	if err != nil {
		return Reply{Outcome: NotSent, TransErr: err}
	}
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	tctx, sent := upstream.Sent(ctx)
	req, err := http.NewRequestWithContext(tctx, http.MethodPost, c.o.Gateway, strings.NewReader(form.Encode()))
	if err != nil {
		return Reply{Outcome: NotSent, TransErr: upstream.Clean(err)}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	resp, err := c.o.HTTP.Do(req)
	if err != nil {
		out := NotSent
		// A redirect is an answer from where the request was sent: it was
		// not acted on there, and it is not followed.
		if sent() && !errors.Is(err, upstream.ErrRedirect) {
			out = Unknown // the request left: TOP may have acted on it
		}
		return Reply{Outcome: out, TransErr: upstream.Clean(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return Reply{Outcome: Unknown, Status: resp.StatusCode, TransErr: upstream.Clean(err)}
	}
	r := ParseReply(resp.StatusCode, b)
	if r.Error != nil && len(session) >= 8 {
		// TOP can quote the session it refused ("session … invalid"). A
		// caller's own session is no configured secret the log redactor
		// knows, and the reason goes to the log line and the answer.
		r.Error.Msg = maskSession(r.Error.Msg, session)
		r.Error.SubMsg = maskSession(r.Error.SubMsg, session)
	}
	return r
}

// maskSession masks session in s as written and as a URL would carry it
// (TOP may quote its request's form).
func maskSession(s, session string) string {
	for _, form := range []string{session, url.QueryEscape(session), url.PathEscape(session)} {
		s = strings.ReplaceAll(s, form, logging.Mask)
	}
	return s
}

// ParseReply reads a router answer: the error_response layer, or the
// method's response object (the first object member of the root, whatever
// its name). Anything else leaves the outcome unknown.
func ParseReply(status int, b []byte) Reply {
	if status != http.StatusOK {
		return Reply{Outcome: Unknown, Status: status, TransErr: fmt.Errorf("gateway answered HTTP %d", status)}
	}
	var root map[string]json.RawMessage
	if err := json.Unmarshal(b, &root); err != nil {
		return Reply{Outcome: Unknown, Status: status, TransErr: fmt.Errorf("unreadable answer: %w", err)}
	}
	if er, ok := root["error_response"]; ok {
		var e ErrorResponse
		if err := json.Unmarshal(er, &e); err != nil {
			return Reply{Outcome: Unknown, Status: status, TransErr: fmt.Errorf("unreadable error_response: %w", err)}
		}
		return Reply{Outcome: Answered, Status: status, Error: &e}
	}
	for _, v := range root {
		if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '{' {
			return Reply{Outcome: Answered, Status: status, Body: t}
		}
	}
	return Reply{Outcome: Unknown, Status: status, TransErr: errors.New("answer has no response object")}
}

// Compiled on first use, not at package init (init time is cold-start time).
var banSeconds = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`ban will last for (\d+) more seconds`) })

// RetryAfter reads "This ban will last for N more seconds" (code 7).
func (e *ErrorResponse) RetryAfter() int {
	for _, s := range []string{e.Msg, e.SubMsg} {
		if m := banSeconds().FindStringSubmatch(s); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	return 0
}

// Definite reports an error_response after which TOP certainly did not run
// the write: the gateway refused it before the backend (throttles, method,
// permission, signature, session, app key, timestamp, version and argument
// checks), or the backend refused it as a business error (isv.* sub-codes).
// Everything else (isp.* sub-codes, 10 Service Currently Unavailable, 15
// without a sub-code, codes TOP does not document) may have reached the
// backend, so the outcome of a write is unknown.
func (e *ErrorResponse) Definite() bool {
	switch {
	case strings.HasPrefix(e.SubCode, "isp."):
		return false
	case strings.HasPrefix(e.SubCode, "isv."):
		return true
	}
	switch c := e.Code; {
	case c == 3 || (c >= 4 && c <= 9) || (c >= 11 && c <= 13), c >= 21 && c <= 34, c >= 40 && c <= 43:
		return true
	}
	return false
}

func throttle(code int) bool { return code >= 4 && code <= 8 }

var hints = map[int]string{
	11: "the app lacks the permission package for this API: apply for it in the TOP console",
	25: "TOP refused the signature: check TOP_APP_SECRET and TOP_SIGN_METHOD",
	26: "TOP wants a seller session for this call: pass session or set TOP_SESSION",
	27: "the seller session is invalid or expired: the seller must authorize the app again (TOP_SESSION or session)",
	29: "TOP does not know this app key: check TOP_APP_KEY",
	31: "TOP refused the timestamp: check the host clock",
	40: "a required argument is missing: see sub_code",
	41: "TOP refused an argument: see sub_code",
}

// EnvelopeError maps a platform error_response onto the envelope.
func EnvelopeError(e *ErrorResponse) *envelope.Error {
	up := &envelope.Upstream{Vendor: "top", Code: strconv.Itoa(e.Code), Message: e.Msg, SubCode: e.SubCode, SubMessage: e.SubMsg, RequestID: e.RequestID}
	reason := fmt.Sprintf("%d %s", e.Code, e.Msg)
	if e.SubCode != "" {
		reason += fmt.Sprintf(": %s %s", e.SubCode, e.SubMsg)
	}
	if h, ok := hints[e.Code]; ok {
		reason += " (" + h + ")"
	}
	switch {
	case !e.Definite():
		return &envelope.Error{Code: envelope.CodeOutcomeUnknown, Reason: "outcome unknown — reconcile before retrying: " + reason, Upstream: up, Err: e}
	case throttle(e.Code):
		// Without a ban length (code 5, or 7 worded otherwise) the caller
		// still gets a wait, as from every other vendor: -1201 promises one.
		return &envelope.Error{Code: envelope.CodeThrottled, Reason: "throttled by TOP: " + reason, RetryAfter: max(e.RetryAfter(), 1), Upstream: up, Err: e}
	}
	return &envelope.Error{Code: envelope.CodeUpstream, Reason: reason, Upstream: up, Err: e}
}
