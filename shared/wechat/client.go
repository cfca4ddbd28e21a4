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
	"strings"
	"time"

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
}

// NewClient builds a client on a token manager.
func NewClient(tm *TokenManager) *Client {
	return &Client{tokens: tm, base: tm.o.Base, http: tm.o.HTTP}
}

// Tokens exposes the token manager (the quota poller shares it).
func (c *Client) Tokens() *TokenManager { return c.tokens }

// status is the errcode/errmsg every WeChat answer may carry.
type status struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

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
	staleRetried := false
	busy, transport := 0, 0
	for {
		tok, err := c.tokens.Token(ctx)
		if err != nil {
			return err
		}
		b, err := c.send(ctx, method, path, tok, body)
		if err != nil {
			var ee *envelope.Error
			if errors.As(err, &ee) && ee.Code == envelope.CodeUpstreamUnreachable && !errors.Is(err, upstream.ErrRedirect) && transport < maxTransportRetries &&
				upstream.Sleep(ctx, upstream.Backoff(transport, 100*time.Millisecond, time.Second), 200*time.Millisecond) == nil {
				transport++
				continue
			}
			return err
		}
		var st status
		if err := json.Unmarshal(b, &st); err != nil {
			return upstream.Malformed("wechat", http.StatusOK, err)
		}
		if st.Errcode != 0 {
			ae := &APIError{Code: st.Errcode, Msg: st.Errmsg}
			switch {
			case ae.Stale() && !staleRetried:
				staleRetried = true
				c.tokens.Expire(ctx, tok)
				continue
			case ae.Code == -1 && busy < maxBusyRetries &&
				upstream.Sleep(ctx, upstream.Backoff(busy, 100*time.Millisecond, time.Second), 200*time.Millisecond) == nil:
				busy++
				continue
			}
			return ae
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				return upstream.Malformed("wechat", http.StatusOK, err)
			}
		}
		return nil
	}
}

func (c *Client) send(ctx context.Context, method, path, tok string, body []byte) ([]byte, error) {
	u := c.base + path
	if strings.Contains(path, "?") {
		u += "&access_token=" + url.QueryEscape(tok)
	} else {
		u += "?access_token=" + url.QueryEscape(tok)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("wechat: build request for %s: %w", path, upstream.Clean(err))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, upstream.TransportError("wechat", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, upstream.TransportError("wechat", err)
	}
	if resp.StatusCode >= 500 {
		return nil, &envelope.Error{Code: envelope.CodeUpstreamUnreachable, Reason: fmt.Sprintf("wechat answered HTTP %d", resp.StatusCode),
			Upstream: &envelope.Upstream{Vendor: "wechat", HTTPStatus: resp.StatusCode}}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, upstream.Malformed("wechat", resp.StatusCode, fmt.Errorf("unexpected HTTP status"))
	}
	return b, nil
}
