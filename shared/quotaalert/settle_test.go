package quotaalert_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/notify"
	"github.com/cloudcall/cloudcall/shared/quotaalert"
	"github.com/cloudcall/cloudcall/shared/store"
)

// Run A announces low, run B (the balance fell to 0 meanwhile) announces
// empty over A's claim, and no channel takes either. B's undo put back
// what it had read, A's unheard "low", which then held every low alert for
// the cooldown (outside tester). Each claim now keeps the last heard state
// underneath, so both undone leave nothing unheard behind.
func TestTwoUnheardOverlappingAlertsLeaveNothingBehind(t *testing.T) {
	rc, srv := newReceiver(t)
	src := &fakeSource{balances: map[string]int64{"YTO/xyz": 50}}
	clk := start()
	kv := store.NewMemory(store.MemoryOptions{})
	cfg := quotaalert.Config{Accounts: []quotaalert.Account{yto}, Cooldown: 6 * time.Hour}
	var bSum *quotaalert.Summary
	a := &raceOnSend{other: func() {
		src.set("YTO/xyz", 0)
		var err error
		bSum, err = quotaalert.New(cfg, src, kv, []notify.Channel{&raceOnSend{other: func() {}}}, clk.now).Run(context.Background())
		require.NoError(t, err)
	}}
	aSum, err := quotaalert.New(cfg, src, kv, []notify.Channel{a}, clk.now).Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, "", aSum.Accounts[0].Notified)
	require.Equal(t, "", bSum.Accounts[0].Notified, "B announced empty, unheard")

	clk.advance(time.Hour) // well within the cooldown
	src.set("YTO/xyz", 50)
	sum, err := quotaalert.New(cfg, src, kv, []notify.Channel{hook(srv)}, clk.now).Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, "low", sum.Accounts[0].Notified, "nothing was heard, so low is news: %v", sum.Failures)
	require.Equal(t, []string{"low"}, names(rc.take()))
}

// A run that claimed an alert and died before confirming or taking it back
// (killed mid-delivery) left it looking heard: silent for the cooldown.
// After PendingGrace an unconfirmed claim counts as unheard.
func TestAClaimWhoseRunDiedIsAnnouncedAgain(t *testing.T) {
	rc, srv := newReceiver(t)
	src := &fakeSource{balances: map[string]int64{"YTO/xyz": 50}}
	clk := start()
	kv := store.NewMemory(store.MemoryOptions{})
	cfg := quotaalert.Config{Accounts: []quotaalert.Account{yto}, Cooldown: 6 * time.Hour, PendingGrace: 15 * time.Minute}
	// The claim as a dying run left it.
	st := quotaalert.State{Level: "low", Pending: &quotaalert.Told{}, Claimed: clk.now().UnixMilli()}
	st.Alerted, st.LastNotified = "low", clk.now().Unix()
	b, _ := json.Marshal(st)
	require.NoError(t, kv.Set(context.Background(), "alert:quota:YTO/xyz", b, time.Hour))

	clk.advance(5 * time.Minute) // its run may still be delivering
	sum, err := quotaalert.New(cfg, src, kv, []notify.Channel{hook(srv)}, clk.now).Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, "", sum.Accounts[0].Notified, "not twice while it may be in flight")
	clk.advance(15 * time.Minute)
	sum, err = quotaalert.New(cfg, src, kv, []notify.Channel{hook(srv)}, clk.now).Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, "low", sum.Accounts[0].Notified)
	require.Equal(t, []string{"low"}, names(rc.take()))
	clk.advance(time.Hour)
	sum, err = quotaalert.New(cfg, src, kv, []notify.Channel{hook(srv)}, clk.now).Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, "", sum.Accounts[0].Notified, "confirmed: not again within the cooldown")
}

// blockingChannel hangs until its context ends; good is told at once.
type blockingChannel struct{ calls atomic.Int32 }

func (b *blockingChannel) Name() string { return "hung" }
func (b *blockingChannel) Send(ctx context.Context, _ notify.Message) error {
	b.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

type countingChannel struct {
	mu   sync.Mutex
	seen []string
}

func (c *countingChannel) Name() string { return "good" }
func (c *countingChannel) Send(_ context.Context, m notify.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, m.Data["bizId"].(string))
	return nil
}

// A hung channel held its account's check slot while it was tried: with 20
// low accounts and 4 slots, 8 were checked in the run's 60 s and 12 left
// for later runs, hours late (outside tester). Deliveries no longer hold
// slots: every account is checked and the working channel hears each.
func TestAHungChannelHoldsNoCheckSlot(t *testing.T) {
	var accts []quotaalert.Account
	balances := map[string]int64{}
	for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
		accts = append(accts, quotaalert.Account{DeliveryID: "YTO", BizID: id, Threshold: 100})
		balances["YTO/"+id] = 10
	}
	hung, good := &blockingChannel{}, &countingChannel{}
	al := quotaalert.New(quotaalert.Config{Accounts: accts, Parallel: 1}, &fakeSource{balances: balances}, store.NewMemory(store.MemoryOptions{}),
		[]notify.Channel{hung, good}, start().now)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	sum, err := al.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 6, sum.Checked, "%v", sum.Failures)
	require.Equal(t, 6, sum.NotificationsSent)
	require.ElementsMatch(t, []string{"a", "b", "c", "d", "e", "f"}, good.seen)
	require.Equal(t, int32(6), hung.calls.Load())
}

// With QUOTA_ALERT_WATCH=auto, a failing account list was marked as said
// by a run with no channel, and lost when its only channel hung (the undo
// ran on the expired deadline): in both cases nothing was ever said, and
// nothing was watched.
func TestAFailingAccountListIsSaidDespiteNoChannelOrAHungOne(t *testing.T) {
	var failing atomic.Pointer[error]
	bad := errors.New("getAllAccount: wechat errcode 40013: invalid appid")
	failing.Store(&bad)
	src := failingDiscovery{&fakeSource{balances: map[string]int64{}, errs: map[string]error{}}, &failing}
	clk := start()
	kv := store.NewMemory(store.MemoryOptions{})
	_, err := quotaalert.New(quotaalert.Config{Auto: true}, src, kv, nil, clk.now).Run(context.Background())
	require.NoError(t, err)
	hung := &blockingChannel{}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	sum, err := quotaalert.New(quotaalert.Config{Auto: true}, src, kv, []notify.Channel{hung}, clk.now).Run(ctx)
	cancel()
	require.NoError(t, err)
	require.Zero(t, sum.NotificationsSent)
	require.Equal(t, int32(1), hung.calls.Load(), "the run without a channel left it to this one")
	var sent atomic.Int64
	sum, err = quotaalert.New(quotaalert.Config{Auto: true}, src, kv, []notify.Channel{counted{&sent}}, clk.now).Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(1), sent.Load(), "the hung channel's run took it back: %v", sum.Failures)
}

// threshold + band wrapped past int64: a huge threshold flapped low,
// recovered, low... on every run.
func TestAHugeThresholdDoesNotFlap(t *testing.T) {
	rc, srv := newReceiver(t)
	acct := quotaalert.Account{DeliveryID: "YTO", BizID: "xyz", Threshold: 1<<63 - 1}
	src := &fakeSource{balances: map[string]int64{"YTO/xyz": 55}}
	clk := start()
	al := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{acct}, Cooldown: 24 * time.Hour}, src, store.NewMemory(store.MemoryOptions{}), []notify.Channel{hook(srv)}, clk.now)
	var levels []string
	for range 4 {
		sum, err := al.Run(context.Background())
		require.NoError(t, err)
		levels = append(levels, sum.Accounts[0].Level)
		clk.advance(time.Hour)
	}
	require.Equal(t, []string{"low", "low", "low", "low"}, levels)
	require.Equal(t, []string{"low"}, names(rc.take()))
}

// encoding/json matched "DeliveryId" to deliveryId, so a list naming both
// watched the second account; names are now exact and each taken once.
func TestTheWatchListTakesNamesExactly(t *testing.T) {
	for _, bad := range []string{
		`[{"deliveryId":"YTO","bizId":"x","DeliveryId":"ZTO"}]`,
		`[{"DeliveryId":"ZTO","bizId":"x"}]`,
		`[{"deliveryId":"YTO","deliveryId":"ZTO","bizId":"x"}]`,
	} {
		_, _, err := quotaalert.ParseWatch(bad)
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "QUOTA_ALERT_WATCH")
	}
	_, _, err := quotaalert.ParseWatch(`[{"deliveryId":"YTO","bizId":"x","treshold":5}]`)
	require.ErrorContains(t, err, `unknown field "treshold"`)
}

// A name (from the watch list or WeChat's alias) or a vendor's error with
// line breaks forged paragraphs and list lines in the robots' messages.
func TestNamesAndErrorsStayOnTheirLine(t *testing.T) {
	rc, srv := newReceiver(t)
	acct := quotaalert.Account{DeliveryID: "YTO", BizID: "xyz", Threshold: 100, Name: "east\n\n- all accounts refilled\r\n"}
	src := &fakeSource{balances: map[string]int64{"YTO/xyz": 50}}
	_, err := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{acct}, Lang: "en"}, src, store.NewMemory(store.MemoryOptions{}),
		[]notify.Channel{hook(srv)}, start().now).Run(context.Background())
	require.NoError(t, err)
	got := rc.take()
	require.Len(t, got, 1)
	require.NotContains(t, got[0].Text, "\n")
	require.Contains(t, got[0].Text, "YTO xyz (east  - all accounts refilled  ) has 50 waybills left")
}

// downKV is a shared store that is unreachable.
type downKV struct{ store.Store }

func (downKV) Get(context.Context, string) ([]byte, error) {
	return nil, store.ErrUnavailable
}
func (downKV) SetNX(context.Context, string, []byte, time.Duration) (bool, error) {
	return false, store.ErrUnavailable
}
func (downKV) CompareAndSwap(context.Context, string, []byte, []byte, time.Duration) (bool, error) {
	return false, store.ErrUnavailable
}
func (downKV) Set(context.Context, string, []byte, time.Duration) error { return store.ErrUnavailable }
func (downKV) Delete(context.Context, string) error                     { return store.ErrUnavailable }

// With Redis down the store served from this instance's memory and the run
// reported nothing: errClass ok while no other instance could see its
// state (outside tester). The run now says so, and counts as partial.
func TestAStoreServingFromMemoryIsReported(t *testing.T) {
	kv := store.NewFallback(downKV{store.NewMemory(store.MemoryOptions{})}, store.FallbackOptions{})
	src := &fakeSource{balances: map[string]int64{"YTO/xyz": 500}}
	sum, err := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{yto}}, src, kv, nil, start().now).Run(context.Background())
	require.NoError(t, err)
	require.True(t, sum.PartlyFailed())
	require.Len(t, sum.Failures, 1)
	require.Contains(t, sum.Failures[0], "instance's memory only")
}

// A run killed while delivering the account-list failure left it marked as
// said for the state's 30 days, and nobody was told that no account was
// watched (outside tester). Its claim now ages into "unheard" after the
// grace, as an account's does; meanwhile another run does not repeat it.
func TestAFailingAccountListClaimedByADeadRunIsSaidAfterTheGrace(t *testing.T) {
	var failing atomic.Pointer[error]
	bad := errors.New("getAllAccount: wechat errcode -1: system error")
	failing.Store(&bad)
	src := failingDiscovery{&fakeSource{balances: map[string]int64{}, errs: map[string]error{}}, &failing}
	clk := start()
	kv := store.NewMemory(store.MemoryOptions{})
	cfg := quotaalert.Config{Auto: true, PendingGrace: 15 * time.Minute}
	hung := &blockingChannel{}
	dead, kill := context.WithCancel(context.Background())
	defer kill()
	go func() { _, _ = quotaalert.New(cfg, src, kv, []notify.Channel{hung}, clk.now).Run(dead) }() // never confirms: "killed"
	require.Eventually(t, func() bool { return hung.calls.Load() == 1 }, 5*time.Second, time.Millisecond)

	var sent atomic.Int64
	_, err := quotaalert.New(cfg, src, kv, []notify.Channel{counted{&sent}}, clk.now).Run(context.Background())
	require.NoError(t, err)
	require.Zero(t, sent.Load(), "being delivered by the other run")
	clk.advance(16 * time.Minute)
	_, err = quotaalert.New(cfg, src, kv, []notify.Channel{counted{&sent}}, clk.now).Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(1), sent.Load(), "the dead run's claim is unheard: said now")
	_, err = quotaalert.New(cfg, src, kv, []notify.Channel{counted{&sent}}, clk.now).Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(1), sent.Load(), "and once")
}

// A shared store back empty (FLUSHDB, a restart without persistence) lost
// the alert state silently: the low account's alert went out again unsaid,
// and its recovery in the meantime was never told. The run now says so in
// its failures and sends every account's level once.
func TestAnEmptiedStoreIsSaidAndItsLevelsSent(t *testing.T) {
	rc, srv := newReceiver(t)
	clk := start()
	src := &fakeSource{balances: map[string]int64{"YTO/xyz": 50}}
	kv := store.NewMemory(store.MemoryOptions{})
	cfg := quotaalert.Config{Accounts: []quotaalert.Account{yto}, Fenced: true}
	al := quotaalert.New(cfg, src, kv, []notify.Channel{hook(srv)}, clk.now)
	sum, err := al.Run(context.Background()) // the store's first run
	require.NoError(t, err)
	require.Empty(t, sum.Failures, "a first run is not a fault: every new deployment has one")
	require.Equal(t, 2, sum.NotificationsSent)
	require.ElementsMatch(t, []string{"low", "reset"}, names(rc.take()))

	clk.advance(time.Hour)
	sum, err = al.Run(context.Background())
	require.NoError(t, err)
	require.Empty(t, sum.Failures)
	require.Equal(t, 0, sum.NotificationsSent)

	// The store is flushed, and the account is topped up meanwhile.
	require.NoError(t, kv.Delete(context.Background(), "alert:quota:YTO/xyz"))
	require.NoError(t, kv.Delete(context.Background(), "alert:quota:fence"))
	src.set("YTO/xyz", 500)
	clk.advance(time.Hour)
	sum, err = al.Run(context.Background())
	require.NoError(t, err)
	require.Empty(t, sum.Failures)
	require.Equal(t, 1, sum.NotificationsSent)
	got := rc.take()
	require.Equal(t, []string{"reset"}, names(got))
	require.Equal(t, "电子面单余额告警状态从头开始 / Waybill alert state starts afresh", got[0].Title)
	require.Contains(t, got[0].Text, "YTO xyz (main): ok, 500 waybills (threshold 100)")

	clk.advance(time.Hour)
	sum, err = al.Run(context.Background())
	require.NoError(t, err)
	require.Empty(t, sum.Failures, "said once")
	require.Equal(t, 0, sum.NotificationsSent)
}

// A reset no channel took is said again by the next run, not lost.
func TestAnUnheardResetIsSaidAgain(t *testing.T) {
	rc, srv := newReceiver(t)
	rc.status = 500
	clk := start()
	src := &fakeSource{balances: map[string]int64{"YTO/xyz": 500}}
	kv := store.NewMemory(store.MemoryOptions{})
	al := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{yto}, Fenced: true}, src, kv, []notify.Channel{hook(srv)}, clk.now)
	sum, err := al.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"notify webhook (alert state reset): webhook: HTTP 500 (after 2 attempts)"}, sum.Failures, "a reset nobody heard is a failure")
	require.Equal(t, 0, sum.NotificationsSent)

	rc.mu.Lock()
	rc.status = 204
	rc.mu.Unlock()
	clk.advance(time.Hour)
	sum, err = al.Run(context.Background())
	require.NoError(t, err)
	require.Empty(t, sum.Failures)
	require.Equal(t, 1, sum.NotificationsSent)
	require.Equal(t, []string{"reset"}, names(rc.take()))
}

// QUOTA_ALERT_WATCH's errors say where, in the value as written: a type
// error names the entry and field (it named quotaalert.Account and int64),
// a syntax error its position, an object that a list is expected.
func TestWatchListErrorsSayWhere(t *testing.T) {
	const want = `QUOTA_ALERT_WATCH: expected "auto" or a JSON list of {deliveryId, bizId, threshold?, name?}`
	ok := `{"deliveryId":"YTO","bizId":"a"},{"deliveryId":"ZTO","bizId":"b"},`
	for in, msg := range map[string]string{
		`[` + ok + `{"deliveryId":"YTO","bizId":"c","threshold":"100"}]`:                "QUOTA_ALERT_WATCH[2].threshold: expected a number, got a string",
		`[` + ok + `{"deliveryId":"YTO","bizId":"c","threshold":1.5}]`:                  "QUOTA_ALERT_WATCH[2].threshold: expected a whole number of waybills from 0 to 9223372036854775807, got 1.5",
		`[{"deliveryId":7,"bizId":"c"}]`:                                                "QUOTA_ALERT_WATCH[0].deliveryId: expected a string, got a number",
		`[{"deliveryId":"YTO","bizId":"c","name":["x"]}]`:                               "QUOTA_ALERT_WATCH[0].name: expected a string, got a list",
		`[{"deliveryId":"YTO","bizId":"c"},"YTO"]`:                                      "QUOTA_ALERT_WATCH[1]: expected an object {deliveryId, bizId, threshold?, name?}, got a string",
		`[{"deliveryId":"YTO","deliveryId":"ZTO","bizId":"x"}]`:                         "QUOTA_ALERT_WATCH[0].deliveryId: given twice (each field once)",
		`[{"deliveryId":"YTO","bizId":"a","treshold":5}]`:                               `QUOTA_ALERT_WATCH[0]: unknown field "treshold" (the fields are deliveryId, bizId, threshold and name, spelt exactly)`,
		`{"deliveryId":"YTO","bizId":"a"}`:                                              want + ", got a JSON object: a JSON list is expected, even of one account ([{...}])",
		`"YTO"`:                                                                         want + ", got a string",
		"[\n  {\"deliveryId\":\"YTO\",\"bizId\":\"a\"},\n  {\"deliveryId\" \"ZTO\"}\n]": want + "; invalid JSON at byte 54 (line 3, column 17): invalid character '\"' after object key",
		`[{"deliveryId":"YTO","bizId":"a"}`:                                             want + "; invalid JSON at byte 33 (line 1, column 34): unexpected EOF",
		// Decoder.More() took these for the end of the input.
		`[{"deliveryId":"YTO","bizId":"a"}]]`:  `QUOTA_ALERT_WATCH: expected one JSON list; something follows it at byte 34 (line 1, column 35): "]" (remove it: what follows would go unwatched)`,
		`[{"deliveryId":"YTO","bizId":"a"}]}`:  `QUOTA_ALERT_WATCH: expected one JSON list; something follows it at byte 34 (line 1, column 35): "}" (remove it: what follows would go unwatched)`,
		`[{"deliveryId":"YTO","bizId":"a"}] ,`: `QUOTA_ALERT_WATCH: expected one JSON list; something follows it at byte 35 (line 1, column 36): "," (remove it: what follows would go unwatched)`,
	} {
		_, _, err := quotaalert.ParseWatch(in)
		require.EqualError(t, err, msg, in)
		require.NotContains(t, err.Error(), "quotaalert.", in)
		require.NotContains(t, err.Error(), "int64", in)
	}
	accts, _, err := quotaalert.ParseWatch(" [{\"deliveryId\":\"YTO\",\"bizId\":\"a\"}] \n\t")
	require.NoError(t, err, "whitespace after the list is no text")
	require.Len(t, accts, 1)
}

// The account list failing was said, and its working again was not: the
// channels' last word stayed the failure. It is now said once, as resolved,
// and said by the next run when no channel took it.
func TestAnAccountListWorkingAgainIsSaidOnce(t *testing.T) {
	rc, srv := newReceiver(t)
	var failing atomic.Pointer[error]
	bad := errors.New("getAllDelivery: wechat token endpoint: errcode 40125: invalid appsecret")
	failing.Store(&bad)
	src := failingDiscovery{&fakeSource{balances: map[string]int64{"YTO/xyz": 500}}, &failing}
	clk := start()
	al := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{yto}, Auto: true, Lang: "en"}, src, store.NewMemory(store.MemoryOptions{}), []notify.Channel{hook(srv)}, clk.now)
	run := func() *quotaalert.Summary {
		clk.advance(time.Hour)
		sum, err := al.Run(context.Background())
		require.NoError(t, err)
		return sum
	}
	require.Equal(t, 1, run().NotificationsSent)
	require.Equal(t, []string{"error"}, names(rc.take()))

	failing.Store(nil)
	rc.mu.Lock()
	rc.status = 500
	rc.mu.Unlock()
	sum := run()
	require.Equal(t, 0, sum.NotificationsSent)
	require.Equal(t, []string{"notify webhook (account discovery resolved): webhook: HTTP 500 (after 2 attempts)"}, sum.Failures)

	rc.mu.Lock()
	rc.status = 204
	rc.mu.Unlock()
	sum = run()
	require.Empty(t, sum.Failures)
	require.Equal(t, 1, sum.NotificationsSent)
	got := rc.take()
	require.Equal(t, []string{"resolved"}, names(got))
	require.Equal(t, "Waybill accounts can be listed again", got[0].Title)

	require.Equal(t, 0, run().NotificationsSent, "said once")
	require.Empty(t, rc.take())
}
