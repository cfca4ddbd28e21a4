package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/idempotency/recordstore"
	"github.com/cloudcall/cloudcall/shared/top"
)

const recordsUsage = `Usage: cloudcall records show <idempotency key> [--env-file FILE]
       cloudcall records settle <idempotency key> (--not-charged | --charged ORDER_ID [--request-id ID]) [--env-file FILE]
       cloudcall records restore <idempotency key> --charged ORDER_ID [--request-id ID] [--env-file FILE]
       cloudcall records status [--env-file FILE]
       cloudcall records reopen --reconciled [--env-file FILE]
       cloudcall records mark-lost [--env-file FILE]
       cloudcall records migration [--restart] [--env-file FILE]

Reads and settles the charge's idempotency records, where the deployed function keeps them, for a person
reconciling an answer -1304 (outcome unknown) with TOP. The key is the idempotencyKey the -1304 answer
carries (auto:… for a call made without a key); one that starts with '-' goes last, after "--"
(cloudcall records settle --not-charged -- -k1). The settings are the function's own, from the environment
and --env-file: CLOUDCALL_IDEMPOTENCY_STORE (or CLOUDCALL_STORE when it is Redis), CLOUDCALL_STORE_PREFIX,
TOP_APP_KEY, CLOUDCALL_TIMEOUT. With --env-file, the first four (and their _FILE forms) come from the file
alone, so a variable left in the shell cannot point the tool at another store than the function's.

  show    prints the record as JSON: its state, when the call started, the answer recorded, and whether it
          can be settled (settleable, and why not).
  settle  after you looked the charge up at TOP (the seller's extra charge service orders):
          --not-charged      TOP shows no charge: the record goes, and a retry with the key charges again;
          --charged ORDER_ID TOP shows the charge: every retry with the key is answered with it
                             (letters, digits, '-' and '_', not starting with '-', as TOP's ids are).
          Only an unknown outcome can be settled, once its request can no longer reach TOP: a recorded -1304
          (the function stopped waiting; TOP may still charge what it was sent) or a call that cannot be
          running any more, each a minute past its deadline and 10 minutes more, for TOP takes a request's
          timestamp that long (by the earlier of the store's clock and this machine's, so one
          clock running ahead cannot make a live call look dead; where the store's clock cannot be read, by
          this machine's with 2 minutes more in case it runs ahead).
          When the record knows TOP charged ("known": TOP's answer came back, the record's last write
          failed), only --charged with that id is taken, now and in every correction. A settlement by hand is marked ("settled") and can be corrected
          by settling again; after --not-charged a retry may already have charged, so that one cannot.
  restore while the store records a loss (status "lost"; refused otherwise), for a key the function's log
          shows charged in the 24 h before lostAt (its "invocation" line with a vendorId, which carries the
          idempotencyKey and, for a keyed charge, its keylessKey: restore both with the vendorId): writes
          the charge, so every retry with the key is answered with it instead of charging again. Where no
          record is, and also over one not finished (reserved, or in progress once its call cannot be
          running any more nor its request reach TOP, as for settle: the loss may have taken its later writes); it works while charges are refused.
          A keyed call's request was in the lost record, so a record restored where there was none answers
          any request with the key.
  status  prints the store's fence as JSON: its state, "unfenced" (no fence: no charge yet, or the store was
          emptied and no instance has charged since), "live", "lost" (the store lost its data, found at
          lostAt: every charge answers -1601 until it is reopened) or "reopened", and the fence itself: note
          it down, since a store emptied shows none, and one fenced again by a new instance shows another
          one. A fenced store is also put to the checks an instance makes at its first charge: "refused"
          (with why) when they fail, e.g. a table made UNLOGGED, autocommit off, a Redis without AOF or one
          that may evict keys; so is any store whose URL the charge refuses (a PostgreSQL search_path naming
          no schema, or none while the table is in another schema). "where" names the PostgreSQL schema.
          Those checks write what an instance's would: a Redis's eviction baseline when it has none, and a
          loss they find (keys evicted since the baseline) into the fence.
          Exit status 5 when the state is "lost", 6 when "refused".
  reopen  after a loss, once you reconciled the last 24 h of charges before lostAt against TOP (the records
          that would have answered their repeats are gone: settle or refund what charged twice): ends the
          refusal, and charges go ahead again within a second. --reconciled says you did. Refused until no
          call running when the loss was found can be charged any more (lostAt + CLOUDCALL_TIMEOUT + 11 min
          by the earlier of the store's clock and this machine's, or 2 min more by this machine's alone):
          such a call's charge reaches the log only when it ends.
  mark-lost writes a loss the fence cannot see: after a failover to a replica that lagged (Redis replicates
          asynchronously, so the last writes can be gone while the fence is there), a restore from a backup,
          or rows deleted by hand. Every charge answers -1601 from the instances' next one, until reopen.
  migration prints, as JSON, when the charge's fingerprint lost the session on this store (the first call of
          a release with that change) and until when a charge also looks for the records of the release
          before (two days). --restart forgets that time, so the next call of a release with the change
          opens the window anew: after any rollback to a release before the change, however short, run it
          right before updating again, so the records the old release wrote meanwhile are found (instances
          already running take it within a minute; docs/deploy.md, Upgrading and rolling back). Exit
          status 3 when there was no marker to forget.

Exit status: 0 done, 1 the store or the settings failed, 2 a bad command line, 3 no record under the key
(or, for migration --restart, no marker to forget),
4 the record cannot be settled or restored, the store records no loss to reopen, or one already
(mark-lost) (the message says why), 5 status: the store records a loss, 6 status: the charge's checks
refuse the store (every new instance answers -1601 until it is fixed).

Flags:`

func runRecords(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("records", args, stdout, stderr)
	// Each value flag once: given twice, the last one was recorded in
	// silence (a money tool took ECS2 over ECS1000000001: an outside tester).
	envFile, charged, requestID := new(string), new(string), new(string)
	fs.Var(&onceFlag{v: envFile}, "env-file", "dotenv `file` with the function's settings, over the environment")
	notCharged := fs.Bool("not-charged", false, "settle: TOP shows no charge for the key")
	fs.Var(&onceFlag{v: charged}, "charged", "settle: TOP shows the charge, with this extra charge service `order id`")
	reconciled := fs.Bool("reconciled", false, "reopen: you reconciled the charges the lost records covered")
	restart := fs.Bool("restart", false, "migration: forget when the window for the release before's records opened; the next call of a release with the change opens it anew")
	requestIDFlag := &onceFlag{v: requestID}
	fs.Var(requestIDFlag, "request-id", "settle --charged, restore: TOP's `request_id` of the charge (the log line's upstreamRequestId), answered as requestId; empty when not given")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), recordsUsage)
		fs.PrintDefaults()
	}
	// The action, the key and the flags may come in any order.
	var pos []string
	for len(args) > 0 {
		// Anything that is not a flag ("", "-", a key) is an argument: the
		// flag parser stops at it, and it was never consumed (a loop).
		if len(args[0]) < 2 || args[0][0] != '-' {
			pos, args = append(pos, args[0]), args[1:]
			continue
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			// The flag parser took "--" as the end of the flags: what
			// follows is arguments, a key that starts with '-' included
			// (the function takes "-dash", and no form of the command line
			// could restore it: an outside re-tester).
			pos = append(pos, rest...)
			break
		}
		args = rest
	}
	if len(pos) == 0 {
		return usagef("say what to do: show <key>, settle <key>, restore <key>, status, reopen, mark-lost or migration; see cloudcall records --help")
	}
	action := pos[0]
	var key string
	switch action {
	case "show", "settle", "restore":
		if len(pos) != 2 || strings.TrimSpace(pos[1]) == "" {
			return usagef("%s takes one idempotency key (the idempotencyKey of the -1304 answer; one that starts with '-' goes last, after \"--\", with the flags before it)", action)
		}
		key = pos[1]
		if !top.ValidKey(key) {
			// A space or line end copied with the key wrote a restore no
			// request could reach, and a retry with the key charged again
			// (an outside re-tester).
			return usagef("%s %q: not a key the function takes: 1 to 128 printable ASCII characters, no space or line end; copy the idempotencyKey exactly as the answer or the log line gives it", action, key)
		}
	case "status", "reopen", "mark-lost", "migration":
		if len(pos) != 1 {
			return usagef("%s takes no key: it concerns the whole store", action)
		}
	default:
		return usagef("unknown action %q: expected show, settle, restore, status, reopen, mark-lost or migration", action)
	}
	var s idempotency.Settlement
	var err error
	switch {
	case *reconciled && action != "reopen":
		return usagef("--reconciled goes with reopen")
	case *restart && action != "migration":
		return usagef("--restart goes with migration")
	case action == "reopen" && !*reconciled:
		return usagef("reopen ends the refusal that keeps keys charged before the loss from charging again: first reconcile the last 24 h of charges before the loss against TOP, then run it with --reconciled")
	case key == "" && (*notCharged || *charged != ""):
		return usagef("--charged goes with settle and restore, --not-charged with settle: %s takes neither", action)
	case action == "restore" && *charged == "":
		return usagef("restore takes --charged ORDER_ID: the charge TOP shows for the key (a key TOP did not charge needs no record)")
	case action == "restore" && *notCharged:
		return usagef("--not-charged goes with settle")
	case action == "show" && (*notCharged || *charged != ""):
		return usagef("--not-charged and --charged go with settle")
	case action == "settle" && *notCharged == (*charged != ""):
		return usagef("settle takes one of --not-charged or --charged ORDER_ID: what TOP shows for the key")
	case (*requestID != "" || requestIDFlag.set) && *charged == "":
		return usagef("--request-id goes with --charged (settle or restore): TOP's request_id of that charge")
	case *requestID != "" && !orderID.MatchString(*requestID):
		return usagef("--request-id %q: expected TOP's request_id as the log line's upstreamRequestId gives it: letters, digits, '-' and '_', 1 to 64, not starting with '-'", *requestID)
	case *charged != "" && !orderID.MatchString(*charged):
		return usagef("--charged %q: expected TOP's extra charge service order id: letters, digits, '-' and '_', 1 to 64, not starting with '-'", *charged)
	case *charged != "":
		s = idempotency.Settlement{VendorID: *charged, Answer: top.ChargedAnswer(key, *charged, *requestID)}
	}
	var file map[string]string
	if *envFile != "" {
		// Read as the function reads its settings: nothing here is the
		// emulator's to replace, as it is for cloudcall local.
		if file, err = readEnvFile(*envFile); err != nil {
			return usagef("--env-file %s: %v", *envFile, err)
		}
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	if *envFile != "" {
		// The file describes the function: where its records are comes
		// from it alone. A store variable left in the shell beat the
		// file's CLOUDCALL_STORE, and mark-lost or restore acted on a
		// store the function does not use (an outside re-tester).
		var dropped []string
		for _, k := range []string{"CLOUDCALL_IDEMPOTENCY_STORE", "CLOUDCALL_STORE", "CLOUDCALL_STORE_PREFIX", "TOP_APP_KEY"} {
			for _, name := range []string{k, k + "_FILE"} {
				if _, set := env[name]; set {
					if _, inFile := file[name]; !inFile {
						dropped = append(dropped, name)
					}
				}
				delete(env, name)
			}
		}
		if len(dropped) > 0 {
			// Said, or "set TOP_APP_KEY" read as wrong to a person who had
			// (an outside re-tester).
			fmt.Fprintf(stderr, "NOTE: %s from the shell not used: with --env-file, the store, its prefix and the app key come from %s alone\n", strings.Join(dropped, ", "), *envFile)
		}
	}
	for k, v := range file {
		env[k] = v
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	g, records, err := top.RecordsGuard(ctx, config.FromMap(env), top.RecordsOptions{Skew: clockSkew, ClockWarning: func(err error) {
		if key != "" {
			fmt.Fprintf(stderr, "WARNING: the store's clock could not be read (%v): whether a call may still be running is judged by this machine's clock, allowing it %s ahead\n", err, clockSkew)
		}
	}})
	if err != nil {
		return err
	}
	defer records.Close()
	var schema string
	if s, ok := records.(interface {
		Schema(context.Context) (string, error)
	}); ok {
		// The schema the charge resolves, named even when the URL sets
		// none; a store that refuses it says so at its first statement.
		schema, _ = s.Schema(ctx)
	}
	where := recordstore.WhereIn(config.FromMap(env), schema)
	if p := env["CLOUDCALL_STORE_PREFIX"]; records.Name() == "redis" && p != "" && !strings.HasSuffix(p, ":") {
		// The banner's prefix ends with ':'; without it every key misses.
		// A SQL store has no prefix.
		fmt.Fprintf(stderr, "WARNING: CLOUDCALL_STORE_PREFIX=%q does not end with ':' as the prefixes cloudcall writes do; keys are looked up under it exactly\n", p)
	}
	if action == "migration" {
		return migration(ctx, top.RecordsMigration(g), time.Now(), *restart, where, stdout)
	}
	if key == "" {
		if action == "reopen" {
			if err := quiet(ctx, g, records); err != nil {
				return err
			}
		}
		return fence(ctx, action, records, where, stdout, stderr)
	}
	if action == "show" {
		rec, err := g.Inspect(ctx, key)
		lostAt := storeLost(ctx, records)
		if errors.Is(err, idempotency.ErrNotFound) && lostAt != "" {
			hint := ""
			if !idempotency.IsKeylessKey(key) {
				hint = keylessHint
			}
			return &exitError{code: 3, err: fmt.Errorf("no record for %s: the store lost its data (found %s), and the record with it if there was one: if the function's log shows the key charged, %s%s", key, lostAt, restoreCommand(key, *envFile), hint)}
		}
		if err != nil {
			return notFound(key, err)
		}
		out := shown(key, rec, g.Settleable(rec))
		if lostAt != "" && rec.State != idempotency.Done && rec.Alias == "" {
			// The loss may have taken this record's later writes.
			if out.Why != "" {
				out.Why += "; "
			}
			cmd := restoreCommand(key, *envFile)
			if strings.ContainsAny(cmd, `"\`) {
				// JSON escapes these, and the command pasted from it
				// restored another key (an outside re-tester): it goes to
				// stderr as it is.
				fmt.Fprintf(stderr, "to restore it: %s\n", cmd)
				cmd = "the command on stderr"
			}
			out.Why += fmt.Sprintf("the store lost its data (found %s), possibly this record's later writes with it: if the function's log shows the key charged, %s replaces it", lostAt, cmd)
		}
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false) // a key holding < > & is shown as it is
		return enc.Encode(out)
	}
	if action == "restore" {
		lostAt := storeLost(ctx, records)
		if lostAt == "" {
			// A mistyped key on a healthy store made up a charge.
			return &exitError{code: 4, err: fmt.Errorf("the %s store records no loss: restore is for the charges its lost records covered, before reopening it (for a -1304, settle; for a loss the fence cannot see, mark-lost first)", records.Name())}
		}
		if err := g.Restore(ctx, key, s, true); err != nil {
			return notFound(key, err)
		}
		// Where it went is said: under another app key or prefix than the
		// function's, a restore reads as done and answers nothing (an
		// outside re-tester).
		hint := ""
		if !idempotency.IsKeylessKey(key) {
			hint = keylessHint
		}
		fmt.Fprintf(stdout, "restored %s: charged, extra charge service order %s; every retry with the key to TOP_APP_KEY %s is answered with it, from %s%s\n",
			key, *charged, env["TOP_APP_KEY"], where, hint)
		return nil
	}
	if err := g.Settle(ctx, key, s); err != nil {
		return notFound(key, err)
	}
	if s.VendorID == "" {
		fmt.Fprintf(stdout, "settled %s: not charged; the record is gone, and a retry with the key charges again\n", key)
	} else {
		fmt.Fprintf(stdout, "settled %s: charged, extra charge service order %s; every retry with the key is answered with it\n", key, *charged)
	}
	return nil
}

// migration shows the window in which a charge also looks for its
// request's records under the fingerprint of the release before; restart
// forgets it, so the next call of a release with the change opens it anew.
func migration(ctx context.Context, m *idempotency.Migration, now time.Time, restart bool, where string, stdout io.Writer) error {
	if restart {
		forgot, err := m.Forget(ctx)
		if err != nil {
			return err
		}
		if !forgot {
			// Said, not "forgotten": under another prefix or app key than
			// the function's, a restart read as done and the function's
			// marker stood (an outside re-tester).
			return &exitError{code: 3, err: fmt.Errorf("nothing to forget: no migration marker in %s. Either no release without the session in the fingerprint has charged here since the store was new or the marker was last forgotten (its next call opens the window: nothing to do), or this is not where the function keeps its records: check CLOUDCALL_IDEMPOTENCY_STORE (or CLOUDCALL_STORE), CLOUDCALL_STORE_PREFIX and TOP_APP_KEY against the function's (cloudcall local --upstream real prints its key prefix)", where)}
		}
	}
	since, ok, err := m.Since(ctx)
	if err != nil {
		return err
	}
	out := struct {
		Store   string `json:"store"`
		Started string `json:"started,omitempty"`
		Until   string `json:"lookupsUntil,omitempty"`
		Open    bool   `json:"open"`
		Note    string `json:"note"`
	}{Store: where}
	switch {
	case !ok && restart:
		out.Note = "forgotten: the next charge call of a release without the session in the fingerprint opens the window again, for two days from then (instances already running take it within a minute): run this right before updating again, once the release before alone takes traffic"
	case !ok:
		out.Note = "no marker: no release without the session in the fingerprint has charged on this store yet, or the marker was forgotten (--restart) within the last minute; the next charge call of such a release opens the window"
	default:
		until := m.Until(since)
		out.Started, out.Until, out.Open = since.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339), now.Before(until)
		out.Note = "charges look for the records of the release before until lookupsUntil; after any rollback to it, run this with --restart right before updating again (records it writes live a day, and the window may close first)"
		if !out.Open {
			out.Note = "the window has closed: charges no longer look for the records of the release before; after a rollback to it, run this with --restart right before updating again"
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// quiet refuses a reopening while a call that was running when the loss was
// found may still be: its charge is in no log yet, so nothing restored it,
// and a repeat after the reopening charged again (an outside tester).
func quiet(ctx context.Context, g *idempotency.Guard, records idempotency.Records) error {
	lostAt := storeLost(ctx, records)
	at, err := time.Parse(time.RFC3339, lostAt)
	if err != nil {
		return nil // no loss (reopen says so), or a time it cannot read
	}
	// The guard's clock: the earlier of the store's and this machine's, or
	// this machine's with its allowance in Quiet (RecordsGuard).
	if until := g.Quiet(at); g.Now().Before(until) {
		return &exitError{code: 4, err: fmt.Errorf("a call running when the loss was found (%s) may still be charging until %s: its charge may be in no log yet, and TOP may still take a request that left; wait until then, look up at TOP again every order whose call has no invocation line (a charge sending line alone) or answered -1304, restore what the log and TOP show by then, and reopen", lostAt, until.UTC().Format(time.RFC3339))}
	}
	return nil
}

// storeLost is when the store's fence says it lost its data, "" when it
// does not (or keeps no fence, or cannot be read).
func storeLost(ctx context.Context, records idempotency.Records) string {
	f, ok := records.(idempotency.Fencer)
	if !ok {
		return ""
	}
	cur, err := f.Fence(ctx)
	if err != nil {
		return ""
	}
	if at, lost := idempotency.FenceLostAt(cur); lost {
		return at
	}
	return ""
}

// fence says or reopens the store's fence.
func fence(ctx context.Context, action string, records idempotency.Records, where string, stdout, stderr io.Writer) error {
	f, ok := records.(idempotency.Fencer)
	if !ok {
		return fmt.Errorf("the %s store keeps no fence", records.Name())
	}
	if action == "mark-lost" {
		at := time.Now() // a label only, where the store refuses TIME: the brake needs no clock
		if t, err := f.Clock(ctx); err == nil {
			at = idempotency.LaterClock(t)
		}
		was, err := idempotency.MarkLost(ctx, f, at)
		if err != nil {
			return err
		}
		if was == "" {
			return &exitError{code: 4, err: fmt.Errorf("the %s store records a loss already (cloudcall records status says when)", records.Name())}
		}
		fmt.Fprintf(stdout, "marked lost: %s; every charge whose records are there answers -1601 from each instance's next one; reconcile, then cloudcall records reopen --reconciled\n", where)
		return nil
	}
	if action == "reopen" {
		was, err := idempotency.Reopen(ctx, f, time.Now(), func(err error) {
			fmt.Fprintf(stderr, "WARNING: the store's clock could not be read (%v): the reopening is dated by this machine's clock; if it is far off, instances may find a new loss at once (reopen again)\n", err)
		})
		if err != nil {
			return err
		}
		if was == "" {
			return &exitError{code: 4, err: fmt.Errorf("the %s store records no loss: nothing to reopen (cloudcall records status says what it holds)", records.Name())}
		}
		at, _ := idempotency.FenceLostAt(was)
		fmt.Fprintf(stdout, "reopened: the loss found %s is closed, at %s; charges go ahead again (each instance rereads the fence within a second)\n", at, where)
		return nil
	}
	cur, err := f.Fence(ctx)
	st := fenceStatus{Store: records.Name(), Where: where, State: "live", Fence: cur}
	switch {
	case errors.Is(err, idempotency.ErrSettings):
		// What a charge answers (-1601): a search_path naming no schema
		// read "unfenced", exit 0, as if no table were there yet.
		st.State, st.Refused = "refused", err.Error()
	case err != nil:
		return err
	}
	lostAt, lost := idempotency.FenceLostAt(cur)
	reopenedAt, reopened := idempotency.FenceReopenedAt(cur)
	switch {
	case st.State == "refused":
	case lost:
		st.State, st.LostAt = "lost", lostAt
	case reopened:
		st.State, st.ReopenedAt = "reopened", reopenedAt
	case cur == "":
		st.State = "unfenced"
	}
	if w, ok := records.(idempotency.Warmer); ok && (st.State == "live" || st.State == "reopened") {
		// The checks an instance makes at its first charge (the table's
		// shape and persistence, the session's commits, Redis's AOF): a
		// table made UNLOGGED under running instances read "live" here
		// while every new instance refused it. Not on an unfenced store:
		// the first use would fence it, and a store emptied would then
		// look fenced.
		err := w.Warm(ctx)
		switch {
		case errors.Is(err, idempotency.ErrSettings), errors.Is(err, idempotency.ErrNotDurable):
			// ErrNotDurable too: a Redis with appendonly turned off or an
			// evicting policy set read "live" while every charge answered
			// -1601 (an outside tester).
			st.State, st.Refused = "refused", err.Error()
		case errors.Is(err, idempotency.ErrLost):
			// The checks found a loss the fence did not show yet (a Redis
			// that evicted keys since its baseline) and wrote it there.
			if cur, ferr := f.Fence(ctx); ferr == nil {
				if at, lost := idempotency.FenceLostAt(cur); lost {
					st.State, st.LostAt, st.Fence, st.ReopenedAt = "lost", at, cur, ""
				}
			}
		}
	}
	if err := json.NewEncoder(stdout).Encode(st); err != nil {
		return err
	}
	if st.State == "refused" {
		return &exitError{code: 6, err: fmt.Errorf("the %s store is refused by the charge's checks: every new instance answers -1601 until it is fixed", records.Name())}
	}
	if st.State == "lost" {
		return &exitError{code: 5, err: fmt.Errorf("the %s store lost its data (found %s): charges are refused until it is reconciled and reopened", records.Name(), st.LostAt)}
	}
	return nil
}

type fenceStatus struct {
	Store      string `json:"store"`
	Where      string `json:"where"`
	State      string `json:"state"`
	LostAt     string `json:"lostAt,omitempty"`
	Fence      string `json:"fence,omitempty"`
	ReopenedAt string `json:"reopenedAt,omitempty"`
	Refused    string `json:"refused,omitempty"`
}

// clockSkew is how far ahead of the functions' clocks this machine's may be
// without taking a call still running for a dead one.
const clockSkew = 2 * time.Minute

// restoreCommand is the command line that restores key, with the env file
// the tool was given, quoted for a shell: flags first, then "--" before a key
// that starts with '-' (an --env-file pasted after it was read as a second
// key: an outside re-tester).
func restoreCommand(key, envFile string) string {
	cmd := "cloudcall records restore --charged <its vendorId>"
	if envFile != "" {
		cmd += " --env-file " + shellQuote(envFile)
	}
	if strings.HasPrefix(key, "-") {
		return cmd + " -- " + shellQuote(key)
	}
	return cmd + " " + shellQuote(key)
}

// shellQuote quotes s for a POSIX shell when it holds anything but letters,
// digits and ._:/-.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// keylessHint tells what else to restore for a keyed charge: the same
// request sent again without its key is answered from its keyless slot,
// which the loss took too (following the hint alone, eight keyless repeats
// charged again: an outside re-tester).
const keylessHint = "; for a charge made with this key, restore its keylessKey (auto:…, in the same log line) with the same vendorId too, or the request sent again without the key charges again"

// orderID is an id as TOP writes them; never one that starts like a flag
// ("--charged --not-charged" recorded the order "--not-charged").
var orderID = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$`)

func notFound(key string, err error) error {
	switch {
	case errors.Is(err, idempotency.ErrNotFound):
		return &exitError{code: 3, err: fmt.Errorf("no record for %s: none was made under it in the last 24 h (check the key, TOP_APP_KEY, CLOUDCALL_STORE_PREFIX and the store), or it was settled --not-charged", key)}
	case errors.Is(err, idempotency.ErrNotSettleable), errors.Is(err, idempotency.ErrRecordExists):
		return &exitError{code: 4, err: err}
	}
	return err
}

// shownRecord is a record as show prints it: what a person reconciling needs.
type shownRecord struct {
	Key        string          `json:"key"`
	State      string          `json:"state"`
	Started    string          `json:"started"`
	Settleable bool            `json:"settleable"`
	Why        string          `json:"why,omitempty"`
	Known      string          `json:"known,omitempty"`
	Settled    string          `json:"settled,omitempty"`
	AliasOf    string          `json:"aliasOf,omitempty"`
	Answer     json.RawMessage `json:"answer,omitempty"`
}

func shown(key string, rec idempotency.Record, settle error) shownRecord {
	s := shownRecord{Key: key, State: rec.State, Started: time.UnixMilli(rec.Started).UTC().Format(time.RFC3339), Settleable: settle == nil,
		Known: rec.Known, Settled: rec.Settled, AliasOf: rec.Alias}
	if settle != nil {
		s.Why = strings.TrimPrefix(settle.Error(), idempotency.ErrNotSettleable.Error()+": ")
	}
	if json.Valid(rec.Body) {
		s.Answer = rec.Body
	}
	return s
}

// onceFlag is a string flag that may be given once (an empty value too).
type onceFlag struct {
	v   *string
	set bool
}

func (f *onceFlag) String() string {
	if f.v == nil {
		return ""
	}
	return *f.v
}

func (f *onceFlag) Set(v string) error {
	if f.set {
		return fmt.Errorf("given twice (%q, then %q): give it once", *f.v, v)
	}
	*f.v, f.set = v, true
	return nil
}
