package alicloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/upstream"
)

// camsEndpoint is the vendor's own address (CAMS_API_BASE unset).
const camsEndpoint = "https://cams.ap-southeast-1.aliyuncs.com"

// CAMS QueryChatappBindWaba.
const (
	APIQueryChatappBindWaba = "cams.queryChatappBindWaba"
	CAMSVersion             = "2020-06-06"
	actionBindWaba          = "QueryChatappBindWaba"
)

// BindWabaInput is the function's input; both fields are optional strings
// with no documented limit (cams-query-chatapp-bind-waba.input.json), sent as
// given in the signed query.
type BindWabaInput struct {
	CustSpaceID *string `json:"custSpaceId"`
	IsvCode     *string `json:"isvCode"`
}

// bindWabaReply is the CAMS answer. Data stays raw so fields CAMS adds later
// pass through instead of being dropped.
type bindWabaReply struct {
	RequestID          string          `json:"RequestId"`
	Code               string          `json:"Code"`
	Message            string          `json:"Message"`
	Success            *bool           `json:"Success"`
	AccessDeniedDetail any             `json:"AccessDeniedDetail"`
	Data               json.RawMessage `json:"Data"`
}

// BindWabaOutput is the success payload: data holds every field CAMS sent,
// lowerCamel'd, with AuthInternationalRateEligibility passed through as is.
type BindWabaOutput struct {
	RequestID string         `json:"requestId"`
	Data      map[string]any `json:"data"`
}

// dataKinds are the documented Data fields and their JSON kinds (seed 002,
// "Elemen respons": every one a string but the free-form object
// AuthInternationalRateEligibility), by their lowerCamel names: the output
// schema publishes them so, and the clients' types are generated from it.
// A test holds the two together.
var dataKinds = map[string]byte{
	"id": '"', "name": '"', "businessId": '"', "businessName": '"', "currency": '"', "accountReviewStatus": '"',
	"messageTemplateNamespace": '"', "marketingMessageLiteStatus": '"', "primaryBusinessLocation": '"', "isOnBizApp": '"',
	"authInternationalRateEligibility": '{',
}

// camelKeys renames the top-level keys mechanically; values (including the
// free-form AuthInternationalRateEligibility object) stay untouched. A
// documented field of another kind is refused, as WeChat's quota_num as a
// string is: passed through, an Id sent as a number broke the published
// schema, the Go client refused the answer and the Node one typed a
// number as a string (an outside tester). A null one is left out, as a
// field CAMS did not send; a field CAMS adds later passes through as is.
func camelKeys(raw json.RawMessage) (map[string]any, error) {
	var m map[string]json.RawMessage
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return map[string]any{}, nil
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	// Keys that differ only in case (Id and id, BusinessId and businessid)
	// are one field: a case-blind decoder, Go's encoding/json among them,
	// read the other spelling's value into the documented field (an outside
	// re-tester). One is kept, every time: a value over a null, then CAMS's
	// own spelling (Id), then any PascalCase one, then the first in byte
	// order (the map's random order chose before).
	from := make(map[string]string, len(m))
	for k := range m {
		fold := strings.ToLower(k)
		if prev, ok := from[fold]; !ok || better(k, prev, m) {
			from[fold] = k
		}
	}
	out := make(map[string]any, len(from))
	for _, k := range from {
		name := envelope.LowerCamel(k)
		v := m[k]
		if want, ok := dataKinds[name]; ok {
			v = bytes.TrimSpace(v)
			if string(v) == "null" {
				continue
			}
			if v[0] != want {
				kind := "a string"
				if want == '{' {
					kind = "an object"
				}
				return nil, fmt.Errorf("Data.%s is %s, not %s as CAMS documents it", k, jsonKind(v), kind)
			}
		}
		out[name] = v
	}
	return out, nil
}

// better says key k is kept over prev, both naming one field.
func better(k, prev string, m map[string]json.RawMessage) bool {
	kNull, prevNull := string(bytes.TrimSpace(m[k])) == "null", string(bytes.TrimSpace(m[prev])) == "null"
	switch {
	case kNull != prevNull:
		return prevNull
	case canonical(k) != canonical(prev):
		return canonical(k)
	case pascal(k) != pascal(prev):
		return pascal(k)
	}
	return k < prev
}

// canonical says k is spelled exactly as CAMS spells a field of its
// lowerCamel name (Id, not ID or iD).
func canonical(k string) bool {
	n := envelope.LowerCamel(k)
	return n != "" && strings.ToUpper(n[:1])+n[1:] == k
}

// pascal says a key is spelled as CAMS spells its fields (an upper-case
// first letter).
func pascal(k string) bool { return k != "" && k[0] >= 'A' && k[0] <= 'Z' }

// jsonKind names a JSON value's kind for a message.
func jsonKind(v []byte) string {
	switch v[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

// CAMS is the QueryChatappBindWaba operation.
type CAMS struct {
	client *Client
	creds  *CredentialSource
}

// NewCAMS builds the operation.
func NewCAMS(c *Client, s *CredentialSource) *CAMS { return &CAMS{client: c, creds: s} }

// Op is the function's operation.
func (c *CAMS) Op() envelope.Op {
	schema := sync.OnceValue(func() *envelope.Schema {
		return envelope.MustCompileSchema(registry.InputSchema("cams-query-chatapp-bind-waba"))
	})
	// The compile (~0.15 ms in a fresh process) runs in the runtime's
	// background warm-up, overlapping its first poll.
	return envelope.Op{API: APIQueryChatappBindWaba, Warm: func(context.Context) { schema() }, Handle: func(ctx context.Context, in *envelope.Input) (any, error) {
		var q BindWabaInput
		if err := envelope.DecodeInput(in.Body, schema().For(in), &q); err != nil {
			return nil, err
		}
		creds, err := c.creds.Resolve(in)
		if err != nil {
			return nil, err
		}
		query := map[string]string{}
		if q.CustSpaceID != nil {
			query["CustSpaceId"] = *q.CustSpaceID
		}
		if q.IsvCode != nil {
			query["IsvCode"] = *q.IsvCode
		}
		var r bindWabaReply
		if err := c.client.Call(ctx, creds, actionBindWaba, query, &r); err != nil {
			return nil, err
		}
		if r.Code == "" {
			// Every CAMS answer names its Code ("OK" on success): one
			// without it is not an answer this function can read.
			return nil, upstream.Malformed("cams", http.StatusOK, fmt.Errorf("cams: the answer has no Code"))
		}
		if r.Code != "OK" || (r.Success != nil && !*r.Success) {
			return nil, &envelope.Error{Code: envelope.CodeUpstream, Reason: r.Code + ": " + r.Message,
				Upstream: &envelope.Upstream{Vendor: "cams", HTTPStatus: 200, Code: r.Code, Message: r.Message, RequestID: r.RequestID}}
		}
		data, err := camelKeys(r.Data)
		if err != nil {
			reason := "cams answered a Data that is not an object"
			var kind *json.UnmarshalTypeError
			if !errors.As(err, &kind) {
				reason = "cams answered " + err.Error()
			}
			return nil, &envelope.Error{Code: envelope.CodeUpstreamMalformed, Reason: reason, Err: err,
				Upstream: &envelope.Upstream{Vendor: "cams", HTTPStatus: http.StatusOK, RequestID: r.RequestID}}
		}
		return BindWabaOutput{RequestID: r.RequestID, Data: data}, nil
	}}
}

// CAMSFactory builds cams-query-chatapp-bind-waba: CAMS_API_BASE, and the
// credentials chain (FC's per-invocation credentials come first).
func CAMSFactory(_ context.Context, d runtime.Deps) (envelope.Op, error) {
	endpoint, err := upstream.Base(d.Env, "CAMS_API_BASE", d.Env.Get("CAMS_API_BASE", camsEndpoint), camsEndpoint)
	if err != nil {
		return envelope.Op{API: APIQueryChatappBindWaba}, err
	}
	c, err := NewClient(Options{
		Endpoint: endpoint,
		Version:  CAMSVersion, Product: "cams", HTTP: d.HTTP, Limiter: d.Store, QPS: 10, Remember: d.Env.Remember,
	})
	if err != nil {
		return envelope.Op{API: APIQueryChatappBindWaba}, fmt.Errorf("CAMS_API_BASE: %w", err)
	}
	// The secret variables are read through config so logs redact them.
	for _, name := range []string{"ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"} {
		if _, err := d.Env.Secret(name); err != nil {
			return envelope.Op{API: APIQueryChatappBindWaba}, err
		}
	}
	return NewCAMS(c, NewCredentialSource()).Op(), nil
}
