package wechat

import (
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
