package wechatsbx

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The console lists the accounts and edits a balance to drive quota-alert.
func TestAccountsAdmin(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	list := func() []AccountState {
		r, err := http.Get(srv.URL + "/__sandbox/wechat/accounts")
		require.NoError(t, err)
		defer r.Body.Close()
		var out struct{ Accounts []AccountState }
		require.NoError(t, json.NewDecoder(r.Body).Decode(&out))
		return out.Accounts
	}
	want := []AccountState{
		{DeliveryID: "YTO", BizID: "xyz", Quota: 210, Alias: "YTO main"},
		{DeliveryID: "ZTO", BizID: "zero-balance", Quota: 0, Alias: "ZTO empty"},
		{DeliveryID: "YUNDA", BizID: "yunda-01", Quota: 55, Alias: "YUNDA"},
		{DeliveryID: "YTO", BizID: "wrong-password", Errcode: 9300531},
		{DeliveryID: "SF", BizID: "sf-monthly", Errcode: 9300501},
	}
	require.Equal(t, want, list())
	r, err := http.Post(srv.URL+"/__sandbox/wechat/quota", "application/json", strings.NewReader(`{"deliveryId":"YTO","bizId":"xyz","quota":90}`))
	require.NoError(t, err)
	r.Body.Close()
	want[0].Quota = 90
	require.Equal(t, want, list())
	require.Equal(t, 0, s.Calls("quota"), "admin calls are not vendor calls")
}
