package top

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cloudcall/cloudcall/shared/callerauth"
	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/idempotency/recordstore"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/upstream"
)

// defaultGateway is the vendor's own address (TOP_GATEWAY_URL unset).
const defaultGateway = "https://gw.api.taobao.com/router/rest"

// APILaunchExtraCharge is the errMsg prefix of the function.
const (
	APILaunchExtraCharge = "top.ascp.launchExtraCharge"
	MethodLaunchExtra    = "alibaba.ascp.industry.launch.extra.charge"
)

// defaultMaxPriceFen is the default of the TOP_MAX_PRICE_FEN policy: 10,000
// CNY. TOP documents price as a Long number of fen and no cap; an extra charge
// above this is almost surely a yuan-for-fen mistake, so it is refused unless
// the setting is raised. TOP_MIN_PRICE_FEN (default 0) refuses negative
// prices: the API launches an extra charge (增加费用), and what TOP does with
// a negative one is not documented.
const (
	defaultMaxPriceFen = 1_000_000
	defaultMinPriceFen = 0
)

// ExtraChargeParam is OmsLaunchExtraChargeParameter in the envelope's spelling.
// Its rules are the registry's schema (top-launch-extra-charge.input.json).
type ExtraChargeParam struct {
	WdsCoordinationOrderID string  `json:"wdsCoordinationOrderId"`
	Price                  *int64  `json:"price"`
	Type                   *int64  `json:"type"`
	Desc                   *string `json:"desc"`
	Feature                *string `json:"feature"`
}

// ExtraChargeInput is the function's input.
type ExtraChargeInput struct {
	Param          *ExtraChargeParam `json:"omsLaunchExtraChargeParameter"`
	Session        string            `json:"session"`
	IdempotencyKey string            `json:"idempotencyKey"`

	policy pricePolicy
}

// pricePolicy bounds price more tightly than TOP does (see defaultMaxPriceFen).
type pricePolicy struct{ min, max int64 }

// Validate applies the named price policies; the schema has already checked
// every documented rule.
func (in *ExtraChargeInput) Validate() error {
	const field = "omsLaunchExtraChargeParameter.price"
	switch p := *in.Param.Price; {
	case p > in.policy.max:
		return envelope.Invalid(field, "%d fen is over the safety cap of %d fen (TOP_MAX_PRICE_FEN); price is in fen, not yuan", p, in.policy.max)
	case p < in.policy.min:
		return envelope.Invalid(field, "%d fen is under the floor of %d fen (TOP_MIN_PRICE_FEN); an extra charge adds a fee", p, in.policy.min)
	}
	return nil
}

// wireParam is the object TOP takes, in the documented field order.
type wireParam struct {
	WdsCoordinationOrderID string `json:"wds_coordination_order_id"`
	Price                  int64  `json:"price"`
	Type                   int64  `json:"type"`
	// Absent fields are left out, as the Java SDK's JSONWriter skips null
	// fields; an empty string is a value it writes (vendor note §1.6).
	Desc    *string `json:"desc,omitempty"`
	Feature *string `json:"feature,omitempty"`
}

// encodeParam is the exact JSON string that is signed and sent.
func encodeParam(p *ExtraChargeParam) string {
	w := wireParam{WdsCoordinationOrderID: p.WdsCoordinationOrderID, Price: *p.Price, Type: *p.Type, Desc: p.Desc, Feature: p.Feature}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // TOP's own SDKs do not escape <>&
	_ = enc.Encode(w)
	return strings.TrimRight(buf.String(), "\n")
}

// ExtraChargeOutput is the success payload.
type ExtraChargeOutput struct {
	Result    ExtraChargeResult `json:"result"`
	RequestID string            `json:"requestId"`
}

// ExtraChargeResult mirrors TOP's ResultWrapper.
type ExtraChargeResult struct {
	Success bool            `json:"success"`
	Data    ExtraChargeData `json:"data"`
}

// ExtraChargeData is the new adjustment order.
type ExtraChargeData struct {
	ExtraChargeServiceOrderID string `json:"extraChargeServiceOrderId"`
	Feature                   string `json:"feature"`
}

type wireResponse struct {
	Result struct {
		Success bool `json:"success"`
		Data    struct {
			ExtraChargeServiceOrderID string `json:"extra_charge_service_order_id"`
			Feature                   string `json:"feature"`
		} `json:"data"`
		ErrorMessage string `json:"error_message"`
		ErrorCode    string `json:"error_code"`
	} `json:"result"`
	RequestID string `json:"request_id"`
}

// Charger launches extra charges at most once per idempotency key.
type Charger struct {
	client *Client
	guard  *idempotency.Guard
	// migration finds the records of releases whose fingerprint held the
	// session.
	migration *idempotency.Migration
	policy    pricePolicy
	schema    func() *envelope.Schema
	// log writes the line each charge leaves before it is sent (nil:
	// none, for embedders and tests that build a Charger by hand).
	log *slog.Logger
}

// NewCharger builds the operation's engine; prices outside [minPrice,
// maxPrice] fen are refused (TOP_MIN_PRICE_FEN, TOP_MAX_PRICE_FEN).
func NewCharger(c *Client, g *idempotency.Guard, minPrice, maxPrice int64) *Charger {
	return &Charger{client: c, guard: g, migration: g.Migration(migrationSessionFree), policy: pricePolicy{min: minPrice, max: maxPrice},
		schema: sync.OnceValue(func() *envelope.Schema {
			return envelope.MustCompileSchema(registry.InputSchema("top-launch-extra-charge"))
		})}
}

// migrationSessionFree names the release whose fingerprint dropped the
// session.
const migrationSessionFree = "fingerprint-without-session"

// Op is the function's operation. Its warm-up compiles the input schema
// (~0.15 ms in a fresh process) alongside the runtime's first poll.
func (ch *Charger) Op() envelope.Op {
	return envelope.Op{API: APILaunchExtraCharge, Handle: ch.handle, Warm: func(context.Context) { ch.schema() }}
}

func (ch *Charger) handle(ctx context.Context, in *envelope.Input) (any, error) {
	q := ExtraChargeInput{policy: ch.policy}
	if err := envelope.DecodeInput(in.Body, ch.schema().For(in), &q); err != nil {
		// A refusal still echoes a key the request gave, as every other
		// failure of a keyed call does: the body's (read on its own when
		// the schema refused the rest before anything was decoded), else
		// the header's, and neither when they differ.
		bodyKey := q.IdempotencyKey
		if bodyKey == "" {
			bodyKey = envelope.MemberString(in.Body, "idempotencyKey")
		}
		if bodyKey != "" && !keyText(bodyKey) {
			return nil, err // a key refused is no key in force: none is echoed
		}
		if key, e := idempotencyKey(bodyKey, in.Header, in.PlatformCaller != ""); e == nil && key != "" {
			return envelope.Prepared(withKey(envelope.Failure(APILaunchExtraCharge, envelope.As(err)), key)), nil
		}
		return nil, err
	}
	param := encodeParam(q.Param)
	// TOP documents session as optional (required only for APIs it tags as
	// needing authorization, which this API's page does not show: vendor
	// notes §1.2, §2). Without one the call goes out without it, and TOP
	// answers 26 if it wants one.
	session := q.Session
	if session == "" {
		session = ch.client.o.Session
	}
	// The request is the app and the parameter: not the session, which
	// names the seller the order id already names, and which changes when
	// the seller authorises again. A repeat after that is still a repeat
	// (with the session in it, a keyed repeat heard -1401 and a new key
	// charged again: an outside re-tester).
	canon, _ := json.Marshal([]string{MethodLaunchExtra, ch.client.o.AppKey, param})
	fp := idempotency.Fingerprint(canon)
	// What releases before this one fingerprinted, the session included:
	// their records are looked for while they may live.
	withSession := func() string {
		canon, _ := json.Marshal([]string{MethodLaunchExtra, ch.client.o.AppKey, session, param})
		return idempotency.Fingerprint(canon)
	}
	key, e := idempotencyKey(q.IdempotencyKey, in.Header, in.PlatformCaller != "")
	if e != nil {
		return nil, e
	}
	if idempotency.IsKeylessKey(key) && key != idempotency.KeylessKey(fp) && key != idempotency.KeylessKey(withSession()) {
		// auto: and a fingerprint names one request's keyless slot, which
		// an answer without a key echoes for the caller to repeat with.
		// Another request under it read as that one: a restore after a
		// loss took its fingerprint for this request's, the retry heard
		// "use a new key", and the new key charged again (an outside
		// re-tester). A key refused is no key in force: none is echoed.
		return nil, &envelope.Error{Code: envelope.CodeInvalidInput, Field: "idempotencyKey",
			Reason: "invalid input: idempotencyKey: auto: and 64 hex digits name the keyless slot of one request, and this request is another; repeat a request with the key its answer gave, or use a key of your own"}
	}
	if key != "" && q.IdempotencyKey == "" && in.SignedNonce != "" {
		// The header is not signed: a capture replayed with a new key would
		// be a new charge. Its nonce is kept with the charges' records, as
		// durable and as shared as they are, whatever CLOUDCALL_STORE holds
		// the caller-auth nonces in (per-instance memory by default).
		fresh, e := ch.guard.Once(ctx, "nonce:"+in.SignedNonce, callerauth.NonceTTL)
		if e != nil {
			return nil, e
		}
		if !fresh {
			return nil, &envelope.Error{Code: envelope.CodeUnauthenticated, Reason: "unauthenticated: replayed nonce (this signed request was already used with an Idempotency-Key header); sign every request anew", Err: callerauth.ErrReplayed}
		}
	}
	// A store that cannot be read is answered as Run answers it below:
	// -1501, with the key in force echoed.
	fp, e = ch.migration.Fingerprint(ctx, key, fp, withSession)
	slot := idempotency.KeylessKey(fp)
	inForce := key
	if inForce == "" {
		inForce = slot
	}
	// A keyless call is keyed by its fingerprint; a keyed one also leaves an
	// alias there, so the same request retried without its key is answered
	// from the keyed record instead of charging again. The key is echoed
	// inside the recorded answer, so a replay names the record that answered
	// and stays byte-identical.
	var resp envelope.Response
	var replayed bool
	orderID := q.Param.WdsCoordinationOrderID
	// What the charge's own lines say of it: the invocation line's
	// requestId, so a call's lines are found together (and a gateway's id
	// as that line gives it), its keys and its order.
	var attrs []any
	if ch.log != nil {
		attrs = []any{"requestId", cmp.Or(in.InvocationID, in.RequestID), "function", in.Function}
		if in.InvocationID != "" && in.RequestID != in.InvocationID {
			attrs = append(attrs, "gatewayRequestId", in.RequestID)
		}
		attrs = append(attrs, "idempotencyKey", inForce)
		if key != "" {
			attrs = append(attrs, "keylessKey", slot)
		}
		attrs = append(attrs, "orderId", orderID)
	}
	if e == nil {
		resp, replayed, e = ch.guard.Run(ctx, idempotency.Call{Key: key, Fingerprint: fp}, ch.chargeOnce(session, param, inForce, attrs, *q.Param.Price))
	}
	if e == nil && replayed {
		resp.Replayed, resp.Err = true, recordedError(resp.Body)
		// The key the recorded answer names: a keyless repeat answered
		// from a keyed call's record names that call's key.
		resp.Trace.IdempotencyKey = cmp.Or(envelope.MemberString(resp.Body, "idempotencyKey"), inForce)
	}
	if e != nil {
		// A keyless repeat answered from a keyed call names that call's
		// key: it is the one to reconcile.
		var by *idempotency.AnsweredBy
		if errors.As(e, &by) {
			inForce = by.Key
		}
		resp = withKey(envelope.Failure(APILaunchExtraCharge, e), inForce)
	}
	if key != "" {
		// The same request retried without its key is answered from this
		// slot: after a loss, cloudcall records restore needs its name too,
		// and only the key's lines have it. A -1304 line lacked it, and a
		// re-tester's keyless repeat of a keyed -1304 TOP had charged
		// charged again after the reopening.
		resp.Trace.KeylessKey = slot
	}
	resp.Trace.OrderID = orderID
	return envelope.Prepared(resp), nil
}

// chargeOnce is the guarded call: one charge, its answer echoing the key
// in force.
// It writes the line that names the charge before it leaves: a call
// killed while TOP charges writes no invocation line, and after a records
// loss the log was the only list of charges to restore (an outside tester
// charged four orders twice that way).
func (ch *Charger) chargeOnce(session, param, inForce string, attrs []any, price int64) func(context.Context) idempotency.Outcome {
	return func(ctx context.Context) idempotency.Outcome {
		if ch.log != nil {
			ch.log.Info("charge sending", append(attrs[:len(attrs):len(attrs)], "price", price)...)
		}
		out, err := ch.charge(ctx, session, param)
		if err != nil {
			ee := envelope.As(err)
			return idempotency.Outcome{Response: withKey(envelope.Failure(APILaunchExtraCharge, ee), inForce), Verdict: verdict(ee)}
		}
		r := withKey(envelope.Success(APILaunchExtraCharge, out), inForce)
		r.Trace.VendorID, r.Trace.UpstreamRequestID = out.Result.Data.ExtraChargeServiceOrderID, out.RequestID
		if out.Result.Data.ExtraChargeServiceOrderID == "" && ch.log != nil {
			// TOP documents the id, not that it is always sent: a success
			// without one is passed on as TOP gave it, and said here, as
			// it leaves nothing to reconcile by but the order (an outside
			// tester).
			ch.log.Warn("charge made without an extra charge service order id: TOP answered success and named none; reconcile by orderId",
				append(attrs[:len(attrs):len(attrs)], "upstreamRequestId", out.RequestID)...)
		}
		return idempotency.Outcome{Response: r, VendorID: out.Result.Data.ExtraChargeServiceOrderID}
	}
}

// maxKeyLen is the idempotency key's bound (the registry schema's
// idempotencyKey: it is part of the record's store key).
const maxKeyLen = 128

// idempotencyKey is the key in force: the input's idempotencyKey, else the
// Idempotency-Key header, held to the input field's rule (DESIGN §8 treats
// them as one key). The header may be sent once; sent with the field, it
// must say the same.
func idempotencyKey(field string, h http.Header, platform bool) (string, *envelope.Error) {
	var vals []string
	for k, vs := range h {
		if strings.EqualFold(k, "Idempotency-Key") {
			vals = append(vals, vs...)
		}
	}
	bad := func(reason string) *envelope.Error {
		return &envelope.Error{Code: envelope.CodeInvalidInput, Field: "idempotencyKey", Reason: "invalid input: Idempotency-Key header: " + reason}
	}
	switch {
	case len(vals) > 1:
		return "", bad(fmt.Sprintf("sent %d times; send one key", len(vals)))
	case len(vals) == 0:
		return field, nil
	}
	hk := vals[0]
	if platform {
		// SigV4 covers the body, not this header: a captured call replayed
		// with a new header would be a new charge, and no nonce of ours
		// can stop it.
		return "", bad("a caller authenticated by the platform (AWS_IAM) sends the key in the body's idempotencyKey, which its signature covers; this header it does not")
	}
	if strings.Contains(hk, ",") {
		// FC and API Gateway deliver a repeated header as its values joined
		// with commas: one key cannot be told from two.
		return "", bad(envelope.Quote(hk) + " holds a comma, as several headers joined by the platform do; send one key without commas (a key with a comma can go in idempotencyKey)")
	}
	if !keyText(hk) {
		// Quoted in part: the header is the caller's, up to the 16 KiB
		// header limit, and a 10,000-byte key came back whole.
		return "", bad(fmt.Sprintf("expected up to %d printable ASCII characters without spaces, got %s", maxKeyLen, envelope.Quote(hk)))
	}
	if field != "" && hk != "" && hk != field {
		return "", &envelope.Error{Code: envelope.CodeInvalidInput, Field: "idempotencyKey",
			Reason: fmt.Sprintf("invalid input: idempotencyKey %q and the Idempotency-Key header %q differ; send one key, or the same in both", field, hk)}
	}
	return cmp.Or(field, hk), nil
}

// keyText is the idempotencyKey rule: at most 128 bytes of ! to ~.
// ValidKey says whether s is an idempotency key the function takes (and
// so one a record can be under): 1 to 128 printable ASCII characters.
func ValidKey(s string) bool { return s != "" && keyText(s) }

func keyText(s string) bool {
	if len(s) > maxKeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '!' || s[i] > '~' {
			return false
		}
	}
	return true
}

// withKey echoes the idempotency key in force as the envelope's last field,
// on every answer once the key is known, so a caller that sent none learns the
// function's fingerprint key and can reconcile or repeat with it.
func withKey(resp envelope.Response, key string) envelope.Response {
	b := bytes.TrimRight(resp.Body, " \n")
	if len(b) < 2 || b[len(b)-1] != '}' {
		return resp
	}
	resp.Trace.IdempotencyKey = key
	k, _ := json.Marshal(key)
	out := make([]byte, 0, len(b)+len(k)+20)
	out = append(out, b[:len(b)-1]...)
	if len(bytes.TrimSpace(b[1:len(b)-1])) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"idempotencyKey":`...)
	out = append(out, k...)
	resp.Body = append(out, '}')
	return resp
}

// recordedError is the error a recorded answer carries (nil for a charge),
// so a replayed -1304 or refusal is logged and counted as what the caller
// hears, not as a success.
func recordedError(body []byte) *envelope.Error {
	e := envelope.FailureOf(APILaunchExtraCharge, body)
	if e != nil {
		e.Reason = "replayed: " + e.Reason
	}
	return e
}

// verdict keeps every answer after which TOP may have acted, and forgets
// those after which it certainly did not, so a retry with the key can run.
// charge only answers -1301/-1302 when the request never left (a request
// that left and got no answer is -1304).
func verdict(e *envelope.Error) idempotency.Verdict {
	switch e.Code {
	case envelope.CodeThrottled, envelope.CodeUpstreamTimeout, envelope.CodeUpstreamUnreachable, envelope.CodeConfig:
		return idempotency.Release
	case envelope.CodeUpstream:
		// An error_response here is a definite refusal (the others map to
		// CodeOutcomeUnknown); a business refusal (result.success=false) is
		// the backend's final answer to this charge and is replayed.
		if e.Upstream == nil || e.Upstream.Extra["layer"] != "result" {
			return idempotency.Release
		}
	}
	return idempotency.Keep
}

// charge makes the one call. It never retries: a write whose answer was lost
// may have happened.
func (ch *Charger) charge(ctx context.Context, session, param string) (*ExtraChargeOutput, error) {
	r := ch.client.Do(ctx, MethodLaunchExtra, session, map[string]string{"oms_launch_extra_charge_parameter": param})
	switch r.Outcome {
	case NotSent:
		return nil, upstream.TransportError("top", r.TransErr)
	case Unknown:
		up := &envelope.Upstream{Vendor: "top", HTTPStatus: r.Status}
		return nil, &envelope.Error{Code: envelope.CodeOutcomeUnknown, Upstream: up, Err: r.TransErr,
			Reason: "outcome unknown — reconcile before retrying: the charge was sent but no readable answer came back (" + upstream.Clean(r.TransErr).Error() + ")"}
	}
	if r.Error != nil {
		return nil, EnvelopeError(r.Error)
	}
	var w wireResponse
	if err := json.Unmarshal(r.Body, &w); err != nil {
		return nil, &envelope.Error{Code: envelope.CodeOutcomeUnknown, Reason: "outcome unknown — reconcile before retrying: TOP's answer could not be read",
			Err: err, Upstream: &envelope.Upstream{Vendor: "top", HTTPStatus: r.Status}}
	}
	if !w.Result.Success {
		return nil, &envelope.Error{Code: envelope.CodeUpstream,
			Reason: "TOP refused the charge: " + cmp.Or(strings.TrimSpace(w.Result.ErrorCode+" "+w.Result.ErrorMessage), "result.success false, without an error_code or error_message"),
			Upstream: &envelope.Upstream{Vendor: "top", HTTPStatus: r.Status, Code: w.Result.ErrorCode, Message: w.Result.ErrorMessage,
				RequestID: w.RequestID, Extra: map[string]any{"layer": "result"}}}
	}
	return &ExtraChargeOutput{
		Result:    ExtraChargeResult{Success: true, Data: ExtraChargeData{ExtraChargeServiceOrderID: w.Result.Data.ExtraChargeServiceOrderID, Feature: w.Result.Data.Feature}},
		RequestID: w.RequestID,
	}, nil
}

// DefaultTimeout is the charge's deadline when neither the platform nor
// CLOUDCALL_TIMEOUT sets one (HTTP-server mode): longer than the runtime's
// 10 s, as the registry documents, because a charge TOP is slow to answer
// is better awaited than cut off and left to reconcile.
const DefaultTimeout = 15 * time.Second

// Factory builds the top-launch-extra-charge function from the environment:
// its idempotency records go to CLOUDCALL_IDEMPOTENCY_STORE, else to
// CLOUDCALL_STORE when that is Redis; never to memory.
func Factory(ctx context.Context, d runtime.Deps) (envelope.Op, error) {
	return factory(ctx, d, func() (idempotency.Records, error) { return recordstore.FromEnv(d.Env, d.Log) })
}

// FactoryWith builds the function on the given records (tests, embedding).
func FactoryWith(records idempotency.Records) runtime.Factory {
	return func(ctx context.Context, d runtime.Deps) (envelope.Op, error) {
		return factory(ctx, d, func() (idempotency.Records, error) { return records, nil })
	}
}

func factory(_ context.Context, d runtime.Deps, open func() (idempotency.Records, error)) (envelope.Op, error) {
	fail := envelope.Op{API: APILaunchExtraCharge}
	secret, err := d.Env.Secret("TOP_APP_SECRET")
	if err != nil {
		return fail, err
	}
	appKey := d.Env.Get("TOP_APP_KEY", "")
	var missing []string
	if appKey == "" {
		missing = append(missing, "TOP_APP_KEY (the app key)")
	}
	if secret == "" {
		missing = append(missing, "TOP_APP_SECRET or TOP_APP_SECRET_FILE (the app secret)")
	}
	if len(missing) > 0 {
		return fail, fmt.Errorf("set %s", strings.Join(missing, " and "))
	}
	session, err := d.Env.Secret("TOP_SESSION")
	if err != nil {
		return fail, err
	}
	maxPrice, err := d.Env.Int("TOP_MAX_PRICE_FEN", defaultMaxPriceFen)
	if err != nil {
		return fail, err
	}
	minPrice, err := d.Env.Int("TOP_MIN_PRICE_FEN", defaultMinPriceFen)
	if err != nil {
		return fail, err
	}
	if minPrice > maxPrice {
		// Every charge would be refused as the caller's fault.
		return fail, fmt.Errorf("TOP_MIN_PRICE_FEN=%d is above TOP_MAX_PRICE_FEN=%d: no price could be charged; set the floor at or below the cap", minPrice, maxPrice)
	}
	gateway, err := upstream.Base(d.Env, "TOP_GATEWAY_URL", d.Env.Get("TOP_GATEWAY_URL", defaultGateway), defaultGateway)
	if err != nil {
		return fail, err
	}
	c, err := NewClient(Options{AppKey: appKey, Secret: secret, Session: session,
		SignMethod: d.Env.Get("TOP_SIGN_METHOD", SignHMACSHA256),
		Gateway:    gateway, HTTP: d.HTTP})
	if err != nil {
		return fail, err
	}
	records, err := open()
	if err != nil {
		return fail, err
	}
	timeout := cmp.Or(d.Timeout, DefaultTimeout)
	g := idempotency.New(guardOptions(records, appKey, timeout, d.Log))
	ch := NewCharger(c, g, int64(minPrice), int64(maxPrice))
	ch.log = d.Log
	op := ch.Op()
	op.Timeout = DefaultTimeout
	// The first charge also needs the records store dialled, checked and
	// prepared: the same warm-up does that after the schema.
	op.Warm = func(ctx context.Context) {
		ch.schema()
		g.Warm(ctx, timeout)
		ch.migration.Warm(ctx)
	}
	return op, nil
}

// guardOptions keep the charge's records per app key. A call in progress
// for longer than the function can run (plus a margin) died with its
// instance.
func guardOptions(records idempotency.Records, appKey string, timeout time.Duration, log *slog.Logger) idempotency.Options {
	return idempotency.Options{Records: records, Namespace: RecordsNamespace(appKey), Stuck: timeout + time.Minute, Log: log, Window: TimestampWindow}
}

// RecordsNamespace is where in its store the charge keeps the records of
// one app key.
func RecordsNamespace(appKey string) string { return "idem:top:" + appKey + ":" }

// TimestampWindow is how long TOP takes a request's timestamp: "the server
// accepts at most 10 minutes of client clock skew" (vendor note, TOP §1.2).
// A request sent and never answered can be charged until then.
const TimestampWindow = 10 * time.Minute

// RecordsOptions are how a person's tool opens the charge's records.
type RecordsOptions struct {
	Log *slog.Logger
	// Skew is how far ahead of the functions' clocks this machine's may be,
	// used when the store's clock cannot be read: a call then counts as
	// possibly running that much longer, so a running call is never taken
	// for a dead one.
	Skew time.Duration
	// ClockWarning hears why the store's clock could not be read (nil: not
	// said).
	ClockWarning func(error)
}

// sandboxAppKey is the bundled TOP sandbox's app key (topsbx.DemoAppKey, which
// this package does not import; cmd/cloudcall's records test holds the two
// equal).
const sandboxAppKey = "12345678"

// RecordsGuard opens the charge's records as the deployed function does
// (the same settings: CLOUDCALL_IDEMPOTENCY_STORE or CLOUDCALL_STORE, its
// prefix, TOP_APP_KEY, CLOUDCALL_TIMEOUT), for a person who reconciles an
// unknown outcome with TOP. Whether a call may still be running is judged,
// when the store's clock answers, by the earlier of it and this machine's:
// one clock running ahead cannot make a live call look dead (a store clock
// 90 s ahead, taken alone, settled a running charge and it charged twice:
// an outside tester), and with both right the tool agrees with the
// functions, which judge by their own (this machine's plus two minutes
// said "may still be running" long after the function answered -1304).
// Otherwise this machine's clock with o.Skew. Close the records when done.
func RecordsGuard(ctx context.Context, env *config.Env, o RecordsOptions) (*idempotency.Guard, idempotency.Records, error) {
	appKey := env.Get("TOP_APP_KEY", "")
	if appKey == "" {
		// The sandbox's is said too: records of a charge run by cloudcall
		// invoke or local were not found without it, and it is written
		// nowhere else a user reads (a re-tester).
		return nil, nil, errors.New("set TOP_APP_KEY (the app key the charge runs with: records are kept per app key; against the bundled TOP sandbox it is " + sandboxAppKey + ")")
	}
	timeout, err := env.Duration("CLOUDCALL_TIMEOUT", 0)
	if err != nil {
		return nil, nil, err
	}
	records, err := recordstore.FromEnv(env, o.Log)
	if err != nil {
		return nil, nil, err
	}
	opts := guardOptions(records, appKey, cmp.Or(timeout, DefaultTimeout), o.Log)
	opts.Skew = o.Skew
	if f, ok := records.(idempotency.Fencer); ok {
		at, cerr := f.Clock(ctx)
		switch {
		case cerr == nil:
			read := time.Now()
			opts.Now = func() time.Time { return idempotency.EarlierClock(at.Add(time.Since(read))) }
			opts.Skew = 0
		case o.ClockWarning != nil:
			o.ClockWarning(cerr)
		}
	}
	return idempotency.New(opts), records, nil
}

// RecordsMigration is the charge's fingerprint migration on g's records,
// for cloudcall records migration.
func RecordsMigration(g *idempotency.Guard) *idempotency.Migration {
	return g.Migration(migrationSessionFree)
}

// ChargedAnswer is what every retry of key is told once a person found at
// TOP that the charge was made, with its extra charge service order id and,
// when the person has it from the log, TOP's request id (else empty): a
// charge's success, as the function answers it.
func ChargedAnswer(key, orderID, requestID string) envelope.Response {
	out := &ExtraChargeOutput{Result: ExtraChargeResult{Success: true, Data: ExtraChargeData{ExtraChargeServiceOrderID: orderID}}, RequestID: requestID}
	return withKey(envelope.Success(APILaunchExtraCharge, out), key)
}
