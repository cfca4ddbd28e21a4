package upstream

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// A Retry-After is digits (RFC 9110); one past an int is longer than the
// cap, not ignored (a re-tester's 20-digit value was retried at once).
func TestRetryAfter(t *testing.T) {
	for v, want := range map[string]int{"": 0, "0": 0, "3": 3, "3600": 3600, "3601": 3600, "99999999999": 3600,
		"99999999999999999999": 3600, "+3": 0, "-5": 0, "1.5": 0, "abc": 0, "0x10": 0, " 3": 0, "Wed, 21 Oct 2026 07:28:00 GMT": 0} {
		require.Equal(t, want, RetryAfter(http.Header{"Retry-After": {v}}), "%q", v)
	}
}
