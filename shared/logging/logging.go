// Package logging writes the bundle's structured logs: one JSON object per
// line (log/slog), with every configured secret, token, signature and
// access_token value removed before the line leaves the process.
package logging

import (
	"bytes"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"unsafe"
)

// Mask replaces what is redacted.
const Mask = "[REDACTED]"

// pattern catches credentials that are not configured values: tokens the
// function fetched, signatures, bearer tokens, query-string tokens. A
// pattern's regexp runs only when the line has its trigger (see triggers):
// most lines have none, and the regexps would otherwise dominate a warm
// invocation's cost.
type pattern struct {
	re func() *regexp.Regexp
}

// lazy compiles on first use: a line that needs a pattern is rare, and
// compiling four regexps at package init cost every cold start ~0.2 ms.
func lazy(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

const (
	patQueryToken = iota // access_token=…
	patSignature         // signature=…
	patBearer            // Bearer …
	patJSONKey           // "…token": "…", "secret": …, …
	numPatterns
)

var patterns = [numPatterns]pattern{
	patQueryToken: {lazy(`(access_token=)[^&"\s\\]+`)},
	patSignature:  {lazy(`((?i:signature)=)[0-9A-Za-z+/=_\-]{16,}`)},
	patBearer:     {lazy(`((?i:bearer) )[0-9A-Za-z._\-+/=]{8,}`)},
	patJSONKey:    {lazy(`("(?i:access_?token|refresh_?token|secret|session|sign|security_?token|password)"\s*:\s*")[^"]+`)},
}

// triggers reads the line once and says which patterns could match: each
// match needs a word right before an '=', a space or a '"' (compared without
// case), so only those bytes are looked at.
func triggers(b []byte) (t [numPatterns]bool) {
	for i, c := range b {
		switch c {
		case '=':
			t[patQueryToken] = t[patQueryToken] || endsFold(b[:i], "access_token")
			t[patSignature] = t[patSignature] || endsFold(b[:i], "signature")
		case ' ':
			t[patBearer] = t[patBearer] || endsFold(b[:i], "bearer")
		case '"':
			if !t[patJSONKey] {
				p := b[:i]
				t[patJSONKey] = endsFold(p, "token") || endsFold(p, "secret") || endsFold(p, "session") || endsFold(p, "sign") || endsFold(p, "password")
			}
		}
	}
	return t
}

// endsFold reports whether b ends with the lower-case ASCII word w, in any
// case.
func endsFold(b []byte, w string) bool {
	if len(b) < len(w) {
		return false
	}
	b = b[len(b)-len(w):]
	for i := 0; i < len(w); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}

var maskRepl = []byte("${1}" + Mask)

// Redactor removes secrets from text.
type Redactor struct {
	// Secrets returns the current secret values (config.Env.Secrets: it
	// grows as tokens are fetched), longest first. It is called once per
	// line, so it should not allocate.
	Secrets func() []string
}

// MinSecretLen is the shortest value redacted: shorter ones would mask
// ordinary words and numbers.
const MinSecretLen = 4

// Redact returns b with every secret and credential pattern masked. When
// nothing matches it returns b itself: the common line costs a few
// substring searches and no copy.
func (r Redactor) Redact(b []byte) []byte {
	if r.Secrets != nil {
		for _, s := range r.Secrets() {
			if len(s) >= MinSecretLen && strings.Contains(view(b), s) {
				b = bytes.ReplaceAll(b, []byte(s), []byte(Mask))
			}
		}
	}
	t := triggers(b)
	for i := range patterns {
		if t[i] {
			b = patterns[i].re().ReplaceAll(b, maskRepl)
		}
	}
	return b
}

// view reads b as a string without copying it, for searching only: b is not
// modified while the view is in use.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// Writer redacts each write before passing it on. slog's JSON handler writes
// a whole record per call, so a secret is never split across writes.
type Writer struct {
	W  io.Writer
	R  Redactor
	mu sync.Mutex
}

// Write redacts p without modifying it (slog reuses its buffer) and writes
// the result in one call.
func (w *Writer) Write(p []byte) (int, error) {
	out := w.R.Redact(p) // p itself when nothing matched; a new slice otherwise
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.W.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// New is a JSON logger on w that redacts.
func New(w io.Writer, secrets func() []string, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(&Writer{W: w, R: Redactor{Secrets: secrets}}, &slog.HandlerOptions{Level: level}))
}
