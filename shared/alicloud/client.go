package alicloud

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/upstream"
)

// Credentials sign one call.
type Credentials struct {
	AccessKeyID, AccessKeySecret, SecurityToken string
	// Source names where they came from (not signed): a refusal of them
	// names the setting to fix.
	Source string
}

// Credential sources named in a refusal of the credentials.
const (
	SourceFC  = "the FC invocation's role credentials (the function's RAM role)"
	SourceEnv = "the env AccessKey variables ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET"
)

// chainSource names the standard chain's provider ("default/env" for the
// environment variables).
func chainSource(provider, token string) string {
	name := provider[strings.LastIndex(provider, "/")+1:]
	switch {
	case name == "env" && token != "":
		return SourceEnv + " (and ALIBABA_CLOUD_SECURITY_TOKEN)"
	case name == "env":
		return SourceEnv
	case name == "static":
		return "the configured static credentials"
	}
	return "the credentials the standard chain's " + name + " provider found"
}

// CredentialSource resolves credentials per call: the platform's
// per-invocation credentials first (FC passes the function role's STS
// credentials with each invocation), then the standard chain.
type CredentialSource struct {
	// chain builds the standard chain on first need, not at cold start:
	// building it reads profile files and the environment, which the first
	// call does not need when FC hands over the invocation's credentials.
	chain func() providers.CredentialsProvider
}

// NewCredentialSource prepares the standard chain (env AK/STS, OIDC, CLI
// and profile files, ECS role, credentials URI), built once on first use. It
// does not fail: a missing chain only matters when no invocation brings its
// own credentials. It is credentials-go's provider chain itself (what
// credentials.NewCredential(nil) wraps): linking the providers package alone
// leaves out the legacy API's dependencies (tea, json-iterator, reflect2,
// and through them flag and testing), whose package init cost every cold
// start about 0.15 ms.
func NewCredentialSource() *CredentialSource {
	return &CredentialSource{chain: sync.OnceValue(func() providers.CredentialsProvider { return providers.NewDefaultCredentialsProvider() })}
}

// StaticSource always returns the same credentials (tests, benchmarks).
func StaticSource(c Credentials) *CredentialSource {
	return &CredentialSource{chain: func() providers.CredentialsProvider { return staticChain{c} }}
}

type staticChain struct{ c Credentials }

func (s staticChain) GetCredentials() (*providers.Credentials, error) {
	return &providers.Credentials{AccessKeyId: s.c.AccessKeyID, AccessKeySecret: s.c.AccessKeySecret, SecurityToken: s.c.SecurityToken, ProviderName: "static"}, nil
}

func (staticChain) GetProviderName() string { return "static" }

// Resolve picks the credentials for one invocation.
func (s *CredentialSource) Resolve(in *envelope.Input) (Credentials, error) {
	if in != nil && in.Credentials != nil && in.Credentials.AccessKeyID != "" {
		c := in.Credentials
		return Credentials{AccessKeyID: c.AccessKeyID, AccessKeySecret: c.AccessKeySecret, SecurityToken: c.SecurityToken, Source: SourceFC}, nil
	}
	chain := s.chain()
	if chain == nil {
		return Credentials{}, envelope.ConfigError("no Alibaba Cloud credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET (plus ALIBABA_CLOUD_SECURITY_TOKEN for STS), or (on FC) give the function a RAM role")
	}
	m, err := chain.GetCredentials()
	if err != nil || m == nil || m.AccessKeyId == "" {
		return Credentials{}, envelope.ConfigError("no Alibaba Cloud credentials found by the standard chain: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, or (on FC) give the function a RAM role")
	}
	return Credentials{AccessKeyID: m.AccessKeyId, AccessKeySecret: m.AccessKeySecret, SecurityToken: m.SecurityToken,
		Source: chainSource(m.ProviderName, m.SecurityToken)}, nil
}

// Options configures a Client.
type Options struct {
	Endpoint string // origin, e.g. https://cams.ap-southeast-1.aliyuncs.com
	Version  string // API version, e.g. 2020-06-06
	Product  string // for messages and the limiter key, e.g. cams
	HTTP     *http.Client
	Limiter  store.Limiter
	// QPS is the documented per-user limit (10 for CAMS). The limiter keeps
	// a margin under it so network jitter cannot push a window over.
	QPS      int
	Remember func(string)
	Now      func() time.Time
}

// Client calls one product's RPC API.
type Client struct {
	o    Options
	host string
}

// NewClient builds a client.
func NewClient(o Options) (*Client, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q: expected an origin such as https://cams.ap-southeast-1.aliyuncs.com", o.Endpoint)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Remember == nil {
		o.Remember = func(string) {}
	}
	if o.QPS <= 0 {
		o.QPS = 10
	}
	o.Endpoint = strings.TrimRight(o.Endpoint, "/")
	o.HTTP = upstream.NoRedirects(o.HTTP)
	return &Client{o: o, host: u.Host}, nil
}

// Error is the POP error body, verbatim.
type Error struct {
	Status             int    `json:"-"`
	RequestID          string `json:"RequestId"`
	HostID             string `json:"HostId"`
	Code               string `json:"Code"`
	Message            string `json:"Message"`
	Recommend          string `json:"Recommend"`
	AccessDeniedDetail any    `json:"AccessDeniedDetail"`
	// TimeLeft is how long a throttle's window has left, from the
	// x-ratelimit-user-api / x-ratelimit-user headers (the larger).
	TimeLeft time.Duration `json:"-"`
}

// timeLeft reads TimeLeft (milliseconds) from the gateway's rate-limit
// headers, "Limit:10,Remain:0,TimeLeft:30000,Reset:…", as the official SDK's
// GetThrottlingTimeLeft does: the larger of the two wins (vendor note §3).
func timeLeft(h http.Header) time.Duration {
	var most int64
	for _, name := range []string{"x-ratelimit-user-api", "x-ratelimit-user"} {
		for _, part := range strings.Split(h.Get(name), ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), ":")
			if !ok || !strings.EqualFold(k, "TimeLeft") {
				continue
			}
			// A float, so "1.5" and a value past int64 (waited as the cap)
			// are read too; a negative or NaN one is no wait.
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); (err == nil || errors.Is(err, strconv.ErrRange)) && f > float64(most) {
				most = int64(min(f, float64(time.Hour/time.Millisecond)))
			}
		}
	}
	return time.Duration(most) * time.Millisecond
}

func (e *Error) Error() string { return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message) }

// Throttled reports flow control: CAMS's System.LimitControl and the
// gateway's Throttling.*.
func (e *Error) Throttled() bool {
	return e.Code == "System.LimitControl" || strings.HasPrefix(e.Code, "Throttling")
}

// Envelope maps a POP error onto the envelope.
func (e *Error) Envelope(product string) *envelope.Error {
	up := &envelope.Upstream{Vendor: product, HTTPStatus: e.Status, Code: e.Code, Message: e.Message, RequestID: e.RequestID, Extra: map[string]any{}}
	if e.HostID != "" {
		up.Extra["hostId"] = e.HostID
	}
	if e.Recommend != "" {
		up.Extra["recommend"] = e.Recommend
	}
	if e.AccessDeniedDetail != nil && e.AccessDeniedDetail != "" {
		up.Extra["accessDeniedDetail"] = e.AccessDeniedDetail
	}
	if len(up.Extra) == 0 {
		up.Extra = nil
	}
	code := envelope.CodeUpstream
	if e.Throttled() {
		code = envelope.CodeThrottled
	}
	return &envelope.Error{Code: code, Reason: e.Code + ": " + e.Message, Upstream: up, Err: e}
}

// credentialsMeaning are the gateway's codes that mean the credentials are
// wrong (vendor note alibaba-cams.md §4.2), and what each says. The
// signature is made here from the configured secret, so a mismatch is a
// wrong secret.
var credentialsMeaning = map[string]string{
	"SignatureDoesNotMatch":       "the signature made with the AccessKey secret does not match, so the secret is not that AccessKey ID's",
	"InvalidAccessKeyId.NotFound": "the AccessKey ID is unknown",
	"InvalidAccessKeyId.Inactive": "the AccessKey is disabled",
}

func credentialsRefused(code string) bool { _, ok := credentialsMeaning[code]; return ok }

func nonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Call runs an RPC action with query parameters (POST /, empty body, as the
// official SDK sends CAMS's operations) and decodes the JSON answer into out.
// It waits for the limiter and retries flow control within the deadline;
// every action the bundle calls through it is a read.
func (c *Client) Call(ctx context.Context, creds Credentials, action string, query map[string]string, out any) error {
	limitKey := c.o.Product + ":qps:" + creds.AccessKeyID
	window := time.Duration(float64(time.Second) * 1.1) // 10 per 1.1 s: a margin under 10 per second
	for attempt := 0; ; attempt++ {
		if err := store.Wait(ctx, c.o.Limiter, limitKey, c.o.QPS, window); err != nil {
			if errors.Is(err, store.ErrUnavailable) {
				return &envelope.Error{Code: envelope.CodeStoreUnavailable, Reason: "rate limiter unavailable", Err: err}
			}
			return &envelope.Error{Code: envelope.CodeThrottled, RetryAfter: 1,
				Reason: fmt.Sprintf("throttled: %s allows %d calls per second per AccessKey and this call's deadline leaves no room to wait", c.o.Product, c.o.QPS), Err: err}
		}
		sent := time.Now()
		err := c.once(ctx, creds, action, query, out)
		var pe *Error
		if errors.As(err, &pe) && pe.Throttled() {
			// The gateway says how long its window has left (TimeLeft, the
			// official SDK's RetryAfter: vendor note §3); without it, back off.
			wait := pe.TimeLeft
			if wait <= 0 {
				wait = upstream.Backoff(attempt, 200*time.Millisecond, 2*time.Second)
			}
			if upstream.Sleep(ctx, wait, upstream.Margin(sent, 200*time.Millisecond)) == nil {
				continue
			}
			e := pe.Envelope(c.o.Product)
			e.RetryAfter = max(1, int((pe.TimeLeft+time.Second-1)/time.Second))
			return e
		}
		var ee *envelope.Error
		if errors.As(err, &ee) && ee.Code == envelope.CodeUpstreamUnreachable && !errors.Is(err, upstream.ErrRedirect) && attempt < 2 &&
			upstream.Sleep(ctx, upstream.Wait(err, upstream.Backoff(attempt, 150*time.Millisecond, time.Second)), upstream.Margin(sent, 300*time.Millisecond)) == nil {
			continue
		}
		if ee != nil {
			return ee // already mapped: a 5xx stays -1302, not a refusal
		}
		if pe != nil {
			e := pe.Envelope(c.o.Product)
			if credentialsRefused(pe.Code) {
				// The key and the signature come from the function's
				// configuration: "CAMS refused" (-1305) sent callers to
				// retry or blame the vendor (an outside tester).
				e.Code = envelope.CodeConfig
				e.Reason = fmt.Sprintf("configuration: %s refused the Alibaba Cloud credentials from %s (%s): %s; set the right AccessKey pair, or (on FC) check the function's RAM role",
					c.o.Product, creds.Source, pe.Code, credentialsMeaning[pe.Code])
			}
			return e
		}
		return err
	}
}

func (c *Client) once(ctx context.Context, creds Credentials, action string, query map[string]string, out any) error {
	headers := map[string]string{
		"host":                  c.host,
		"x-acs-action":          action,
		"x-acs-version":         c.o.Version,
		"x-acs-date":            c.o.Now().UTC().Format("2006-01-02T15:04:05Z"),
		"x-acs-signature-nonce": nonce(),
		"x-acs-content-sha256":  EmptyHash,
	}
	if creds.SecurityToken != "" {
		headers["x-acs-security-token"] = creds.SecurityToken
		c.o.Remember(creds.SecurityToken)
	}
	c.o.Remember(creds.AccessKeySecret)
	headers["Authorization"] = SignV3(http.MethodPost, "/", query, headers, EmptyHash, creds.AccessKeyID, creds.AccessKeySecret)
	vals := url.Values{}
	for k, v := range query {
		vals.Set(k, v)
	}
	u := c.o.Endpoint + "/"
	if len(vals) > 0 {
		u += "?" + CanonicalQuery(query)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, http.NoBody)
	if err != nil {
		return upstream.Clean(err)
	}
	for k, v := range headers {
		if k != "host" {
			req.Header.Set(k, v)
		}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.o.HTTP.Do(req)
	if err != nil {
		return upstream.TransportError(c.o.Product, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return upstream.TransportError(c.o.Product, err)
	}
	if resp.StatusCode >= 400 {
		var pe Error
		if json.Unmarshal(b, &pe) != nil || pe.Code == "" {
			if resp.StatusCode == http.StatusTooManyRequests {
				return upstream.Throttled(c.o.Product, resp.Header)
			}
			if resp.StatusCode >= 500 {
				return upstream.Unavailable(c.o.Product, resp.StatusCode, resp.Header)
			}
			return upstream.Malformed(c.o.Product, resp.StatusCode, fmt.Errorf("error body without Code"))
		}
		pe.Status = resp.StatusCode
		pe.TimeLeft = timeLeft(resp.Header)
		if resp.StatusCode >= 500 {
			ee := pe.Envelope(c.o.Product)
			ee.Code, ee.RetryAfter = envelope.CodeUpstreamUnreachable, upstream.RetryAfter(resp.Header)
			return ee
		}
		return &pe
	}
	if err := json.Unmarshal(b, out); err != nil {
		return upstream.Malformed(c.o.Product, resp.StatusCode, err)
	}
	return nil
}
