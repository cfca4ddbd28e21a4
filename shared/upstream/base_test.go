package upstream

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
)

func TestBase(t *testing.T) {
	const def = "https://api.weixin.qq.com"
	for _, tc := range []struct {
		value, plaintext, err string
	}{
		{"", "", ""},
		{"https://api.weixin.qq.com", "", ""},
		{"https://gw.api.taobao.com/router/rest", "", ""},
		{"http://127.0.0.1:9100", "", ""},
		{"http://[::1]:9100", "", ""},
		{"http://localhost:9100", "", ""},
		{"http://0.0.0.0:9100", "", ""},
		{"http://api.weixin.qq.com", "", `W="http://api.weixin.qq.com": plain http to another host would send the credentials in clear: use https, or set CLOUDCALL_ALLOW_PLAINTEXT_UPSTREAM=true for a sandbox on another host`},
		{"http://10.0.0.7:9100", "", "plain http to another host"},
		{"http://10.0.0.7:9100", "true", ""},
		{"https://user:pw@api.weixin.qq.com", "", "W: the address carries user info (user:password@); the vendor's credentials have their own settings, so remove it"},
		{"https://api.weixin.qq.com/?x=1", "", `W="https://api.weixin.qq.com/?x=1": expected no query or fragment`},
		{"https://api.weixin.qq.com#f", "", "expected no query or fragment"},
		{"http://127.0.0.1:9100#", "", "expected no query or fragment"},
		{"http://LOCALHOST:9100", "", ""},
		{"http://localhost:99999", "", `W="http://localhost:99999": the port is not a number from 1 to 65535`},
		{"https://api.weixin.qq.com:0", "", "the port is not a number"},
		{"http://localhost.:9100", "", ""},
		{"api.weixin.qq.com", "", `W="api.weixin.qq.com": expected an address such as https://api.weixin.qq.com`},
		{"ftp://api.weixin.qq.com", "", "expected an address such as"},
		// Malformed with a password in it: never quoted.
		{"https://user:pw word@api.weixin.qq.com", "", "W (not shown: an '@' may follow a password): expected an address such as"},
		{"https:api.weixin.qq.com", "", "expected an address such as"},
	} {
		env := config.FromMap(map[string]string{"W": tc.value, PlaintextVar: tc.plaintext})
		got, err := Base(env, "W", env.Get("W", def), def)
		if tc.err == "" {
			require.NoError(t, err, tc.value)
			if tc.value == "" {
				require.Equal(t, def, got)
			} else {
				require.Equal(t, tc.value, got)
			}
			continue
		}
		require.ErrorContains(t, err, tc.err, tc.value)
		require.NotContains(t, err.Error(), "pw", "a password is never quoted")
	}
}
