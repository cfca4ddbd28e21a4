// Package cloudcall is the Go client of the bundle's functions: typed inputs
// and outputs generated from the registry's schemas (api_gen.go), methods at
// the API names (cc.OpenAPI.Logistics.GetQuota), caller signing, and the same
// error fields and retry rules as the Node client (@cloudcall/client).
//
//	cc, err := cloudcall.New(cloudcall.Options{BaseURL: "http://127.0.0.1:9000", KeyID: "backend", Secret: secret})
//	out, err := cc.OpenAPI.Logistics.GetQuota(ctx, cloudcall.GetQuotaInput{DeliveryID: "YTO", BizID: "xyz"})
//	var ce *cloudcall.Error
//	if errors.As(err, &ce) && ce.ErrCode == -1001 { ... ce.Field ... }
//	fmt.Println(out.QuotaNum) // 210
//
// The Client's fields are the API namespaces (APIs): cc.OpenAPI, cc.CK1,
// cc.CAMS and cc.TOP. Every failure of a call is an *Error; a misuse found
// before anything is sent (an option the API does not take, a function
// without an endpoint, a nil context.Context, a Client{} not made by New)
// is a plain error. A nil *Client has no fields to call through: that
// panics in the caller, as any nil pointer does. Example is the whole first
// call, as the README shows it.
//
// A read is sent again only after a connection failure: nothing was sent
// (connection refused, DNS, a dial timeout), or the connection was reset or
// closed by the peer before an answer (syscall.ECONNRESET or EPIPE, io.EOF
// or io.ErrUnexpectedEOF from the transport, "server closed idle
// connection"). Anything else is one attempt, since the request may have
// arrived: the Options.HTTPClient's own timeout or cancel
// (context.DeadlineExceeded, context.Canceled while the caller's context is
// not done, a net.Error timeout) is CodeTimeout, any other error of its
// transport CodeUnreachable naming that error. A charge that may have been
// sent is CodeOutcomeUnknown with its key, its ErrMsg saying which happened.
//
// KeyID and Secret sign every call. Leave both empty for a function that
// allows anonymous calls (CLOUDCALL_ALLOW_ANONYMOUS: plain make run, or FC's
// authType: function, whose signature an Options.HTTPClient transport adds):
// the calls then go without an Authorization header, and a -1101 such a
// client gets keeps the function's ErrMsg while Error() adds that the
// client had no key. One of the two without the other is refused by New.
package cloudcall

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/cloudcall/cloudcall/shared/callerauth"
)

// The bundle's error codes (docs/envelope.md, error codes): Error.ErrCode is
// one of these or the vendor's own code (a WeChat errcode). The client makes
// CodeInvalidInput, CodeThrottled and CodeTimeout through CodeOutcomeUnknown
// itself too, when it sees no function's answer.
const (
	CodeInvalidInput    = -1001 // 400: the input broke a documented rule; Field names it
	CodePayloadTooLarge = -1002 // 413: body or headers over the limit
	// CodeUnauthenticated is the function refusing the caller's signature; a
	// "replayed nonce" refusal of the charge becomes CodeOutcomeUnknown.
	CodeUnauthenticated     = -1101
	CodeForbidden           = -1102 // 403: the caller is known but not allowed
	CodeThrottled           = -1201 // 429: wait RetryAfter seconds
	CodeTimeout             = -1301 // no answer before the deadline (or the caller's context ended, or the HTTPClient's own Timeout passed)
	CodeUnreachable         = -1302 // the function or the vendor could not be reached
	CodeUnreadable          = -1303 // an answer came that could not be read
	CodeOutcomeUnknown      = -1304 // a charge may or may not have happened: call again with the same key
	CodeVendorRefused       = -1305 // the vendor refused; Upstream says what it said
	CodeIdempotencyConflict = -1401 // 409: the charge's key is in flight, or was used for another request
	CodeStoreUnavailable    = -1501 // 503: the functions' shared state is down; retry
	CodeConfig              = -1601 // 500: the function lacks configuration
	CodeInternal            = -1999 // 500: a bug; RequestID finds it in the logs
)

// Defaults.
const (
	DefaultTimeout      = 15 * time.Second
	DefaultMaxRetries   = 2
	DefaultMaxRetryWait = 10 * time.Second
)

// Options configure a Client.
type Options struct {
	// BaseURL: functions live at <BaseURL>/<function>.
	BaseURL string
	// Endpoints: per-function trigger URLs; they win over BaseURL.
	Endpoints map[string]string
	// KeyID and Secret: a caller key of the functions' CLOUDCALL_CALLER_KEYS,
	// which signs every call. Both empty: the calls go unsigned (no
	// Authorization header), for a function that allows anonymous calls
	// (CLOUDCALL_ALLOW_ANONYMOUS: make run; FC's authType: function, whose
	// signature an HTTPClient's transport adds). One without the other is
	// refused by New.
	KeyID, Secret string
	// Timeout bounds a whole call, retries and waits included (DefaultTimeout
	// when 0). A context deadline that comes sooner wins.
	Timeout time.Duration
	// HTTPClient sends the requests (http.Client's defaults when nil). The
	// client uses a copy that never follows redirects, whatever this one's
	// CheckRedirect says.
	HTTPClient *http.Client
	// MaxRetries after the first attempt (DefaultMaxRetries when 0; -1: none).
	MaxRetries int
	// MaxRetryWait is the longest Retry-After waited out (DefaultMaxRetryWait
	// when 0); a longer one is returned at once.
	MaxRetryWait time.Duration
	// Now is the clock used for signatures (time.Now when nil).
	Now func() time.Time
}

// Client calls the functions. Its fields (APIs) follow the API names:
// cc.OpenAPI.Logistics.GetQuota, cc.CK1.Pricing.InboundBox,
// cc.CAMS.QueryChatappBindWaba, cc.TOP.ASCP.LaunchExtraCharge. It is safe
// for concurrent use.
type Client struct {
	APIs
}

// missingScheme says raw is a host and a port with the scheme left out
// ("localhost:9000", "127.0.0.1:9000/x", "[::1]:9000").
func missingScheme(raw string) bool {
	var rest string
	if strings.HasPrefix(raw, "[") {
		_, after, ok := strings.Cut(raw, "]:")
		if !ok {
			return false
		}
		rest = after
	} else {
		host, after, ok := strings.Cut(raw, ":")
		if !ok || host == "" || strings.ContainsAny(host, "/?#") {
			return false
		}
		rest = after
	}
	tail := strings.TrimLeft(rest, "0123456789")
	return len(tail) < len(rest) && (tail == "" || strings.ContainsRune("/?#", rune(tail[0])))
}

// New checks the options and builds a client.
func New(o Options) (*Client, error) {
	// Both empty: unsigned calls, for a function that allows anonymous ones.
	// One without the other is a mistake, never a quiet unsigned client.
	const neither = "or leave both KeyID and Secret empty for a function that allows anonymous calls (unsigned calls)"
	signed := o.KeyID != "" || o.Secret != ""
	switch {
	case signed && o.Secret == "":
		return nil, errors.New("cloudcall: KeyID is set without Secret: set both (a key of the functions' CLOUDCALL_CALLER_KEYS), " + neither)
	case signed && o.KeyID == "":
		return nil, errors.New("cloudcall: Secret is set without KeyID: set both (a key of the functions' CLOUDCALL_CALLER_KEYS), " + neither)
	case signed && !callerauth.ValidKeyID(o.KeyID):
		return nil, fmt.Errorf("cloudcall: KeyID %q must be 1-64 of A-Z a-z 0-9 _ . - (the id in CLOUDCALL_CALLER_KEYS), %s", o.KeyID, neither)
	case o.Timeout < 0:
		return nil, fmt.Errorf("cloudcall: Timeout %s is negative (0 means the default, %s)", o.Timeout, DefaultTimeout)
	case signed && len(o.Secret) < callerauth.MinSecretLen:
		return nil, fmt.Errorf("cloudcall: Secret must be the key's secret (at least %d bytes), %s", callerauth.MinSecretLen, neither)
	case o.BaseURL == "" && len(o.Endpoints) == 0:
		return nil, errors.New("cloudcall: set BaseURL (functions at <BaseURL>/<function>) or Endpoints")
	}
	if o.BaseURL != "" {
		u, err := url.Parse(o.BaseURL)
		switch {
		case missingScheme(o.BaseURL):
			return nil, fmt.Errorf("cloudcall: BaseURL %q has no scheme: write http://%s", o.BaseURL, o.BaseURL)
		case err == nil && u.User != nil:
			return nil, fmt.Errorf("cloudcall: BaseURL must not carry credentials (user:password@); the client signs every request")
		case err == nil && (u.Scheme == "http" || u.Scheme == "https") && strings.ContainsAny(o.BaseURL, "?#"):
			// <BaseURL>/<function> would land in the query or fragment.
			return nil, fmt.Errorf("cloudcall: BaseURL %q must not carry a query or fragment (functions are at <BaseURL>/<function>); use Endpoints for a URL with a query", o.BaseURL)
		case err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
			return nil, fmt.Errorf("cloudcall: BaseURL %q is not an http(s) URL (e.g. http://127.0.0.1:9000)", o.BaseURL)
		}
	}
	known := map[string]bool{}
	for _, f := range functions() {
		known[f.Name] = true
	}
	for name := range o.Endpoints {
		if !known[name] {
			names := make([]string, 0, len(known))
			for _, f := range functions() {
				names = append(names, f.Name)
			}
			return nil, fmt.Errorf("cloudcall: Endpoints names %q, which is no function; known: %s", name, strings.Join(names, ", "))
		}
	}
	c := &core{o: o, fns: map[string]function{}}
	for _, f := range functions() {
		raw := o.Endpoints[f.Name]
		// Errors name what the caller wrote: BaseURL, or the function's
		// entry in Endpoints (a bad BaseURL was reported as an endpoint
		// URL the caller never wrote: a user).
		what, shown := "endpoint of "+f.Name, raw
		if raw == "" && o.BaseURL != "" {
			raw = strings.TrimRight(o.BaseURL, "/") + "/" + f.Name
			what, shown = "BaseURL", o.BaseURL
		}
		if raw == "" {
			continue // calling it reports the missing endpoint
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("cloudcall: %s %q is not an http(s) URL", what, shown)
		}
		if u.User != nil {
			return nil, fmt.Errorf("cloudcall: %s: the URL must not carry credentials (user:password@); the client signs every request", what)
		}
		if err := signableQuery(u.RawQuery); err != nil {
			return nil, fmt.Errorf("cloudcall: %s: %w", what, err)
		}
		// Remove . and .. segments (%2e and %2E too) as fetch does (RFC
		// 3986 5.2.4), so the path signed is the path a server routes:
		// net/http's mux answers an unclean path with a redirect, which the
		// client does not follow, and a charge read "outcome unknown".
		dotSegments(u)
		u = u.ResolveReference(u)
		if strings.Contains(u.EscapedPath(), "//") {
			return nil, fmt.Errorf("cloudcall: %s %q has an empty path segment (//): every call would be redirected, which the client does not follow", what, shown)
		}
		f.url = u
		c.fns[f.Name] = f
	}
	if c.o.Timeout <= 0 {
		c.o.Timeout = DefaultTimeout
	}
	switch {
	case c.o.MaxRetries == 0:
		c.o.MaxRetries = DefaultMaxRetries
	case c.o.MaxRetries < 0:
		c.o.MaxRetries = 0
	}
	if c.o.MaxRetryWait <= 0 {
		c.o.MaxRetryWait = DefaultMaxRetryWait
	}
	// Redirects are refused whoever made the client: a charge that followed
	// one went out again as a GET, and the answer to that read as a charge.
	hc := http.Client{}
	if c.o.HTTPClient != nil {
		hc = *c.o.HTTPClient
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.o.HTTPClient = &hc
	if c.o.Now == nil {
		c.o.Now = time.Now
	}
	return &Client{APIs: newAPIs(c)}, nil
}

// dotSegments spells the segments "%2e" and "%2e%2e" (any case, or mixed
// with a dot) as "." and "..", which URL resolution then removes.
func dotSegments(u *url.URL) {
	segs := strings.Split(u.EscapedPath(), "/")
	changed := false
	for i, s := range segs {
		switch strings.ToLower(s) {
		case "%2e":
			segs[i], changed = ".", true
		case "%2e%2e", ".%2e", "%2e.":
			segs[i], changed = "..", true
		}
	}
	if changed {
		raw := strings.Join(segs, "/")
		if p, err := url.PathUnescape(raw); err == nil {
			u.Path, u.RawPath = p, raw
		}
	}
}

// signableQuery refuses a query the functions cannot canonicalize (a ";", a
// bad escape, bytes that are not UTF-8): they would refuse every call.
func signableQuery(raw string) error {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return fmt.Errorf("its query cannot be signed: %w", err)
	}
	for k, vs := range vals {
		for _, v := range append(vs, k) {
			if !utf8.ValidString(v) {
				return fmt.Errorf("its query cannot be signed: %q is not UTF-8", v)
			}
		}
	}
	return nil
}

// Upstream is what the vendor said, verbatim.
type Upstream struct {
	Vendor     string         `json:"vendor"`               // wechat, ck1, cams or top
	HTTPStatus int            `json:"httpStatus,omitempty"` // the vendor's HTTP status
	Code       string         `json:"code,omitempty"`       // the vendor's error code, as text
	Message    string         `json:"message,omitempty"`    // the vendor's message
	SubCode    string         `json:"subCode,omitempty"`    // TOP's sub_code
	SubMessage string         `json:"subMessage,omitempty"` // TOP's sub_msg
	RequestID  string         `json:"requestId,omitempty"`  // the vendor's request id
	Extra      map[string]any `json:"extra,omitempty"`      // the vendor's other error fields
}

// Error is a failed call: the function's failure envelope, or what the client
// saw instead (Status 0 when no answer came). errors.As(err, &e) finds it;
// errors.Is(err, context.Canceled) tells a call the caller's context ended.
type Error struct {
	ErrCode        int       // a Code* constant, or the vendor's code (a WeChat errcode)
	ErrMsg         string    // "<api>:fail <why>"
	Field          string    // the input field at fault (-1001)
	RetryAfter     int       // seconds (-1201)
	Upstream       *Upstream // what the vendor said
	RequestID      string    // the platform's request id, else the vendor's
	Status         int       // HTTP status; 0 without an answer
	IdempotencyKey string    // the key in force, as the function echoed it (the charge)
	API            string    // the API called, e.g. top.ascp.launchExtraCharge
	Function       string    // the function called, e.g. top-launch-extra-charge
	Attempts       int       // tries made, retries included (one that could not connect counts too); 0 when none was
	Err            error     // the cause, when there is one: a transport error, the context's error

	unsigned bool // a -1101 to a client without a key: Error() says so
}

// unsignedNote is what Error() adds to a -1101 that an unsigned client got
// (ErrMsg stays the function's): the refusal is about the key it lacks.
const unsignedNote = " (this client sends unsigned calls: it was made without KeyID and Secret; set both, a key of the functions' CLOUDCALL_CALLER_KEYS)"

// Error gives the code and the message; a -1101 to an unsigned client adds
// that it had no key.
func (e *Error) Error() string {
	s := fmt.Sprintf("cloudcall: errCode %d: %s", e.ErrCode, e.ErrMsg)
	if e.unsigned && e.ErrCode == CodeUnauthenticated {
		s += unsignedNote
	}
	return s
}

// Unwrap gives the cause (Err).
func (e *Error) Unwrap() error { return e.Err }

// CallOption adjusts one call.
type CallOption func(*callOptions)

type callOptions struct {
	idempotencyKey string
}

// WithIdempotencyKey sets the charge's idempotency key (sent in the body, so
// it is signed). It must agree with the input's IdempotencyKey when both are set;
// an empty key is no key (the other one is used).
func WithIdempotencyKey(key string) CallOption {
	return func(o *callOptions) { o.idempotencyKey = key }
}

type function struct {
	API, Name           string
	TakesIdempotencyKey bool   // its input takes idempotencyKey: the charge (never retried once it may have been sent)
	Output              *shape // what a success answer must hold
	url                 *url.URL
}

type core struct {
	o   Options
	fns map[string]function
}

type failure struct {
	ErrCode        *int      `json:"errCode"`
	ErrMsg         string    `json:"errMsg"`
	Field          string    `json:"field"`
	RetryAfter     int       `json:"retryAfter"`
	Upstream       *Upstream `json:"upstream"`
	IdempotencyKey string    `json:"idempotencyKey"`
}

func (c *core) call(ctx context.Context, name string, in, out any, opts []CallOption) error {
	// Misuse is a plain error, as the package doc says, not a nil pointer
	// panic (an outside tester): nothing has been sent.
	if ctx == nil {
		return errors.New("cloudcall: nil Context") // as net/http says it
	}
	if c == nil {
		return errors.New("cloudcall: the Client was not made by cloudcall.New: use cloudcall.New(cloudcall.Options{...})")
	}
	f, ok := c.fns[name]
	if !ok {
		return fmt.Errorf("cloudcall: no endpoint for %s: add it to Options.Endpoints or set BaseURL", name)
	}
	var co callOptions
	for _, o := range opts {
		o(&co)
	}
	body, err := encodeInput(f, in, co.idempotencyKey)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		// Nothing is sent, so even the charge's outcome is known: none.
		return &Error{ErrCode: CodeTimeout, API: f.API, Function: f.Name, Err: err, IdempotencyKey: bodyKey(f, body),
			ErrMsg: f.API + ":fail not sent: the caller's context had already ended"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	// The 429 the attempt in flight retries (nil when it retries something else).
	var retrying429 *Error
	// echoed is the key the function named on an earlier attempt: for a
	// charge sent without one, its fingerprint key (auto:…), which a later
	// -1304 of this call must carry (it named none: an outside re-tester).
	var echoed string
	for attempt := 1; ; attempt++ {
		began := time.Now()
		e, retryIn := c.once(ctx, f, body, out, attempt)
		if e == nil {
			return nil
		}
		if e.IdempotencyKey != "" {
			echoed = e.IdempotencyKey
		} else if echoed != "" && f.TakesIdempotencyKey && e.ErrCode == CodeOutcomeUnknown {
			withKey(e, echoed)
		}
		if retrying429 != nil && e.ErrCode == CodeTimeout && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// The deadline cut a read's retry of a 429 (it took longer than
			// the attempt before it): the answer is the 429, as Node's is.
			// A charge's cut retry stays -1304: it was sent, and may have charged.
			return retryCut(ctx, retrying429, e)
		}
		retrying429 = nil
		if retryIn < 0 || attempt > c.o.MaxRetries {
			return e
		}
		// Only with room for another attempt as long as this one took, as
		// Node does: a retry cut off by the deadline turned a clear 429
		// into a vague -1301 (and the charge's into -1304).
		if dl, ok := ctx.Deadline(); ok && time.Now().Add(retryIn).Add(time.Since(began)).After(dl) {
			return e
		}
		t := time.NewTimer(retryIn)
		select {
		case <-ctx.Done():
			t.Stop()
			return waitEnded(ctx, e)
		case <-t.C:
		}
		if e.Status == http.StatusTooManyRequests {
			retrying429 = e
		}
	}
}

// retryCut is the 429 e429 when the deadline cut the retry that followed it
// (cut, -1301): its code, status, RetryAfter and fields, Attempts counting
// the retry, and errors.Is seeing the deadline.
func retryCut(ctx context.Context, e429, cut *Error) *Error {
	r := *e429
	r.Attempts = cut.Attempts
	r.Err = cut.Err
	if !errors.Is(r.Err, ctx.Err()) {
		r.Err = fmt.Errorf("%w; the retry: %w", ctx.Err(), cut.Err)
	}
	return &r
}

// waitEnded is the answer when ctx ends while waiting to retry after e:
// errors.Is sees the context's error, whatever the code. Nothing is in
// flight (a charge is waited on only after a 429, which did not charge), so
// a canceled call is CodeTimeout, as one canceled before sending is. A
// deadline keeps a 429 as it was, as Node does.
func waitEnded(ctx context.Context, e *Error) *Error {
	cause := ctx.Err()
	if e.Err != nil {
		cause = fmt.Errorf("%w; last attempt: %w", cause, e.Err) // one line, both in the chain
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && e.ErrCode == CodeThrottled {
		e.Err = cause
		return e
	}
	why := "no answer before the deadline"
	if errors.Is(ctx.Err(), context.Canceled) {
		why = "the caller's context was canceled"
	}
	return &Error{ErrCode: CodeTimeout, API: e.API, Function: e.Function, Attempts: e.Attempts, IdempotencyKey: e.IdempotencyKey, Err: cause,
		ErrMsg: fmt.Sprintf("%s:fail %s while waiting to retry (last attempt: %s)", e.API, why, strings.TrimPrefix(e.ErrMsg, e.API+":fail "))}
}

// encodeInput fixes the body once: every retry sends these very bytes, so a
// charge keeps its idempotency key.
func encodeInput(f function, in any, key string) ([]byte, error) {
	if field, problem := checkInput(reflect.ValueOf(in), ""); problem != "" {
		return nil, &Error{ErrCode: CodeInvalidInput, Field: field, API: f.API, Function: f.Name,
			ErrMsg: f.API + ":fail invalid input: " + field + ": " + problem}
	}
	body, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("cloudcall: encode the input of %s: %w", f.API, err)
	}
	if key == "" {
		return body, nil
	}
	if !utf8.ValidString(key) {
		return nil, &Error{ErrCode: CodeInvalidInput, Field: "idempotencyKey", API: f.API, Function: f.Name,
			ErrMsg: f.API + ":fail invalid input: idempotencyKey: expected text in UTF-8; it holds bytes that are not"}
	}
	if !f.TakesIdempotencyKey {
		return nil, fmt.Errorf("cloudcall: %s takes no idempotency key", f.API)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	k, _ := json.Marshal(key)
	if have, ok := m["idempotencyKey"]; ok && !bytes.Equal(have, k) {
		return nil, &Error{ErrCode: CodeInvalidInput, Field: "idempotencyKey", API: f.API, Function: f.Name,
			ErrMsg: f.API + ":fail two different idempotency keys (the input's and WithIdempotencyKey)"}
	}
	m["idempotencyKey"] = k
	return json.Marshal(m)
}

// once sends one attempt. retryIn >= 0 says the failure may be retried
// after that long; -1 says it may not.
func (c *core) once(ctx context.Context, f function, body []byte, out any, attempt int) (*Error, time.Duration) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url.String(), bytes.NewReader(body))
	if err != nil {
		return &Error{ErrCode: CodeUnreachable, ErrMsg: f.API + ":fail " + err.Error(), API: f.API, Function: f.Name, Err: err}, -1
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	// A new nonce per attempt: the function spends the nonce of every
	// correctly signed call.
	// An unsigned client leaves the header to its transport (a platform's).
	if c.o.KeyID != "" {
		req.Header.Set("Authorization", callerauth.Header(c.o.KeyID, c.o.Secret, http.MethodPost, f.url.EscapedPath(), f.url.RawQuery,
			c.o.Now().Unix(), callerauth.NewNonce(), body))
	}
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		return c.transportError(ctx, f, err, attempt, body)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		// The headers came, so the function ran: for the charge the
		// outcome is unknown; a read's answer is unreadable, not unreached.
		e, retry := c.transportError(ctx, f, err, attempt, body)
		e.Status, e.RequestID = resp.StatusCode, requestID(resp.Header)
		if e.ErrCode == CodeUnreachable {
			e.ErrCode = CodeUnreadable
			e.ErrMsg = fmt.Sprintf("%s:fail the answer's body could not be read: %v", f.API, err)
			retry = -1
		}
		return e, retry
	}
	var fb failure
	// This function's envelope: its errMsg names the function's API, and a
	// success ("<api>:ok") comes with a 2xx. A proxy's JSON, another
	// function's answer at a wrong endpoint or errCode 0 on a 502 is no
	// answer to this call, and for the charge no proof that it charged.
	if decodeNumbers(raw, &fb) != nil || fb.ErrCode == nil || !strings.HasPrefix(fb.ErrMsg, f.API+":") ||
		*fb.ErrCode == 0 && (resp.StatusCode/100 != 2 || fb.ErrMsg != f.API+":ok") {
		snippet := string(raw)
		if len(snippet) > 200 {
			snippet = snippet[:200]
		}
		e := &Error{ErrCode: CodeUnreadable, Status: resp.StatusCode, RequestID: requestID(resp.Header), API: f.API, Function: f.Name, Attempts: attempt,
			ErrMsg: fmt.Sprintf("%s:fail HTTP %d from %s is not a cloudcall envelope: %s", f.API, resp.StatusCode, f.url.Redacted(), snippet)}
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			// A platform's or gateway's throttle: the function never ran.
			e.ErrCode = CodeThrottled
			e.ErrMsg = fmt.Sprintf("%s:fail throttled before the function (HTTP 429 from %s): %s", f.API, f.url.Redacted(), snippet)
			e.IdempotencyKey = bodyKey(f, body)
			return e, c.throttleWait(e, resp)
		case f.TakesIdempotencyKey:
			// An answer came, so the charge may have run whatever the
			// status: only the function, asked again with the key, knows.
			e.ErrCode = CodeOutcomeUnknown
			e.IdempotencyKey = bodyKey(f, body)
			and := ""
			if e.IdempotencyKey != "" {
				and = " and key" // a keyless charge has none to repeat
			}
			e.ErrMsg = fmt.Sprintf("%s:fail outcome unknown — HTTP %d from %s is not a cloudcall envelope (%s); call again with the same input"+and+": the function answers with the first call's outcome once it is recorded (409 while it runs; -1304 again if it ended unrecorded: reconcile with the vendor)",
				f.API, resp.StatusCode, f.url.Redacted(), snippet)
		}
		return e, -1
	}
	if *fb.ErrCode == 0 {
		// The schema's required fields and JSON types first: a field left
		// out would decode as its zero value, which can mean something.
		checked, err := checkShape(raw, f.Output)
		if err == nil {
			err = decodeNumbers(checked, out)
		}
		if err != nil {
			e := &Error{ErrCode: CodeUnreadable, Status: resp.StatusCode, RequestID: requestID(resp.Header), API: f.API, Function: f.Name, Attempts: attempt, Err: err,
				ErrMsg: f.API + ":fail the answer does not match the generated type: " + err.Error()}
			if f.TakesIdempotencyKey {
				// errCode 0: it charged, and this client cannot read how.
				// The key lets the caller reconcile (a repeat answers the same).
				e.ErrCode = CodeOutcomeUnknown
				e.IdempotencyKey = fb.IdempotencyKey
				if e.IdempotencyKey == "" {
					e.IdempotencyKey = bodyKey(f, body)
				}
				e.ErrMsg = f.API + ":fail the function answered errCode 0 (done) in a shape this client's types do not hold (" + err.Error() + "); reconcile with the idempotency key"
			}
			return e, -1
		}
		return nil, 0
	}
	e := &Error{ErrCode: *fb.ErrCode, ErrMsg: fb.ErrMsg, Field: fb.Field, RetryAfter: fb.RetryAfter, Upstream: fb.Upstream,
		RequestID: requestID(resp.Header), Status: resp.StatusCode, IdempotencyKey: fb.IdempotencyKey, API: f.API, Function: f.Name, Attempts: attempt}
	if e.RequestID == "" && fb.Upstream != nil {
		e.RequestID = fb.Upstream.RequestID
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return e, c.throttleWait(e, resp)
	}
	e.unsigned = e.ErrCode == CodeUnauthenticated && c.o.KeyID == ""
	if e.ErrCode == CodeUnauthenticated && strings.Contains(e.ErrMsg, "replayed nonce") {
		// Every attempt is signed with a fresh nonce, so a replay means
		// something between this client and the function (a balancer
		// retrying a POST, a gateway duplicating it) delivered it twice:
		// the first delivery may have run. A read is asked again, signed
		// anew; a charge is -1304 with its key, never "not charged".
		if !f.TakesIdempotencyKey {
			return e, 0
		}
		e.ErrCode = CodeOutcomeUnknown
		e.IdempotencyKey = bodyKey(f, body)
		and := ""
		if e.IdempotencyKey != "" {
			and = " and key"
		}
		e.ErrMsg = f.API + ":fail outcome unknown — the function refused this request as a replay of one it had already seen (something between this client and the function delivered it twice), and the first delivery may have charged; call again with the same input" + and +
			": the function answers with the first call's outcome once it is recorded (409 while it runs; -1304 again if it ended unrecorded: reconcile with the vendor)"
	}
	return e, -1
}

// throttleWait is how long to wait before retrying a 429: only with
// Retry-After, and only a wait the client accepts; -1 otherwise.
func (c *core) throttleWait(e *Error, resp *http.Response) time.Duration {
	s, ok := retryAfter(resp.Header.Get("Retry-After"), c.o.Now())
	if !ok {
		return -1
	}
	if e.RetryAfter == 0 {
		e.RetryAfter = s
	}
	// In seconds first: a Retry-After of 18446744074 wrapped past int64
	// as a Duration and was waited out as 0.29 s (an outside re-tester).
	if int64(s) <= int64(c.o.MaxRetryWait/time.Second) {
		return time.Duration(s) * time.Second
	}
	return -1
}

// withKey gives a keyless charge's -1304 the key the function echoed
// earlier in the call, and says to repeat with it.
func withKey(e *Error, key string) {
	e.IdempotencyKey = key
	e.ErrMsg = strings.Replace(e.ErrMsg, "call again with the same input:", "call again with the same input and key:", 1)
}

// bodyKey is the charge's idempotency key as the body carries it ("" when
// the function derives one).
func bodyKey(f function, body []byte) string {
	if !f.TakesIdempotencyKey {
		return ""
	}
	var m struct {
		IdempotencyKey string `json:"idempotencyKey"`
	}
	_ = json.Unmarshal(body, &m)
	return m.IdempotencyKey
}

// transportError: no answer. Only a connection failure (connFailed) sends
// a read again; the HTTP client's own timeout or cancel is CodeTimeout and
// any other error of its own CodeUnreachable, one attempt each: the request
// may have arrived. The charge is never sent again once it may have been
// sent, and says so.
func (c *core) transportError(ctx context.Context, f function, err error, attempt int, body []byte) (*Error, time.Duration) {
	base := &Error{API: f.API, Function: f.Name, Attempts: attempt, Err: err, IdempotencyKey: bodyKey(f, body)}
	again := "call again with the same input"
	if base.IdempotencyKey != "" {
		again += " and key" // as Node says it: the key is what makes the repeat safe
	}
	ended := "no answer before the deadline"
	if errors.Is(ctx.Err(), context.Canceled) {
		ended = "the caller's context was canceled before an answer came"
	}
	const then = ": the function answers with the first call's outcome once it is recorded (409 while it runs; -1304 again if it ended unrecorded: reconcile with the vendor)"
	cause := errors.Unwrap(err) // *url.Error's prefix repeats the URL
	if cause == nil {
		cause = err
	}
	kind := failureKind(err)
	switch {
	case ctx.Err() != nil && f.TakesIdempotencyKey:
		base.ErrCode = CodeOutcomeUnknown
		base.ErrMsg = f.API + ":fail outcome unknown — " + ended + "; " + again + then
		return base, -1
	case ctx.Err() != nil:
		base.ErrCode = CodeTimeout
		base.ErrMsg = f.API + ":fail " + ended
		return base, -1
	case f.TakesIdempotencyKey && kind != notSent:
		// What happened, in words (it named "the connection failed" for a
		// timeout or the transport's own error: re-testers).
		const sent = " after the charge may have been sent"
		var what string
		switch kind {
		case connFailed:
			what = fmt.Sprintf("the connection failed before an answer (%v)%s", cause, sent)
		case ownTimeout:
			what = "no answer before the HTTP client's own timeout (Options.HTTPClient)" + sent
		case ownCancel:
			what = fmt.Sprintf("the HTTP client (Options.HTTPClient) canceled the request on its own%s (%v)", sent, cause)
		default:
			what = fmt.Sprintf("the HTTP client (Options.HTTPClient) failed with: %v,%s", cause, sent)
		}
		base.ErrCode = CodeOutcomeUnknown
		base.ErrMsg = f.API + ":fail outcome unknown — " + what + "; " + again + then
		return base, -1
	}
	switch kind {
	case ownTimeout:
		// The caller's own http.Client.Timeout (or its transport's) cut a
		// request that may have arrived: a timeout, not sent again (it was
		// -1302 and sent three times: an outside tester).
		base.ErrCode = CodeTimeout
		base.ErrMsg = fmt.Sprintf("%s:fail no answer before the HTTP client's own timeout (Options.HTTPClient); not sent again, it may have arrived: %v", f.API, cause)
		return base, -1
	case ownCancel:
		base.ErrCode = CodeTimeout
		base.ErrMsg = fmt.Sprintf("%s:fail the HTTP client (Options.HTTPClient) canceled the request on its own before an answer; not sent again, it may have arrived: %v", f.API, cause)
		return base, -1
	case ownError:
		base.ErrCode = CodeUnreachable
		base.ErrMsg = fmt.Sprintf("%s:fail the HTTP client (Options.HTTPClient) failed with: %v; not sent again, it may have arrived", f.API, cause)
		return base, -1
	}
	base.ErrCode = CodeUnreachable
	if kind == notSent {
		base.ErrMsg = fmt.Sprintf("%s:fail could not reach %s: %v", f.API, f.url.Host, cause)
	} else {
		// Reset or closed by the peer: the request may have arrived, but
		// the function gave no answer; a read is safe to send again.
		base.ErrMsg = fmt.Sprintf("%s:fail the connection to %s failed before an answer: %v", f.API, f.url.Host, cause)
	}
	if f.TakesIdempotencyKey {
		return base, -1
	}
	backoff := time.Duration(float64(100*time.Millisecond) * float64(int(1)<<(attempt-1)) * (0.5 + rand.Float64()/2))
	return base, min(backoff, 2*time.Second)
}

// transportFailure is what ended a request without an answer, as the
// transport reports it; only notSent and connFailed send a read again.
type transportFailure int

const (
	notSent    transportFailure = iota // no connection was made: refused, DNS, dial timeout
	connFailed                         // reset or closed by the peer before an answer
	ownTimeout                         // the HTTP client's or transport's own timeout
	ownCancel                          // the transport canceled its own request
	ownError                           // anything else: a custom transport's own error
)

// failureKind sorts a transport error (the caller's context is judged
// before it is asked). A connection failure wins over a timeout: a dial
// timeout sent nothing.
func failureKind(err error) transportFailure {
	var dns *net.DNSError
	var op *net.OpError
	var ne net.Error
	var cert *tls.CertificateVerificationError
	var alert tls.AlertError
	var record tls.RecordHeaderError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &dns) || errors.As(err, &op) && op.Op == "dial":
		return notSent
	case errors.As(err, &cert) || errors.As(err, &alert) || errors.As(err, &record) ||
		strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"): // net/http's own words, no type
		// The TLS handshake failed: the request is written only after it
		// succeeds, so nothing was sent (a charge read -1304 "may have been
		// sent" for a certificate it never got past: a re-tester).
		return notSent
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "server closed idle connection"): // net/http's errServerClosedIdle is unexported
		return connFailed
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return ownTimeout
	case errors.Is(err, context.Canceled):
		return ownCancel
	}
	return ownError
}

func requestID(h http.Header) string {
	for _, k := range []string{"X-Fc-Request-Id", "X-Amzn-Requestid", "Apigw-Requestid"} {
		if v := h.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// retryAfter reads delta-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (int, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if digitsOnly(v) {
		// delay-seconds is digits alone ("+1" is none, as Node reads it);
		// past int, a wait no budget takes.
		n, err := strconv.Atoi(v)
		if err != nil {
			n = math.MaxInt
		}
		return n, true
	}
	for _, layout := range []string{http.TimeFormat, time.RFC850, time.ANSIC} {
		// Written back exactly as read, or no HTTP-date: time.Parse also
		// takes asctime's day after one space ("Dec 3"), which RFC 9110
		// pads to two and the Node client refuses.
		if t, err := time.Parse(layout, v); err == nil && t.Format(layout) == v {
			return max(0, int(t.Sub(now).Seconds()+0.999)), true
		}
	}
	return 0, false
}

func digitsOnly(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return v != ""
}
