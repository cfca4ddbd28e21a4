package wechat

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/upstream"
)

// defaultBase is the vendor's own address (WECHAT_API_BASE unset).
const defaultBase = "https://api.weixin.qq.com"

// APIGetQuota is the errMsg prefix of logistics.getQuota, as in cloud calls.
const APIGetQuota = "openapi.logistics.getQuota"

const pathQuotaGet = "/cgi-bin/express/business/quota/get"

// quotaRequest is quota/get's body (a struct: it encodes without a map's
// sorting and reflection per key).
type quotaRequest struct {
	DeliveryID string `json:"delivery_id"`
	BizID      string `json:"biz_id"`
}

// quotaAnswer is quota/get's answer, status included, decoded once.
type quotaAnswer struct {
	status
	QuotaNum *Count `json:"quota_num"`
}

// Count is a whole number WeChat documents as "number", JavaScript's only
// numeric type (quota_num, seed 000_4472673a43ebdb4c.txt; every example a
// whole number, and it counts waybills). A JSON number's spelling is its
// encoder's choice, so 210, 210.0 and 2.1e2 are all 210; a fraction, or a
// value past int64, is no count of waybills and the answer is refused as
// unreadable (-1303) with the value in the log line's cause.
type Count int64

// UnmarshalJSON reads a whole number in any JSON spelling; null leaves c
// as it is, as encoding/json does for its own types.
func (c *Count) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		*c = Count(v)
		return nil
	}
	v, err := wholeNumber(s)
	if err != nil {
		return fmt.Errorf("%.40s: %w", s, err) // the decoder names the member
	}
	*c = Count(v)
	return nil
}

// wholeNumber is s's value when it is a JSON number equal to an int64. s is
// a JSON value the decoder has checked, so it is a number or no number at
// all. Zeros that change nothing (0.000, 210.0000, 1000e-3,
// 0e99999999999999999999) are set aside before the digits or the exponent
// are judged: a zero balance is never lost.
func wholeNumber(s string) (int64, error) {
	mant, exp, _ := strings.Cut(strings.ToLower(s), "e")
	neg := strings.HasPrefix(mant, "-")
	whole, frac, _ := strings.Cut(strings.TrimPrefix(mant, "-"), ".")
	if whole == "" || strings.Trim(whole+frac, "0123456789") != "" {
		return 0, errors.New("not a number")
	}
	whole, frac = strings.TrimLeft(whole, "0"), strings.TrimRight(frac, "0")
	if whole == "" && frac == "" {
		return 0, nil
	}
	errRange := errors.New("not a whole number within int64")
	e := 0
	if exp != "" {
		v, err := strconv.Atoi(exp)
		if err != nil || v > 1<<40 || v < -1<<40 {
			return 0, errRange
		}
		e = v
	}
	if frac == "" { // 21000 is 21e3
		n := len(whole)
		whole = strings.TrimRight(whole, "0")
		e += n - len(whole)
	}
	// An int64 has at most 19 significant digits, and 10^40 is past it as
	// 10^-40 is short of a whole number: big.Rat then works on little.
	if len(strings.Trim(whole+frac, "0")) > 19 || e > 40 || e < -40 {
		return 0, errRange
	}
	n := cmp.Or(whole, "0") + "." + cmp.Or(frac, "0") + "e" + strconv.Itoa(e)
	if neg {
		n = "-" + n
	}
	r, ok := new(big.Rat).SetString(n)
	if !ok {
		return 0, errors.New("not a number")
	}
	if !r.IsInt() {
		return 0, errors.New("not a whole number")
	}
	if !r.Num().IsInt64() {
		return 0, errors.New("past int64")
	}
	return r.Num().Int64(), nil
}

// GetQuota asks the courier, through WeChat, for the account's balance of
// electronic waybills. Zero is a real balance.
func (c *Client) GetQuota(ctx context.Context, deliveryID, bizID string) (int64, error) {
	var out quotaAnswer
	err := c.Call(ctx, "POST", pathQuotaGet, quotaRequest{DeliveryID: deliveryID, BizID: bizID}, &out)
	if err != nil {
		return 0, err
	}
	if out.QuotaNum == nil {
		return 0, upstream.Malformed("wechat", 200, fmt.Errorf("quota/get: no quota_num in a success answer"))
	}
	return int64(*out.QuotaNum), nil
}

// Courier is one entry of getAllDelivery. Its numbers are kept as WeChat
// wrote them, so one courier's odd value cannot fail the list (and leave
// every balance unchecked); QuotaReadable reads can_get_quota.
type Courier struct {
	DeliveryID   string          `json:"delivery_id"`
	DeliveryName string          `json:"delivery_name"`
	CanUseCash   json.RawMessage `json:"can_use_cash"`
	CanGetQuota  json.RawMessage `json:"can_get_quota"`
}

// QuotaReadable reports whether getQuota can read this courier's balances:
// can_get_quota is 1, in any whole spelling; anything else is no.
func (c Courier) QuotaReadable() bool {
	n, err := wholeNumber(string(c.CanGetQuota))
	return err == nil && n == 1
}

// GetAllDelivery lists the couriers; QuotaReadable marks those whose
// balance getQuota can read.
func (c *Client) GetAllDelivery(ctx context.Context) ([]Courier, error) {
	var out struct {
		status
		Data []Courier `json:"data"`
	}
	if err := c.Call(ctx, "GET", "/cgi-bin/express/business/delivery/getall", nil, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// Account is one bound courier account of getAllAccount. Its numbers are
// kept as WeChat wrote them: quota-alert reads every balance with getQuota,
// and one account's quota_num of 210.5 failed the whole list, the zero
// balances in it unchecked.
type Account struct {
	BizID           string          `json:"biz_id"`
	DeliveryID      string          `json:"delivery_id"`
	StatusCode      json.RawMessage `json:"status_code"`
	Alias           string          `json:"alias"`
	QuotaNum        json.RawMessage `json:"quota_num"`
	QuotaUpdateTime json.RawMessage `json:"quota_update_time"`
}

// GetAllAccount lists the app's bound courier accounts.
func (c *Client) GetAllAccount(ctx context.Context) ([]Account, error) {
	var out struct {
		status
		List []Account `json:"list"`
	}
	if err := c.Call(ctx, "GET", "/cgi-bin/express/business/account/getall", nil, &out); err != nil {
		return nil, err
	}
	return out.List, nil
}

// QuotaInput is the cloud-call input of logistics.getQuota. Its rules are
// the registry's schema (logistics-get-quota.input.json): WeChat documents
// two required strings and nothing more.
type QuotaInput struct {
	DeliveryID string `json:"deliveryId"`
	BizID      string `json:"bizId"`
}

// QuotaOutput is the cloud-call result: quotaNum is always present.
type QuotaOutput struct {
	QuotaNum int64 `json:"quotaNum"`
}

// GetQuotaOp is the logistics.getQuota operation on a client.
func GetQuotaOp(c *Client) envelope.Op {
	schema := sync.OnceValue(func() *envelope.Schema {
		return envelope.MustCompileSchema(registry.InputSchema("logistics-get-quota"))
	})
	// The compile (~0.15 ms in a fresh process) and the token's fetch run in
	// the runtime's background warm-up, overlapping its first poll.
	return envelope.Op{API: APIGetQuota, Warm: c.Warm(func(context.Context) { schema() }), Handle: func(ctx context.Context, in *envelope.Input) (any, error) {
		var q QuotaInput
		if err := envelope.DecodeInput(in.Body, schema().For(in), &q); err != nil {
			return nil, err
		}
		n, err := c.GetQuota(ctx, q.DeliveryID, q.BizID)
		if err != nil {
			return nil, Envelope(err)
		}
		return QuotaOutput{QuotaNum: n}, nil
	}}
}

// ClientFromDeps builds the client from the environment (DESIGN §5):
// WECHAT_APPID, WECHAT_APPSECRET, WECHAT_API_BASE, and WECHAT_TOKEN_MODE
// (stable, the default, or classic).
func ClientFromDeps(d runtime.Deps) (*Client, error) {
	secrets, err := d.Env.RequireSecrets("WECHAT_APPSECRET")
	appid := d.Env.Get("WECHAT_APPID", "")
	switch {
	case appid == "" && err != nil:
		return nil, fmt.Errorf("set WECHAT_APPID (the mini program's AppID); %w", err)
	case appid == "":
		return nil, fmt.Errorf("set WECHAT_APPID (the mini program's AppID)")
	case err != nil:
		return nil, err
	}
	mode := d.Env.Get("WECHAT_TOKEN_MODE", ModeStable)
	if mode != ModeStable && mode != ModeClassic {
		return nil, fmt.Errorf("WECHAT_TOKEN_MODE=%q: expected stable or classic", mode)
	}
	base, err := upstream.Base(d.Env, "WECHAT_API_BASE", d.Env.Get("WECHAT_API_BASE", defaultBase), defaultBase)
	if err != nil {
		return nil, err
	}
	tm := NewTokenManager(TokenOptions{
		AppID: appid, Secret: secrets["WECHAT_APPSECRET"],
		Base: base, Mode: mode,
		HTTP: d.HTTP, KV: d.Store, Log: d.Log, Remember: d.Env.Remember,
	})
	return NewClient(tm), nil
}

// GetQuotaFactory builds the logistics-get-quota function.
func GetQuotaFactory(_ context.Context, d runtime.Deps) (envelope.Op, error) {
	c, err := ClientFromDeps(d)
	if err != nil {
		return envelope.Op{API: APIGetQuota}, err
	}
	return GetQuotaOp(c), nil
}
