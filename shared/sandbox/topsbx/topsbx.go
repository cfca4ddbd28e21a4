// Package topsbx is a stateful sandbox of the Taobao Open Platform router for
// alibaba.ascp.industry.launch.extra.charge: it checks the app key, the
// session, the 10-minute GMT+8 timestamp window and the signature (md5, hmac,
// hmac-sha256) the way TOP does, records every accepted charge in a ledger,
// and answers with TOP's real error_response codes.
package topsbx

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"hash"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cloudcall/cloudcall/shared/sandbox"
)

// Demo credentials.
const (
	DemoAppKey  = "12345678"
	DemoSecret  = "top-demo-secret-0123456789"
	DemoSession = "top-demo-session-6101a2b3c4d5"
)

// Seeded order ids that make the sandbox answer with a specific failure.
const (
	OrderNoPermission = "BFC-ERR-11"    // code 11 Insufficient ISV Permissions
	OrderRemoteISP    = "BFC-ERR-15ISP" // code 15 isp.top-remote-service-unavailable (ambiguous)
	OrderRemoteISV    = "BFC-ERR-15ISV" // code 15 isv.invalid-parameter
	OrderThrottled    = "BFC-ERR-7"     // code 7 App Call Limited, ban 42 s
	OrderBadArgs      = "BFC-ERR-41"    // code 41 Invalid Arguments
	OrderRefused      = "BFC-REFUSED"   // result.success=false (business layer)
)

const method = "alibaba.ascp.industry.launch.extra.charge"

// Charge is one accepted extra charge.
type Charge struct {
	ID      string    `json:"id"`
	OrderID string    `json:"orderId"`
	Price   int64     `json:"price"` // fen
	Type    int64     `json:"type"`
	Desc    string    `json:"desc,omitempty"`
	Feature string    `json:"feature,omitempty"`
	At      time.Time `json:"at"`
}

// Options seeds the sandbox; the zero value has the demo app and session.
type Options struct {
	Apps     map[string]string // app key → secret
	Sessions []string
}

// Server is the TOP sandbox.
type Server struct {
	*sandbox.Sandbox
	apps     map[string]string
	sessions map[string]bool

	mu     sync.Mutex
	ledger []Charge
	seq    int
}

// New builds a sandbox.
func New(opts Options) *Server {
	if opts.Apps == nil {
		opts.Apps = map[string]string{DemoAppKey: DemoSecret}
	}
	if opts.Sessions == nil {
		opts.Sessions = []string{DemoSession}
	}
	s := &Server{Sandbox: sandbox.New("top"), apps: opts.Apps, sessions: map[string]bool{}}
	for _, x := range opts.Sessions {
		s.sessions[x] = true
	}
	return s
}

// Env points a function at this sandbox with the demo credentials.
func (s *Server) Env(baseURL string) map[string]string {
	return map[string]string{"TOP_GATEWAY_URL": baseURL + "/router/rest", "TOP_APP_KEY": DemoAppKey, "TOP_APP_SECRET": DemoSecret, "TOP_SESSION": DemoSession}
}

// validSession says whether TOP takes session.
func (s *Server) validSession(session string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[session]
}

// authorise adds a session and revokes one (either may be empty) and
// returns the sessions taken now, sorted.
func (s *Server) authorise(add, revoke string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if revoke != "" {
		delete(s.sessions, revoke)
	}
	if add != "" {
		s.sessions[add] = true
	}
	return slices.Sorted(maps.Keys(s.sessions))
}

// Charges returns the ledger entries of an order (all orders when empty).
func (s *Server) Charges(orderID string) []Charge {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Charge{} // an order without charges is [], not null
	for _, c := range s.ledger {
		if orderID == "" || c.OrderID == orderID {
			out = append(out, c)
		}
	}
	return out
}

// Handler serves the router behind fault injection and the admin endpoints.
func (s *Server) Handler() http.Handler {
	vendor := http.NewServeMux()
	vendor.HandleFunc("/router/rest", s.rest)
	// The ledger sits in front of Wrap: Wrap keeps /__sandbox/ for the
	// shared admin endpoints and would answer 404 for this one.
	outer := http.NewServeMux()
	outer.HandleFunc("GET /__sandbox/top/charges", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"charges": s.Charges(r.URL.Query().Get("order"))})
	})
	// A seller authorising again: a new session, and the old one revoked
	// (TOP answers 27 for it then), so a user can try a TOP_SESSION change.
	outer.HandleFunc("POST /__sandbox/top/sessions", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Add    string `json:"add"`
			Revoke string `json:"revoke"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Add == "" && req.Revoke == "" {
			w.Header().Set("Content-Type", "application/json;charset=UTF-8")
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": `expected {"add": "<new session>", "revoke": "<old session>"} (either or both)`})
			return
		}
		writeJSON(w, map[string]any{"sessions": s.authorise(req.Add, req.Revoke)})
	})
	outer.HandleFunc("GET /__sandbox/top/sessions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"sessions": s.authorise("", "")})
	})
	outer.Handle("/", s.Wrap(vendor))
	return sandbox.GuardAdmin(outer) // its own admin endpoints too
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}

func requestID() string {
	b := make([]byte, 7)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// reply writes TOP's answers in the format the request asked for: XML when
// format is absent or "xml" (TOP's default), JSON for "json"; with
// simplify=true a JSON success has no <method>_response wrapper.
type reply struct {
	w        http.ResponseWriter
	json     bool
	simplify bool
}

func (rp reply) fail(code int, msg, subCode, subMsg string) {
	e := []kv{{"code", code}, {"msg", msg}}
	if subCode != "" {
		e = append(e, kv{"sub_code", subCode}, kv{"sub_msg", subMsg})
	}
	e = append(e, kv{"request_id", requestID()})
	rp.write("error_response", e)
}

// kv is one member of an answer, in TOP's order.
type kv struct {
	k string
	v any
}

func (rp reply) success(body []kv) {
	if rp.json && rp.simplify {
		rp.writeJSON(body)
		return
	}
	rp.write(responseKey, body)
}

func (rp reply) write(root string, body []kv) {
	if rp.json {
		rp.writeJSON([]kv{{root, body}})
		return
	}
	rp.w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	var b strings.Builder
	b.WriteString(xml.Header)
	writeXML(&b, root, body)
	_, _ = rp.w.Write([]byte(b.String()))
}

func (rp reply) writeJSON(body []kv) {
	rp.w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	var b strings.Builder
	writeJSONObject(&b, body)
	_, _ = rp.w.Write([]byte(b.String()))
}

func writeJSONObject(b *strings.Builder, body []kv) {
	b.WriteByte('{')
	for i, m := range body {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.k)
		b.Write(k)
		b.WriteByte(':')
		if sub, ok := m.v.([]kv); ok {
			writeJSONObject(b, sub)
			continue
		}
		v, _ := json.Marshal(m.v)
		b.Write(v)
	}
	b.WriteByte('}')
}

func writeXML(b *strings.Builder, name string, v any) {
	b.WriteString("<" + name + ">")
	if sub, ok := v.([]kv); ok {
		for _, m := range sub {
			writeXML(b, m.k, m.v)
		}
	} else {
		_ = xml.EscapeText(b, []byte(fmt.Sprint(v)))
	}
	b.WriteString("</" + name + ">")
}

const responseKey = "alibaba_ascp_industry_launch_extra_charge_response"

var gmt8 = time.FixedZone("GMT+8", 8*3600)

// versionRe is what a version looks like (2.0); anything else is code 33.
var versionRe = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)

// signature recomputes TOP's sign independently of the client package.
func signature(secret, method string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if k != "sign" && v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + params[k])
	}
	var h hash.Hash
	switch method {
	case "hmac":
		h = hmac.New(md5.New, []byte(secret))
	case "hmac-sha256":
		h = hmac.New(sha256.New, []byte(secret))
	default:
		sum := md5.Sum([]byte(secret + b.String() + secret))
		return strings.ToUpper(hex.EncodeToString(sum[:]))
	}
	h.Write([]byte(b.String()))
	return strings.ToUpper(hex.EncodeToString(h.Sum(nil)))
}

func (s *Server) rest(w http.ResponseWriter, r *http.Request) {
	s.Count("rest")
	rp := reply{w: w}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		rp.fail(9, "Http Action Not Allowed", "", "")
		return
	}
	if err := r.ParseForm(); err != nil {
		rp.fail(41, "Invalid Arguments", "isv.invalid-parameter", "表单无法解析")
		return
	}
	p := map[string]string{}
	for k := range r.Form {
		p[k] = r.Form.Get(k)
	}
	switch strings.ToLower(p["format"]) {
	case "", "xml":
	case "json":
		rp.json = true
		rp.simplify = p["simplify"] == "true"
	default:
		rp.fail(23, "Invalid Format", "", "")
		return
	}
	secret, ok := s.apps[p["app_key"]]
	switch {
	case p["method"] == "":
		rp.fail(21, "Missing Method", "", "")
		return
	case p["method"] != method:
		rp.fail(22, "Invalid Method", "", "")
		return
	case p["app_key"] == "":
		rp.fail(28, "Missing App Key", "", "")
		return
	case !ok:
		rp.fail(29, "Invalid App Key", "", "")
		return
	case p["timestamp"] == "":
		rp.fail(30, "Missing Timestamp", "", "")
		return
	case p["v"] == "":
		rp.fail(32, "Missing Version", "", "")
		return
	case !versionRe.MatchString(p["v"]):
		rp.fail(33, "Invalid Version", "", "")
		return
	case p["v"] != "2.0":
		rp.fail(34, "Unsupported Version", "", "")
		return
	case p["sign"] == "":
		rp.fail(24, "Missing Signature", "", "")
		return
	}
	ts, err := time.ParseInLocation("2006-01-02 15:04:05", p["timestamp"], gmt8)
	if err != nil || absDur(s.Clock.Now().Sub(ts)) > 10*time.Minute {
		rp.fail(31, "Invalid Timestamp", "isv.timestamp-limit-error", "时间戳超出允许范围 (GMT+8, ±10 分钟)")
		return
	}
	if sm := p["sign_method"]; sm != "" && sm != "md5" && sm != "hmac" && sm != "hmac-sha256" {
		rp.fail(25, "Invalid Signature", "", "")
		return
	}
	if !hmac.Equal([]byte(signature(secret, p["sign_method"], p)), []byte(p["sign"])) {
		rp.fail(25, "Invalid Signature", "", "")
		return
	}
	if p["session"] == "" {
		rp.fail(26, "Missing Session", "", "")
		return
	}
	if !s.validSession(p["session"]) {
		rp.fail(27, "Invalid Session", "invalid-sessionkey", "SessionKey非法")
		return
	}
	raw := p["oms_launch_extra_charge_parameter"]
	if raw == "" {
		rp.fail(40, "Missing Required Arguments", "isv.missing-parameter:oms_launch_extra_charge_parameter", "缺少必选参数")
		return
	}
	// The documented fields: wds_coordination_order_id String required,
	// price and type Number required (Long in TOP's SDKs), type 1..8, desc
	// and feature optional Strings. Nothing else is checked: TOP states no
	// other limit.
	var in struct {
		OrderID *string `json:"wds_coordination_order_id"`
		Price   *int64  `json:"price"`
		Type    *int64  `json:"type"`
		Desc    string  `json:"desc"`
		Feature string  `json:"feature"`
	}
	if err := json.Unmarshal([]byte(raw), &in); err != nil {
		rp.fail(41, "Invalid Arguments", "isv.invalid-parameter", "非法参数")
		return
	}
	switch {
	case in.OrderID == nil: // present is enough: TOP documents a String, no length
		rp.fail(40, "Missing Required Arguments", "isv.missing-parameter:wds_coordination_order_id", "缺少必选参数")
		return
	case in.Price == nil:
		rp.fail(40, "Missing Required Arguments", "isv.missing-parameter:price", "缺少必选参数")
		return
	case in.Type == nil:
		rp.fail(40, "Missing Required Arguments", "isv.missing-parameter:type", "缺少必选参数")
		return
	}
	switch *in.OrderID {
	case OrderNoPermission:
		rp.fail(11, "Insufficient ISV Permissions", "isv.permission-api-package-limit", "请申请权限包")
		return
	case OrderRemoteISP:
		rp.fail(15, "Remote service error", "isp.top-remote-service-unavailable", "远程服务不可用")
		return
	case OrderRemoteISV:
		rp.fail(15, "Remote service error", "isv.invalid-parameter", "非法参数")
		return
	case OrderThrottled:
		rp.fail(7, "App Call Limited", "accesscontrol.limited-by-app-access-count", "This ban will last for 42 more seconds")
		return
	case OrderBadArgs:
		rp.fail(41, "Invalid Arguments", "isv.invalid-parameter:price", "非法参数")
		return
	case OrderRefused:
		rp.success([]kv{
			{"result", []kv{{"success", false}, {"error_message", "服务异常: 服务单已完结，不能发起增加费用"}, {"error_code", "15"}}},
			{"request_id", requestID()},
		})
		return
	}
	if *in.Type < 1 || *in.Type > 8 {
		rp.fail(41, "Invalid Arguments", "isv.invalid-parameter:type", "非法参数")
		return
	}
	s.mu.Lock()
	s.seq++
	c := Charge{ID: fmt.Sprintf("ECS%010d", 7000000000+s.seq), OrderID: *in.OrderID, Price: *in.Price, Type: *in.Type,
		Desc: in.Desc, Feature: in.Feature, At: s.Clock.Now()}
	s.ledger = append(s.ledger, c)
	s.mu.Unlock()
	s.Count("charge")
	feature := in.Feature
	rp.success([]kv{
		{"result", []kv{{"success", true}, {"data", []kv{{"extra_charge_service_order_id", c.ID}, {"feature", feature}}}}},
		{"request_id", requestID()},
	})
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
