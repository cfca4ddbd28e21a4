// Package recordstore opens the durable store of a money-moving function's
// idempotency records from its configuration. Memory is never an answer.
package recordstore

import (
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"strings"
	"time"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/idempotency/redisrecords"
)

// Settings, for messages and descriptors.
const (
	VarStore       = "CLOUDCALL_IDEMPOTENCY_STORE"
	VarPersistence = "CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE"
	// Pattern is what VarStore may hold (descriptors enforce it at deploy).
	Pattern = `^(postgres|postgresql|mysql|redis|rediss)://.+`
)

// ErrMissing explains what to set when there is no durable store.
var ErrMissing = errors.New("the charge keeps its idempotency records only in a durable store: set " + VarStore + " to a postgres://, mysql:// " +
	"or redis:// URL (a Redis with appendonly yes), or CLOUDCALL_STORE to such a Redis; CLOUDCALL_STORE=memory is per instance, " +
	"so several instances could charge one key several times")

// FromEnv opens CLOUDCALL_IDEMPOTENCY_STORE, else CLOUDCALL_STORE when that
// is Redis. Nothing dials until the first record.
func FromEnv(env *config.Env, log *slog.Logger) (idempotency.Records, error) {
	url, from, err := setting(env)
	if err != nil {
		return nil, err
	}
	return Open(url, from, env, log)
}

// setting is the records store's URL and the variable it came from:
// CLOUDCALL_IDEMPOTENCY_STORE (URLs carry passwords: a secret, or its
// _FILE), else CLOUDCALL_STORE when that is Redis; ErrMissing when neither.
func setting(env *config.Env) (url, from string, err error) {
	if url, err = env.Secret(VarStore); err != nil || url != "" {
		return url, VarStore, err
	}
	shared, err := env.SecretOrWord("CLOUDCALL_STORE", "memory")
	switch {
	case err != nil:
		return "", "CLOUDCALL_STORE", err
	case !IsRedis(shared):
		return "", VarStore, ErrMissing
	}
	return shared, "CLOUDCALL_STORE", nil
}

// Where names the records store env opens, for an operator's tool to say
// where it wrote: the kind, the host and database (never the credentials),
// the key prefix for Redis, and the setting it came from. A tool pointed at
// another store than the function's reported "marked lost" and "restored"
// for a store no charge reads (an outside re-tester).
func Where(env *config.Env) string { return WhereIn(env, "") }

// WhereIn is Where with the PostgreSQL schema the store resolved (the
// records table's, which the URL's search_path need not name): without it,
// a URL that sets no search_path named no schema while the database's
// default picked one (an outside tester).
func WhereIn(env *config.Env, schema string) string {
	raw, from, err := setting(env)
	switch {
	case errors.Is(err, ErrMissing):
		return "no durable store (" + VarStore + " is not set)"
	case err != nil:
		return "an unreadable " + from
	}
	u, perr := neturl.Parse(raw)
	if perr != nil || u.Host == "" {
		return "the store in " + from // never quoted: it may hold a password
	}
	where := u.Scheme + " " + u.Host + u.EscapedPath()
	// The schema is part of where the table is: a tool pointed at a URL
	// without it would work on another table under the same name.
	switch sp := searchPath(u); {
	case sp != "" && (schema == "" || schema == sp):
		where += " (search_path " + sp + ")"
	case sp != "":
		where += " (search_path " + sp + ": schema " + schema + ")"
	case schema != "":
		where += " (schema " + schema + ")"
	}
	if IsRedis(raw) {
		where += fmt.Sprintf(", key prefix %q", env.Get("CLOUDCALL_STORE_PREFIX", "cloudcall:"))
	}
	return where + " (" + from + ")"
}

// searchPath is the search_path a postgres:// URL sets, as a parameter of
// its own or in options (-c search_path=...); "" when it sets none.
func searchPath(u *neturl.URL) string {
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return ""
	}
	q := u.Query()
	if sp := q.Get("search_path"); sp != "" {
		return sp
	}
	if _, after, ok := strings.Cut(q.Get("options"), "search_path="); ok {
		sp, _, _ := strings.Cut(after, " ")
		return sp
	}
	return ""
}

// IsRedis reports whether u names a Redis records store.
func IsRedis(u string) bool {
	return strings.HasPrefix(u, "redis://") || strings.HasPrefix(u, "rediss://")
}

// IsSQL reports whether u names a PostgreSQL or MySQL records store.
func IsSQL(u string) bool {
	for _, p := range []string{"postgres://", "postgresql://", "mysql://"} {
		if strings.HasPrefix(u, p) {
			return true
		}
	}
	return false
}

// Open opens one URL; from names the setting it came from, for errors. log
// (may be nil) hears what the store notices on its own, such as a Redis that
// lost its data.
func Open(url, from string, env *config.Env, log *slog.Logger) (idempotency.Records, error) {
	if _, err := idempotency.CheckAfterLoss(env.Get(idempotency.VarAfterLoss, "")); err != nil {
		return nil, err // the policy's own setting, not the URL's
	}
	switch {
	case IsRedis(url):
		o := redisrecords.Options{URL: url, Prefix: env.Get("CLOUDCALL_STORE_PREFIX", "cloudcall:"),
			Persistence: env.Get("CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE", redisrecords.Verify), Log: log,
			AfterLoss: env.Get(idempotency.VarAfterLoss, idempotency.AfterLossRefuse)}
		if env.Bool("CLOUDCALL_STORE_EPHEMERAL", false) {
			o.Timeout = 10 * time.Second // the emulator's embedded store: paused now and then, never down
		}
		r, err := redisrecords.Open(o)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", from, err)
		}
		return r, nil
	case IsSQL(url):
		r, err := openSQL(url, log, env.Get(idempotency.VarAfterLoss, idempotency.AfterLossRefuse))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", from, err)
		}
		return r, nil
	}
	return nil, fmt.Errorf("%s: expected a postgres://, mysql://, redis:// or rediss:// URL", from)
}
