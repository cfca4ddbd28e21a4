package sqlrecords

import (
	"context"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/idempotency"
)

// recordingConn keeps every statement's arguments and affects no rows.
type recordingConn struct{ args [][]any }

func (c *recordingConn) exec(_ context.Context, _ string, args ...any) (int64, error) {
	c.args = append(c.args, args)
	return 0, nil
}
func (c *recordingConn) queryText(_ context.Context, _ string, args ...any) (string, error) {
	c.args = append(c.args, args)
	return "", errNoRows
}
func (c *recordingConn) script(context.Context, string) error { return nil }
func (c *recordingConn) close() error                         { return nil }

// No statement carries this instance's clock. With it, an instance a day
// fast found every other instance's live records expired: it took them over,
// its purge deleted them for every tenant, and their keys charged again
// (reproduced with two instances on one PostgreSQL). Lifetimes are sent;
// the database's clock decides what has expired.
func TestNoStatementSendsThisInstancesTime(t *testing.T) {
	for _, d := range []dialect{postgres{}, mysqlDialect{}} {
		t.Run(d.name(), func(t *testing.T) {
			c := &recordingConn{}
			r := &Records{db: c, d: d, o: Options{Timeout: time.Second}, migrated: true}
			ctx := context.Background()
			rec := idempotency.Record{Token: "t", State: idempotency.InProgress}
			_, _ = r.Reserve(ctx, "k", rec, 24*time.Hour)
			_, _ = r.Finish(ctx, "k", "t", rec, 24*time.Hour)
			_, _ = r.Read(ctx, "k")
			_, _ = r.Release(ctx, "k", "t")
			_, _ = r.Purge(ctx, 500)
			require.Len(t, c.args, 8) // Reserve's insert, fence read and takeover, one each, the purge's fence read
			for _, args := range c.args {
				for _, a := range args {
					if n, ok := a.(int64); ok {
						require.Less(t, n, int64(365*24*time.Hour/time.Millisecond), "an instant, not a lifetime: %v", args)
					}
				}
			}
			for _, q := range []string{d.insertIfAbsent(), d.insertFenced(), d.takeover(), d.finish(), d.read(), d.release(), d.purge()} {
				now := pgNow
				if d.name() == "mysql" {
					now = myNow
				}
				require.Contains(t, q, now, "the database's clock: %s", q)
			}
		})
	}
}

// Only what no retry fixes is a setting: a server going away, a conflict
// or a full server is an outage (-1501), which a retry outlives.
func TestWhichErrorsAreSettings(t *testing.T) {
	pg := func(code string) error { return &pgconn.PgError{Code: code} }
	my := func(n uint16) error { return &mysql.MySQLError{Number: n, SQLState: [5]byte{'H', 'Y', '0', '0', '0'}} }
	for _, tc := range []struct {
		d        dialect
		err      error
		settings bool
		says     string
	}{
		{postgres{}, pg("25006"), true, "writer endpoint"},
		{postgres{}, pg("3F000"), true, "search_path"},
		{postgres{}, pg("3D000"), true, "no such database"},
		{postgres{}, pg("42501"), true, "grant it"},
		{postgres{}, pg("28P01"), true, ""},
		{postgres{}, pg("40001"), false, ""},
		{postgres{}, pg("40P01"), false, ""},
		{postgres{}, pg("57P01"), false, ""},
		{postgres{}, pg("53300"), false, ""},
		{postgres{}, pg("08006"), false, ""},
		{postgres{}, pg("42P01"), false, ""},
		{mysqlDialect{vars: []string{"ssl-mode"}}, my(1064), true, "ssl-mode is not one the driver knows"},
		{mysqlDialect{}, my(1064), false, ""},
		{mysqlDialect{vars: []string{"innodb_flush_log_at_trx_commit"}}, my(1229), true, "innodb_flush_log_at_trx_commit is not one the driver knows"},
		{mysqlDialect{vars: []string{"sql_mode"}}, my(1231), true, "sql_mode"},
		{mysqlDialect{vars: []string{"wait_timeout"}}, my(1232), true, "wait_timeout"},
		{mysqlDialect{vars: []string{"version"}}, my(1238), true, "version"},
		{mysqlDialect{}, my(1231), false, ""},
		{mysqlDialect{vars: []string{"sslmode"}}, my(1193), true, "tls=true"},
		{mysqlDialect{}, my(1290), true, "writer endpoint"},
		{mysqlDialect{}, my(1792), true, "writer endpoint"},
		{mysqlDialect{}, my(1213), false, ""},
		{mysqlDialect{}, my(1040), false, ""}, // too many connections
	} {
		fix, ok := tc.d.settings(tc.err)
		require.Equal(t, tc.settings, ok, "%s %v", tc.d.name(), tc.err)
		require.Contains(t, fix, tc.says)
	}
}

// The commit settings as each server reports them (commits()): a session
// that never commits is refused; a lossy flush is a warning.
func TestDurableJudgesTheCommitSettings(t *testing.T) {
	for _, tc := range []struct {
		d              dialect
		settings       string
		refuses, warns string
	}{
		{mysqlDialect{}, "autocommit=1 innodb_flush_log_at_trx_commit=1", "", ""},
		{mysqlDialect{}, "autocommit=0 innodb_flush_log_at_trx_commit=1", "autocommit is off", ""},
		{mysqlDialect{}, "autocommit=1 innodb_flush_log_at_trx_commit=2", "", "innodb_flush_log_at_trx_commit=2"},
		{mysqlDialect{}, "autocommit=1 innodb_flush_log_at_trx_commit=0", "", "innodb_flush_log_at_trx_commit=0"},
		{postgres{}, "synchronous_commit=on fsync=on", "", ""},
		{postgres{}, "synchronous_commit=local fsync=on", "", ""},
		{postgres{}, "synchronous_commit=off fsync=on", "", "synchronous_commit=off"},
		{postgres{}, "synchronous_commit=on fsync=off", "", "fsync=off"},
	} {
		refuse, warn := tc.d.durable(tc.settings)
		if tc.refuses == "" {
			require.Empty(t, refuse, tc.settings)
		} else {
			require.Contains(t, refuse, tc.refuses, tc.settings)
		}
		if tc.warns == "" {
			require.Empty(t, warn, tc.settings)
		} else {
			require.Contains(t, warn, tc.warns, tc.settings)
		}
	}
}
