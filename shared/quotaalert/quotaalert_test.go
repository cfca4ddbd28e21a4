package quotaalert_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/notify"
	"github.com/cloudcall/cloudcall/shared/quotaalert"
	"github.com/cloudcall/cloudcall/shared/store"
)

// fakeSource answers balances from a map; a missing account is an error.
type fakeSource struct {
	mu       sync.Mutex
	balances map[string]int64
	errs     map[string]error
	calls    int
}

func (f *fakeSource) set(key string, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.balances[key] = n
}

func (f *fakeSource) Quota(_ context.Context, d, b string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if err := f.errs[d+"/"+b]; err != nil {
		return 0, err
	}
	n, ok := f.balances[d+"/"+b]
	if !ok {
		return 0, errors.New("biz id not bind")
	}
	return n, nil
}

func (f *fakeSource) Discover(context.Context) ([]quotaalert.Account, error) { return nil, nil }

// event is what the local webhook receiver saw.
type event struct {
	Event     string   `json:"event"`
	BizID     string   `json:"bizId"`
	Balance   *int64   `json:"balance"`
	Level     string   `json:"level"`
	HoursLeft *float64 `json:"hoursLeft"`
	Title     string   `json:"title"`
	Text      string   `json:"text"`
}

type receiverT struct {
	mu     sync.Mutex
	events []event
	status int
	hits   int
}

func (r *receiverT) take() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

func newReceiver(t *testing.T) (*receiverT, *httptest.Server) {
	rc := &receiverT{status: 204}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var e event
		require.NoError(t, json.Unmarshal(b, &e))
		rc.mu.Lock()
		rc.hits++
		st := rc.status
		if st < 300 {
			rc.events = append(rc.events, e)
		}
		rc.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(srv.Close)
	return rc, srv
}

// clock is simulated time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func start() *clock                      { return &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)} }
func hook(srv *httptest.Server) notify.Channel {
	return notify.Webhook{URL: srv.URL, Opts: notify.Options{HTTP: srv.Client(), Attempts: 2, Pause: time.Millisecond}}
}

func names(es []event) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Event)
	}
	return out
}

var yto = quotaalert.Account{DeliveryID: "YTO", BizID: "xyz", Threshold: 100, Name: "main"}

func TestScenarioLowCooldownEmptyRecovered(t *testing.T) {
	rc, srv := newReceiver(t)
	src := &fakeSource{balances: map[string]int64{}}
	clk := start()
	al := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{yto}, Cooldown: 6 * time.Hour},
		src, store.NewMemory(store.MemoryOptions{}), []notify.Channel{hook(srv)}, clk.now)

	steps := []struct {
		balance int64
		level   string
		events  []string
	}{
		{500, "ok", []string{}},
		{90, "low", []string{"low"}},
		{80, "low", []string{}}, // within the 6 h cooldown
		{0, "empty", []string{"empty"}},
		{600, "ok", []string{"recovered"}},
	}
	for i, s := range steps {
		src.set("YTO/xyz", s.balance)
		sum, err := al.Run(context.Background())
		require.NoError(t, err)
		require.Equal(t, 1, sum.Checked, "step %d", i)
		require.Equal(t, s.level, sum.Accounts[0].Level, "step %d", i)
		require.Equal(t, len(s.events), sum.NotificationsSent, "step %d", i)
		got := rc.take()
		require.Equal(t, s.events, names(got), "step %d (balance %d)", i, s.balance)
		for _, e := range got {
			require.Equal(t, "xyz", e.BizID)
			require.Equal(t, s.balance, *e.Balance)
		}
		clk.advance(time.Hour)
	}
	require.Equal(t, 5, src.calls)
}

func TestCooldownRepeatsWhileStillLow(t *testing.T) {
	rc, srv := newReceiver(t)
	src := &fakeSource{balances: map[string]int64{"YTO/xyz": 90}}
	clk := start()
	al := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{yto}, Cooldown: 6 * time.Hour},
		src, store.NewMemory(store.MemoryOptions{}), []notify.Channel{hook(srv)}, clk.now)
	var got []string
	for h := 0; h <= 13; h++ { // hourly runs at a steady 90
		_, err := al.Run(context.Background())
		require.NoError(t, err)
		for _, e := range rc.take() {
			got = append(got, e.Event+"@"+time.Duration(h*int(time.Hour)).String())
		}
		clk.advance(time.Hour)
	}
	require.Equal(t, []string{"low@0s", "low@6h0m0s", "low@12h0m0s"}, got)
}

func TestHysteresisBand(t *testing.T) {
	// threshold 100, band 10: low below 100, ok again only at >= 110.
	rc, srv := newReceiver(t)
	src := &fakeSource{balances: map[string]int64{}}
	clk := start()
	al := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{yto}, Cooldown: 24 * time.Hour},
		src, store.NewMemory(store.MemoryOptions{}), []notify.Channel{hook(srv)}, clk.now)
	var got []string
	for _, b := range []int64{100, 99, 101, 98, 105, 109, 110, 101, 99} {
		src.set("YTO/xyz", b)
		sum, err := al.Run(context.Background())
		require.NoError(t, err)
		got = append(got, sum.Accounts[0].Level)
		for _, e := range rc.take() {
			got = append(got, "!"+e.Event)
		}
		clk.advance(time.Hour)
	}
	require.Equal(t, []string{"ok", "low", "!low", "low", "low", "low", "low", "ok", "!recovered", "ok", "low", "!low"}, got)
}

func TestForecast(t *testing.T) {
	at := func(h float64) int64 { return 1_700_000_000 + int64(h*3600) }
	cases := []struct {
		name    string
		history []quotaalert.Sample
		balance int64
		perHour float64
		left    float64
		ok      bool
	}{
		{"steady burn", []quotaalert.Sample{{at(0), 1000}, {at(1), 900}, {at(2), 800}, {at(3), 700}}, 700, 100, 7, true},
		{"bursty burn", []quotaalert.Sample{{at(0), 1000}, {at(1), 1000}, {at(2), 1000}, {at(3), 1000}, {at(4), 600}}, 600, 100, 6, true},
		{"refill in between", []quotaalert.Sample{{at(0), 300}, {at(1), 200}, {at(2), 1100}, {at(3), 1000}, {at(4), 900}}, 900, 75, 12, true},
		{"refill only", []quotaalert.Sample{{at(0), 100}, {at(1), 600}}, 600, 0, 0, false},
		{"one sample", []quotaalert.Sample{{at(0), 100}}, 100, 0, 0, false},
		{"flat", []quotaalert.Sample{{at(0), 100}, {at(5), 100}}, 100, 0, 0, false},
		// Only the last 24 h count: last week's burst does not.
		{"old burst ignored", []quotaalert.Sample{{at(0), 5000}, {at(1), 1000}, {at(40), 1000}, {at(50), 900}, {at(60), 800}}, 800, 200.0 / 20, 80, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rate, left, ok := quotaalert.Forecast(c.history, c.balance)
			require.Equal(t, c.ok, ok)
			require.InDelta(t, c.perHour, rate, 1e-9)
			require.InDelta(t, c.left, left, 1e-9)
		})
	}
}

func TestHorizonMakesAFastBurningAccountLow(t *testing.T) {
	rc, srv := newReceiver(t)
	src := &fakeSource{balances: map[string]int64{}}
	clk := start()
	al := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{yto}, Horizon: 8*time.Hour + 30*time.Minute, Lang: "en"},
		src, store.NewMemory(store.MemoryOptions{}), []notify.Channel{hook(srv)}, clk.now)
	var levels []string
	for _, b := range []int64{2000, 1800, 1600, 1400} { // 200 an hour
		src.set("YTO/xyz", b)
		sum, err := al.Run(context.Background())
		require.NoError(t, err)
		levels = append(levels, sum.Accounts[0].Level)
		clk.advance(time.Hour)
	}
	// 1800/200 = 9 h is beyond the 8.5 h horizon; 1600/200 = 8 h is not: low although far above the threshold of 100.
	require.Equal(t, []string{"ok", "ok", "low", "low"}, levels)
	got := rc.take()
	require.Len(t, got, 1)
	require.Equal(t, "low", got[0].Event)
	require.Equal(t, 8.0, *got[0].HoursLeft)
	require.Equal(t, "Waybill balance low", got[0].Title)
	require.Equal(t, "YTO xyz (main) has 1600 waybills left (threshold 100); at the recent rate it runs out in about 8 hours. Top up soon.", got[0].Text)
}

func TestQueryFailureReportedOnceOthersContinue(t *testing.T) {
	rc, srv := newReceiver(t)
	bad := quotaalert.Account{DeliveryID: "YTO", BizID: "wrong-password", Threshold: 100}
	src := &fakeSource{balances: map[string]int64{"YTO/xyz": 50}, errs: map[string]error{"YTO/wrong-password": errors.New("errcode 9300531: invalid biz_id or password")}}
	clk := start()
	al := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{bad, yto}, Lang: "zh"},
		src, store.NewMemory(store.MemoryOptions{}), []notify.Channel{hook(srv)}, clk.now)

	sum, err := al.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, sum.Checked)
	require.Equal(t, map[string]int{"error": 1, "low": 1}, sum.Levels)
	require.Equal(t, []string{"YTO wrong-password: errcode 9300531: invalid biz_id or password"}, sum.Failures)
	got := rc.take()
	sort.Slice(got, func(i, j int) bool { return got[i].Event < got[j].Event }) // accounts run in parallel
	require.Equal(t, []string{"error", "low"}, names(got))
	require.Equal(t, "电子面单余额查询失败", got[0].Title)
	require.Equal(t, "YTO wrong-password 余额查询失败：errcode 9300531: invalid biz_id or password", got[0].Text)
	require.Equal(t, "电子面单余额不足", got[1].Title)
	require.Equal(t, "YTO xyz (main) 余额 50，阈值 100。请尽快充值。", got[1].Text)

	clk.advance(time.Hour)
	sum, err = al.Run(context.Background())
	require.NoError(t, err)
	require.Len(t, sum.Failures, 1, "still listed in the summary")
	require.Empty(t, rc.take(), "but not announced again")
	require.Equal(t, 4, src.calls)
}

// A vendor's error with line breaks is on one line in the summary too (its
// accounts and failures reach the answer and the log line: a tester).
func TestAQueryFailureIsOneLineInTheSummary(t *testing.T) {
	bad := quotaalert.Account{DeliveryID: "YTO", BizID: "wrong-password", Threshold: 100}
	src := &fakeSource{balances: map[string]int64{}, errs: map[string]error{"YTO/wrong-password": errors.New("errcode -1: system error\n# head\r\tend")}}
	al := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{bad}, Lang: "en"},
		src, store.NewMemory(store.MemoryOptions{}), nil, start().now)
	sum, err := al.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"YTO wrong-password: errcode -1: system error # head  end"}, sum.Failures)
	require.Len(t, sum.Accounts, 1)
	require.Equal(t, "errcode -1: system error # head  end", sum.Accounts[0].Error)
}

func TestFailingChannelReportedOthersDelivered(t *testing.T) {
	good, gsrv := newReceiver(t)
	broken, bsrv := newReceiver(t)
	broken.status = 500
	src := &fakeSource{balances: map[string]int64{"YTO/xyz": 50}}
	clk := start()
	kv := store.NewMemory(store.MemoryOptions{})
	al := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{yto}}, src, kv,
		[]notify.Channel{hook(bsrv), hook(gsrv)}, clk.now)
	sum, err := al.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, sum.NotificationsSent)
	require.Equal(t, []string{"notify webhook (YTO xyz (main) low): webhook: HTTP 500 (after 2 attempts)"}, sum.Failures)
	require.Equal(t, 2, broken.hits, "retried boundedly")
	require.Equal(t, []string{"low"}, names(good.take()))
}

func TestAllChannelsDownRetriesNextRun(t *testing.T) {
	rc, srv := newReceiver(t)
	rc.status = 500
	src := &fakeSource{balances: map[string]int64{"YTO/xyz": 50}}
	clk := start()
	al := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{yto}}, src, store.NewMemory(store.MemoryOptions{}),
		[]notify.Channel{hook(srv)}, clk.now)
	sum, err := al.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, 0, sum.NotificationsSent)
	require.Equal(t, "", sum.Accounts[0].Notified)

	rc.mu.Lock()
	rc.status = 204
	rc.mu.Unlock()
	clk.advance(time.Hour) // well within the cooldown
	sum, err = al.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, sum.NotificationsSent)
	require.Equal(t, []string{"low"}, names(rc.take()))
}

// racingKV lets a second run go all the way through while the first one
// sits between reading the state and writing it.
type racingKV struct {
	store.KV
	once  sync.Once
	other func()
}

func (r *racingKV) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := r.KV.Get(ctx, key)
	r.once.Do(r.other)
	return b, err
}

func TestOverlappingRunsNotifyOnce(t *testing.T) {
	for _, seeded := range []bool{false, true} {
		rc, srv := newReceiver(t)
		src := &fakeSource{balances: map[string]int64{"YTO/xyz": 500}}
		clk := start()
		mem := store.NewMemory(store.MemoryOptions{})
		cfg := quotaalert.Config{Accounts: []quotaalert.Account{yto}}
		if seeded { // the state exists already (compare-and-swap path)
			_, err := quotaalert.New(cfg, src, mem, nil, clk.now).Run(context.Background())
			require.NoError(t, err)
			clk.advance(time.Hour)
		}
		src.set("YTO/xyz", 50)
		second := quotaalert.New(cfg, src, mem, []notify.Channel{hook(srv)}, clk.now)
		var secondSum *quotaalert.Summary
		kv := &racingKV{KV: mem, other: func() {
			var err error
			secondSum, err = second.Run(context.Background())
			require.NoError(t, err)
		}}
		first := quotaalert.New(cfg, src, kv, []notify.Channel{hook(srv)}, clk.now)
		firstSum, err := first.Run(context.Background())
		require.NoError(t, err)
		require.Equal(t, 1, secondSum.NotificationsSent)
		require.Equal(t, 0, firstSum.NotificationsSent, "the run that lost the compare-and-swap stays quiet")
		require.Equal(t, []string{"low"}, names(rc.take()))
	}
}

func TestParseWatch(t *testing.T) {
	accts, auto, err := quotaalert.ParseWatch("auto")
	require.NoError(t, err)
	require.True(t, auto)
	require.Nil(t, accts)

	accts, auto, err = quotaalert.ParseWatch(`[{"deliveryId":"ZTO","bizId":"b","threshold":5},{"deliveryId":"YTO","bizId":"a","threshold":0,"name":"x"}]`)
	require.NoError(t, err)
	require.False(t, auto)
	require.Len(t, accts, 2)
	for i, want := range []quotaalert.Account{{DeliveryID: "YTO", BizID: "a", Name: "x"}, {DeliveryID: "ZTO", BizID: "b", Threshold: 5}} {
		got := accts[i]
		require.Equal(t, []any{want.DeliveryID, want.BizID, want.Threshold, want.Name}, []any{got.DeliveryID, got.BizID, got.Threshold, got.Name})
	}

	// A threshold takes what an input's integer takes: 1e2 and 100.0 are 100.
	for _, in := range []string{`1e2`, `100.0`, `1E2`, `10000e-2`} {
		accts, _, err = quotaalert.ParseWatch(`[{"deliveryId":"YTO","bizId":"a","threshold":` + in + `}]`)
		require.NoError(t, err, in)
		require.Equal(t, int64(100), accts[0].Threshold, in)
	}

	for in, want := range map[string]string{
		`[{"deliveryId":"YTO","bizId":"a","threshold":1.5}]`:                 "QUOTA_ALERT_WATCH[0].threshold: expected a whole number of waybills from 0 to 9223372036854775807, got 1.5",
		`[{"deliveryId":"YTO","bizId":"a","threshold":9223372036854775808}]`: "QUOTA_ALERT_WATCH[0].threshold: expected a whole number of waybills from 0 to 9223372036854775807, got 9223372036854775808",
		`[{"deliveryId":"YTO"}]`:                                             "QUOTA_ALERT_WATCH[0]: deliveryId and bizId are required",
		`[{"deliveryId":"YTO","bizId":"a","threshold":-1}]`:                  "QUOTA_ALERT_WATCH[0]: threshold must not be negative",
		`{"deliveryId":"YTO"}`:                                               `QUOTA_ALERT_WATCH: expected "auto" or a JSON list`,
		`[{"deliveryId":"YTO","bizId":"a","treshold":5}]`:                    `unknown field "treshold"`,
		`[{"deliveryId":"YTO","bizId":"a","threshold":"lots"}]`:              "QUOTA_ALERT_WATCH",
		// Each of these was taken and watched less than it said.
		`null`: "the list is empty (or null)",
		`[]`:   "the list is empty (or null)",
		`[{"deliveryId":"YTO","bizId":"a"}] garbage`:                                     "something follows it",
		`[{"deliveryId":"YTO","bizId":"a"}][{"deliveryId":"ZTO","bizId":"b"}]`:           "something follows it",
		`[{"deliveryId":"YTO","bizId":"a","name":"x"},{"deliveryId":"YTO","bizId":"a"}]`: "QUOTA_ALERT_WATCH[1]: the account YTO/a is already entry 0",
	} {
		_, _, err := quotaalert.ParseWatch(in)
		require.ErrorContains(t, err, want, in)
	}
}

func manyAccounts(n int) ([]quotaalert.Account, *fakeSource) {
	src := &fakeSource{balances: map[string]int64{}}
	var accts []quotaalert.Account
	for i := 0; i < n; i++ {
		a := quotaalert.Account{DeliveryID: "ZTO", BizID: fmt.Sprintf("b%03d", i), Threshold: 100}
		accts = append(accts, a)
		src.balances["ZTO/"+a.BizID] = int64(i * 10) // b000 empty, b001..b009 low, the rest ok
	}
	return accts, src
}

func TestSummaryKeepsWatchListOrder(t *testing.T) {
	rc, srv := newReceiver(t)
	accts, src := manyAccounts(30)
	al := quotaalert.New(quotaalert.Config{Accounts: accts, Parallel: 5}, src, store.NewMemory(store.MemoryOptions{}),
		[]notify.Channel{hook(srv)}, start().now)
	sum, err := al.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, 30, sum.Checked)
	for i, r := range sum.Accounts {
		require.Equal(t, accts[i].BizID, r.BizID)
	}
	require.Equal(t, map[string]int{"empty": 1, "low": 9, "ok": 20}, sum.Levels)
	require.Equal(t, 10, sum.NotificationsSent)
	require.Len(t, rc.take(), 10)
	require.Equal(t, 30, src.calls)
}

// BenchmarkRun measures one run over 50 accounts (fake balances, memory
// store, one local webhook channel); steady state, so nothing is sent.
func BenchmarkRun(b *testing.B) {
	accts, src := manyAccounts(50)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	clk := start()
	al := quotaalert.New(quotaalert.Config{Accounts: accts}, src, store.NewMemory(store.MemoryOptions{}),
		[]notify.Channel{hook(srv)}, clk.now)
	b.ReportAllocs()
	for b.Loop() {
		clk.advance(time.Minute)
		if _, err := al.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// "threshold": 0 in the watch list is the account's threshold (alert only
// when empty); the default is for entries that name none. A balance of 55
// is low under the default of 100 and ok under 0.
func TestAZeroThresholdIsNotTheDefault(t *testing.T) {
	accts, _, err := quotaalert.ParseWatch(`[{"deliveryId":"YTO","bizId":"zero","threshold":0},{"deliveryId":"YTO","bizId":"none"}]`)
	require.NoError(t, err)
	src := &fakeSource{balances: map[string]int64{"YTO/zero": 55, "YTO/none": 55}}
	al := quotaalert.New(quotaalert.Config{Accounts: accts, DefaultThreshold: 100, Cooldown: time.Hour},
		src, store.NewMemory(store.MemoryOptions{}), nil, start().now)
	sum, err := al.Run(context.Background())
	require.NoError(t, err)
	levels := map[string]string{}
	thresholds := map[string]int64{}
	for _, r := range sum.Accounts {
		levels[r.BizID], thresholds[r.BizID] = r.Level, r.Threshold
	}
	require.Equal(t, map[string]string{"zero": "ok", "none": "low"}, levels)
	require.Equal(t, map[string]int64{"zero": 0, "none": 100}, thresholds)
}

// discovering is a source whose Discover finds accounts in its own order.
type discovering struct {
	*fakeSource
	found []quotaalert.Account
}

func (d discovering) Discover(context.Context) ([]quotaalert.Account, error) { return d.found, nil }

// With QUOTA_ALERT_WATCH=auto the summary lists watched and discovered
// accounts by delivery id, then biz id, as its schema says, whatever order
// WeChat lists them in; a delivery id that sorts before another's prefix
// ("YT-O" and "YT") is ordered by the id itself, not by "id/bizId".
func TestAutoDiscoveredAccountsAreListedInOrder(t *testing.T) {
	src := &fakeSource{balances: map[string]int64{"ZTO/a": 500, "YTO/b": 500, "YTO/a": 500, "YT/z": 500, "YT-O/a": 500}, errs: map[string]error{}}
	found := []quotaalert.Account{{DeliveryID: "ZTO", BizID: "a"}, {DeliveryID: "YTO", BizID: "b"}, {DeliveryID: "YT-O", BizID: "a"}, {DeliveryID: "YT", BizID: "z"}}
	al := quotaalert.New(quotaalert.Config{Auto: true, Accounts: []quotaalert.Account{{DeliveryID: "YTO", BizID: "a", Threshold: 100}}},
		discovering{src, found}, store.NewMemory(store.MemoryOptions{}), nil, start().now)
	sum, err := al.Run(context.Background())
	require.NoError(t, err)
	var got []string
	for _, r := range sum.Accounts {
		got = append(got, r.DeliveryID+" "+r.BizID)
	}
	require.Equal(t, []string{"YT z", "YT-O a", "YTO a", "YTO b", "ZTO a"}, got)
}

// goneAfterRead is a shared store that stops answering right after a run
// reads an account's state, before the run writes it back.
type goneAfterRead struct {
	*store.Memory
	down atomic.Bool
}

func (g *goneAfterRead) Get(ctx context.Context, k string) ([]byte, error) {
	if g.down.Load() {
		return nil, store.ErrUnavailable
	}
	v, err := g.Memory.Get(ctx, k)
	g.down.Store(true)
	return v, err
}

func (g *goneAfterRead) CompareAndSwap(ctx context.Context, k string, o, v []byte, ttl time.Duration) (bool, error) {
	if g.down.Load() {
		return false, store.ErrUnavailable
	}
	return g.Memory.CompareAndSwap(ctx, k, o, v, ttl)
}

type counted struct{ n *atomic.Int64 }

func (c counted) Name() string                               { return "counted" }
func (c counted) Send(context.Context, notify.Message) error { c.n.Add(1); return nil }

// The store goes away between a run's read and its write: the write lands
// on the fallback's empty instance memory, which refuses the compare. That
// is no other run's win, so the empty balance is announced, as when the
// state cannot be written at all.
func TestAnAlertIsSentWhenTheStoreFallsBackMidRun(t *testing.T) {
	prim := &goneAfterRead{Memory: store.NewMemory(store.MemoryOptions{})}
	src := &fakeSource{balances: map[string]int64{"ZTO/z": 500}, errs: map[string]error{}}
	kv := store.NewFallback(prim, store.FallbackOptions{})
	var sent atomic.Int64
	al := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{{DeliveryID: "ZTO", BizID: "z", Threshold: 100}}},
		src, kv, []notify.Channel{counted{&sent}}, start().now)
	_, err := al.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(0), sent.Load(), "ok: nothing to say")
	src.set("ZTO/z", 0)
	prim.down.Store(false)
	sum, err := al.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, "empty", sum.Accounts[0].Level)
	require.Equal(t, "empty", sum.Accounts[0].Notified)
	require.Equal(t, int64(1), sent.Load())
}

// failingDiscovery is a source whose account list cannot be had.
type failingDiscovery struct {
	*fakeSource
	err *atomic.Pointer[error]
}

func (f failingDiscovery) Discover(context.Context) ([]quotaalert.Account, error) {
	if e := f.err.Load(); e != nil {
		return nil, *e
	}
	return nil, nil
}

// With QUOTA_ALERT_WATCH=auto and no account list, nothing is watched: the
// channels hear it once (not every hour), and again after it has worked.
func TestAFailingAccountListIsAnnouncedOnce(t *testing.T) {
	var failing atomic.Pointer[error]
	bad := errors.New("wechat errcode 40125: invalid appsecret")
	failing.Store(&bad)
	src := failingDiscovery{&fakeSource{balances: map[string]int64{}, errs: map[string]error{}}, &failing}
	var sent atomic.Int64
	clk := start()
	al := quotaalert.New(quotaalert.Config{Auto: true}, src, store.NewMemory(store.MemoryOptions{}), []notify.Channel{counted{&sent}}, clk.now)
	sum, err := al.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(1), sent.Load())
	require.Equal(t, 1, sum.NotificationsSent)
	require.Contains(t, sum.Failures[0], "40125")
	clk.advance(time.Hour)
	_, err = al.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(1), sent.Load(), "said once, not every run")

	failing.Store(nil)
	_, err = al.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(2), sent.Load(), "working again is said once")
	failing.Store(&bad)
	_, err = al.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(3), sent.Load(), "failing again after it worked is said again")
}

// hangChannel never answers while hang is set (a robot that accepts the
// connection and says nothing), and delivers through next otherwise.
type hangChannel struct {
	hang atomic.Bool
	next notify.Channel
}

func (h *hangChannel) Name() string { return "hung" }
func (h *hangChannel) Send(ctx context.Context, m notify.Message) error {
	if h.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return h.next.Send(ctx, m)
}

// TestAHungChannelCostsTheOthersNothing: the channels were tried one after
// another, so a robot that hung used the whole run's deadline, every other
// channel failed, and the undo of the announcement failed with the expired
// deadline: the alert was silent for the cooldown. Now they are tried at
// once, and the undo has its own seconds.
func TestAHungChannelCostsTheOthersNothing(t *testing.T) {
	good, gsrv := newReceiver(t)
	hung := &hangChannel{next: hook(gsrv)}
	hung.hang.Store(true)
	src := &fakeSource{balances: map[string]int64{"YTO/xyz": 50}}
	clk := start()
	kv := store.NewMemory(store.MemoryOptions{})
	al := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{yto}}, src, kv, []notify.Channel{hung, hook(gsrv)}, clk.now)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	sum, err := al.Run(ctx)
	cancel()
	require.NoError(t, err)
	require.Equal(t, 1, sum.NotificationsSent, "%v", sum.Failures)
	require.Equal(t, []string{"low"}, names(good.take()))

	// Every channel hung: nobody heard it, and the next run tries again.
	only := quotaalert.New(quotaalert.Config{Accounts: []quotaalert.Account{{DeliveryID: "ZTO", BizID: "z", Threshold: 100}}},
		&fakeSource{balances: map[string]int64{"ZTO/z": 0}}, kv, []notify.Channel{hung}, clk.now)
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	sum, err = only.Run(ctx)
	cancel()
	require.NoError(t, err)
	require.Zero(t, sum.NotificationsSent)
	for _, f := range sum.Failures {
		require.NotContains(t, f, "not rolled back")
	}
	hung.hang.Store(false)
	clk.advance(time.Hour) // within the cooldown
	sum, err = only.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, sum.NotificationsSent, "%v", sum.Failures)
	require.Equal(t, []string{"empty"}, names(good.take()))
}

// QUOTA_ALERT_WATCH=auto with no account bound: the run checked nothing,
// and says so as a partial run (a WARN line, a fault in the metrics)
// instead of answering like a run that found every balance fine.
func TestAutoDiscoveryOfNoAccountIsAFailure(t *testing.T) {
	src := &fakeSource{balances: map[string]int64{}, errs: map[string]error{}}
	al := quotaalert.New(quotaalert.Config{Auto: true}, discovering{src, nil}, store.NewMemory(store.MemoryOptions{}), nil, start().now)
	sum, err := al.Run(context.Background())
	require.NoError(t, err)
	require.Zero(t, sum.Checked)
	require.True(t, sum.PartlyFailed())
	require.Len(t, sum.Failures, 1)
	require.Contains(t, sum.Failures[0], "WeChat lists no courier account bound to this mini program, so nothing was checked")
}
