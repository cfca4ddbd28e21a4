// Package logging writes the bundle's structured logs: one JSON object per
// line (log/slog), with every configured secret, token, signature and
// access_token value removed before the line leaves the process.
package logging

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
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
// case), so only those bytes are looked at, and a word is compared only when
// the byte before them is its last letter (most quotes in a JSON line end a
// key or value that cannot be one).
func triggers(b []byte) (t [numPatterns]bool) {
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '=':
			switch p := b[:i]; lower(b[i-1]) {
			case 'n':
				t[patQueryToken] = t[patQueryToken] || endsFold(p, "access_token")
			case 'e':
				t[patSignature] = t[patSignature] || endsFold(p, "signature")
			}
		case ' ':
			if lower(b[i-1]) == 'r' {
				t[patBearer] = t[patBearer] || endsFold(b[:i], "bearer")
			}
		case '"':
			if t[patJSONKey] {
				continue
			}
			switch p := b[:i]; lower(b[i-1]) {
			case 'n':
				t[patJSONKey] = endsFold(p, "token") || endsFold(p, "session") || endsFold(p, "sign")
			case 't':
				t[patJSONKey] = endsFold(p, "secret")
			case 'd':
				t[patJSONKey] = endsFold(p, "password")
			}
		}
	}
	return t
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// endsFold reports whether b ends with the lower-case ASCII word w, in any
// case.
func endsFold(b []byte, w string) bool {
	if len(b) < len(w) {
		return false
	}
	b = b[len(b)-len(w):]
	for i := 0; i < len(w); i++ {
		if lower(b[i]) != w[i] {
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
	// line, so it should not allocate. Each is masked as it is and, on a
	// line holding a backslash, however JSON writers escape it, once or
	// escaped again (maskEscaped).
	Secrets func() []string
	// Encoded returns patterns matching secrets as URLs spell them
	// (config.Env.EncodedSecrets), tried only on text holding a '%'.
	Encoded func() []*regexp.Regexp
}

// MinSecretLen is the shortest value redacted: shorter ones would mask
// ordinary words and numbers.
const MinSecretLen = 4

// Redact returns b with every secret and credential pattern masked. When
// nothing matches it returns b itself: the common line costs a few
// substring searches and no copy.
func (r Redactor) Redact(b []byte) []byte {
	if r.Secrets != nil {
		secrets := r.Secrets()
		// A secret as a JSON writer escaped it holds a backslash; the
		// common line has none and is not scanned (escaped.go). Escaped
		// spellings go first: an exact form inside one ("\"x" inside
		// "\\\"x") would leave its extra backslashes.
		if bytes.IndexByte(b, '\\') >= 0 {
			b = maskEscaped(b, secrets)
		}
		for _, s := range secrets {
			if len(s) >= MinSecretLen && strings.Contains(view(b), s) {
				b = bytes.ReplaceAll(b, []byte(s), []byte(Mask))
			}
		}
	}
	if r.Encoded != nil && bytes.IndexByte(b, '%') >= 0 {
		for _, re := range r.Encoded() {
			if re.Match(b) {
				b = re.ReplaceAllLiteral(b, []byte(Mask))
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

// New is a JSON logger on w that redacts secrets. Its handler is a *Handler.
func New(w io.Writer, secrets func() []string, level slog.Level) *slog.Logger {
	return NewRedacting(w, Redactor{Secrets: secrets}, level)
}

// NewRedacting is New with the whole Redactor.
func NewRedacting(w io.Writer, r Redactor, level slog.Level) *slog.Logger {
	rw := &Writer{W: w, R: r}
	return slog.New(&Handler{Handler: slog.NewJSONHandler(rw, &slog.HandlerOptions{Level: level}), w: rw,
		bufs: sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}})
}

// Handler is slog's JSON handler on a redacting Writer, plus HandleFlat: the
// same line for a record of flat attributes, written without slog's
// per-record machinery. The invocation line, written on every call, is such
// a record; slog spends about 2 µs on it (a json.Marshal for its one float,
// an allocation for attributes past the fifth), HandleFlat a fraction.
type Handler struct {
	slog.Handler // the JSON handler: every other record, and the fallback
	w            *Writer
	bufs         sync.Pool
}

// WithAttrs and WithGroup derive plain JSON handlers: HandleFlat writes no
// bound attributes or groups, so a derived handler has none of it.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler { return h.Handler.WithAttrs(as) }
func (h *Handler) WithGroup(name string) slog.Handler    { return h.Handler.WithGroup(name) }

// HandleFlat writes the record slog's JSON handler would write for these
// attributes, byte for byte: time, level, msg, then each attribute in order.
// A value it cannot write exactly as slog does (one needing escapes, another
// kind, a float json.Marshal would write with an exponent) hands the whole
// record to slog. The level is the caller's to check, as with Handle.
func (h *Handler) HandleFlat(ctx context.Context, t time.Time, level slog.Level, msg string, attrs []slog.Attr) error {
	bp := h.bufs.Get().(*[]byte)
	b, ok := appendFlat((*bp)[:0], t, level, msg, attrs)
	defer func() {
		// Like slog's own buffers: a rare long line's buffer is dropped,
		// not kept in the pool for the life of the instance.
		if cap(b) <= 16<<10 {
			*bp = b[:0]
			h.bufs.Put(bp)
		}
	}()
	if !ok {
		r := slog.NewRecord(t, level, msg, 0)
		r.AddAttrs(attrs...)
		return h.Handler.Handle(ctx, r)
	}
	_, err := h.w.Write(b)
	return err
}

// appendFlat appends the JSON line, or reports false when slog would write
// some part of it differently.
func appendFlat(b []byte, t time.Time, level slog.Level, msg string, attrs []slog.Attr) ([]byte, bool) {
	if y := t.Year(); t.IsZero() || y < 0 || y >= 10000 || !plain(msg) { // slog omits a zero time
		return b, false
	}
	b = append(b, `{"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"`...)
	b = append(b, level.String()...)
	b = append(b, `","msg":"`...)
	b = append(b, msg...)
	b = append(b, '"')
	for _, a := range attrs {
		if !plain(a.Key) {
			return b, false
		}
		b = append(b, ',', '"')
		b = append(b, a.Key...)
		b = append(b, '"', ':')
		switch v := a.Value; v.Kind() {
		case slog.KindString:
			s := v.String()
			if !plain(s) {
				return b, false
			}
			b = append(b, '"')
			b = append(b, s...)
			b = append(b, '"')
		case slog.KindInt64:
			b = strconv.AppendInt(b, v.Int64(), 10)
		case slog.KindBool:
			b = strconv.AppendBool(b, v.Bool())
		case slog.KindFloat64:
			// encoding/json (which slog calls for floats) writes 'f'
			// digits in this range and an exponent outside it.
			f := v.Float64()
			if abs := math.Abs(f); f != 0 && (abs < 1e-6 || abs >= 1e21 || math.IsNaN(f)) {
				return b, false
			}
			b = strconv.AppendFloat(b, f, 'f', -1, 64)
		default:
			return b, false
		}
	}
	return append(b, '}', '\n'), true
}

// plain reports whether s is written as is inside JSON quotes by slog: ASCII
// from space to DEL, no quote or backslash.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
