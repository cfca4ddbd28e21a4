package logging

import (
	"unicode/utf16"
	"unicode/utf8"
)

// A JSON writer may escape any character of a secret: "\/" for '/', a
// short escape ("\"", "\\", "\n", ...), "\uXXXX" in either hex case, a
// surrogate pair past U+FFFF. An answer that quotes a vendor's JSON error
// escapes it again, and every backslash is doubled ("\\\/", "\\u0026"). A
// secret spelled so matched none of its exact forms and reached the caller
// in clear (an outside tester: "ck1\/demo", Gson's "\u003d", Go's "\u0026"
// escaped again). The spellings are matched by hand, not by a regexp per
// secret: one cost a millisecond to compile per short secret and 17 ms for
// an STS token (compiled on the call that fetched it), and 45 µs per 2 KB
// line per secret; this is one pass over the line, trying each secret only
// where its spelling can start, and only on lines holding a backslash.

// maskEscaped returns b with every escaped spelling of the secrets (those
// of MinSecretLen bytes or more) masked, or b itself when there is none. b
// is not modified. Where spellings of several secrets start, the longest is
// masked: config lists each secret's JSON forms as secrets too, and one
// ("\\u00" for "\u00") can be a part of another's spelling.
func maskEscaped(b []byte, secrets []string) []byte {
	out, _ := maskEscapedScan(b, secrets)
	return out
}

// maskEscapedScan is maskEscaped, also saying how many bytes its search for
// the ends of backslash runs looked at (linear in b, for any secrets).
func maskEscapedScan(b []byte, secrets []string) ([]byte, int) {
	var out []byte
	last := 0 // b[last:] is not yet copied to out
	var failed map[[3]int]bool
	var runs runCache
	for i := 0; i < len(b); i++ {
		// A spelling starts with its secret's first byte, or with the
		// first of a run of backslashes (the escape of its first
		// character).
		runStart := b[i] == '\\' && (i == 0 || b[i-1] != '\\')
		end := -1
		for n, s := range secrets {
			if len(s) < MinSecretLen || (b[i] != s[0] && !runStart) {
				continue
			}
			end = max(end, escapedEnd(b, i, s, 0, memo{&failed, n, &runs}))
		}
		if end < 0 {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(b))
		}
		out = append(append(out, b[last:i]...), Mask...)
		last = end
		i = end - 1
	}
	if out == nil {
		return b, runs.scanned
	}
	return append(out, b[last:]...), runs.scanned
}

// memo remembers, for secret n, the places (i, k) where no spelling of the
// rest of it starts, made on first use, and where the last run of
// backslashes looked at ends.
type memo struct {
	failed *map[[3]int]bool
	n      int
	runs   *runCache
}

// runCache is the last run of backslashes found, b[start:end]. A spelling
// may start at any backslash of a run, and each try looked for the run's
// end afresh: a line of n backslashes cost n² per secret whose stored JSON
// form starts with one ("\u0026…" for a secret starting with '&'), 12 s
// for 100,000 (a re-tester). Scanned counts the bytes looked at.
type runCache struct {
	start, end int
	scanned    int
}

// endOf returns where the run of backslashes holding or starting at b[i]
// ends (i itself when b[i] is none).
func (c *runCache) endOf(b []byte, i int) int {
	if c.start <= i && i < c.end {
		return c.end
	}
	j := i
	for j < len(b) && b[j] == '\\' {
		j++
	}
	c.scanned += j - i
	if j > i {
		c.start, c.end = i, j
	}
	return j
}

// escapedEnd returns where a spelling of s[k:] that starts at b[i] ends, or
// -1. Only a backslash in s can be spelled with several lengths (one raw,
// two escaped, four escaped twice), so only it is tried more than one way;
// m remembers the (i, k) tried in vain, so a secret of many backslashes
// against a long run of them costs a product of the two, not a power.
func escapedEnd(b []byte, i int, s string, k int, m memo) int {
	for k < len(s) {
		r, n := utf8.DecodeRuneInString(s[k:])
		if r == '\\' {
			if i == len(b) || b[i] != '\\' {
				return -1 // every spelling of it starts with one
			}
			if (*m.failed)[[3]int{m.n, i, k}] {
				return -1
			}
			if j := escapedRune(b, i, r, m.runs); j >= 0 { // "\u005c"
				if end := escapedEnd(b, j, s, k+1, m); end >= 0 {
					return end
				}
			}
			// Longest first: a spelling ending in a backslash is
			// masked whole, not all but its last escape.
			for _, w := range [...]int{8, 4, 2, 1} {
				if backslashes(b, i, w) {
					if end := escapedEnd(b, i+w, s, k+1, m); end >= 0 {
						return end
					}
				}
			}
			if *m.failed == nil {
				*m.failed = map[[3]int]bool{}
			}
			(*m.failed)[[3]int{m.n, i, k}] = true
			return -1
		}
		switch {
		case len(b)-i >= n && string(b[i:i+n]) == s[k:k+n]:
			i += n
		case r == utf8.RuneError && n == 1:
			return -1 // not UTF-8: no writer escapes such a byte
		default:
			if i = escapedRune(b, i, r, m.runs); i < 0 {
				return -1
			}
		}
		k += n
	}
	return i
}

// backslashes reports whether b holds w backslashes from i.
func backslashes(b []byte, i, w int) bool {
	if len(b)-i < w {
		return false
	}
	for _, c := range b[i : i+w] {
		if c != '\\' {
			return false
		}
	}
	return true
}

// escapedRune returns where an escape of r starting at b[i] ends, or -1: a
// run of backslashes (one, or more when escaped again) and then r's short
// escape, or "u" and its code (a surrogate pair, each half so escaped, past
// U+FFFF).
func escapedRune(b []byte, i int, r rune, runs *runCache) int {
	j := runs.endOf(b, i)
	if j == i || j == len(b) {
		return -1
	}
	if c := shortEscape(r); c != 0 && b[j] == c {
		return j + 1
	}
	if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
		if j = hexUnit(b, j, r1); j < 0 {
			return -1
		}
		k := runs.endOf(b, j)
		if k == j {
			return -1
		}
		return hexUnit(b, k, r2)
	}
	return hexUnit(b, j, r)
}

// hexUnit returns the end of "uXXXX" at b[j], XXXX being u's code in hex of
// either case, or -1.
func hexUnit(b []byte, j int, u rune) int {
	if len(b)-j < 5 || b[j] != 'u' {
		return -1
	}
	var v rune
	for _, c := range b[j+1 : j+5] {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return -1
		}
	}
	if v != u {
		return -1
	}
	return j + 5
}

// shortEscape is the character after the backslash in r's two-character
// JSON escape (RFC 8259 §7), or 0 when r has none.
func shortEscape(r rune) byte {
	switch r {
	case '"', '/':
		return byte(r)
	case '\b':
		return 'b'
	case '\f':
		return 'f'
	case '\n':
		return 'n'
	case '\r':
		return 'r'
	case '\t':
		return 't'
	}
	return 0 // '\\' is spelled as a run of backslashes (escapedEnd)
}
