package ck1sbx_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/sandbox/ck1sbx"
)

type client struct {
	t   *testing.T
	url string
}

func start(t *testing.T, o ck1sbx.Options) (*ck1sbx.Server, *client) {
	s := ck1sbx.New(o)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, &client{t: t, url: srv.URL}
}

// do sends a request and decodes the JSON answer (numbers kept as text).
func (c *client) do(method, path, token, body string) (int, map[string]any, []any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	require.NoError(c.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	var v any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	require.NoError(c.t, dec.Decode(&v), string(b))
	m, _ := v.(map[string]any)
	a, _ := v.([]any)
	return resp.StatusCode, m, a
}

func (c *client) grant(q url.Values) (int, map[string]any) {
	q.Set("client_id", ck1sbx.DemoClientID)
	if !q.Has("client_secret") {
		q.Set("client_secret", ck1sbx.DemoClientSecret)
	}
	st, m, _ := c.do(http.MethodPost, "/oauth2/token?"+q.Encode(), "", "")
	return st, m
}

func TestAuthorizationCodeIsSingleUse(t *testing.T) {
	_, c := start(t, ck1sbx.Options{})
	st, m := c.grant(url.Values{"grant_type": {"authorization_code"}, "code": {ck1sbx.DemoCode}})
	require.Equal(t, http.StatusOK, st, m)
	require.NotEmpty(t, m["AccessToken"])
	require.NotEmpty(t, m["RefreshToken"])
	require.Equal(t, json.Number("3600"), m["AccessTokenExpiresIn"])
	st, _ = c.grant(url.Values{"grant_type": {"authorization_code"}, "code": {ck1sbx.DemoCode}})
	require.Equal(t, http.StatusBadRequest, st)
}

func TestRefreshTokenRotatesAndTheUsedOneDies(t *testing.T) {
	s, c := start(t, ck1sbx.Options{})
	st, m := c.grant(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ck1sbx.DemoRefreshToken}})
	require.Equal(t, http.StatusOK, st, m)
	next := m["RefreshToken"].(string)
	require.NotEqual(t, ck1sbx.DemoRefreshToken, next)

	st, m = c.grant(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ck1sbx.DemoRefreshToken}})
	require.Equal(t, http.StatusBadRequest, st, "a used refresh token stops working")
	require.Contains(t, m["Message"], "RefreshToken")

	st, _ = c.grant(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next}})
	require.Equal(t, http.StatusOK, st, "its successor works")
	require.Equal(t, 3, s.Calls("refresh"))

	st, _ = c.grant(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next}, "client_secret": {"wrong"}})
	require.Equal(t, http.StatusBadRequest, st)
	st, _ = c.grant(url.Values{"grant_type": {"password"}})
	require.Equal(t, http.StatusBadRequest, st)
}

func TestAccessTokenExpiresOnTheSandboxClock(t *testing.T) {
	s, c := start(t, ck1sbx.Options{AccessLifetime: 10 * time.Minute})
	_, m := c.grant(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ck1sbx.DemoRefreshToken}})
	at := m["AccessToken"].(string)
	require.Equal(t, json.Number("600"), m["AccessTokenExpiresIn"])

	st, _, list := c.do(http.MethodGet, "/v1/warehouses", at, "")
	require.Equal(t, http.StatusOK, st)
	require.Len(t, list, 2)

	s.Clock.Advance(10 * time.Minute)
	st, m, _ = c.do(http.MethodGet, "/v1/warehouses", at, "")
	require.Equal(t, http.StatusUnauthorized, st)
	errs := m["Errors"].([]any)
	require.Len(t, errs, 1)
	require.Equal(t, "800F0401", errs[0].(map[string]any)["Code"])
	require.Regexp(t, `^[0-9a-f-]{36}$`, m["TicketId"])
	require.Contains(t, m["RequestUri"], "/v1/warehouses")
	require.NotEmpty(t, m["UtcDateTime"])

	// The fixed token outlives the clock.
	st, _, _ = c.do(http.MethodGet, "/v1/warehouses", ck1sbx.DemoFixedToken, "")
	require.Equal(t, http.StatusOK, st)
	st, _, _ = c.do(http.MethodGet, "/v1/warehouses", "", "")
	require.Equal(t, http.StatusUnauthorized, st)
	require.Equal(t, 2, s.Calls("unauthorized"))
}

func TestPricingValidationInCK1Shape(t *testing.T) {
	_, c := start(t, ck1sbx.Options{})
	okBox := `{"Weight":100,"Length":1,"Width":1,"Height":1,"Quantity":1}`
	cases := []struct {
		name, body, code string
	}{
		{"missing warehouse", `{"Boxes":[` + okBox + `]}`, "800F0410"},
		{"warehouse 11 chars", `{"WarehouseId":"ABCDEFGHIJK","Boxes":[` + okBox + `]}`, "800F0410"},
		{"service code pattern", `{"WarehouseId":"US","ServiceCode":"US SEA","Boxes":[` + okBox + `]}`, "800F0411"},
		{"location 31 chars", `{"WarehouseId":"US","LocationId":"` + strings.Repeat("x", 31) + `","Boxes":[` + okBox + `]}`, "800F0412"},
		{"boxes missing", `{"WarehouseId":"US"}`, "800F0413"},
		{"boxes null", `{"WarehouseId":"US","Boxes":null}`, "800F0413"},
		{"box missing a side", `{"WarehouseId":"US","Boxes":[{"Weight":1,"Width":1,"Height":1,"Quantity":1}]}`, "800F0414"},
		{"zero weight", `{"WarehouseId":"US","Boxes":[{"Weight":0,"Length":1,"Width":1,"Height":1,"Quantity":1}]}`, "800F0416"},
		{"weight past Int32", `{"WarehouseId":"US","Boxes":[{"Weight":2147483648,"Length":1,"Width":1,"Height":1,"Quantity":1}]}`, "800F0416"},
		{"weight fraction", `{"WarehouseId":"US","Boxes":[{"Weight":1.5,"Length":1,"Width":1,"Height":1,"Quantity":1}]}`, "800F0416"},
		{"quantity fraction", `{"WarehouseId":"US","Boxes":[{"Weight":1,"Length":1,"Width":1,"Height":1,"Quantity":1.5}]}`, "800F0417"},
		{"empty warehouse (a code that does not exist)", `{"WarehouseId":"","Boxes":[` + okBox + `]}`, "800F0420"},
		{"three decimals", `{"WarehouseId":"US","Boxes":[{"Weight":1,"Length":1.005,"Width":1,"Height":1,"Quantity":1}]}`, "800F0415"},
		{"seven integer digits", `{"WarehouseId":"US","Boxes":[{"Weight":1,"Length":1000000,"Width":1,"Height":1,"Quantity":1}]}`, "800F0415"},
		{"unknown warehouse", `{"WarehouseId":"FR","Boxes":[` + okBox + `]}`, "800F0420"},
		{"malformed", `{"WarehouseId":`, "800F0400"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, m, _ := c.do(http.MethodPost, "/v1/pricing/inbound/box", ck1sbx.DemoFixedToken, tc.body)
			require.Equal(t, http.StatusBadRequest, st)
			errs := m["Errors"].([]any)
			require.Equal(t, tc.code, errs[0].(map[string]any)["Code"], m)
			require.NotEmpty(t, m["TicketId"])
		})
	}
}

// Values CK1 documents as valid are priced, or refused per service with a
// reason, but never answered with a number that wrapped: the arithmetic is
// exact and a total beyond an Int32 of grams is a failed service.
func TestPricingEdgesUseCheckedArithmetic(t *testing.T) {
	_, c := start(t, ck1sbx.Options{})
	cases := []struct {
		name, boxes string
		success     bool
		grams       string // the chargeable weight in the remark, when priced
	}{
		{"empty list", `[]`, false, ""},
		{"quantity 0", `[{"Weight":100,"Length":1,"Width":1,"Height":1,"Quantity":0}]`, false, ""},
		{"negative quantity", `[{"Weight":100,"Length":1,"Width":1,"Height":1,"Quantity":-3}]`, false, ""},
		{"side 0", `[{"Weight":100,"Length":0,"Width":1,"Height":1,"Quantity":1}]`, true, "计费重 100 g"},
		{"exponent side", `[{"Weight":100,"Length":1e2,"Width":1,"Height":1,"Quantity":1}]`, true, "计费重 100 g"},
		{"Int32 weight × Int32 quantity", `[{"Weight":2147483647,"Length":1,"Width":1,"Height":1,"Quantity":2147483647}]`, false, ""},
		{"largest sides × Int32 quantity", `[{"Weight":1,"Length":999999.99,"Width":999999.99,"Height":999999.99,"Quantity":2147483647}]`, false, ""},
		{"just under the cap", `[{"Weight":2147483647,"Length":1,"Width":1,"Height":1,"Quantity":1}]`, true, "计费重 2147483647 g"},
		{"quantity past Int32 (no documented range)", `[{"Weight":1,"Length":1,"Width":1,"Height":1,"Quantity":4611686018427387904}]`, false, ""},
		{"quantity 1e30", `[{"Weight":1,"Length":1,"Width":1,"Height":1,"Quantity":1e30}]`, false, ""},
		{"quantity under Int32", `[{"Weight":1,"Length":1,"Width":1,"Height":1,"Quantity":-2147483649}]`, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, m, list := c.do(http.MethodPost, "/v1/pricing/inbound/box", ck1sbx.DemoFixedToken,
				`{"WarehouseId":"US","ServiceCode":"USSEA","IncludeUnsuccessful":true,"Boxes":`+tc.boxes+`}`)
			require.Equal(t, http.StatusOK, st, m)
			require.Len(t, list, 1)
			svc := list[0].(map[string]any)
			require.Equal(t, tc.success, svc["Success"], svc)
			if tc.success {
				detail := svc["ChargeInfo"].(map[string]any)["Detail"].([]any)
				require.Equal(t, tc.grams, detail[0].(map[string]any)["Remark"])
			} else {
				require.NotEmpty(t, svc["Message"])
			}
		})
	}
}

func TestPricingAnswersOnePerService(t *testing.T) {
	s, c := start(t, ck1sbx.Options{})
	// 1 × 3000 g 50×40×30 on UK (60000 cm³). UKAIR: vol 12000 g → 7.40 +
	// ceil(11000/500)=22 × 2.25 = 56.90, fuel 5.69 → 62.59 GBP. UKSEA: vol
	// 10000 g → 62.00 + 18 × 10.20 = 245.60 CNY.
	st, _, list := c.do(http.MethodPost, "/v1/pricing/inbound/box", ck1sbx.DemoFixedToken,
		`{"WarehouseId":"UK","Boxes":[{"Weight":3000,"Length":50,"Width":40,"Height":30,"Quantity":1}]}`)
	require.Equal(t, http.StatusOK, st)
	require.Len(t, list, 2)
	air, sea := list[0].(map[string]any), list[1].(map[string]any)
	require.Equal(t, "UKAIR", air["ServiceCode"])
	require.Equal(t, []any{map[string]any{"Currency": "GBP", "Amount": json.Number("62.59")}}, air["ChargeInfo"].(map[string]any)["Summary"])
	require.Equal(t, "UKSEA", sea["ServiceCode"])
	require.Equal(t, []any{map[string]any{"Currency": "CNY", "Amount": json.Number("245.60")}}, sea["ChargeInfo"].(map[string]any)["Summary"])
	require.Equal(t, map[string]any{"Min": json.Number("720"), "Max": json.Number("960")}, sea["LogisticsTimes"])
	require.Equal(t, 1, s.Calls("pricing"))
}

func TestEnvPointsAtTheSandbox(t *testing.T) {
	s := ck1sbx.New(ck1sbx.Options{})
	require.Equal(t, map[string]string{"CK1_API_BASE": "http://x", "CK1_CLIENT_ID": ck1sbx.DemoClientID,
		"CK1_CLIENT_SECRET": ck1sbx.DemoClientSecret, "CK1_REFRESH_TOKEN": ck1sbx.DemoRefreshToken, "CK1_ALLOW_MEMORY_STORE": "true"}, s.Env("http://x"))
}

// A refresh token lives RefreshTokenExpiresIn (30 days) on the sandbox
// clock, as the answer says: the sandbox kept them forever, so a client's
// "past the refresh token's expiry" could not be tried against it.
func TestRefreshTokenExpiresOnTheSandboxClock(t *testing.T) {
	s, c := start(t, ck1sbx.Options{})
	st, m := c.grant(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ck1sbx.DemoRefreshToken}})
	require.Equal(t, http.StatusOK, st, m)
	require.Equal(t, json.Number("2592000"), m["RefreshTokenExpiresIn"])
	next := m["RefreshToken"].(string)
	s.Clock.Advance(30*24*time.Hour - time.Second)
	st, m = c.grant(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next}})
	require.Equal(t, http.StatusOK, st, "a second before its expiry: %v", m)
	last := m["RefreshToken"].(string)
	s.Clock.Advance(30 * 24 * time.Hour)
	st, m = c.grant(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {last}})
	require.Equal(t, http.StatusBadRequest, st, "past it")
	require.Contains(t, m["Message"], "已过期")
}
