package alicloud

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/registry"
)

// TimeLeft as the gateway writes it, and as it might: the larger header
// wins; a fraction or a value past int64 is still a wait (the latter the
// cap), not "no header" (which sent 7 requests in a row).
func TestTimeLeft(t *testing.T) {
	for _, c := range []struct {
		api, user string
		want      time.Duration
	}{
		{"Limit:10,Remain:0,TimeLeft:2000,Reset:1234", "", 2 * time.Second},
		{"Limit:10,Remain:0,TimeLeft:1000", "Limit:100,Remain:0,TimeLeft:45000", 45 * time.Second},
		{"TimeLeft: 20000 ", "", 20 * time.Second},
		{"TimeLeft:1.5", "", time.Millisecond},
		{"TimeLeft:1500.9", "", 1500 * time.Millisecond},
		{"TimeLeft:99999999999999999999", "", time.Hour},
		{"TimeLeft:9000000000", "", time.Hour},
		{"TimeLeft:-5000", "", 0},
		{"TimeLeft:abc", "", 0},
		{"TimeLeft:NaN", "", 0},
		{"", "", 0},
	} {
		h := http.Header{}
		if c.api != "" {
			h.Set("x-ratelimit-user-api", c.api)
		}
		if c.user != "" {
			h.Set("x-ratelimit-user", c.user)
		}
		require.Equal(t, c.want, timeLeft(h), "%q %q", c.api, c.user)
	}
}

// dataKinds is what the published output schema says of Data's fields: the
// clients' types are generated from the schema, the check from this list.
func TestDataKindsAreThePublishedSchemas(t *testing.T) {
	raw, err := registry.OutputSchema("cams-query-chatapp-bind-waba")
	require.NoError(t, err)
	var s struct {
		Properties struct {
			Data struct {
				Properties map[string]struct {
					Type string `json:"type"`
				} `json:"properties"`
			} `json:"data"`
		} `json:"properties"`
	}
	require.NoError(t, json.Unmarshal(raw, &s))
	want := map[string]byte{}
	for name, p := range s.Properties.Data.Properties {
		want[name] = map[string]byte{"string": '"', "object": '{'}[p.Type]
	}
	require.Equal(t, want, dataKinds)
}
