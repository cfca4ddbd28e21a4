package recordstore_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/idempotency/recordstore"
	"github.com/cloudcall/cloudcall/shared/registry"
)

func TestPatternMatchesTheRegistry(t *testing.T) {
	require.Equal(t, recordstore.Pattern, registry.IdempotencyStorePattern)
}

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // backend name, or an error substring
	}{
		{"nothing: refused", map[string]string{}, "set CLOUDCALL_IDEMPOTENCY_STORE"},
		{"memory: refused", map[string]string{"CLOUDCALL_STORE": "memory"}, "set CLOUDCALL_IDEMPOTENCY_STORE"},
		{"shared Redis", map[string]string{"CLOUDCALL_STORE": "redis://127.0.0.1:6379/0"}, "redis"},
		{"postgres", map[string]string{"CLOUDCALL_STORE": "memory", "CLOUDCALL_IDEMPOTENCY_STORE": "postgres://u@127.0.0.1/db"}, "postgres"},
		{"postgresql", map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": "postgresql://u@127.0.0.1/db"}, "postgres"},
		{"mysql over the shared Redis", map[string]string{"CLOUDCALL_STORE": "redis://127.0.0.1:6379/0", "CLOUDCALL_IDEMPOTENCY_STORE": "mysql://u:p@127.0.0.1:3306/db"}, "mysql"},
		{"rediss", map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": "rediss://:p@127.0.0.1:6380/0"}, "redis"},
		{"memory is not a records store", map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": "memory"}, "CLOUDCALL_IDEMPOTENCY_STORE: expected a postgres://"},
		{"bad persistence policy", map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": "redis://127.0.0.1:6379/0", "CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE": "trust-me"}, "expected verify or assume"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := recordstore.FromEnv(config.FromMap(tc.env), nil)
			if !recordstore.HasSQL && (tc.want == "postgres" || tc.want == "mysql") {
				// Packaged for Redis: a SQL store is refused, saying how to fix it.
				require.ErrorIs(t, err, recordstore.ErrNoSQLClient)
				require.ErrorContains(t, err, "CLOUDCALL_IDEMPOTENCY_STORE: this binary was packaged for a Redis records store, without the PostgreSQL and MySQL clients")
				return
			}
			if err != nil {
				require.Contains(t, err.Error(), tc.want)
				return
			}
			defer r.Close()
			require.Equal(t, tc.want, r.Name())
		})
	}
}

func TestSecretFile(t *testing.T) {
	if !recordstore.HasSQL {
		t.Skip("a SQL URL; TestFromEnv checks this build refuses one")
	}
	// The URL carries a password, so it may come from a file like every secret.
	path := t.TempDir() + "/url"
	require.NoError(t, writeFile(path, "mysql://u:p@127.0.0.1:3306/db\n"))
	r, err := recordstore.FromEnv(config.FromMap(map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE_FILE": path}), nil)
	require.NoError(t, err)
	defer r.Close()
	require.Equal(t, "mysql", r.Name())
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// What cloudcall package links into the charge, from the environment it
// deploys from: only a Redis records store lets the SQL clients go.
func TestPackaging(t *testing.T) {
	file := t.TempDir() + "/url"
	require.NoError(t, writeFile(file, "redis://:pw@10.0.0.1:6379/0\n"))
	for _, tc := range []struct {
		name string
		env  map[string]string
		sql  bool
		why  string
	}{
		{"redis records", map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": "redis://10.0.0.1:6379/0"}, false, "CLOUDCALL_IDEMPOTENCY_STORE is a Redis URL"},
		{"rediss records", map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": "rediss://:p@10.0.0.1:6380/0"}, false, "CLOUDCALL_IDEMPOTENCY_STORE is a Redis URL"},
		{"from a file", map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE_FILE": file}, false, "CLOUDCALL_IDEMPOTENCY_STORE is a Redis URL"},
		{"the shared Redis", map[string]string{"CLOUDCALL_STORE": "redis://10.0.0.1:6379/0"}, false, "CLOUDCALL_STORE is a Redis URL"},
		{"postgres", map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": "postgres://u@h/db"}, true, "CLOUDCALL_IDEMPOTENCY_STORE is a SQL URL"},
		{"mysql over the shared Redis", map[string]string{"CLOUDCALL_STORE": "redis://h:6379/0", "CLOUDCALL_IDEMPOTENCY_STORE": "mysql://u:p@h:3306/db"}, true, "is a SQL URL"},
		{"unset: every client", map[string]string{}, true, "CLOUDCALL_IDEMPOTENCY_STORE is not set here"},
		{"memory: every client", map[string]string{"CLOUDCALL_STORE": "memory"}, true, "not set here"},
		{"unreadable file: every client", map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE_FILE": "/nonexistent/url"}, true, "CLOUDCALL_IDEMPOTENCY_STORE_FILE"},
		{"malformed: every client, never quoted", map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": "u:secretpw@h/db"}, true, "is not a redis://, postgres:// or mysql:// URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sql, why := recordstore.Packaging(config.FromMap(tc.env))
			require.Equal(t, tc.sql, sql)
			require.Contains(t, why, tc.why)
			require.NotContains(t, why, "secretpw")
			require.NotContains(t, why, "pw@")
		})
	}
}

// Where names the schema a postgres:// URL's search_path picks: a tool
// pointed at the URL without it would restore into another table while
// its output looked right. Never the password.
func TestWhere(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"postgres://u:s3cret@127.0.0.1:5432/h2money?sslmode=disable", "postgres 127.0.0.1:5432/h2money (CLOUDCALL_IDEMPOTENCY_STORE)"},
		{"postgres://u:s3cret@127.0.0.1:5432/h2money?search_path=h2x&sslmode=disable", "postgres 127.0.0.1:5432/h2money (search_path h2x) (CLOUDCALL_IDEMPOTENCY_STORE)"},
		{"postgresql://u:s3cret@127.0.0.1:5432/h2money?options=-c%20search_path%3Dh2x", "postgresql 127.0.0.1:5432/h2money (search_path h2x) (CLOUDCALL_IDEMPOTENCY_STORE)"},
		{"mysql://u:s3cret@127.0.0.1:3306/h2money?search_path=x", "mysql 127.0.0.1:3306/h2money (CLOUDCALL_IDEMPOTENCY_STORE)"},
	} {
		got := recordstore.Where(config.FromMap(map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": tc.url}))
		require.Equal(t, tc.want, got)
		require.NotContains(t, got, "s3cret")
	}
}

// WhereIn names the schema the store resolved, also for a URL that sets no
// search_path (the database's default picked it: an outside tester's tools
// named none while the charge used another table).
func TestWhereIn(t *testing.T) {
	for _, tc := range []struct{ url, schema, want string }{
		{"postgres://u:s3cret@127.0.0.1:5432/h3_sp?sslmode=disable", "h3s", "postgres 127.0.0.1:5432/h3_sp (schema h3s) (CLOUDCALL_IDEMPOTENCY_STORE)"},
		{"postgres://u:s3cret@127.0.0.1:5432/h3_sp?search_path=h3s", "h3s", "postgres 127.0.0.1:5432/h3_sp (search_path h3s) (CLOUDCALL_IDEMPOTENCY_STORE)"},
		{"postgres://u:s3cret@127.0.0.1:5432/h3_sp?search_path=a%2Cb", "b", "postgres 127.0.0.1:5432/h3_sp (search_path a,b: schema b) (CLOUDCALL_IDEMPOTENCY_STORE)"},
		{"postgres://u:s3cret@127.0.0.1:5432/h3_sp", "", "postgres 127.0.0.1:5432/h3_sp (CLOUDCALL_IDEMPOTENCY_STORE)"},
		{"mysql://u:s3cret@127.0.0.1:3306/h3_sp", "", "mysql 127.0.0.1:3306/h3_sp (CLOUDCALL_IDEMPOTENCY_STORE)"},
	} {
		got := recordstore.WhereIn(config.FromMap(map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": tc.url}), tc.schema)
		require.Equal(t, tc.want, got)
		require.NotContains(t, got, "s3cret")
	}
}
