// Package wechatsbx is a stateful sandbox of the WeChat server API parts the
// bundle uses: both token endpoints with their real rotation rules, and the
// logistics-assistant quota, courier and account endpoints, answering with
// WeChat's real error shapes (HTTP 200 + errcode, "rid:" in errmsg).
package wechatsbx

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cloudcall/cloudcall/shared/sandbox"
)

// Demo credentials every sandbox starts with.
const (
	DemoAppID  = "wx0000000000demo1"
	DemoSecret = "demo-appsecret-0123456789abcdef"
)

const (
	tokenLifetime   = 7200 * time.Second
	overlap         = 5 * time.Minute // old and new token both work this long
	classicDaily    = 2000
	forceDaily      = 20
	forceMinSpacing = 30 * time.Second
)

// Account is a bound courier account and its waybill balance.
type Account struct {
	DeliveryID string
	BizID      string
	Quota      int64
	// Errcode, when set, is what quota/get answers for this account
	// (9300531 wrong password, 9300525 not bound, ...).
	Errcode int
	Errmsg  string
	Alias   string
}

// Courier is an entry of delivery/getall.
type Courier struct {
	DeliveryID  string
	Name        string
	CanGetQuota bool
}

// Options seeds the sandbox. The zero value gives the demo app, the demo
// couriers and the demo accounts.
type Options struct {
	Apps     map[string]string // appid → secret
	Accounts []Account
	Couriers []Courier
	// IPWhitelist, when not empty, is the app's API IP whitelist: token
	// fetches from any other address get 40164, as a serverless function
	// without a fixed egress IP does.
	IPWhitelist []string
}

// DemoAccounts are the seeded courier accounts.
func DemoAccounts() []Account {
	return []Account{
		{DeliveryID: "YTO", BizID: "xyz", Quota: 210, Alias: "YTO main"},
		{DeliveryID: "ZTO", BizID: "zero-balance", Quota: 0, Alias: "ZTO empty"},
		{DeliveryID: "YUNDA", BizID: "yunda-01", Quota: 55, Alias: "YUNDA"},
		{DeliveryID: "YTO", BizID: "wrong-password", Errcode: 9300531, Errmsg: "invalid biz_id or password"},
		{DeliveryID: "SF", BizID: "sf-monthly", Quota: 0, Errcode: 9300501, Errmsg: "delivery logic fail"},
	}
}

// DemoCouriers are the seeded couriers: franchise ones support getQuota,
// direct-operated ones do not.
func DemoCouriers() []Courier {
	return []Courier{
		{DeliveryID: "YTO", Name: "圆通速递", CanGetQuota: true},
		{DeliveryID: "ZTO", Name: "中通快递", CanGetQuota: true},
		{DeliveryID: "YUNDA", Name: "韵达快递", CanGetQuota: true},
		{DeliveryID: "SF", Name: "顺丰速运", CanGetQuota: false},
		{DeliveryID: "EMS", Name: "中国邮政速递物流", CanGetQuota: false},
	}
}

type token struct {
	value   string
	expires time.Time // end of life
	validTo time.Time // may be earlier than expires once rotated away
}

type app struct {
	secret     string
	classic    []*token // newest last
	stable     []*token // newest last
	day        string
	classicN   int
	forceN     int
	lastForce  time.Time
	stableHits int
}

// Server is the WeChat sandbox.
type Server struct {
	*sandbox.Sandbox

	mu       sync.Mutex
	apps     map[string]*app
	accounts map[string]*Account // delivery_id + "/" + biz_id
	order    []string
	couriers []Courier
	allowIPs map[string]bool
}

// New builds a sandbox.
func New(opts Options) *Server {
	if opts.Apps == nil {
		opts.Apps = map[string]string{DemoAppID: DemoSecret}
	}
	if opts.Accounts == nil {
		opts.Accounts = DemoAccounts()
	}
	if opts.Couriers == nil {
		opts.Couriers = DemoCouriers()
	}
	s := &Server{Sandbox: sandbox.New("wechat"), apps: map[string]*app{}, accounts: map[string]*Account{}, couriers: opts.Couriers}
	if len(opts.IPWhitelist) > 0 {
		s.allowIPs = map[string]bool{}
		for _, ip := range opts.IPWhitelist {
			s.allowIPs[ip] = true
		}
	}
	for id, sec := range opts.Apps {
		s.apps[id] = &app{secret: sec}
	}
	for i := range opts.Accounts {
		a := opts.Accounts[i]
		k := a.DeliveryID + "/" + a.BizID
		s.accounts[k] = &a
		s.order = append(s.order, k)
	}
	return s
}

// Env points a function at this sandbox with the demo credentials.
func (s *Server) Env(baseURL string) map[string]string {
	return map[string]string{"WECHAT_API_BASE": baseURL, "WECHAT_APPID": DemoAppID, "WECHAT_APPSECRET": DemoSecret}
}

// Handler serves the API, behind fault injection and the admin endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cgi-bin/token", s.classicToken)
	mux.HandleFunc("POST /cgi-bin/stable_token", s.stableToken)
	mux.HandleFunc("POST /cgi-bin/express/business/quota/get", s.quota)
	mux.HandleFunc("GET /cgi-bin/express/business/delivery/getall", s.deliveries)
	mux.HandleFunc("GET /cgi-bin/express/business/account/getall", s.allAccounts)
	mux.HandleFunc("POST /__sandbox/wechat/rotate", func(w http.ResponseWriter, r *http.Request) {
		s.Rotate(r.URL.Query().Get("appid"))
		writeJSON(w, map[string]any{"ok": true})
	})
	mux.HandleFunc("GET /__sandbox/wechat/accounts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"accounts": s.Accounts()})
	})
	mux.HandleFunc("POST /__sandbox/wechat/quota", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			DeliveryID string `json:"deliveryId"`
			BizID      string `json:"bizId"`
			Quota      int64  `json:"quota"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, `{"error":"body: {deliveryId, bizId, quota}"}`, http.StatusBadRequest)
			return
		}
		s.SetQuota(in.DeliveryID, in.BizID, in.Quota)
		writeJSON(w, map[string]any{"ok": true})
	})
	return s.Wrap(mux)
}

// AccountState is an account as GET /__sandbox/wechat/accounts lists it.
type AccountState struct {
	DeliveryID string `json:"deliveryId"`
	BizID      string `json:"bizId"`
	Quota      int64  `json:"quota"`
	Errcode    int    `json:"errcode,omitempty"`
	Alias      string `json:"alias,omitempty"`
}

// Accounts lists the bound accounts in seeding order.
func (s *Server) Accounts() []AccountState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]AccountState, 0, len(s.order))
	for _, k := range s.order {
		a := s.accounts[k]
		out = append(out, AccountState{DeliveryID: a.DeliveryID, BizID: a.BizID, Quota: a.Quota, Errcode: a.Errcode, Alias: a.Alias})
	}
	return out
}

// SetQuota sets (or adds) an account's balance.
func (s *Server) SetQuota(deliveryID, bizID string, quota int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := deliveryID + "/" + bizID
	if a, ok := s.accounts[k]; ok {
		a.Quota = quota
		return
	}
	s.accounts[k] = &Account{DeliveryID: deliveryID, BizID: bizID, Quota: quota}
	s.order = append(s.order, k)
}

// Rotate invalidates every token of the app at once and makes the next fetch
// issue a new one, as if another party force-refreshed: a client holding the
// old token gets 40001 on its next call.
func (s *Server) Rotate(appid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[appid]
	if !ok {
		return
	}
	now := s.Clock.Now()
	for _, t := range append(a.classic, a.stable...) {
		t.validTo = now
	}
	a.stable = nil
}

// prune forgets tokens dead for an hour (a long-running sandbox must not
// grow without bound); a token it no longer knows gets 40001, as at WeChat.
func prune(ts []*token, now time.Time) []*token {
	out := ts[:0]
	for _, t := range ts {
		if now.Sub(t.validTo) < time.Hour {
			out = append(out, t)
		}
	}
	clear(ts[len(out):])
	return out
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func rid() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return fmt.Sprintf("%s-%s-%s", h[:8], h[8:16], h[16:])
}

func newToken() string {
	b := make([]byte, 48)
	_, _ = rand.Read(b)
	return "sbx_" + hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; encoding=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers the way WeChat does: HTTP 200, errcode, errmsg with a rid.
func fail(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, map[string]any{"errcode": code, "errmsg": msg + " rid: " + rid()})
}

func (s *Server) rollDay(a *app) {
	d := s.Clock.Now().Format("2006-01-02")
	if a.day != d {
		a.day, a.classicN, a.forceN = d, 0, 0
	}
}

// credentials checks the caller's IP, appid and secret the way the token
// endpoints do.
func (s *Server) credentials(w http.ResponseWriter, r *http.Request, grant, appid, secret string) *app {
	if ip := remoteIP(r); s.allowIPs != nil && !s.allowIPs[ip] {
		fail(w, 40164, fmt.Sprintf("invalid ip %s ipv6 ::ffff:%s, not in whitelist", ip, ip))
		return nil
	}
	switch {
	case grant != "client_credential":
		fail(w, 40002, "invalid grant_type")
	case appid == "":
		fail(w, 41002, "appid missing")
	case secret == "":
		fail(w, 41004, "appsecret missing")
	default:
		a, ok := s.apps[appid]
		switch {
		case !ok:
			fail(w, 40013, "invalid appid")
		case a.secret != secret:
			fail(w, 40125, "invalid appsecret")
		default:
			return a
		}
	}
	return nil
}

func (s *Server) classicToken(w http.ResponseWriter, r *http.Request) {
	s.Count("token")
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.credentials(w, r, q.Get("grant_type"), q.Get("appid"), q.Get("secret"))
	if a == nil {
		return
	}
	s.rollDay(a)
	if a.classicN >= classicDaily {
		fail(w, 45009, "reach max api daily quota limit")
		return
	}
	a.classicN++
	now := s.Clock.Now()
	a.classic = prune(a.classic, now)
	// Fetching again invalidates the previous token after the overlap.
	for _, t := range a.classic {
		if t.validTo.After(now.Add(overlap)) {
			t.validTo = now.Add(overlap)
		}
	}
	t := &token{value: newToken(), expires: now.Add(tokenLifetime), validTo: now.Add(tokenLifetime)}
	a.classic = append(a.classic, t)
	writeJSON(w, map[string]any{"access_token": t.value, "expires_in": int(tokenLifetime.Seconds())})
}

func (s *Server) stableToken(w http.ResponseWriter, r *http.Request) {
	s.Count("token")
	var in struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		fail(w, 47001, "data format error")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.credentials(w, r, in.GrantType, in.AppID, in.Secret)
	if a == nil {
		return
	}
	s.rollDay(a)
	now := s.Clock.Now()
	var cur *token
	if n := len(a.stable); n > 0 && a.stable[n-1].validTo.After(now) {
		cur = a.stable[n-1]
	}
	switch {
	case in.ForceRefresh:
		if a.forceN >= forceDaily {
			fail(w, 45009, "reach max api daily quota limit")
			return
		}
		if cur != nil && now.Sub(a.lastForce) < forceMinSpacing {
			break // within 30 s of the last force: no refresh happens
		}
		a.forceN++
		a.lastForce = now
		if cur != nil {
			cur.validTo = now // force mode invalidates the previous token
		}
		cur = nil
	case cur != nil && !now.Before(cur.expires.Add(-overlap)):
		// Normal mode rotates 5 minutes early; the old token lives out its life.
		cur = nil
	}
	if cur == nil {
		cur = &token{value: newToken(), expires: now.Add(tokenLifetime), validTo: now.Add(tokenLifetime)}
		a.stable = append(prune(a.stable, now), cur)
	}
	writeJSON(w, map[string]any{"access_token": cur.value, "expires_in": int(cur.expires.Sub(now).Seconds())})
}

// authorize checks access_token on a business call.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	tok := r.URL.Query().Get("access_token")
	if tok == "" {
		fail(w, 41001, "access_token missing")
		return false
	}
	now := s.Clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.apps {
		for _, t := range append(append([]*token{}, a.classic...), a.stable...) {
			if t.value != tok {
				continue
			}
			switch {
			case !now.Before(t.expires):
				fail(w, 42001, "access_token expired")
				return false
			case !now.Before(t.validTo):
				fail(w, 40001, "invalid credential, access_token is invalid or not latest")
				return false
			}
			return true
		}
	}
	fail(w, 40001, "invalid credential, access_token is invalid or not latest")
	return false
}

func (s *Server) quota(w http.ResponseWriter, r *http.Request) {
	s.Count("quota")
	if !s.authorize(w, r) {
		return
	}
	var in struct {
		DeliveryID *string `json:"delivery_id"`
		BizID      *string `json:"biz_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.DeliveryID == nil || in.BizID == nil {
		fail(w, 47001, "data format error")
		return
	}
	s.mu.Lock()
	a, ok := s.accounts[*in.DeliveryID+"/"+*in.BizID]
	var acct Account
	if ok {
		acct = *a
	}
	known := false
	for _, c := range s.couriers {
		known = known || c.DeliveryID == *in.DeliveryID
	}
	s.mu.Unlock()
	switch {
	case !known:
		fail(w, 9300503, "delivery_id not registered")
	case !ok:
		fail(w, 9300525, "biz id not bind")
	case acct.Errcode != 0:
		fail(w, acct.Errcode, acct.Errmsg)
	default:
		writeJSON(w, map[string]any{"quota_num": acct.Quota})
	}
}

func (s *Server) deliveries(w http.ResponseWriter, r *http.Request) {
	s.Count("delivery/getall")
	if !s.authorize(w, r) {
		return
	}
	type svc struct {
		ServiceType int    `json:"service_type"`
		ServiceName string `json:"service_name"`
	}
	type item struct {
		DeliveryID   string `json:"delivery_id"`
		DeliveryName string `json:"delivery_name"`
		CanUseCash   int    `json:"can_use_cash"`
		CanGetQuota  int    `json:"can_get_quota"`
		ServiceType  []svc  `json:"service_type"`
	}
	s.mu.Lock()
	var data []item
	for _, c := range s.couriers {
		q := 0
		if c.CanGetQuota {
			q = 1
		}
		data = append(data, item{DeliveryID: c.DeliveryID, DeliveryName: c.Name, CanGetQuota: q, ServiceType: []svc{{0, "标准快递"}}})
	}
	s.mu.Unlock()
	writeJSON(w, map[string]any{"count": len(data), "data": data})
}

func (s *Server) allAccounts(w http.ResponseWriter, r *http.Request) {
	s.Count("account/getall")
	if !s.authorize(w, r) {
		return
	}
	type item struct {
		BizID           string `json:"biz_id"`
		DeliveryID      string `json:"delivery_id"`
		StatusCode      int    `json:"status_code"`
		Alias           string `json:"alias"`
		QuotaNum        int64  `json:"quota_num"`
		QuotaUpdateTime int64  `json:"quota_update_time"`
	}
	s.mu.Lock()
	list := []item{}
	now := s.Clock.Now().Unix()
	for _, k := range s.order {
		a := s.accounts[k]
		list = append(list, item{BizID: a.BizID, DeliveryID: a.DeliveryID, Alias: a.Alias, QuotaNum: a.Quota, QuotaUpdateTime: now})
	}
	s.mu.Unlock()
	writeJSON(w, map[string]any{"count": len(list), "list": list})
}
