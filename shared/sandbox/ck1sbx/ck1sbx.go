// Package ck1sbx is a stateful sandbox of the CK1 OpenAPI: OAuth with
// single-use rotating refresh tokens, bearer checks, the warehouse list, and
// inbound box pricing computed from a documented demo rate card, with CK1's
// own error body.
package ck1sbx

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"math"
	"math/big"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cloudcall/cloudcall/shared/sandbox"
)

// Demo credentials.
const (
	DemoClientID     = "ck1-demo-client"
	DemoClientSecret = "ck1-demo-client-secret"
	DemoRefreshToken = "ck1-demo-refresh-token-0"
	DemoCode         = "ck1-demo-authorization-code"
	DemoFixedToken   = "ck1-demo-fixed-token"
)

// Options seeds the sandbox.
type Options struct {
	// AccessLifetime is how long an issued access token lives (default 1h).
	AccessLifetime time.Duration
	// RefreshLifetime is how long a refresh token stays usable on the
	// sandbox clock (default 30 days, what CK1 answers as
	// RefreshTokenExpiresIn).
	RefreshLifetime time.Duration
	// ClientSecret and RefreshToken replace the demo ones when set.
	ClientSecret, RefreshToken, FixedToken string
}

// Server is the CK1 sandbox.
type Server struct {
	*sandbox.Sandbox
	life       time.Duration
	rlife      time.Duration
	warehouses []Warehouse
	secret     string
	seed       string

	mu      sync.Mutex
	access  map[string]time.Time // token → expiry
	refresh map[string]time.Time // live refresh tokens → expiry
	codes   map[string]bool
}

// New builds a sandbox with the demo client, one live refresh token and the
// demo authorization code.
func New(opts Options) *Server {
	if opts.AccessLifetime <= 0 {
		opts.AccessLifetime = time.Hour
	}
	if opts.RefreshLifetime <= 0 {
		opts.RefreshLifetime = 30 * 24 * time.Hour
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = DemoClientSecret
	}
	if opts.RefreshToken == "" {
		opts.RefreshToken = DemoRefreshToken
	}
	if opts.FixedToken == "" {
		opts.FixedToken = DemoFixedToken
	}
	s := &Server{Sandbox: sandbox.New("ck1"), life: opts.AccessLifetime, rlife: opts.RefreshLifetime, warehouses: DemoWarehouses(), secret: opts.ClientSecret, seed: opts.RefreshToken,
		access: map[string]time.Time{opts.FixedToken: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}, codes: map[string]bool{DemoCode: true}}
	s.refresh = map[string]time.Time{opts.RefreshToken: s.Clock.Now().Add(opts.RefreshLifetime)}
	return s
}

// Env points a function at this sandbox with OAuth demo credentials.
func (s *Server) Env(baseURL string) map[string]string {
	// CK1_ALLOW_MEMORY_STORE: this sandbox's seed token is its own and
	// dies with it, so a lone process may spend it on the memory store (a
	// test, a cold start measured against a fresh sandbox). The emulator's
	// instances share a Redis anyway.
	return map[string]string{"CK1_API_BASE": baseURL, "CK1_CLIENT_ID": DemoClientID, "CK1_CLIENT_SECRET": s.secret, "CK1_REFRESH_TOKEN": s.seed,
		"CK1_ALLOW_MEMORY_STORE": "true"}
}

// ExpireAccessTokens ends every OAuth access token now (the fixed one lives).
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range s.access {
		if s.access[t].Year() != 9999 {
			s.access[t] = s.Clock.Now()
		}
	}
}

// RevokeRefreshTokens kills every refresh token (the user withdrew consent).
func (s *Server) RevokeRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh = map[string]time.Time{}
}

// Handler serves the API behind fault injection and the admin endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", s.token)
	mux.HandleFunc("GET /v1/warehouses", s.bearer(s.listWarehouses))
	mux.HandleFunc("POST /v1/pricing/inbound/box", s.bearer(s.inboundBox))
	return s.Wrap(mux)
}

func newToken(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func ticket() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type ck1Error struct {
	Code    string `json:"Code"`
	Message string `json:"Message"`
}

// fail answers in CK1's error shape.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, errs ...ck1Error) {
	writeJSON(w, status, map[string]any{"Errors": errs, "TicketId": ticket(),
		"UtcDateTime": s.Clock.Now().UTC().Format("2006-01-02T15:04:05Z"), "RequestUri": "http://" + r.Host + r.URL.RequestURI()})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.Count("oauth2/token")
	_ = r.ParseForm() // query and form both count, as CK1's SDKs send both
	get := func(k string) string { return r.Form.Get(k) }
	if get("client_id") != DemoClientID || get("client_secret") != s.secret {
		writeJSON(w, http.StatusBadRequest, map[string]string{"Message": "client_id 或 client_secret 无效"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch get("grant_type") {
	case "authorization_code":
		if !s.codes[get("code")] {
			writeJSON(w, http.StatusBadRequest, map[string]string{"Message": "授权码无效或已使用"})
			return
		}
		delete(s.codes, get("code"))
	case "refresh_token":
		s.Count("refresh")
		rt := get("refresh_token")
		if exp, ok := s.refresh[rt]; !ok || !s.Clock.Now().Before(exp) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"Message": "RefreshToken 无效、已过期或已被使用"})
			return
		}
		delete(s.refresh, rt) // single use: the answer carries its successor
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"Message": "grant_type 无效"})
		return
	}
	at, rt := newToken("ck1at_"), newToken("ck1rt_")
	s.access[at] = s.Clock.Now().Add(s.life)
	s.refresh[rt] = s.Clock.Now().Add(s.rlife)
	writeJSON(w, http.StatusOK, map[string]any{"AccessToken": at, "AccessTokenExpiresIn": int(s.life.Seconds()),
		"RefreshToken": rt, "RefreshTokenExpiresIn": int(s.rlife.Seconds()), "CustomerId": "DEMO"})
}

func (s *Server) bearer(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		exp, known := s.access[tok]
		s.mu.Unlock()
		if !ok || !known || !s.Clock.Now().Before(exp) {
			s.Count("unauthorized")
			s.fail(w, r, http.StatusUnauthorized, ck1Error{"800F0401", "AccessToken无效或已过期 (invalid or expired access token)"})
			return
		}
		next(w, r)
	}
}

func (s *Server) listWarehouses(w http.ResponseWriter, r *http.Request) {
	var out []map[string]string
	for _, wh := range s.warehouses {
		out = append(out, map[string]string{"WarehouseId": wh.ID, "WarehouseName": wh.Name})
	}
	writeJSON(w, http.StatusOK, out)
}

var codeRe = regexp.MustCompile(`^[a-zA-Z0-9\-_]*$`)

// int32Of reads a JSON number as a .NET Int32 would bind it: an integer
// value (1e3 and 1000.0 included) from -2147483648 to 2147483647.
func int32Of(n json.Number) (int64, bool) {
	if v, err := strconv.ParseInt(string(n), 10, 32); err == nil {
		return v, true
	}
	r, ok := new(big.Rat).SetString(string(n))
	if !ok || !r.IsInt() || !r.Num().IsInt64() {
		return 0, false
	}
	v := r.Num().Int64()
	return v, v >= math.MinInt32 && v <= math.MaxInt32
}

// integerOf reads any JSON integer (2.0 and 1e3 included).
func integerOf(n json.Number) (*big.Int, bool) {
	r, ok := new(big.Rat).SetString(string(n))
	if !ok || !r.IsInt() {
		return nil, false
	}
	return r.Num(), true
}

// decimal82 reads a decimal(8,2): at most 2 decimals and |x| ≤ 999999.99.
func decimal82(s string) (*big.Rat, bool) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, false
	}
	hundredths := new(big.Rat).Mul(r, big.NewRat(100, 1))
	if !hundredths.IsInt() || new(big.Rat).Abs(r).Cmp(big.NewRat(99999999, 100)) > 0 {
		return nil, false
	}
	return r, true
}

func (s *Server) inboundBox(w http.ResponseWriter, r *http.Request) {
	s.Count("pricing")
	var in struct {
		ServiceCode string  `json:"ServiceCode"`
		WarehouseID *string `json:"WarehouseId"`
		LocationID  string  `json:"LocationId"`
		Boxes       []*struct {
			Weight   *json.Number `json:"Weight"`
			Length   *json.Number `json:"Length"`
			Width    *json.Number `json:"Width"`
			Height   *json.Number `json:"Height"`
			Quantity *json.Number `json:"Quantity"`
		} `json:"Boxes"`
		IncludeUnsuccessful bool `json:"IncludeUnsuccessful"`
		IsCustomsClearance  bool `json:"IsCustomsClearance"`
		IsBorrowTaxNo       bool `json:"IsBorrowTaxNo"`
	}
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		s.fail(w, r, http.StatusBadRequest, ck1Error{"800F0400", "请求体无法解析 (malformed body)"})
		return
	}
	// The documented rules of POST /v1/pricing/inbound/box: WarehouseId
	// required, 0 to 10 characters of the pattern (an empty code is a
	// warehouse that does not exist), ServiceCode and LocationId lengths,
	// Weight 1..2147483647, Quantity an integer (any: no range is
	// documented; a total no Int32 of grams holds is a failed service), the
	// sides decimal(8,2).
	var errs []ck1Error
	warehouse := ""
	if in.WarehouseID != nil {
		warehouse = *in.WarehouseID
	}
	if in.WarehouseID == nil || utf8.RuneCountInString(warehouse) > 10 || !codeRe.MatchString(warehouse) {
		errs = append(errs, ck1Error{"800F0410", "WarehouseId 必须, 满足正则 ^[a-zA-Z0-9\\-_]*$ 且长度 0~10"})
	}
	if utf8.RuneCountInString(in.ServiceCode) > 30 || !codeRe.MatchString(in.ServiceCode) {
		errs = append(errs, ck1Error{"800F0411", "ServiceCode 必须满足正则 ^[a-zA-Z0-9\\-_]*$ 且长度 0~30"})
	}
	if utf8.RuneCountInString(in.LocationID) > 30 {
		errs = append(errs, ck1Error{"800F0412", "LocationId 长度 0~30"})
	}
	if in.Boxes == nil {
		errs = append(errs, ck1Error{"800F0413", "Boxes 必须"})
	}
	boxes := make([]box, 0, len(in.Boxes))
	for _, b := range in.Boxes {
		if b == nil || b.Weight == nil || b.Quantity == nil || b.Length == nil || b.Width == nil || b.Height == nil {
			errs = append(errs, ck1Error{"800F0414", "箱子的 Weight、Length、Width、Height、Quantity 必须"})
			break
		}
		weight, okW := int32Of(*b.Weight)
		quantity, okQ := integerOf(*b.Quantity)
		if !okW || weight < 1 {
			errs = append(errs, ck1Error{"800F0416", "Weight 必须为 1~2147483647 的整数 (g)"})
			break
		}
		if !okQ {
			errs = append(errs, ck1Error{"800F0417", "Quantity 必须为整数"})
			break
		}
		bx := box{weight: weight, quantity: quantity}
		for i, d := range []*json.Number{b.Length, b.Width, b.Height} {
			rat, ok := decimal82(string(*d))
			if !ok {
				errs = append(errs, ck1Error{"800F0415", "Length/Width/Height 必须为 decimal(8,2): 最多 6 位整数和 2 位小数"})
				break
			}
			bx.dims[i] = rat
		}
		boxes = append(boxes, bx)
	}
	var wh *Warehouse
	for i := range s.warehouses {
		if s.warehouses[i].ID == warehouse {
			wh = &s.warehouses[i]
		}
	}
	if len(errs) == 0 && wh == nil {
		errs = append(errs, ck1Error{"800F0420", "仓库 " + warehouse + " 不存在"})
	}
	if len(errs) > 0 {
		s.fail(w, r, http.StatusBadRequest, errs...)
		return
	}
	out := []any{}
	for _, svc := range wh.Services {
		if in.ServiceCode != "" && !strings.EqualFold(in.ServiceCode, svc.Code) {
			continue
		}
		lines, ok, reason := svc.quote(boxes, in.IsCustomsClearance, in.IsBorrowTaxNo)
		if !ok {
			if in.IncludeUnsuccessful {
				out = append(out, map[string]any{"ServiceCode": svc.Code, "ServiceName": svc.Name, "Success": false, "Message": reason,
					"ChargeInfo": nil, "LogisticsTimes": nil})
			}
			continue
		}
		var detail []map[string]any
		sums := map[string]int64{}
		var order []string
		for _, l := range lines {
			detail = append(detail, map[string]any{"Currency": l.currency, "Amount": json.Number(cents(l.cents)), "ChargeName": l.name, "Remark": l.remark})
			if _, seen := sums[l.currency]; !seen {
				order = append(order, l.currency)
			}
			sums[l.currency] += l.cents
		}
		var summary []map[string]any
		for _, c := range order {
			summary = append(summary, map[string]any{"Currency": c, "Amount": json.Number(cents(sums[c]))})
		}
		out = append(out, map[string]any{"ServiceCode": svc.Code, "ServiceName": svc.Name, "Success": true, "Message": "",
			"ChargeInfo": map[string]any{"Summary": summary, "Detail": detail}, "LogisticsTimes": map[string]int{"Min": svc.MinH, "Max": svc.MaxH}})
	}
	writeJSON(w, http.StatusOK, out)
}
