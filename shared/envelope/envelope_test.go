package envelope

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type quotaIn struct {
	DeliveryID string `json:"deliveryId"`
	BizID      string `json:"bizId"`
}

func (q *quotaIn) Validate() error {
	if q.DeliveryID == "" {
		return Invalid("deliveryId", "required, a non-empty string")
	}
	return nil
}

type nestedIn struct {
	Param struct {
		OrderID string `json:"wdsCoordinationOrderId"`
		Price   int64  `json:"price"`
	} `json:"omsLaunchExtraChargeParameter"`
	Extra json.RawMessage `json:"extra"`
}

func TestDecode(t *testing.T) {
	cases := []struct {
		name, body, field, contains string
	}{
		{"ok", `{"deliveryId":"YTO","bizId":"x"}`, "", ""},
		{"vendor spelling suggested", `{"delivery_id":"YTO"}`, "delivery_id", `did you mean "deliveryId"?`},
		{"pascal suggested", `{"DeliveryId":"YTO"}`, "DeliveryId", `did you mean "deliveryId"?`},
		{"unknown listed", `{"deliveryId":"YTO","zzz":1}`, "zzz", `expected one of "bizId", "deliveryId"`},
		{"wrong type", `{"deliveryId":12}`, "deliveryId", "expected a string, got number"},
		{"validator", `{"bizId":"x"}`, "deliveryId", "required, a non-empty string"},
		{"empty object", `{}`, "deliveryId", "required"},
		{"array", `[1]`, "", "must be a JSON object, got an array"},
		{"null", `null`, "", "must be a JSON object, got null"},
		{"text", `not json`, "", `must be a JSON object, got text starting with 'n'`},
		{"a boolean", `false`, "", "must be a JSON object, got a boolean"},
		{"string", `"x"`, "", "got a string"},
		{"empty", ``, "", "empty"},
		{"invalid json", `{"deliveryId":`, "", "not valid JSON"},
		{"trailing data", `{"deliveryId":"YTO"} {}`, "", "not valid JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var in quotaIn
			err := Decode([]byte(c.body), &in)
			if c.contains == "" {
				require.NoError(t, err)
				require.Equal(t, "YTO", in.DeliveryID)
				return
			}
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, CodeInvalidInput, e.Code)
			require.Equal(t, c.field, e.Field)
			require.Contains(t, e.Reason, c.contains)
			require.Equal(t, http.StatusBadRequest, e.HTTPStatus())
		})
	}
}

func TestDecodeNested(t *testing.T) {
	var in nestedIn
	err := Decode([]byte(`{"omsLaunchExtraChargeParameter":{"wds_coordination_order_id":"B"}}`), &in)
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, "omsLaunchExtraChargeParameter.wds_coordination_order_id", e.Field)
	require.Contains(t, e.Reason, `did you mean "omsLaunchExtraChargeParameter.wdsCoordinationOrderId"?`)

	err = Decode([]byte(`{"omsLaunchExtraChargeParameter":{"price":12.5}}`), &in)
	require.ErrorAs(t, err, &e)
	require.Equal(t, "omsLaunchExtraChargeParameter.price", e.Field)
	require.Contains(t, e.Reason, "expected an integer, got number 12.5")

	// Raw JSON fields take any keys.
	require.NoError(t, Decode([]byte(`{"extra":{"anything":{"goes":1}}}`), &in))
	require.JSONEq(t, `{"anything":{"goes":1}}`, string(in.Extra))
}

func TestDecodeDepth(t *testing.T) {
	body := `{"extra":` + string(repeat('[', MaxDepth+1)) + string(repeat(']', MaxDepth+1)) + `}`
	var in nestedIn
	err := Decode([]byte(body), &in)
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Contains(t, e.Reason, "nests 34 levels deep; at most 32 are allowed")
	// The field is named, as every refusal names one: the array that opens
	// level 33 (the body's braces are level 1).
	require.Equal(t, "extra"+strings.Repeat("[0]", MaxDepth-1), e.Field)
	require.True(t, strings.HasPrefix(e.Reason, "invalid input: extra[0][0]"), e.Reason)

	// Inside an object in an array, the path carries both.
	body = `{"boxes":[{"a":1},{"x":` + string(repeat('[', MaxDepth)) + string(repeat(']', MaxDepth)) + `}]}`
	require.ErrorAs(t, Decode([]byte(body), &in), &e)
	require.Equal(t, "boxes[1].x"+strings.Repeat("[0]", MaxDepth-3), e.Field)

	// JSON that breaks before its level 33 is refused for where it breaks,
	// as the same body less deep is (an outside re-tester).
	deep := string(repeat('[', MaxDepth+1)) + string(repeat(']', MaxDepth+1))
	for _, body := range []string{`{"extra":1 "omsLaunchExtraChargeParameter":` + deep + `}`, `{"extra":{"b" 1, "c":` + deep + `}}`} {
		require.ErrorAs(t, Decode([]byte(body), &in), &e)
		require.NotContains(t, e.Reason, "levels deep", body)
		require.Contains(t, e.Reason, "not valid JSON", body)
	}
}

func repeat(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}

func TestLowerCamel(t *testing.T) {
	for in, want := range map[string]string{
		"delivery_id":                       "deliveryId",
		"quota_num":                         "quotaNum",
		"delivery_resultcode":               "deliveryResultcode",
		"WarehouseId":                       "warehouseId",
		"oms_launch_extra_charge_parameter": "omsLaunchExtraChargeParameter",
		"IsOnBizApp":                        "isOnBizApp",
		"ID":                                "id",
		"openid":                            "openid",
	} {
		require.Equal(t, want, LowerCamel(in), in)
	}
}

func TestSuccessKeepsZeroAndOrder(t *testing.T) {
	type out struct {
		QuotaNum int64 `json:"quotaNum"`
	}
	r := Success("openapi.logistics.getQuota", out{QuotaNum: 0})
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, `{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":0}`, string(r.Body))
}

func TestFailureShape(t *testing.T) {
	op := Op{API: "cams.queryChatappBindWaba", Handle: func(context.Context, *Input) (any, error) {
		return nil, &Error{Code: CodeUpstream, Reason: "Ram.PermissionDeny: You are not authorized to perform the operation.",
			Upstream: &Upstream{Vendor: "cams", HTTPStatus: 400, Code: "Ram.PermissionDeny", RequestID: "R1"}}
	}}
	r := op.Invoke(context.Background(), &Input{})
	require.Equal(t, http.StatusBadGateway, r.Status)
	require.JSONEq(t, `{"errCode":-1305,"errMsg":"cams.queryChatappBindWaba:fail Ram.PermissionDeny: You are not authorized to perform the operation.",
		"upstream":{"vendor":"cams","httpStatus":400,"code":"Ram.PermissionDeny","requestId":"R1"}}`, string(r.Body))
}

func TestPanicBecomesInternal(t *testing.T) {
	op := Op{API: "x.y", Handle: func(context.Context, *Input) (any, error) { panic("boom") }}
	r := op.Invoke(context.Background(), &Input{})
	require.Equal(t, http.StatusInternalServerError, r.Status)
	require.JSONEq(t, `{"errCode":-1999,"errMsg":"x.y:fail internal error"}`, string(r.Body))
	require.ErrorContains(t, r.Err, "panic: boom")
}

func TestWrappedErrorKeepsCode(t *testing.T) {
	base := &Error{Code: CodeThrottled, Reason: "throttled", RetryAfter: 7}
	op := Op{API: "x.y", Handle: func(context.Context, *Input) (any, error) { return nil, errors.Join(errors.New("ctx"), base) }}
	r := op.Invoke(context.Background(), &Input{})
	require.Equal(t, http.StatusTooManyRequests, r.Status)
	require.JSONEq(t, `{"errCode":-1201,"errMsg":"x.y:fail throttled","retryAfter":7}`, string(r.Body))
}

type rawObject string

func (r rawObject) MarshalJSON() ([]byte, error) { return []byte(r), nil }

// Success writes, byte for byte, the envelope built from json.Marshal of
// the result (the construction it replaced), for every kind of result.
func TestSuccessIsWhatMarshalWrites(t *testing.T) {
	reference := func(api string, out any) string {
		name, _ := json.Marshal(api + ":ok")
		s := `{"errCode":0,"errMsg":` + string(name)
		if out != nil {
			b, _ := json.Marshal(out)
			if fields := bytes.TrimSpace(b[1 : len(b)-1]); len(fields) > 0 {
				s += "," + string(b[1:len(b)-1])
			}
		}
		return s + "}"
	}
	type inner struct {
		A []int          `json:"a"`
		M map[string]any `json:"m,omitempty"`
	}
	type out struct {
		QuotaNum int64   `json:"quotaNum"`
		Desc     string  `json:"desc"`
		In       inner   `json:"in"`
		P        *inner  `json:"p,omitempty"`
		F        float64 `json:"f"`
	}
	for name, v := range map[string]any{
		"nil":              nil,
		"empty struct":     struct{}{},
		"empty map":        map[string]int{},
		"struct":           out{QuotaNum: 210, Desc: "<b>&\u2028 顺丰 \"q\"", In: inner{A: []int{1, 2}}, F: 1e21},
		"nil slice":        out{},
		"map":              map[string]any{"z": 1, "a": "x"},
		"MarshalJSON":      rawObject(` { "k" : [ 1 , 2 ] } `),
		"MarshalJSON {}":   rawObject(` { } `),
		"pointer to value": &out{QuotaNum: 1},
	} {
		r := Success("openapi.logistics.getQuota", v)
		require.Equal(t, http.StatusOK, r.Status, name)
		require.Equal(t, reference("openapi.logistics.getQuota", v), string(r.Body), name)
		require.True(t, json.Valid(r.Body), name)
	}
	for _, api := range []string{"x.y", `we"ird<api>`, "a\u2028b"} {
		require.Equal(t, reference(api, nil), string(Success(api, nil).Body), api)
	}
	// A result that is not an object is an internal error, not a broken envelope.
	for _, v := range []any{[]int{1}, "s", 3, rawObject(`[1]`)} {
		r := Success("x.y", v)
		require.Equal(t, http.StatusInternalServerError, r.Status, "%v", v)
		require.Contains(t, string(r.Body), "internal error")
	}
}

// A recorded answer is read back as the error it carries, field for field,
// so a replayed refusal is logged and counted as one; a success is none.
func TestFailureOfReadsBackFailure(t *testing.T) {
	e := &Error{Code: CodeThrottled, Reason: "throttled by TOP: 7 App Call Limited", RetryAfter: 42,
		Upstream: &Upstream{Vendor: "top", Code: "7", Message: "App Call Limited"}}
	got := FailureOf("top.ascp.launchExtraCharge", Failure("top.ascp.launchExtraCharge", e).Body)
	require.NotNil(t, got)
	require.Equal(t, e.Code, got.Code)
	require.Equal(t, e.Reason, got.Reason)
	require.Equal(t, 42, got.RetryAfter)
	require.Equal(t, e.Upstream, got.Upstream)
	require.Nil(t, FailureOf("demo", Success("demo", map[string]int{"n": 1}).Body))
	require.Nil(t, FailureOf("demo", []byte("not json")))
}

// A refusal repeats at most MaxQuoted bytes of a value the caller sent,
// cut on a rune boundary and saying how long it was: a 10,000-byte
// Idempotency-Key header came back whole, a 10,195-byte answer (an outside
// tester).
func TestQuoteRepeatsAShortPrefix(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"short", "has space", `"has space"`},
		{"exactly the bound", strings.Repeat("k", MaxQuoted), `"` + strings.Repeat("k", MaxQuoted) + `"`},
		{"one past", strings.Repeat("k", MaxQuoted+1), `"` + strings.Repeat("k", MaxQuoted) + `…" (41 bytes in all)`},
		{"10,000 bytes", strings.Repeat("k", 10000), `"` + strings.Repeat("k", MaxQuoted) + `…" (10000 bytes in all)`},
		{"not cut inside a rune (39 bytes kept)", "k" + strings.Repeat("ключ", 20), `"k` + strings.Repeat("ключ", 4) + `клю…" (161 bytes in all)`},
		{"control characters escaped", "a\tb", `"a\tb"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Quote(tc.in))
			require.LessOrEqual(t, len(Quote(tc.in)), MaxQuoted+len(`"…" (10000 bytes in all)`)+2)
		})
	}
	require.Equal(t, "number "+strings.Repeat("1", MaxQuoted-len("number "))+"… (10007 bytes in all)", Clip("number "+strings.Repeat("1", 10000)))
	require.Equal(t, "requestContext", Clip("requestContext"))
}
