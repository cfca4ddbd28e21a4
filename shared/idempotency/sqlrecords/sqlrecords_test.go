package sqlrecords_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/idempotency/recordstest"
	"github.com/cloudcall/cloudcall/shared/idempotency/sqlrecords"
	"github.com/cloudcall/cloudcall/shared/idempotency/sqlrecords/sqltest"
)

var backends = []struct {
	name string
	url  func(testing.TB) string
}{
	{"postgres", sqltest.Postgres},
	{"mysql", sqltest.MySQL},
}

func open(t *testing.T, url string) *sqlrecords.Records {
	r, err := sqlrecords.Open(sqlrecords.Options{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			recordstest.Run(t, open(t, b.url(t)), recordstest.Options{PurgeCounts: true})
		})
	}
}

// Many instances start at once against an empty database: each migrates,
// none fails, and they share one table.
func TestMigrationIsIdempotentAndConcurrent(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			ctx := context.Background()
			errs := make(chan error, 8)
			var rs []*sqlrecords.Records
			for i := 0; i < 8; i++ {
				rs = append(rs, open(t, url))
			}
			for i, r := range rs {
				go func() {
					_, err := r.Reserve(ctx, "mig", idempotency.Record{Token: string(rune('a' + i)), State: idempotency.InProgress}, time.Minute)
					errs <- err
				}()
			}
			for range rs {
				require.NoError(t, <-errs)
			}
			got, err := rs[0].Read(ctx, "mig")
			require.NoError(t, err)
			// A new instance on the migrated database just works.
			again, err := open(t, url).Read(ctx, "mig")
			require.NoError(t, err)
			require.Equal(t, got, again)
		})
	}
}

func TestUnreachableIsUnavailable(t *testing.T) {
	for _, u := range []string{"postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=1", "mysql://root@127.0.0.1:1/x"} {
		r, err := sqlrecords.Open(sqlrecords.Options{URL: u, Timeout: time.Second})
		require.NoError(t, err, "opening never dials")
		_, err = r.Reserve(context.Background(), "k", idempotency.Record{Token: "t"}, time.Minute)
		require.ErrorIs(t, err, idempotency.ErrUnavailable, u)
		require.NotContains(t, err.Error(), "password")
	}
}

func TestOpenRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"sqlite://x", "mysql://root@127.0.0.1:3306/", "mysql://root@127.0.0.1:3306/db?parseTime=maybe"} {
		_, err := sqlrecords.Open(sqlrecords.Options{URL: u})
		require.Error(t, err, u)
	}
}

// Warm, run in the background at cold start, connects and creates the
// table, so the first charge does neither; it writes no record.
func TestWarmCreatesTheTable(t *testing.T) {
	url := sqltest.Postgres(t)
	db, err := sql.Open("pgx", url)
	require.NoError(t, err)
	defer db.Close()
	exists := func() bool {
		var name sql.NullString
		require.NoError(t, db.QueryRow(`SELECT to_regclass($1)::text`, sqlrecords.Table).Scan(&name))
		return name.Valid
	}
	require.False(t, exists(), "a fresh database")
	r := open(t, url)
	require.NoError(t, r.Warm(context.Background()))
	require.True(t, exists(), "Warm created the table")
	var rows int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM `+sqlrecords.Table).Scan(&rows))
	require.Equal(t, 0, rows)

	mr := open(t, sqltest.MySQL(t))
	require.NoError(t, mr.Warm(context.Background()))
	_, err = mr.Read(context.Background(), "k")
	require.ErrorIs(t, err, idempotency.ErrNotFound)

	down, err := sqlrecords.Open(sqlrecords.Options{URL: "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=1", Timeout: time.Second})
	require.NoError(t, err)
	require.ErrorIs(t, down.Warm(context.Background()), idempotency.ErrUnavailable)
}
