// Package callerauth authenticates callers of HTTP triggers: an HMAC-SHA256
// signature over the method, path, query, a timestamp, a nonce and the body
// hash, under a key id, checked in constant time within a 5-minute window,
// with replayed nonces refused through the shared store. The README gives the
// scheme precisely so any language can sign.
package callerauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudcall/cloudcall/shared/store"
)

// Scheme is the Authorization scheme name.
const Scheme = "CLOUDCALL-HMAC-SHA256"

// Window is how far a request's timestamp may be from the function's clock.
const Window = 5 * time.Minute

// MinSecretLen refuses keys too short to resist guessing.
const MinSecretLen = 16

// The patterns compile on first use, not at package init: every function
// links this package, and most never see an HTTP-trigger call, so compiling
// them at init only delayed the cold start.
var (
	keyIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,64}$`) })
	noncePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_\-]{16,64}$`) })
	sigPattern   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{64}$`) })
)

// Auth is a parsed Authorization header.
type Auth struct {
	KeyID     string
	Timestamp int64
	Nonce     string
	Signature string
}

// ErrMalformed is a header that is not this scheme's shape.
var ErrMalformed = errors.New("malformed Authorization header")

// Parse reads "CLOUDCALL-HMAC-SHA256 KeyId=..,Timestamp=..,Nonce=..,Signature=..".
func Parse(header string) (Auth, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(header), Scheme+" ")
	if !ok {
		return Auth{}, fmt.Errorf("%w: expected the %s scheme", ErrMalformed, Scheme)
	}
	var a Auth
	seen := map[string]bool{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || seen[k] {
			return Auth{}, fmt.Errorf("%w: bad or repeated field %q", ErrMalformed, k)
		}
		seen[k] = true
		switch k {
		case "KeyId":
			a.KeyID = v
		case "Timestamp":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return Auth{}, fmt.Errorf("%w: Timestamp must be unix seconds", ErrMalformed)
			}
			a.Timestamp = n
		case "Nonce":
			a.Nonce = v
		case "Signature":
			a.Signature = v
		default:
			return Auth{}, fmt.Errorf("%w: unknown field %q", ErrMalformed, k)
		}
	}
	switch {
	case !keyIDPattern().MatchString(a.KeyID):
		return Auth{}, fmt.Errorf("%w: KeyId must be 1-64 of A-Z a-z 0-9 _ . -", ErrMalformed)
	case a.Timestamp == 0:
		return Auth{}, fmt.Errorf("%w: Timestamp missing", ErrMalformed)
	case !noncePattern().MatchString(a.Nonce):
		return Auth{}, fmt.Errorf("%w: Nonce must be 16-64 of A-Z a-z 0-9 _ -", ErrMalformed)
	case !sigPattern().MatchString(a.Signature):
		return Auth{}, fmt.Errorf("%w: Signature must be 64 lower-case hex digits", ErrMalformed)
	}
	return a, nil
}

// CanonicalQuery sorts by name then value and percent-encodes both (RFC 3986,
// space as %20), so every language gets the same string.
func CanonicalQuery(rawQuery string) string {
	vals, _ := url.ParseQuery(rawQuery)
	type kv struct{ k, v string }
	var pairs []kv
	for k, vs := range vals {
		for _, v := range vs {
			pairs = append(pairs, kv{k, v})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	out := make([]string, len(pairs))
	for i, p := range pairs {
		out[i] = enc(p.k) + "=" + enc(p.v)
	}
	return strings.Join(out, "&")
}

func enc(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// StringToSign is what the signature covers.
func StringToSign(method, path, rawQuery string, ts int64, nonce string, body []byte) string {
	sum := sha256.Sum256(body)
	if path == "" {
		path = "/"
	}
	return strings.Join([]string{Scheme, strings.ToUpper(method), path, CanonicalQuery(rawQuery),
		strconv.FormatInt(ts, 10), nonce, hex.EncodeToString(sum[:])}, "\n")
}

// Signature is hex(HMAC-SHA256(secret, StringToSign)).
func Signature(secret, stringToSign string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(stringToSign))
	return hex.EncodeToString(m.Sum(nil))
}

// Header builds the Authorization value for a request.
func Header(keyID, secret, method, path, rawQuery string, ts int64, nonce string, body []byte) string {
	sig := Signature(secret, StringToSign(method, path, rawQuery, ts, nonce, body))
	return fmt.Sprintf("%s KeyId=%s,Timestamp=%d,Nonce=%s,Signature=%s", Scheme, keyID, ts, nonce, sig)
}

// ParseKeys reads CLOUDCALL_CALLER_KEYS: "id:secret,id2:secret2".
func ParseKeys(s string) (map[string]string, error) {
	keys := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, secret, ok := strings.Cut(part, ":")
		switch {
		case !ok || !keyIDPattern().MatchString(id):
			return nil, fmt.Errorf("CLOUDCALL_CALLER_KEYS: entry %d: expected id:secret with an id of A-Z a-z 0-9 _ . -", len(keys)+1)
		case len(secret) < MinSecretLen:
			return nil, fmt.Errorf("CLOUDCALL_CALLER_KEYS: key %q: the secret must be at least %d characters", id, MinSecretLen)
		}
		keys[id] = secret
	}
	if len(keys) == 0 {
		return nil, errors.New("CLOUDCALL_CALLER_KEYS: no keys")
	}
	return keys, nil
}

// Request is what the verifier needs of an HTTP call.
type Request struct {
	Method, Path, RawQuery string
	Authorization          string
	Body                   []byte
}

// Verifier checks signed requests.
type Verifier struct {
	keys  map[string]string
	nonce store.KV
	now   func() time.Time
}

// NewVerifier builds a verifier; nonces go to kv.
func NewVerifier(keys map[string]string, kv store.KV, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{keys: keys, nonce: kv, now: now}
}

// Refusal says why a call was refused; it never echoes a secret.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return r.Reason }

// Verify returns nil for a good request, a *Refusal otherwise, or a store
// error (wrapping store.ErrUnavailable) when replay protection cannot run.
func (v *Verifier) Verify(ctx context.Context, r Request) error {
	if r.Authorization == "" {
		return &Refusal{"missing Authorization header: sign the request (" + Scheme + ")"}
	}
	a, err := Parse(r.Authorization)
	if err != nil {
		return &Refusal{err.Error()}
	}
	secret, ok := v.keys[a.KeyID]
	if !ok {
		return &Refusal{"unknown key id"}
	}
	skew := v.now().Sub(time.Unix(a.Timestamp, 0))
	if skew > Window || skew < -Window {
		return &Refusal{fmt.Sprintf("timestamp is %s off the server clock; the window is %s", skew.Round(time.Second), Window)}
	}
	want := Signature(secret, StringToSign(r.Method, r.Path, r.RawQuery, a.Timestamp, a.Nonce, r.Body))
	if !hmac.Equal([]byte(want), []byte(a.Signature)) {
		return &Refusal{"signature does not match (method, path, query, timestamp, nonce or body differ from what was signed)"}
	}
	// Only a correctly signed request may spend a nonce, so nobody can burn
	// another caller's nonces.
	fresh, err := v.nonce.SetNX(ctx, "nonce:"+a.KeyID+":"+a.Nonce, []byte("1"), 2*Window+time.Minute)
	if err != nil {
		return fmt.Errorf("nonce check: %w", err)
	}
	if !fresh {
		return &Refusal{"replayed nonce"}
	}
	return nil
}
