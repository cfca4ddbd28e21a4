// Package sqltest gives each test its own database on the PostgreSQL and
// MySQL/MariaDB servers the tests may use, and drops it afterwards. The
// servers come from CLOUDCALL_TEST_POSTGRES_URL / CLOUDCALL_TEST_MYSQL_URL
// (an administrative URL; .ci/run exports both), else from the usual local
// defaults. A server that does not answer skips the test with one line,
// except under CI=true, where it fails the run.
package sqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
)

const (
	defaultPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	defaultMySQL    = "mysql://root@127.0.0.1:3306/mysql"
)

// Postgres creates a fresh database and returns its postgres:// URL.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := env("CLOUDCALL_TEST_POSTGRES_URL", defaultPostgres)
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("CLOUDCALL_TEST_POSTGRES_URL: %v", err)
	}
	ping(t, db, "postgres", "CLOUDCALL_TEST_POSTGRES_URL")
	name := dbName()
	exec(t, db, `CREATE DATABASE `+name)
	t.Cleanup(func() {
		exec(t, db, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
		_ = db.Close()
	})
	u, _ := url.Parse(admin)
	u.Path = "/" + name
	return u.String()
}

// MySQL creates a fresh database and returns its mysql:// URL.
func MySQL(t testing.TB) string {
	t.Helper()
	admin := env("CLOUDCALL_TEST_MYSQL_URL", defaultMySQL)
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("CLOUDCALL_TEST_MYSQL_URL: %v", err)
	}
	c := mysql.NewConfig()
	c.Net, c.Addr = "tcp", u.Host
	if u.User != nil {
		c.User = u.User.Username()
		c.Passwd, _ = u.User.Password()
	}
	c.Timeout = 2 * time.Second
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		t.Fatalf("CLOUDCALL_TEST_MYSQL_URL: %v", err)
	}
	ping(t, db, "mysql", "CLOUDCALL_TEST_MYSQL_URL")
	name := dbName()
	exec(t, db, "CREATE DATABASE "+name)
	t.Cleanup(func() {
		exec(t, db, "DROP DATABASE IF EXISTS "+name)
		_ = db.Close()
	})
	u.Path = "/" + name
	return u.String()
}

// Host is host:port of a test URL (to put a proxy in front of it).
func Host(raw string) string {
	u, _ := url.Parse(raw)
	return u.Host
}

// WithHost points a test URL at another host:port (a proxy).
func WithHost(raw, hostport string) string {
	u, _ := url.Parse(raw)
	u.Host = hostport
	return u.String()
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func dbName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "cloudcall_test_" + hex.EncodeToString(b)
}

func ping(t testing.TB, db *sql.DB, what, variable string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		why := strings.ReplaceAll(err.Error(), "\n", " ")
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: not reachable (%s); CI=true needs it (.ci/run starts it and sets %s)", what, why, variable)
		}
		t.Skipf("%s: not reachable (%s); skipping (start it or set %s)", what, why, variable)
	}
}

func exec(t testing.TB, db *sql.DB, q string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, q); err != nil {
		t.Errorf("%s: %v", q, err)
	}
}

// Open connects to a database URL from Postgres or MySQL with
// database/sql, for a test to act on the server behind the store's back.
func Open(t testing.TB, raw string) *sql.DB {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	driver, dsn := "pgx", raw
	if u.Scheme == "mysql" {
		c := mysql.NewConfig()
		c.Net, c.Addr, c.DBName = "tcp", u.Host, strings.TrimPrefix(u.Path, "/")
		if u.User != nil {
			c.User = u.User.Username()
			c.Passwd, _ = u.User.Password()
		}
		driver, dsn = "mysql", c.FormatDSN()
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}
