package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Secrets are taken verbatim: surrounding whitespace is an error naming the
// variable, never trimmed; a file loses one final line break only.
func TestSecretVerbatim(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	cases := []struct {
		name string
		env  map[string]string
		want string
		err  string
	}{
		{"plain", map[string]string{"S": "a b\tc"}, "a b\tc", ""},
		{"unset", nil, "", ""},
		{"both", map[string]string{"S": "x", "S_FILE": "/run/secrets/s"}, "", "S and S_FILE are both set: set one of them"},
		{"trailing space", map[string]string{"S": "secret "}, "", "S: the value begins or ends with whitespace"},
		{"leading tab", map[string]string{"S": "\tsecret"}, "", "S: the value begins or ends with whitespace"},
		{"trailing newline", map[string]string{"S": "secret\n"}, "", "S: the value begins or ends with whitespace"},
		{"only spaces", map[string]string{"S": "   "}, "", "S: the value begins or ends with whitespace"},
		{"file with a final newline", map[string]string{"S_FILE": file("nl", "secret\n")}, "secret", ""},
		{"file with a final CRLF", map[string]string{"S_FILE": file("crlf", "secret\r\n")}, "secret", ""},
		{"file without a newline", map[string]string{"S_FILE": file("none", "secret")}, "secret", ""},
		{"file with a trailing space", map[string]string{"S_FILE": file("sp", "secret \n")}, "", "S_FILE: the value begins or ends with whitespace"},
		{"file with two newlines", map[string]string{"S_FILE": file("nl2", "secret\n\n")}, "", "S_FILE: the value begins or ends with whitespace"},
		{"file missing", map[string]string{"S_FILE": filepath.Join(dir, "nope")}, "", "S_FILE:"},
		// A secret mount that came up empty is not "unset".
		{"empty file", map[string]string{"S_FILE": file("empty", "")}, "", "S_FILE: " + filepath.Join(dir, "empty") + " is empty; write the value into it, or unset S_FILE"},
		{"file with a line break only", map[string]string{"S_FILE": file("lf", "\n")}, "", "is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := FromMap(c.env)
			v, err := e.Secret("S")
			if c.err != "" {
				require.ErrorContains(t, err, c.err)
				require.NotContains(t, err.Error(), "secret ", "the value is never quoted")
				require.Empty(t, e.Secrets())
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.want, v)
		})
	}
}

// An integer setting is the whole value in decimal digits: "1e6" used to
// become 1 (a price cap of 1 fen) and "2000000 fen" 2000000.
func TestIntTakesTheWholeValue(t *testing.T) {
	for v, want := range map[string]int{"1000000": 1000000, "0": 0, "-5": -5, " 42 ": 42} {
		n, err := FromMap(map[string]string{"N": v}).Int("N", 7)
		require.NoError(t, err, v)
		require.Equal(t, want, n, v)
	}
	for _, v := range []string{"1e6", "2000000 fen", "10.5", "0x10", "1_000"} {
		_, err := FromMap(map[string]string{"N": v}).Int("N", 7)
		require.ErrorContains(t, err, `N="`+v+`": expected an integer in plain decimal digits`, v)
	}
	n, err := FromMap(nil).Int("N", 7)
	require.NoError(t, err)
	require.Equal(t, 7, n, "unset: the default")
	// Plain digits past int: out of range, not "expected plain digits".
	_, err = FromMap(map[string]string{"N": "99999999999999999999999"}).Int("N", 0)
	require.EqualError(t, err, `N="99999999999999999999999": out of range (at most 9223372036854775807)`)
}

// CLOUDCALL_STORE=memory is a word, not a secret: remembering it hid every
// "memory" in the logs. A URL is still a secret.
func TestSecretOrWord(t *testing.T) {
	env := FromMap(map[string]string{"S": "memory", "U": "redis://:pw-123456@host:6379/0"})
	v, err := env.SecretOrWord("S", "memory")
	require.NoError(t, err)
	require.Equal(t, "memory", v)
	require.NotContains(t, env.Secrets(), "memory")
	v, err = env.SecretOrWord("U", "memory")
	require.NoError(t, err)
	require.Equal(t, "redis://:pw-123456@host:6379/0", v)
	require.Contains(t, env.Secrets(), "redis://:pw-123456@host:6379/0")
}

// A secret URL's long path is a secret too (a Slack or Feishu webhook's
// token), so a log line quoting only the path is redacted; a short path is
// not, nor a URL that is not http(s).
func TestASecretURLsPathIsASecret(t *testing.T) {
	env := FromMap(map[string]string{
		"QUOTA_ALERT_SLACK_URL":   "https://hooks.slack.com/services/T0/B0/s3cretslack",
		"QUOTA_ALERT_WEBHOOK_URL": "https://example.com/hook",
		"CLOUDCALL_STORE":         "redis://:pw@cache:6379/0",
	})
	for _, n := range []string{"QUOTA_ALERT_SLACK_URL", "QUOTA_ALERT_WEBHOOK_URL", "CLOUDCALL_STORE"} {
		_, err := env.Secret(n)
		require.NoError(t, err)
	}
	require.Contains(t, env.Secrets(), "/services/T0/B0/s3cretslack")
	require.NotContains(t, env.Secrets(), "/hook")
	require.NotContains(t, env.Secrets(), "/0")
}
