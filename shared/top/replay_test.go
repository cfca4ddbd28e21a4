package top_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/callerauth"
	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/top"
)

const (
	replayKeyID  = "backend"
	replaySecret = "0123456789abcdef0123"
)

// signedCharge is an FC HTTP trigger event of a charge signed by the caller,
// with extra headers that are not signed.
func signedCharge(t *testing.T, body, nonce string, hdr map[string][]string) []byte {
	t.Helper()
	path := "/top-launch-extra-charge"
	headers := map[string]string{"Content-Type": "application/json",
		"Authorization": callerauth.Header(replayKeyID, replaySecret, "POST", path, "", time.Now().Unix(), nonce, []byte(body))}
	for k, vs := range hdr {
		headers[k] = strings.Join(vs, ",") // as FC joins a repeated header
	}
	ev, err := json.Marshal(map[string]any{"version": "v1", "rawPath": path, "headers": headers, "body": body, "isBase64Encoded": false,
		"requestContext": map[string]any{"requestId": nonce, "http": map[string]string{"method": "POST", "path": path}}})
	require.NoError(t, err)
	return ev
}

// twoInstances are two instances of the charge as deployed with caller keys
// and the default CLOUDCALL_STORE (memory, per instance: where caller-auth
// nonces live), sharing only the durable records store.
func twoInstances(t *testing.T) (*topsbx.Server, [2]*runtime.Handler) {
	t.Helper()
	sbx := topsbx.New(topsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	t.Cleanup(srv.Close)
	vars := sbx.Env(srv.URL)
	vars["CLOUDCALL_CALLER_KEYS"] = replayKeyID + ":" + replaySecret
	records := idempotency.NewMemory(nil)
	var hs [2]*runtime.Handler
	for i := range hs {
		env := config.FromMap(vars)
		h, err := runtime.New(context.Background(), env, runtime.NewLogger(io.Discard, env), top.FactoryWith(records))
		require.NoError(t, err)
		hs[i] = h
	}
	return sbx, hs
}

// loggedCharge is one instance of the charge on records against a fresh
// TOP sandbox, its log lines in logs, and its environment; keys turns caller
// keys on.
func loggedCharge(t *testing.T, keys bool, records idempotency.Records) (*topsbx.Server, *runtime.Handler, *strings.Builder, map[string]string) {
	t.Helper()
	sbx := topsbx.New(topsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	t.Cleanup(srv.Close)
	vars := sbx.Env(srv.URL)
	if keys {
		vars["CLOUDCALL_CALLER_KEYS"] = replayKeyID + ":" + replaySecret
	}
	env := config.FromMap(vars)
	logs := &strings.Builder{}
	h, err := runtime.New(context.Background(), env, runtime.NewLogger(logs, env), top.FactoryWith(records))
	require.NoError(t, err)
	return sbx, h, logs, vars
}

func answer(t *testing.T, h *runtime.Handler, ev []byte) (int, map[string]any) {
	t.Helper()
	var resp struct {
		Status int    `json:"statusCode"`
		Body   string `json:"body"`
	}
	require.NoError(t, json.Unmarshal(h.Invoke(context.Background(), ev, runtime.Meta{}), &resp))
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(resp.Body), &m), resp.Body)
	return resp.Status, m
}

// A signed charge captured and replayed on another instance with a new
// Idempotency-Key header (which the signature does not cover) is refused:
// its nonce is kept with the charges' records, not in the instance's memory.
// Before, both calls answered errCode 0 and TOP's ledger held 2 charges.
func TestACapturedChargeReplayedWithANewHeaderKeyIsRefused(t *testing.T) {
	sbx, hs := twoInstances(t)
	body := `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-REPLAY","price":100,"type":1}}`
	nonce := "replay-nonce-0123456789"
	st, first := answer(t, hs[0], signedCharge(t, body, nonce, map[string][]string{"Idempotency-Key": {"first"}}))
	require.Equal(t, 200, st, first)
	require.Equal(t, 0.0, first["errCode"], first)
	require.Equal(t, "first", first["idempotencyKey"])

	st, replay := answer(t, hs[1], signedCharge(t, body, nonce, map[string][]string{"Idempotency-Key": {"attacker"}}))
	require.Equal(t, 401, st, replay)
	require.Equal(t, -1101.0, replay["errCode"], replay)
	require.Contains(t, replay["errMsg"], "replayed nonce")
	require.Len(t, sbx.Charges("BFC-REPLAY"), 1)

	// A request signed anew with its own key is a new charge, by choice.
	st, second := answer(t, hs[1], signedCharge(t, body, "second-nonce-0123456789", map[string][]string{"Idempotency-Key": {"second"}}))
	require.Equal(t, 200, st, second)
	require.Equal(t, 0.0, second["errCode"], second)
	require.Len(t, sbx.Charges("BFC-REPLAY"), 2)
}

// The Idempotency-Key header is held to idempotencyKey's rule, sent once,
// and when sent with the field it says the same; each refusal charges
// nothing.
func TestTheIdempotencyKeyHeaderFollowsTheFieldsRule(t *testing.T) {
	sbx, hs := twoInstances(t)
	body := func(key string) string {
		b := `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-HDR","price":7,"type":2}`
		if key != "" {
			b += `,"idempotencyKey":"` + key + `"`
		}
		return b + "}"
	}
	for i, tc := range []struct {
		name, field string
		hdr         map[string][]string
		wantField   string // the header is the field's other spelling (DESIGN §8): one key, one field
		reason      string
	}{
		{"a space", "", map[string][]string{"Idempotency-Key": {"has space"}}, "idempotencyKey", `Idempotency-Key header: expected up to 128 printable ASCII characters without spaces, got "has space"`},
		{"129 characters", "", map[string][]string{"Idempotency-Key": {strings.Repeat("k", 129)}}, "idempotencyKey", "expected up to 128 printable ASCII"},
		{"not ASCII", "", map[string][]string{"Idempotency-Key": {"ключ"}}, "idempotencyKey", "expected up to 128 printable ASCII"},
		{"a tab", "", map[string][]string{"Idempotency-Key": {"a\tb"}}, "idempotencyKey", "expected up to 128 printable ASCII"},
		{"twice", "", map[string][]string{"Idempotency-Key": {"k-a"}, "idempotency-key": {"k-b"}}, "idempotencyKey", "sent 2 times; send one key"},
		{"twice, joined by the platform", "", map[string][]string{"Idempotency-Key": {"k-a", "k-b"}}, "idempotencyKey", `"k-a,k-b" holds a comma, as several headers joined by the platform do`},
		{"differs from the field", "body-key", map[string][]string{"Idempotency-Key": {"header-key"}}, "idempotencyKey", `idempotencyKey "body-key" and the Idempotency-Key header "header-key" differ`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, m := answer(t, hs[i%2], signedCharge(t, body(tc.field), "hdr-nonce-0123456789-"+string(rune('a'+i)), tc.hdr))
			require.Equal(t, 400, st, m)
			require.Equal(t, -1001.0, m["errCode"], m)
			require.Equal(t, tc.wantField, m["field"], m)
			require.Contains(t, m["errMsg"], tc.reason)
		})
	}
	require.Empty(t, sbx.Charges("BFC-HDR"), "no refused call charged")

	// The same key in both places is one key.
	st, m := answer(t, hs[0], signedCharge(t, body("same-key"), "hdr-nonce-0123456789-same", map[string][]string{"Idempotency-Key": {"same-key"}}))
	require.Equal(t, 200, st, m)
	require.Equal(t, "same-key", m["idempotencyKey"])
	require.Len(t, sbx.Charges("BFC-HDR"), 1)
}

// apigwV2Charge is an API Gateway v2 event of a charge with authorizer as
// its requestContext.authorizer (left out when nil), signed by SigV4 as
// far as the function can see: no bundle signature.
func apigwV2Charge(t *testing.T, body string, authorizer any) []byte {
	t.Helper()
	path := "/top-launch-extra-charge"
	rc := map[string]any{"requestId": "req-iam", "http": map[string]string{"method": "POST", "path": path, "sourceIp": "10.0.0.3"}}
	if authorizer != nil {
		rc["authorizer"] = authorizer
	}
	ev, err := json.Marshal(map[string]any{"version": "2.0", "routeKey": "POST " + path, "rawPath": path, "rawQueryString": "", "body": body, "isBase64Encoded": false,
		"headers":        map[string]string{"content-type": "application/json", "authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261203/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"},
		"requestContext": rc})
	require.NoError(t, err)
	return ev
}

// A call runs without a bundle signature only when its event carries what
// API Gateway fills for every call it verified with AWS_IAM: accessKey and
// userArn. "iam":{} ran the charge unsigned (an outside tester); "iam":
// null and other authorizers (Lambda, JWT) were refused already.
func TestOnlyAFullIAMAuthorizerStandsForASignature(t *testing.T) {
	sbx, hs := twoInstances(t)
	const arn = "arn:aws:iam::111122223333:user/backend"
	refused := func(missing string) string {
		return "top.ascp.launchExtraCharge:fail unauthenticated: requestContext.authorizer.iam has no " + missing +
			"; API Gateway fills accessKey and userArn for every call it verified with AWS_IAM, so this is no call it verified, and nothing ran"
	}
	unsigned := "top.ascp.launchExtraCharge:fail unauthenticated: malformed Authorization header: expected the CLOUDCALL-HMAC-SHA256 scheme" // SigV4's
	iam := func(m map[string]any) map[string]any { return map[string]any{"iam": m} }
	for i, tc := range []struct {
		name       string
		authorizer any
		errMsg     string
	}{
		{"iam {}", iam(map[string]any{}), refused("accessKey and no userArn")},
		{"accessKey missing", iam(map[string]any{"accountId": "111122223333", "userArn": arn}), refused("accessKey")},
		{"accessKey empty", iam(map[string]any{"accessKey": "", "userArn": arn}), refused("accessKey")},
		{"accessKey null", iam(map[string]any{"accessKey": nil, "userArn": arn}), refused("accessKey")},
		{"userArn missing", iam(map[string]any{"accessKey": "AKIDEXAMPLE", "accountId": "111122223333"}), refused("userArn")},
		{"userArn empty", iam(map[string]any{"accessKey": "AKIDEXAMPLE", "userArn": ""}), refused("userArn")},
		{"both empty", iam(map[string]any{"accessKey": "", "userArn": ""}), refused("accessKey and no userArn")},
		// Blank is none: " " and "\t" passed for a signer (an outside re-tester).
		{"accessKey blank", iam(map[string]any{"accessKey": " ", "userArn": arn}), refused("accessKey")},
		{"userArn blank", iam(map[string]any{"accessKey": "AKIDEXAMPLE", "userArn": "\t"}), refused("userArn")},
		{"both blank", iam(map[string]any{"accessKey": " ", "userArn": "\t"}), refused("accessKey and no userArn")},
		// Refused before too: no IAM description, so the bundle's signature is asked for.
		{"iam null", iam(nil), unsigned},
		{"a Lambda authorizer", map[string]any{"lambda": map[string]any{"userArn": arn}}, unsigned},
		{"a JWT authorizer", map[string]any{"jwt": map[string]any{"claims": map[string]string{"sub": "x"}, "scopes": nil}}, unsigned},
		{"no authorizer", nil, unsigned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			order := "BFC-IAM-" + string(rune('a'+i))
			body := `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"` + order + `","price":7,"type":2},"idempotencyKey":"iam-` + order + `"}`
			st, m := answer(t, hs[i%2], apigwV2Charge(t, body, tc.authorizer))
			require.Equal(t, 401, st, m)
			require.Equal(t, -1101.0, m["errCode"], m)
			require.Equal(t, tc.errMsg, m["errMsg"])
			require.Empty(t, sbx.Charges(order), "the charge's sandbox sees no call")
		})
	}

	// As API Gateway writes it: accepted, as before.
	body := `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-IAM-OK","price":7,"type":2},"idempotencyKey":"iam-ok"}`
	st, m := answer(t, hs[0], apigwV2Charge(t, body, iam(map[string]any{"accessKey": "AKIDEXAMPLE", "accountId": "111122223333",
		"callerId": "AIDAEXAMPLE", "cognitoIdentity": nil, "principalOrgId": nil, "userArn": arn, "userId": "AIDAEXAMPLE"})))
	require.Equal(t, 200, st, m)
	require.Equal(t, 0.0, m["errCode"], m)
	require.Equal(t, "iam-ok", m["idempotencyKey"])
	require.Len(t, sbx.Charges("BFC-IAM-OK"), 1)
}

// An IAM description given twice, in any case, is a malformed event (400
// -1001) and nothing runs: encoding/json merged "iam" and "IAM" (or took the
// last), so two incomplete descriptions made one full one, and a full one
// hid an empty one beside it; all three charged unsigned (an outside
// re-tester).
func TestAnIAMAuthorizerGivenTwiceIsRefused(t *testing.T) {
	sbx, hs := twoInstances(t)
	const full = `{"accessKey":"AKIAX","userArn":"arn:aws:iam::1:user/x"}`
	dup := func(name string) string {
		return "top.ascp.launchExtraCharge:fail invalid input: malformed platform event: " + name +
			" is given twice (names compared without regard to case, as the event is read)"
	}
	for i, tc := range []struct{ name, authorizer, errMsg string }{
		{"two halves", `{"iam":{"accessKey":"AKIAX"},"IAM":{"userArn":"arn:aws:iam::1:user/x"}}`, dup("requestContext.authorizer.IAM")},
		{"empty, then full", `{"iam":{},"IAM":` + full + `}`, dup("requestContext.authorizer.IAM")},
		{"full, then empty", `{"iam":` + full + `,"Iam":{}}`, dup("requestContext.authorizer.Iam")},
		{"a member twice inside iam", `{"iam":{"accessKey":"AKIAX","userArn":"","UserArn":"arn:aws:iam::1:user/x"}}`, dup("requestContext.authorizer.iam.UserArn")},
		{"authorizer twice", `{"iam":{}},"Authorizer":{"iam":` + full + `}`, dup("requestContext.Authorizer")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			order := "BFC-IAM2-" + string(rune('a'+i))
			body := `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"` + order + `","price":7,"type":2},"idempotencyKey":"iam2-` + order + `"}`
			ev := apigwV2Charge(t, body, json.RawMessage(`{}`))
			// json.Marshal cannot write a name twice: spliced in as sent.
			ev = []byte(strings.Replace(string(ev), `"authorizer":{}`, `"authorizer":`+tc.authorizer, 1))
			require.Contains(t, string(ev), tc.authorizer)
			st, m := answer(t, hs[i%2], ev)
			require.Equal(t, 400, st, m)
			require.Equal(t, -1001.0, m["errCode"], m)
			require.Equal(t, tc.errMsg, m["errMsg"])
			require.Empty(t, sbx.Charges(order), "the charge's sandbox sees no call")
		})
	}
}

// A refused Idempotency-Key header is quoted in part: its first 40 bytes,
// the cut marked and its length given, in the answer and in the log line. A
// 10,000-byte key came back whole, a 10,195-byte answer (an outside tester).
func TestARefusedIdempotencyKeyHeaderIsQuotedInPart(t *testing.T) {
	sbx, h, logs, _ := loggedCharge(t, true, idempotency.NewMemory(nil))
	body := `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-LONG","price":7,"type":2}}`
	forty := strings.Repeat("k", 40)
	for i, tc := range []struct {
		name, key, errMsg string
	}{
		{"10,000 bytes", strings.Repeat("k", 10000),
			`top.ascp.launchExtraCharge:fail invalid input: Idempotency-Key header: expected up to 128 printable ASCII characters without spaces, got "` + forty + `…" (10000 bytes in all)`},
		{"10,000 bytes with a comma", strings.Repeat("k", 5000) + "," + strings.Repeat("k", 4999),
			`top.ascp.launchExtraCharge:fail invalid input: Idempotency-Key header: "` + forty + `…" (10000 bytes in all) holds a comma, as several headers joined by the platform do; send one key without commas (a key with a comma can go in idempotencyKey)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs.Reset()
			out := h.Invoke(context.Background(), signedCharge(t, body, "long-key-nonce-0123456789-"+string(rune('a'+i)), map[string][]string{"Idempotency-Key": {tc.key}}), runtime.Meta{})
			var resp struct {
				Status int    `json:"statusCode"`
				Body   string `json:"body"`
			}
			require.NoError(t, json.Unmarshal(out, &resp))
			require.Equal(t, 400, resp.Status)
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(resp.Body), &m), resp.Body)
			require.Equal(t, -1001.0, m["errCode"])
			require.Equal(t, "idempotencyKey", m["field"])
			require.Equal(t, tc.errMsg, m["errMsg"])
			require.Len(t, m, 3, "errCode, errMsg and field: no key in force to echo")
			require.Less(t, len(resp.Body), 400, "the answer was 10,195 bytes")

			var line map[string]any
			for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				require.Less(t, len(l), 1000, "a log line repeats no 10,000-byte key")
				var x map[string]any
				require.NoError(t, json.Unmarshal([]byte(l), &x), l)
				if x["msg"] == "invocation" {
					line = x
				}
			}
			require.NotNil(t, line, logs.String())
			require.Equal(t, strings.TrimPrefix(tc.errMsg, "top.ascp.launchExtraCharge:fail "), line["reason"])
		})
	}
	require.Empty(t, sbx.Charges("BFC-LONG"))
}

// The charge's invocation line carries what reconciling needs (an outside
// tester could not reconcile a -1304 from the logs): the key in force, TOP's
// order id and request id on a charge, the key on a replay and on a -1304.
func TestTheChargesLogLineNamesItsKeyAndTOPsIDs(t *testing.T) {
	recs := idempotency.NewMemory(nil)
	sbx, h, logs, vars := loggedCharge(t, false, recs)
	// sent holds the "charge sending" lines of the last call, which come
	// before its invocation line.
	var sent, others []map[string]any
	line := func(in string) map[string]any {
		t.Helper()
		logs.Reset()
		h.Invoke(context.Background(), []byte(in), runtime.Meta{RequestID: "req-1"})
		sent, others = nil, nil
		var m map[string]any
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var x map[string]any
			require.NoError(t, json.Unmarshal([]byte(l), &x), logs.String())
			others = append(others, x)
			switch x["msg"] {
			case "charge sending":
				require.Nil(t, m, "the sending line comes first")
				sent = append(sent, x)
			case "invocation":
				m = x
			}
		}
		require.NotNil(t, m, logs.String())
		return m
	}
	charge := `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-LOG-1","price":100,"type":1},"idempotencyKey":"order-log-1"}`
	m := line(charge)
	require.Equal(t, 0.0, m["errCode"])
	require.Equal(t, "order-log-1", m["idempotencyKey"])
	charges := sbx.Charges("BFC-LOG-1")
	require.Len(t, charges, 1)
	require.Equal(t, charges[0].ID, m["vendorId"])
	require.NotEmpty(t, m["upstreamRequestId"])
	// The keyless slot the same request retried without its key is answered
	// from: after a loss, cloudcall records restore needs it too.
	require.Regexp(t, `^auto:[0-9a-f]{64}$`, m["keylessKey"])
	slot, err := recs.Read(context.Background(), "idem:top:"+vars["TOP_APP_KEY"]+":"+m["keylessKey"].(string))
	require.NoError(t, err)
	require.Equal(t, "order-log-1", slot.Alias)
	require.Equal(t, "BFC-LOG-1", m["orderId"], "what TOP is searched by")
	// A call killed while TOP charges writes no invocation line: the line
	// written before the charge leaves names it for a restore after a
	// records loss (an outside tester charged four orders twice).
	require.Len(t, sent, 1)
	require.Equal(t, "req-1", sent[0]["requestId"])
	require.Equal(t, "order-log-1", sent[0]["idempotencyKey"])
	require.Equal(t, m["keylessKey"], sent[0]["keylessKey"])
	require.Equal(t, "BFC-LOG-1", sent[0]["orderId"])
	require.Equal(t, 100.0, sent[0]["price"])
	require.Equal(t, "INFO", sent[0]["level"])

	m = line(charge)
	require.Equal(t, true, m["replayed"])
	require.Equal(t, "order-log-1", m["idempotencyKey"])
	require.Empty(t, sent, "a replay sends nothing")

	m = line(`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-LOG-2","price":100,"type":1}}`)
	require.Regexp(t, `^auto:[0-9a-f]+$`, m["idempotencyKey"], "a keyless charge logs the key cloudcall records takes")
	require.NotContains(t, m, "keylessKey", "its key is its slot")
	require.Equal(t, "BFC-LOG-2", m["orderId"], "a keyless key names no order: the line does")
	require.Len(t, sent, 1)
	require.Equal(t, m["idempotencyKey"], sent[0]["idempotencyKey"])
	require.NotContains(t, sent[0], "keylessKey")
	require.Equal(t, "BFC-LOG-2", sent[0]["orderId"])
	// Two keyless charges on one order at one price are told apart by
	// their keys: auto: and the SHA-256 of the canonical request (a
	// re-tester asked for a hash of the request in the line; it is there).
	first := sent[0]["idempotencyKey"]
	m = line(`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-LOG-2","price":100,"type":2}}`)
	require.Equal(t, 0.0, m["errCode"], m)
	require.Len(t, sent, 1)
	require.Regexp(t, `^auto:[0-9a-f]{64}$`, sent[0]["idempotencyKey"])
	require.NotEqual(t, first, sent[0]["idempotencyKey"])
	require.Equal(t, []any{"BFC-LOG-2", 100.0}, []any{sent[0]["orderId"], sent[0]["price"]})
	require.Len(t, sbx.Charges("BFC-LOG-2"), 2)

	// A keyed -1304 names its keyless slot too: TOP may have charged it, and
	// after a loss both are restored (a re-tester's keyless repeat of a
	// keyed -1304 that TOP had charged charged again after the reopening).
	sbx.Inject(sandbox.Fault{Path: "/router/rest", Kind: sandbox.FaultDropAfter, Times: 1})
	m = line(`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-LOG-3","price":100,"type":1},"idempotencyKey":"order-log-3"}`)
	require.Equal(t, -1304.0, m["errCode"], m)
	require.Equal(t, "order-log-3", m["idempotencyKey"])
	require.Regexp(t, `^auto:[0-9a-f]{64}$`, m["keylessKey"])
	slot, err = recs.Read(context.Background(), "idem:top:"+vars["TOP_APP_KEY"]+":"+m["keylessKey"].(string))
	require.NoError(t, err)
	require.Equal(t, "order-log-3", slot.Alias)
	require.Equal(t, "BFC-LOG-3", m["orderId"])
	require.Len(t, sent, 1)

	// A success that names no charge id is passed on, and said: nothing
	// but the order is left to reconcile by (an outside tester).
	sbx.Inject(sandbox.Fault{Path: "/router/rest", Kind: sandbox.FaultStatus, Status: 200, Times: 1,
		Body: `{"alibaba_ascp_industry_launch_extra_charge_response":{"result":{"success":true}}}`})
	m = line(`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC-LOG-4","price":100,"type":1},"idempotencyKey":"order-log-4"}`)
	require.Equal(t, 0.0, m["errCode"], m)
	require.Equal(t, "BFC-LOG-4", m["orderId"])
	var warned []string
	for _, x := range others {
		if x["level"] == "WARN" {
			warned = append(warned, x["msg"].(string))
			// Every charge line names what reconciling needs (the WARN
			// line named no order: an outside re-tester).
			require.Equal(t, "BFC-LOG-4", x["orderId"], x)
			require.Equal(t, "req-1", x["requestId"], x)
			require.Equal(t, "order-log-4", x["idempotencyKey"], x)
			require.Regexp(t, `^auto:[0-9a-f]{64}$`, x["keylessKey"], x)
		}
	}
	require.Equal(t, []string{"charge made without an extra charge service order id: TOP answered success and named none; reconcile by orderId"}, warned)
}
