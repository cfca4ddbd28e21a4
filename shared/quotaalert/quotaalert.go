// Package quotaalert watches courier accounts' electronic-waybill balances
// and tells people before they run out: levels with hysteresis, a cooldown
// between repeats, a recovery message, a depletion forecast, and per-account
// state in the shared store so overlapping runs and many instances agree.
package quotaalert

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/notify"
	"github.com/cloudcall/cloudcall/shared/store"
)

// Levels.
const (
	LevelOK    = "ok"
	LevelLow   = "low"
	LevelEmpty = "empty"
	LevelError = "error"
	// Unchecked is the level of an account the run had no time left for:
	// its state is untouched and the next run checks it first.
	Unchecked = "unchecked"
	// Recovered is announced once when a low or empty account is ok again.
	Recovered = "recovered"
	// Resolved is announced once when an account whose failing check was
	// announced can be checked again (and its level brings no news).
	Resolved = "resolved"
	// Reset is announced once when the alert state is found empty (a new
	// store, or one that lost its data), with every account's level.
	Reset = "reset"
)

// severity orders the balance levels for announcements: only a worse level
// than the one last announced is news before the cooldown.
func severity(level string) int {
	switch level {
	case LevelLow:
		return 1
	case LevelEmpty:
		return 2
	}
	return 0
}

// Account is one watched courier account.
type Account struct {
	DeliveryID string `json:"deliveryId"`
	BizID      string `json:"bizId"`
	Threshold  int64  `json:"threshold"`
	Name       string `json:"name,omitempty"`

	thresholdSet bool // the watch list gave one, 0 included
}

// UnmarshalJSON reads a watch-list entry, telling "threshold": 0 (alert
// only when empty) from no threshold (the default), and refusing unknown
// fields: a misspelt "treshold" must not silently become the default.
func (a *Account) UnmarshalJSON(b []byte) error {
	var w struct {
		DeliveryID string `json:"deliveryId"`
		BizID      string `json:"bizId"`
		Threshold  *int64 `json:"threshold"`
		Name       string `json:"name"`
	}
	// Names exactly as written and each once: encoding/json matched
	// "DeliveryId" to deliveryId too, so {"deliveryId":"YTO",
	// "DeliveryId":"ZTO"} watched ZTO.
	if err := jsonv2.Unmarshal(b, &w, jsonv2.RejectUnknownMembers(true), envelope.ExactIntegers()); err != nil {
		return entryFault(err)
	}
	*a = Account{DeliveryID: w.DeliveryID, BizID: w.BizID, Name: w.Name}
	if w.Threshold != nil {
		a.Threshold, a.thresholdSet = *w.Threshold, true
	}
	return nil
}

// entryError is a watch-list entry's fault in the user's terms, at field
// ("" for the entry itself); ParseWatch puts the entry's index before it.
type entryError struct{ field, msg string }

func (e *entryError) Error() string {
	if e.field == "" {
		return e.msg
	}
	return e.field + ": " + e.msg
}

// entryFault says what is wrong with an entry as JSON, not as Go: the
// decoder's own text named Go types (quotaalert.Account, int64).
func entryFault(err error) error {
	var se *jsonv2.SemanticError
	var ye *jsontext.SyntacticError
	switch {
	case errors.As(err, &se) && errors.Is(se.Err, jsonv2.ErrUnknownName):
		return &entryError{"", fmt.Sprintf("unknown field %q (the fields are deliveryId, bizId, threshold and name, spelt exactly)", se.JSONPointer.LastToken())}
	case errors.As(err, &ye) && errors.Is(ye.Err, jsontext.ErrDuplicateName):
		return &entryError{ye.JSONPointer.LastToken(), "given twice (each field once)"}
	case errors.As(err, &se) && se.JSONPointer == "":
		return &entryError{"", "expected an object {deliveryId, bizId, threshold?, name?}, got " + kindName(se.JSONKind)}
	case errors.As(err, &se):
		field := se.JSONPointer.LastToken()
		if field != "threshold" {
			return &entryError{field, "expected a string, got " + kindName(se.JSONKind)}
		}
		if se.JSONKind == '0' { // a fraction, or past int64
			return &entryError{field, "expected a whole number of waybills from 0 to 9223372036854775807, got " + string(se.JSONValue)}
		}
		return &entryError{field, "expected a number, got " + kindName(se.JSONKind)}
	}
	return err
}

// kindName names a JSON kind as the user wrote it.
func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '{':
		return "an object"
	case '[':
		return "a list"
	}
	return "something else"
}

func (a Account) key() string { return a.DeliveryID + "/" + a.BizID }

// before orders accounts by delivery id, then biz id.
func (a Account) before(b Account) bool {
	if a.DeliveryID != b.DeliveryID {
		return a.DeliveryID < b.DeliveryID
	}
	return a.BizID < b.BizID
}

// label names the account in messages, on one line: a name (from the watch
// list or WeChat's alias) with line breaks could forge paragraphs.
func (a Account) label() string {
	if a.Name != "" {
		return oneLine(fmt.Sprintf("%s %s (%s)", a.DeliveryID, a.BizID, a.Name))
	}
	return oneLine(a.DeliveryID + " " + a.BizID)
}

// oneLine turns control characters (line breaks, tabs) into spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}

// Source reads balances; the WeChat client implements it in-process.
type Source interface {
	Quota(ctx context.Context, deliveryID, bizID string) (int64, error)
	// Discover lists every bound account whose courier supports getQuota.
	Discover(ctx context.Context) ([]Account, error)
}

// Config is the watch list and the alert policy.
type Config struct {
	Accounts         []Account // explicit watch list
	Auto             bool      // watch every bound account that supports quota
	DefaultThreshold int64
	Cooldown         time.Duration // between repeats while still low/empty (default 6h)
	Horizon          time.Duration // low when predicted to run out within this (0, the default, turns the forecast rule off)
	// Band is the hysteresis: once low, an account recovers only at
	// threshold + Band (default max(10% of threshold, 1)).
	Band func(threshold int64) int64
	Lang string // zh, en or both (default both)
	// Parallel bounds how many accounts are checked at once (default 4).
	// Deliveries do not hold these slots: a hung channel delays no check.
	Parallel int
	// PendingGrace is how long an announcement claimed but neither
	// confirmed nor taken back counts as being delivered (default 15
	// minutes, well past a run's deadline); after it, its run is taken
	// for dead and the announcement for unheard.
	PendingGrace time.Duration
	// Fenced says the store is shared and outlives instances (Redis): a run
	// that finds its marker (alert:quota:fence) gone knows the alert state
	// is new or was lost (FLUSHDB, a restart without persistence), says so
	// in its failures and tells the channels every account's level. Off for
	// a per-instance memory store, which starts empty on every instance by
	// design (the function warns of that at start).
	Fenced bool
	// QueryTimeout bounds one account's getQuota (default 10 s), so a
	// courier that hangs holds its check slot no longer than that.
	QueryTimeout time.Duration
	// SlowQuery is how long a query must have been waiting, when it is
	// cut (by QueryTimeout or by the run's time running out), for the cut
	// to count as WeChat not answering, announced as a failing check
	// (default 3 s). A query cut sooner is "unchecked": the run's time ran
	// out, not the vendor. Before, every cut query was unchecked, and a
	// WeChat that hung silenced the alerts for as long as it hung.
	SlowQuery time.Duration
}

func (c Config) queryTimeout() time.Duration { return cmp.Or(c.QueryTimeout, 10*time.Second) }

func (c Config) slowQuery() time.Duration { return cmp.Or(c.SlowQuery, 3*time.Second) }

func (c Config) parallel() int {
	if c.Parallel > 0 {
		return c.Parallel
	}
	return 4
}

// Sample is one observed balance.
type Sample struct {
	At      int64 `json:"at"` // unix seconds
	Balance int64 `json:"balance"`
}

// Told is what the channels were told about an account.
type Told struct {
	// Alerted is the level (low or empty) a channel was last told, "" when
	// nothing was or a recovery was announced since. Announcements follow
	// it, not Level: a balance wavering between 0 and 1 is news once.
	Alerted      string `json:"alerted"`
	LastNotified int64  `json:"lastNotified"` // unix seconds of the last low, empty or recovered alert; 0 never
	// LastError is a failing check that was announced, "" once one works;
	// ErrorNotified is when an error or its resolution was last announced
	// (unix seconds): within the cooldown a new error is not announced, so
	// a check failing every other run does not alert every run.
	LastError     string `json:"lastError,omitempty"`
	ErrorNotified int64  `json:"errorNotified,omitempty"`
}

// State is what the store keeps per account.
type State struct {
	Level   string   `json:"level"` // ok, low or empty: the last known balance level (for the hysteresis)
	History []Sample `json:"history"`
	Told
	// Pending, with Claimed (unix ms), marks the announcement above as not
	// yet heard: a run claimed it and is delivering it. It holds what was
	// heard before. The run confirms it (Pending cleared) or takes it back
	// (Pending restored); one that never does (it died) is taken for
	// unheard after Config.PendingGrace. A run that claims over another's
	// unheard claim keeps the same Pending, so if both fail nothing unheard
	// is left behind as heard.
	Pending *Told `json:"pending,omitempty"`
	Claimed int64 `json:"claimed,omitempty"`
}

// heard is what the channels are known (or, for a claim still being
// delivered, about) to have been told.
func (st State) heard(now time.Time, grace time.Duration) Told {
	if st.Pending != nil && now.Sub(time.UnixMilli(st.Claimed)) > grace {
		return *st.Pending // its run died before confirming: never heard
	}
	return st.Told
}

// confirmed is the last announcement that was heard for sure.
func (st State) confirmed() Told {
	if st.Pending != nil {
		return *st.Pending
	}
	return st.Told
}

// claimedAlert is what the unconfirmed claim announces (low, empty, error,
// recovered, resolved), "" without one. A claim made over another's keeps
// that one's Pending, so Told may differ from it in two announcements: the
// later one is named.
func (st State) claimedAlert() string {
	if st.Pending == nil {
		return ""
	}
	t, p := st.Told, *st.Pending
	levelNews := t.LastNotified != p.LastNotified || t.Alerted != p.Alerted
	errorNews := t.ErrorNotified != p.ErrorNotified || t.LastError != p.LastError
	switch {
	case levelNews && (!errorNews || t.LastNotified >= t.ErrorNotified):
		return cmp.Or(t.Alerted, Recovered)
	case errorNews && t.LastError != "":
		return LevelError
	case errorNews:
		return Resolved
	}
	return ""
}

// decodeState reads a stored state. A state written before Alerted existed
// announced on every change of Level, so its Level is what was told.
func decodeState(raw []byte) (State, bool) {
	var st State
	var probe struct {
		Alerted *string `json:"alerted"`
	}
	if json.Unmarshal(raw, &st) != nil || st.Level == "" || json.Unmarshal(raw, &probe) != nil {
		return State{Level: LevelOK}, false
	}
	if probe.Alerted == nil && st.LastNotified != 0 && st.Level != LevelOK {
		st.Alerted = st.Level
	}
	return st, true
}

const (
	historyWindow = 7 * 24 * time.Hour
	historyMax    = 200
	stateTTL      = 30 * 24 * time.Hour
)

// ForecastWindow is how far back the consumption rate looks: recent use
// predicts the next hours better than last week's.
const ForecastWindow = 24 * time.Hour

// Forecast returns the hourly consumption rate over the samples of the last
// ForecastWindow (only decreases count: a refill is not negative
// consumption, and the use after it still counts) and the hours until
// balance reaches zero at that rate. ok is false without a rate.
func Forecast(history []Sample, balance int64) (perHour, hoursLeft float64, ok bool) {
	if len(history) > 0 {
		from := history[len(history)-1].At - int64(ForecastWindow/time.Second)
		i := 0
		for i < len(history) && history[i].At < from {
			i++
		}
		history = history[i:]
	}
	if len(history) < 2 {
		return 0, 0, false
	}
	var used int64
	for i := 1; i < len(history); i++ {
		if d := history[i-1].Balance - history[i].Balance; d > 0 {
			used += d
		}
	}
	span := float64(history[len(history)-1].At-history[0].At) / 3600
	if used == 0 || span <= 0 {
		return 0, 0, false
	}
	perHour = float64(used) / span
	return perHour, float64(balance) / perHour, true
}

// AccountResult is one account's line in the run summary.
type AccountResult struct {
	DeliveryID string   `json:"deliveryId"`
	BizID      string   `json:"bizId"`
	Name       string   `json:"name,omitempty"`
	Balance    *int64   `json:"balance"`
	Threshold  int64    `json:"threshold"`
	Level      string   `json:"level"`
	HoursLeft  *float64 `json:"hoursLeft,omitempty"`
	Notified   string   `json:"notified,omitempty"` // what was announced: low, empty, error, recovered
	Error      string   `json:"error,omitempty"`
	// Pending is an alert another run claimed and has not confirmed (it is
	// delivering it, or died doing so): without it, a run after one killed
	// mid-delivery showed the account low with nothing notified and no
	// failure, and nobody knew the alert may not have been heard.
	Pending *PendingAlert `json:"pending,omitempty"`
}

// PendingAlert is an announcement claimed by another run and not confirmed.
type PendingAlert struct {
	Alert     string `json:"alert"`     // low, empty, error, recovered or resolved
	ClaimedAt string `json:"claimedAt"` // RFC 3339, UTC
	// UnheardAt is when, still unconfirmed, it counts as unheard
	// (ClaimedAt + Config.PendingGrace): the first run after it announces
	// it again.
	UnheardAt string `json:"unheardAt"`
}

// Summary is what a run returns.
type Summary struct {
	Checked           int             `json:"checked"`
	Levels            map[string]int  `json:"levels"`
	NotificationsSent int             `json:"notificationsSent"`
	Accounts          []AccountResult `json:"accounts"`
	Failures          []string        `json:"failures"`
}

// PartlyFailed reports a run with failures (an account not checked or
// failing, an alert a channel did not take, state not saved): the answer is
// still errCode 0 with this summary, and the invocation counts as a fault
// in the metrics (errClass partial), so an alarm sees a silent alert.
func (s *Summary) PartlyFailed() bool { return len(s.Failures) > 0 }

// PartialReason is the failures, for the invocation's log line: on FC and
// EventBridge a timer's answer is thrown away, and an alarm on faults then
// said that something failed but nowhere what. At most MaxReason bytes.
func (s *Summary) PartialReason() string {
	unconfirmed := ""
	if n := s.unconfirmed(); n > 0 {
		unconfirmed = fmt.Sprintf(", %d alert(s) unconfirmed", n)
	}
	r := fmt.Sprintf("%d failure(s)%s: %s", len(s.Failures), unconfirmed, strings.Join(s.Failures, "; "))
	if len(r) > MaxReason {
		cut := MaxReason
		for cut > 0 && !utf8.RuneStart(r[cut]) {
			cut--
		}
		r = r[:cut] + "…"
	}
	return r
}

// unconfirmed counts the accounts whose alert another run claimed and has
// not confirmed.
func (s *Summary) unconfirmed() int {
	n := 0
	for _, r := range s.Accounts {
		if r.Pending != nil {
			n++
		}
	}
	return n
}

// MaxReason bounds, in bytes, the failures a log line carries.
const MaxReason = 2000

// Alerter runs the checks.
type Alerter struct {
	cfg      Config
	src      Source
	kv       store.KV
	channels []notify.Channel
	now      func() time.Time
}

// rollbackTimeout bounds putting an unheard announcement back.
const rollbackTimeout = 3 * time.Second

// New builds an Alerter.
func New(cfg Config, src Source, kv store.KV, channels []notify.Channel, now func() time.Time) *Alerter {
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = 6 * time.Hour
	}
	if cfg.Band == nil {
		cfg.Band = func(t int64) int64 { return max(t/10, 1) }
	}
	if cfg.Lang == "" {
		cfg.Lang = "both"
	}
	if cfg.PendingGrace <= 0 {
		cfg.PendingGrace = 15 * time.Minute
	}
	if now == nil {
		now = time.Now
	}
	return &Alerter{cfg: cfg, src: src, kv: kv, channels: channels, now: now}
}

// Run checks every watched account once. One failing account or channel
// never stops the rest.
func (a *Alerter) Run(ctx context.Context) (*Summary, error) {
	sum := &Summary{Levels: map[string]int{}, Accounts: []AccountResult{}, Failures: []string{}}
	// A fifth of the run's time is kept for the alerts and the state,
	// counted from its start: the account list's discovery spends from the
	// checks' share, not from the alerts'.
	stopAt := checksDeadline(ctx)
	// Read before any check writes a state: after them, an emptied store
	// would hold this run's states and look used.
	var fence []byte
	emptied := false
	if a.cfg.Fenced {
		fence, emptied = a.readFence(ctx)
	}
	accounts := append([]Account(nil), a.cfg.Accounts...)
	var wg sync.WaitGroup
	var discovered Summary // the discovery's own failures, kept apart from the accounts'
	if a.cfg.Auto {
		dctx, cancel := ctx, context.CancelFunc(func() {})
		if !stopAt.IsZero() {
			dctx, cancel = context.WithDeadline(ctx, stopAt)
		}
		found, err := a.src.Discover(dctx)
		cancel()
		if err != nil {
			discovered.Failures = append(discovered.Failures, "discover accounts: "+oneLine(err.Error()))
		}
		// Announced beside the checks: a channel that hangs holds none.
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.discovery(ctx, err, &discovered)
		}()
		seen := map[string]bool{}
		for _, x := range accounts {
			seen[x.key()] = true
		}
		for _, x := range found {
			if !seen[x.key()] {
				if x.Threshold == 0 {
					x.Threshold = a.cfg.DefaultThreshold
				}
				accounts = append(accounts, x)
			}
		}
		if err == nil && len(accounts) == 0 {
			// Nothing to watch is no success to report: a run that
			// checked nothing looked like every balance was fine (an
			// outside tester's deployment watched nothing, silently).
			discovered.Failures = append(discovered.Failures, "discover accounts: WeChat lists no courier account bound to this mini program, so nothing was checked; bind one (the mini program's logistics settings) or list accounts in QUOTA_ALERT_WATCH")
		}
		// The summary lists accounts by delivery id, then biz id, as
		// its schema says, watched and discovered alike.
		sort.SliceStable(accounts, func(i, j int) bool { return accounts[i].before(accounts[j]) })
	}
	// A few accounts at a time: each getQuota asks the courier live and can
	// take seconds, while the timer's deadline covers the whole list.
	// Checks start where the last run ran out of time, so a list too long
	// for one run is still covered over several. An account's alert is
	// delivered after its check slot is free: a hung channel holds no slot.
	parts := make([]Summary, len(accounts))
	results := make([]AccountResult, len(accounts))
	order, resuming := a.startOrder(ctx, accounts)
	sem := make(chan struct{}, a.cfg.parallel())
	for _, i := range order {
		acct := accounts[i]
		if acct.Threshold == 0 && !acct.thresholdSet {
			acct.Threshold = a.cfg.DefaultThreshold
		}
		sem <- struct{}{}
		if !stopAt.IsZero() && !time.Now().Before(stopAt) {
			<-sem
			results[i] = a.unchecked(acct, &parts[i])
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, an := a.check(ctx, acct, stopAt, &parts[i])
			<-sem
			if an != nil {
				a.send(ctx, an, &res, &parts[i])
			}
			results[i] = res
		}()
	}
	wg.Wait()
	if d, ok := a.kv.(interface{ Degraded() bool }); ok && d.Degraded() {
		// The store fell back to this instance's memory: the state was
		// "saved" where no other instance, and no later one, sees it.
		sum.Failures = append(sum.Failures, "alert state kept in this instance's memory only: the shared store is unavailable, so an alert may be said again when it is back")
		emptied = false // the fallback's memory says nothing of the store's
	}
	sum.Failures = append(sum.Failures, discovered.Failures...)
	sum.NotificationsSent += discovered.NotificationsSent
	resume := ""
	for _, i := range order {
		if results[i].Level == Unchecked {
			resume = accounts[i].key()
			break
		}
	}
	if resume != "" || resuming {
		a.saveResume(ctx, resume, sum)
	}
	if emptied {
		a.stateLost(ctx, fence, results, sum)
	}
	for i, r := range results {
		sum.Accounts = append(sum.Accounts, r)
		sum.Levels[r.Level]++
		if r.Level != Unchecked {
			sum.Checked++
		}
		sum.NotificationsSent += parts[i].NotificationsSent
		sum.Failures = append(sum.Failures, parts[i].Failures...)
	}
	return sum, nil
}

// fenceKey marks the alert state as in use: every account's state goes with
// it when the store loses its data, so a run that finds it gone knows that
// the store is new or was emptied (the idea of the records' and nonces'
// fences, for a function that usually starts on a fresh instance and so
// cannot remember the value it saw: the key's presence is the fence).
const fenceKey = "alert:quota:fence"

// fence values: a run telling the channels of an emptied store (claimed,
// with its unix ms), and the store in use (kept, with the unix s it was
// first marked).
const (
	fenceClaimed = "claimed "
	fenceKept    = "kept "
)

// readFence reports whether the alert state is new or was emptied, and the
// fence read (nil: none). A claim older than the grace is a run that died
// telling it: the next run tells it again. A fence in place gets its TTL
// back (every write expires), as every account's state does on each check.
func (a *Alerter) readFence(ctx context.Context) ([]byte, bool) {
	raw, err := a.kv.Get(ctx, fenceKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, true
	case err != nil:
		return nil, false // unreadable: the accounts' reads report the store
	}
	if ms, ok := strings.CutPrefix(string(raw), fenceClaimed); ok {
		var at int64
		_, _ = fmt.Sscan(ms, &at)
		return raw, a.now().Sub(time.UnixMilli(at)) > a.cfg.PendingGrace
	}
	_, _ = a.kv.CompareAndSwap(ctx, fenceKey, raw, raw, stateTTL)
	return raw, false
}

// stateLost handles a store found without its fence: the alerts said before
// are forgotten, so a low account's alert was said again (acceptable, and
// said here), and a recovery since was not (its low state is gone). Since
// nothing tells which accounts were alerted, the channels get every
// checked account's level at once, which is the recovery people waited
// for. The fence is claimed first so
// overlapping runs tell it once, and taken back when no channel took it.
func (a *Alerter) stateLost(ctx context.Context, fence []byte, results []AccountResult, sum *Summary) {
	claim := []byte(fmt.Sprintf("%s%d", fenceClaimed, a.now().UnixMilli()))
	var won bool
	var err error
	if fence == nil {
		won, err = a.kv.SetNX(ctx, fenceKey, claim, stateTTL)
	} else {
		won, err = a.kv.CompareAndSwap(ctx, fenceKey, fence, claim, stateTTL)
	}
	if err == nil && !won {
		return // an overlapping run is telling it
	}
	// Not a failure in itself: a store's first run cannot be told from a
	// loss, and every new deployment (and every `make run`) would count as
	// partial and trip the fault alarm. The channels hear it instead; a
	// reset no channel took is a failure (deliver says so) and is said again.
	if err != nil {
		sum.Failures = append(sum.Failures, "alert state fence not saved: "+err.Error())
	}
	heard := true
	if len(a.channels) > 0 {
		heard = a.deliver(ctx, a.levelsMessage(results), "alert state reset", sum)
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	if !heard {
		// Nobody heard it: the next run finds no fence and tells it again.
		if _, err := a.kv.CompareAndDelete(uctx, fenceKey, claim); err != nil {
			sum.Failures = append(sum.Failures, "alert state fence not rolled back: "+err.Error())
		}
		return
	}
	kept := []byte(fmt.Sprintf("%s%d", fenceKept, a.now().Unix()))
	if _, err := a.kv.CompareAndSwap(uctx, fenceKey, claim, kept, stateTTL); err != nil {
		sum.Failures = append(sum.Failures, "alert state fence not confirmed: "+err.Error())
	}
}

// levelsMessage is the reset announcement: every checked account's level.
func (a *Alerter) levelsMessage(results []AccountResult) notify.Message {
	var zhL, enL []string
	for _, r := range results {
		if r.Level == Unchecked {
			continue
		}
		acct := Account{DeliveryID: r.DeliveryID, BizID: r.BizID, Name: r.Name}
		bal := "?"
		if r.Balance != nil {
			bal = fmt.Sprint(*r.Balance)
		}
		zhL = append(zhL, fmt.Sprintf("%s：%s，余额 %s（阈值 %d）", acct.label(), r.Level, bal, r.Threshold))
		enL = append(enL, fmt.Sprintf("%s: %s, %s waybills (threshold %d)", acct.label(), r.Level, bal, r.Threshold))
	}
	zhT, enT := "电子面单余额告警状态从头开始", "Waybill alert state starts afresh"
	zh := "告警状态为空（在此存储上首次运行，或存储丢失了数据），之前的告警可能会重复，期间的恢复无法得知。各账号当前状态：" + strings.Join(zhL, "；") + "。状态为 ok 的账号无需处理。"
	en := "The alert state was empty (a first run on this store, or the store lost its data): earlier alerts may repeat, and a recovery meanwhile could not be told. Every account now: " +
		strings.Join(enL, "; ") + ". An account at ok needs nothing, whatever an earlier alert said."
	// Every field an account's alert has, so a receiver reads one shape.
	m := notify.Message{Data: map[string]any{"event": Reset, "deliveryId": "", "bizId": "", "name": "", "balance": nil,
		"threshold": nil, "level": "", "hoursLeft": nil, "error": ""}}
	a.localize(&m, zhT, enT, zh, en)
	return m
}

// resumeKey holds the first account the last run had no time for.
const resumeKey = "alert:quota:resume"

// checksDeadline is when the run stops starting (and cuts) balance queries:
// the run's deadline less a reserve for the alerts and state writes that
// follow (a fifth of the time left, at most 15 s: 12 s of the default 60).
// Zero without a deadline.
func checksDeadline(ctx context.Context) time.Time {
	dl, ok := ctx.Deadline()
	if !ok {
		return time.Time{}
	}
	reserve := min(time.Until(dl)/5, 15*time.Second)
	return dl.Add(-reserve)
}

// startOrder is the order to check accounts in: from the account the last
// run did not reach (resuming), round to the one before it.
func (a *Alerter) startOrder(ctx context.Context, accounts []Account) (order []int, resuming bool) {
	first := 0
	raw, err := a.kv.Get(ctx, resumeKey)
	if err == nil {
		resuming = true
		d, b, _ := strings.Cut(string(raw), "/")
		at := Account{DeliveryID: d, BizID: b}
		for i, x := range accounts {
			if !x.before(at) { // that account, or the next one if it is gone
				first = i
				break
			}
		}
	}
	for i := range accounts {
		order = append(order, (first+i)%len(accounts))
	}
	return order, resuming
}

// saveResume keeps (or clears) where the next run starts, with its own few
// seconds: the run's deadline may have passed.
func (a *Alerter) saveResume(ctx context.Context, key string, sum *Summary) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	var err error
	if key == "" {
		err = a.kv.Delete(uctx, resumeKey)
	} else {
		err = a.kv.Set(uctx, resumeKey, []byte(key), stateTTL)
	}
	if err != nil {
		sum.Failures = append(sum.Failures, "where the next run starts not saved: "+err.Error())
	}
}

// discovery tells the channels once that the account list cannot be had
// (QUOTA_ALERT_WATCH=auto): until it can, no discovered account is watched,
// so an empty balance would otherwise pass in silence. The state is kept
// like an account's, so overlapping runs announce it once, and it is
// cleared when discovery works again.
func (a *Alerter) discovery(ctx context.Context, derr error, sum *Summary) {
	const key = "alert:quota:discovery"
	raw, err := a.kv.Get(ctx, key)
	var st State
	if err == nil {
		_ = json.Unmarshal(raw, &st)
	} else {
		raw = nil
	}
	now := a.now()
	// A claim whose run died before confirming it (killed mid-delivery) is
	// unheard after the grace, as an account's is: it was never said, and
	// without the mark it stayed "said" for the state's 30 days.
	heard := st.heard(now, a.cfg.PendingGrace)
	delivering := st.Pending != nil && heard.LastError != ""
	switch {
	case derr == nil && st.LastError != "":
		a.discoveryResolved(ctx, key, raw, heard.LastError != "" && len(a.channels) > 0, sum)
		return
	case derr == nil || heard.LastError != "" || delivering || len(a.channels) == 0:
		// Said before (or being said), or nobody to tell: a run without
		// channels leaves it to the first run that has one.
		return
	}
	claimed := State{Level: LevelError, Pending: &Told{}, Claimed: now.UnixMilli()}
	claimed.LastError, claimed.LastNotified = derr.Error(), now.Unix()
	b, _ := json.Marshal(claimed)
	if !a.claim(ctx, key, raw, b, "account discovery", sum) {
		return
	}
	defer func() {
		// Heard: the mark goes. A confirm the store does not take leaves
		// the claim to age into "unheard", a repeat, not a loss.
		if b != nil {
			done := claimed
			done.Pending, done.Claimed = nil, 0
			db, _ := json.Marshal(done)
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			defer cancel()
			_, _ = a.kv.CompareAndSwap(cctx, key, b, db, stateTTL)
		}
	}()
	zhT, enT := "电子面单账号列表获取失败", "Waybill accounts cannot be listed"
	zh := "QUOTA_ALERT_WATCH=auto 需要从微信获取已绑定的快递账号，但获取失败：" + oneLine(derr.Error()) + "。在恢复之前，这些账号的余额都不会被检查（也可在 QUOTA_ALERT_WATCH 中直接列出账号）。"
	en := "QUOTA_ALERT_WATCH=auto lists the courier accounts bound to this mini program, and that failed: " + oneLine(derr.Error()) +
		". Until it works no account is checked (or list the accounts in QUOTA_ALERT_WATCH)."
	// Every field an account's alert has, so a receiver reads one shape.
	m := notify.Message{Data: map[string]any{"event": LevelError, "deliveryId": "", "bizId": "", "name": "", "balance": nil,
		"threshold": nil, "level": LevelError, "hoursLeft": nil, "error": derr.Error()}}
	a.localize(&m, zhT, enT, zh, en)
	if !a.deliver(ctx, m, "account discovery error", sum) {
		// Nobody heard it: the next run tries again. With its own few
		// seconds: the delivery may have used the run's deadline, and an
		// undo that fails there leaves the claim to age into "unheard".
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		if _, err := a.kv.CompareAndDelete(uctx, key, b); err != nil {
			sum.Failures = append(sum.Failures, "account discovery: alert state not rolled back: "+err.Error())
		}
		b = nil // nothing to confirm
	}
}

// discoveryResolved clears the account list's failure once the list can be
// had again, and, when that failure was heard, says so (resolved), as an
// account's check working again is said: the channels' last word was the
// failure. Taken (deleted) before it is said, so of overlapping runs one
// says it; put back when no channel took it, so the next run says it.
func (a *Alerter) discoveryResolved(ctx context.Context, key string, raw []byte, tell bool, sum *Summary) {
	won, err := a.kv.CompareAndDelete(ctx, key, raw)
	if err != nil {
		sum.Failures = append(sum.Failures, "account discovery: alert state not cleared: "+err.Error())
		return // the next run clears it, and says it
	}
	if !won || !tell {
		return
	}
	zhT, enT := "电子面单账号列表已恢复获取", "Waybill accounts can be listed again"
	zh := "QUOTA_ALERT_WATCH=auto 已能再次从微信获取已绑定的快递账号，这些账号的余额恢复检查。"
	en := "QUOTA_ALERT_WATCH=auto lists the courier accounts bound to this mini program again: their balances are checked again."
	m := notify.Message{Data: map[string]any{"event": Resolved, "deliveryId": "", "bizId": "", "name": "", "balance": nil,
		"threshold": nil, "level": "", "hoursLeft": nil, "error": ""}}
	a.localize(&m, zhT, enT, zh, en)
	if a.deliver(ctx, m, "account discovery resolved", sum) {
		return
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	if _, err := a.kv.SetNX(uctx, key, raw, stateTTL); err != nil {
		sum.Failures = append(sum.Failures, "account discovery: alert state not rolled back: "+err.Error())
	}
}

// claim writes an alert state over raw (absent: nil), compare-and-swap, so
// of two overlapping runs only one announces. It reports whether this run
// may announce: it wrote the state, or the store could not be written (a
// missed alert costs more than a repeated one), or the compare failed on a
// store that fell back to this instance's memory between the read and the
// write (which holds nothing to compare with): only a state that is there
// says another run saw it.
func (a *Alerter) claim(ctx context.Context, key string, raw, b []byte, label string, sum *Summary) bool {
	var won bool
	var err error
	if raw == nil {
		won, err = a.kv.SetNX(ctx, key, b, stateTTL)
	} else {
		won, err = a.kv.CompareAndSwap(ctx, key, raw, b, stateTTL)
	}
	if err != nil {
		sum.Failures = append(sum.Failures, label+": alert state not saved: "+err.Error())
		return true
	}
	if won {
		return true
	}
	if _, gerr := a.kv.Get(ctx, key); gerr != nil {
		if !errors.Is(gerr, store.ErrNotFound) {
			sum.Failures = append(sum.Failures, label+": alert state not saved: "+gerr.Error())
		}
		return true
	}
	return false
}

// deliver sends m to every channel at once; false when none took it. At
// once, so a channel that hangs costs the others nothing (one after another,
// a hung robot used the whole run's deadline and every channel failed).
func (a *Alerter) deliver(ctx context.Context, m notify.Message, what string, sum *Summary) bool {
	errs := make([]error, len(a.channels))
	var wg sync.WaitGroup
	for i, ch := range a.channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ch.Send(ctx, m)
		}()
	}
	wg.Wait()
	delivered := 0
	for i, err := range errs {
		if err != nil {
			sum.Failures = append(sum.Failures, "notify "+a.channels[i].Name()+" ("+what+"): "+err.Error())
			continue
		}
		delivered++
		sum.NotificationsSent++
	}
	return delivered > 0 || len(a.channels) == 0
}

// localize sets the title and text in QUOTA_ALERT_LANG.
func (a *Alerter) localize(m *notify.Message, zhT, enT, zh, en string) {
	switch a.cfg.Lang {
	case "zh":
		m.Title, m.Text = zhT, zh
	case "en":
		m.Title, m.Text = enT, en
	default:
		m.Title, m.Text = zhT+" / "+enT, zh+"\n"+en
	}
}

// announcement is what a check decided to tell, claimed in the store and
// waiting for delivery.
type announcement struct {
	acct    Account
	what    string // low, empty, error, recovered, resolved
	key     string
	claimed State // as written by the claim
	msg     notify.Message
}

// check reads one account's balance, saves what it saw, and claims what is
// news. stopAt (zero: none) is when the run's checks must be done: a query
// still running then is cut, and the account is left as it was for the next
// run, not announced as failing: the run's time ran out, not the vendor.
// The announcement, if any, is delivered by the caller after it has let go
// of its check slot.
func (a *Alerter) check(ctx context.Context, acct Account, stopAt time.Time, sum *Summary) (AccountResult, *announcement) {
	res := AccountResult{DeliveryID: acct.DeliveryID, BizID: acct.BizID, Name: acct.Name, Threshold: acct.Threshold}
	now := a.now()
	started := time.Now()
	deadline := started.Add(a.cfg.queryTimeout())
	if !stopAt.IsZero() && stopAt.Before(deadline) {
		deadline = stopAt
	}
	qctx, cancel := context.WithDeadline(ctx, deadline)
	balance, qerr := a.src.Quota(qctx, acct.DeliveryID, acct.BizID)
	cut := qerr != nil && qctx.Err() != nil
	cancel()
	if cut {
		waited := time.Since(started)
		if waited < a.cfg.slowQuery() {
			return a.unchecked(acct, sum), nil
		}
		// WeChat was asked and did not answer in all that time: that is a
		// failing check, whatever ended the wait.
		qerr = fmt.Errorf("WeChat did not answer getQuota within %s", waited.Round(100*time.Millisecond))
	}
	key := "alert:quota:" + acct.key()
	raw, err := a.kv.Get(ctx, key)
	st := State{Level: LevelOK}
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		sum.Failures = append(sum.Failures, acct.label()+": alert state unreadable: "+err.Error())
	default:
		st, _ = decodeState(raw)
	}
	base := st.heard(now, a.cfg.PendingGrace)
	cooled := func(at int64) bool { return now.Sub(time.Unix(at, 0)) >= a.cfg.Cooldown }
	next := st
	var announce string // low, empty, error, recovered, resolved, or ""
	if qerr != nil {
		// The balance level stays what it was; the failure is announced
		// once, not on every run, until a query succeeds again, and not
		// again within the cooldown of the last error or resolution.
		// On one line here too: the summary and the log line carry it
		// (a vendor's errmsg with a line break came through: a tester).
		res.Level, res.Error = LevelError, oneLine(qerr.Error())
		sum.Failures = append(sum.Failures, acct.label()+": "+res.Error)
		if base.LastError == "" && cooled(base.ErrorNotified) {
			announce = LevelError
		}
	} else {
		res.Balance = &balance
		next.History = trim(append(append([]Sample(nil), st.History...), Sample{At: now.Unix(), Balance: balance}), now)
		level := a.level(acct, st.Level, balance, next.History, &res)
		next.Level = level
		res.Level = level
		switch {
		case level == LevelOK && base.Alerted != "":
			announce = Recovered
		case level != LevelOK && severity(level) > severity(base.Alerted):
			announce = level // worse than what was told (or nothing was)
		case level != LevelOK && cooled(base.LastNotified):
			announce = level // still low after the cooldown: say it again
		case base.LastError != "":
			announce = Resolved // told it failed; the level is no news
		}
	}
	if announce != "" && len(a.channels) == 0 {
		// Nobody to tell: what would have been announced stays news for
		// the run that has a channel.
		announce = ""
	}
	if announce != "" {
		t := base
		switch announce {
		case LevelLow, LevelEmpty:
			t.Alerted, t.LastNotified = announce, now.Unix()
		case Recovered:
			t.Alerted, t.LastNotified = "", now.Unix()
		case LevelError:
			t.LastError, t.ErrorNotified = qerr.Error(), now.Unix()
		case Resolved:
			t.LastError, t.ErrorNotified = "", now.Unix()
		}
		if announce != LevelError && announce != Resolved && base.LastError != "" {
			t.LastError = "" // a level alert says the check works again
		}
		heard := st.confirmed()
		next.Told, next.Pending, next.Claimed = t, &heard, now.UnixMilli()
	}
	b, _ := json.Marshal(next)
	if !a.claim(ctx, key, raw, b, acct.label(), sum) || announce == "" {
		if what := st.claimedAlert(); what != "" && announce == "" && base != st.confirmed() {
			// Another run's claim, still within the grace: it may never
			// be heard, and this run says nothing of its own.
			a.pending(acct, what, st.Claimed, &res, sum)
		}
		return res, nil
	}
	res.Notified = announce
	return res, &announcement{acct: acct, what: announce, key: key, claimed: next, msg: a.message(acct, announce, res)}
}

// send delivers a claimed announcement, then confirms it in the store, or
// takes it back when no channel took it so the next run tries again
// instead of waiting out the cooldown.
func (a *Alerter) send(ctx context.Context, an *announcement, res *AccountResult, sum *Summary) {
	label := an.acct.label()
	heard := a.deliver(ctx, an.msg, label+" "+an.what, sum)
	if !heard {
		res.Notified = ""
	}
	a.settle(ctx, an.key, an.claimed, heard, label, sum)
}

// settle ends a claim on whatever state is stored by now (an overlapping
// run may have added its sample, or claimed over it): heard, the claim's
// Pending is cleared, and a claim made over it learns that this one was
// heard; not heard, the claim's announcement goes back to its Pending. A
// claim made over it keeps its own Pending, which never counted this one.
// Its own few seconds: the deliveries may have used the run's deadline.
func (a *Alerter) settle(ctx context.Context, key string, claim State, heard bool, label string, sum *Summary) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	fail := func(err error) {
		what := "confirmed"
		if !heard {
			what = "rolled back"
		}
		sum.Failures = append(sum.Failures, label+": alert state not "+what+": "+err.Error())
	}
	for range 5 {
		raw, err := a.kv.Get(uctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return
		}
		if err != nil {
			fail(err)
			return
		}
		cur, ok := decodeState(raw)
		mine := ok && cur.Claimed == claim.Claimed && cur.Told == claim.Told && cur.Pending != nil
		switch {
		case mine && heard:
			cur.Pending, cur.Claimed = nil, 0
		case mine:
			cur.Told, cur.Pending, cur.Claimed = *cur.Pending, nil, 0
		case heard && ok && cur.Pending != nil && claim.Pending != nil && *cur.Pending == *claim.Pending:
			// Claimed over by a run that took this one for unheard: it
			// was heard, so that run's fallback is this announcement.
			t := claim.Told
			cur.Pending = &t
		default:
			return // confirmed, taken back or announced over since: nothing of ours to change
		}
		b, _ := json.Marshal(cur)
		won, err := a.kv.CompareAndSwap(uctx, key, raw, b, stateTTL)
		if err != nil {
			fail(err)
			return
		}
		if won {
			return
		}
	}
	fail(errors.New("the state kept changing"))
}

// pending reports an alert another run claimed at claimedMs and has not
// confirmed, in the account's result and in the failures: that run may have
// died mid-delivery, and until the grace ends no run says it again.
func (a *Alerter) pending(acct Account, what string, claimedMs int64, res *AccountResult, sum *Summary) {
	at := time.UnixMilli(claimedMs).UTC()
	p := &PendingAlert{Alert: what, ClaimedAt: at.Format(time.RFC3339), UnheardAt: at.Add(a.cfg.PendingGrace).Format(time.RFC3339)}
	res.Pending = p
	sum.Failures = append(sum.Failures, fmt.Sprintf("%s: its %s alert, claimed by another run at %s, is not confirmed (that run is still delivering it, or died mid-delivery); "+
		"unless confirmed, it counts as unheard at %s and the first run after that announces it again", acct.label(), what, p.ClaimedAt, p.UnheardAt))
}

// unchecked is the result of an account the run had no time left for.
func (a *Alerter) unchecked(acct Account, sum *Summary) AccountResult {
	msg := "not checked: the run's time ran out; it is checked first in the next run (raise the function's timeout or watch fewer accounts)"
	sum.Failures = append(sum.Failures, acct.label()+": "+msg)
	return AccountResult{DeliveryID: acct.DeliveryID, BizID: acct.BizID, Name: acct.Name, Threshold: acct.Threshold, Level: Unchecked, Error: msg}
}

func (a *Alerter) level(acct Account, prev string, balance int64, history []Sample, res *AccountResult) string {
	if balance <= 0 {
		return LevelEmpty
	}
	// Hysteresis: falling below the threshold makes an account low; it
	// is ok again only at threshold + band, and (with a horizon) only
	// when the forecast is beyond horizon + 10%.
	recoverAt, horizon := acct.Threshold, a.cfg.Horizon.Hours()
	if prev == LevelLow || prev == LevelEmpty {
		// Saturating: threshold + band past int64 wrapped negative, and
		// a huge threshold flapped low, recovered, low...
		recoverAt += min(a.cfg.Band(acct.Threshold), math.MaxInt64-recoverAt)
		horizon *= 1.1
	}
	_, hours, ok := Forecast(history, balance)
	if ok {
		h := math.Round(hours*10) / 10
		res.HoursLeft = &h
	}
	if balance < recoverAt {
		return LevelLow
	}
	if ok && a.cfg.Horizon > 0 && hours < horizon {
		return LevelLow
	}
	return LevelOK
}

func trim(h []Sample, now time.Time) []Sample {
	cut := 0
	for cut < len(h) && now.Sub(time.Unix(h[cut].At, 0)) > historyWindow {
		cut++
	}
	h = h[cut:]
	if len(h) > historyMax {
		h = h[len(h)-historyMax:]
	}
	return h
}

func (a *Alerter) message(acct Account, what string, r AccountResult) notify.Message {
	var zhT, enT, zh, en string
	bal := "?"
	if r.Balance != nil {
		bal = fmt.Sprint(*r.Balance)
	}
	eta, etaEn := "", ""
	if r.HoursLeft != nil && what != LevelEmpty {
		eta, etaEn = etaText(*r.HoursLeft)
	}
	switch what {
	case LevelLow:
		zhT, enT = "电子面单余额不足", "Waybill balance low"
		zh = fmt.Sprintf("%s 余额 %s，阈值 %d%s。请尽快充值。", acct.label(), bal, acct.Threshold, eta)
		en = fmt.Sprintf("%s has %s waybills left (threshold %d)%s. Top up soon.", acct.label(), bal, acct.Threshold, etaEn)
	case LevelEmpty:
		zhT, enT = "电子面单余额已用完", "Waybill balance empty"
		zh = fmt.Sprintf("%s 余额为 0，无法继续打印电子面单。请立即充值。", acct.label())
		en = fmt.Sprintf("%s has no waybills left: printing has stopped. Top up now.", acct.label())
	case Recovered:
		zhT, enT = "电子面单余额已恢复", "Waybill balance recovered"
		zh = fmt.Sprintf("%s 余额恢复为 %s（阈值 %d）。", acct.label(), bal, acct.Threshold)
		en = fmt.Sprintf("%s is back to %s waybills (threshold %d).", acct.label(), bal, acct.Threshold)
	case Resolved:
		zhT, enT = "电子面单余额查询已恢复", "Waybill balance check working again"
		zh = fmt.Sprintf("%s 余额查询已恢复正常，余额 %s（阈值 %d）。", acct.label(), bal, acct.Threshold)
		en = fmt.Sprintf("%s can be checked again: %s waybills left (threshold %d).", acct.label(), bal, acct.Threshold)
	default:
		zhT, enT = "电子面单余额查询失败", "Waybill balance check failing"
		zh = fmt.Sprintf("%s 余额查询失败：%s", acct.label(), oneLine(r.Error))
		en = fmt.Sprintf("%s cannot be checked: %s", acct.label(), oneLine(r.Error))
	}
	m := notify.Message{Data: map[string]any{"event": what, "deliveryId": acct.DeliveryID, "bizId": acct.BizID, "name": acct.Name,
		"balance": r.Balance, "threshold": acct.Threshold, "level": r.Level, "hoursLeft": r.HoursLeft, "error": r.Error}}
	a.localize(&m, zhT, enT, zh, en)
	return m
}

// etaText says when the balance runs out at the recent rate, in whole
// hours with one decimal ("about 0 hours" said nothing under an hour).
func etaText(h float64) (zh, en string) {
	if h < 1 {
		return "，按近期用量预计不到 1 小时就会用完", "; at the recent rate it runs out within the hour"
	}
	n := strings.TrimSuffix(fmt.Sprintf("%.1f", h), ".0")
	unit := "hours"
	if n == "1" {
		unit = "hour"
	}
	return "，按近期用量预计约 " + n + " 小时后用完", "; at the recent rate it runs out in about " + n + " " + unit
}

// ParseWatch reads QUOTA_ALERT_WATCH: "auto", or a JSON list of accounts.
// Its errors give positions and field paths in the value as written.
func ParseWatch(s string) (accounts []Account, auto bool, err error) {
	if t := strings.TrimSpace(s); t == "" || strings.EqualFold(t, "auto") {
		return nil, true, nil
	}
	const want = `expected "auto" or a JSON list of {deliveryId, bizId, threshold?, name?}`
	dec := json.NewDecoder(strings.NewReader(s))
	var list json.RawMessage
	if err := dec.Decode(&list); err != nil {
		at := len(s) // cut short: the end is where more was expected
		var se *json.SyntaxError
		if errors.As(err, &se) {
			at = int(se.Offset) - 1 // Offset counts the bad byte in
		}
		return nil, false, fmt.Errorf("QUOTA_ALERT_WATCH: %s; invalid JSON at %s: %w", want, position(s, at), err)
	}
	// Decoder.More() took a closing ']' or '}' after the list for the end
	// of input, so "[...]]" was accepted: only JSON whitespace may follow.
	end := int(dec.InputOffset())
	if rest := strings.TrimLeft(s[end:], " \t\r\n"); rest != "" {
		at := len(s) - len(rest)
		return nil, false, fmt.Errorf("QUOTA_ALERT_WATCH: expected one JSON list; something follows it at %s: %q (remove it: what follows would go unwatched)",
			position(s, at), firstRunes(rest, 20))
	}
	switch list[0] {
	case '[':
	case 'n':
		list = nil
	case '{':
		return nil, false, fmt.Errorf("QUOTA_ALERT_WATCH: %s, got a JSON object: a JSON list is expected, even of one account ([{...}])", want)
	default:
		return nil, false, fmt.Errorf("QUOTA_ALERT_WATCH: %s, got %s", want, kindName(jsontext.Value(list).Kind()))
	}
	var entries []json.RawMessage
	if list != nil {
		if err := json.Unmarshal(list, &entries); err != nil {
			return nil, false, fmt.Errorf("QUOTA_ALERT_WATCH: %w", err) // a valid list: not reached
		}
	}
	for i, e := range entries {
		var a Account
		if err := a.UnmarshalJSON(e); err != nil {
			var ee *entryError
			if errors.As(err, &ee) && ee.field != "" {
				return nil, false, fmt.Errorf("QUOTA_ALERT_WATCH[%d].%s: %s", i, ee.field, ee.msg)
			}
			return nil, false, fmt.Errorf("QUOTA_ALERT_WATCH[%d]: %w", i, err)
		}
		accounts = append(accounts, a)
	}
	if len(accounts) == 0 {
		return nil, false, fmt.Errorf(`QUOTA_ALERT_WATCH: the list is empty (or null), so nothing would be watched; list accounts or set "auto"`)
	}
	seen := map[string]int{}
	for i, a := range accounts {
		if a.DeliveryID == "" || a.BizID == "" {
			return nil, false, fmt.Errorf("QUOTA_ALERT_WATCH[%d]: deliveryId and bizId are required", i)
		}
		if j, dup := seen[a.key()]; dup {
			// One alert state per account: two entries would flap it.
			return nil, false, fmt.Errorf("QUOTA_ALERT_WATCH[%d]: the account %s/%s is already entry %d", i, a.DeliveryID, a.BizID, j)
		}
		seen[a.key()] = i
		if a.Threshold < 0 {
			return nil, false, fmt.Errorf("QUOTA_ALERT_WATCH[%d]: threshold must not be negative", i)
		}
	}
	sort.SliceStable(accounts, func(i, j int) bool { return accounts[i].before(accounts[j]) })
	return accounts, false, nil
}

// position is byte offset at in s, with its line and column (1-based, in
// bytes), for a value a person wrote over several lines.
func position(s string, at int) string {
	at = min(max(at, 0), len(s))
	line := strings.Count(s[:at], "\n") + 1
	col := at - strings.LastIndexByte(s[:at], '\n')
	return fmt.Sprintf("byte %d (line %d, column %d)", at, line, col)
}

// firstRunes is s cut to n runes, marked when cut.
func firstRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i] + "…"
		}
		n--
	}
	return s
}
