package redisstore_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

func mustHostPort(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u.Host
}

func dbPath(raw string) string {
	u, _ := url.Parse(raw)
	return u.Path
}
