package sqlrecords

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	pool, err := puddle.NewPool(&puddle.Config[*pgconn.PgConn]{
		// The pool does not cancel a connect when the caller gives up
		// (another caller may take the connection), so it has its own bound.
		Constructor: func(ctx context.Context) (*pgconn.PgConn, error) {
			ctx, cancel := context.WithTimeout(ctx, connectFor)
			defer cancel()
			return pgconn.ConnectConfig(ctx, cfg)
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
	return &pgConns{pool: pool, maxIdle: 5 * time.Minute}, nil
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
