package wechat

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// An errcode without an errmsg left the reason empty ("fail  (hint)").
func TestAnErrcodeWithoutErrmsgIsNamed(t *testing.T) {
	e := Envelope(&APIError{Code: 45009})
	require.Equal(t, 45009, e.Code)
	require.Contains(t, e.Reason, "errcode 45009 without an errmsg")
	e = Envelope(&APIError{Code: 45009, Msg: "reach max api daily quota limit rid: 1"})
	require.Contains(t, e.Reason, "reach max api daily quota limit")
}

// Hint is the text Envelope appends, for callers that report errors as
// text (quota-alert): each configuration errcode, wrapped or not, and none
// for a business call's 40001 (a stale token, not a wrong secret).
func TestHintIsTheEnvelopesHint(t *testing.T) {
	for code, want := range map[int]string{
		40125: "WeChat refused the AppSecret: check WECHAT_APPSECRET",
		40164: "this egress IP is not in the app's IP whitelist: give the function a fixed egress IP (VPC + NAT) and whitelist it",
		40013: "WeChat does not know this AppID: check WECHAT_APPID",
		40243: "the AppSecret is frozen: unfreeze it in the mini program console",
		45009: "the daily API quota is used up: wait for tomorrow or reset it with clear_quota",
		48001: "this API is not authorized for the app: enable the capability in the console",
	} {
		err := fmt.Errorf("getAllAccount: %w", &APIError{Code: code, Msg: "m", Token: true})
		require.Equal(t, want, Hint(err), code)
		require.Equal(t, "m ("+want+")", Envelope(err).Reason, code)
	}
	require.Empty(t, Hint(&APIError{Code: 40001, Msg: "m"}))
	require.Empty(t, Hint(errors.New("other")))
}
