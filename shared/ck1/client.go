package ck1

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/upstream"
)

// Client calls CK1 OpenAPI reads.
type Client struct {
	base   string
	http   *http.Client
	tokens Tokens

	// urls holds each path's parsed URL (path → *url.URL), built on first
	// use instead of parsed per call.
	urls sync.Map
	// auth is the last token's Authorization header value, so the header
	// is built once per token, not once per call.
	auth atomic.Pointer[bearer]
}

type bearer struct{ token, header string }

// NewClient builds a client.
func NewClient(base string, hc *http.Client, t Tokens) *Client {
	return &Client{base: strings.TrimRight(base, "/"), http: upstream.NoRedirects(hc), tokens: t}
}

// ErrorBody is CK1's error answer, kept verbatim.
type ErrorBody struct {
	Errors []struct {
		Code    string `json:"Code"`
		Message string `json:"Message"`
	} `json:"Errors"`
	TicketID    string `json:"TicketId"`
	DateTime    string `json:"DateTime"`
	UtcDateTime string `json:"UtcDateTime"`
	RequestURI  string `json:"RequestUri"`
}

const maxRetries = 2

// Post sends a JSON read. 401 refreshes the token once; 5xx and connection
// failures are retried with backoff inside the deadline.
func (c *Client) Post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("ck1: encode %s: %w", path, err)
	}
	refreshed := false
	_, fixed := c.tokens.(Fixed) // nothing to refresh: its 401 is final
	for attempt := 0; ; attempt++ {
		tok, err := c.tokens.Token(ctx)
		if err != nil {
			return err
		}
		sent := time.Now()
		status, hdr, b, err := c.send(ctx, path, tok, body)
		retry := (err != nil && !errors.Is(err, upstream.ErrRedirect)) || status >= 500 // a redirect is configuration, not a blip
		switch {
		case retry && attempt < maxRetries:
			wait := upstream.Backoff(attempt, 150*time.Millisecond, 2*time.Second)
			if status >= 500 {
				wait = max(wait, time.Duration(upstream.RetryAfter(hdr))*time.Second)
			}
			if upstream.Sleep(ctx, wait, upstream.Margin(sent, 300*time.Millisecond)) == nil {
				continue
			}
		case status == http.StatusUnauthorized && !fixed && (!refreshed || fromRestored(c.tokens, tok)):
			// Once; and once more when the token retried was taken up from
			// a pair written back after a store loss (possibly stale): its
			// refusal is no sign of wrong settings, and the refresh that
			// follows settles it (it answered -1305 "check the OAuth
			// settings").
			refreshed = true
			c.tokens.Invalidate(ctx, tok)
			continue
		}
		if err != nil {
			return upstream.TransportError("ck1", err)
		}
		if status == http.StatusTooManyRequests {
			return upstream.Throttled("ck1", hdr)
		}
		if status != http.StatusOK && status != http.StatusCreated {
			e := errorFrom(status, b, fixed)
			if status >= 500 {
				e.RetryAfter = upstream.RetryAfter(hdr)
			}
			return e
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber() // amounts keep their exact digits
		if err := dec.Decode(out); err != nil {
			return upstream.Malformed("ck1", status, err)
		}
		return nil
	}
}

// fromRestored says tok came from a pair an instance wrote back (OAuth).
func fromRestored(t Tokens, tok string) bool {
	r, ok := t.(interface{ Restored(string) bool })
	return ok && r.Restored(tok)
}

func (c *Client) send(ctx context.Context, path, tok string, body []byte) (int, http.Header, []byte, error) {
	u, err := c.url(path)
	if err != nil {
		return 0, nil, nil, err
	}
	// The URL comes from the parsed template; parsing "" costs nothing.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "", bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.URL, req.Host = u, u.Host
	req.Header["Authorization"] = []string{c.bearer(tok)}
	req.Header["Content-Type"] = []string{"application/json; charset=utf-8"}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, b, nil
}

// errorFrom maps a CK1 error answer onto the envelope, keeping the body.
func errorFrom(status int, b []byte, fixed bool) *envelope.Error {
	var eb ErrorBody
	up := &envelope.Upstream{Vendor: "ck1", HTTPStatus: status}
	if json.Unmarshal(b, &eb) == nil && (len(eb.Errors) > 0 || eb.TicketID != "") {
		if len(eb.Errors) > 0 {
			up.Code, up.Message = eb.Errors[0].Code, eb.Errors[0].Message
		}
		up.RequestID = eb.TicketID
		var extra map[string]any
		_ = json.Unmarshal(b, &extra)
		up.Extra = extra
	} else {
		up.Message = upstream.Page(b) // a proxy's or firewall's page, up to 8 MiB, reached callers whole
	}
	reason := fmt.Sprintf("CK1 answered HTTP %d", status)
	if up.Code != "" {
		reason = fmt.Sprintf("%s: %s", up.Code, up.Message)
	}
	e := &envelope.Error{Code: envelope.CodeUpstream, Reason: reason, Upstream: up}
	switch {
	case status == http.StatusUnauthorized && fixed:
		e.Reason += " (CK1 refused the fixed token in CK1_ACCESS_TOKEN: check it, or unset it to use OAuth)"
	case status == http.StatusUnauthorized:
		e.Reason += " (CK1 refused the access token even after a refresh: check CK1_ACCESS_TOKEN or the OAuth settings)"
	}
	if status >= 500 {
		e.Code = envelope.CodeUpstreamUnreachable
	}
	return e
}

// IsUnauthorized reports a 401 from CK1.
func IsUnauthorized(err error) bool {
	var e *envelope.Error
	return errors.As(err, &e) && e.Upstream != nil && e.Upstream.HTTPStatus == http.StatusUnauthorized
}

// url is a copy of path's parsed URL.
func (c *Client) url(path string) (*url.URL, error) {
	t, ok := c.urls.Load(path)
	if !ok {
		parsed, err := url.Parse(c.base + path)
		if err != nil {
			return nil, err
		}
		t, _ = c.urls.LoadOrStore(path, parsed)
	}
	u := *t.(*url.URL)
	return &u, nil
}

// bearer is "Bearer <tok>", built once per token.
func (c *Client) bearer(tok string) string {
	if b := c.auth.Load(); b != nil && b.token == tok {
		return b.header
	}
	h := "Bearer " + tok
	c.auth.Store(&bearer{token: tok, header: h})
	return h
}
