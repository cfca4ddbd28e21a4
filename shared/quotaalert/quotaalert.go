// Package quotaalert watches courier accounts' electronic-waybill balances
// and tells people before they run out: levels with hysteresis, a cooldown
// between repeats, a recovery message, a depletion forecast, and per-account
// state in the shared store so overlapping runs and many instances agree.
package quotaalert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

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
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	*a = Account{DeliveryID: w.DeliveryID, BizID: w.BizID, Name: w.Name}
	if w.Threshold != nil {
		a.Threshold, a.thresholdSet = *w.Threshold, true
	}
	return nil
}

func (a Account) key() string { return a.DeliveryID + "/" + a.BizID }

// before orders accounts by delivery id, then biz id.
func (a Account) before(b Account) bool {
	if a.DeliveryID != b.DeliveryID {
		return a.DeliveryID < b.DeliveryID
	}
	return a.BizID < b.BizID
}

func (a Account) label() string {
	if a.Name != "" {
		return fmt.Sprintf("%s %s (%s)", a.DeliveryID, a.BizID, a.Name)
	}
	return a.DeliveryID + " " + a.BizID
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
	Parallel int
}

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

// State is what the store keeps per account.
type State struct {
	Level   string   `json:"level"` // ok, low or empty: the last known balance level (for the hysteresis)
	History []Sample `json:"history"`
	// Alerted is the level (low or empty) a channel was last told, "" when
	// nothing was or a recovery was announced since. Announcements follow it,
	// not Level: a balance wavering between 0 and 1 is news once, and a run
	// with no channel to tell leaves it as it was.
	Alerted      string `json:"alerted"`
	LastNotified int64  `json:"lastNotified"`        // unix seconds; 0 never
	LastError    string `json:"lastError,omitempty"` // a failing check that was announced; "" once one works
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
	if now == nil {
		now = time.Now
	}
	return &Alerter{cfg: cfg, src: src, kv: kv, channels: channels, now: now}
}

// Run checks every watched account once. One failing account or channel
// never stops the rest.
func (a *Alerter) Run(ctx context.Context) (*Summary, error) {
	sum := &Summary{Levels: map[string]int{}, Accounts: []AccountResult{}, Failures: []string{}}
	accounts := append([]Account(nil), a.cfg.Accounts...)
	if a.cfg.Auto {
		found, err := a.src.Discover(ctx)
		if err != nil {
			sum.Failures = append(sum.Failures, "discover accounts: "+err.Error())
		}
		a.discovery(ctx, err, sum)
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
		// The summary lists accounts by delivery id, then biz id, as
		// its schema says, watched and discovered alike.
		sort.SliceStable(accounts, func(i, j int) bool { return accounts[i].before(accounts[j]) })
	}
	stopAt := checksDeadline(ctx)
	// A few accounts at a time: each getQuota asks the courier live and can
	// take seconds, while the timer's deadline covers the whole list.
	// Checks start where the last run ran out of time, so a list too long
	// for one run is still covered over several.
	parts := make([]Summary, len(accounts))
	results := make([]AccountResult, len(accounts))
	order, resuming := a.startOrder(ctx, accounts)
	sem := make(chan struct{}, a.cfg.parallel())
	var wg sync.WaitGroup
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
			defer func() { <-sem }()
			results[i] = a.check(ctx, acct, stopAt, &parts[i])
		}()
	}
	wg.Wait()
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
	switch {
	case derr == nil && st.LastError != "":
		_, _ = a.kv.CompareAndDelete(ctx, key, raw)
		return
	case derr == nil || st.LastError != "":
		return
	}
	b, _ := json.Marshal(State{Level: LevelError, LastError: derr.Error(), LastNotified: a.now().Unix()})
	if !a.claim(ctx, key, raw, b, "account discovery", sum) {
		return
	}
	zhT, enT := "电子面单账号列表获取失败", "Waybill accounts cannot be listed"
	zh := "QUOTA_ALERT_WATCH=auto 需要从微信获取已绑定的快递账号，但获取失败：" + derr.Error() + "。在恢复之前，这些账号的余额都不会被检查（也可在 QUOTA_ALERT_WATCH 中直接列出账号）。"
	en := "QUOTA_ALERT_WATCH=auto lists the courier accounts bound to this mini program, and that failed: " + derr.Error() +
		". Until it works no account is checked (or list the accounts in QUOTA_ALERT_WATCH)."
	// Every field an account's alert has, so a receiver reads one shape.
	m := notify.Message{Data: map[string]any{"event": LevelError, "deliveryId": "", "bizId": "", "name": "", "balance": nil,
		"threshold": nil, "level": LevelError, "hoursLeft": nil, "error": derr.Error()}}
	a.localize(&m, zhT, enT, zh, en)
	if !a.deliver(ctx, m, "account discovery error", sum) {
		_, _ = a.kv.CompareAndDelete(ctx, key, b) // nobody heard it: the next run tries again
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

// check reads one account's balance and announces what is news. stopAt
// (zero: none) is when the run's checks must be done: a query still running
// then is cut, and the account is left as it was for the next run, not
// announced as failing: the run's time ran out, not the vendor.
func (a *Alerter) check(ctx context.Context, acct Account, stopAt time.Time, sum *Summary) AccountResult {
	res := AccountResult{DeliveryID: acct.DeliveryID, BizID: acct.BizID, Name: acct.Name, Threshold: acct.Threshold}
	now := a.now()
	qctx, cancel := ctx, context.CancelFunc(func() {})
	if !stopAt.IsZero() {
		qctx, cancel = context.WithDeadline(ctx, stopAt)
	}
	balance, qerr := a.src.Quota(qctx, acct.DeliveryID, acct.BizID)
	cut := qerr != nil && qctx.Err() != nil
	cancel()
	if cut {
		return a.unchecked(acct, sum)
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
	next := st
	var announce string // low, empty, error, recovered, resolved, or ""
	if qerr != nil {
		// The balance level stays what it was; the failure is announced
		// once, not on every run, until a query succeeds again.
		res.Level, res.Error = LevelError, qerr.Error()
		sum.Failures = append(sum.Failures, acct.label()+": "+qerr.Error())
		if st.LastError == "" {
			announce = LevelError
		} else {
			next.LastError = qerr.Error()
		}
	} else {
		res.Balance = &balance
		next.History = trim(append(append([]Sample(nil), st.History...), Sample{At: now.Unix(), Balance: balance}), now)
		level := a.level(acct, st.Level, balance, next.History, &res)
		next.Level, next.LastError = level, ""
		res.Level = level
		switch {
		case level == LevelOK && st.Alerted != "":
			announce = Recovered
		case level != LevelOK && severity(level) > severity(st.Alerted):
			announce = level // worse than what was told (or nothing was)
		case level != LevelOK && now.Sub(time.Unix(st.LastNotified, 0)) >= a.cfg.Cooldown:
			announce = level // still low after the cooldown: say it again
		case st.LastError != "":
			announce = Resolved // told it failed; the level is no news
		}
	}
	if announce != "" && len(a.channels) == 0 {
		// Nobody to tell: what would have been announced stays news for
		// the run that has a channel.
		announce = ""
		next.LastError = st.LastError
	}
	if announce != "" {
		next.LastNotified = now.Unix()
		switch announce {
		case LevelLow, LevelEmpty:
			next.Alerted = announce
		case Recovered:
			next.Alerted = ""
		case LevelError:
			next.LastError = qerr.Error()
		}
	}
	b, _ := json.Marshal(next)
	if !a.claim(ctx, key, raw, b, acct.label(), sum) || announce == "" {
		return res
	}
	res.Notified = announce
	if !a.deliver(ctx, a.message(acct, announce, res), acct.label()+" "+announce, sum) {
		// Nobody heard it: take the announcement back so the next run tries
		// again instead of waiting out the cooldown.
		res.Notified = ""
		a.takeBack(ctx, key, st, next, acct.label(), sum)
	}
	return res
}

// takeBack undoes an announcement no channel took: the announcement's
// fields go back to what they were before this run, on whatever state is
// stored now (an overlapping run may have added its sample since; a bare
// compare-and-swap of this run's bytes then failed, and the alert was lost
// for the cooldown). A state that has announced something else since is left
// alone. Its own few seconds: the deliveries may have used the run's
// deadline.
func (a *Alerter) takeBack(ctx context.Context, key string, before, claimed State, label string, sum *Summary) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	fail := func(err error) {
		sum.Failures = append(sum.Failures, label+": alert state not rolled back: "+err.Error())
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
		if !ok || cur.Alerted != claimed.Alerted || cur.LastNotified != claimed.LastNotified || cur.LastError != claimed.LastError {
			return // another run has announced since: its state stands
		}
		cur.Alerted, cur.LastNotified, cur.LastError = before.Alerted, before.LastNotified, before.LastError
		ub, _ := json.Marshal(cur)
		won, err := a.kv.CompareAndSwap(uctx, key, raw, ub, stateTTL)
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
		recoverAt += a.cfg.Band(acct.Threshold)
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
		zh = fmt.Sprintf("%s 余额查询失败：%s", acct.label(), r.Error)
		en = fmt.Sprintf("%s cannot be checked: %s", acct.label(), r.Error)
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
func ParseWatch(s string) (accounts []Account, auto bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "auto" {
		return nil, true, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields() // a misspelt "treshold" must not silently become 0
	if err := dec.Decode(&accounts); err != nil {
		return nil, false, fmt.Errorf(`QUOTA_ALERT_WATCH: expected "auto" or a JSON list of {deliveryId, bizId, threshold, name?}: %w`, err)
	}
	if dec.More() {
		// "[...] [...]" or "[...] garbage": the rest would go unwatched.
		return nil, false, fmt.Errorf(`QUOTA_ALERT_WATCH: expected one JSON list; something follows it at byte %d`, dec.InputOffset())
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
