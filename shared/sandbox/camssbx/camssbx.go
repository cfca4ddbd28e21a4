// Package camssbx is a sandbox of Alibaba Cloud CAMS QueryChatappBindWaba
// that verifies signature V3 independently, the way the POP gateway does:
// unknown keys, altered query, headers or body, stale x-acs-date and reused
// nonces are refused with the gateway's codes; STS tokens it issued are
// accepted; 10 requests per second per AccessKey, then System.LimitControl.
package camssbx

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cloudcall/cloudcall/shared/sandbox"
)

// Demo credentials.
const (
	DemoAccessKeyID     = "LTAI5tDemoAccessKey0001"
	DemoAccessKeySecret = "demo-access-key-secret-for-the-sandbox"
	DemoSTSKeyID        = "STS.NUDemoStsAccessKey0001"
	DemoSTSKeySecret    = "demo-sts-access-key-secret"
	DemoSTSToken        = "CAIS-demo-security-token-issued-by-the-sandbox"
)

// CustSpaceIds that make the sandbox answer with a documented error.
const (
	SpaceUnsubscribed = "unsubscribed"  // Product.Unsubscript
	SpaceNoPermission = "no-permission" // Ram.PermissionDeny
	SpaceLimited      = "limit-control" // System.LimitControl
	SpaceNotOwner     = "not-owner"     // Unknown.ResourceOwnerId
)

// QPS is CAMS's documented per-user limit.
const QPS = 10

type key struct {
	secret, token string
}

// Server is the CAMS sandbox.
type Server struct {
	*sandbox.Sandbox

	mu       sync.Mutex
	keys     map[string]key
	nonces   map[string]time.Time
	arrivals map[string][]time.Time // per AccessKey, every signed request
	maxSeen  map[string]int
}

// Options seeds the sandbox; the zero value has the demo keys.
type Options struct {
	// AccessKeySecret replaces the demo AccessKey's secret when set.
	AccessKeySecret string
}

// New builds the sandbox with the demo AccessKey and STS credentials.
func New(opts Options) *Server {
	if opts.AccessKeySecret == "" {
		opts.AccessKeySecret = DemoAccessKeySecret
	}
	return &Server{Sandbox: sandbox.New("cams"),
		keys: map[string]key{
			DemoAccessKeyID: {secret: opts.AccessKeySecret},
			DemoSTSKeyID:    {secret: DemoSTSKeySecret, token: DemoSTSToken},
		},
		nonces: map[string]time.Time{}, arrivals: map[string][]time.Time{}, maxSeen: map[string]int{}}
}

// Env points a function at the sandbox with the demo AccessKey.
func (s *Server) Env(baseURL string) map[string]string {
	return map[string]string{"CAMS_API_BASE": baseURL, "ALIBABA_CLOUD_ACCESS_KEY_ID": DemoAccessKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": s.keys[DemoAccessKeyID].secret}
}

// MaxPerSecond is the most requests the AccessKey made in any one-second
// window so far.
func (s *Server) MaxPerSecond(ak string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxSeen[ak]
}

// Handler serves the API behind fault injection and the admin endpoints.
//
//	GET /__sandbox/cams/window   per AccessKey: requests in the last second and the most in any second
func (s *Server) Handler() http.Handler {
	outer := http.NewServeMux()
	outer.HandleFunc("GET /__sandbox/cams/window", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"qps": QPS, "keys": s.Window()})
	})
	outer.Handle("/", s.Wrap(http.HandlerFunc(s.serve)))
	return sandbox.GuardAdmin(outer) // its own admin endpoints too
}

// KeyWindow is one AccessKey's flow-control window.
type KeyWindow struct {
	AccessKeyID  string `json:"accessKeyId"`
	LastSecond   int    `json:"lastSecond"`
	MaxPerSecond int    `json:"maxPerSecond"`
}

// Window lists every AccessKey's requests in the last second.
func (s *Server) Window() []KeyWindow {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []KeyWindow{}
	for ak, log := range s.arrivals {
		n := 0
		for _, at := range log {
			if time.Since(at) < time.Second {
				n++
			}
		}
		out = append(out, KeyWindow{AccessKeyID: ak, LastSecond: n, MaxPerSecond: s.maxSeen[ak]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AccessKeyID < out[j].AccessKeyID })
	return out
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := strings.ToUpper(hex.EncodeToString(b))
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	s.Count("error:" + code)
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"RequestId": requestID(), "HostId": r.Host, "Code": code, "Message": msg,
		"Recommend": "https://api.aliyun.com/troubleshoot?q=" + code + "&product=cams",
	})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		s.fail(w, r, http.StatusNotFound, "InvalidApi.NotFound", "Specified api is not found, please check your url and method.")
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "ACS3-HMAC-SHA256 ")
	if !ok {
		s.fail(w, r, http.StatusBadRequest, "IncompleteSignature", "The request signature does not conform to Aliyun standards (ACS3-HMAC-SHA256 expected).")
		return
	}
	parts := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		parts[k] = v
	}
	ak, signedList, sig := parts["Credential"], parts["SignedHeaders"], parts["Signature"]
	for _, h := range []string{"x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"} {
		if r.Header.Get(h) == "" {
			s.fail(w, r, http.StatusBadRequest, "MissingParameter", "The required header "+h+" is missing.")
			return
		}
	}
	s.mu.Lock()
	k, known := s.keys[ak]
	s.mu.Unlock()
	if !known {
		s.fail(w, r, http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
		return
	}
	now := s.Clock.Now()
	date, err := time.Parse("2006-01-02T15:04:05Z", r.Header.Get("x-acs-date"))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.")
		return
	}
	if d := now.Sub(date); d > 15*time.Minute || d < -15*time.Minute {
		s.fail(w, r, http.StatusBadRequest, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired (more than 15 minutes off).")
		return
	}
	// Every header the gateway requires signed must be in SignedHeaders.
	signed := map[string]bool{}
	for _, h := range strings.Split(signedList, ";") {
		signed[h] = true
	}
	for h := range r.Header {
		lh := strings.ToLower(h)
		if (strings.HasPrefix(lh, "x-acs-") || lh == "content-type") && !signed[lh] {
			s.fail(w, r, http.StatusBadRequest, "SignatureDoesNotMatch", "Header "+lh+" must be signed.")
			return
		}
	}
	if hex.EncodeToString(sum(body)) != r.Header.Get("x-acs-content-sha256") {
		s.fail(w, r, http.StatusBadRequest, "SignatureDoesNotMatch", "x-acs-content-sha256 does not match the body.")
		return
	}
	if want := expected(r, signedList, k.secret); !hmac.Equal([]byte(want), []byte(sig)) {
		s.fail(w, r, http.StatusBadRequest, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
		return
	}
	// STS credentials, with the codes Alibaba's SDKs know: no token at all
	// is MissingSecurityToken, a token of another key is
	// InvalidSecurityToken.MismatchWithAccessKey. (A token that is sent is
	// an x-acs- header, so it is signed or refused above.)
	if k.token != "" || strings.HasPrefix(ak, "STS.") {
		switch tok := r.Header.Get("x-acs-security-token"); {
		case tok == "":
			s.fail(w, r, http.StatusBadRequest, "MissingSecurityToken", "SecurityToken is mandatory for STS credentials.")
			return
		case tok != k.token:
			s.fail(w, r, http.StatusBadRequest, "InvalidSecurityToken.MismatchWithAccessKey", "Specified SecurityToken mismatch with the AccessKey.")
			return
		}
	}
	n := r.Header.Get("x-acs-signature-nonce")
	s.mu.Lock()
	for old, at := range s.nonces {
		if now.Sub(at) > 30*time.Minute {
			delete(s.nonces, old)
		}
	}
	_, reused := s.nonces[n]
	s.nonces[n] = now
	// Flow control counts every authenticated request of the key.
	log := append(s.arrivals[ak], time.Now())
	cut := 0
	for cut < len(log) && time.Since(log[cut]) >= time.Second {
		cut++
	}
	log = log[cut:]
	s.arrivals[ak] = log
	if len(log) > s.maxSeen[ak] {
		s.maxSeen[ak] = len(log)
	}
	over := len(log) > QPS
	s.mu.Unlock()
	if reused {
		s.fail(w, r, http.StatusBadRequest, "SignatureNonceUsed", "Specified signature nonce was used already.")
		return
	}
	if over {
		s.fail(w, r, http.StatusBadRequest, "System.LimitControl", "The system is under flow control.")
		return
	}
	if r.Header.Get("x-acs-action") != "QueryChatappBindWaba" || r.Header.Get("x-acs-version") != "2020-06-06" {
		s.fail(w, r, http.StatusNotFound, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.")
		return
	}
	s.Count("QueryChatappBindWaba")
	switch r.URL.Query().Get("CustSpaceId") {
	case SpaceUnsubscribed:
		s.fail(w, r, http.StatusBadRequest, "Product.Unsubscript", "You have not subscribed to the specified product.")
		return
	case SpaceNoPermission:
		s.fail(w, r, http.StatusBadRequest, "Ram.PermissionDeny", "You are not authorized to perform the operation.")
		return
	case SpaceLimited:
		s.fail(w, r, http.StatusBadRequest, "System.LimitControl", "The system is under flow control.")
		return
	case SpaceNotOwner:
		s.fail(w, r, http.StatusBadRequest, "Unknown.ResourceOwnerId", "The resource does not belong to the current user.")
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	_, _ = fmt.Fprintf(w, `{"AccessDeniedDetail":"None","Message":"SUCCESS","RequestId":%q,"Data":{"AuthInternationalRateEligibility":{"test":"test","test2":1},"MarketingMessageLiteStatus":"Y","BusinessName":"Alibaba","Currency":"USD","Id":"20393988393993***","AccountReviewStatus":"APPROVED","MessageTemplateNamespace":"93e6b26e_8a67_4163_a093_ebfe645a66b0","BusinessId":"19293988***","Name":"Alibaba","PrimaryBusinessLocation":"\"start_time\":1721952000","IsOnBizApp":"N","FutureField":{"addedBy":"a later CAMS release"}},"Code":"OK","Success":true}`, requestID())
}

func sum(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

// expected recomputes the signature from what arrived: every query pair as
// sent (a parameter given twice is two pairs, so one appended after signing
// breaks the signature), the signed headers' values, the payload hash header.
func expected(r *http.Request, signedList, secret string) string {
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var qs []string
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			qs = append(qs, enc(k)+"="+enc(v))
		}
	}

	var hb strings.Builder
	for _, h := range strings.Split(signedList, ";") {
		v := r.Header.Get(h)
		if h == "host" {
			v = r.Host
		}
		hb.WriteString(h + ":" + strings.TrimSpace(v) + "\n")
	}
	canon := r.Method + "\n/\n" + strings.Join(qs, "&") + "\n" + hb.String() + "\n" + signedList + "\n" + r.Header.Get("x-acs-content-sha256")
	toSign := "ACS3-HMAC-SHA256\n" + hex.EncodeToString(sum([]byte(canon)))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(toSign))
	return hex.EncodeToString(m.Sum(nil))
}

func enc(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
