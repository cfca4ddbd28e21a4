package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/upstream"
)

// maxTransportRetries bounds retries of a read after a connection failure
// or a 5xx.
const maxTransportRetries = 2

// Client calls token-bearing WeChat APIs.
type Client struct {
	tokens *TokenManager
	base   string
	http   *http.Client

	// urls holds each path's URL without the token, parsed once (path →
	// *url.URL); calls copy it and add the token's query.
	urls sync.Map
	// tokQuery is the last token with its escaped query, so a token is
	// escaped once per lifetime, not once per call.
	tokQuery atomic.Pointer[tokenQuery]
}

type tokenQuery struct{ token, query string }

// NewClient builds a client on a token manager.
func NewClient(tm *TokenManager) *Client {
	return &Client{tokens: tm, base: tm.o.Base, http: tm.o.HTTP}
}

// Tokens exposes the token manager (the quota poller shares it).
func (c *Client) Tokens() *TokenManager { return c.tokens }

// Warm is an operation's warm-up (first) followed by the token's
// (TokenManager.Warm). In that order, the fetch's dial and goroutines come
// after the runtime's first poll has gone out rather than competing with it.
func (c *Client) Warm(first func(context.Context)) func(context.Context) {
	return func(ctx context.Context) {
		first(ctx)
		c.tokens.Warm(ctx)
	}
}

// status is the errcode/errmsg every WeChat answer may carry. An answer type
// that embeds it is decoded once (see Call).
type status struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

func (s *status) wechatStatus() *status { return s }

// withStatus is an answer type that embeds status.
type withStatus interface{ wechatStatus() *status }

// Call sends one API call with the app's token and decodes the answer into
// out. It retries once on a stale token (after compare-and-expire), backs off
// on -1, and retries connection failures and 5xx: every method the bundle
// calls through it is a read.
func (c *Client) Call(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("wechat: encode %s: %w", path, err)
		}
	}
	stale, busy, transport := 0, 0, 0
	for {
		tok, fetched, err := c.tokens.token(ctx)
		if err != nil {
			return err
		}
		sent := time.Now()
		st, err := c.exchange(ctx, method, path, tok, body, out)
		if err != nil {
			var ee *envelope.Error
			if errors.As(err, &ee) && ee.Code == envelope.CodeUpstreamUnreachable && !errors.Is(err, upstream.ErrRedirect) && transport < maxTransportRetries &&
				upstream.Sleep(ctx, upstream.Wait(err, upstream.Backoff(transport, 100*time.Millisecond, time.Second)), upstream.Margin(sent, 200*time.Millisecond)) == nil {
				transport++
				continue
			}
			return err
		}
		if st.Errcode != 0 {
			ae := &APIError{Code: st.Errcode, Msg: st.Errmsg}
			switch {
			// Once; and once more when the retry's token was not fetched
			// but read (this instance's memory, then the store, may each
			// hold one WeChat refused, as after a store outage): a
			// freshly fetched token that is refused ends it, no loop.
			case ae.Stale() && (stale == 0 || stale == 1 && !fetched) &&
				upstream.Sleep(ctx, 0, upstream.Margin(sent, 200*time.Millisecond)) == nil:
				stale++
				c.tokens.Expire(ctx, tok)
				continue
			case ae.Code == -1 && busy < maxBusyRetries &&
				upstream.Sleep(ctx, upstream.Backoff(busy, 100*time.Millisecond, time.Second), upstream.Margin(sent, 200*time.Millisecond)) == nil:
				busy++
				continue
			}
			return ae
		}
		return nil
	}
}

// bufs holds answer buffers: an answer is read, decoded and dropped within
// one exchange, so its buffer is reused instead of allocated per call.
var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooled keeps an unusually large answer's buffer out of the pool.
const maxPooled = 64 << 10

// exchange sends one request and decodes the answer: its status, and out
// when the status is success (or in the same pass when out embeds status).
func (c *Client) exchange(ctx context.Context, method, path, tok string, body []byte, out any) (status, error) {
	buf := bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooled {
			bufs.Put(buf)
		}
	}()
	if err := c.send(ctx, method, path, tok, body, buf); err != nil {
		return status{}, err
	}
	b := buf.Bytes()
	st, err := decodeAnswer(b, out)
	if err != nil || st.Errcode != 0 {
		return st, err
	}
	if _, once := out.(withStatus); !once && out != nil {
		if err := jsonv2.Unmarshal(b, out, answerOptions); err != nil {
			return status{}, upstream.Malformed("wechat", http.StatusOK, err)
		}
	}
	return st, nil
}

// decodeAnswer reads the answer's status. When out embeds status the answer
// is decoded once, into out; if that fails (a field of an unexpected type)
// the status alone is read, so an error answer is still reported as the API
// error it is.
func decodeAnswer(b []byte, out any) (status, error) {
	if ws, ok := out.(withStatus); ok {
		st := ws.wechatStatus()
		*st = status{} // a retried call reuses out
		err := jsonv2.Unmarshal(b, out, answerOptions)
		if err == nil {
			return *st, nil
		}
		var only status
		if jsonv2.Unmarshal(b, &only, answerOptions) == nil && only.Errcode != 0 {
			return only, nil
		}
		return status{}, upstream.Malformed("wechat", http.StatusOK, err)
	}
	var st status
	if err := jsonv2.Unmarshal(b, &st, answerOptions); err != nil {
		return status{}, upstream.Malformed("wechat", http.StatusOK, err)
	}
	return st, nil
}

// answerOptions decode WeChat's answers in one typed pass (json v2, about
// a third of encoding/json's time and allocations on a warm call) while
// reading what encoding/json read: names matched without case, a repeated
// name's last value kept, invalid UTF-8 replaced rather than refused.
var answerOptions = jsonv2.JoinOptions(
	jsonv2.MatchCaseInsensitiveNames(true),
	jsontext.AllowDuplicateNames(true),
	jsontext.AllowInvalidUTF8(true),
)

func (c *Client) send(ctx context.Context, method, path, tok string, body []byte, into *bytes.Buffer) error {
	u, err := c.url(path, tok)
	if err != nil {
		return fmt.Errorf("wechat: build request for %s: %w", path, upstream.Clean(err))
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	// The URL is set from the template below; parsing "" costs nothing.
	req, err := http.NewRequestWithContext(ctx, method, "", rd)
	if err != nil {
		return fmt.Errorf("wechat: build request for %s: %w", path, upstream.Clean(err))
	}
	req.URL, req.Host = u, u.Host
	if body != nil {
		req.Header["Content-Type"] = contentTypeJSON
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return upstream.TransportError("wechat", err)
	}
	defer resp.Body.Close()
	lr := io.LimitedReader{R: resp.Body, N: 4 << 20}
	if _, err := into.ReadFrom(&lr); err != nil {
		return upstream.TransportError("wechat", err)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return upstream.Throttled("wechat", resp.Header)
	}
	if resp.StatusCode >= 500 {
		return upstream.Unavailable("wechat", resp.StatusCode, resp.Header)
	}
	if resp.StatusCode != http.StatusOK {
		return upstream.Malformed("wechat", resp.StatusCode, fmt.Errorf("unexpected HTTP status"))
	}
	return nil
}

var contentTypeJSON = []string{"application/json"}

// url is path's URL with the token: a copy of the path's parsed template with
// the token's query added.
func (c *Client) url(path, tok string) (*url.URL, error) {
	t, ok := c.urls.Load(path)
	if !ok {
		parsed, err := url.Parse(c.base + path)
		if err != nil {
			return nil, err
		}
		t, _ = c.urls.LoadOrStore(path, parsed)
	}
	u := *t.(*url.URL)
	q := c.tokenQuery(tok)
	if u.RawQuery == "" {
		u.RawQuery = q
	} else {
		u.RawQuery += "&" + q
	}
	return &u, nil
}

// tokenQuery is "access_token=<escaped token>", escaped once per token.
func (c *Client) tokenQuery(tok string) string {
	if p := c.tokQuery.Load(); p != nil && p.token == tok {
		return p.query
	}
	q := "access_token=" + url.QueryEscape(tok)
	c.tokQuery.Store(&tokenQuery{token: tok, query: q})
	return q
}
