package browserguard_test

import (
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/browserguard"
)

func TestRefusal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		host   string
		hdr    map[string]string
		refuse string // "" when let through
	}{
		{"curl by IP", "127.0.0.1:9000", nil, ""},
		{"localhost", "localhost:9000", nil, ""},
		{"IPv6 loopback", "[::1]:9000", nil, ""},
		{"HTTP/1.0 without Host", "", nil, ""},
		{"the page's own origin", "127.0.0.1:9000", map[string]string{"Origin": "http://127.0.0.1:9000", "Sec-Fetch-Site": "same-origin"}, ""},
		{"typed in the address bar", "127.0.0.1:9000", map[string]string{"Sec-Fetch-Site": "none"}, ""},
		{"a rebound name", "evil.example:9000", nil, `Host "evil.example:9000" is a name other than localhost`},
		{"another origin", "127.0.0.1:9000", map[string]string{"Origin": "http://evil.example"}, `cross-origin request from "http://evil.example" refused`},
		{"the same host, another port", "127.0.0.1:9000", map[string]string{"Origin": "http://127.0.0.1:9001"}, "cross-origin"},
		{"a cross-site fetch without Origin", "127.0.0.1:9000", map[string]string{"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site"},
		{"a same-site fetch", "127.0.0.1:9000", map[string]string{"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site: same-site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/x", nil)
			r.Host = tc.host
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			got := browserguard.Refusal(r, "the doors")
			if tc.refuse == "" {
				require.Empty(t, got)
				return
			}
			require.Contains(t, got, tc.refuse)
			require.Contains(t, got, "the doors")
		})
	}
}
