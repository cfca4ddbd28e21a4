package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/notify"
	"github.com/cloudcall/cloudcall/shared/quotaalert"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/suggest"
	"github.com/cloudcall/cloudcall/shared/upstream"
	"github.com/cloudcall/cloudcall/shared/wechat"
)

// source reads balances with the WeChat client in-process (no HTTP hop to
// the logistics-get-quota function).
type source struct{ c *wechat.Client }

func (s source) Quota(ctx context.Context, deliveryID, bizID string) (int64, error) {
	n, err := s.c.GetQuota(ctx, deliveryID, bizID)
	return n, hinted(err)
}

// hinted adds to a WeChat error what to fix, as the envelope's reason does:
// a run's failures and alerts carry the error's text, and "errcode 40125"
// alone did not say to check WECHAT_APPSECRET.
func hinted(err error) error {
	if h := wechat.Hint(err); h != "" {
		return fmt.Errorf("%w (%s)", err, h)
	}
	return err
}

// Discover lists bound accounts whose courier has can_get_quota = 1; the
// others (direct-operated couriers such as SF, EMS) cannot answer getQuota.
func (s source) Discover(ctx context.Context) ([]quotaalert.Account, error) {
	couriers, err := s.c.GetAllDelivery(ctx)
	if err != nil {
		return nil, fmt.Errorf("getAllDelivery: %w", hinted(err))
	}
	quota := map[string]bool{}
	for _, c := range couriers {
		quota[c.DeliveryID] = c.QuotaReadable()
	}
	accts, err := s.c.GetAllAccount(ctx)
	if err != nil {
		return nil, fmt.Errorf("getAllAccount: %w", hinted(err))
	}
	var out []quotaalert.Account
	for _, a := range accts {
		if quota[a.DeliveryID] {
			out = append(out, quotaalert.Account{DeliveryID: a.DeliveryID, BizID: a.BizID, Name: a.Alias})
		}
	}
	return out, nil
}

// channels builds the configured notification channels. URLs come only
// from configuration (they carry credentials, so they are secrets).
func channels(env *config.Env, o notify.Options) ([]notify.Channel, error) {
	type spec struct {
		url, secret string
		build       func(u, s string) notify.Channel
	}
	var out []notify.Channel
	for _, s := range []spec{
		{"QUOTA_ALERT_DINGTALK_URL", "QUOTA_ALERT_DINGTALK_SECRET", func(u, s string) notify.Channel { return notify.DingTalk{URL: u, Secret: s, Opts: o} }},
		{"QUOTA_ALERT_WECOM_URL", "", func(u, _ string) notify.Channel { return notify.WeCom{URL: u, Opts: o} }},
		{"QUOTA_ALERT_FEISHU_URL", "QUOTA_ALERT_FEISHU_SECRET", func(u, s string) notify.Channel { return notify.Feishu{URL: u, Secret: s, Opts: o} }},
		{"QUOTA_ALERT_SLACK_URL", "", func(u, _ string) notify.Channel { return notify.Slack{URL: u, Opts: o} }},
		{"QUOTA_ALERT_WEBHOOK_URL", "QUOTA_ALERT_WEBHOOK_SECRET", func(u, s string) notify.Channel { return notify.Webhook{URL: u, Secret: s, Opts: o} }},
	} {
		u, err := env.Secret(s.url)
		if err != nil {
			return nil, err
		}
		if u == "" {
			// A secret with no URL is a channel half set up: it was left
			// out without a word, and its alerts went nowhere.
			if s.secret != "" {
				if sec, err := env.Secret(s.secret); err != nil || sec != "" {
					return nil, fmt.Errorf("%s is set but %s is not: set the channel's URL too (or unset the secret)", s.secret, s.url)
				}
			}
			continue
		}
		// Checked here, so a mistyped URL is a -1601 naming it at once,
		// not a delivery failure every run. The value is a secret: not shown.
		if err := upstream.SecretURL(env, s.url, u); err != nil {
			return nil, err
		}
		sec := ""
		if s.secret != "" {
			if sec, err = env.Secret(s.secret); err != nil {
				return nil, err
			}
		}
		out = append(out, s.build(u, sec))
	}
	return out, nil
}

// unread refuses a QUOTA_ALERT_ variable this function does not read: a
// mistyped channel URL (QUOTA_ALERT_DINGTALK_UR) or a _FILE of a setting
// that is no secret was ignored without a word, and its alerts went nowhere.
// The prefix is this function's alone, so nothing else sets such a name.
func unread(env *config.Env) error {
	fn, _ := registry.Lookup("quota-alert")
	known := map[string]bool{}
	for _, v := range fn.Env {
		known[v.Name] = true
		if v.Secret {
			known[v.Name+"_FILE"] = true
		}
	}
	var bad []string
	for _, n := range env.Names("QUOTA_ALERT_") {
		switch base, isFile := strings.CutSuffix(n, "_FILE"); {
		case known[n]:
		case isFile && known[base]:
			bad = append(bad, n+" ("+base+" is no secret and is read only as itself)")
		default:
			bad = append(bad, n+suggest.HintAny(n, known))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%s: not a setting quota-alert reads (docs/vendors.md lists them); rename or unset it", strings.Join(bad, ", "))
}

// factory builds quota-alert from the environment.
func factory(_ context.Context, d runtime.Deps) (envelope.Op, error) {
	fail := envelope.Op{API: quotaalert.API}
	if err := unread(d.Env); err != nil {
		return fail, err
	}
	c, err := wechat.ClientFromDeps(d)
	if err != nil {
		return fail, err
	}
	accounts, auto, err := quotaalert.ParseWatch(d.Env.Get("QUOTA_ALERT_WATCH", "auto"))
	if err != nil {
		return fail, err
	}
	threshold, err := d.Env.Int("QUOTA_ALERT_THRESHOLD", 100)
	if err != nil {
		return fail, err
	}
	if threshold < 0 {
		return fail, fmt.Errorf("QUOTA_ALERT_THRESHOLD=%d: expected a number of waybills >= 0", threshold)
	}
	cooldown, err := d.Env.Duration("QUOTA_ALERT_COOLDOWN", 6*time.Hour)
	if err != nil {
		return fail, err
	}
	if cooldown <= 0 {
		return fail, fmt.Errorf("QUOTA_ALERT_COOLDOWN=%q: expected a positive duration such as 6h", d.Env.Get("QUOTA_ALERT_COOLDOWN", ""))
	}
	var horizon time.Duration
	if !strings.EqualFold(d.Env.Get("QUOTA_ALERT_HORIZON", ""), "off") { // the table's "off" is a value too
		if horizon, err = d.Env.Duration("QUOTA_ALERT_HORIZON", 0); err != nil {
			return fail, err
		}
		if horizon < 0 || horizon == 0 && d.Env.Get("QUOTA_ALERT_HORIZON", "") != "" { // 0s is no horizon: the table says positive, or off
			return fail, fmt.Errorf("QUOTA_ALERT_HORIZON=%q: expected a positive duration such as 24h, or off", d.Env.Get("QUOTA_ALERT_HORIZON", ""))
		}
	}
	lang := d.Env.Get("QUOTA_ALERT_LANG", "both")
	if lang != "zh" && lang != "en" && lang != "both" {
		return fail, fmt.Errorf("QUOTA_ALERT_LANG=%q: expected zh, en or both", lang)
	}
	chs, err := channels(d.Env, notify.Options{HTTP: d.HTTP})
	if err != nil {
		return fail, err
	}
	if len(chs) == 0 {
		d.Log.Warn("quota-alert: no notification channel configured; runs only report in their summary")
	}
	// Read as runtime.OpenStore reads it: a Redis URL may carry a password,
	// and CLOUDCALL_STORE_FILE counts. A value it refuses (" ") is no
	// memory store: every invocation answers -1601 and nothing runs.
	st, err := d.Env.SecretOrWord("CLOUDCALL_STORE", "memory")
	memory := err == nil && (st == "" || st == "memory")
	if memory {
		// A timer usually lands on a fresh instance: with memory, cooldowns,
		// recoveries and the forecast's history start over each time.
		d.Log.Warn("quota-alert: alert state is in this instance's memory (CLOUDCALL_STORE=memory): a new instance alerts again and forgets the forecast's history; set CLOUDCALL_STORE to a Redis")
	}
	cfg := quotaalert.Config{Accounts: accounts, Auto: auto, DefaultThreshold: int64(threshold), Cooldown: cooldown, Horizon: horizon, Lang: lang,
		Fenced: !memory} // a shared store found empty is news; memory is empty on each instance by design
	op := quotaalert.New(cfg, source{c: c}, d.Store, chs, nil).Op()
	// Every run needs the token first.
	op.Warm = c.Warm(op.Warm)
	return op, nil
}
