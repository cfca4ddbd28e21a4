package redisrecords

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/idempotency"
)

// A Redis with AOF that is loading its data after a restart reports
// aof_enabled:0 until it is done (Redis 7): the charge answered -1601 "set
// appendonly yes" for a setting that was right (outside tester). Loading is
// a passing outage.
func TestLoadingIsAnOutageNotASetting(t *testing.T) {
	loading := "# Persistence\r\nloading:1\r\nasync_loading:0\r\naof_enabled:0\r\n"
	err := persistenceVerdict("h:6379", loading)
	require.ErrorIs(t, err, idempotency.ErrUnavailable)
	require.NotErrorIs(t, err, idempotency.ErrNotDurable)
	require.Contains(t, err.Error(), "loading its data")

	err = persistenceVerdict("h:6379", "# Persistence\r\nloading:0\r\naof_enabled:0\r\n")
	require.ErrorIs(t, err, idempotency.ErrNotDurable)
	require.NoError(t, persistenceVerdict("h:6379", "# Persistence\r\nloading:0\r\naof_enabled:1\r\n"))
}
