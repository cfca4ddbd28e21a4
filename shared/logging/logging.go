// Package logging writes the bundle's structured logs: one JSON object per
// line (log/slog), with every configured secret, token, signature and
// access_token value removed before the line leaves the process.
package logging

import (
	"bytes"
	"io"
	"log/slog"
	"regexp"
	"sync"
)

// Mask replaces what is redacted.
const Mask = "[REDACTED]"

// patterns catch credentials that are not configured values: tokens the
// function fetched, signatures, bearer tokens, query-string tokens. Each runs
// only when one of its markers is in the line: most lines carry none, and the
// regexps would otherwise dominate a warm invocation's cost.
var patterns = []struct {
	re      *regexp.Regexp
	markers []string
}{
	{regexp.MustCompile(`(access_token=)[^&"\s\\]+`), []string{"access_token="}},
	{regexp.MustCompile(`((?i:signature)=)[0-9A-Za-z+/=_\-]{16,}`), []string{"ignature=", "IGNATURE="}},
	{regexp.MustCompile(`((?i:bearer) )[0-9A-Za-z._\-+/=]{8,}`), []string{"earer ", "EARER "}},
	{regexp.MustCompile(`("(?i:access_?token|refresh_?token|secret|session|sign|security_?token|password)"\s*:\s*")[^"]+`),
		[]string{"oken\"", "OKEN\"", "ecret\"", "ECRET\"", "ession\"", "ESSION\"", "ign\"", "IGN\"", "assword\"", "ASSWORD\""}},
}

// Redactor removes secrets from text.
type Redactor struct {
	// Secrets returns the current secret values (config.Env.Secrets: it
	// grows as tokens are fetched), longest first.
	Secrets func() []string
}

// Redact returns b with every secret and credential pattern masked.
func (r Redactor) Redact(b []byte) []byte {
	if r.Secrets != nil {
		for _, s := range r.Secrets() {
			if len(s) >= 4 && bytes.Contains(b, []byte(s)) {
				b = bytes.ReplaceAll(b, []byte(s), []byte(Mask))
			}
		}
	}
	for _, p := range patterns {
		for _, m := range p.markers {
			if bytes.Contains(b, []byte(m)) {
				b = p.re.ReplaceAll(b, []byte("${1}"+Mask))
				break
			}
		}
	}
	return b
}

// Writer redacts each write before passing it on. slog's JSON handler writes
// a whole record per call, so a secret is never split across writes.
type Writer struct {
	W  io.Writer
	R  Redactor
	mu sync.Mutex
}

func (w *Writer) Write(p []byte) (int, error) {
	out := w.R.Redact(append([]byte(nil), p...))
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
