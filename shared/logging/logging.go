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
// function fetched, signatures, bearer tokens, query-string tokens. Each runs
// only when one of its markers is in the line: most lines carry none, and the
// regexps would otherwise dominate a warm invocation's cost.
type pattern struct {
	re      func() *regexp.Regexp
	markers []string
}

// lazy compiles on first use: a line that needs a pattern is rare, and
// compiling four regexps at package init cost every cold start ~0.2 ms.
func lazy(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

var patterns = [...]pattern{
	{lazy(`(access_token=)[^&"\s\\]+`), []string{"access_token="}},
	{lazy(`((?i:signature)=)[0-9A-Za-z+/=_\-]{16,}`), []string{"ignature=", "IGNATURE="}},
	{lazy(`((?i:bearer) )[0-9A-Za-z._\-+/=]{8,}`), []string{"earer ", "EARER "}},
	{lazy(`("(?i:access_?token|refresh_?token|secret|session|sign|security_?token|password)"\s*:\s*")[^"]+`),
		[]string{"oken\"", "OKEN\"", "ecret\"", "ECRET\"", "ession\"", "ESSION\"", "ign\"", "IGN\"", "assword\"", "ASSWORD\""}},
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
	for i := range patterns {
		p := &patterns[i]
		for _, m := range p.markers {
			if strings.Contains(view(b), m) {
				b = p.re().ReplaceAll(b, maskRepl)
				break
			}
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
