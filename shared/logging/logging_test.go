package logging

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRedact(t *testing.T) {
	var out bytes.Buffer
	log := New(&out, func() []string { return []string{"the-configured-secret"} }, 0)
	log.Info("call",
		"url", "https://api.weixin.qq.com/cgi-bin/x?access_token=sbx_abc123&y=1",
		"auth", "CLOUDCALL-HMAC-SHA256 KeyId=a,Timestamp=1,Nonce=n,Signature=0123456789abcdef0123456789abcdef",
		"hdr", "Bearer eyJhbGciOiJIUzI1NiJ9.payload",
		"err", "bad the-configured-secret here")
	s := out.String()
	for _, leaked := range []string{"sbx_abc123", "0123456789abcdef0123456789abcdef", "eyJhbGciOiJIUzI1NiJ9", "the-configured-secret"} {
		require.NotContains(t, s, leaked)
	}
	require.Contains(t, s, "access_token=[REDACTED]&y=1")
	require.Contains(t, s, `"msg":"call"`)
}

// A line with nothing to redact is passed through as is: no copy, no
// regexp; a line with a secret is redacted into a new slice and the
// caller's buffer (slog reuses it) is left untouched.
func TestRedactFastPath(t *testing.T) {
	secrets := []string{"configured-secret-value", "tok"}
	r := Redactor{Secrets: func() []string { return secrets }}
	clean := []byte(`{"level":"INFO","msg":"invocation","status":200,"errCode":0}`)
	out := r.Redact(clean)
	require.Same(t, &clean[0], &out[0], "nothing to redact: the same buffer")
	require.Zero(t, testing.AllocsPerRun(100, func() { _ = r.Redact(clean) }))

	dirty := []byte(`{"msg":"x","err":"configured-secret-value","url":"/a?access_token=abc&b=1"}`)
	orig := string(dirty)
	out = r.Redact(dirty)
	require.Equal(t, orig, string(dirty), "the input is not modified")
	require.Equal(t, `{"msg":"x","err":"[REDACTED]","url":"/a?access_token=[REDACTED]&b=1"}`, string(out))
}

func TestRedactPatterns(t *testing.T) {
	r := Redactor{}
	for _, tc := range []struct{ in, want string }{
		{`{"access_token":"abc"}`, `{"access_token":"[REDACTED]"}`},
		{`{"refreshToken": "r1"}`, `{"refreshToken": "[REDACTED]"}`},
		{`Signature=0123456789abcdef0123`, `Signature=[REDACTED]`},
		{`Authorization: Bearer abcdefgh.ij`, `Authorization: Bearer [REDACTED]`},
		{`{"msg":"no credentials here"}`, `{"msg":"no credentials here"}`},
		{`{"Password" : "hunter2"}`, `{"Password" : "[REDACTED]"}`},
		{`{"SECURITY_TOKEN":"sts"}`, `{"SECURITY_TOKEN":"[REDACTED]"}`},
		{`{"accessToken":"abc","session":"s1"}`, `{"accessToken":"[REDACTED]","session":"[REDACTED]"}`},
		{`GET /x?a=1&access_token=t0k3n"`, `GET /x?a=1&access_token=[REDACTED]"`},
		{`SIGNATURE=0123456789ABCDEF0123`, `SIGNATURE=[REDACTED]`},
		{`authorization: BEARER abcdefgh.ij`, `authorization: BEARER [REDACTED]`},
		{`{"token_count":3,"design":"x"}`, `{"token_count":3,"design":"x"}`}, // trigger words inside other words are not keys
		{`"tok"`, `"tok"`}, // shorter than MinSecretLen: not a configured secret
	} {
		require.Equal(t, tc.want, string(r.Redact([]byte(tc.in))), tc.in)
	}
}

// triggers may say yes when no pattern matches, never no when one does: a
// missed trigger would let a credential through unredacted.
func FuzzTriggersNeverMissAMatch(f *testing.F) {
	for _, s := range []string{`{"access_token":"abc"}`, `{"refreshToken": "r1"}`, `Signature=0123456789abcdef0123`,
		`Authorization: Bearer abcdefgh.ij`, `{"Password" : "hunter2"}`, `{"SECURITY_TOKEN":"sts"}`, `{"sign":"abc"}`,
		`x?ACCESS_TOKEN=t0k3n&y`, `{"Session":"s"}`, `{"secret" :"s"}`, `bEaReR 0123456789`, `{"msg":"no credentials here"}`,
		`signature=abc signature=0123456789abcdef0123`, `{"x":"y","accessToken":"a"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := triggers(b)
		for i := range patterns {
			if patterns[i].re().Match(b) {
				require.True(t, got[i], "pattern %d matches %q but was not triggered", i, b)
			}
		}
	})
}
