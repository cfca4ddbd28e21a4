// Package upstream holds what every vendor client does around the call:
// backoff that respects the invocation deadline, and turning transport
// failures into envelope errors without leaking the URL (which may carry an
// access_token) into messages.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

// ErrNoTime is returned by Sleep when the deadline would pass first.
var ErrNoTime = errors.New("no time left before the deadline")

// Backoff is the wait before retry number attempt (0-based): base·2^attempt,
// capped, with ±25% jitter so instances do not retry in lockstep.
func Backoff(attempt int, base, max time.Duration) time.Duration {
	d := base << attempt
	if d > max || d <= 0 {
		d = max
	}
	j := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return d + j
}

// Sleep waits d unless ctx ends first or its deadline is closer than d plus
// margin (the time the retried call itself needs).
func Sleep(ctx context.Context, d, margin time.Duration) error {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d+margin {
		return ErrNoTime
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Margin is the time a retry needs before the deadline: as long as the
// attempt before it took (a vendor slow once is slow again), and at least
// floor. A retry started with less is cut by the deadline, and the caller
// hears a timeout instead of the vendor's own answer.
func Margin(attemptStart time.Time, floor time.Duration) time.Duration {
	return max(time.Since(attemptStart), floor)
}

// Page is a vendor answer that is not the vendor's JSON (a proxy's or a
// firewall's page) as an error message quotes it: enough to recognise, not
// the megabytes it may be.
func Page(b []byte) string {
	return strings.ToValidUTF8(strings.TrimSpace(string(b[:min(len(b), MaxPage)])), "")
}

// MaxPage is how much of such a page a message keeps.
const MaxPage = 512

// Clean strips the request URL from a net/http error: *url.Error prints the
// URL, and WeChat's carries the access_token.
func Clean(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// Timeout reports whether err is a deadline or a network timeout.
func Timeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// TransportError maps a failure to get any answer from the vendor. For a
// read it is a timeout (-1301) or unreachable (-1302); the caller decides
// whether a write's failure is ambiguous instead.
func TransportError(vendor string, err error) *envelope.Error {
	err = Clean(err)
	if errors.Is(err, ErrRedirect) {
		return &envelope.Error{Code: envelope.CodeUpstreamUnreachable, Reason: vendor + " could not be reached: " + err.Error() + " (check the configured *_API_BASE / TOP_GATEWAY_URL)", Err: err}
	}
	if Timeout(err) {
		return &envelope.Error{Code: envelope.CodeUpstreamTimeout, Reason: vendor + " did not answer before the deadline", Err: err}
	}
	return &envelope.Error{Code: envelope.CodeUpstreamUnreachable, Reason: vendor + " could not be reached", Err: err}
}

// Malformed is an answer that could not be read.
func Malformed(vendor string, status int, err error) *envelope.Error {
	return &envelope.Error{Code: envelope.CodeUpstreamMalformed, Reason: fmt.Sprintf("%s answered HTTP %d with a body that could not be read", vendor, status),
		Err: err, Upstream: &envelope.Upstream{Vendor: vendor, HTTPStatus: status}}
}

// ErrRedirect: the vendor's address answered with a redirect. Vendor clients
// never follow one: a signed request (a charge above all) must never be sent
// again to another host, and a redirect means the configured base URL is
// not the vendor's API. Nothing was acted on where the request was sent.
// The hint naming the setting is the caller's: TransportError names the
// vendors' base URLs, a notification channel its own.
var ErrRedirect = errors.New("the address answered with a redirect, which is never followed")

// NoRedirects returns a copy of c (nil: a default client) whose requests
// fail with ErrRedirect instead of following a 3xx.
func NoRedirects(c *http.Client) *http.Client {
	if c == nil {
		c = &http.Client{}
	}
	cp := *c
	cp.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		status := 0
		if req.Response != nil {
			status = req.Response.StatusCode
		}
		// The host only: a redirect's path or query may carry anything.
		return fmt.Errorf("HTTP %d to %s: %w", status, req.URL.Host, ErrRedirect)
	}
	return &cp
}

// Waited maps how waiting for a token ended: a context that ended while
// another caller (in this process or another instance) refreshed the token
// is a timeout the caller may retry (-1301), not an internal error; an
// envelope error passes as it is.
func Waited(vendor string, err error) error {
	var e *envelope.Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &envelope.Error{Code: envelope.CodeUpstreamTimeout, Err: err,
			Reason: "the call's deadline passed while another caller refreshed the " + vendor + " token; nothing was spent: retry"}
	}
	return err
}

// Throttled is a vendor's HTTP 429: -1201 with the wait it asked for
// (Retry-After in seconds, else 1), so callers back off instead of reading
// it as a refusal or an unreadable answer. No vendor here documents 429;
// the CK1 note says to expect it (vendor note §3.3).
func Throttled(vendor string, h http.Header) *envelope.Error {
	return ThrottledFor(vendor, RetryAfter(h))
}

// ThrottledFor is Throttled with the wait in seconds (at least 1): what is
// left of one, for a caller answered from an earlier 429.
func ThrottledFor(vendor string, wait int) *envelope.Error {
	wait = max(1, wait)
	return &envelope.Error{Code: envelope.CodeThrottled, RetryAfter: wait,
		Reason:   fmt.Sprintf("%s answered HTTP 429 (too many requests): wait %ds and retry", vendor, wait),
		Upstream: &envelope.Upstream{Vendor: vendor, HTTPStatus: http.StatusTooManyRequests}}
}

// RetryAfter is the Retry-After header in seconds (RFC 9110: digits only),
// capped at an hour, a number too large for an int included; 0 when there
// is none, or it is an HTTP date (no vendor here sends one).
func RetryAfter(h http.Header) int {
	v := h.Get("Retry-After")
	if v == "" || strings.Trim(v, "0123456789") != "" {
		return 0 // "+3", "-5", "1.5", a date
	}
	s, err := strconv.Atoi(v)
	if err != nil {
		return 3600 // digits past an int: longer than the cap
	}
	return min(s, 3600)
}

// Unavailable is a vendor's HTTP 5xx: -1302. A Retry-After (RFC 9110
// §10.2.3: how long a 503 expects to last) is kept as RetryAfter: a retry
// waits at least that long (Wait), and a caller whose deadline leaves no
// room hears when to come back, not an immediate retry into the outage.
func Unavailable(vendor string, status int, h http.Header) *envelope.Error {
	return &envelope.Error{Code: envelope.CodeUpstreamUnreachable, Reason: fmt.Sprintf("%s answered HTTP %d", vendor, status),
		RetryAfter: RetryAfter(h), Upstream: &envelope.Upstream{Vendor: vendor, HTTPStatus: status}}
}

// Wait is the pause before retrying err: backoff, or the vendor's
// Retry-After when it asks for longer.
func Wait(err error, backoff time.Duration) time.Duration {
	var e *envelope.Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return max(backoff, time.Duration(e.RetryAfter)*time.Second)
	}
	return backoff
}

// Sent traces whether a request made with the returned context was written
// to the connection: after a transport error, a write that left may have
// been acted on (a charge, a single-use token's exchange), and one that
// never left was not.
func Sent(ctx context.Context) (context.Context, func() bool) {
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) }}
	return httptrace.WithClientTrace(ctx, trace), wrote.Load
}
