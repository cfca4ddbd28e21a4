package sqlrecords_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/envelope"
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
	for _, u := range []string{"sqlite://x", "mysql://root@127.0.0.1:3306/", "mysql://root@127.0.0.1:3306/db?parseTime=maybe", "mysql://root@127.0.0.1:3306/db?clientFoundRows=true",
		"postgres://u:s3cret@127.0.0.1:5432/db?sslmode=sometimes", "postgres://u:s3cret@127.0.0.1:5432/db?connect_timeout=soon"} {
		_, err := sqlrecords.Open(sqlrecords.Options{URL: u})
		require.Error(t, err, u)
		require.NotContains(t, err.Error(), "s3cret", "the error never quotes the password")
	}
}

// The driver's DSN form behind mysql:// is refused with the form to use
// (an outside tester was told only "cannot parse it").
func TestOpenSaysTheMySQLURLForm(t *testing.T) {
	_, err := sqlrecords.Open(sqlrecords.Options{URL: "mysql://root:s3cret@tcp(127.0.0.1:3306)/db?parseTime=true"})
	require.ErrorContains(t, err, "the MySQL driver's DSN form, not a URL: write mysql://user:password@host:3306/db")
	require.NotContains(t, err.Error(), "s3cret")
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
	var rows, fences int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM `+sqlrecords.Table+` WHERE k NOT LIKE '~%'`).Scan(&rows))
	require.Equal(t, 0, rows, "no record (the fence and the shape check's probes start with ~, as no key can)")
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM `+sqlrecords.Table+` WHERE k = '~fence'`).Scan(&fences))
	require.Equal(t, 1, fences, "the fence row")

	mr := open(t, sqltest.MySQL(t))
	require.NoError(t, mr.Warm(context.Background()))
	_, err = mr.Read(context.Background(), "k")
	require.ErrorIs(t, err, idempotency.ErrNotFound)

	down, err := sqlrecords.Open(sqlrecords.Options{URL: "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=1", Timeout: time.Second})
	require.NoError(t, err)
	require.ErrorIs(t, down.Warm(context.Background()), idempotency.ErrUnavailable)
}

// A pooled connection the server closed while it sat idle (a restart, a
// failover) is found and replaced before a statement is sent on it: the
// next charge's record is written, not refused as "store unavailable".
func TestPostgresConnectionsClosedByTheServerAreReplaced(t *testing.T) {
	url := sqltest.Postgres(t)
	ctx := context.Background()
	r := open(t, url)
	_, err := r.Reserve(ctx, "before", idempotency.Record{Token: "t1", State: idempotency.Reserved}, time.Minute)
	require.NoError(t, err)

	admin, err := sql.Open("pgx", url)
	require.NoError(t, err)
	defer admin.Close()
	var killed int
	require.NoError(t, admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&killed))
	require.Equal(t, 1, killed, "the records store's one pooled connection")

	time.Sleep(1100 * time.Millisecond) // idle long enough to be checked before use
	ok, err := r.Reserve(ctx, "after", idempotency.Record{Token: "t2", State: idempotency.Reserved}, time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	got, err := r.Read(ctx, "after")
	require.NoError(t, err)
	require.Equal(t, "t2", got.Token)
}

// Settings the server refuses (no such database, a wrong password) are
// ErrSettings, which the charge answers -1601 (configuration), not the
// retryable ErrUnavailable: a caller retrying them would retry forever.
func TestRefusedSettingsAreNotRetryable(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			u, err := url.Parse(b.url(t))
			require.NoError(t, err)
			absent := *u
			absent.Path += "_absent"
			urls := []string{absent.String()}
			if b.name == "mysql" {
				wrong := *u
				wrong.User = url.UserPassword(u.User.Username(), "wrong-password-3cret")
				// A user that does not exist, without a password: MariaDB
				// answers 1698 where MySQL answers 1045.
				nouser := *u
				nouser.User = url.User("cloudcall_no_such_user")
				urls = append(urls, wrong.String(), nouser.String())
			}
			for _, raw := range urls {
				r, err := sqlrecords.Open(sqlrecords.Options{URL: raw, Timeout: 5 * time.Second})
				require.NoError(t, err)
				_, err = r.Reserve(context.Background(), "k", idempotency.Record{Token: "t"}, time.Minute)
				require.ErrorIs(t, err, idempotency.ErrSettings, raw)
				require.NotErrorIs(t, err, idempotency.ErrUnavailable)
				require.NotContains(t, err.Error(), "3cret")
				_ = r.Close()
			}
		})
	}
}

// withRecord is a Records on u holding the record "idem:a", and its log.
func withRecord(t *testing.T, u, afterLoss string) (*sqlrecords.Records, *bytes.Buffer) {
	t.Helper()
	logs := &bytes.Buffer{}
	r, err := sqlrecords.Open(sqlrecords.Options{URL: u, Log: slog.New(slog.NewJSONHandler(logs, nil)), AfterLoss: afterLoss})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	ok, err := r.Reserve(context.Background(), "idem:a", idempotency.Record{Token: "t1", State: idempotency.Reserved}, time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	return r, logs
}

// A records table dropped or emptied behind the instances' back: warm
// instances answered -1501 until replaced (the table was created once per
// instance) while a new instance recreated it, and nothing said the records
// were gone. With AfterLoss continue the next statement recreates the
// table, a TRUNCATE is found by the purge's fence check, and both are
// logged at ERROR for the operator to reconcile.
func TestADroppedOrEmptiedTableIsRecreatedAndSaid(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			u := b.url(t)
			r, logs := withRecord(t, u, idempotency.AfterLossContinue)
			ctx := context.Background()
			admin := sqltest.Open(t, u)
			_, err := admin.Exec(`DROP TABLE ` + sqlrecords.Table)
			require.NoError(t, err)

			ok, err := r.Reserve(ctx, "idem:b", idempotency.Record{Token: "t2", State: idempotency.Reserved}, time.Hour)
			require.NoError(t, err, "a warm instance recreates the table")
			require.True(t, ok)
			require.Equal(t, 1, strings.Count(logs.String(), "the records store lost its data"), logs.String())
			got, err := r.Read(ctx, "idem:b")
			require.NoError(t, err)
			require.Equal(t, "t2", got.Token)

			_, err = admin.Exec(`DELETE FROM ` + sqlrecords.Table) // TRUNCATE's effect, on both servers
			require.NoError(t, err)
			_, err = r.Purge(ctx, 500)
			require.NoError(t, err)
			require.Equal(t, 2, strings.Count(logs.String(), "the records store lost its data"), logs.String())
			var fences int
			require.NoError(t, admin.QueryRow(`SELECT count(*) FROM `+sqlrecords.Table+` WHERE k = '~fence'`).Scan(&fences))
			require.Equal(t, 1, fences, "the fence is back")
			_, err = r.Purge(ctx, 500)
			require.NoError(t, err)
			require.Equal(t, 2, strings.Count(logs.String(), "the records store lost its data"), "said once per loss")
		})
	}
}

// A loss an instance finds is dated by the later of its clock and the
// server's, as mark-lost dates one: reopen waits from that time, and an
// instance whose clock ran an hour slow would have dated it an hour early.
func TestALossIsDatedByTheLaterClock(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			u := b.url(t)
			r, err := sqlrecords.Open(sqlrecords.Options{URL: u, Now: func() time.Time { return time.Now().Add(-time.Hour) }})
			require.NoError(t, err)
			t.Cleanup(func() { _ = r.Close() })
			ctx := context.Background()
			ok, err := r.Reserve(ctx, "idem:a", idempotency.Record{Token: "t1", State: idempotency.Reserved}, time.Hour)
			require.True(t, ok && err == nil, err)
			admin := sqltest.Open(t, u)
			_, err = admin.Exec(`DELETE FROM ` + sqlrecords.Table)
			require.NoError(t, err)
			_, err = r.Reserve(ctx, "idem:b", idempotency.Record{Token: "t2", State: idempotency.Reserved}, time.Hour)
			require.ErrorIs(t, err, idempotency.ErrLost)
			var fence string
			require.NoError(t, admin.QueryRow(`SELECT token FROM `+sqlrecords.Table+` WHERE k = '~fence'`).Scan(&fence))
			at, lost := idempotency.FenceLostAt(fence)
			require.True(t, lost, fence)
			found, err := time.Parse(time.RFC3339, at)
			require.NoError(t, err)
			require.WithinDuration(t, time.Now(), found, time.Minute, "the server's time, not the instance's hour-slow one")
		})
	}
}

// By default a table found dropped or emptied refuses charges: the loss is
// written into the fence row, every instance (one started after it too)
// answers ErrLost, the key taken by the statement that found the table
// gone is let go, and only cloudcall records reopen ends it. The record of
// a call that ran is still written (Rewrite).
func TestALostTableRefusesChargesUntilReopened(t *testing.T) {
	for _, b := range backends {
		for _, how := range []string{"drop", "empty"} {
			t.Run(b.name+"/"+how, func(t *testing.T) {
				u := b.url(t)
				r, logs := withRecord(t, u, "")
				ctx := context.Background()
				other := open(t, u)
				ok, err := other.Reserve(ctx, "idem:b", idempotency.Record{Token: "b1", State: idempotency.Reserved}, time.Hour)
				require.NoError(t, err)
				require.True(t, ok, "a second warm instance")
				admin := sqltest.Open(t, u)
				if how == "drop" {
					_, err = admin.Exec(`DROP TABLE ` + sqlrecords.Table)
				} else {
					_, err = admin.Exec(`DELETE FROM ` + sqlrecords.Table)
				}
				require.NoError(t, err)

				// A repeat of a key charged before, with no purge in between:
				// the reservation reads the fence itself. After a DELETE it
				// waited for the minute's purge, which only a new key's charge
				// ran, and every repeat charged again (outside tester).
				ok, err = r.Reserve(ctx, "idem:a", idempotency.Record{Token: "t2", State: idempotency.Reserved}, time.Hour)
				require.ErrorIs(t, err, idempotency.ErrLost)
				require.False(t, ok)
				// The other warm instance refuses at once, not at its next
				// purge: it charged repeats for a minute (outside tester).
				ok, err = other.Reserve(ctx, "idem:b", idempotency.Record{Token: "b2", State: idempotency.Reserved}, time.Hour)
				require.ErrorIs(t, err, idempotency.ErrLost)
				require.False(t, ok)
				_, err = r.Read(ctx, "idem:a")
				require.ErrorIs(t, err, idempotency.ErrNotFound, "nothing left under the key")
				var fence string
				require.NoError(t, admin.QueryRow(`SELECT token FROM `+sqlrecords.Table+` WHERE k = '~fence'`).Scan(&fence))
				_, lost := idempotency.FenceLostAt(fence)
				require.True(t, lost, fence)
				require.Equal(t, 1, strings.Count(logs.String(), `"level":"ERROR"`), logs.String())
				var rows int
				require.NoError(t, admin.QueryRow(`SELECT count(*) FROM `+sqlrecords.Table+` WHERE k LIKE 'idem:%'`).Scan(&rows))
				require.Zero(t, rows, "nothing reserved after the loss (the fence and the shape probe's rows aside)")

				later := open(t, u)
				_, err = later.Reserve(ctx, "idem:c", idempotency.Record{Token: "t3", State: idempotency.Reserved}, time.Hour)
				require.ErrorIs(t, err, idempotency.ErrLost, "an instance started after the loss refuses too")
				ok, err = r.Rewrite(ctx, "idem:ran", idempotency.Record{Token: "t4", State: idempotency.Done}, time.Hour)
				require.NoError(t, err)
				require.True(t, ok, "the record of a call that ran is written")

				was, err := idempotency.Reopen(ctx, later, time.Now(), func(err error) { t.Errorf("clock: %v", err) })
				require.NoError(t, err)
				require.Equal(t, fence, was)
				was, err = idempotency.Reopen(ctx, later, time.Now(), func(err error) { t.Errorf("clock: %v", err) })
				require.NoError(t, err)
				require.Empty(t, was, "nothing to reopen any more")
				for _, inst := range []*sqlrecords.Records{r, other, later} {
					// Each takes the reopening when its refusal's second is over.
					require.Eventually(t, func() bool {
						ok, err := inst.Reserve(ctx, fmt.Sprintf("idem:after-%p", inst), idempotency.Record{Token: "t5", State: idempotency.Reserved}, time.Hour)
						return err == nil && ok
					}, 5*time.Second, 100*time.Millisecond)
				}
				got, err := later.Read(ctx, "idem:ran")
				require.NoError(t, err)
				require.Equal(t, "t4", got.Token)
				require.Contains(t, logs.String(), "reopened after a loss")

				// A loss the fence cannot see, marked by hand: refused at once.
				was, err = idempotency.MarkLost(ctx, later, time.Now())
				require.NoError(t, err)
				_, reopened := idempotency.FenceReopenedAt(was)
				require.True(t, reopened, was)
				_, err = other.Reserve(ctx, "idem:marked", idempotency.Record{Token: "t6", State: idempotency.Reserved}, time.Hour)
				require.ErrorIs(t, err, idempotency.ErrLost)
				was, err = idempotency.MarkLost(ctx, later, time.Now())
				require.NoError(t, err)
				require.Empty(t, was, "marked already")
			})
		}
	}
}

// A records table someone else created is used only if it does what the
// records rely on. An outside tester's pre-created MySQL table without a
// unique key on k charged every repeat of a key (3 calls, 3 charges; 8
// concurrent calls, 8 charges), and one with a case-insensitive collation
// took "Order-A" and "order-a" for one charge. Both, and PostgreSQL's
// table without a key, are refused as settings (-1601), not retried as an
// outage (-1501), and nothing is reserved.
func TestATableOfAnotherShapeIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name, backend, create, says string
	}{
		{"mysql without a unique key on k", "mysql", `CREATE TABLE ` + sqlrecords.Table + ` (k VARCHAR(191) NOT NULL, token VARCHAR(64) NOT NULL, state VARCHAR(16) NOT NULL, rec MEDIUMTEXT NOT NULL, expires_ms BIGINT NOT NULL, KEY (k))`, "accepts a second row with the same key"},
		{"mysql keyed on k and token", "mysql", `CREATE TABLE ` + sqlrecords.Table + ` (k VARCHAR(191) NOT NULL, token VARCHAR(64) NOT NULL, state VARCHAR(16) NOT NULL, rec MEDIUMTEXT NOT NULL, expires_ms BIGINT NOT NULL, PRIMARY KEY (k, token))`, "accepts a second row with the same key"},
		{"mysql comparing keys without case", "mysql", `CREATE TABLE ` + sqlrecords.Table + ` (k VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL PRIMARY KEY, token VARCHAR(64) NOT NULL, state VARCHAR(16) NOT NULL, rec MEDIUMTEXT NOT NULL, expires_ms BIGINT NOT NULL)`, "without regard to case"},
		{"mysql unique on (k, state)", "mysql", `CREATE TABLE ` + sqlrecords.Table + ` (k VARCHAR(191) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, token VARCHAR(64) NOT NULL, state VARCHAR(16) NOT NULL, rec MEDIUMTEXT NOT NULL, expires_ms BIGINT NOT NULL, UNIQUE KEY uk (k, state))`, "accepts a second row with the same key in another state"},
		{"mysql unique on a prefix of k", "mysql", `CREATE TABLE ` + sqlrecords.Table + ` (k VARCHAR(191) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, token VARCHAR(64) NOT NULL, state VARCHAR(16) NOT NULL, rec MEDIUMTEXT NOT NULL, expires_ms BIGINT NOT NULL, UNIQUE KEY uk (k(10)))`, "differ only in their last byte"},
		{"mysql rec too short for an answer", "mysql", `CREATE TABLE ` + sqlrecords.Table + ` (k VARCHAR(191) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY, token VARCHAR(64) NOT NULL, state VARCHAR(16) NOT NULL, rec VARCHAR(300) NOT NULL, expires_ms BIGINT NOT NULL)`, "rec"},
		{"postgres deleting finished rows", "postgres", `CREATE TABLE ` + sqlrecords.Table + ` (k TEXT PRIMARY KEY, token TEXT NOT NULL, state TEXT NOT NULL, rec TEXT NOT NULL, expires_ms BIGINT NOT NULL);
			CREATE FUNCTION archive() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM ` + sqlrecords.Table + ` WHERE k = NEW.k; RETURN NULL; END $$;
			CREATE TRIGGER archive AFTER UPDATE ON ` + sqlrecords.Table + ` FOR EACH ROW WHEN (NEW.state = 'done') EXECUTE FUNCTION archive()`, "does not give back a finished record"},
		// A re-tester's triggers spared the check's rows and charged every repeat.
		{"postgres trigger sparing the check's keys", "postgres", `CREATE TABLE ` + sqlrecords.Table + ` (k TEXT PRIMARY KEY, token TEXT NOT NULL, state TEXT NOT NULL, rec TEXT NOT NULL, expires_ms BIGINT NOT NULL);
			CREATE FUNCTION archive() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.k NOT LIKE '~%' THEN DELETE FROM ` + sqlrecords.Table + ` WHERE k = NEW.k; END IF; RETURN NULL; END $$;
			CREATE TRIGGER archive AFTER UPDATE ON ` + sqlrecords.Table + ` FOR EACH ROW WHEN (NEW.state = 'done') EXECUTE FUNCTION archive()`, "triggers=1"},
		{"mysql trigger expiring real records", "mysql", `CREATE TABLE ` + sqlrecords.Table + ` (k VARCHAR(191) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY, token VARCHAR(64) NOT NULL, state VARCHAR(16) NOT NULL, rec MEDIUMTEXT NOT NULL, expires_ms BIGINT NOT NULL);
			CREATE TRIGGER expire BEFORE UPDATE ON ` + sqlrecords.Table + ` FOR EACH ROW SET NEW.expires_ms = IF(NEW.state = 'done' AND NEW.k LIKE 'idem:%', 0, NEW.expires_ms)`, "triggers=1"},
		{"mysql MEMORY table", "mysql", `CREATE TABLE ` + sqlrecords.Table + ` (k VARCHAR(191) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY, token VARCHAR(64) NOT NULL, state VARCHAR(16) NOT NULL, rec VARCHAR(15000) NOT NULL, expires_ms BIGINT NOT NULL) ENGINE=MEMORY`, "engine=MEMORY"},
		{"postgres without a unique key on k", "postgres", `CREATE TABLE ` + sqlrecords.Table + ` (k TEXT NOT NULL, token TEXT NOT NULL, state TEXT NOT NULL, rec TEXT NOT NULL, expires_ms BIGINT NOT NULL)`, "ON CONFLICT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := sqltest.Postgres(t)
			if tc.backend == "mysql" {
				url = sqltest.MySQL(t)
			}
			db := sqltest.Open(t, url)
			stmts := []string{tc.create}
			if tc.backend == "mysql" { // one statement per Exec there
				stmts = strings.Split(tc.create, ";\n")
			}
			for _, q := range stmts {
				_, err := db.Exec(q)
				require.NoError(t, err)
			}
			r := open(t, url)
			for i := 0; i < 2; i++ {
				ok, err := r.Reserve(context.Background(), "order-1", idempotency.Record{Token: "t", State: idempotency.InProgress}, time.Minute)
				require.False(t, ok)
				require.ErrorIs(t, err, idempotency.ErrSettings)
				require.NotErrorIs(t, err, idempotency.ErrUnavailable)
				require.Contains(t, err.Error(), tc.says)
			}
			var n int
			require.NoError(t, db.QueryRow(`SELECT count(*) FROM `+sqlrecords.Table+` WHERE k NOT LIKE '~%'`).Scan(&n))
			require.Zero(t, n, "nothing reserved")
		})
	}
}

// A URL parameter the server refuses is the URL's fault: no retry fixes it.
func TestARefusedURLParameterIsASetting(t *testing.T) {
	u, err := url.Parse(sqltest.MySQL(t))
	require.NoError(t, err)
	q := u.Query()
	q.Set("cloudcall_no_such_variable", "1")
	u.RawQuery = q.Encode()
	r := open(t, u.String())
	_, err = r.Reserve(context.Background(), "k", idempotency.Record{Token: "t"}, time.Minute)
	require.ErrorIs(t, err, idempotency.ErrSettings)
}

// A cold instance facing a server that accepts and never answers (a
// failover): every caller leaves at its own deadline with "unavailable",
// however many wait for the one table creation under way. With the lock held
// across the statements they queued one timeout after another (an outside
// tester's callers answered after 8, 13 and 14 s, not 5).
func TestCallersWaitingForTheTableLeaveAtTheirDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // never answered
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			_ = c.Close()
		}
		mu.Unlock()
	}()
	for _, raw := range []string{
		"postgres://postgres@" + ln.Addr().String() + "/x?sslmode=disable",
		"mysql://root@" + ln.Addr().String() + "/x",
	} {
		r, err := sqlrecords.Open(sqlrecords.Options{URL: raw, Timeout: 20 * time.Second})
		require.NoError(t, err)
		go func() { _ = r.Warm(context.Background()) }() // the cold start's warm-up goes first
		var wg sync.WaitGroup
		errs := make([]error, 8)
		took := make([]time.Duration, 8)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				began := time.Now()
				_, errs[i] = r.Reserve(ctx, "k", idempotency.Record{Token: "t"}, time.Minute)
				took[i] = time.Since(began)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			require.ErrorIs(t, err, idempotency.ErrUnavailable, raw)
			// Far below the store's 20 s Timeout: each left at its own deadline.
			require.Less(t, took[i], 5*time.Second, raw)
		}
		_ = r.Close()
	}
}

// The same on SQL, where the table may not even be there yet.
func TestAnUnfencedTableCanBeMarkedLost(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			u := b.url(t)
			ctx := context.Background()
			was, err := idempotency.MarkLost(ctx, open(t, u), time.Now())
			require.NoError(t, err)
			require.Equal(t, "none", was)
			_, err = open(t, u).Reserve(ctx, "idem:k", idempotency.Record{Token: "t", State: idempotency.Reserved}, time.Hour)
			require.ErrorIs(t, err, idempotency.ErrLost)
		})
	}
}

// The database's time, which a reopening's epoch is taken from.
func TestClockIsTheDatabases(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			at, err := open(t, b.url(t)).Clock(context.Background())
			require.NoError(t, err)
			require.WithinDuration(t, time.Now(), at, time.Minute)
		})
	}
}

// h5Schema creates a schema of its own in the database at u, dropped at
// the end, and returns its name.
func h5Schema(t *testing.T, db *sql.DB) string {
	t.Helper()
	name := "h5_" + strings.ReplaceAll(fmt.Sprint(time.Now().UnixNano()), "-", "")
	_, err := db.Exec(`CREATE SCHEMA ` + name)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = db.Exec(`DROP SCHEMA IF EXISTS ` + name + ` CASCADE`) })
	return name
}

// withParam is u with one more query parameter.
func withParam(t *testing.T, u, k, v string) string {
	t.Helper()
	p, err := url.Parse(u)
	require.NoError(t, err)
	q := p.Query()
	q.Set(k, v)
	p.RawQuery = q.Encode()
	return p.String()
}

// Settings an outside tester found answered -1501 ("retry when the records
// store is back") or accepted: a read replica, a search_path naming no
// schema, a URL parameter the driver sent as a syntax error, and an
// UNLOGGED table, which PostgreSQL empties after a crash and a standby
// lacks. No retry fixes them: -1601, naming the setting and the fix, and
// nothing is reserved.
func TestSettingsAreAnsweredAsConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name, backend string
		// url prepares the server and returns the URL to use.
		url  func(t *testing.T, base string, db *sql.DB) string
		says []string
	}{
		{"postgres read-only (a reader endpoint)", "postgres", func(t *testing.T, base string, _ *sql.DB) string {
			return withParam(t, base, "default_transaction_read_only", "on")
		}, []string{"takes no writes", "CLOUDCALL_IDEMPOTENCY_STORE", "writer endpoint"}},
		{"postgres search_path naming no schema", "postgres", func(t *testing.T, base string, _ *sql.DB) string {
			return withParam(t, base, "search_path", "h5_absent")
		}, []string{"search_path", "create it", "CLOUDCALL_IDEMPOTENCY_STORE"}},
		{"postgres UNLOGGED table", "postgres", func(t *testing.T, base string, db *sql.DB) string {
			s := h5Schema(t, db)
			_, err := db.Exec(`CREATE UNLOGGED TABLE ` + s + `.` + sqlrecords.Table + ` (k TEXT PRIMARY KEY, token TEXT NOT NULL, state TEXT NOT NULL, rec TEXT NOT NULL, expires_ms BIGINT NOT NULL)`)
			require.NoError(t, err)
			return withParam(t, base, "search_path", s)
		}, []string{"is UNLOGGED", "failover", "ALTER TABLE h5_", ".cloudcall_idempotency SET LOGGED"}},
		{"postgres UNLOGGED partition", "postgres", func(t *testing.T, base string, db *sql.DB) string {
			s := h5Schema(t, db)
			_, err := db.Exec(`CREATE TABLE ` + s + `.` + sqlrecords.Table + ` (k TEXT PRIMARY KEY, token TEXT NOT NULL, state TEXT NOT NULL, rec TEXT NOT NULL, expires_ms BIGINT NOT NULL) PARTITION BY HASH (k);
				CREATE UNLOGGED TABLE ` + s + `.part PARTITION OF ` + s + `.` + sqlrecords.Table + ` FOR VALUES WITH (MODULUS 1, REMAINDER 0)`)
			require.NoError(t, err)
			return withParam(t, base, "search_path", s)
		}, []string{"has an UNLOGGED partition", "SET LOGGED"}},
		{"mysql ssl-mode (not the driver's)", "mysql", func(t *testing.T, base string, _ *sql.DB) string {
			return withParam(t, base, "ssl-mode", "REQUIRED")
		}, []string{"ssl-mode", "not one the driver knows", "tls=true", "CLOUDCALL_IDEMPOTENCY_STORE"}},
		{"mysql sslmode (an unknown system variable)", "mysql", func(t *testing.T, base string, _ *sql.DB) string {
			return withParam(t, base, "sslmode", "disable")
		}, []string{"sslmode", "not one the driver knows", "tls=true"}},
		{"mysql a global variable in the URL", "mysql", func(t *testing.T, base string, _ *sql.DB) string {
			return withParam(t, base, "innodb_flush_log_at_trx_commit", "0")
		}, []string{"innodb_flush_log_at_trx_commit", "not one the driver knows"}},
		{"mysql a value the server refuses", "mysql", func(t *testing.T, base string, _ *sql.DB) string {
			return withParam(t, base, "sql_mode", "BOGUS")
		}, []string{"sql_mode", "CLOUDCALL_IDEMPOTENCY_STORE"}},
		{"mysql a value of the wrong type", "mysql", func(t *testing.T, base string, _ *sql.DB) string {
			return withParam(t, base, "wait_timeout", "abc")
		}, []string{"wait_timeout"}},
		{"mysql autocommit off (records never committed)", "mysql", func(t *testing.T, base string, _ *sql.DB) string {
			return withParam(t, base, "autocommit", "false")
		}, []string{"autocommit is off", "rolled back when its connection closes", "without autocommit=false"}},
		{"mysql read-only transactions", "mysql", func(t *testing.T, base string, _ *sql.DB) string {
			return withParam(t, base, "tx_read_only", "1")
		}, []string{"takes no writes", "CLOUDCALL_IDEMPOTENCY_STORE", "writer endpoint"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := sqltest.Postgres(t)
			if tc.backend == "mysql" {
				base = sqltest.MySQL(t)
			}
			db := sqltest.Open(t, base)
			r := open(t, tc.url(t, base, db))
			g := idempotency.New(idempotency.Options{Records: r})
			for i := 0; i < 2; i++ {
				ok, e := g.Once(context.Background(), "order-1", time.Minute)
				require.False(t, ok)
				require.NotNil(t, e)
				require.Equal(t, envelope.CodeConfig, e.Code, e.Error())
				require.ErrorIs(t, e, idempotency.ErrSettings)
				for _, w := range tc.says {
					require.Contains(t, e.Error(), w)
				}
			}
		})
	}
}

// A server that can lose its last commits in a crash (PostgreSQL's
// synchronous_commit=off, as Redis's appendfsync everysec) is taken, with
// a WARN at first use naming the setting; one that commits nothing is
// refused (TestSettingsAreAnsweredAsConfiguration).
func TestALossyCommitSettingIsWarnedOf(t *testing.T) {
	for _, tc := range []struct{ param, value, says string }{
		{"synchronous_commit", "off", "synchronous_commit=off"},
		{"synchronous_commit", "on", ""},
	} {
		t.Run(tc.param+"="+tc.value, func(t *testing.T) {
			var logs bytes.Buffer
			r, err := sqlrecords.Open(sqlrecords.Options{URL: withParam(t, sqltest.Postgres(t), tc.param, tc.value),
				Log: slog.New(slog.NewTextHandler(&logs, nil))})
			require.NoError(t, err)
			t.Cleanup(func() { _ = r.Close() })
			g := idempotency.New(idempotency.Options{Records: r})
			ok, e := g.Once(context.Background(), "order-1", time.Minute)
			require.Nil(t, e)
			require.True(t, ok, "taken: the window is documented, as Redis's everysec")
			if tc.says == "" {
				require.NotContains(t, logs.String(), "can lose its last commits")
				return
			}
			require.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), logs.String())
			require.Contains(t, logs.String(), "can lose its last commits in a crash")
			require.Contains(t, logs.String(), tc.says)
		})
	}
}

// schemaTables lists the schemas holding a records table in the database
// at u.
func schemaTables(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT schemaname FROM pg_tables WHERE tablename = $1 ORDER BY schemaname`, sqlrecords.Table)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

// dbOf is the database a test URL names.
func dbOf(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	require.NoError(t, err)
	return strings.TrimPrefix(p.Path, "/")
}

// An outside tester charged one key twice: a URL without search_path put
// the table in public; after ALTER DATABASE ... SET search_path, a new
// instance with the same URL resolved another schema, took its empty table
// for a fresh store and charged again. Without a search_path in the URL, a
// records table in a schema other than the resolved one is refused
// (-1601, naming the schemas and the fix), and no second table is made;
// an explicit search_path is used as is.
func TestADefaultSearchPathThatMovedIsRefused(t *testing.T) {
	ctx := context.Background()
	base := sqltest.Postgres(t)
	db := sqltest.Open(t, base)
	_, err := db.Exec(`CREATE SCHEMA h3s`)
	require.NoError(t, err)

	first := open(t, base)
	ok := reserve(t, first, "SP1", "t1")
	require.True(t, ok)
	require.NoError(t, first.Close())
	require.Equal(t, []string{"public"}, schemaTables(t, db))

	_, err = db.Exec(`ALTER DATABASE ` + dbOf(t, base) + ` SET search_path = h3s`)
	require.NoError(t, err)

	second := open(t, base)
	g := idempotency.New(idempotency.Options{Records: second})
	ok, e := g.Once(ctx, "SP1", time.Minute)
	require.False(t, ok, "a second charge of SP1")
	require.NotNil(t, e)
	require.Equal(t, envelope.CodeConfig, e.Code, e.Error())
	require.ErrorIs(t, e, idempotency.ErrSettings)
	for _, w := range []string{"public", "h3s", "?search_path=", "CLOUDCALL_IDEMPOTENCY_STORE"} {
		require.Contains(t, e.Error(), w)
	}
	require.ErrorIs(t, second.Warm(ctx), idempotency.ErrSettings, "Warm at cold start refuses it too (a WARN line)")
	schema, err := second.Schema(ctx)
	require.ErrorIs(t, err, idempotency.ErrSettings)
	require.Equal(t, "h3s", schema, "the resolved schema is named even when refused")
	require.Equal(t, []string{"public"}, schemaTables(t, db), "no table made in h3s")

	// Naming the schema in the URL is the fix: the key is found there.
	pinned := open(t, withParam(t, base, "search_path", "public"))
	ok = reserve(t, pinned, "SP1", "t2")
	require.False(t, ok, "SP1 is taken")
	schema, err = pinned.Schema(ctx)
	require.NoError(t, err)
	require.Equal(t, "public", schema)

	// An explicit search_path is used as is: another deployment may share
	// the database on purpose.
	other := open(t, withParam(t, base, "search_path", "h3s"))
	ok = reserve(t, other, "SP1", "t3")
	require.True(t, ok)
	require.Equal(t, []string{"h3s", "public"}, schemaTables(t, db))
}

// reserve reserves key in r as in progress, failing the test on an error,
// and says whether it was free.
func reserve(t *testing.T, r *sqlrecords.Records, key, token string) bool {
	t.Helper()
	ok, err := r.Reserve(context.Background(), key, idempotency.Record{Token: token, State: idempotency.InProgress}, time.Minute)
	require.NoError(t, err)
	return ok
}

// A search_path listing several schemas resolves the first that exists, so
// a schema earlier in the list created later moved new instances to an
// empty table: ?search_path=h8x,public charged a key again after CREATE
// SCHEMA h8x (a re-tester). A list is checked like no path: a records
// table in another schema is refused.
func TestASearchPathListWhoseFirstSchemaAppearsIsRefused(t *testing.T) {
	for name, param := range map[string][2]string{
		"search_path list": {"search_path", "h8x,public"},
		// The server takes the last of two (a re-tester's URL, read as one
		// schema from the first, charged a key again).
		"options, twice": {"options", "-c search_path=h8x -c search_path=h8x,public"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			base := sqltest.Postgres(t)
			db := sqltest.Open(t, base)
			url := withParam(t, base, param[0], param[1])

			first := open(t, url)
			require.True(t, reserve(t, first, "SP2", "t1"))
			require.NoError(t, first.Close())
			require.Equal(t, []string{"public"}, schemaTables(t, db))

			_, err := db.Exec(`CREATE SCHEMA h8x`)
			require.NoError(t, err)
			second := open(t, url)
			g := idempotency.New(idempotency.Options{Records: second})
			ok, e := g.Once(ctx, "SP2", time.Minute)
			require.False(t, ok, "a second charge of SP2")
			require.NotNil(t, e)
			require.Equal(t, envelope.CodeConfig, e.Code, e.Error())
			for _, w := range []string{"more than one schema", "public", "h8x", "?search_path="} {
				require.Contains(t, e.Error(), w)
			}
			require.Equal(t, []string{"public"}, schemaTables(t, db), "no table made in h8x")
		})
	}
}

// A URL whose search_path names no schema that exists is refused at every
// statement, the fence's read too (records status read it as "unfenced").
func TestASearchPathNamingNoSchemaRefusesTheFence(t *testing.T) {
	r := open(t, withParam(t, sqltest.Postgres(t), "search_path", "h3_absent"))
	_, err := r.Fence(context.Background())
	require.ErrorIs(t, err, idempotency.ErrSettings)
	require.Contains(t, err.Error(), "no schema of the URL's search_path exists")
}

// An instance kept running across a change of the database's default
// search_path stays on its table: its new connections (the old ones killed)
// use the schema it resolved at its first, not the new default.
func TestARunningInstanceKeepsItsSchema(t *testing.T) {
	ctx := context.Background()
	base := sqltest.Postgres(t)
	db := sqltest.Open(t, base)
	_, err := db.Exec(`CREATE SCHEMA h3s`)
	require.NoError(t, err)
	r := open(t, base)
	ok := reserve(t, r, "SP1", "t1")
	require.True(t, ok)

	// A schema named after the user, first in the default search_path
	// ("$user", public), with a table of the same name, changes nothing
	// for the connection already open.
	var user string
	require.NoError(t, db.QueryRow(`SELECT current_user`).Scan(&user))
	_, err = db.Exec(`CREATE SCHEMA "` + user + `"; CREATE TABLE "` + user + `".` + sqlrecords.Table + ` (LIKE public.` + sqlrecords.Table + ` INCLUDING ALL)`)
	require.NoError(t, err)
	ok = reserve(t, r, "SP1", "t2")
	require.False(t, ok, "SP1 is taken in the instance's table")
	_, err = db.Exec(`DROP SCHEMA "` + user + `" CASCADE`)
	require.NoError(t, err)

	_, err = db.Exec(`ALTER DATABASE ` + dbOf(t, base) + ` SET search_path = h3s`)
	require.NoError(t, err)
	_, err = db.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	require.NoError(t, err)
	time.Sleep(1100 * time.Millisecond) // idle long enough to be checked before use

	var wg sync.WaitGroup
	got := make([]bool, 6)
	errs := make([]error, 6)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = r.Reserve(ctx, "SP1", idempotency.Record{Token: fmt.Sprint("n", i), State: idempotency.InProgress}, time.Minute)
		}()
	}
	wg.Wait()
	for i := range got {
		require.NoError(t, errs[i])
		require.False(t, got[i], "SP1 is taken in the instance's table")
	}
	require.Equal(t, []string{"public"}, schemaTables(t, db), "one table only")
	schema, err := r.Schema(ctx)
	require.NoError(t, err)
	require.Equal(t, "public", schema)
}
