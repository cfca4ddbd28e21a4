// Package top calls the Taobao Open Platform router: system parameters,
// md5 / hmac / hmac-sha256 signing over the sorted non-empty parameters, a
// GMT+8 timestamp whatever the host's zone, both failure layers, and a retry
// classification that never retries a write whose outcome is unknown.
package top

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"sort"
	"strings"
	"time"
)

// Sign methods.
const (
	SignMD5        = "md5"
	SignHMAC       = "hmac" // HMAC-MD5
	SignHMACSHA256 = "hmac-sha256"
)

// gmt8 is TOP's clock. A fixed zone needs no tzdata in the runtime image and
// ignores the host's TZ (serverless hosts run in UTC: a local-time timestamp
// would be 8 hours outside TOP's 10-minute window).
var gmt8 = time.FixedZone("GMT+8", 8*3600)

// Timestamp formats t the way TOP expects: "2006-01-02 15:04:05" in GMT+8.
func Timestamp(t time.Time) string { return t.In(gmt8).Format("2006-01-02 15:04:05") }

// ValidSignMethod reports whether m is one TOP accepts.
func ValidSignMethod(m string) bool {
	return m == SignMD5 || m == SignHMAC || m == SignHMACSHA256
}

// Canonical is the string TOP signs: every parameter except sign, with a
// non-empty name and value, sorted by name, name and value concatenated.
func Canonical(params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if k == "sign" || k == "" || v == "" {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString(params[k])
	}
	return b.String()
}

// Sign computes the upper-case hex signature of params with the method named
// by params["sign_method"] (md5 when absent).
func Sign(secret string, params map[string]string) (string, error) {
	return SignWith(params["sign_method"], secret, params)
}

// SignWith signs params with the given method.
func SignWith(method, secret string, params map[string]string) (string, error) {
	canon := Canonical(params)
	var h hash.Hash
	switch m := method; m {
	case SignMD5, "":
		h = md5.New()
		h.Write([]byte(secret + canon + secret))
		return strings.ToUpper(hex.EncodeToString(h.Sum(nil))), nil
	case SignHMAC:
		h = hmac.New(md5.New, []byte(secret))
	case SignHMACSHA256:
		h = hmac.New(sha256.New, []byte(secret))
	default:
		return "", fmt.Errorf("sign_method %q: expected md5, hmac or hmac-sha256", m)
	}
	h.Write([]byte(canon))
	return strings.ToUpper(hex.EncodeToString(h.Sum(nil))), nil
}
