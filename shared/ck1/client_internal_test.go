package ck1

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Each call gets its own copy of the path's parsed URL, and the
// Authorization value follows the token.
func TestURLTemplateAndBearer(t *testing.T) {
	c := NewClient("http://127.0.0.1:9/", nil, nil)
	u, err := c.url("/v1/pricing/inbound/box")
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:9/v1/pricing/inbound/box", u.String())
	u.Path = "/changed"
	again, err := c.url("/v1/pricing/inbound/box")
	require.NoError(t, err)
	require.Equal(t, "/v1/pricing/inbound/box", again.Path, "the template is not modified")

	require.Equal(t, "Bearer one", c.bearer("one"))
	require.Equal(t, "Bearer one", c.bearer("one"))
	require.Equal(t, "Bearer two", c.bearer("two"))
}
