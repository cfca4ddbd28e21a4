package sqlrecords

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// dialect is what differs between PostgreSQL and MySQL. Every statement
// takes the same arguments in the same order on both. Time is the
// database's own clock, in every statement: with each instance's clock, one
// instance running a day fast found every other instance's live records
// expired, took them over or purged them, and their keys charged again.
// Lifetimes (ttl_ms) are sent, never instants.
type dialect interface {
	name() string
	migrate(ctx context.Context, c conn) error
	insertIfAbsent() string // k, token, state, rec, ttl_ms
	// insertFenced is insertIfAbsent while the fence row holds the token
	// given: a reservation reads the fence in its own statement, so one
	// made after another instance wrote a loss there takes nothing.
	insertFenced() string // k, token, state, rec, ttl_ms, fence token
	takeover() string     // token, state, rec, ttl_ms, k
	finish() string       // token, state, rec, ttl_ms, k, old token
	read() string         // k
	release() string      // k, token
	purge() string        // limit
	fence() string        // k: the token of a row whatever its expiry
	clock() string        // the server's time in unix milliseconds
	// traits describes the records table as the catalog sees it, and
	// plain says whether that is a table the records can trust: no
	// trigger, rule or row security acting on rows behind the statements'
	// back (a probe cannot prove their absence: they can spare its rows),
	// and rows that survive a restart.
	traits() string
	plain(traits string) bool
	// lasting says what to do about a table whose rows the server does
	// not keep through a crash or on its standbys ("" when it does).
	lasting(traits string) string
	// commits reads the session's commit settings, and durable judges
	// them: refuse when a record would not be committed at all, warn when
	// a crash of the server can lose its last moments of commits (as
	// Redis's appendfsync everysec can: documented, not refused).
	commits() string
	durable(settings string) (refuse, warn string)
	// missingTable reports a statement that found no records table: it
	// was dropped while this instance ran.
	missingTable(err error) bool
	retryable(err error) bool
	// settings reports an error retrying cannot fix: the server refused
	// the URL's credentials, database, privileges, parameters or TLS, or
	// the table has another shape; fix, when known, says what to change.
	settings(err error) (fix string, ok bool)
}

// urlFix is how a fix to the URL is named: SQL URLs come only from it.
const urlFix = "fix CLOUDCALL_IDEMPOTENCY_STORE"

type postgres struct{}

// pgNow is the server's time in unix milliseconds (now(): the statement's
// transaction start, the same instant everywhere in a statement).
const pgNow = `(EXTRACT(EPOCH FROM now()) * 1000)::BIGINT`

func (postgres) name() string { return "postgres" }

func (postgres) migrate(ctx context.Context, c conn) error {
	// CREATE ... IF NOT EXISTS can still collide when instances start at
	// once; a transaction-scoped advisory lock serialises them. One script
	// is one transaction, so the lock lasts until both statements commit.
	return c.script(ctx, `SELECT pg_advisory_xact_lock(7461329105);
		CREATE TABLE IF NOT EXISTS `+Table+` (
			k TEXT PRIMARY KEY,
			token TEXT NOT NULL,
			state TEXT NOT NULL,
			rec TEXT NOT NULL,
			expires_ms BIGINT NOT NULL);
		CREATE INDEX IF NOT EXISTS `+Table+`_expires ON `+Table+` (expires_ms)`)
}

func (postgres) insertIfAbsent() string {
	return `INSERT INTO ` + Table + ` (k, token, state, rec, expires_ms) VALUES ($1, $2, $3, $4, ` + pgNow + ` + $5) ON CONFLICT (k) DO NOTHING`
}

func (postgres) insertFenced() string {
	return `INSERT INTO ` + Table + ` (k, token, state, rec, expires_ms) SELECT $1, $2, $3, $4, ` + pgNow + ` + $5
		WHERE EXISTS (SELECT 1 FROM ` + Table + ` WHERE k = '` + fenceKey + `' AND token = $6) ON CONFLICT (k) DO NOTHING`
}

func (postgres) takeover() string {
	return `UPDATE ` + Table + ` SET token = $1, state = $2, rec = $3, expires_ms = ` + pgNow + ` + $4 WHERE k = $5 AND expires_ms <= ` + pgNow
}

func (postgres) finish() string {
	return `UPDATE ` + Table + ` SET token = $1, state = $2, rec = $3, expires_ms = ` + pgNow + ` + $4 WHERE k = $5 AND token = $6 AND expires_ms > ` + pgNow
}

func (postgres) read() string {
	return `SELECT rec FROM ` + Table + ` WHERE k = $1 AND expires_ms > ` + pgNow
}

func (postgres) release() string {
	return `DELETE FROM ` + Table + ` WHERE k = $1 AND token = $2 AND expires_ms > ` + pgNow
}

func (postgres) purge() string {
	return `DELETE FROM ` + Table + ` WHERE k IN (SELECT k FROM ` + Table + ` WHERE expires_ms <= ` + pgNow + ` LIMIT $1 FOR UPDATE SKIP LOCKED)`
}

func (postgres) fence() string { return `SELECT token FROM ` + Table + ` WHERE k = $1` }

func (postgres) clock() string { return `SELECT ` + pgNow }

// traits ends with the table's schema-qualified name, for messages. Its
// persistence is the least durable of it and its partitions (an UNLOGGED
// partition of a logged table holds its rows): u unlogged, t temporary,
// p permanent.
func (postgres) traits() string {
	return `SELECT 'relkind=' || c.relkind::text || ' rowsecurity=' || c.relrowsecurity::text ||
		' triggers=' || (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)::text ||
		' rules=' || (SELECT count(*) FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.rulename <> '_RETURN')::text ||
		' persistence=' || (WITH RECURSIVE tree(oid) AS (SELECT c.oid UNION SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid)
			SELECT max(p.relpersistence::text) FROM tree JOIN pg_class p ON p.oid = tree.oid) ||
		' table=' || quote_ident(n.nspname) || '.' || quote_ident(c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass('` + Table + `')`
}

// plain: an ordinary or partitioned table without triggers, rules or row
// security, whose rows are logged.
func (postgres) plain(t string) bool {
	t, _, _ = strings.Cut(t, " table=")
	return t == "relkind=r rowsecurity=false triggers=0 rules=0 persistence=p" || t == "relkind=p rowsecurity=false triggers=0 rules=0 persistence=p"
}

// lasting: PostgreSQL empties an UNLOGGED table after a crash and a
// standby has none of its rows, so a restart or failover forgets committed
// records; a temporary one is gone with its session.
func (postgres) lasting(t string) string {
	_, table, _ := strings.Cut(t, " table=")
	switch {
	case strings.Contains(t, " persistence=u "):
		what, fix := "is UNLOGGED", "ALTER TABLE "+table+" SET LOGGED"
		if strings.HasPrefix(t, "relkind=p ") {
			what, fix = "has an UNLOGGED partition", "ALTER TABLE … SET LOGGED on each unlogged partition"
		}
		return "table " + table + " " + what + ": PostgreSQL empties it after a crash and a standby has none of its rows, " +
			"so a restart or failover would forget committed records and let their keys charge again: " + fix + ", or drop it and let the function create it"
	case strings.Contains(t, " persistence=t "):
		return "table " + table + " is a temporary table, gone when its session ends: drop it and let the function create an ordinary one"
	}
	return ""
}

func (postgres) commits() string {
	return `SELECT 'synchronous_commit=' || current_setting('synchronous_commit') || ' fsync=' || current_setting('fsync')`
}

// durable: every PostgreSQL statement outside a transaction commits; with
// synchronous_commit=off a server crash loses the commits of the last
// moments (up to three times wal_writer_delay, 600 ms by default), and
// with fsync=off an OS crash can lose or corrupt any of them.
func (postgres) durable(s string) (string, string) {
	var warns []string
	if strings.Contains(s, "synchronous_commit=off") {
		warns = append(warns, "synchronous_commit=off: a crash of the server loses the records committed in its last moments (up to 3 × wal_writer_delay)")
	}
	if strings.Contains(s, "fsync=off") {
		warns = append(warns, "fsync=off: a crash of its machine can lose or corrupt committed records")
	}
	return "", strings.Join(warns, "; ")
}

func (postgres) missingTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P01" // undefined_table
}

func (postgres) retryable(err error) bool {
	var pe *pgconn.PgError
	// 40P01 deadlock_detected, 40001 serialization_failure.
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

func (postgres) settings(err error) (string, bool) {
	var sr *schemaRefusal
	if errors.As(err, &sr) {
		return sr.fix, true
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		// The URL's sslmode asks for TLS this server refuses, or for a
		// certificate check it fails.
		return "", tlsRefused(err) || strings.Contains(err.Error(), "server refused TLS connection")
	}
	switch pe.Code {
	case "25006": // read_only_sql_transaction
		return "the server takes no writes (a read replica, a reader endpoint or a standby, or default_transaction_read_only=on in the URL or the user's settings): " +
			urlFix + " to name the primary (the writer endpoint), without default_transaction_read_only", true
	case "3F000": // invalid_schema_name: no schema of search_path exists
		return "no schema of the URL's search_path exists: create it, or " + urlFix + "'s search_path", true
	case "3D000":
		return "no such database: create it, or " + urlFix + "'s database", true
	case "42501":
		return "the user lacks a privilege the records need (CREATE on the schema; SELECT, INSERT, UPDATE and DELETE on the table): grant it, or " + urlFix + "'s user", true
	}
	// Class 28 invalid authorization; and a table of
	// another shape: class 42 (42P10, no unique key for ON CONFLICT (k); an
	// unknown column) but 42P01, a table dropped meanwhile, which is made
	// again, and class 22 (a value out of a column's range).
	// Class 23 (a NOT NULL column the records do not fill, a unique index
	// besides k's: ON CONFLICT (k) handles k's own) and 55000 (a deferrable
	// key, which ON CONFLICT cannot use) are a table of another shape too.
	return "", strings.HasPrefix(pe.Code, "28") ||
		strings.HasPrefix(pe.Code, "42") && pe.Code != "42P01" || strings.HasPrefix(pe.Code, "22") ||
		strings.HasPrefix(pe.Code, "23") || pe.Code == "55000"
}

// tlsRefused says a connection failed on TLS: the server has none, or its
// certificate fails the check the URL asked for. Retrying cannot fix it.
func tlsRefused(err error) bool {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid) || errors.As(err, &verify)
}

type mysqlDialect struct {
	// vars are the URL's parameters the driver does not know, which it
	// sends to the server as system variables at each connect.
	vars []string
}

// myNow is the server's time in unix milliseconds, from UTC_TIMESTAMP so
// the session's time zone (and its daylight-saving hour) plays no part.
const myNow = `(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) DIV 1000)`

func (mysqlDialect) name() string { return "mysql" }

func (mysqlDialect) migrate(ctx context.Context, c conn) error {
	// One statement (MySQL 8 has no CREATE INDEX IF NOT EXISTS). Keys are
	// ASCII compared byte for byte: "Key" and "key" are different charges.
	return c.script(ctx, `CREATE TABLE IF NOT EXISTS `+Table+` (
		k VARCHAR(191) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
		token VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		state VARCHAR(16) CHARACTER SET ascii NOT NULL,
		rec MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
		expires_ms BIGINT NOT NULL,
		KEY `+Table+`_expires (expires_ms)
	) ENGINE=InnoDB`)
}

func (mysqlDialect) insertIfAbsent() string {
	// Not INSERT IGNORE, which would also swallow real errors. With the
	// driver's default (no CLIENT_FOUND_ROWS) a duplicate affects 0 rows.
	return `INSERT INTO ` + Table + ` (k, token, state, rec, expires_ms) VALUES (?, ?, ?, ?, ` + myNow + ` + ?) ON DUPLICATE KEY UPDATE k = k`
}

func (mysqlDialect) insertFenced() string {
	return `INSERT INTO ` + Table + ` (k, token, state, rec, expires_ms) SELECT ?, ?, ?, ?, ` + myNow + ` + ? FROM DUAL
		WHERE EXISTS (SELECT 1 FROM ` + Table + ` WHERE k = '` + fenceKey + `' AND token = ?) ON DUPLICATE KEY UPDATE k = k`
}

func (mysqlDialect) takeover() string {
	return `UPDATE ` + Table + ` SET token = ?, state = ?, rec = ?, expires_ms = ` + myNow + ` + ? WHERE k = ? AND expires_ms <= ` + myNow
}

func (mysqlDialect) finish() string {
	return `UPDATE ` + Table + ` SET token = ?, state = ?, rec = ?, expires_ms = ` + myNow + ` + ? WHERE k = ? AND token = ? AND expires_ms > ` + myNow
}

func (mysqlDialect) read() string {
	return `SELECT rec FROM ` + Table + ` WHERE k = ? AND expires_ms > ` + myNow
}

func (mysqlDialect) release() string {
	return `DELETE FROM ` + Table + ` WHERE k = ? AND token = ? AND expires_ms > ` + myNow
}

func (mysqlDialect) purge() string {
	return `DELETE FROM ` + Table + ` WHERE expires_ms <= ` + myNow + ` ORDER BY expires_ms LIMIT ?`
}

func (mysqlDialect) fence() string { return `SELECT token FROM ` + Table + ` WHERE k = ?` }

func (mysqlDialect) clock() string { return `SELECT ` + myNow }

func (mysqlDialect) traits() string {
	return `SELECT CONCAT('engine=', IFNULL(t.ENGINE, t.TABLE_TYPE), ' triggers=',
		(SELECT COUNT(*) FROM information_schema.TRIGGERS g WHERE g.EVENT_OBJECT_SCHEMA = t.TABLE_SCHEMA AND g.EVENT_OBJECT_TABLE = t.TABLE_NAME))
		FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_NAME = '` + Table + `'`
}

// plain: InnoDB (durable, transactional; MEMORY loses every row at a
// restart) without triggers the function's user can see.
func (mysqlDialect) plain(t string) bool { return t == "engine=InnoDB triggers=0" }

// lasting: plain's InnoDB keeps its rows.
func (mysqlDialect) lasting(string) string { return "" }

func (mysqlDialect) commits() string {
	return `SELECT CONCAT('autocommit=', @@SESSION.autocommit + 0, ' innodb_flush_log_at_trx_commit=', @@GLOBAL.innodb_flush_log_at_trx_commit)`
}

// durable: with autocommit off (autocommit=false in the URL, init_connect
// or the server's default) each statement opens a transaction nothing
// commits: a record is seen by no other instance and is rolled back when
// its connection closes. innodb_flush_log_at_trx_commit 0 or 2 writes the
// log to disk once a second, so a crash (2: of the machine) loses that
// second's commits.
func (mysqlDialect) durable(s string) (string, string) {
	if strings.Contains(s, "autocommit=0") {
		return "the session's autocommit is off (autocommit=false in the URL, init_connect, or the server's default): each record would stay in a transaction nothing commits, seen by no other instance and rolled back when its connection closes, so its key could charge again: " +
			urlFix + " without autocommit=false, or set autocommit=1 on the server", ""
	}
	for _, v := range []string{"0", "2"} {
		if strings.HasSuffix(s, " innodb_flush_log_at_trx_commit="+v) {
			return "", "innodb_flush_log_at_trx_commit=" + v + ": the log is written to disk once a second, so a crash loses the records committed in that second"
		}
	}
	return "", ""
}

func (mysqlDialect) missingTable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1146 // ER_NO_SUCH_TABLE
}

func (mysqlDialect) retryable(err error) bool {
	var me *mysql.MySQLError
	// 1213 deadlock, 1205 lock wait timeout: the statement was rolled back.
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

func (d mysqlDialect) settings(err error) (string, bool) {
	var me *mysql.MySQLError
	// 1044 no access to the database, 1045 access denied (user or
	// password), 1049 unknown database, 1142 a command denied on the table,
	// 1698 access denied to a user without a password (MariaDB's
	// unix_socket users); and SQLSTATE class 28, invalid authorization, as
	// PostgreSQL's is read.
	if !errors.As(err, &me) {
		return "", errors.Is(err, mysql.ErrNoTLS) || tlsRefused(err)
	}
	switch me.Number {
	case 1044, 1045, 1049, 1142, 1698:
		return "", true
	case 1193: // an unknown system variable: a parameter of the URL the driver sent as one
		return d.varsFix(), true
	case 1064:
		// A syntax error at connect: the driver sent a parameter it does
		// not know as "SET ssl-mode = REQUIRED". The records' own
		// statements are fixed; without such parameters it is not the URL.
		return d.varsFix(), len(d.vars) > 0
	case 1228, 1229, 1231, 1232, 1238:
		// A system variable the server will not set so (session or global
		// only, a value it refuses, the wrong type, read only): the records
		// set none, so it is a parameter of the URL (a re-tester's
		// innodb_flush_log_at_trx_commit, sql_mode, wait_timeout).
		return d.varsFix(), len(d.vars) > 0
	case 1290, 1792: // --read-only (a replica, a reader endpoint), a read-only transaction
		return "the server takes no writes (a replica or a reader endpoint, or a read-only transaction the URL asks for): " +
			urlFix + " to name the primary (the writer endpoint)", true
	case 1054, 1264, 1364, 1406: // a table of another shape: an unknown column, a value out of range or too long, a column without a default
		return "", true
	case 1062: // a duplicate on a unique key besides k's (ON DUPLICATE KEY handles k's own)
		return "", true
	}
	return "", me.SQLState[0] == '2' && me.SQLState[1] == '8'
}

// varsFix names the URL's parameters the driver sent as system variables.
func (d mysqlDialect) varsFix() string {
	if len(d.vars) == 0 {
		return ""
	}
	return "the URL's parameter " + strings.Join(d.vars, ", ") + " is not one the driver knows, so it was sent to the server as a system variable, which refused it: " +
		urlFix + " (TLS is ?tls=true, or tls=skip-verify, not ssl-mode or sslmode)"
}
