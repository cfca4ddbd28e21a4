// Package notify sends alert messages to team chat: DingTalk and Feishu/Lark
// group robots (with their signing secrets), WeCom group robots, Slack
// incoming webhooks, and a generic JSON webhook signed with HMAC-SHA256.
// Every channel's address comes from configuration, never from a request.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cloudcall/cloudcall/shared/upstream"
)

// Message is one alert, already written in the configured language(s).
type Message struct {
	Title string
	Text  string         // plain text; the markdown channels neutralise its markup
	Data  map[string]any // structured fields for the generic webhook
}

// plainMarkdown keeps plain text plain in the robots' markdown: an account
// name or a vendor's error is not markup. The characters that make links,
// HTML (WeCom's <font>), code, emphasis and headings become their full-width
// forms, which read the same in a chat; neither robot documents a
// backslash escape.
var plainMarkdown = strings.NewReplacer("[", "［", "]", "］", "<", "＜", ">", "＞", "`", "｀", "*", "＊", "#", "＃")

// Channel delivers messages.
type Channel interface {
	Name() string
	Send(ctx context.Context, m Message) error
}

// Options shared by the channels.
type Options struct {
	HTTP *http.Client
	Now  func() time.Time
	// Attempts bounds delivery tries per message (default 3).
	Attempts int
	// Pause is the first backoff between tries (default 200ms), doubling up
	// to 2s; a try that would not fit before the deadline is not started.
	Pause time.Duration
	// AttemptTimeout bounds one try (default 10s): a robot that hangs is
	// tried again, not waited on until the run's deadline.
	AttemptTimeout time.Duration
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// post sends body and checks the answer with ok; 5xx, timeouts and
// connection failures are retried a bounded number of times. Its errors say
// which channel, the HTTP status and the channel's numeric code, never a
// response body or a URL: robots answer with their webhook path or key
// echoed, and those are the credential (the errors reach responses).
func post(ctx context.Context, o Options, name, u string, headers map[string]string, body []byte, ok func(status int, b []byte) error) error {
	attempts := o.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	pause := o.Pause
	if pause <= 0 {
		pause = 200 * time.Millisecond
	}
	var last error
	tries := 0
	for i := 0; i < attempts; i++ {
		if i > 0 {
			if err := upstream.Sleep(ctx, upstream.Backoff(i-1, pause, 2*time.Second), 100*time.Millisecond); err != nil {
				break
			}
		}
		tries++
		status, b, err := o.try(ctx, u, headers, body)
		if errors.Is(err, errBadURL) {
			// The parse error quotes the URL, which holds the credential.
			return fmt.Errorf("%s: the configured URL is not a valid http(s) URL", name)
		}
		if errors.Is(err, upstream.ErrRedirect) {
			return fmt.Errorf("%s: %w; set the channel's URL (QUOTA_ALERT_%s_URL) to the address it redirects to (https)", name, upstream.Clean(err), strings.ToUpper(name)) // a refusal: not retried
		}
		if err != nil {
			last = fmt.Errorf("%s: %w", name, upstream.Clean(err))
			continue
		}
		if status >= 500 {
			last = fmt.Errorf("%s: HTTP %d", name, status)
			continue
		}
		if err := ok(status, b); err != nil {
			return fmt.Errorf("%s: %w", name, err) // a refusal, not a transient failure
		}
		return nil
	}
	return fmt.Errorf("%w (after %d attempts)", last, tries)
}

var errBadURL = errors.New("bad URL")

// try makes one attempt under its own timeout and reads the answer.
func (o Options) try(ctx context.Context, u string, headers map[string]string, body []byte) (int, []byte, error) {
	limit := o.AttemptTimeout
	if limit <= 0 {
		limit = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, errBadURL
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	// Not followed: a 301 from an http:// URL turns the POST into a GET
	// without a body, and the landing page's 200 passed for a delivery.
	resp, err := upstream.NoRedirects(o.HTTP).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// errcodeOK accepts {"errcode":0} (DingTalk, WeCom). Only the number is
// kept: errmsg may quote the robot's key.
func errcodeOK(status int, b []byte) error {
	var r struct {
		Errcode int `json:"errcode"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &r) != nil {
		return fmt.Errorf("HTTP %d: unexpected answer", status)
	}
	if r.Errcode != 0 {
		return fmt.Errorf("errcode %d (see the robot's error code list)", r.Errcode)
	}
	return nil
}

// DingTalk is a DingTalk group robot. With a secret, each request carries
// timestamp (ms) and sign = base64(HMAC-SHA256(key=secret,
// msg=timestamp+"\n"+secret)), URL-encoded, in the query.
type DingTalk struct {
	URL, Secret string
	Opts        Options
}

func (d DingTalk) Name() string { return "dingtalk" }

// DingTalkSign computes the robot signature.
func DingTalkSign(timestampMS int64, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(timestampMS, 10) + "\n" + secret))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (d DingTalk) Send(ctx context.Context, msg Message) error {
	u := d.URL
	if d.Secret != "" {
		ts := d.Opts.now().UnixMilli()
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "timestamp=" + strconv.FormatInt(ts, 10) + "&sign=" + url.QueryEscape(DingTalkSign(ts, d.Secret))
	}
	title, text := plainMarkdown.Replace(msg.Title), plainMarkdown.Replace(msg.Text)
	body := marshal(map[string]any{"msgtype": "markdown", "markdown": map[string]string{"title": title, "text": "### " + title + "\n\n" + strings.ReplaceAll(text, "\n", "\n\n")}})
	return post(ctx, d.Opts, d.Name(), u, nil, body, errcodeOK)
}

// WeCom is a WeCom (企业微信) group robot; the key in its URL is the credential.
type WeCom struct {
	URL  string
	Opts Options
}

func (w WeCom) Name() string { return "wecom" }

func (w WeCom) Send(ctx context.Context, msg Message) error {
	body := marshal(map[string]any{"msgtype": "markdown", "markdown": map[string]string{"content": "**" + plainMarkdown.Replace(msg.Title) + "**\n" + plainMarkdown.Replace(msg.Text)}})
	return post(ctx, w.Opts, w.Name(), w.URL, nil, body, errcodeOK)
}

// Feishu is a Feishu/Lark custom bot. With a secret, the body carries
// timestamp (s) and sign = base64(HMAC-SHA256(key=timestamp+"\n"+secret,
// msg="")).
type Feishu struct {
	URL, Secret string
	Opts        Options
}

func (f Feishu) Name() string { return "feishu" }

// FeishuSign computes the bot signature.
func FeishuSign(timestamp int64, secret string) string {
	m := hmac.New(sha256.New, []byte(strconv.FormatInt(timestamp, 10)+"\n"+secret))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (f Feishu) Send(ctx context.Context, msg Message) error {
	// Feishu's text reads <at user_id="all"> as a mention of everyone: a
	// name or an error must not be able to write one.
	at := strings.NewReplacer("<", "＜", ">", "＞")
	payload := map[string]any{"msg_type": "text", "content": map[string]string{"text": at.Replace(msg.Title + "\n" + msg.Text)}}
	if f.Secret != "" {
		ts := f.Opts.now().Unix()
		payload["timestamp"] = strconv.FormatInt(ts, 10)
		payload["sign"] = FeishuSign(ts, f.Secret)
	}
	return post(ctx, f.Opts, f.Name(), f.URL, nil, marshal(payload), func(status int, b []byte) error {
		var r struct {
			Code int `json:"code"`
		}
		if status != http.StatusOK || json.Unmarshal(b, &r) != nil {
			return fmt.Errorf("HTTP %d: unexpected answer", status)
		}
		if r.Code != 0 {
			return fmt.Errorf("code %d (see the bot's error code list)", r.Code)
		}
		return nil
	})
}

// Slack is a Slack incoming webhook; its URL is the credential.
type Slack struct {
	URL  string
	Opts Options
}

func (s Slack) Name() string { return "slack" }

func (s Slack) Send(ctx context.Context, msg Message) error {
	// Slack reads &, < and > as control characters in message text.
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	body := marshal(map[string]string{"text": "*" + esc.Replace(msg.Title) + "*\n" + esc.Replace(msg.Text)})
	return post(ctx, s.Opts, s.Name(), s.URL, nil, body, func(status int, b []byte) error {
		if status != http.StatusOK {
			return fmt.Errorf("HTTP %d", status) // Slack's text answer may echo the webhook path
		}
		return nil
	})
}

// Webhook posts {title, text, ...data} as JSON. With a secret it adds
// X-Cloudcall-Timestamp (unix seconds) and X-Cloudcall-Signature =
// hex(HMAC-SHA256(secret, timestamp + "." + body)).
type Webhook struct {
	URL, Secret string
	Opts        Options
}

func (w Webhook) Name() string { return "webhook" }

// WebhookSign computes the generic webhook's signature.
func WebhookSign(secret string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(timestamp, 10) + "."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func (w Webhook) Send(ctx context.Context, msg Message) error {
	payload := map[string]any{"title": msg.Title, "text": msg.Text}
	for k, v := range msg.Data {
		payload[k] = v
	}
	body := marshal(payload)
	headers := map[string]string{}
	if w.Secret != "" {
		ts := w.Opts.now().Unix()
		headers["X-Cloudcall-Timestamp"] = strconv.FormatInt(ts, 10)
		headers["X-Cloudcall-Signature"] = WebhookSign(w.Secret, ts, body)
	}
	return post(ctx, w.Opts, w.Name(), w.URL, headers, body, func(status int, b []byte) error {
		if status < 200 || status >= 300 {
			return fmt.Errorf("HTTP %d", status)
		}
		return nil
	})
}
