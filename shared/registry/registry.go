// Package registry is the one list of the bundle's functions. The emulator,
// the descriptor generator (s.yaml, template.yaml), packaging and the tests all
// read it; nothing else names the functions.
package registry

import "slices"

// Var is an environment variable a function reads.
type Var struct {
	Name        string
	Secret      bool   // never logged; NoEcho in template.yaml; never a default value
	Default     string // empty: no default (the code's own default applies)
	Description string
	// Required: a deploy without it fails at deploy time (no default in
	// either descriptor), for settings no default can make safe: the
	// charge's money store.
	Required bool
	// Pattern is what a Required value must match (SAM AllowedPattern).
	Pattern string
	// ReadBy names the library that reads the variable when the bundle's
	// own configuration code does not (the coverage test accepts it then).
	ReadBy string
	// OnlyOn is the one descriptor platform (FC or AWS) whose code reads
	// the variable; empty: every platform. Only that platform's
	// descriptors declare it, so a deployer is not offered a setting the
	// function ignores there.
	OnlyOn string
}

// The descriptor platforms: FC is s.yaml and s.vpc.yaml (Function Compute),
// AWS is template.yaml (Lambda).
const (
	FC  = "fc"
	AWS = "aws"
)

// ReadOn says whether the code reads the variable on the platform.
func (v Var) ReadOn(platform string) bool { return v.OnlyOn == "" || v.OnlyOn == platform }

// EnvOn is the function's variables its code reads on the platform: what
// that platform's descriptors declare.
func (f Function) EnvOn(platform string) []Var {
	var out []Var
	for _, v := range f.Env {
		if v.ReadOn(platform) {
			out = append(out, v)
		}
	}
	return out
}

// PlatformVar is a variable the platform (or `cloudcall local`) sets for the
// function: it is read by the code but never belongs in a descriptor.
type PlatformVar struct {
	Name  string
	SetBy string
}

// PlatformVars lists the variables the code reads that the platforms set.
// Every other variable the code reads must be in the function's Env (a test
// derives the read list from the configuration code and checks both).
func PlatformVars() []PlatformVar {
	return []PlatformVar{
		{Name: "FC_RUNTIME_API", SetBy: "Function Compute (go1 runtime API address)"},
		{Name: "FC_FUNCTION_NAME", SetBy: "Function Compute"},
		{Name: "FC_REGION", SetBy: "Function Compute (with FC_CUSTOM_LISTEN_PORT, it says the process runs on FC)"},
		{Name: "FC_CUSTOM_LISTEN_PORT", SetBy: "Function Compute (custom runtime port)"},
		{Name: "AWS_LAMBDA_RUNTIME_API", SetBy: "AWS Lambda (runtime API address)"},
		{Name: "AWS_LAMBDA_FUNCTION_NAME", SetBy: "AWS Lambda"},
		{Name: "CLOUDCALL_PORT", SetBy: "cloudcall local / you, to run a function as a plain HTTP server"},
		{Name: "CLOUDCALL_HOST", SetBy: "cloudcall local / you, with CLOUDCALL_PORT (default 127.0.0.1)"},
		{Name: "CLOUDCALL_STORE_EPHEMERAL", SetBy: "cloudcall local / invoke, when CLOUDCALL_STORE is the emulator's embedded store (gone when it stops)"},
		{Name: "CLOUDCALL_FUNCTION", SetBy: "cloudcall local (the function name outside FC and Lambda)"},
		{Name: "FC_FUNCTION_MEMORY_SIZE", SetBy: "Function Compute (the memory size, for the soft memory limit)"},
		{Name: "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", SetBy: "AWS Lambda (the memory size, for the soft memory limit)"},
		{Name: "GOMEMLIMIT", SetBy: "you, to replace the soft memory limit the functions set (the Go runtime reads it)"},
	}
}

// IdempotencyStorePattern is what CLOUDCALL_IDEMPOTENCY_STORE may hold
// (recordstore.Pattern; a test keeps the two equal).
const IdempotencyStorePattern = `^(postgres|postgresql|mysql|redis|rediss)://.+`

// Schedule is a timer, defined once and rendered into each platform's dialect.
type Schedule struct {
	Name string
	// Cron is a standard 5-field expression (minute hour day-of-month month
	// day-of-week) evaluated in TimeZone.
	Cron     string
	TimeZone string
	// Payload is the JSON object the timer delivers as the envelope input.
	Payload string
	// Settings says where what a deployer might put in a timer's payload
	// belongs instead: a payload the function refuses is answered -1601
	// with it (runtime), since a timer has no caller to fix its input.
	Settings string
}

// Function is one deployable.
type Function struct {
	Name        string // folder under functions/ and the FC functionName
	API         string // the errMsg prefix
	Description string
	Vendor      string // wechat, ck1, alicloud, top: whose sandbox and secrets it uses
	MemoryMB    int
	TimeoutSec  int
	HTTPMethods []string // empty: no HTTP trigger
	Schedule    *Schedule
	Env         []Var
	// Example is an input that works against the sandbox (start-up curl
	// lines, docs, smoke tests).
	Example string
	// MovesMoney marks a money-moving write: template.yaml can alarm on its
	// error rate and on every outcome-unknown answer.
	MovesMoney bool
}

// Common variables every function reads.
func commonVars() []Var {
	return []Var{
		// Secret: a Redis URL may carry a password. Empty is "memory".
		{Name: "CLOUDCALL_STORE", Secret: true, Description: "shared state: empty or memory (one instance) or a redis:// / rediss:// URL (many instances); may carry a password, so it is NoEcho"},
		{Name: "CLOUDCALL_CALLER_KEYS", Secret: true, Description: "HTTP-trigger caller keys id:secret,..."},
		{Name: "CLOUDCALL_ALLOW_ANONYMOUS", Default: "false", Description: "true lets HTTP triggers through without caller auth (with no CLOUDCALL_CALLER_KEYS): only under cloudcall local or behind a platform that checks callers (FC authType: function, an API Gateway authorizer); a WARN line at start says so"},
		{Name: "CLOUDCALL_ALLOW_PLAINTEXT_UPSTREAM", Default: "false", Description: "true lets a vendor address (*_API_BASE, TOP_GATEWAY_URL) or a quota alert channel URL be plain http to another host (a sandbox or test receiver elsewhere); off, such an address is refused at start, since the credentials would cross the network in clear"},
		{Name: "CLOUDCALL_STORE_PREFIX", Default: "cloudcall:", Description: "key namespace in Redis (deployments in different accounts or regions can share one Redis; function names are fixed, so one deployment per account and region)"},
		{Name: "CLOUDCALL_TIMEOUT", Description: "deadline when the platform gives none (HTTP-server mode); empty: 10s (15s for the charge)"},
		{Name: "CLOUDCALL_MAX_BODY_BYTES", Default: "65536", Description: "policy: largest HTTP-trigger body, in bytes (1024 to 6291456); vendors document no limit (CK1 none on boxes): raise it for very long box lists"},
		{Name: "CLOUDCALL_UNKNOWN_FIELDS", Default: "refuse", Description: "policy: refuse (-1001 naming a field the function does not take, so a misspelled optional field is said, not silently left out) or ignore (skip it, as the vendors' own JSON binders do); the fields it takes are checked either way, and a member that differs from one only in case is refused either way (those binders would read it as that field)"},
		{Name: "CLOUDCALL_NULL_FIELDS", Default: "refuse", Description: "policy: refuse (-1001: no vendor document says null for a field) or absent (a null member the schema names is read as not sent: an optional one is left out, a required one is \"required\"; as the vendors' own JSON binders read it)"},
		{Name: "CLOUDCALL_LOG_LEVEL", Default: "info", Description: "debug, info, warn or error; debug adds a line per vendor request"},
		{Name: "CLOUDCALL_METRICS_NAMESPACE", Default: "cloudcall", Description: "CloudWatch namespace of the per-invocation EMF metrics (Lambda)",
			// Only Lambda gets EMF (runtime.setupMetrics); FC's invocation
			// log lines carry the same fields.
			OnlyOn: AWS},
	}
}

func wechatVars() []Var {
	return []Var{
		{Name: "WECHAT_APPID", Description: "mini program AppID"},
		{Name: "WECHAT_APPSECRET", Secret: true, Description: "mini program AppSecret"},
		{Name: "WECHAT_API_BASE", Default: "https://api.weixin.qq.com", Description: "WeChat API origin"},
		{Name: "WECHAT_TOKEN_MODE", Default: "stable", Description: "stable (stable_token, normal mode) or classic (cgi-bin/token)"},
	}
}

// All returns the functions, in a stable order. It builds a fresh slice each
// call so no caller can change another's view.
func All() []Function {
	return []Function{
		{
			Name: "logistics-get-quota", API: "openapi.logistics.getQuota", Vendor: "wechat",
			Description: "WeChat logistics.getQuota: electronic-waybill balance of a courier account",
			MemoryMB:    128, TimeoutSec: 10, HTTPMethods: []string{"POST"},
			Env:     append(wechatVars(), commonVars()...),
			Example: `{"deliveryId":"YTO","bizId":"xyz"}`,
		},
		{
			Name: "ck1-pricing-inbound-box", API: "ck1.pricing.inboundBox", Vendor: "ck1",
			Description: "CK1 POST /v1/pricing/inbound/box: first-leg freight quote for a list of boxes",
			MemoryMB:    128, TimeoutSec: 15, HTTPMethods: []string{"POST"},
			Env: append([]Var{
				{Name: "CK1_API_BASE", Default: "https://openapi.chukou1.cn", Description: "CK1 origin"},
				{Name: "CK1_ACCESS_TOKEN", Secret: true, Description: "fixed CK1 bearer token (or use OAuth below)"},
				{Name: "CK1_CLIENT_ID", Description: "CK1 OAuth client id"},
				{Name: "CK1_CLIENT_SECRET", Secret: true, Description: "CK1 OAuth client secret"},
				{Name: "CK1_REFRESH_TOKEN", Secret: true, Description: "CK1 OAuth refresh token (seed; rotated copies live in the store)"},
				{Name: "CK1_ALLOW_MEMORY_STORE", Default: "false", Description: "policy: let OAuth run on CLOUDCALL_STORE=memory (refused by default: refresh tokens are single-use and a restart would come back with the spent seed)"},
			}, commonVars()...),
			Example: `{"warehouseId":"US","boxes":[{"weight":1200,"length":30,"width":20,"height":15,"quantity":2}]}`,
		},
		{
			Name: "cams-query-chatapp-bind-waba", API: "cams.queryChatappBindWaba", Vendor: "alicloud",
			Description: "Alibaba Cloud CAMS QueryChatappBindWaba: the WhatsApp Business Account bound to a customer",
			MemoryMB:    128, TimeoutSec: 10, HTTPMethods: []string{"POST"},
			Env: append([]Var{
				{Name: "ALIBABA_CLOUD_ACCESS_KEY_ID", Description: "AccessKey id (FC passes role credentials per invocation instead)", ReadBy: "github.com/aliyun/credentials-go"},
				{Name: "ALIBABA_CLOUD_ACCESS_KEY_SECRET", Secret: true, Description: "AccessKey secret"},
				{Name: "ALIBABA_CLOUD_SECURITY_TOKEN", Secret: true, Description: "STS token, with STS credentials"},
				{Name: "CAMS_API_BASE", Default: "https://cams.ap-southeast-1.aliyuncs.com", Description: "CAMS origin"},
			}, commonVars()...),
			Example: `{"custSpaceId":"293483949493"}`,
		},
		{
			Name: "top-launch-extra-charge", API: "top.ascp.launchExtraCharge", Vendor: "top",
			Description: "Taobao Open Platform alibaba.ascp.industry.launch.extra.charge: charge extra on a service order (moves money)",
			MemoryMB:    128, TimeoutSec: 15, HTTPMethods: []string{"POST"}, MovesMoney: true,
			Env: append([]Var{
				{Name: "TOP_APP_KEY", Description: "TOP app key"},
				{Name: "TOP_APP_SECRET", Secret: true, Description: "TOP app secret"},
				{Name: "TOP_SESSION", Secret: true, Description: "default seller session (a call may pass its own)"},
				{Name: "TOP_SIGN_METHOD", Default: "hmac-sha256", Description: "md5, hmac or hmac-sha256"},
				{Name: "TOP_GATEWAY_URL", Default: "https://gw.api.taobao.com/router/rest", Description: "TOP router"},
				{Name: "TOP_MAX_PRICE_FEN", Default: "1000000", Description: "safety cap on one extra charge, in fen (default 10,000 CNY)"},
				{Name: "TOP_MIN_PRICE_FEN", Default: "0", Description: "floor of one extra charge, in fen (default 0: negative prices refused)"},
				{Name: "CLOUDCALL_IDEMPOTENCY_STORE", Secret: true, Required: true, Pattern: IdempotencyStorePattern,
					Description: "durable store of the charge's idempotency records: postgres://, mysql://, or redis:// / rediss:// with appendonly yes (docs/state.md: Money safety)"},
				{Name: "CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE", Default: "verify", Description: "verify (refuse a Redis without AOF, or one that may evict keys) or assume (Tair persistent memory, MemoryDB: durable without AOF; you assert no eviction too)"},
				{Name: "CLOUDCALL_IDEMPOTENCY_AFTER_LOSS", Default: "refuse", Description: "after the records store is found to have lost its data: refuse (every charge -1601 until cloudcall records reopen, after you reconciled) or continue (log and charge on: a key charged before can charge again)"},
			}, commonVars()...),
			Example: `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC123","price":12345,"type":2,"desc":"second visit"},"idempotencyKey":"demo-1"}`,
		},
		{
			Name: "quota-alert", API: "cloudcall.quotaAlert", Vendor: "wechat",
			Description: "Scheduled: checks watched courier accounts' waybill balance and warns before it runs out",
			MemoryMB:    128, TimeoutSec: 60,
			Schedule: &Schedule{Name: "quota-alert-hourly", Cron: "0 * * * *", TimeZone: "Asia/Shanghai", Payload: `{}`,
				Settings: "the input takes no fields: thresholds and the watch list are the QUOTA_ALERT_* variables (QUOTA_ALERT_THRESHOLD, QUOTA_ALERT_WATCH)"},
			Env: append(append(wechatVars(),
				Var{Name: "QUOTA_ALERT_WATCH", Default: "auto", Description: `"auto" (every bound account whose courier supports quota) or a JSON list of {deliveryId, bizId, threshold, name?}`},
				Var{Name: "QUOTA_ALERT_THRESHOLD", Default: "100", Description: "default threshold (waybills)"},
				Var{Name: "QUOTA_ALERT_COOLDOWN", Default: "6h", Description: "repeat a low/empty alert at most this often"},
				Var{Name: "QUOTA_ALERT_HORIZON", Description: "also alert when the forecast says the balance runs out within this (e.g. 24h); off when empty"},
				Var{Name: "QUOTA_ALERT_LANG", Default: "both", Description: "zh, en or both"},
				Var{Name: "QUOTA_ALERT_DINGTALK_URL", Secret: true, Description: "DingTalk robot webhook URL"},
				Var{Name: "QUOTA_ALERT_DINGTALK_SECRET", Secret: true, Description: "DingTalk robot signing secret"},
				Var{Name: "QUOTA_ALERT_WECOM_URL", Secret: true, Description: "WeCom robot webhook URL"},
				Var{Name: "QUOTA_ALERT_FEISHU_URL", Secret: true, Description: "Feishu/Lark bot webhook URL"},
				Var{Name: "QUOTA_ALERT_FEISHU_SECRET", Secret: true, Description: "Feishu/Lark bot signing secret"},
				Var{Name: "QUOTA_ALERT_SLACK_URL", Secret: true, Description: "Slack incoming webhook URL"},
				Var{Name: "QUOTA_ALERT_WEBHOOK_URL", Secret: true, Description: "generic JSON webhook URL"},
				Var{Name: "QUOTA_ALERT_WEBHOOK_SECRET", Secret: true, Description: "generic webhook HMAC-SHA256 secret"},
			), commonVars()...),
			Example: `{}`,
		},
	}
}

// Lookup finds a function by name.
func Lookup(name string) (Function, bool) {
	return find(func(f Function) bool { return f.Name == name })
}

// ByAPI finds a function by its errMsg prefix.
func ByAPI(api string) (Function, bool) {
	return find(func(f Function) bool { return f.API == api })
}

func find(match func(Function) bool) (Function, bool) {
	fs := All()
	i := slices.IndexFunc(fs, match)
	if i < 0 {
		return Function{}, false
	}
	return fs[i], true
}

// Names lists the function names in registry order.
func Names() []string {
	var out []string
	for _, f := range All() {
		out = append(out, f.Name)
	}
	return out
}
