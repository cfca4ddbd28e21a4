// Package notifysbx is the notification sandbox: the group-robot webhooks
// quota-alert posts to (DingTalk, Feishu/Lark, WeCom, Slack) and the signed
// generic webhook. Each endpoint checks its credential and signature the way
// the channel documents it, answers in the channel's own shape, and keeps
// every message that arrived for GET /__sandbox/notify/messages.
//
// Signatures (checked here independently of shared/notify):
//   - DingTalk custom robot, "加签": query timestamp (ms) and sign =
//     urlencode(base64(HMAC-SHA256(key=secret, timestamp+"\n"+secret))), the
//     timestamp within an hour of now; errcode 310000 otherwise.
//   - Feishu custom bot, "签名校验": body timestamp (s) and sign =
//     base64(HMAC-SHA256(key=timestamp+"\n"+secret, empty message)), within
//     an hour; code 19021 otherwise.
//   - WeCom group robot and Slack incoming webhook: the key in the URL is
//     the credential (WeCom errcode 93000, Slack 404 no_service).
//   - Generic webhook: X-Cloudcall-Timestamp (s) and X-Cloudcall-Signature =
//     hex(HMAC-SHA256(secret, timestamp+"."+body)), within 5 minutes; 401.
package notifysbx

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cloudcall/cloudcall/shared/sandbox"
)

// Demo credentials the sandbox accepts (and Env hands the functions).
const (
	DingTalkToken  = "sandbox-dingtalk-token"
	DingTalkSecret = "SECsandbox-dingtalk-secret"
	WeComKey       = "sandbox-wecom-key"
	FeishuToken    = "sandbox-feishu-token"
	FeishuSecret   = "sandbox-feishu-secret"
	SlackPath      = "/services/T0SANDBOX/B0SANDBOX/sandboxslacksecret"
	WebhookSecret  = "sandbox-webhook-secret"
)

// Message is one request that arrived.
type Message struct {
	Channel  string          `json:"channel"`
	At       time.Time       `json:"at"`
	Accepted bool            `json:"accepted"`
	Reason   string          `json:"reason,omitempty"` // why it was refused
	Body     json.RawMessage `json:"body,omitempty"`   // the JSON body as sent
	Raw      string          `json:"raw,omitempty"`    // a body that is not JSON
}

// Options configures New.
type Options struct {
	// MaxMessages bounds what is kept (default 1000; oldest dropped first).
	MaxMessages int
}

// Sandbox is the notification sandbox.
type Sandbox struct {
	*sandbox.Sandbox
	max int

	mu   sync.Mutex
	msgs []Message
}

// New returns a sandbox with no messages.
func New(opts Options) *Sandbox {
	if opts.MaxMessages <= 0 {
		opts.MaxMessages = 1000
	}
	return &Sandbox{Sandbox: sandbox.New("notify"), max: opts.MaxMessages}
}

// Env points quota-alert's channels at the sandbox at baseURL.
func (s *Sandbox) Env(baseURL string) map[string]string {
	return map[string]string{
		"QUOTA_ALERT_DINGTALK_URL":    baseURL + "/robot/send?access_token=" + DingTalkToken,
		"QUOTA_ALERT_DINGTALK_SECRET": DingTalkSecret,
		"QUOTA_ALERT_WECOM_URL":       baseURL + "/cgi-bin/webhook/send?key=" + WeComKey,
		"QUOTA_ALERT_FEISHU_URL":      baseURL + "/open-apis/bot/v2/hook/" + FeishuToken,
		"QUOTA_ALERT_FEISHU_SECRET":   FeishuSecret,
		"QUOTA_ALERT_SLACK_URL":       baseURL + SlackPath,
		"QUOTA_ALERT_WEBHOOK_URL":     baseURL + "/webhook",
		"QUOTA_ALERT_WEBHOOK_SECRET":  WebhookSecret,
	}
}

// Admin is where the messages are listed.
func (s *Sandbox) Admin() string { return "/__sandbox/notify/messages" }

// Messages returns what arrived, oldest first.
func (s *Sandbox) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

func (s *Sandbox) keep(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	if over := len(s.msgs) - s.max; over > 0 {
		s.msgs = append([]Message(nil), s.msgs[over:]...)
	}
}

// Handler serves the channels and the admin endpoints.
func (s *Sandbox) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /robot/send", s.dingtalk)
	mux.HandleFunc("POST /cgi-bin/webhook/send", s.wecom)
	mux.HandleFunc("POST /open-apis/bot/v2/hook/{token}", s.feishu)
	mux.HandleFunc("POST /services/{a}/{b}/{c}", s.slack)
	mux.HandleFunc("POST /webhook", s.webhook)
	mux.HandleFunc("GET /__sandbox/notify/messages", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"messages": s.Messages()})
	})
	mux.HandleFunc("POST /__sandbox/notify/reset", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.msgs = nil
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	return s.Wrap(mux)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// read reads the body (1 MiB at most) and records the message.
func (s *Sandbox) record(channel string, body []byte, reason string) {
	m := Message{Channel: channel, At: s.Clock.Now().UTC(), Accepted: reason == "", Reason: reason}
	if json.Valid(body) {
		m.Body = json.RawMessage(append([]byte(nil), body...))
	} else {
		m.Raw = string(body)
	}
	s.keep(m)
}

func readBody(r *http.Request) []byte {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	return b
}

func within(now time.Time, ts time.Time, d time.Duration) bool {
	diff := now.Sub(ts)
	return diff <= d && diff >= -d
}

func (s *Sandbox) dingtalk(w http.ResponseWriter, r *http.Request) {
	body := readBody(r)
	q := r.URL.Query()
	refuse := func(code int, msg string) {
		s.record("dingtalk", body, msg)
		writeJSON(w, http.StatusOK, map[string]any{"errcode": code, "errmsg": msg})
	}
	if q.Get("access_token") != DingTalkToken {
		refuse(300001, "token is not exist")
		return
	}
	ms, err := strconv.ParseInt(q.Get("timestamp"), 10, 64)
	if err != nil || !within(s.Clock.Now(), time.UnixMilli(ms), time.Hour) {
		refuse(310000, "sign not match, more: [timestamp is missing or more than an hour from now]")
		return
	}
	mac := hmac.New(sha256.New, []byte(DingTalkSecret))
	mac.Write([]byte(q.Get("timestamp") + "\n" + DingTalkSecret))
	if !hmac.Equal([]byte(q.Get("sign")), []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))) {
		refuse(310000, "sign not match")
		return
	}
	var m struct {
		Msgtype string `json:"msgtype"`
	}
	if json.Unmarshal(body, &m) != nil || m.Msgtype == "" {
		refuse(40035, "缺少参数 json")
		return
	}
	s.record("dingtalk", body, "")
	writeJSON(w, http.StatusOK, map[string]any{"errcode": 0, "errmsg": "ok"})
}

func (s *Sandbox) wecom(w http.ResponseWriter, r *http.Request) {
	body := readBody(r)
	refuse := func(code int, msg string) {
		s.record("wecom", body, msg)
		writeJSON(w, http.StatusOK, map[string]any{"errcode": code, "errmsg": msg})
	}
	if r.URL.Query().Get("key") != WeComKey {
		refuse(93000, "invalid webhook url")
		return
	}
	var m struct {
		Msgtype string `json:"msgtype"`
	}
	if json.Unmarshal(body, &m) != nil || m.Msgtype == "" {
		refuse(40008, "invalid message type")
		return
	}
	s.record("wecom", body, "")
	writeJSON(w, http.StatusOK, map[string]any{"errcode": 0, "errmsg": "ok"})
}

func (s *Sandbox) feishu(w http.ResponseWriter, r *http.Request) {
	body := readBody(r)
	refuse := func(code int, msg string) {
		s.record("feishu", body, msg)
		writeJSON(w, http.StatusOK, map[string]any{"code": code, "msg": msg, "data": map[string]any{}})
	}
	if r.PathValue("token") != FeishuToken {
		refuse(19001, "param invalid: incoming webhook access token invalid")
		return
	}
	var m struct {
		MsgType   string `json:"msg_type"`
		Timestamp string `json:"timestamp"`
		Sign      string `json:"sign"`
	}
	if json.Unmarshal(body, &m) != nil {
		refuse(9499, "Bad Request")
		return
	}
	sec, err := strconv.ParseInt(m.Timestamp, 10, 64)
	if err != nil || !within(s.Clock.Now(), time.Unix(sec, 0), time.Hour) {
		refuse(19021, "sign match fail or timestamp is not within one hour from current time")
		return
	}
	mac := hmac.New(sha256.New, []byte(m.Timestamp+"\n"+FeishuSecret))
	if !hmac.Equal([]byte(m.Sign), []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))) {
		refuse(19021, "sign match fail or timestamp is not within one hour from current time")
		return
	}
	if m.MsgType == "" {
		refuse(19002, "params error, msg_type need")
		return
	}
	s.record("feishu", body, "")
	writeJSON(w, http.StatusOK, map[string]any{"code": 0, "msg": "success", "data": map[string]any{}})
}

func (s *Sandbox) slack(w http.ResponseWriter, r *http.Request) {
	body := readBody(r)
	refuse := func(status int, msg string) {
		s.record("slack", body, msg)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, msg)
	}
	if r.URL.Path != SlackPath {
		refuse(http.StatusNotFound, "no_service")
		return
	}
	var m struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(body, &m) != nil {
		refuse(http.StatusBadRequest, "invalid_payload")
		return
	}
	if m.Text == "" {
		refuse(http.StatusBadRequest, "no_text")
		return
	}
	s.record("slack", body, "")
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "ok")
}

func (s *Sandbox) webhook(w http.ResponseWriter, r *http.Request) {
	body := readBody(r)
	refuse := func(msg string) {
		s.record("webhook", body, msg)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": msg})
	}
	ts := r.Header.Get("X-Cloudcall-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || !within(s.Clock.Now(), time.Unix(sec, 0), 5*time.Minute) {
		refuse("X-Cloudcall-Timestamp missing or more than 5 minutes from now")
		return
	}
	mac := hmac.New(sha256.New, []byte(WebhookSecret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	if !hmac.Equal([]byte(r.Header.Get("X-Cloudcall-Signature")), []byte(hex.EncodeToString(mac.Sum(nil)))) {
		refuse("X-Cloudcall-Signature does not match")
		return
	}
	if !json.Valid(body) {
		refuse("body is not JSON")
		return
	}
	s.record("webhook", body, "")
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
