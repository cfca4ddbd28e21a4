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
