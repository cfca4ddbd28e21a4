package quotaalert_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/notify"
	"github.com/cloudcall/cloudcall/shared/quotaalert"
	"github.com/cloudcall/cloudcall/shared/store"
)

// A run killed while both channels hung left the low alert claimed and
// unconfirmed; the next run answered notificationsSent 0, the account low
// with nothing in notified and nothing in failures: for up to an hour no
// sign that the alert may never have reached anyone (outside tester). The
// run now says which alert awaits confirmation and when it counts as
// unheard, and its log line's reason counts the unconfirmed alerts.
func TestAnAlertClaimedByAnotherRunAndUnconfirmedIsReported(t *testing.T) {
	src := &fakeSource{balances: map[string]int64{"YTO/xyz": 50}}
	clk := start()
	kv := store.NewMemory(store.MemoryOptions{})
	cfg := quotaalert.Config{Accounts: []quotaalert.Account{yto}, Cooldown: 6 * time.Hour, PendingGrace: 15 * time.Minute}
	hung1, hung2 := &blockingChannel{}, &blockingChannel{}
	dead, kill := context.WithCancel(context.Background())
	defer kill()
	go func() { _, _ = quotaalert.New(cfg, src, kv, []notify.Channel{hung1, hung2}, clk.now).Run(dead) }() // never confirms: "killed"
	require.Eventually(t, func() bool { return hung1.calls.Load() == 1 && hung2.calls.Load() == 1 }, 5*time.Second, time.Millisecond)

	now := start()
	now.advance(5 * time.Minute)
	sum, err := quotaalert.New(cfg, src, kv, []notify.Channel{&countingChannel{}}, now.now).Run(context.Background())
	require.NoError(t, err)
	require.Zero(t, sum.NotificationsSent, "not twice while it may be in flight")
	acct := sum.Accounts[0]
	require.Equal(t, "low", acct.Level)
	require.Equal(t, "", acct.Notified)
	require.Equal(t, &quotaalert.PendingAlert{Alert: "low", ClaimedAt: "2026-03-01T08:00:00Z", UnheardAt: "2026-03-01T08:15:00Z"}, acct.Pending)
	require.True(t, sum.PartlyFailed(), "the fault alarm sees it")
	require.Equal(t, []string{"YTO xyz (main): its low alert, claimed by another run at 2026-03-01T08:00:00Z, is not confirmed " +
		"(that run is still delivering it, or died mid-delivery); unless confirmed, it counts as unheard at 2026-03-01T08:15:00Z " +
		"and the first run after that announces it again"}, sum.Failures)
	require.Contains(t, sum.PartialReason(), "1 failure(s), 1 alert(s) unconfirmed: YTO xyz (main): its low alert")

	now.advance(11 * time.Minute) // past the grace: unheard, announced, nothing pending
	sum, err = quotaalert.New(cfg, src, kv, []notify.Channel{&countingChannel{}}, now.now).Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, "low", sum.Accounts[0].Notified)
	require.Nil(t, sum.Accounts[0].Pending)
	require.Empty(t, sum.Failures)
}

// A failing check's claim is named as such, beside the check's own failure.
func TestAClaimedErrorAlertIsReportedAsError(t *testing.T) {
	clk := start()
	kv := store.NewMemory(store.MemoryOptions{})
	st := quotaalert.State{Level: "ok", Pending: &quotaalert.Told{}, Claimed: clk.now().UnixMilli()}
	st.LastError, st.ErrorNotified = "WeChat errcode 9300531", clk.now().Unix()
	b, _ := json.Marshal(st)
	require.NoError(t, kv.Set(context.Background(), "alert:quota:YTO/xyz", b, time.Hour))
	src := &fakeSource{balances: map[string]int64{}, errs: map[string]error{"YTO/xyz": errors.New("WeChat errcode 9300531")}}
	cfg := quotaalert.Config{Accounts: []quotaalert.Account{yto}, PendingGrace: 15 * time.Minute}

	clk.advance(time.Minute)
	sum, err := quotaalert.New(cfg, src, kv, []notify.Channel{&countingChannel{}}, clk.now).Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, "error", sum.Accounts[0].Level)
	require.Equal(t, &quotaalert.PendingAlert{Alert: "error", ClaimedAt: "2026-03-01T08:00:00Z", UnheardAt: "2026-03-01T08:15:00Z"}, sum.Accounts[0].Pending)
	require.Len(t, sum.Failures, 2, "the failing check and the unconfirmed alert: %v", sum.Failures)
	require.Contains(t, sum.PartialReason(), "2 failure(s), 1 alert(s) unconfirmed: ")
}
