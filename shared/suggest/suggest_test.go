package suggest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHint(t *testing.T) {
	known := []string{"cams-query-chatapp-bind-waba", "ck1-pricing-inbound-box", "logistics-get-quota", "quota-alert", "top-launch-extra-charge"}
	cases := []struct{ typed, want string }{
		{"quota-alrt", "quota-alert"},
		{"Quota-Alert", "quota-alert"},
		{"logistics", "logistics-get-quota"},
		{"charge", "top-launch-extra-charge"},
		{"cams", "cams-query-chatapp-bind-waba"},
		{"nope", ""},         // nothing close: no suggestion
		{"", ""},             // nothing typed
		{"x", ""},            // one letter is no hint
		{"wechat-quota", ""}, // a different name, not a typo
	}
	for _, c := range cases {
		got := Hint(c.typed, known)
		if c.want == "" {
			require.Empty(t, got, c.typed)
			continue
		}
		require.Equal(t, ` (did you mean "`+c.want+`"?)`, got, c.typed)
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"invok", "invoke", 1}, {"事件", "事", 1}, {"flaw", "lawn", 2}, {"lcoal", "local", 1}, {"ab", "ba", 1}} {
		require.Equal(t, c.d, editDistance(c.a, c.b), "%q %q", c.a, c.b)
		require.Equal(t, c.d, editDistance(c.b, c.a), "%q %q", c.b, c.a)
	}
}
