// Package alicloud calls Alibaba Cloud RPC APIs: credentials from the FC
// invocation first and the standard chain after, signature V3
// (ACS3-HMAC-SHA256), the POP error shape kept verbatim, a per-AccessKey
// rate limiter on the shared store, and backoff on flow control.
package alicloud

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"sort"
	"strings"
)

// Algorithm is the signature V3 algorithm name.
const Algorithm = "ACS3-HMAC-SHA256"

// EmptyHash is hex(sha256("")), the payload hash of a body-less request.
const EmptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Percent encodes per RFC 3986 as V3 requires: unreserved characters stay,
// everything else is %XY with upper-case hex; a space is %20, never "+".
func Percent(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// CanonicalQuery sorts the parameters and encodes names and values.
func CanonicalQuery(q map[string]string) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = Percent(k) + "=" + Percent(q[k])
	}
	return strings.Join(parts, "&")
}

// CanonicalHeaders keeps host, content-type and x-acs-* headers, lower-cased
// and trimmed, sorted; it returns the block and the signed-header list.
func CanonicalHeaders(h map[string]string) (string, string) {
	m := map[string]string{}
	for k, v := range h {
		lk := strings.ToLower(strings.TrimSpace(k))
		if lk == "host" || lk == "content-type" || strings.HasPrefix(lk, "x-acs-") {
			m[lk] = strings.TrimSpace(v)
		}
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n + ":" + m[n] + "\n")
	}
	return b.String(), strings.Join(names, ";")
}

// CanonicalRequest is the V3 canonical request.
func CanonicalRequest(method, path string, query, headers map[string]string, payloadHash string) (canon, signed string) {
	if path == "" {
		path = "/"
	}
	ch, signed := CanonicalHeaders(headers)
	return strings.ToUpper(method) + "\n" + path + "\n" + CanonicalQuery(query) + "\n" + ch + "\n" + signed + "\n" + payloadHash, signed
}

// SignV3 returns the Authorization header value.
func SignV3(method, path string, query, headers map[string]string, payloadHash, accessKeyID, secret string) string {
	canon, signed := CanonicalRequest(method, path, query, headers, payloadHash)
	sum := sha256.Sum256([]byte(canon))
	toSign := Algorithm + "\n" + hex.EncodeToString(sum[:])
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(toSign))
	return Algorithm + " Credential=" + accessKeyID + ",SignedHeaders=" + signed + ",Signature=" + hex.EncodeToString(mac.Sum(nil))
}

// HashPayload is hex(sha256(body)).
func HashPayload(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}
