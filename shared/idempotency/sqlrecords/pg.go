package sqlrecords

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// pgConns runs the statements on PostgreSQL with pgx's wire-protocol layer
// (pgconn) and a puddle pool, not database/sql: the records need five
// statements with text and integer parameters, and pgx's type system
// (pgtype), its pool and its database/sql driver added 370 interface
// tables for the runtime to register at every start and 2.7 MiB to the
// charge's binary.
// Each statement is one round trip (unnamed statement, parameters as
// text), where database/sql with pgx prepared each statement first.
type pgConns struct {
	pool    *puddle.Pool[*pgconn.PgConn]
	maxIdle time.Duration
	// explicit: the URL sets a search_path (its own parameter or options).
	// Only one naming a single schema (not "$user") is used as is, read
	// from the session the URL made (resolve), not from the URL: a list
	// resolves its first schema that exists, which moves when an earlier
	// one is created (a re-tester's ?search_path=h8x,public took an empty
	// h8x table after CREATE SCHEMA h8x and charged a key again), and the
	// server reads options its own way (the last of two -c search_path, a
	// backslash-escaped space: a re-tester's URL read as one schema was a
	// list). A list is checked for other schemas' tables, as no path is.
	explicit bool

	mu sync.Mutex
	// schema is the records table's schema, pinned at the instance's first
	// connection: every later one sets search_path to it, so a change of
	// the database's or the role's default cannot move a running instance
	// to another table (an outside tester's instance charged a key again
	// in an empty table of the new default schema). "" until resolved.
	schema string
	// seen is the schema last resolved, refused or not, for messages.
	seen string
}

func openPG(url string, o Options) (*pgConns, error) {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		// pgconn's parse error quotes the URL, password included.
		return nil, fmt.Errorf("cannot parse the postgres:// URL (check its parameters and escaping)")
	}
	connectFor := o.Timeout
	if cfg.ConnectTimeout > 0 {
		connectFor = cfg.ConnectTimeout
	}
	p := &pgConns{maxIdle: 5 * time.Minute, explicit: urlSetsSearchPath(cfg.RuntimeParams)}
	pool, err := puddle.NewPool(&puddle.Config[*pgconn.PgConn]{
		// The pool does not cancel a connect when the caller gives up
		// (another caller may take the connection), so it has its own bound.
		Constructor: func(ctx context.Context) (*pgconn.PgConn, error) {
			ctx, cancel := context.WithTimeout(ctx, connectFor)
			defer cancel()
			return p.connect(ctx, cfg)
		},
		Destructor: func(c *pgconn.PgConn) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = c.Close(ctx)
		},
		MaxSize: int32(o.MaxConns),
	})
	if err != nil {
		return nil, err
	}
	p.pool = pool
	return p, nil
}

// connect opens a connection on the pinned schema; before one is pinned, it
// resolves it on this connection (current_schema(), the URL's search_path
// or the server's default) and pins it. A search_path parameter in the
// startup packet is applied after the URL's options, so it wins over a
// "-c search_path=" there.
func (p *pgConns) connect(ctx context.Context, cfg *pgconn.Config) (*pgconn.PgConn, error) {
	p.mu.Lock()
	schema := p.schema
	p.mu.Unlock()
	if schema != "" {
		pinned := cfg.Copy()
		pinned.RuntimeParams["search_path"] = quoteIdent(schema)
		return pgconn.ConnectConfig(ctx, pinned)
	}
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := p.resolve(ctx, c); err != nil {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = c.Close(closeCtx)
		return nil, err
	}
	return c, nil
}

// resolve pins the schema c resolves, unless it is refused: none (no
// schema of the search_path exists), or, when the URL sets no search_path,
// a records table in another schema of the database, which may well be
// this deployment's own (its default search_path changed since the table
// was made). A refusal is not remembered: once fixed, the next connection
// resolves again. One round trip: the statement also sets c's own
// search_path to the schema, since its default one ("$user", public) could
// resolve another once a schema named after the user is made.
func (p *pgConns) resolve(ctx context.Context, c *pgconn.PgConn) error {
	// OFFSET 0 keeps q a subquery of its own, so the schema is read before
	// set_config changes the search_path it comes from.
	rr := c.ExecParams(ctx, `SELECT q.s, coalesce((SELECT string_agg(quote_ident(n.nspname), ', ' ORDER BY n.nspname)
			FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
			WHERE t.relname = $1 AND t.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname IS DISTINCT FROM q.s
				AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'), ''),
		CASE WHEN q.s IS NOT NULL THEN set_config('search_path', quote_ident(q.s), false) END, q.sp
		FROM (SELECT current_schema() AS s, current_setting('search_path') AS sp OFFSET 0) q`,
		[][]byte{[]byte(Table)}, nil, nil, nil)
	var schema, others, path string
	found := false // current_schema() is NULL when no schema of search_path exists
	for rr.NextRow() {
		v := rr.Values()
		schema, found, others, path = string(v[0]), v[0] != nil, string(v[1]), string(v[3])
	}
	if _, err := rr.Close(); err != nil {
		return err
	}
	if !found {
		what := "no schema of the URL's search_path exists"
		if !p.explicit {
			what = "no schema of the session's search_path exists (the URL sets none: the database's or the user's default)"
		}
		return &schemaRefusal{what: what, fix: "create it, or " + urlFix + "'s search_path"}
	}
	p.mu.Lock()
	p.seen = schema
	p.mu.Unlock()
	if !(p.explicit && oneSchema(path)) && others != "" {
		what := "the URL sets no search_path, and the database holds table " + Table + " in schema " + others + " while the default search_path resolves schema " + schema +
			": the records may be there (a default changed by ALTER DATABASE or ALTER ROLE ... SET search_path since), and a table here would take their keys for new ones and charge them again"
		if p.explicit {
			what = "the URL's search_path (" + path + ") names more than one schema (or \"$user\"), and the database holds table " + Table + " in schema " + others + " while the path resolves schema " + schema +
				" now: the records may be there (a schema earlier in the path created since), and a table here would take their keys for new ones and charge them again"
		}
		return &schemaRefusal{
			what: what,
			fix:  "put ?search_path=<schema> in the URL, naming the one schema this deployment's records are in (" + urlFix + ")",
		}
	}
	p.mu.Lock()
	if p.schema == "" {
		p.schema = schema
	}
	pinned := p.schema
	p.mu.Unlock()
	if pinned == schema {
		return nil
	}
	// Another connection pinned another schema meanwhile (the default
	// changed between the two): this one follows.
	_, err := c.Exec(ctx, "SET search_path TO "+quoteIdent(pinned)).ReadAll()
	return err
}

// pinned connects and returns the schema the instance uses; when it is
// refused, the schema resolved with the refusal.
func (p *pgConns) pinned(ctx context.Context) (string, error) {
	err := p.with(ctx, func(*pgconn.PgConn) error { return nil })
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		return p.seen, err
	}
	return p.schema, nil
}

// urlSetsSearchPath reports a URL that sets a search_path, as its own
// parameter or in options ("-c search_path=...").
func urlSetsSearchPath(params map[string]string) bool {
	return params["search_path"] != "" || strings.Contains(params["options"], "search_path")
}

// oneSchema reports a search_path that names exactly one schema, and not
// "$user" (which names a different one for each role).
func oneSchema(sp string) bool {
	n, inQuote, item := 0, false, strings.Builder{}
	end := func() bool {
		name := strings.TrimSpace(item.String())
		item.Reset()
		if name == "" {
			return true
		}
		n++
		return name != "$user" && name != `"$user"`
	}
	for _, r := range sp {
		switch {
		case r == '"':
			inQuote = !inQuote
		case r == ',' && !inQuote:
			if !end() {
				return false
			}
			continue
		}
		item.WriteRune(r)
	}
	return end() && n == 1
}

// schemaRefusal is a schema the records will not use; fix says what to do.
type schemaRefusal struct{ what, fix string }

func (e *schemaRefusal) Error() string { return e.what }

// quoteIdent quotes a PostgreSQL identifier (pgx.Identifier does it, in
// the pgx package this one leaves out: see pgConns).
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// with runs f on a pooled connection. A connection that broke is dropped;
// an error pgconn marks safe to retry (nothing reached the server) is retried
// on another, as database/sql does with driver.ErrBadConn. A write that failed
// on a connection reset under a busy instance is not marked so (part of it
// may have left): it answers -1501, which the caller may retry, since a
// record write is compare-and-set.
func (p *pgConns) with(ctx context.Context, f func(*pgconn.PgConn) error) error {
	for attempt := 0; ; attempt++ {
		res, err := p.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		c := res.Value()
		idle := res.IdleDuration()
		if idle > p.maxIdle {
			// Servers and NATs drop idle connections; a fresh one costs
			// less than a statement that fails on a dead one.
			res.Destroy()
			continue
		}
		if idle >= time.Second && c.Ping(ctx) != nil {
			// A connection the server closed (a restart, a failover) is
			// found by a ping before a statement is sent on it, as pgx's
			// own pool and database/sql driver do after a second idle.
			res.Destroy()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		err = f(c)
		// A connection that found the server read-only is not kept: after
		// a failover the next one may reach the new primary (a writer
		// endpoint's DNS catching up), where a kept one never would.
		var pe *pgconn.PgError
		if c.IsClosed() || errors.As(err, &pe) && pe.Code == "25006" {
			res.Destroy()
		} else {
			res.Release()
		}
		if err != nil && pgconn.SafeToRetry(err) && attempt < 2 && ctx.Err() == nil {
			continue
		}
		return err
	}
}

func pgParams(args []any) ([][]byte, error) {
	out := make([][]byte, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			out[i] = []byte(v)
		case int64:
			out[i] = strconv.AppendInt(nil, v, 10)
		case int:
			out[i] = strconv.AppendInt(nil, int64(v), 10)
		default:
			return nil, fmt.Errorf("sqlrecords: parameter %d has type %T", i+1, a)
		}
	}
	return out, nil
}

func (p *pgConns) exec(ctx context.Context, q string, args ...any) (int64, error) {
	params, err := pgParams(args)
	if err != nil {
		return 0, err
	}
	var n int64
	err = p.with(ctx, func(c *pgconn.PgConn) error {
		tag, err := c.ExecParams(ctx, q, params, nil, nil, nil).Close()
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

func (p *pgConns) queryText(ctx context.Context, q string, args ...any) (string, error) {
	params, err := pgParams(args)
	if err != nil {
		return "", err
	}
	var out string
	found := false
	err = p.with(ctx, func(c *pgconn.PgConn) error {
		rr := c.ExecParams(ctx, q, params, nil, nil, nil)
		for rr.NextRow() {
			if !found {
				out, found = string(rr.Values()[0]), true
			}
		}
		_, err := rr.Close()
		return err
	})
	if err == nil && !found {
		return "", errNoRows
	}
	return out, err
}

// script runs statements separated by semicolons in one round trip; the
// server runs them as one transaction.
func (p *pgConns) script(ctx context.Context, q string) error {
	return p.with(ctx, func(c *pgconn.PgConn) error {
		_, err := c.Exec(ctx, q).ReadAll()
		return err
	})
}

func (p *pgConns) close() error {
	p.pool.Close()
	return nil
}
