// Package sqlrecords keeps idempotency records in PostgreSQL or MySQL /
// MariaDB (ApsaraDB RDS, PolarDB, Amazon RDS, Aurora): a committed row
// survives restarts and failovers, which is what money records need. The
// table is created on first use (an idempotent migration); expired rows are
// as good as absent and are deleted by a bounded Purge.
package sqlrecords

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/cloudcall/cloudcall/shared/idempotency"
)

// Table is the records table.
const Table = "cloudcall_idempotency"

// Options configures Open.
type Options struct {
	// URL is postgres://user:pass@host:5432/db?sslmode=require or
	// mysql://user:pass@host:3306/db?tls=true.
	URL string
	// Timeout bounds each statement, the wait for a pooled connection
	// included (default 5s: a busy server fits; a dead one still answers
	// -1501 well inside the charge's 15 s).
	Timeout time.Duration
	// MaxConns bounds this instance's connections (default 10): many
	// instances share the server's max_connections, and a caller waits for
	// a free connection within Timeout rather than open one more.
	MaxConns int
	// Log hears a records table found emptied or dropped (default:
	// discarded).
	Log *slog.Logger
	// AfterLoss is what a fence found gone leads to:
	// idempotency.AfterLossRefuse (default) or AfterLossContinue.
	AfterLoss string
	// Now is this instance's clock (default time.Now); a loss it finds is
	// dated by the later of it and the server's.
	Now func() time.Time
}

// Records is idempotency.Records on SQL.
type Records struct {
	db   conn
	d    dialect
	o    Options
	host string

	mu       sync.Mutex
	migrated bool
	fence    string        // the fence row's token this instance saw; "" before the first migration
	flight   chan struct{} // closed when the migration under way ends; nil when none is
	flew     error         // how the last migration ended
	// refusal is the store's recorded loss (idempotency.ErrLost), which
	// refuses reservations; refusedAt is when the fence last said so.
	refusal   error
	refusedAt time.Time
}

// fenceKey is a row no record key can be (theirs start with "idem:" or
// "sha256:"). It never expires; a table that lost it lost its records.
const fenceKey = "~fence"

// fenceTTL keeps the fence beyond any purge: a century.
const fenceTTL = 100 * 365 * 24 * time.Hour

var _ idempotency.Records = (*Records)(nil)

// Open parses the URL; nothing dials until the first record.
func Open(o Options) (*Records, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 10
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	var err error
	if o.AfterLoss, err = idempotency.CheckAfterLoss(o.AfterLoss); err != nil {
		return nil, err
	}
	if strings.HasPrefix(o.URL, "mysql://") && strings.Contains(o.URL, "tcp(") {
		// The driver's own DSN form behind the scheme, which an outside
		// tester tried and was told only "cannot parse it".
		return nil, fmt.Errorf("idempotency store URL: user@tcp(host:port)/db is the MySQL driver's DSN form, not a URL: write mysql://user:password@host:3306/db (driver parameters such as ?tls=true after it)")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("idempotency store URL: cannot parse it (check its escaping)")
	}
	var db conn
	var d dialect
	switch u.Scheme {
	case "postgres", "postgresql":
		d = postgres{}
		db, err = openPG(o.URL, o)
	case "mysql":
		var vars []string
		db, vars, err = openMySQL(u, o)
		d = mysqlDialect{vars: vars}
	default:
		return nil, fmt.Errorf("idempotency store URL: expected postgres:// or mysql://, got %s://", u.Scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("idempotency store URL: %w", err)
	}
	return &Records{db: db, d: d, o: o, host: u.Host}, nil
}

// conn runs statements: pgconn for PostgreSQL (pg.go), database/sql for
// MySQL.
type conn interface {
	exec(ctx context.Context, q string, args ...any) (int64, error)
	// queryText returns the first column of the first row, or errNoRows.
	queryText(ctx context.Context, q string, args ...any) (string, error)
	// script runs statements that take no parameters.
	script(ctx context.Context, q string) error
	close() error
}

var errNoRows = errors.New("no rows")

// sqlConns is conn on database/sql.
type sqlConns struct{ db *sql.DB }

// openMySQL also returns the URL's parameters the driver sends as system
// variables, for the message when the server refuses them.
func openMySQL(u *url.URL, o Options) (*sqlConns, []string, error) {
	dsn, err := mysqlDSN(u, o.Timeout)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, nil, err
	}
	var vars []string
	for k := range cfg.Params {
		vars = append(vars, k)
	}
	slices.Sort(vars)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, nil, err
	}
	db.SetMaxOpenConns(o.MaxConns)
	db.SetMaxIdleConns(o.MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &sqlConns{db: db}, vars, nil
}

func (s *sqlConns) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s *sqlConns) queryText(ctx context.Context, q string, args ...any) (string, error) {
	var out string
	err := s.db.QueryRowContext(ctx, q, args...).Scan(&out)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errNoRows
	}
	return out, err
}

func (s *sqlConns) script(ctx context.Context, q string) error {
	_, err := s.db.ExecContext(ctx, q)
	return err
}

func (s *sqlConns) close() error { return s.db.Close() }

// mysqlDSN turns mysql://user:pass@host:port/db?params into the driver's
// DSN; query parameters are the driver's own (tls=true, ...).
func mysqlDSN(u *url.URL, timeout time.Duration) (string, error) {
	c := mysql.NewConfig()
	if u.User != nil {
		c.User = u.User.Username()
		c.Passwd, _ = u.User.Password()
	}
	c.Net = "tcp"
	c.Addr = u.Host
	if u.Port() == "" {
		c.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	c.DBName = strings.TrimPrefix(u.Path, "/")
	if c.DBName == "" {
		return "", errors.New("mysql:// URL names no database (mysql://user:pass@host:3306/dbname)")
	}
	c.Timeout, c.ReadTimeout, c.WriteTimeout = timeout, timeout, timeout
	base := c.FormatDSN()
	if q := u.RawQuery; q != "" {
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		base += sep + q
	}
	parsed, err := mysql.ParseDSN(base) // validates the driver parameters
	if err != nil {
		return "", errors.New("mysql:// URL: unknown or malformed parameters")
	}
	if parsed.ClientFoundRows {
		// With it, an insert-if-absent that found the key reports a row,
		// so a finished charge answered "in progress" for a day.
		return "", errors.New("mysql:// URL: clientFoundRows=true changes the row counts the records rely on; remove it")
	}
	return parsed.FormatDSN(), nil
}

func (r *Records) Name() string { return r.d.name() }
func (r *Records) Close() error { return r.db.close() }

func (r *Records) wrap(err error) error {
	if err == nil {
		return nil
	}
	if fix, ok := r.d.settings(err); ok {
		if fix != "" {
			return fmt.Errorf("%w: %s at %s: %v: %s", idempotency.ErrSettings, r.d.name(), r.host, err, fix)
		}
		return fmt.Errorf("%w: %s at %s: %v", idempotency.ErrSettings, r.d.name(), r.host, err)
	}
	return fmt.Errorf("%w: %s at %s: %v", idempotency.ErrUnavailable, r.d.name(), r.host, err)
}

// migrate creates the table and its fence row once per instance, and again
// after the table was found dropped or its fence gone; a failure is retried
// by the next call. The statements are idempotent and safe when many
// instances start at once.
//
// One migration runs at a time and the calls that need it wait for its end,
// each no longer than its own context: with the lock held across the
// statements, calls queued one holder's whole timeout after another, and a
// cold instance facing a dead server answered its callers after 14 s
// instead of 5 (an outside tester's failover). Waiters take its outcome.
func (r *Records) migrate(ctx context.Context) error {
	r.mu.Lock()
	if r.migrated {
		r.mu.Unlock()
		return nil
	}
	f := r.flight
	if f == nil {
		f = make(chan struct{})
		r.flight = f
		fence := r.fence
		// Not the caller's cancellation, nor its deadline: every waiter
		// takes this outcome (bounded by Timeout).
		go func(ctx context.Context) {
			saw, err := r.createTable(ctx)
			var v verdict
			if err == nil {
				v, err = r.judge(ctx, fence, saw)
			}
			r.mu.Lock()
			if err == nil {
				r.fence, r.migrated = v.fence, true
				r.refusal, r.refusedAt = v.refusal, time.Now()
			}
			r.flight, r.flew = nil, err
			r.mu.Unlock()
			close(f)
		}(context.WithoutCancel(ctx))
	}
	r.mu.Unlock()
	select {
	case <-f:
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.migrated {
			return nil
		}
		return r.flew
	case <-ctx.Done():
		return r.wrap(fmt.Errorf("waiting for the creation of table %s: %w", Table, ctx.Err()))
	}
}

// createTable creates the table and its fence row, checks the table's
// shape and returns the fence's token. Each statement has Timeout: a slow
// server (a cross-region link) does the ten statements of a first use at
// its own pace, not all of them within one statement's bound.
func (r *Records) createTable(ctx context.Context) (string, error) {
	step := func(f func(context.Context) error) error {
		c, cancel := context.WithTimeout(ctx, r.o.Timeout)
		defer cancel()
		return f(c)
	}
	if p, ok := r.db.(*pgConns); ok {
		// Said as what it is, not as the first statement that met it.
		if err := step(func(c context.Context) error { _, err := p.pinned(c); return err }); err != nil {
			return "", r.wrap(fmt.Errorf("resolving the schema of %s: %w", Table, err))
		}
	}
	// Before anything is written: under a session that never commits,
	// even the fence row would be this connection's alone.
	var commits string
	if err := step(func(c context.Context) (err error) {
		commits, err = r.db.queryText(c, r.d.commits())
		return err
	}); err != nil {
		return "", r.wrap(fmt.Errorf("reading the session's commit settings: %w", err))
	}
	refuse, warn := r.d.durable(commits)
	if refuse != "" {
		return "", fmt.Errorf("%w: %s at %s: %s", idempotency.ErrSettings, r.d.name(), r.host, refuse)
	}
	if warn != "" {
		r.o.Log.Warn("idempotency: the records store can lose its last commits in a crash, so a charge made in that window could run again on a retry after it: set it for money, or accept the window knowingly: "+warn,
			"store", r.d.name(), "host", r.host)
	}
	if err := step(func(c context.Context) error { return r.d.migrate(c, r.db) }); err != nil {
		return "", r.wrap(fmt.Errorf("creating table %s: %w", Table, err))
	}
	if err := step(func(c context.Context) error {
		_, err := r.db.exec(c, r.d.insertIfAbsent(), fenceKey, idempotency.NewFence(), "fence", fenceRec, fenceTTL.Milliseconds())
		return err
	}); err != nil {
		return "", r.wrap(fmt.Errorf("writing the fence row of %s: %w", Table, err))
	}
	var fence string
	if err := step(func(c context.Context) (err error) {
		fence, err = r.db.queryText(c, r.d.fence(), fenceKey)
		return err
	}); err != nil {
		return "", r.wrap(fmt.Errorf("reading the fence row of %s: %w", Table, err))
	}
	return fence, r.checkShape(step)
}

// probeTTL is how long the shape probe's rows live; the purge removes them.
const probeTTL = time.Minute

// checkShape proves, on the table as it is, what the records rely on: a
// table someone else created (CREATE TABLE IF NOT EXISTS keeps it) could
// look right and not be. Outside testers' pre-created tables charged every
// repeat of a key (no unique key on k; a unique key on (k, state), which
// a reservation does not collide with once the first row is done; a
// trigger deleting finished rows), merged keys (a case-insensitive or
// prefix key, a column that truncates), hid finished rows (a view), or
// could not hold an answer (a short rec, an INT expiry). So the probe lives
// a record's whole life with the dialect's own statements: reserved, a
// second reservation of its key in another state refused, its neighbour
// that differs only in the last byte and its capitals taken as other keys,
// finished with an answer of a few kilobytes, read back whole, and deleted
// (the clean-up and a release need DELETE).
func (r *Records) checkShape(step func(func(context.Context) error) error) error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b) // lowercase: its capitals differ
	// 190 bytes: as long as a stored key gets, sharing all but its last
	// byte with its neighbour, as keys share their deployment's prefix.
	base := "~probe-" + id + strings.Repeat("x", 190-len("~probe-")-len(id)-1)
	key, neighbour, capitals := base+"a", base+"b", strings.ToUpper(base)+"A"
	ttl := probeTTL.Milliseconds()
	answer := `{"state":"done","body":"` + strings.Repeat("a", 4000) + `"}`
	refuse := func(what string) error {
		return fmt.Errorf("%w: %s at %s: table %s %s: drop it and let the function create it (docs/state.md has its shape)", idempotency.ErrSettings, r.d.name(), r.host, Table, what)
	}
	var n int64
	exec := func(what, q string, args ...any) error {
		if err := step(func(c context.Context) (err error) {
			n, err = r.db.exec(c, q, args...)
			return err
		}); err != nil {
			return r.wrap(fmt.Errorf("checking the shape of %s (%s): %w", Table, what, err))
		}
		return nil
	}
	if err := exec("reserve", r.d.insertIfAbsent(), key, id+"1", idempotency.Reserved, `{"state":"reserved"}`, ttl); err != nil {
		return err
	} else if n != 1 {
		return refuse("did not take a fresh key")
	}
	if err := exec("reserve again", r.d.insertIfAbsent(), key, id+"2", idempotency.InProgress, `{"state":"in_progress"}`, ttl); err != nil {
		return err
	} else if n != 0 {
		return refuse("accepts a second row with the same key in another state (no unique key on k alone): it cannot stop a second charge")
	}
	for _, other := range []struct{ k, what string }{
		{neighbour, "takes two keys that differ only in their last byte for one (a key on a prefix of k, or a k shorter than 191 bytes)"},
		{capitals, "compares keys without regard to case (a case-insensitive collation on k; it needs a binary one, ascii_bin)"},
	} {
		if err := exec("another key", r.d.insertIfAbsent(), other.k, id+"3", idempotency.Reserved, `{"state":"reserved"}`, ttl); err != nil {
			return err
		} else if n != 1 {
			return refuse(other.what)
		}
	}
	if err := exec("finish", r.d.finish(), id+"4", idempotency.Done, answer, ttl, key, id+"1"); err != nil {
		return err
	} else if n != 1 {
		return refuse("lost a reservation before it was finished")
	}
	var got string
	if err := step(func(c context.Context) (err error) {
		got, err = r.db.queryText(c, r.d.read(), key)
		return err
	}); err != nil && !errors.Is(err, errNoRows) {
		return r.wrap(fmt.Errorf("checking the shape of %s (read): %w", Table, err))
	}
	if got != answer {
		return refuse("does not give back a finished record as written (rows deleted or hidden once finished, rec cut short, or expires_ms unable to hold a time in milliseconds)")
	}
	if err := exec("delete", r.d.release(), key, id+"4"); err != nil {
		return err
	} else if n != 1 {
		return refuse("did not delete a record")
	}
	var traits string
	if err := step(func(c context.Context) (err error) {
		traits, err = r.db.queryText(c, r.d.traits())
		return err
	}); err != nil {
		return r.wrap(fmt.Errorf("checking the shape of %s (catalog): %w", Table, err))
	}
	if fix := r.d.lasting(traits); fix != "" {
		return fmt.Errorf("%w: %s at %s: %s", idempotency.ErrSettings, r.d.name(), r.host, fix)
	}
	if !r.d.plain(traits) {
		return refuse("is not a plain table the records can trust (" + traits + "): a trigger, rule or row security can change or remove records behind the function's back while sparing this check's rows, and a MEMORY table loses them at a restart")
	}
	return nil
}

// fenceRec is the fence row's rec.
const fenceRec = `{"state":"fence"}`

// lossFound starts the ERROR of a loss: how it was found.
const lossFound = "idempotency: the records store lost its data (the records table was dropped or emptied, or its fence row, which never expires, replaced: a restore from an older copy); "

// judge compares the fence row found (saw) with the one this instance saw
// before (prev). What was lost stays lost: a key charged before can charge
// again, and only a person can tell which, so by default the loss is
// written into the fence row, and every instance refuses charges until
// that person reopens the store.
// verdict is a judged fence: the one to remember, and the refusal it means.
type verdict struct {
	fence   string
	refusal error
}

func (r *Records) judge(ctx context.Context, prev, saw string) (verdict, error) {
	switch idempotency.Judge(prev, saw) {
	case idempotency.FenceRecordsLoss:
		return verdict{saw, idempotency.LostError(r.d.name(), saw)}, nil
	case idempotency.FenceGone:
		if r.o.AfterLoss == idempotency.AfterLossContinue {
			r.o.Log.Error(lossFound+idempotency.LossContinued,
				"store", r.d.name(), "host", r.host, "table", Table, "afterLoss", r.o.AfterLoss)
			return verdict{fence: saw}, nil
		}
		at := r.o.Now()
		if st, err := r.Clock(ctx); err == nil && st.After(at) {
			// The later of the two, as mark-lost dates a loss: reopen
			// waits from it, and a slow clock here dated it early.
			at = st
		}
		lost := idempotency.LostFence(at, saw, prev)
		c, cancel := context.WithTimeout(ctx, r.o.Timeout)
		defer cancel()
		// Only over the fence judged: a reopening in between stands (and
		// is judged at the next reservation).
		if _, err := r.db.exec(c, r.d.finish(), lost, "fence", fenceRec, fenceTTL.Milliseconds(), fenceKey, saw); err != nil {
			return verdict{}, r.wrap(fmt.Errorf("writing the loss into the fence row of %s: %w", Table, err))
		}
		r.o.Log.Error(lossFound+idempotency.LossRefused,
			"store", r.d.name(), "host", r.host, "table", Table, "afterLoss", r.o.AfterLoss)
		return verdict{lost, idempotency.LostError(r.d.name(), lost)}, nil
	}
	if at, ok := idempotency.FenceReopenedAt(saw); ok && prev != "" && prev != saw {
		r.o.Log.Warn(idempotency.Reopened,
			"store", r.d.name(), "host", r.host, "table", Table, "reopened", at)
	}
	return verdict{fence: saw}, nil
}

// admit refuses a reservation while the store records a loss. The fence is
// read again at most once a second: a reopening ends the refusal.
func (r *Records) admit(ctx context.Context) error {
	r.mu.Lock()
	refusal, at, mine := r.refusal, r.refusedAt, r.fence
	r.mu.Unlock()
	if refusal == nil {
		return nil
	}
	if time.Since(at) < time.Second {
		return refusal
	}
	fence, err := r.db.queryText(ctx, r.d.fence(), fenceKey)
	if err != nil && !errors.Is(err, errNoRows) && !r.d.missingTable(err) {
		return r.wrap(err)
	}
	r.mu.Lock()
	if fence == mine {
		r.refusedAt = time.Now()
		r.mu.Unlock()
		return refusal
	}
	r.migrated = false
	r.mu.Unlock()
	if err := r.migrate(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refusal
}

// Fence reads the fence row (idempotency.Fencer): "" when there is none,
// or no table yet.
func (r *Records) Fence(ctx context.Context) (string, error) {
	c, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	fence, err := r.db.queryText(c, r.d.fence(), fenceKey)
	if errors.Is(err, errNoRows) || (err != nil && r.d.missingTable(err)) {
		return "", nil
	}
	return fence, r.wrap(err)
}

// Clock is the database's time (idempotency.Fencer).
func (r *Records) Clock(ctx context.Context) (time.Time, error) {
	c, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	text, err := r.db.queryText(c, r.d.clock())
	if err != nil {
		return time.Time{}, r.wrap(err)
	}
	ms, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s at %s: reading its time %q: %w", r.d.name(), r.host, text, err)
	}
	return time.UnixMilli(ms), nil
}

// SwapFence writes fence over the fence row was, only if it is still there
// (idempotency.Fencer). Over none, it creates the table if it has to, and
// writes the row only if there is still none.
func (r *Records) SwapFence(ctx context.Context, was, fence string) error {
	c, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	var n int64
	var err error
	if was == "" {
		if err = r.d.migrate(c, r.db); err == nil {
			n, err = r.db.exec(c, r.d.insertIfAbsent(), fenceKey, fence, "fence", fenceRec, fenceTTL.Milliseconds())
		}
	} else {
		n, err = r.db.exec(c, r.d.finish(), fence, "fence", fenceRec, fenceTTL.Milliseconds(), fenceKey, was)
	}
	if err != nil {
		return r.wrap(err)
	}
	if n != 1 {
		return r.wrap(fmt.Errorf("the fence row of %s changed meanwhile; run it again", Table))
	}
	return nil
}

var _ idempotency.Fencer = (*Records)(nil)

// checkFence reads the fence row; a table that lost it is migrated again
// (which judges the loss). Run with the periodic purge: a TRUNCATE is found within
// a minute, a DROP at the next statement.
func (r *Records) checkFence(ctx context.Context) error {
	fence, err := r.db.queryText(ctx, r.d.fence(), fenceKey)
	if err != nil && !errors.Is(err, errNoRows) {
		return r.wrap(err)
	}
	r.mu.Lock()
	gone := fence != r.fence
	if gone {
		r.migrated = false
	}
	r.mu.Unlock()
	if gone {
		return r.migrate(ctx)
	}
	return nil
}

// again runs a statement once more after migrating, when it found the table
// dropped under this instance: warm instances answered -1501 until they
// were replaced, while a new instance recreated the table.
func (r *Records) again(ctx context.Context, err error, f func() error) error {
	if err == nil || !r.d.missingTable(err) {
		return err
	}
	r.mu.Lock()
	r.migrated = false
	r.mu.Unlock()
	if merr := r.migrate(ctx); merr != nil {
		return merr
	}
	return f()
}

// Schema is the PostgreSQL schema of the records table, which the
// instance resolved at its first connection and keeps ("" on MySQL, whose
// database is its schema). When it is refused, the error says why and the
// schema is the one resolved.
func (r *Records) Schema(ctx context.Context) (string, error) {
	p, ok := r.db.(*pgConns)
	if !ok {
		return "", nil
	}
	c, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	s, err := p.pinned(c)
	return s, r.wrap(err)
}

// Warm connects and creates the table (idempotency.Warmer), so the first
// charge of an instance does not wait for either.
func (r *Records) Warm(ctx context.Context) error { return r.migrate(ctx) }

var _ idempotency.Warmer = (*Records)(nil)

// dbKey keeps keys exact and bounded: keys longer than 191 bytes, or not
// ASCII, are stored as their SHA-256.
func dbKey(key string) string {
	ascii := utf8.ValidString(key)
	for i := 0; ascii && i < len(key); i++ {
		ascii = key[i] >= 0x20 && key[i] < 0x7f
	}
	if ascii && len(key) <= 191 {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (r *Records) op(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if err := r.migrate(ctx); err != nil {
		return nil, nil, err
	}
	c, cancel := context.WithTimeout(ctx, r.o.Timeout)
	return c, cancel, nil
}

// exec runs a statement, retrying deadlocks (the database rolled the
// statement back, so running it again is safe), and once more after
// recreating a table that was dropped under this instance.
func (r *Records) exec(ctx context.Context, q string, args ...any) (int64, error) {
	n, err := r.execOnce(ctx, q, args...)
	err = r.again(ctx, err, func() error {
		n, err = r.execOnce(ctx, q, args...)
		return err
	})
	return n, err
}

func (r *Records) execOnce(ctx context.Context, q string, args ...any) (int64, error) {
	for attempt := 0; ; attempt++ {
		n, err := r.db.exec(ctx, q, args...)
		if err == nil {
			return n, nil
		}
		if attempt < 5 && r.d.retryable(err) && ctx.Err() == nil {
			continue
		}
		return 0, err
	}
}

func (r *Records) Reserve(ctx context.Context, key string, rec idempotency.Record, ttl time.Duration) (bool, error) {
	return r.reserve(ctx, key, rec, ttl, false)
}

// Rewrite is Reserve for the record of a call that ran, which a store that
// lost its data still takes (idempotency.Rewriter).
func (r *Records) Rewrite(ctx context.Context, key string, rec idempotency.Record, ttl time.Duration) (bool, error) {
	return r.reserve(ctx, key, rec, ttl, true)
}

var _ idempotency.Rewriter = (*Records)(nil)

func (r *Records) reserve(ctx context.Context, key string, rec idempotency.Record, ttl time.Duration, rewrite bool) (bool, error) {
	raw, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	ctx, cancel, err := r.op(ctx)
	if err != nil {
		return false, err
	}
	defer cancel()
	if !rewrite {
		if err := r.admit(ctx); err != nil {
			return false, err
		}
	}
	k, ttlMS := dbKey(key), ttl.Milliseconds()
	var n int64
	for attempt := 0; ; attempt++ {
		r.mu.Lock()
		mine := r.fence
		r.mu.Unlock()
		if rewrite || mine == "" {
			n, err = r.exec(ctx, r.d.insertIfAbsent(), k, rec.Token, rec.State, string(raw), ttlMS)
		} else {
			n, err = r.exec(ctx, r.d.insertFenced(), k, rec.Token, rec.State, string(raw), ttlMS, mine)
		}
		if err != nil {
			return false, r.wrap(err)
		}
		if n == 1 || rewrite {
			break
		}
		// The key is there, or the fence is not the one this instance
		// knows (another instance wrote a loss there, or the table was
		// emptied): only the fence can say. Other warm instances charged
		// repeats for a minute after a loss was written, until their
		// purge read it (outside tester).
		if err := r.checkFence(ctx); err != nil {
			return false, err
		}
		r.mu.Lock()
		refusal, now := r.refusal, r.fence
		r.mu.Unlock()
		if refusal != nil {
			return false, refusal
		}
		if now == mine || attempt > 0 {
			break
		}
		// A new fence taken (a table created again under AfterLossContinue):
		// reserve against it.
	}
	if n == 0 {
		// A row is there: take it over only if it expired (one statement,
		// so of two callers only one sees the old expiry).
		if n, err = r.exec(ctx, r.d.takeover(), rec.Token, rec.State, string(raw), ttlMS, k); err != nil {
			return false, r.wrap(err)
		}
	}
	if n == 1 && !rewrite {
		// A table found dropped by this very statement was created again
		// and its loss judged before the statement ran again: the key
		// taken there is let go.
		r.mu.Lock()
		refusal := r.refusal
		r.mu.Unlock()
		if refusal != nil {
			if _, err := r.exec(ctx, r.d.release(), k, rec.Token); err != nil {
				return false, r.wrap(err)
			}
			return false, refusal
		}
	}
	return n == 1, nil
}

func (r *Records) Finish(ctx context.Context, key, token string, rec idempotency.Record, ttl time.Duration) (bool, error) {
	raw, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	ctx, cancel, err := r.op(ctx)
	if err != nil {
		return false, err
	}
	defer cancel()
	n, err := r.exec(ctx, r.d.finish(), rec.Token, rec.State, string(raw), ttl.Milliseconds(), dbKey(key), token)
	if err != nil {
		return false, r.wrap(err)
	}
	return n == 1, nil
}

func (r *Records) Read(ctx context.Context, key string) (idempotency.Record, error) {
	ctx, cancel, err := r.op(ctx)
	if err != nil {
		return idempotency.Record{}, err
	}
	defer cancel()
	raw, err := r.db.queryText(ctx, r.d.read(), dbKey(key))
	err = r.again(ctx, err, func() error {
		raw, err = r.db.queryText(ctx, r.d.read(), dbKey(key))
		return err
	})
	if errors.Is(err, errNoRows) {
		return idempotency.Record{}, idempotency.ErrNotFound
	}
	if err != nil {
		return idempotency.Record{}, r.wrap(err)
	}
	var rec idempotency.Record
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return idempotency.Record{}, fmt.Errorf("idempotency record %q unreadable: %w", key, err)
	}
	return rec, nil
}

func (r *Records) Release(ctx context.Context, key, token string) (bool, error) {
	ctx, cancel, err := r.op(ctx)
	if err != nil {
		return false, err
	}
	defer cancel()
	n, err := r.exec(ctx, r.d.release(), dbKey(key), token)
	if err != nil {
		return false, r.wrap(err)
	}
	return n == 1, nil
}

func (r *Records) Purge(ctx context.Context, limit int) (int, error) {
	ctx, cancel, err := r.op(ctx)
	if err != nil {
		return 0, err
	}
	defer cancel()
	n, err := r.exec(ctx, r.d.purge(), limit)
	if err != nil {
		return 0, r.wrap(err)
	}
	// The purge's minute is also the fence's: a TRUNCATE leaves the table
	// without any error to notice it by.
	if err := r.checkFence(ctx); err != nil {
		return int(n), err
	}
	return int(n), nil
}
