// Package config reads the bundle's environment contract (DESIGN §5): plain
// variables, and secrets that may also come from a file named by <NAME>_FILE.
// It remembers every secret value it handed out so logs can redact them.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Env is a view of the environment. The zero value is not usable; use FromOS
// or FromMap.
type Env struct {
	lookup func(string) (string, bool)
	names  func() []string

	mu      sync.Mutex
	secrets map[string]struct{}
	// sorted is the secrets longest first, rebuilt only when a new value is
	// remembered: every log line reads it, and sorting per line cost a warm
	// call about 1.5 µs and three allocations.
	sorted atomic.Pointer[[]string]
	// encoded matches each secret as URLs may spell it (urlPattern), for
	// the secrets that hold a byte a URL escapes.
	encoded atomic.Pointer[[]*regexp.Regexp]
}

// FromOS reads the process environment.
func FromOS() *Env {
	return &Env{lookup: os.LookupEnv, names: func() []string {
		var out []string
		for _, kv := range os.Environ() {
			if k, _, ok := strings.Cut(kv, "="); ok {
				out = append(out, k)
			}
		}
		return out
	}}
}

// FromMap reads a fixed map (tests, the emulator).
func FromMap(m map[string]string) *Env {
	return &Env{lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }, names: func() []string {
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		return out
	}}
}

// Names lists the variables set whose name starts with prefix, in any case,
// sorted, so a function can name the ones of its own family it does not
// read (a typo there, "quota_alert_threshold" too, is otherwise ignored
// without a word).
func (e *Env) Names(prefix string) []string {
	var out []string
	for _, n := range e.names() {
		if len(n) >= len(prefix) && strings.EqualFold(n[:len(prefix)], prefix) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Get returns the variable, or def when it is unset or empty.
func (e *Env) Get(name, def string) string {
	if v, ok := e.lookup(name); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

// Bool reads "true/1/yes/on" as true.
func (e *Env) Bool(name string, def bool) bool {
	switch strings.ToLower(e.Get(name, "")) {
	case "true", "1", "yes", "on":
		return true
	case "false", "0", "no", "off":
		return false
	}
	return def
}

// Int reads an integer, or def when unset; a malformed value is an error that
// names the variable.
func (e *Env) Int(name string, def int) (int, error) {
	v := e.Get(name, "")
	if v == "" {
		return def, nil
	}
	// The whole value, in decimal: "1e6" or "2000000 fen" must not become
	// 1 or 2000000 (fmt.Sscan kept the leading digits of both).
	n, err := strconv.Atoi(v)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%s=%q: out of range (at most %d)", name, v, math.MaxInt)
	}
	if err != nil {
		return 0, fmt.Errorf("%s=%q: expected an integer in plain decimal digits, such as 100", name, v)
	}
	return n, nil
}

// Duration reads a Go duration ("750ms", "5s"), or def when unset.
func (e *Env) Duration(name string, def time.Duration) (time.Duration, error) {
	v := e.Get(name, "")
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: expected a duration such as 5s", name, v)
	}
	return d, nil
}

// Secret returns the secret NAME, or the contents of the file NAME_FILE names
// (less one final line break); both set is an error, and so is a file that
// holds nothing. Empty means not configured. Secrets are taken
// verbatim: a value that begins or ends with whitespace is an error naming
// the variable, never silently trimmed (a trimmed key signs differently). The
// value is remembered for redaction.
func (e *Env) Secret(name string) (string, error) {
	v, _ := e.lookup(name)
	from := name
	if v != "" && e.Get(name+"_FILE", "") != "" {
		// Which one was meant cannot be known; the file was ignored.
		return "", fmt.Errorf("%s and %s_FILE are both set: set one of them", name, name)
	}
	if v == "" {
		if path := e.Get(name+"_FILE", ""); path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				return "", fmt.Errorf("%s_FILE: %w", name, err)
			}
			v = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			from = name + "_FILE"
			if v == "" {
				// A file named on purpose that holds nothing is a secret
				// mount that came up empty, not "not configured": read as
				// unset, CLOUDCALL_CALLER_KEYS_FILE with
				// CLOUDCALL_ALLOW_ANONYMOUS let unsigned calls through (an
				// outside tester).
				return "", fmt.Errorf("%s_FILE: %s is empty; write the value into it, or unset %s_FILE", name, path, name)
			}
		}
	}
	if v != "" && strings.TrimSpace(v) != v {
		return "", fmt.Errorf("%s: the value begins or ends with whitespace; secrets are taken verbatim, so remove it", from)
	}
	if v != "" {
		e.remember(v)
	}
	return v, nil
}

// SecretOrWord reads a setting that is one of the plain words (CLOUDCALL_STORE's
// "memory") or else a secret (a URL that may carry a password): a word is not
// remembered for redaction, or every "memory" in the logs would be hidden.
func (e *Env) SecretOrWord(name string, words ...string) (string, error) {
	if v, ok := e.lookup(name); ok {
		for _, w := range words {
			if v == w {
				return v, nil
			}
		}
	}
	return e.Secret(name)
}

// RequireSecrets reads several secrets and names every one that is missing.
func (e *Env) RequireSecrets(names ...string) (map[string]string, error) {
	out := make(map[string]string, len(names))
	var missing []string
	for _, n := range names {
		v, err := e.Secret(n)
		if err != nil {
			return nil, err
		}
		if v == "" {
			missing = append(missing, n)
		}
		out[n] = v
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("set %s (or %s_FILE)", strings.Join(missing, ", "), strings.Join(missing, "_FILE, "))
	}
	return out, nil
}

// Remember marks a value obtained elsewhere (a token, an STS secret) as secret.
func (e *Env) Remember(v string) {
	if v != "" {
		e.remember(v)
	}
}

func (e *Env) remember(v string) {
	// Known already: the common case, as instances read shared tokens on
	// every call. Nothing to parse or allocate.
	e.mu.Lock()
	_, known := e.secrets[v]
	e.mu.Unlock()
	if known {
		return
	}
	// A secret URL's path is a secret on its own: a Slack or Feishu webhook
	// carries its token there, and a log line may quote a request's path
	// without the rest of the URL. Short paths ("/", "/hook") carry none
	// and would mask too much.
	if u, err := url.Parse(v); err == nil && (u.Scheme == "https" || u.Scheme == "http") && len(u.Path) >= 12 && u.Path != v {
		e.remember(u.Path)
	}
	// Answers and log lines are JSON: a secret holding '&', '<', '>', '"',
	// '\' or a control character appears there escapes and all
	// ("a\u0026b"), and was shown in clear. (Other writers' spellings, and
	// escaped again, are found by logging's redactor on lines with a
	// backslash.)
	forms := append([]string{v}, jsonForms(v)...)
	pattern := urlPattern(v)
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.secrets[v]; ok {
		return
	}
	if e.secrets == nil {
		e.secrets = map[string]struct{}{}
	}
	for _, f := range forms {
		e.secrets[f] = struct{}{}
	}
	if pattern != nil {
		var enc []*regexp.Regexp
		if p := e.encoded.Load(); p != nil {
			enc = append(enc, *p...)
		}
		enc = append(enc, pattern)
		e.encoded.Store(&enc)
	}
	out := make([]string, 0, len(e.secrets))
	for s := range e.secrets {
		out = append(out, s)
	}
	// Longest first, then by value so the order does not depend on map order.
	sort.Slice(out, func(i, j int) bool {
		if len(out[i]) != len(out[j]) {
			return len(out[i]) > len(out[j])
		}
		return out[i] < out[j]
	})
	e.sorted.Store(&out)
}

// jsonForms are the ways JSON writers spell v inside a string when that is
// not v itself: encoding/json's (HTML-safe) and without HTML escaping.
func jsonForms(v string) []string {
	var out []string
	for _, html := range []bool{true, false} {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if enc.Encode(v) != nil {
			continue
		}
		q := strings.TrimSuffix(b.String(), "\n")
		if q = q[1 : len(q)-1]; q != v && !slices.Contains(out, q) {
			out = append(out, q)
		}
	}
	return out
}

// urlPattern matches v as URLs may spell it: each byte a URL escapes
// either as it is or percent-encoded, hex in either case, once or twice (a
// gateway quoting a URL inside a URL), a space also as '+' and a '+' as a
// space (form-decoded). A vendor's
// error may quote the request it refused: an STS token ('+', '/', '=')
// appeared there percent-encoded, in clear, in lower-case hex, with '/'
// left as it is, or encoded twice (outside testers). nil when v holds no
// such byte, or is too short to mask (logging.MinSecretLen).
func urlPattern(v string) *regexp.Regexp {
	if len(v) < 4 || strings.Trim(v, unreserved) == "" {
		return nil
	}
	var b strings.Builder
	for _, r := range v {
		c := string(r)
		if r < utf8.RuneSelf && strings.ContainsRune(unreserved, r) {
			b.WriteString(c)
			continue
		}
		b.WriteString("(?:" + regexp.QuoteMeta(c) + "|")
		switch r {
		case ' ':
			b.WriteString(`\+|`)
		case '+':
			// A form decoder reads a raw '+' as a space: the token came
			// back with spaces where its pluses were (an outside tester).
			b.WriteString(` |%(?:25)?20|`)
		}
		for _, x := range []byte(c) {
			h := fmt.Sprintf("%02X", x)
			b.WriteString("%(?:25)?" + hexClass(h[0]) + hexClass(h[1]))
		}
		b.WriteString(")")
	}
	return regexp.MustCompile(b.String())
}

// unreserved are the bytes no URL escapes (RFC 3986 §2.3).
const unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"

// hexClass matches the hex digit d in either case.
func hexClass(d byte) string {
	if d >= 'A' && d <= 'F' {
		return "[" + string(d) + string(d+'a'-'A') + "]"
	}
	return string(d)
}

// EncodedSecrets lists patterns that match a secret as URLs spell it, for
// the secrets that hold a byte a URL escapes. The slice is shared and must
// not be modified; it does not allocate.
func (e *Env) EncodedSecrets() []*regexp.Regexp {
	if p := e.encoded.Load(); p != nil {
		return *p
	}
	return nil
}

// Secrets lists every secret value handed out so far, longest first (so a
// redactor replaces a secret before any shorter secret inside it). The slice
// is shared and must not be modified; it does not allocate.
func (e *Env) Secrets() []string {
	if p := e.sorted.Load(); p != nil {
		return *p
	}
	return nil
}
