package envelope_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/registry"
)

// What came is quoted as docs/envelope.md promises, in every function's
// refusal: a number as written, at most its first 40 bytes, marked with its
// own length; a string field's value, at most 40 characters, marked with
// its length in characters. A price of 10,000 nines was quoted 364 bytes
// long, cut with the message and marked "(10176 bytes in all)", the
// message's length; 501 bytes of -999… said 677 (an outside re-tester).
func TestGotQuotesAValueInPartWithItsOwnLength(t *testing.T) {
	nines, minus := strings.Repeat("9", 10000), "-"+strings.Repeat("9", 500)
	sixty, frac := strings.Repeat("9", 60), "1."+strings.Repeat("5", 100)
	charge := func(price, typ string) string {
		return `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"B","price":` + price + `,"type":` + typ + `}}`
	}
	box := func(length string) string {
		return `{"warehouseId":"W","boxes":[{"weight":1,"length":` + length + `,"width":1,"height":1,"quantity":1}]}`
	}
	const (
		fen    = "omsLaunchExtraChargeParameter.price: expected an integer number of fen (1/100 CNY) within TOP's Long, -9223372036854775808 to 9223372036854775807, e.g. 12345 for 123.45 CNY, got number "
		reason = "omsLaunchExtraChargeParameter.type: expected an integer from 1 to 8 (1 service fee, 2 second visit, 3 paid on behalf, 4 parts, 5 removal, 6 repair, 7 wasted trip, 8 other), got number "
		cm     = "boxes[0].length: expected a number of cm with at most 6 digits before the point and 2 after (decimal(8,2)), got number "
		huge   = ", which no vendor type holds"
	)
	for _, tc := range []struct{ name, fn, body, reason string }{
		{"price, 10,000 nines", "top-launch-extra-charge", charge(nines, "1"), fen + nines[:40] + "… (10000 bytes in all)" + huge},
		{"type, 10,000 nines", "top-launch-extra-charge", charge("1", nines), reason + nines[:40] + "… (10000 bytes in all)" + huge},
		{"price, 501 bytes of -999…", "top-launch-extra-charge", charge(minus, "1"), fen + minus[:40] + "… (501 bytes in all)" + huge},
		{"price, 60 nines", "top-launch-extra-charge", charge(sixty, "1"), fen + sixty[:40] + "… (60 bytes in all)"},
		{"price, 40 bytes whole", "top-launch-extra-charge", charge(sixty[:40], "1"), fen + sixty[:40]},
		{"price, a long fraction", "top-launch-extra-charge", charge(frac, "1"), fen + frac[:40] + "… (102 bytes in all)"},
		{"a string field given 10,000 nines", "top-launch-extra-charge",
			`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":` + nines + `,"price":1,"type":1}}`,
			`omsLaunchExtraChargeParameter.wdsCoordinationOrderId: expected the BFC order number, e.g. "BFC123", got number ` + nines[:40] + "… (10000 bytes in all)"},
		{"idempotencyKey, 10,000 nines", "top-launch-extra-charge",
			`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"B","price":1,"type":1},"idempotencyKey":` + nines + `}`,
			`idempotencyKey: expected up to 128 printable ASCII characters without spaces, e.g. "order-BFC123-visit-2", got number ` + nines[:40] + "… (10000 bytes in all)"},
		{"idempotencyKey, a long string", "top-launch-extra-charge",
			`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"B","price":1,"type":1},"idempotencyKey":"a b` + strings.Repeat("k", 60) + `"}`,
			`idempotencyKey: expected up to 128 printable ASCII characters without spaces, e.g. "order-BFC123-visit-2", got "a b` + strings.Repeat("k", 37) + `…" (63 characters)`},
		{"deliveryId, 10,000 nines", "logistics-get-quota", `{"deliveryId":` + nines + `,"bizId":"x"}`,
			`deliveryId: expected the courier's delivery id, e.g. "YTO" (see getAllDelivery), got number ` + nines[:40] + "… (10000 bytes in all)"},
		{"bizId, 60 nines", "logistics-get-quota", `{"deliveryId":"YTO","bizId":` + sixty + `}`,
			"bizId: expected a string, got number " + sixty[:40] + "… (60 bytes in all)"},
		{"weight, 10,000 nines", "ck1-pricing-inbound-box", `{"warehouseId":"W","boxes":[{"weight":` + nines + `}]}`,
			"boxes[0].weight: expected an integer number of grams from 1 to 2147483647, got number " + nines[:40] + "… (10000 bytes in all)" + huge},
		{"length, 10,000 nines", "ck1-pricing-inbound-box", box(nines), cm + nines[:40] + "… (10000 bytes in all)" + huge},
		{"length, a long fraction", "ck1-pricing-inbound-box", box(frac), cm + frac[:40] + "… (102 bytes in all)"},
		{"warehouseId, 10,000 nines", "ck1-pricing-inbound-box", `{"warehouseId":` + nines + `,"boxes":[]}`,
			`warehouseId: expected the warehouse code, 0 to 10 of A-Z a-z 0-9 - _, e.g. "US", got number ` + nines[:40] + "… (10000 bytes in all)"},
		{"custSpaceId, 10,000 nines", "cams-query-chatapp-bind-waba", `{"custSpaceId":` + nines + `}`,
			`custSpaceId: expected a string, e.g. "293483949493", got number ` + nines[:40] + "… (10000 bytes in all)"},
		{"a leading zero", "top-launch-extra-charge", charge("01"+sixty, "1"),
			"omsLaunchExtraChargeParameter.price: not valid JSON: 01" + sixty[:38] + "… (62 bytes in all) is a number with a leading zero, which JSON does not allow (write 1" + sixty[:39] + "… (61 bytes in all))"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := registry.InputSchema(tc.fn)
			require.NoError(t, err)
			err = envelope.DecodeInput([]byte(tc.body), envelope.MustCompileSchema(raw, nil), inputs[tc.fn]())
			var e *envelope.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, envelope.CodeInvalidInput, e.Code)
			require.Equal(t, "invalid input: "+tc.reason, e.Reason)
		})
	}
}
