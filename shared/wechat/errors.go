// Package wechat calls the WeChat server API the way WeChat asks: one
// stable_token per app shared by every instance, compare-and-expire on a stale
// token, backoff on "system busy", and configuration errors surfaced rather
// than looped. It also holds the logistics operations built on it.
package wechat

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

// APIError is an errcode WeChat answered with.
type APIError struct {
	Code int
	Msg  string // errmsg as WeChat sent it, rid included
	// Token says the token endpoint answered (so 40001 means a wrong secret,
	// not a stale token).
	Token bool
	// RetryAfter, in seconds, is how long the instance answers this again
	// without asking WeChat (a token endpoint's rate limit held): the
	// envelope's retryAfter.
	RetryAfter int
	// cut: a -1 whose retries the call's deadline ended.
	cut bool
}

func (e *APIError) Error() string {
	where := "api"
	if e.Token {
		where = "token endpoint"
	}
	return fmt.Sprintf("wechat %s: errcode %d: %s", where, e.Code, e.Msg)
}

// RID is the request id WeChat support asks for, taken from errmsg.
func (e *APIError) RID() string {
	_, after, ok := strings.Cut(e.Msg, "rid: ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(after)
}

// Stale reports a business-call errcode that means "the token you used is no
// longer good": 40001 (invalid or not latest), 40014 (invalid), 42001 (expired).
func (e *APIError) Stale() bool {
	return !e.Token && (e.Code == 40001 || e.Code == 40014 || e.Code == 42001)
}

// Config reports a token-endpoint answer no retry can cure: the app's
// configuration (appid, secret, IP whitelist, frozen secret, permission) or
// its daily quota must change first.
func (e *APIError) Config() bool {
	if !e.Token {
		return false
	}
	_, ok := hints[e.Code]
	return ok || e.Code == 40002 || e.Code == 41002 || e.Code == 41004 || e.Code == 89503
}

// hints name what to fix for the errors no retry can cure.
var hints = map[int]string{
	40001: "WeChat refused the AppSecret: check WECHAT_APPSECRET",
	40013: "WeChat does not know this AppID: check WECHAT_APPID",
	40125: "WeChat refused the AppSecret: check WECHAT_APPSECRET",
	40164: "this egress IP is not in the app's IP whitelist: give the function a fixed egress IP (VPC + NAT) and whitelist it",
	61004: "this egress IP is not registered: whitelist the function's fixed egress IP",
	40243: "the AppSecret is frozen: unfreeze it in the mini program console",
	45009: "the daily API quota is used up: wait for tomorrow or reset it with clear_quota",
	48001: "this API is not authorized for the app: enable the capability in the console",
}

// Hint is what to fix for err, "" when no hint applies: the text Envelope
// adds to the reason, for callers that report an error as text (quota-alert's
// failures and alerts), so both say the same.
func Hint(err error) string {
	var ae *APIError
	if !errors.As(err, &ae) {
		return ""
	}
	// A business call's 40001 is a stale token, not a wrong secret.
	if h, ok := hints[ae.Code]; ok && (ae.Token || ae.Code != 40001) {
		return h
	}
	return ""
}

// Envelope maps an error from this package onto the cloud-call envelope: a
// WeChat errcode stays the errCode, with WeChat's errmsg as the reason, as
// wx-server-sdk does; a hint says what to fix when one applies.
func Envelope(err error) *envelope.Error {
	var ae *APIError
	if errors.As(err, &ae) {
		reason := ae.Msg
		if strings.TrimSpace(reason) == "" {
			reason = "errcode " + strconv.Itoa(ae.Code) + " without an errmsg"
		}
		if h := Hint(err); h != "" {
			reason += " (" + h + ")"
		}
		return &envelope.Error{
			Code: ae.Code, Reason: reason, Err: err, RetryAfter: ae.RetryAfter,
			Upstream: &envelope.Upstream{Vendor: "wechat", Code: strconv.Itoa(ae.Code), Message: ae.Msg, RequestID: ae.RID()},
		}
	}
	return envelope.As(err)
}
