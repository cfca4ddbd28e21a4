package callerauth

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// ErrQuery is a query string the canonical form cannot represent. Such a
// request is refused (by the verifier) or not sent (by the signers), never
// signed or verified with the unparseable part left out.
var ErrQuery = errors.New("query string cannot be canonicalized")

// CanonicalQuery is the one definition every signer and the verifier share
// (docs/caller-auth.md; vectors in
// testdata/canonical_query_vectors.json):
//
//   - the raw query (after '?', before '#') is split on '&'; empty pieces
//     carry nothing and are skipped;
//   - a piece holding ';' is refused (some servers split on it, some do not);
//   - a piece is name=value split at its first '=' (no '=': the value is "");
//   - in both, '+' is a space, then %XY escapes are decoded; a '%' not
//     followed by two hex digits is refused, and so are decoded bytes that are
//     not UTF-8;
//   - pairs are sorted by name, then value, in byte order of their UTF-8;
//   - name and value are percent-encoded (everything but A-Z a-z 0-9 - _ . ~
//     as %XY, upper-case hex) and joined as name=value with '&'.
func CanonicalQuery(rawQuery string) (string, error) {
	type kv struct{ k, v string }
	var pairs []kv
	for i, piece := range strings.Split(rawQuery, "&") {
		if piece == "" {
			continue
		}
		if strings.Contains(piece, ";") {
			return "", fmt.Errorf("%w: pair %d holds ';' (use & between pairs, %%3B inside a value)", ErrQuery, i+1)
		}
		name, value, _ := strings.Cut(piece, "=")
		k, err := unescape(name)
		if err != nil {
			return "", fmt.Errorf("%w: pair %d name: %w", ErrQuery, i+1, err)
		}
		v, err := unescape(value)
		if err != nil {
			return "", fmt.Errorf("%w: pair %d value: %w", ErrQuery, i+1, err)
		}
		pairs = append(pairs, kv{k, v})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		escape(&b, p.k)
		b.WriteByte('=')
		escape(&b, p.v)
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unescape is form decoding that refuses instead of guessing.
func unescape(s string) (string, error) {
	if !strings.ContainsAny(s, "%+") {
		if !utf8.ValidString(s) {
			return "", errors.New("not UTF-8")
		}
		return s, nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			out = append(out, ' ')
		case '%':
			if i+2 >= len(s) {
				return "", fmt.Errorf("%q is not a %%XY escape", s[i:min(i+3, len(s))])
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("%q is not a %%XY escape", s[i:i+3])
			}
			out = append(out, hi<<4|lo)
			i += 2
		default:
			out = append(out, c)
		}
	}
	if !utf8.Valid(out) {
		return "", errors.New("decodes to bytes that are not UTF-8")
	}
	return string(out), nil
}

const upperHex = "0123456789ABCDEF"

// escape writes s with RFC 3986 unreserved characters kept.
func escape(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
}
