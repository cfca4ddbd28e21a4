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

	"github.com/cloudcall/cloudcall/shared/envelope"
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
	if strings.Contains(rest, Scheme+" ") {
		// Two headers the platform joined with a comma (FC and API
		// Gateway deliver a repeated header so).
		return Auth{}, fmt.Errorf("%w: more than one Authorization header (joined by the platform); send exactly one", ErrMalformed)
	}
	var a Auth
	seen := map[string]bool{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || seen[k] {
			return Auth{}, fmt.Errorf("%w: bad or repeated field %s", ErrMalformed, envelope.Quote(k))
		}
		seen[k] = true
		switch k {
		case "KeyId":
			a.KeyID = v
		case "Timestamp":
			// Digits only: ParseInt also takes a sign ("+1796069000"), and
			// one header should have one spelling.
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 || v[0] < '0' || v[0] > '9' {
				return Auth{}, fmt.Errorf("%w: Timestamp must be unix seconds", ErrMalformed)
			}
			a.Timestamp = n
		case "Nonce":
			a.Nonce = v
		case "Signature":
			a.Signature = v
		default:
			return Auth{}, fmt.Errorf("%w: unknown field %s", ErrMalformed, envelope.Quote(k))
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

// StringToSign is what the signature covers. It fails (ErrQuery) for a
// query the canonical form cannot represent: such a request is not signed.
func StringToSign(method, path, rawQuery string, ts int64, nonce string, body []byte) (string, error) {
	return stringToSign(method, path, rawQuery, ts, nonce, bodyHash(body))
}

func bodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// stringToSign takes the body's hash, so a verifier trying several query
// forms hashes a large body once, not once per form.
func stringToSign(method, path, rawQuery string, ts int64, nonce, bodySum string) (string, error) {
	q, err := CanonicalQuery(rawQuery)
	if err != nil {
		return "", err
	}
	if path == "" {
		path = "/"
	}
	return strings.Join([]string{Scheme, strings.ToUpper(method), path, q,
		strconv.FormatInt(ts, 10), nonce, bodySum}, "\n"), nil
}

// ValidKeyID reports whether id is a key id the verifiers accept: 1 to 64
// of A-Z a-z 0-9 _ . - (the clients check it before signing).
func ValidKeyID(id string) bool { return keyIDPattern().MatchString(id) }

// Signature is hex(HMAC-SHA256(secret, StringToSign)).
func Signature(secret, stringToSign string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(stringToSign))
	return hex.EncodeToString(m.Sum(nil))
}

// Sign builds the Authorization value for a request; it fails (ErrQuery)
// for a query the canonical form cannot represent.
func Sign(keyID, secret, method, path, rawQuery string, ts int64, nonce string, body []byte) (string, error) {
	sts, err := StringToSign(method, path, rawQuery, ts, nonce, body)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s KeyId=%s,Timestamp=%d,Nonce=%s,Signature=%s", Scheme, keyID, ts, nonce, Signature(secret, sts)), nil
}

// Header is Sign for a query known to be well-formed (none, or one built by
// url.Values.Encode), as in tests and fixed call sites. For any other query
// it returns "", which every verifier refuses as unsigned; use Sign to learn
// why.
func Header(keyID, secret, method, path, rawQuery string, ts int64, nonce string, body []byte) string {
	h, err := Sign(keyID, secret, method, path, rawQuery, ts, nonce, body)
	if err != nil {
		return ""
	}
	return h
}

// ParseKeys reads CLOUDCALL_CALLER_KEYS: "id:secret,id2:secret2". Secrets
// are taken verbatim: an entry, key id or secret that begins or ends with
// whitespace (around a comma or the colon) is an error, never trimmed nor
// kept (a trimmed secret refuses every correctly signed call; one that kept
// the space after "backend: " refused every call signed with the secret as
// written, an outside tester). Errors name entries by position, never by
// content.
func ParseKeys(s string) (map[string]string, error) {
	keys := map[string]string{}
	for i, part := range strings.Split(s, ",") {
		n := i + 1
		if part == "" {
			continue
		}
		if strings.TrimSpace(part) != part {
			return nil, fmt.Errorf("CLOUDCALL_CALLER_KEYS: entry %d begins or ends with whitespace; secrets are taken verbatim, so write id:secret,id:secret with no spaces", n)
		}
		id, secret, ok := strings.Cut(part, ":")
		switch {
		case ok && strings.TrimSpace(id) != id:
			return nil, fmt.Errorf("CLOUDCALL_CALLER_KEYS: entry %d: the key id begins or ends with whitespace; secrets are taken verbatim, so write id:secret,id:secret with no spaces", n)
		case ok && strings.TrimSpace(secret) != secret:
			return nil, fmt.Errorf("CLOUDCALL_CALLER_KEYS: entry %d: the secret begins or ends with whitespace; secrets are taken verbatim, so write id:secret,id:secret with no spaces", n)
		case !ok || !keyIDPattern().MatchString(id):
			return nil, fmt.Errorf("CLOUDCALL_CALLER_KEYS: entry %d: expected id:secret with an id of 1-64 of A-Z a-z 0-9 _ . -", n)
		case len(secret) < MinSecretLen:
			return nil, fmt.Errorf("CLOUDCALL_CALLER_KEYS: entry %d: the secret must be at least %d bytes", n, MinSecretLen)
		case keys[id] != "":
			return nil, fmt.Errorf("CLOUDCALL_CALLER_KEYS: entry %d repeats a key id", n)
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
	// QueryJoined: the platform joined repeated query names with commas
	// (FC 3.0 HTTP triggers), so ?a=1&a=0 arrives as a=1,0. The signature is
	// then also checked with such values split back into repeated names
	// (see JoinedQueryForms); both forms are the same event to the function.
	QueryJoined   bool
	Authorization string
	Body          []byte
	// SharedNonce demands the nonce be recorded in the shared store: without
	// it the call is not accepted (Verify returns a store error), because a
	// replay on another instance during an outage would do harm the
	// signature cannot prevent (an unsigned header that changes what runs).
	SharedNonce bool
}

// Verifier checks signed requests.
type Verifier struct {
	keys   map[string]string
	nonces *Nonces
	now    func() time.Time
}

// NewVerifier builds a verifier that spends nonces in n.
func NewVerifier(keys map[string]string, n *Nonces, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{keys: keys, nonces: n, now: now}
}

// Refusal says why a call was refused; it never echoes a secret.
type Refusal struct {
	Reason string
	// Replayed: the signature was good and its nonce already spent (a
	// capture sent again, or a POST delivered twice on the way).
	Replayed bool
}

func (r *Refusal) Error() string { return r.Reason }

// ErrReplayed marks a refusal of a correctly signed request whose nonce was
// already spent, for errors.Is wherever the refusal travels.
var ErrReplayed = errors.New("callerauth: replayed nonce")

// Unwrap gives ErrReplayed for a replay.
func (r *Refusal) Unwrap() error {
	if r.Replayed {
		return ErrReplayed
	}
	return nil
}

// Verify returns nil for a good request and a *Refusal otherwise; with
// SharedNonce, an error wrapping store.ErrUnavailable when the shared store
// cannot record the nonce.
func (v *Verifier) Verify(ctx context.Context, r Request) error {
	if r.Authorization == "" {
		return &Refusal{Reason: "missing Authorization header: sign the request (" + Scheme + ")"}
	}
	a, err := Parse(r.Authorization)
	if err != nil {
		return &Refusal{Reason: err.Error()}
	}
	secret, ok := v.keys[a.KeyID]
	if !ok {
		return &Refusal{Reason: "unknown key id"}
	}
	// Whole seconds on both sides, so the edge is exact: 300 s off is in,
	// 301 s is out.
	skew := a.Timestamp - v.now().Unix() // ahead of the server: positive
	if limit := int64(Window / time.Second); skew > limit || skew < -limit {
		return &Refusal{Reason: fmt.Sprintf("timestamp is %+ds off the server clock (+ ahead, - behind); the window is %s either side", skew, Window)}
	}
	queries := []string{r.RawQuery}
	if r.QueryJoined {
		queries = JoinedQueryForms(r.RawQuery)
	}
	matched := false
	sum := bodyHash(r.Body)
	for _, q := range queries {
		sts, err := stringToSign(r.Method, r.Path, q, a.Timestamp, a.Nonce, sum)
		if err != nil {
			return &Refusal{Reason: err.Error()}
		}
		if hmac.Equal([]byte(Signature(secret, sts)), []byte(a.Signature)) {
			matched = true
			break
		}
	}
	if !matched {
		reason := "signature does not match: the secret is not this key id's in CLOUDCALL_CALLER_KEYS (--caller-keys locally), or the method, path, query, timestamp, nonce or body differ from what was signed"
		if r.QueryJoined && tooJoined(r.RawQuery) {
			reason += fmt.Sprintf("; FC joins repeated query names with commas, and this query's values hold more than %d, so only the query as delivered was checked: send fewer repeated names, or values without commas", MaxJoinedCommas)
		}
		return &Refusal{Reason: reason}
	}
	// Only a correctly signed request may spend a nonce, so nobody can burn
	// another caller's nonces. The key id is not part of the record: it is
	// not signed, so a capture resent under another id that shares the
	// secret (a rotation that kept it) must find its nonce spent.
	key := NonceKey(a)
	fresh := true
	if r.SharedNonce {
		if fresh, err = v.nonces.SpendShared(ctx, key); err != nil {
			return err
		}
	} else {
		fresh = v.nonces.Spend(ctx, key)
	}
	if !fresh {
		return &Refusal{Reason: "replayed nonce", Replayed: true}
	}
	return nil
}

// NonceKey is the store key that records a's nonce as spent; the charge
// keeps the same name with its records.
func NonceKey(a Auth) string { return "nonce:" + a.Nonce }

// MaxJoinedCommas bounds the commas in values JoinedQueryForms splits (2^n
// forms, one HMAC each): past it only the query as delivered is checked.
const MaxJoinedCommas = 6

// JoinedQueryForms lists the queries a comma-joined query (FC 3.0's
// queryParameters) may have been signed as: the query as delivered first,
// then every way of splitting comma-holding values back into repeated names,
// at each comma or not (?a=1&a=2,3 arrives as a=1,2,3, as do ?a=1,2&a=3 and
// ?a=1&a=2&a=3). The canonical form sorts values, so the lost order does not
// matter. A query that does not parse is returned as is, for StringToSign to
// refuse.
func JoinedQueryForms(rawQuery string) []string {
	forms := []string{rawQuery}
	vals, err := url.ParseQuery(rawQuery)
	if err != nil {
		return forms
	}
	var joined []string
	commas := 0
	for k, vs := range vals {
		if len(vs) == 1 && strings.Contains(vs[0], ",") {
			joined = append(joined, k)
			commas += strings.Count(vs[0], ",")
		}
	}
	if len(joined) == 0 || commas > MaxJoinedCommas {
		return forms
	}
	sort.Strings(joined)
	// One bit per comma, name by name: set, the comma separates two values.
	for mask := 1; mask < 1<<commas; mask++ {
		q := url.Values{}
		for k, vs := range vals {
			q[k] = vs
		}
		bit := 0
		for _, k := range joined {
			parts := strings.Split(vals[k][0], ",")
			out := []string{parts[0]}
			for _, p := range parts[1:] {
				if mask&(1<<bit) != 0 {
					out = append(out, p)
				} else {
					out[len(out)-1] += "," + p
				}
				bit++
			}
			q[k] = out
		}
		forms = append(forms, q.Encode())
	}
	return forms
}

// tooJoined says whether JoinedQueryForms checked only the query as
// delivered because its values hold more than MaxJoinedCommas commas.
func tooJoined(rawQuery string) bool {
	vals, err := url.ParseQuery(rawQuery)
	if err != nil {
		return false
	}
	commas := 0
	for _, vs := range vals {
		if len(vs) == 1 {
			commas += strings.Count(vs[0], ",")
		}
	}
	return commas > MaxJoinedCommas
}
