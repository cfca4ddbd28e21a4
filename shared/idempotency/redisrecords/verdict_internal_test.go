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

// A managed service that refuses INFO stats or INFO server (read as empty),
// or leaves a field out, leaves the evictions unknown: not checked (a WARN
// says so), never taken for a count of 0.
func TestEvictionsNeedBothFields(t *testing.T) {
	stats, server := "# Stats\r\nevicted_keys:7\r\n", "# Server\r\nrun_id:abc\r\n"
	require.Equal(t, evictions{run: "abc", count: 7}, readEvictions(stats, server))
	for _, c := range [][2]string{{"", server}, {stats, ""}, {"# Stats\r\nexpired_keys:3\r\n", server}, {"# Stats\r\nevicted_keys:x\r\n", server}} {
		require.False(t, readEvictions(c[0], c[1]).known(), c)
	}
	f, run, n, ok := parseBaseline(evictions{run: "abc", count: 7}.baseline("fence"))
	require.True(t, ok)
	require.Equal(t, []any{"fence", "abc", int64(7)}, []any{f, run, n})
	_, _, _, ok = parseBaseline("")
	require.False(t, ok)
}
