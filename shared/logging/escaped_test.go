package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
)

// again is s escaped once more inside another JSON string: what an answer
// quoting a vendor's JSON error holds.
func again(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// everyU spells every character of s as \uXXXX, upper-case hex.
func everyU(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			fmt.Fprintf(&b, `\u%04X\u%04X`, r1, r2)
		} else {
			fmt.Fprintf(&b, `\u%04X`, r)
		}
	}
	return b.String()
}

// A secret is masked however a JSON writer escaped it, once or escaped again
// in an answer: "ck1\/demo…" and Gson's "\u003d" were shown in clear, and Go's
// "\u0026" too once the answer escaped it again (an outside tester). The
// whole spelling is masked, leading backslashes included.
func TestRedactJSONEscapedSecrets(t *testing.T) {
	const (
		slash  = `ck1/demo+secret/0123456789==`
		amp    = `ck1&demo+secret/0123456789==`
		quoted = "q\"uo\\te\td-secret-0123"
		emoji  = "emoji-\U0001F600-secret-0123"
	)
	e := config.FromMap(nil)
	for _, s := range []string{slash, amp, quoted, emoji} {
		e.Remember(s)
	}
	r := Redactor{Secrets: e.Secrets, Encoded: e.EncodedSecrets}
	for _, tc := range []struct{ name, spelling string }{
		{"plain", slash},
		{`\/`, `ck1\/demo+secret\/0123456789==`},
		{`\u003d`, `ck1\/demo+secret\/0123456789\u003d\u003d`},
		{`\u003D`, `ck1/demo+secret/0123456789\u003D\u003D`},
		{`\u0026`, `ck1\u0026demo+secret/0123456789==`},
		{`\u0026 doubled`, `ck1\\u0026demo+secret/0123456789==`},
		{`\/ doubled`, again(`ck1\/demo+secret\/0123456789==`)},
		{`\u003d doubled`, again(`ck1/demo+secret/0123456789\u003d\u003d`)},
		{"a mix", `ck1\/demo\u002bsecret\\/0123456789\u003D\\u003d`},
		{"every character as \\u", everyU(slash)},
		{"every character as \\u, doubled", again(everyU(amp))},
		{`\" \\ \t`, `q\"uo\\te\td-secret-0123`},
		{`\" \\ \t doubled`, again(`q\"uo\\te\td-secret-0123`)},
		{`\" and \\ as \u`, `q\u0022uo\u005Cte\u0009d-secret-0123`},
		{"surrogate pair", `emoji-\ud83d\ude00-secret-0123`},
		{"surrogate pair, upper-case hex, doubled", `emoji-\\uD83D\\uDE00-secret-0123`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := `{"msg":"refused","upstream":{"message":"client_secret ` + tc.spelling + ` is not valid"}}`
			require.Equal(t, `{"msg":"refused","upstream":{"message":"client_secret [REDACTED] is not valid"}}`, string(r.Redact([]byte(in))))
		})
	}
	for _, other := range []string{`ck1\/demo+secret\/0123456788==`, `ck1\u0026demo+secret/012345678==`, `emoji-\ud83d\ude01-secret-0123`} {
		in := `{"msg":"client_secret ` + other + `"}`
		require.Equal(t, in, string(r.Redact([]byte(in))), "another value is kept")
	}

	// A log line: slog escapes the vendor's escapes again.
	var out bytes.Buffer
	NewRedacting(&out, r, slog.LevelInfo).Info("token refused", "body", `{"error_description":"client_secret ck1\u0026demo+secret\/0123456789\u003D="}`)
	require.Contains(t, out.String(), `client_secret [REDACTED]\"}"`)
	require.NotContains(t, out.String(), "0123456789")
}

// Looking for escaped spellings allocates nothing when none is there, on a
// line with a backslash too; a line without one is not scanned.
func TestRedactJSONEscapedAllocatesOnlyToMask(t *testing.T) {
	e := config.FromMap(nil)
	e.Remember(`ck1/demo+secret/0123456789==`)
	e.Remember(`q"uo\te-secret-0123`)
	e.Remember(`vendor\\said-secret-0123`) // the line holds "vendor" and then no backslash
	r := Redactor{Secrets: e.Secrets, Encoded: e.EncodedSecrets}
	for _, line := range []string{`{"level":"INFO","msg":"invocation","status":200,"errCode":0}`,
		`{"level":"WARN","msg":"vendor said \"no\"","body":"{\"a\":\"ck1\\/demo+secret\\/0123456789=\"}"}`} {
		b := []byte(line)
		out := r.Redact(b)
		require.Same(t, &b[0], &out[0], "nothing to redact: the same buffer")
		require.Zero(t, testing.AllocsPerRun(100, func() { _ = r.Redact(b) }))
	}
}

// Whatever the secret, encoding/json's spelling of it, HTML-safe or not,
// and every character as \u, once or escaped again, is masked whole, and the
// text around it is kept.
func FuzzRedactJSONEscaped(f *testing.F) {
	for _, s := range []string{`ck1/demo+secret/0123456789==`, `ck1&demo<>"\`, "tab\there\x01\u2028", "emoji-\U0001F600-x", `\\\\`, `a\"b`, `\u00`, `"000`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) < MinSecretLen || !utf8.ValidString(s) || strings.Contains(s, Mask) || strings.ContainsRune(s, 0) {
			t.Skip()
		}
		e := config.FromMap(nil)
		e.Remember(s)
		r := Redactor{Secrets: e.Secrets, Encoded: e.EncodedSecrets}
		var html, plain bytes.Buffer
		require.NoError(t, json.NewEncoder(&html).Encode(s))
		enc := json.NewEncoder(&plain)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(s))
		unquote := func(b bytes.Buffer) string { q := strings.TrimSuffix(b.String(), "\n"); return q[1 : len(q)-1] }
		once := []string{unquote(html), unquote(plain), everyU(s)}
		for _, sp := range append(once, again(once[0]), again(once[1]), again(once[2])) {
			in := "{\"msg\":\"\x00" + sp + "\x00\"}" // a raw NUL: no spelling begins or ends past it
			out := string(r.Redact([]byte(in)))
			for strings.Contains(out, Mask+Mask) { // a secret made of its own exact forms ("\\\\") is masked in pieces
				out = strings.ReplaceAll(out, Mask+Mask, Mask)
			}
			require.Equal(t, "{\"msg\":\"\x00"+Mask+"\x00\"}", out, "%q as %q", s, sp)
		}
	})
}

// A secret of many backslashes against a long run of them is decided in
// time, not by trying every way to split the run.
func TestRedactJSONEscapedManyBackslashes(t *testing.T) {
	s := strings.Repeat(`\`, 30) + "x-secret"
	r := Redactor{Secrets: func() []string { return []string{s} }}
	in := `{"msg":"` + strings.Repeat(`\`, 500) + `y"}`
	require.Equal(t, in, string(r.Redact([]byte(in))))
	in = `{"msg":"` + strings.Repeat(`\`, 120) + `x-secret"}`
	require.Equal(t, `{"msg":"`+Mask+`"}`, string(r.Redact([]byte(in))), "escaped twice: four each")
}

// A secret whose stored JSON form starts with a backslash ("\u0026…" for
// '&', "\"…" for a quote) was tried at every backslash of a run, and each
// try looked for the run's end afresh: 100,000 backslashes took 12 s (a
// re-tester). Each run's end is now looked for once.
func TestRedactJSONEscapedLongRunIsLinear(t *testing.T) {
	for _, secret := range []string{"&demo-secret-0123", `"quoted-secret-01`, `\abcdef0123`, strings.Repeat(`\`, 50) + "x"} {
		forms := []string{secret}
		if b, _ := json.Marshal(secret); string(b[1:len(b)-1]) != secret {
			forms = append(forms, string(b[1:len(b)-1]))
		}
		for _, n := range []int{1000, 20000} {
			line := bytes.Repeat([]byte{'\\'}, n)
			out, scanned := maskEscapedScan(line, forms)
			require.Equal(t, string(line), string(out), "%q: nothing to mask", secret)
			require.LessOrEqual(t, scanned, 2*n, "%q over %d backslashes: bytes looked at", secret, n)
		}
	}
}
