package quotaalert_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/notify"
	"github.com/cloudcall/cloudcall/shared/quotaalert"
	"github.com/cloudcall/cloudcall/shared/store"
)

// A balance wavering between 0 and 1 (threshold 100) alerted on every run:
// empty, low, empty, low... Only a level worse than the one announced is
// news before the cooldown.
func TestAWaveringBalanceIsAnnouncedOnce(t *testing.T) {
	rc, srv := newReceiver(t)
	src := &fakeSource{balances: map[string]int64{}}
	clk := start()
	al := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{yto}, Cooldown: 6 * time.Hour},
		src, store.NewMemory(store.MemoryOptions{}), []notify.Channel{hook(srv)}, clk.now)
	var got, levels []string
	for h, b := range []int64{0, 1, 0, 1, 0, 1, 1, 0} { // hourly
		src.set("YTO/xyz", b)
		sum, err := al.Run(context.Background())
		require.NoError(t, err)
		levels = append(levels, sum.Accounts[0].Level)
		for _, e := range rc.take() {
			got = append(got, e.Event+"@"+time.Duration(h*int(time.Hour)).String())
		}
		clk.advance(time.Hour)
	}
	require.Equal(t, []string{"empty", "low", "empty", "low", "empty", "low", "low", "empty"}, levels)
	// At 6 h the cooldown is over: the current level is said again (low),
	// and empty after it is worse than that.
	require.Equal(t, []string{"empty@0s", "low@6h0m0s", "empty@7h0m0s"}, got)
}

// Runs with no channel configured marked their alerts as sent: a channel
// added later heard nothing until the cooldown or a change of level.
func TestARunWithoutChannelsLeavesTheAlertForOneWithChannels(t *testing.T) {
	rc, srv := newReceiver(t)
	bad := quotaalert.Account{DeliveryID: "YTO", BizID: "wrong-password", Threshold: 100}
	src := &fakeSource{balances: map[string]int64{"YTO/xyz": 50}, errs: map[string]error{"YTO/wrong-password": errors.New("errcode 9300531")}}
	clk := start()
	kv := store.NewMemory(store.MemoryOptions{})
	cfg := quotaalert.Config{Accounts: []quotaalert.Account{bad, yto}, Cooldown: 6 * time.Hour}
	sum, err := quotaalert.New(cfg, src, kv, nil, clk.now).Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, map[string]int{"low": 1, "error": 1}, sum.Levels)
	require.Zero(t, sum.NotificationsSent)
	require.Equal(t, []string{"", ""}, []string{sum.Accounts[0].Notified, sum.Accounts[1].Notified})

	clk.advance(time.Hour) // well within the cooldown
	sum, err = quotaalert.New(cfg, src, kv, []notify.Channel{hook(srv)}, clk.now).Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, sum.NotificationsSent)
	require.ElementsMatch(t, []string{"error", "low"}, names(rc.take()))
}

// An account whose failing check was announced said nothing when it could
// be checked again at the same level: the group was left believing it
// broken.
func TestAWorkingCheckAfterAnAnnouncedFailureIsAnnounced(t *testing.T) {
	rc, srv := newReceiver(t)
	src := &fakeSource{balances: map[string]int64{"YTO/xyz": 500}, errs: map[string]error{}}
	clk := start()
	al := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{yto}, Lang: "en"},
		src, store.NewMemory(store.MemoryOptions{}), []notify.Channel{hook(srv)}, clk.now)
	run := func() (string, []event) {
		sum, err := al.Run(context.Background())
		require.NoError(t, err)
		clk.advance(time.Hour)
		return sum.Accounts[0].Notified, rc.take()
	}
	n, _ := run() // ok
	require.Empty(t, n)
	src.mu.Lock()
	src.errs["YTO/xyz"] = errors.New("errcode 9300531")
	src.mu.Unlock()
	n, _ = run()
	require.Equal(t, "error", n)
	n, _ = run()
	require.Empty(t, n, "a failure is said once")
	src.mu.Lock()
	delete(src.errs, "YTO/xyz")
	src.mu.Unlock()
	n, got := run()
	require.Equal(t, "resolved", n)
	require.Len(t, got, 1)
	require.Equal(t, "resolved", got[0].Event)
	require.Equal(t, "Waybill balance check working again", got[0].Title)
	require.Equal(t, "YTO xyz (main) can be checked again: 500 waybills left (threshold 100).", got[0].Text)
	n, _ = run()
	require.Empty(t, n, "and once")

	// Failing again within the cooldown of the resolution: listed in the
	// summary, not announced (a check failing every other run alerted
	// every run: error, resolved, error...).
	src.mu.Lock()
	src.errs["YTO/xyz"] = errors.New("errcode 9300531")
	src.mu.Unlock()
	n, _ = run()
	require.Empty(t, n)
	src.mu.Lock()
	delete(src.errs, "YTO/xyz")
	src.mu.Unlock()
	n, _ = run()
	require.Empty(t, n, "nothing to resolve: the failure was not announced")

	// After the cooldown a failure is news again; then working again at a
	// level that is news itself: that level is what is said.
	clk.advance(6 * time.Hour)
	src.mu.Lock()
	src.errs["YTO/xyz"] = errors.New("errcode 9300531")
	src.mu.Unlock()
	n, _ = run()
	require.Equal(t, "error", n)
	src.mu.Lock()
	delete(src.errs, "YTO/xyz")
	src.balances["YTO/xyz"] = 0
	src.mu.Unlock()
	n, got = run()
	require.Equal(t, "empty", n)
	require.Equal(t, []string{"empty"}, names(got))
}

// raceOnSend runs another whole run while this channel is sending, then
// fails: two overlapping runs with every channel down.
type raceOnSend struct {
	once  sync.Once
	other func()
}

func (r *raceOnSend) Name() string { return "down" }
func (r *raceOnSend) Send(context.Context, notify.Message) error {
	r.once.Do(r.other)
	return errors.New("down: HTTP 503")
}

// Run A announces and no channel takes it; meanwhile run B, seeing A's
// claim, stays quiet and adds its sample. A's undo compared its own bytes,
// found B's, failed in silence, and the alert was lost for the cooldown.
func TestAnUnheardAlertIsTakenBackOverAnOverlappingRun(t *testing.T) {
	rc, srv := newReceiver(t)
	src := &fakeSource{balances: map[string]int64{"YTO/xyz": 50}}
	clk := start()
	kv := store.NewMemory(store.MemoryOptions{})
	cfg := quotaalert.Config{Accounts: []quotaalert.Account{yto}, Cooldown: 6 * time.Hour}
	var bSum *quotaalert.Summary
	down := &raceOnSend{other: func() {
		var err error
		bSum, err = quotaalert.New(cfg, src, kv, []notify.Channel{&raceOnSend{other: func() {}}}, clk.now).Run(context.Background())
		require.NoError(t, err)
	}}
	aSum, err := quotaalert.New(cfg, src, kv, []notify.Channel{down}, clk.now).Run(context.Background())
	require.NoError(t, err)
	require.Zero(t, aSum.NotificationsSent)
	require.Equal(t, "", bSum.Accounts[0].Notified, "B saw A's claim")
	for _, f := range aSum.Failures {
		require.NotContains(t, f, "not rolled back")
	}
	var st quotaalert.State
	raw, err := kv.Get(context.Background(), "alert:quota:YTO/xyz")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &st))
	require.Len(t, st.History, 2, "B's sample is kept")
	require.Equal(t, "", st.Alerted)

	clk.advance(time.Hour) // within the cooldown
	sum, err := quotaalert.New(cfg, src, kv, []notify.Channel{hook(srv)}, clk.now).Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, sum.NotificationsSent)
	require.Equal(t, []string{"low"}, names(rc.take()))
}

// slowSource answers at once, except for the accounts in hang, which wait
// for their context; it records the order of the queries.
type slowSource struct {
	mu    sync.Mutex
	hang  map[string]bool
	order []string
}

func (s *slowSource) Quota(ctx context.Context, d, b string) (int64, error) {
	s.mu.Lock()
	s.order = append(s.order, d+"/"+b)
	hang := s.hang[d+"/"+b]
	s.mu.Unlock()
	if hang {
		<-ctx.Done()
		return 0, errors.New("wechat: getQuota: " + ctx.Err().Error())
	}
	return 500, nil
}

func (s *slowSource) Discover(context.Context) ([]quotaalert.Account, error) { return nil, nil }

// A run that outgrew its deadline left the last accounts unchecked, each
// announced as "cannot be checked" and blamed on WeChat. Now the checks stop
// in time for the alerts, the accounts left are "unchecked" (no alert, no
// state change), and the next run starts with them.
func TestARunOutOfTimeLeavesAccountsForTheNextRun(t *testing.T) {
	rc, srv := newReceiver(t)
	accts := []quotaalert.Account{{DeliveryID: "A", BizID: "1"}, {DeliveryID: "B", BizID: "1"}, {DeliveryID: "C", BizID: "1"}, {DeliveryID: "D", BizID: "1"}}
	src := &slowSource{hang: map[string]bool{"B/1": true}}
	clk := start()
	kv := store.NewMemory(store.MemoryOptions{})
	al := quotaalert.New(quotaalert.Config{Accounts: accts, DefaultThreshold: 100, Parallel: 1}, src, kv, []notify.Channel{hook(srv)}, clk.now)

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	sum, err := al.Run(ctx)
	cancel()
	require.NoError(t, err)
	require.Equal(t, 1, sum.Checked)
	require.Equal(t, map[string]int{"ok": 1, "unchecked": 3}, sum.Levels)
	require.Equal(t, []string{"ok", "unchecked", "unchecked", "unchecked"}, []string{sum.Accounts[0].Level, sum.Accounts[1].Level, sum.Accounts[2].Level, sum.Accounts[3].Level})
	require.Len(t, sum.Failures, 3)
	for _, f := range sum.Failures {
		require.Contains(t, f, "not checked: the run's time ran out")
		require.NotContains(t, f, "wechat")
	}
	require.True(t, sum.PartlyFailed())
	require.Empty(t, rc.take(), "nothing is announced for the run's own lack of time")
	require.Equal(t, []string{"A/1", "B/1"}, src.order)
	_, err = kv.Get(context.Background(), "alert:quota:B/1")
	require.ErrorIs(t, err, store.ErrNotFound, "no state for an account not checked")

	src.mu.Lock()
	src.hang, src.order = nil, nil
	src.mu.Unlock()
	clk.advance(time.Hour)
	sum, err = al.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, 4, sum.Checked)
	require.False(t, sum.PartlyFailed())
	require.Equal(t, []string{"B/1", "C/1", "D/1", "A/1"}, src.order, "the accounts not reached go first")
	require.Equal(t, "A", sum.Accounts[0].DeliveryID, "the summary keeps its order")
	_, err = kv.Get(context.Background(), "alert:quota:resume")
	require.ErrorIs(t, err, store.ErrNotFound, "a run that reached every account starts from the top next time")
}

// The generic webhook's body for a failing account list had only some of
// the documented fields; every alert now carries all of them.
func TestEveryWebhookBodyHasTheDocumentedFields(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		mu.Lock()
		bodies = append(bodies, m)
		mu.Unlock()
		w.WriteHeader(204)
	}))
	t.Cleanup(srv.Close)
	var failing atomic.Pointer[error]
	bad := errors.New("wechat errcode 40125: invalid appsecret")
	failing.Store(&bad)
	src := failingDiscovery{&fakeSource{balances: map[string]int64{"YTO/xyz": 0}, errs: map[string]error{"YTO/bad": errors.New("errcode 9300531")}}, &failing}
	accts := []quotaalert.Account{yto, {DeliveryID: "YTO", BizID: "bad", Threshold: 100}}
	al := quotaalert.New(quotaalert.Config{Accounts: accts, Auto: true}, src, store.NewMemory(store.MemoryOptions{}), []notify.Channel{hook(srv)}, start().now)
	_, err := al.Run(context.Background())
	require.NoError(t, err)
	require.Len(t, bodies, 3) // the account list, the failing account, the empty one
	documented := []string{"title", "text", "event", "deliveryId", "bizId", "name", "balance", "threshold", "level", "hoursLeft", "error"}
	for _, b := range bodies {
		for _, k := range documented {
			require.Contains(t, b, k, "%v", b)
		}
		require.Len(t, b, len(documented), "%v", b)
	}
}

// Under an hour left, the message said "about 0 hours".
func TestUnderAnHourLeftIsSaidSo(t *testing.T) {
	rc, srv := newReceiver(t)
	src := &fakeSource{balances: map[string]int64{}}
	clk := start()
	al := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{yto}, Lang: "both"},
		src, store.NewMemory(store.MemoryOptions{}), []notify.Channel{hook(srv)}, clk.now)
	for _, b := range []int64{500, 30} { // 470 an hour: 30 left is under 4 minutes
		src.set("YTO/xyz", b)
		_, err := al.Run(context.Background())
		require.NoError(t, err)
		clk.advance(time.Hour)
	}
	got := rc.take()
	require.Len(t, got, 1)
	require.Equal(t, "YTO xyz (main) 余额 30，阈值 100，按近期用量预计不到 1 小时就会用完。请尽快充值。\n"+
		"YTO xyz (main) has 30 waybills left (threshold 100); at the recent rate it runs out within the hour. Top up soon.", got[0].Text)
}

// A run's failures reach its invocation line (the reason), bounded: on FC
// and EventBridge the answer is thrown away, and an alarm on faults said
// that something failed but nowhere what (outside tester, 85 runs).
func TestARunSaysWhatFailed(t *testing.T) {
	s := &quotaalert.Summary{Failures: []string{"YTO/wrong-password: WeChat errcode 9300531", "notify webhook (…): webhook: HTTP 503 (after 3 attempts)"}}
	require.Equal(t, "2 failure(s): YTO/wrong-password: WeChat errcode 9300531; notify webhook (…): webhook: HTTP 503 (after 3 attempts)", s.PartialReason())
	long := &quotaalert.Summary{Failures: []string{strings.Repeat("余额", 2000)}}
	r := long.PartialReason()
	require.LessOrEqual(t, len(r), quotaalert.MaxReason+len("…"))
	require.True(t, utf8.ValidString(r), "cut on a character boundary")
	require.True(t, strings.HasSuffix(r, "…"))
}

// A WeChat that hangs on getQuota is a failing check, announced once, not
// "unchecked" run after run: every cut query was left for the next run, and
// a hang silenced the alerts for as long as it lasted (outside tester: a
// one-account list, three runs, nothing sent, "watch fewer accounts"). A
// query cut sooner than SlowQuery is still the run's own lack of time.
func TestAHangingWeChatIsAFailingCheck(t *testing.T) {
	rc, srv := newReceiver(t)
	src := &slowSource{hang: map[string]bool{"ZTO/0": true}}
	clk := start()
	kv := store.NewMemory(store.MemoryOptions{})
	cfg := quotaalert.Config{Accounts: []quotaalert.Account{{DeliveryID: "ZTO", BizID: "0"}}, DefaultThreshold: 100,
		QueryTimeout: 300 * time.Millisecond, SlowQuery: 200 * time.Millisecond}
	al := quotaalert.New(cfg, src, kv, []notify.Channel{hook(srv)}, clk.now)
	for run := 0; run < 2; run++ {
		sum, err := al.Run(context.Background())
		require.NoError(t, err)
		require.Equal(t, map[string]int{"error": 1}, sum.Levels, "run %d", run)
		require.Len(t, sum.Failures, 1)
		require.Contains(t, sum.Failures[0], "WeChat did not answer getQuota within 300ms")
		clk.advance(time.Hour)
	}
	require.Equal(t, []string{"error"}, names(rc.take()), "announced once, not every run")

	// The run's own time running out before SlowQuery: unchecked, as before.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	fresh := quotaalert.New(cfg, src, store.NewMemory(store.MemoryOptions{}), []notify.Channel{hook(srv)}, clk.now)
	sum, err := fresh.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"unchecked": 1}, sum.Levels)
	require.Empty(t, rc.take())
}
