package ck1_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/ck1"
	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox"
	"github.com/cloudcall/cloudcall/shared/sandbox/ck1sbx"
	"github.com/cloudcall/cloudcall/shared/store"
)

type rig struct {
	sbx *ck1sbx.Server
	op  envelope.Op
	kv  store.Store
	url string
}

func newRig(t testing.TB, env map[string]string) *rig {
	t.Helper()
	return newRigWith(t, ck1sbx.Options{}, env)
}

func newRigWith(t testing.TB, o ck1sbx.Options, env map[string]string) *rig {
	t.Helper()
	sbx := ck1sbx.New(o)
	srv := httptest.NewServer(sbx.Handler())
	t.Cleanup(srv.Close)
	vars := sbx.Env(srv.URL)
	for k, v := range env {
		vars[k] = v
	}
	kv := store.NewMemory(store.MemoryOptions{})
	// The runtime hands the factory CLOUDCALL_TIMEOUT already parsed.
	timeout, err := config.FromMap(vars).Duration("CLOUDCALL_TIMEOUT", 0)
	require.NoError(t, err)
	op, err := ck1.Factory(context.Background(), runtime.Deps{Env: config.FromMap(vars), Store: kv, HTTP: srv.Client(), Timeout: timeout})
	require.NoError(t, err)
	return &rig{sbx: sbx, op: op, kv: kv, url: srv.URL}
}

// call returns the raw envelope and its decoding.
func (r *rig) call(t *testing.T, body string) (string, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp := r.op.Invoke(ctx, &envelope.Input{Body: []byte(body)})
	var m map[string]any
	require.NoError(t, json.Unmarshal(resp.Body, &m), string(resp.Body))
	return string(resp.Body), m
}

func box(weight, l, w, h string, qty int64) string {
	return fmt.Sprintf(`{"weight":%s,"length":%s,"width":%s,"height":%s,"quantity":%d}`, weight, l, w, h, qty)
}

func TestFieldRules(t *testing.T) {
	ok := box("1200", "30", "20", "15", 1)
	s30, s31 := strings.Repeat("A", 30), strings.Repeat("A", 31)
	cases := []struct {
		name, body, field string // field "" = valid
	}{
		// Every documented rule at and just past its boundary (seed 001 and
		// vendor-notes §3.4); nothing else is refused.
		{"serviceCode 30", `{"serviceCode":"` + s30 + `","warehouseId":"US","boxes":[` + ok + `]}`, ""},
		{"serviceCode 31", `{"serviceCode":"` + s31 + `","warehouseId":"US","boxes":[` + ok + `]}`, "serviceCode"},
		{"serviceCode empty", `{"serviceCode":"","warehouseId":"US","boxes":[` + ok + `]}`, ""},
		{"serviceCode pattern", `{"serviceCode":"US SEA","warehouseId":"US","boxes":[` + ok + `]}`, "serviceCode"},
		{"warehouseId missing", `{"boxes":[` + ok + `]}`, "warehouseId"},
		{"warehouseId empty (CK1 documents length 0 to 10)", `{"warehouseId":"","boxes":[` + ok + `]}`, ""},
		{"warehouseId 10", `{"warehouseId":"` + strings.Repeat("W", 10) + `","boxes":[` + ok + `]}`, ""},
		{"warehouseId 11", `{"warehouseId":"` + strings.Repeat("W", 11) + `","boxes":[` + ok + `]}`, "warehouseId"},
		{"warehouseId pattern", `{"warehouseId":"U.S","boxes":[` + ok + `]}`, "warehouseId"},
		{"locationId 30", `{"warehouseId":"US","locationId":"` + strings.Repeat("处", 30) + `","boxes":[` + ok + `]}`, ""},
		{"locationId 31", `{"warehouseId":"US","locationId":"` + strings.Repeat("处", 31) + `","boxes":[` + ok + `]}`, "locationId"},
		{"locationId spaces and symbols", `{"warehouseId":"US","locationId":"深圳 仓 ~*","boxes":[` + ok + `]}`, ""},
		{"boxes missing", `{"warehouseId":"US"}`, "boxes"},
		{"boxes empty (no minimum documented)", `{"warehouseId":"US","boxes":[]}`, ""},
		{"501 boxes (no maximum documented)", `{"warehouseId":"US","boxes":[` + strings.Repeat(ok+",", 500) + ok + `]}`, ""},
		{"weight 1", `{"warehouseId":"US","boxes":[` + box("1", "1", "1", "1", 1) + `]}`, ""},
		{"weight 0", `{"warehouseId":"US","boxes":[` + box("0", "1", "1", "1", 1) + `]}`, "boxes[0].weight"},
		{"weight max", `{"warehouseId":"US","boxes":[` + box("2147483647", "1", "1", "1", 1) + `]}`, ""},
		{"weight max+1", `{"warehouseId":"US","boxes":[` + box("2147483648", "1", "1", "1", 1) + `]}`, "boxes[0].weight"},
		{"weight decimal", `{"warehouseId":"US","boxes":[` + box("12.5", "1", "1", "1", 1) + `]}`, "boxes[0].weight"},
		{"weight exponent is an integer", `{"warehouseId":"US","boxes":[` + box("1e3", "1", "1", "1", 1) + `]}`, ""},
		{"length 2 decimals", `{"warehouseId":"US","boxes":[` + box("100", "10.25", "1", "1", 1) + `]}`, ""},
		{"length 3 decimals", `{"warehouseId":"US","boxes":[` + box("100", "10.255", "1", "1", 1) + `]}`, "boxes[0].length"},
		{"length 1e2", `{"warehouseId":"US","boxes":[` + box("100", "1e2", "1", "1", 1) + `]}`, ""},
		{"length 0", `{"warehouseId":"US","boxes":[` + box("100", "0", "1", "1", 1) + `]}`, ""},
		{"width 0.01", `{"warehouseId":"US","boxes":[` + box("100", "1", "0.01", "1", 1) + `]}`, ""},
		{"height 999999.99", `{"warehouseId":"US","boxes":[` + box("100", "1", "1", "999999.99", 1) + `]}`, ""},
		{"height 1000000", `{"warehouseId":"US","boxes":[` + box("100", "1", "1", "1000000", 1) + `]}`, "boxes[0].height"},
		{"height -999999.99", `{"warehouseId":"US","boxes":[` + box("100", "1", "1", "-999999.99", 1) + `]}`, ""},
		{"height -1000000", `{"warehouseId":"US","boxes":[` + box("100", "1", "1", "-1000000", 1) + `]}`, "boxes[0].height"},
		{"height string", `{"warehouseId":"US","boxes":[` + box("100", "1", "1", `"5"`, 1) + `]}`, "boxes[0].height"},
		{"quantity 0", `{"warehouseId":"US","boxes":[` + box("100", "1", "1", "1", 0) + `]}`, ""},
		{"quantity Int32 max", `{"warehouseId":"US","boxes":[` + box("100", "1", "1", "1", 2147483647) + `]}`, ""},
		{"quantity Int32 max+1 (no documented range)", `{"warehouseId":"US","boxes":[` + box("100", "1", "1", "1", 2147483648) + `]}`, ""},
		{"quantity Int32 min", `{"warehouseId":"US","boxes":[` + box("100", "1", "1", "1", -2147483648) + `]}`, ""},
		{"quantity Int32 min-1 (no documented range)", `{"warehouseId":"US","boxes":[` + box("100", "1", "1", "1", -2147483649) + `]}`, ""},
		{"quantity 2^62 (no documented range)", `{"warehouseId":"US","boxes":[` + box("100", "1", "1", "1", 4611686018427387904) + `]}`, ""},
		{"quantity 1.5", `{"warehouseId":"US","boxes":[{"weight":1,"length":1,"width":1,"height":1,"quantity":1.5}]}`, "boxes[0].quantity"},
		{"quantity string", `{"warehouseId":"US","boxes":[{"weight":1,"length":1,"width":1,"height":1,"quantity":"2"}]}`, "boxes[0].quantity"},
		{"boolean type", `{"warehouseId":"US","includeUnsuccessful":"yes","boxes":[` + ok + `]}`, "includeUnsuccessful"},
		{"null box", `{"warehouseId":"US","boxes":[null]}`, "boxes[0]"},
		{"second box length missing", `{"warehouseId":"US","boxes":[` + box("1", "1", "1", "1", 1) + `,{"weight":1,"width":1,"height":1,"quantity":1}]}`, "boxes[1].length"},
		{"boxes not a list", `{"warehouseId":"US","boxes":{"weight":1}}`, "boxes"},
		{"vendor spelling", `{"WarehouseId":"US","boxes":[` + ok + `]}`, "WarehouseId"},
		{"duplicate key in a box", `{"warehouseId":"US","boxes":[` + ok + `,{"weight":1,"weight":2,"length":1,"width":1,"height":1,"quantity":1}]}`, "boxes[1].weight"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, nil)
			_, m := r.call(t, c.body)
			if c.field == "" {
				require.NotEqual(t, -1001.0, m["errCode"], m)
				require.Equal(t, 1, r.sbx.Calls("http:/v1/pricing/inbound/box"), "valid input goes to CK1")
				return
			}
			require.Equal(t, -1001.0, m["errCode"], m)
			require.Equal(t, c.field, m["field"], m)
			require.Contains(t, m["errMsg"], c.field)
			require.Equal(t, 0, r.sbx.Calls("http:/v1/pricing/inbound/box"), "invalid input is never sent")
			require.Equal(t, 0, r.sbx.Calls("oauth2/token"), "nor is a token fetched for it")
		})
	}
}

// services returns each service of a success envelope as its exact JSON
// bytes, keyed by service code, so digits are compared as sent.
func services(t *testing.T, raw string) map[string]string {
	t.Helper()
	var env struct {
		ErrCode  int               `json:"errCode"`
		Services []json.RawMessage `json:"services"`
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &env))
	require.Equal(t, 0, env.ErrCode, raw)
	out := map[string]string{}
	for _, s := range env.Services {
		var id struct {
			ServiceCode string `json:"serviceCode"`
		}
		require.NoError(t, json.Unmarshal(s, &id))
		out[id.ServiceCode] = string(s)
	}
	return out
}

func compact(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, json.Compact(&b, []byte(s)))
	return b.String()
}

// The expected quotes are worked out by hand from the rate card documented
// in shared/sandbox/ck1sbx/ratecard.go and the README, not by calling it.
func TestQuotesMatchTheRateCard(t *testing.T) {
	cases := []struct {
		name, body string
		want       map[string]string // service code → exact JSON
	}{{
		// 2 × 1200 g, 30×20×15 cm = 9000 cm³.
		// USSEA: volumetric 9000×1000/6000 = 1500 g > 1200 → 2 × 1500 = 3000 g;
		//   58.00 + ceil(2000/500)=4 × 9.50 = 96.00 CNY.
		// USAIR: volumetric 9000×1000/5000 = 1800 g → 3600 g;
		//   9.80 + ceil(2600/500)=6 × 3.15 = 28.70; fuel 10% = 2.87; 31.57 USD.
		name: "A: two identical light but bulky boxes",
		body: `{"warehouseId":"US","boxes":[` + box("1200", "30", "20", "15", 2) + `]}`,
		want: map[string]string{
			"USSEA": `{"serviceCode":"USSEA","serviceName":"美国海运头程","success":true,"message":"",
				"chargeInfo":{"summary":[{"currency":"CNY","amount":96.00}],
				"detail":[{"currency":"CNY","amount":96.00,"chargeName":"头程运费 Freight","remark":"计费重 3000 g"}]},
				"totalCharge":{"currency":"CNY","amount":96.00},"logisticsTimes":{"min":600,"max":840}}`,
			"USAIR": `{"serviceCode":"USAIR","serviceName":"美国空运头程","success":true,"message":"",
				"chargeInfo":{"summary":[{"currency":"USD","amount":31.57}],
				"detail":[{"currency":"USD","amount":28.70,"chargeName":"头程运费 Freight","remark":"计费重 3600 g"},
				{"currency":"USD","amount":2.87,"chargeName":"燃油附加费 Fuel surcharge","remark":"10%"}]},
				"totalCharge":{"currency":"USD","amount":31.57},"logisticsTimes":{"min":168,"max":240}}`,
		},
	}, {
		// 1 × 5000 g 40×30×20 (24000 cm³) + 3 × 800 g 10×10×10, customs clearance.
		// USSEA: vol 4000 g < 5000; vol 167 g < 800 → 5000 + 2400 = 7400 g;
		//   58.00 + ceil(6400/500)=13 × 9.50 = 181.50; + 45.00 customs = 226.50 CNY.
		// USAIR: vol 4800 g < 5000; 200 g < 800 → 7400 g; 9.80 + 13 × 3.15 =
		//   50.75; fuel 5.075 → 5.08 (half-up) = 55.83 USD, and 45.00 CNY:
		//   two currencies, so no totalCharge.
		name: "B: mixed boxes with customs clearance",
		body: `{"warehouseId":"US","isCustomsClearance":true,"boxes":[` + box("5000", "40", "30", "20", 1) + `,` + box("800", "10", "10", "10", 3) + `]}`,
		want: map[string]string{
			"USSEA": `{"serviceCode":"USSEA","serviceName":"美国海运头程","success":true,"message":"",
				"chargeInfo":{"summary":[{"currency":"CNY","amount":226.50}],
				"detail":[{"currency":"CNY","amount":181.50,"chargeName":"头程运费 Freight","remark":"计费重 7400 g"},
				{"currency":"CNY","amount":45.00,"chargeName":"代付关税手续费 Customs clearance fee","remark":""}]},
				"totalCharge":{"currency":"CNY","amount":226.50},"logisticsTimes":{"min":600,"max":840}}`,
			"USAIR": `{"serviceCode":"USAIR","serviceName":"美国空运头程","success":true,"message":"",
				"chargeInfo":{"summary":[{"currency":"USD","amount":55.83},{"currency":"CNY","amount":45.00}],
				"detail":[{"currency":"USD","amount":50.75,"chargeName":"头程运费 Freight","remark":"计费重 7400 g"},
				{"currency":"USD","amount":5.08,"chargeName":"燃油附加费 Fuel surcharge","remark":"10%"},
				{"currency":"CNY","amount":45.00,"chargeName":"代付关税手续费 Customs clearance fee","remark":""}]},
				"logisticsTimes":{"min":168,"max":240}}`,
		},
	}, {
		// 1 × 2000 g 130×40×40 = 208000 cm³. USSEA: vol 34666.67 → 34667 g;
		// 58.00 + ceil(33667/500)=68 × 9.50 = 704.00 CNY. USAIR refuses a
		// 130 cm side (max 120): left out unless includeUnsuccessful.
		name: "C: oversize box, unsuccessful services hidden",
		body: `{"warehouseId":"US","boxes":[` + box("2000", "130", "40", "40", 1) + `]}`,
		want: map[string]string{
			"USSEA": `{"serviceCode":"USSEA","serviceName":"美国海运头程","success":true,"message":"",
				"chargeInfo":{"summary":[{"currency":"CNY","amount":704.00}],
				"detail":[{"currency":"CNY","amount":704.00,"chargeName":"头程运费 Freight","remark":"计费重 34667 g"}]},
				"totalCharge":{"currency":"CNY","amount":704.00},"logisticsTimes":{"min":600,"max":840}}`,
		},
	}, {
		name: "C': the same with includeUnsuccessful",
		body: `{"warehouseId":"US","includeUnsuccessful":true,"boxes":[` + box("2000", "130", "40", "40", 1) + `]}`,
		want: map[string]string{
			"USSEA": `{"serviceCode":"USSEA","serviceName":"美国海运头程","success":true,"message":"",
				"chargeInfo":{"summary":[{"currency":"CNY","amount":704.00}],
				"detail":[{"currency":"CNY","amount":704.00,"chargeName":"头程运费 Freight","remark":"计费重 34667 g"}]},
				"totalCharge":{"currency":"CNY","amount":704.00},"logisticsTimes":{"min":600,"max":840}}`,
			"USAIR": `{"serviceCode":"USAIR","serviceName":"美国空运头程","success":false,
				"message":"超长: 单边 130.00 cm 超过 120 cm (oversize)","chargeInfo":{"summary":[],"detail":[]}}`,
		},
	}, {
		// UK, one service: 1000 g 25.5×20.25×10 = 5163.75 cm³ → vol 1032.75 →
		// 1033 g; 7.40 + ceil(33/500)=1 × 2.25 = 9.65; fuel 0.965 → 0.97;
		// 10.62 GBP, plus the 20.00 CNY tax-number fee.
		name: "D: decimal dimensions, one service, borrowed tax number",
		body: `{"warehouseId":"UK","serviceCode":"UKAIR","isBorrowTaxNo":true,"boxes":[` + box("1000", "25.5", "20.25", "10", 1) + `]}`,
		want: map[string]string{
			"UKAIR": `{"serviceCode":"UKAIR","serviceName":"英国空运头程","success":true,"message":"",
				"chargeInfo":{"summary":[{"currency":"GBP","amount":10.62},{"currency":"CNY","amount":20.00}],
				"detail":[{"currency":"GBP","amount":9.65,"chargeName":"头程运费 Freight","remark":"计费重 1033 g"},
				{"currency":"GBP","amount":0.97,"chargeName":"燃油附加费 Fuel surcharge","remark":"10%"},
				{"currency":"CNY","amount":20.00,"chargeName":"借用税号费 Tax number fee","remark":""}]},
				"logisticsTimes":{"min":192,"max":264}}`,
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, nil)
			raw, _ := r.call(t, c.body)
			got := services(t, raw)
			require.Len(t, got, len(c.want), raw)
			for code, want := range c.want {
				require.Equal(t, compact(t, want), got[code], code)
			}
			require.Equal(t, 1, r.sbx.Calls("http:/v1/pricing/inbound/box"))
		})
	}
}

func TestDecimalFidelity(t *testing.T) {
	r := newRig(t, nil)
	body := `[{"ServiceCode":"X","ServiceName":"x","Success":true,"Message":"","ChargeInfo":{"Summary":[{"Currency":"CNY","Amount":12.30},{"Currency":"USD","Amount":0.1}],"Detail":[{"Currency":"CNY","Amount":12.30,"ChargeName":"a","Remark":""}]},"TotalCharge":{"Currency":"CNY","Amount":1234567890.123456789},"LogisticsTimes":{"Min":1,"Max":2}}]`
	r.sbx.Inject(sandbox.Fault{Path: "/v1/pricing/inbound/box", Kind: sandbox.FaultStatus, Status: 200, Body: body, Times: 1})
	raw, m := r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
	require.Equal(t, 0.0, m["errCode"], raw)
	require.Contains(t, raw, `{"currency":"CNY","amount":12.30}`)
	require.Contains(t, raw, `{"currency":"USD","amount":0.1}`)
	require.Contains(t, raw, `"totalCharge":{"currency":"CNY","amount":1234567890.123456789}`)
}

// TestAnAmountCK1DidNotSendIsNeverZero: a quote whose amount is absent or
// null, or a null answer, cannot be read; it must not read as free.
func TestAnAmountCK1DidNotSendIsNeverZero(t *testing.T) {
	for name, body := range map[string]string{
		"summary amount absent": `[{"ServiceCode":"X","Success":true,"ChargeInfo":{"Summary":[{"Currency":"CNY"}],"Detail":[]}}]`,
		"detail amount null":    `[{"ServiceCode":"X","Success":true,"ChargeInfo":{"Summary":[{"Currency":"CNY","Amount":1}],"Detail":[{"Currency":"CNY","Amount":null,"ChargeName":"a"}]}}]`,
		"a null answer":         `null`,
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, nil)
			r.sbx.Inject(sandbox.Fault{Path: "/v1/pricing/inbound/box", Kind: sandbox.FaultStatus, Status: 200, Body: body, Times: 1})
			raw, m := r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
			require.Equal(t, -1303.0, m["errCode"], raw)
			require.NotContains(t, raw, `"amount"`)
		})
	}
	// Delivery times come only as the pair CK1 sent.
	r := newRig(t, nil)
	r.sbx.Inject(sandbox.Fault{Path: "/v1/pricing/inbound/box", Kind: sandbox.FaultStatus, Status: 200, Times: 1,
		Body: `[{"ServiceCode":"X","Success":true,"ChargeInfo":{"Summary":[{"Currency":"CNY","Amount":1}],"Detail":[]},"LogisticsTimes":{}}]`})
	raw, m := r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
	require.Equal(t, 0.0, m["errCode"], raw)
	require.NotContains(t, raw, `logisticsTimes`)
}

// CK1 documents no 429, its vendor note says to expect one: it is
// throttling (-1201 with the wait), not a refusal.
func TestHTTP429IsThrottled(t *testing.T) {
	r := newRig(t, nil)
	r.sbx.Inject(sandbox.Fault{Path: "/v1/pricing/inbound/box", Kind: sandbox.FaultStatus, Status: 429, Body: `{}`, Times: 1})
	raw, m := r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
	require.Equal(t, -1201.0, m["errCode"], raw)
	require.Equal(t, 1.0, m["retryAfter"], raw)
	require.Equal(t, 429.0, m["upstream"].(map[string]any)["httpStatus"], raw)
}

func TestVendorErrorKeptVerbatim(t *testing.T) {
	r := newRig(t, nil)
	_, m := r.call(t, `{"warehouseId":"NOPE","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
	require.Equal(t, -1305.0, m["errCode"])
	up := m["upstream"].(map[string]any)
	require.Equal(t, "ck1", up["vendor"])
	require.Equal(t, 400.0, up["httpStatus"])
	require.Equal(t, "800F0420", up["code"])
	require.NotEmpty(t, up["requestId"], "CK1's TicketId")
	extra := up["extra"].(map[string]any)
	require.Contains(t, extra, "UtcDateTime")
	require.Contains(t, extra, "RequestUri")
}

func TestTwentyConcurrentCallsOnAnExpiredTokenRefreshOnce(t *testing.T) {
	r := newRig(t, nil)
	_, m := r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
	require.Equal(t, 0.0, m["errCode"])
	require.Equal(t, 1, r.sbx.Calls("refresh"))
	r.sbx.ExpireAccessTokens()
	var wg sync.WaitGroup
	codes := make([]any, 20)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, m := r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
			codes[i] = m["errCode"]
		}()
	}
	wg.Wait()
	for _, c := range codes {
		require.Equal(t, 0.0, c)
	}
	require.Equal(t, 2, r.sbx.Calls("refresh"), "exactly one refresh for the twenty")
	// Later calls use the rotated tokens: no more refreshes, no 401s.
	unauth := r.sbx.Calls("unauthorized")
	r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
	require.Equal(t, 2, r.sbx.Calls("refresh"))
	require.Equal(t, unauth, r.sbx.Calls("unauthorized"))
	// The stored refresh token is the rotated one, never the spent seed.
	raw, err := r.kv.Get(context.Background(), "ck1:oauth:"+ck1sbx.DemoClientID)
	require.NoError(t, err)
	require.NotContains(t, string(raw), ck1sbx.DemoRefreshToken)
}

func TestRevokedRefreshTokenFailsClearlyWithoutLooping(t *testing.T) {
	r := newRig(t, nil)
	r.sbx.RevokeRefreshTokens()
	_, m := r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
	// On an empty store the seed's refusal is retryable for the 10 s in
	// which a warm instance would store its pair (a store just emptied).
	require.Equal(t, -1501.0, m["errCode"])
	require.Equal(t, 1.0, m["retryAfter"])
	require.Contains(t, m["errMsg"], "CK1 refused the refresh token")
	// 10 s later (the refusal's time in the store moved back): for good.
	key := "ck1:oauth:" + ck1sbx.DemoClientID
	raw, err := r.kv.Get(context.Background(), key)
	require.NoError(t, err)
	var st map[string]any
	require.NoError(t, json.Unmarshal(raw, &st))
	st["refusedAt"] = st["refusedAt"].(float64) - 10_000
	raw, err = json.Marshal(st)
	require.NoError(t, err)
	require.NoError(t, r.kv.Set(context.Background(), key, raw, time.Hour))
	_, m = r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
	require.Equal(t, -1601.0, m["errCode"])
	require.Contains(t, m["errMsg"], "CK1 refused the refresh token")
	require.Contains(t, m["errMsg"], "authorize the app again")
	require.Equal(t, 1, r.sbx.Calls("refresh"), "one attempt, no loop")
	require.Equal(t, 0, r.sbx.Calls("pricing"))
}

// A throttle or a server error at the token endpoint says nothing of the
// refresh token: it is retryable, never "authorize the app again" (-1601,
// which every status but 200 was).
func TestTokenEndpointBlipsAreRetryable(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   float64
	}{{503, -1302}, {500, -1302}, {429, -1201}} {
		r := newRig(t, nil)
		r.sbx.Inject(sandbox.Fault{Path: "/oauth2/token", Kind: sandbox.FaultStatus, Status: tc.status, Body: `{"message":"busy"}`, Times: 1})
		_, m := r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
		require.Equal(t, tc.code, m["errCode"], "%d: %v", tc.status, m)
		require.NotContains(t, m["errMsg"], "authorize the app again")
		require.Equal(t, float64(tc.status), m["upstream"].(map[string]any)["httpStatus"])
		require.Equal(t, 0, r.sbx.Calls("pricing"))
		_, m = r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
		require.Equal(t, 0.0, m["errCode"], "%d: the retry refreshes with the same token: %v", tc.status, m)
	}
}

func TestFixedToken(t *testing.T) {
	r := newRig(t, map[string]string{"CK1_ACCESS_TOKEN": ck1sbx.DemoFixedToken})
	_, m := r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
	require.Equal(t, 0.0, m["errCode"])
	require.Equal(t, 0, r.sbx.Calls("oauth2/token"))
}

// A fixed token has nothing to refresh: CK1's 401 is answered at once, after
// one request, saying which setting it refused (it said "even after a
// refresh", and sent the same token twice).
func TestARefusedFixedTokenIsNamed(t *testing.T) {
	r := newRig(t, map[string]string{"CK1_ACCESS_TOKEN": "not-a-token-ck1-knows"})
	_, m := r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
	require.Equal(t, -1305.0, m["errCode"], m)
	require.Contains(t, m["errMsg"], "(CK1 refused the fixed token in CK1_ACCESS_TOKEN: check it, or unset it to use OAuth)")
	require.NotContains(t, m["errMsg"], "refresh")
	require.Equal(t, 1, r.sbx.Calls("http:/v1/pricing/inbound/box"))
	require.Equal(t, 0, r.sbx.Calls("oauth2/token"))
}

func TestServerErrorsAreRetried(t *testing.T) {
	r := newRig(t, map[string]string{"CK1_ACCESS_TOKEN": ck1sbx.DemoFixedToken})
	r.sbx.Inject(sandbox.Fault{Path: "/v1/pricing/inbound/box", Kind: sandbox.FaultStatus, Status: 503, Body: `{"Errors":[{"Code":"500","Message":"busy"}]}`, Times: 2})
	_, m := r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
	require.Equal(t, 0.0, m["errCode"])
	require.Equal(t, 3, r.sbx.Calls("http:/v1/pricing/inbound/box"))
}

// The sandbox clock runs past the access token's life while the function
// still believes in it: CK1's 401 makes it refresh once and retry.
func TestUnauthorizedRefreshesOnceAndRetries(t *testing.T) {
	r := newRigWith(t, ck1sbx.Options{AccessLifetime: 10 * time.Minute}, nil)
	body := `{"warehouseId":"US","boxes":[` + box("1", "1", "1", "1", 1) + `]}`
	_, m := r.call(t, body)
	require.Equal(t, 0.0, m["errCode"])
	r.sbx.Clock.Advance(11 * time.Minute)
	_, m = r.call(t, body)
	require.Equal(t, 0.0, m["errCode"], m)
	require.Equal(t, 1, r.sbx.Calls("unauthorized"))
	require.Equal(t, 2, r.sbx.Calls("refresh"))
	require.Equal(t, 3, r.sbx.Calls("http:/v1/pricing/inbound/box"))
}

// A token CK1 keeps refusing is reported after one refresh, not retried
// forever; CK1's body is in upstream.
func TestPersistentUnauthorizedDoesNotLoop(t *testing.T) {
	r := newRig(t, nil)
	r.sbx.Inject(sandbox.Fault{Path: "/v1/pricing/inbound/box", Kind: sandbox.FaultStatus, Status: 401,
		Body: `{"Errors":[{"Code":"800F0401","Message":"denied"}],"TicketId":"t-1","UtcDateTime":"2026-01-01T00:00:00Z","RequestUri":"x"}`, Times: 100})
	_, m := r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
	require.Equal(t, -1305.0, m["errCode"], m)
	require.Contains(t, m["errMsg"], "800F0401")
	up := m["upstream"].(map[string]any)
	require.Equal(t, 401.0, up["httpStatus"])
	require.Equal(t, "t-1", up["requestId"])
	require.Equal(t, 2, r.sbx.Calls("http:/v1/pricing/inbound/box"))
	require.Equal(t, 2, r.sbx.Calls("refresh"), "the first token, then exactly one refresh after the 401")
}

func TestConnectionResetsAreRetried(t *testing.T) {
	r := newRig(t, map[string]string{"CK1_ACCESS_TOKEN": ck1sbx.DemoFixedToken})
	r.sbx.Inject(sandbox.Fault{Path: "/v1/pricing/inbound/box", Kind: sandbox.FaultReset, Times: 2})
	_, m := r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
	require.Equal(t, 0.0, m["errCode"], m)
	require.Equal(t, 3, r.sbx.Calls("http:/v1/pricing/inbound/box"))

	r.sbx.Inject(sandbox.Fault{Path: "/v1/pricing/inbound/box", Kind: sandbox.FaultStatus, Status: 502, Body: "bad gateway", Times: 3})
	_, m = r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
	require.Equal(t, float64(envelope.CodeUpstreamUnreachable), m["errCode"], m)
	require.Equal(t, 6, r.sbx.Calls("http:/v1/pricing/inbound/box"), "three attempts, then the error")
}

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(p, got, 0o644))
	}
	want, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
}

// The request CK1 receives (PascalCase, digits as the caller wrote them,
// absent optional members left out) and the answer mapped from CK1's payload.
func TestWirePayloadsGolden(t *testing.T) {
	resp, err := os.ReadFile("testdata/inbound_box_response.json")
	require.NoError(t, err)
	var sent []byte
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/v1/pricing/inbound/box", r.URL.Path)
		auth = r.Header.Get("Authorization")
		sent, _ = io.ReadAll(r.Body)
		_, _ = w.Write(resp)
	}))
	defer srv.Close()
	op, err := ck1.Factory(context.Background(), runtime.Deps{Env: config.FromMap(map[string]string{
		"CK1_API_BASE": srv.URL, "CK1_ACCESS_TOKEN": "fixed-1"}), Store: store.NewMemory(store.MemoryOptions{}), HTTP: srv.Client()})
	require.NoError(t, err)
	in := `{"warehouseId":"US","locationId":"A-01","includeUnsuccessful":true,"isBorrowTaxNo":true,"boxes":[` +
		box("1200", "30.50", "20", "15.05", 2) + `,` + box("800", "10", "10.1", "10", 3) + `]}`
	out := op.Invoke(context.Background(), &envelope.Input{Body: []byte(in)})
	require.Equal(t, "Bearer fixed-1", auth)
	golden(t, "inbound_box_request.golden.json", sent)
	var pretty bytes.Buffer
	require.NoError(t, json.Indent(&pretty, out.Body, "", "  "))
	golden(t, "inbound_box_output.golden.json", pretty.Bytes())
}

// Two instances (two factories) sharing one store: after the tokens expire,
// ten concurrent calls on each still spend the refresh token once, and the
// second instance picks the rotated pair from the store.
func TestInstancesShareOneRefresh(t *testing.T) {
	r := newRig(t, nil)
	second, err := ck1.Factory(context.Background(), runtime.Deps{Env: config.FromMap(r.sbx.Env(r.url)), Store: r.kv, HTTP: http.DefaultClient})
	require.NoError(t, err)
	body := []byte(`{"warehouseId":"US","boxes":[` + box("1", "1", "1", "1", 1) + `]}`)
	_, m := r.call(t, string(body))
	require.Equal(t, 0.0, m["errCode"])
	r.sbx.ExpireAccessTokens()
	var wg sync.WaitGroup
	codes := make([]string, 20)
	for i := range codes {
		op := r.op
		if i%2 == 1 {
			op = second
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			codes[i] = string(op.Invoke(ctx, &envelope.Input{Body: body}).Body)
		}()
	}
	wg.Wait()
	for _, c := range codes {
		require.Contains(t, c, `"errCode":0`)
	}
	require.Equal(t, 2, r.sbx.Calls("refresh"), "the seed, then one refresh for both instances")
}

// A side is sent with the caller's digits; an exponent form is written out
// in plain digits, as CK1's decimal(8,2) reads it.
func TestDecimalKeepsDigits(t *testing.T) {
	for in, want := range map[string]string{"30.50": "30.50", "1e2": "100", "2.5E-1": "0.25", "1.5e1": "15", "-0": "-0", "0.01": "0.01"} {
		var d ck1.Decimal
		require.NoError(t, d.UnmarshalJSON([]byte(in)), in)
		require.Equal(t, want, string(d), in)
	}
	var d ck1.Decimal
	require.Error(t, d.UnmarshalJSON([]byte(`"5"`)), "a quoted number is a string")
}

// A caller that gives up while CK1 rotates the refresh token (a client
// disconnecting in HTTP-server mode) loses nothing: CK1 has already spent
// the old token, so the exchange and its store write finish without the
// caller, and the next instance on the same store carries on with the
// rotated pair instead of presenting the spent token.
func TestACallerThatGivesUpMidRefreshLosesNoRefreshToken(t *testing.T) {
	sbx := ck1sbx.New(ck1sbx.Options{})
	h := sbx.Handler()
	rotated := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/oauth2/token") {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r) // CK1 has rotated: the old refresh token is spent
		once.Do(func() { close(rotated) })
		<-release
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	defer srv.Close()
	kv := store.NewMemory(store.MemoryOptions{})
	deps := func() runtime.Deps {
		return runtime.Deps{Env: config.FromMap(sbx.Env(srv.URL)), Store: kv, HTTP: srv.Client()}
	}
	first, err := ck1.Factory(context.Background(), deps())
	require.NoError(t, err)
	body := []byte(`{"warehouseId":"US","boxes":[` + box("1", "1", "1", "1", 1) + `]}`)

	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan envelope.Response, 1)
	go func() { gaveUp <- first.Invoke(ctx, &envelope.Input{Body: body}) }()
	<-rotated
	cancel()
	close(release)
	<-gaveUp

	second, err := ck1.Factory(context.Background(), deps())
	require.NoError(t, err)
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	resp := second.Invoke(cctx, &envelope.Input{Body: body})
	require.Contains(t, string(resp.Body), `"errCode":0`)
	require.Equal(t, 1, sbx.Calls("refresh"), "the rotated pair was stored: no second refresh")
}

// A call whose whole time is short refreshes at its start: the least time
// to start a refresh is 3 s, or half the call's time when that is shorter.
// With a platform Timeout of 1-3 s (a Lambda or FC setting, not
// CLOUDCALL_TIMEOUT) every call answered -1301 for good (outside tester). A
// call that spent most of a longer time before its refresh is refused, and
// spends nothing (TestAShortCallCanRefreshAtItsStart).
func TestAShortCallRefreshesAtItsStart(t *testing.T) {
	for _, left := range []time.Duration{300 * time.Millisecond, time.Second, 2700 * time.Millisecond} {
		t.Run(left.String(), func(t *testing.T) {
			r := newRig(t, nil)
			body := []byte(`{"warehouseId":"US","boxes":[` + box("1", "1", "1", "1", 1) + `]}`)
			ctx, cancel := context.WithTimeout(context.Background(), left)
			defer cancel()
			var m map[string]any
			require.NoError(t, json.Unmarshal(r.op.Invoke(ctx, &envelope.Input{Body: body}).Body, &m))
			require.Equal(t, 0.0, m["errCode"], "%s: %v", left, m)
			require.Equal(t, 1, r.sbx.Calls("refresh"))
		})
	}
}

// tokenWrites fails writes of the CK1 token state (not the refresh lease)
// while down, or for the next fails writes.
type tokenWrites struct {
	store.Store
	down  atomic.Bool
	fails atomic.Int32
}

func (s *tokenWrites) refuse(key string) bool {
	if !strings.HasPrefix(key, "ck1:oauth:") || strings.HasSuffix(key, ":lock") {
		return false
	}
	return s.down.Load() || s.fails.Add(-1) >= 0
}

func (s *tokenWrites) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	if s.refuse(key) {
		return fmt.Errorf("%w: test outage", store.ErrUnavailable)
	}
	return s.Store.Set(ctx, key, v, ttl)
}

func (s *tokenWrites) CompareAndSwap(ctx context.Context, key string, old, v []byte, ttl time.Duration) (bool, error) {
	if s.refuse(key) {
		return false, fmt.Errorf("%w: test outage", store.ErrUnavailable)
	}
	return s.Store.CompareAndSwap(ctx, key, old, v, ttl)
}

func ck1Rig(t *testing.T, kv store.Store) (*ck1sbx.Server, func() envelope.Op) {
	t.Helper()
	sbx := ck1sbx.New(ck1sbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	t.Cleanup(srv.Close)
	return sbx, func() envelope.Op {
		op, err := ck1.Factory(context.Background(), runtime.Deps{Env: config.FromMap(sbx.Env(srv.URL)), Store: kv, HTTP: srv.Client()})
		require.NoError(t, err)
		return op
	}
}

func quote(t *testing.T, op envelope.Op) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var m map[string]any
	body := []byte(`{"warehouseId":"US","boxes":[` + box("1", "1", "1", "1", 1) + `]}`)
	require.NoError(t, json.Unmarshal(op.Invoke(ctx, &envelope.Input{Body: body}).Body, &m))
	return m
}

// A store that fails a moment while a refresh writes the rotated pair gets
// it on a retry: the next instance carries on with it.
func TestARotatedPairIsWrittenThroughAStoreBlip(t *testing.T) {
	kv := &tokenWrites{Store: store.NewMemory(store.MemoryOptions{})}
	kv.fails.Store(1)
	sbx, build := ck1Rig(t, kv)
	require.Equal(t, 0.0, quote(t, build())["errCode"])
	require.Equal(t, 0.0, quote(t, build())["errCode"], "a second instance")
	require.Equal(t, 1, sbx.Calls("refresh"))
}

// A rotated pair the store would not take stays with the instance that
// got it: that instance spends its refresh token next (the stored one is
// spent), and writes its pair once the store answers, so other instances
// carry on without presenting a spent token.
func TestARotatedPairTheStoreRefusedIsSpentNextAndStoredLater(t *testing.T) {
	kv := &tokenWrites{Store: store.NewMemory(store.MemoryOptions{})}
	kv.down.Store(true)
	sbx, build := ck1Rig(t, kv)
	first := build()
	require.Equal(t, 0.0, quote(t, first)["errCode"])
	sbx.ExpireAccessTokens()
	m := quote(t, first)
	require.Equal(t, 0.0, m["errCode"], "refreshed with the unsaved token, not the spent seed: %v", m)
	require.Equal(t, 2, sbx.Calls("refresh"))

	kv.down.Store(false)
	// Calls on the instance race its background write of the kept pair.
	var wg sync.WaitGroup
	codes := make([]any, 16)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = quote(t, first)["errCode"]
		}()
	}
	wg.Wait()
	for _, c := range codes {
		require.Equal(t, 0.0, c)
	}
	require.Eventually(t, func() bool {
		_, err := kv.Get(context.Background(), "ck1:oauth:"+ck1sbx.DemoClientID)
		return err == nil
	}, 5*time.Second, 10*time.Millisecond, "the kept pair reaches the store")
	require.Equal(t, 0.0, quote(t, build())["errCode"], "a second instance")
	require.Equal(t, 2, sbx.Calls("refresh"))
}

// A secret that is set but unusable (surrounding whitespace) is named, not
// answered with the generic "set CK1_ACCESS_TOKEN, or ..." as if missing.
func TestFactoryNamesAnUnusableSecret(t *testing.T) {
	sbx := ck1sbx.New(ck1sbx.Options{})
	vars := sbx.Env("http://127.0.0.1:1")
	delete(vars, "CK1_ACCESS_TOKEN")
	vars["CK1_CLIENT_ID"], vars["CK1_CLIENT_SECRET"], vars["CK1_REFRESH_TOKEN"] = "id", "secret-value ", "refresh-value"
	_, err := ck1.Factory(context.Background(), runtime.Deps{Env: config.FromMap(vars), Store: store.NewMemory(store.MemoryOptions{})})
	require.ErrorContains(t, err, "CK1_CLIENT_SECRET: the value begins or ends with whitespace")
	delete(vars, "CK1_CLIENT_SECRET")
	_, err = ck1.Factory(context.Background(), runtime.Deps{Env: config.FromMap(vars), Store: store.NewMemory(store.MemoryOptions{})})
	require.ErrorContains(t, err, "set CK1_ACCESS_TOKEN (a fixed token), or CK1_CLIENT_ID, CK1_CLIENT_SECRET and CK1_REFRESH_TOKEN")
}

// tokenReads fails reads of the token state while down (the lock still
// works): a store that answers the lease but not the state.
type tokenReads struct {
	store.Store
	down atomic.Bool
}

func (s *tokenReads) Get(ctx context.Context, key string) ([]byte, error) {
	if s.down.Load() && key == "ck1:oauth:"+ck1sbx.DemoClientID {
		return nil, fmt.Errorf("%w: test outage", store.ErrUnavailable)
	}
	return s.Store.Get(ctx, key)
}

// A shared store that lost the token state (a Redis restarted without AOF,
// a failover) while an instance still holds the rotated pair: the instance
// refreshes with its own copy, not the seed the first refresh spent, and
// CK1 keeps answering.
func TestAStoreThatLostTheStateIsRefilledFromAnInstancesCopy(t *testing.T) {
	kv := store.NewMemory(store.MemoryOptions{})
	sbx, build := ck1Rig(t, kv)
	first := build()
	require.Equal(t, 0.0, quote(t, first)["errCode"])
	require.NoError(t, kv.Delete(context.Background(), "ck1:oauth:"+ck1sbx.DemoClientID))
	sbx.ExpireAccessTokens()
	m := quote(t, first)
	require.Equal(t, 0.0, m["errCode"], "refreshed with this instance's pair, not the spent seed: %v", m)
	require.Equal(t, 2, sbx.Calls("refresh"))
	require.Equal(t, 0.0, quote(t, build())["errCode"], "the pair is in the store again for a new instance")
	require.Equal(t, 2, sbx.Calls("refresh"))
}

// A state the store does not answer is not "no state": nothing is spent
// (the seed would be, and CK1 would refuse it as used), the call is -1501.
func TestAnUnreadableStateSpendsNothing(t *testing.T) {
	kv := &tokenReads{Store: store.NewMemory(store.MemoryOptions{})}
	sbx, build := ck1Rig(t, kv)
	require.Equal(t, 0.0, quote(t, build())["errCode"])
	sbx.ExpireAccessTokens()
	kv.down.Store(true)
	m := quote(t, build())
	require.Equal(t, -1501.0, m["errCode"], m)
	require.Equal(t, 1, sbx.Calls("refresh"), "the seed only; nothing spent during the outage")
	kv.down.Store(false)
	require.Equal(t, 0.0, quote(t, build())["errCode"])
	require.Equal(t, 2, sbx.Calls("refresh"))
}

// Waiting out its deadline while another instance holds the refresh lease
// is a timeout the caller may retry (-1301), not an internal error.
func TestWaitingForAnotherInstancesRefreshTimesOut(t *testing.T) {
	kv := store.NewMemory(store.MemoryOptions{})
	sbx, build := ck1Rig(t, kv)
	require.Equal(t, 0.0, quote(t, build())["errCode"])
	sbx.ExpireAccessTokens()
	_, held, err := store.TryLock(context.Background(), kv, "ck1:oauth:"+ck1sbx.DemoClientID+":lock", time.Minute)
	require.NoError(t, err)
	require.True(t, held, "another instance is refreshing")
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	var m map[string]any
	body := []byte(`{"warehouseId":"US","boxes":[` + box("1", "1", "1", "1", 1) + `]}`)
	require.NoError(t, json.Unmarshal(build().Invoke(ctx, &envelope.Input{Body: body}).Body, &m))
	require.Equal(t, -1301.0, m["errCode"], m)
	require.Contains(t, m["errMsg"], "while another caller refreshed the ck1 token")
	require.Equal(t, 1, sbx.Calls("refresh"))
}

// CK1's refresh tokens are single-use. On the deployed default store
// (memory) every instance spent CK1_REFRESH_TOKEN and kept the new pair only
// in its memory: the second instance, or the first one restarted, answered
// "authorize the app again" with nothing an operator could do (outside
// tester: 4 instances, 1 ok and 3 refused; after a restart, 4 refused).
// OAuth is refused on memory before anything is spent; a shared store, a
// fixed token or the named CK1_ALLOW_MEMORY_STORE pass.
func TestOAuthOnTheMemoryStoreIsRefusedBeforeSpendingTheToken(t *testing.T) {
	sbx := ck1sbx.New(ck1sbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		name    string
		env     map[string]string
		refused bool
	}{
		{"default store", map[string]string{}, true},
		{"memory", map[string]string{"CLOUDCALL_STORE": "memory"}, true},
		{"redis", map[string]string{"CLOUDCALL_STORE": "redis://127.0.0.1:1/0"}, false},
		{"allowed", map[string]string{"CLOUDCALL_STORE": "memory", "CK1_ALLOW_MEMORY_STORE": "true"}, false},
		{"fixed token", map[string]string{"CK1_ACCESS_TOKEN": ck1sbx.DemoFixedToken}, false},
		// cloudcall invoke / local --upstream real on the embedded store:
		// the rotated pair died with it, and the next run presented the
		// spent seed (outside tester: 1 ok, then -1601 for good).
		{"the emulator's embedded store", map[string]string{"CLOUDCALL_STORE": "redis://127.0.0.1:1/0", "CLOUDCALL_STORE_EPHEMERAL": "true"}, true},
		{"the embedded store, against the sandbox", map[string]string{"CLOUDCALL_STORE": "redis://127.0.0.1:1/0", "CLOUDCALL_STORE_EPHEMERAL": "true", "CK1_ALLOW_MEMORY_STORE": "true"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := sbx.Env(srv.URL)
			delete(vars, "CK1_ALLOW_MEMORY_STORE")
			for k, v := range tc.env {
				vars[k] = v
			}
			_, err := ck1.Factory(context.Background(), runtime.Deps{Env: config.FromMap(vars), Store: store.NewMemory(store.MemoryOptions{}), HTTP: srv.Client()})
			if !tc.refused {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), "store")
			require.Contains(t, err.Error(), "single-use")
			require.Zero(t, sbx.Calls("refresh"), "nothing spent")
		})
	}
}

// authorize exchanges the sandbox's authorization code for a new refresh
// token, as an operator does when the app is authorized again.
func authorize(t *testing.T, base string) string {
	t.Helper()
	q := url.Values{"client_id": {ck1sbx.DemoClientID}, "client_secret": {ck1sbx.DemoClientSecret}, "grant_type": {"authorization_code"}, "code": {ck1sbx.DemoCode}}
	resp, err := http.Post(base+"/oauth2/token?"+q.Encode(), "application/x-www-form-urlencoded", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	var r struct{ RefreshToken string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	require.NotEmpty(t, r.RefreshToken)
	return r.RefreshToken
}

// A refresh token CK1 refused was presented again by every call of every
// instance (outside tester: 128 token requests for 128 calls after a lost
// answer), which a server that watches for reuse may punish by revoking the
// grant. And "authorize the app again and set CK1_REFRESH_TOKEN" could not
// work: the stored, dead pair always won over the environment's new seed.
// Now the refusal is recorded for every instance, a new seed replaces the
// stored pair, and an instance still on the old seed keeps to the new pair.
func TestARefusedRefreshTokenIsPresentedOnceAndANewSeedTakesOver(t *testing.T) {
	r := newRig(t, nil)
	body := `{"warehouseId":"US","boxes":[` + box("1", "1", "1", "1", 1) + `]}`
	_, m := r.call(t, body)
	require.Equal(t, 0.0, m["errCode"])
	r.sbx.RevokeRefreshTokens()
	r.sbx.ExpireAccessTokens()
	instance := func(env map[string]string) envelope.Op {
		vars := r.sbx.Env(r.url)
		for k, v := range env {
			vars[k] = v
		}
		op, err := ck1.Factory(context.Background(), runtime.Deps{Env: config.FromMap(vars), Store: r.kv, HTTP: http.DefaultClient})
		require.NoError(t, err)
		return op
	}
	call := func(op envelope.Op) map[string]any {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var m map[string]any
		require.NoError(t, json.Unmarshal(op.Invoke(ctx, &envelope.Input{Body: []byte(body)}).Body, &m))
		return m
	}
	other := instance(nil)
	refreshes := r.sbx.Calls("refresh")
	for i := range 6 {
		op := r.op
		if i%2 == 1 {
			op = other
		}
		m := call(op)
		require.Equal(t, -1601.0, m["errCode"], "%v", m)
		require.Contains(t, m["errMsg"], "authorize the app again")
	}
	require.Equal(t, refreshes+1, r.sbx.Calls("refresh"), "presented once, for every instance")

	fresh := authorize(t, r.url)
	reauthorized := instance(map[string]string{"CK1_REFRESH_TOKEN": fresh})
	m = call(reauthorized)
	require.Equal(t, 0.0, m["errCode"], "the new seed replaces the refused pair: %v", m)
	require.Equal(t, refreshes+2, r.sbx.Calls("refresh"))

	// An instance still running with the old environment (a rollout) uses
	// the new pair, and does not present its old seed.
	m = call(other)
	require.Equal(t, 0.0, m["errCode"], "%v", m)
	r.sbx.ExpireAccessTokens()
	m = call(other)
	require.Equal(t, 0.0, m["errCode"], "it refreshes the new pair: %v", m)
	require.Equal(t, refreshes+3, r.sbx.Calls("refresh"))
	m = call(reauthorized)
	require.Equal(t, 0.0, m["errCode"], "%v", m)
}

// The store lost the state while two instances held different copies: the
// one whose copy is stale (another instance refreshed after it) was refused
// and answered "authorize the app again" although the other instance still
// held the valid pair (outside tester: 43 such answers of 128 after a
// flush). Now that refusal is retryable (-1501), the instance with the newest
// copy is not held back by it, and everyone carries on with its pair.
func TestAStaleCopyAfterAStoreLossIsRetryableAndTheNewestWins(t *testing.T) {
	kv := store.NewMemory(store.MemoryOptions{})
	sbx, build := ck1Rig(t, kv)
	stale, newest := build(), build()
	require.Equal(t, 0.0, quote(t, stale)["errCode"]) // spends the seed; both copies: pair 1
	sbx.ExpireAccessTokens()
	require.Equal(t, 0.0, quote(t, newest)["errCode"]) // spends pair 1: only this instance and the store know pair 2
	require.NoError(t, kv.Delete(context.Background(), "ck1:oauth:"+ck1sbx.DemoClientID))
	sbx.ExpireAccessTokens()

	m := quote(t, stale)
	require.Equal(t, -1501.0, m["errCode"], "retryable, not 'authorize again': %v", m)
	require.Contains(t, m["errMsg"], "another instance may hold the newest")
	require.Equal(t, 0.0, quote(t, newest)["errCode"], "the newest copy is still presented")
	require.Equal(t, 0.0, quote(t, stale)["errCode"], "and the stale instance carries on with the stored pair")
	require.Equal(t, 4, sbx.Calls("refresh"))
}

// CK1 failing with 503 after 1 s each time, with 3 s to go: after two tries
// too little is left for a third to finish, so none is started and the
// caller hears -1302 (CK1 kept failing), not a timeout that hides it.
func TestA5xxRetryThatCannotFinishIsNotStarted(t *testing.T) {
	r := newRig(t, nil)
	_, m := r.call(t, `{"warehouseId":"US","boxes":[{"weight":1200,"length":30,"width":20,"height":15,"quantity":2}]}`) // the token, first
	require.Equal(t, 0.0, m["errCode"], m)
	r.sbx.Inject(sandbox.Fault{Path: "/v1/pricing/inbound/box", Kind: sandbox.FaultLatency, Delay: time.Second})
	r.sbx.Inject(sandbox.Fault{Path: "/v1/pricing/inbound/box", Kind: sandbox.FaultStatus, Status: 503, Body: `{"Errors":[{"Code":"ServiceUnavailable","Message":"busy"}]}`})
	before := r.sbx.Calls("http:/v1/pricing/inbound/box")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp := r.op.Invoke(ctx, &envelope.Input{Body: []byte(`{"warehouseId":"US","boxes":[{"weight":1200,"length":30,"width":20,"height":15,"quantity":2}]}`)})
	require.NoError(t, json.Unmarshal(resp.Body, &m), string(resp.Body))
	require.Equal(t, -1302.0, m["errCode"], m)
	require.Equal(t, 2, r.sbx.Calls("http:/v1/pricing/inbound/box")-before)
}

// A proxy's or firewall's page in front of CK1 is quoted, not passed on
// whole: 3 KB of HTML reached callers in upstream.message (up to 8 MiB
// could), where the docs promise 512 bytes.
func TestAnErrorPageIsCut(t *testing.T) {
	r := newRig(t, map[string]string{"CK1_ACCESS_TOKEN": ck1sbx.DemoFixedToken})
	page := "<html><body>" + strings.Repeat("blocked by the gateway ", 200) + "</body></html>"
	r.sbx.Inject(sandbox.Fault{Path: "/v1/pricing/inbound/box", Kind: sandbox.FaultStatus, Status: 400, Body: page, Times: 1})
	_, m := r.call(t, `{"warehouseId":"US","boxes":[`+box("1", "1", "1", "1", 1)+`]}`)
	msg := m["upstream"].(map[string]any)["message"].(string)
	require.Equal(t, page[:512], msg)
}

// A 503 with Retry-After is waited out when the deadline allows; a longer
// one is answered at once with its wait (retryAfter), after one request.
func TestA503sRetryAfterIsHonoured(t *testing.T) {
	r := newRig(t, map[string]string{"CK1_ACCESS_TOKEN": ck1sbx.DemoFixedToken})
	body := `{"warehouseId":"US","boxes":[` + box("1", "1", "1", "1", 1) + `]}`
	r.sbx.Inject(sandbox.Fault{Path: "/v1/pricing/inbound/box", Kind: sandbox.FaultStatus, Status: 503, Body: `{"Errors":[{"Code":"503","Message":"busy"}]}`, RetryAfter: 1, Times: 1})
	start := time.Now()
	_, m := r.call(t, body)
	require.Equal(t, 0.0, m["errCode"], m)
	require.GreaterOrEqual(t, time.Since(start), time.Second)
	require.Equal(t, 2, r.sbx.Calls("http:/v1/pricing/inbound/box"))

	r.sbx.Inject(sandbox.Fault{Path: "/v1/pricing/inbound/box", Kind: sandbox.FaultStatus, Status: 503, Body: `{"Errors":[{"Code":"503","Message":"busy"}]}`, RetryAfter: 30})
	_, m = r.call(t, body)
	require.Equal(t, -1302.0, m["errCode"], m)
	require.Equal(t, 30.0, m["retryAfter"], m)
	require.Equal(t, 3, r.sbx.Calls("http:/v1/pricing/inbound/box"), "30 s do not fit a 5 s deadline: no retry")
}

// The seed gives the optional members no default: what the caller sent is
// what CK1 gets. An absent one is left out; "" and false are sent (a
// reviewer: absent booleans went out as false, and "" codes were dropped).
func TestOptionalMembersAreSentAsGiven(t *testing.T) {
	var sent []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent, _ = io.ReadAll(r.Body)
		_, _ = w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	op, err := ck1.Factory(context.Background(), runtime.Deps{Env: config.FromMap(map[string]string{
		"CK1_API_BASE": srv.URL, "CK1_ACCESS_TOKEN": "fixed-1"}), Store: store.NewMemory(store.MemoryOptions{}), HTTP: srv.Client()})
	require.NoError(t, err)
	for _, tc := range []struct{ in, want string }{
		{`{"warehouseId":"US","boxes":[]}`, `{"WarehouseId":"US","Boxes":[]}`},
		{`{"serviceCode":"","warehouseId":"US","locationId":"","boxes":[]}`, `{"ServiceCode":"","WarehouseId":"US","LocationId":"","Boxes":[]}`},
		{`{"warehouseId":"US","boxes":[],"includeUnsuccessful":false,"isCustomsClearance":false,"isBorrowTaxNo":false}`,
			`{"WarehouseId":"US","Boxes":[],"IncludeUnsuccessful":false,"IsCustomsClearance":false,"IsBorrowTaxNo":false}`},
		{`{"warehouseId":"US","boxes":[],"isCustomsClearance":true}`, `{"WarehouseId":"US","Boxes":[],"IsCustomsClearance":true}`},
	} {
		sent = nil
		out := op.Invoke(context.Background(), &envelope.Input{Body: []byte(tc.in)})
		require.Equal(t, 200, out.Status, "%s: %s", tc.in, out.Body)
		require.Equal(t, tc.want, string(sent), tc.in)
	}
}
