package envelope

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHugeExponentCountsTheValue(t *testing.T) {
	for raw, huge := range map[string]bool{
		"1e400": false, "1e401": true, "-1e401": true, "1e-400": false, "1e-401": true, "1E+400": false,
		"0e500": false, "0.000e-9999999999": false, "-0.0E99999": false,
		"10e400": true, "0.1e401": false, "0.01e-399": true, "0.1e-399": false, "9.99e400": false,
		"3" + strings.Repeat("0", 400) + "e-401": false, // 0.3
		"3" + strings.Repeat("0", 400) + "e-399": false, // 30
		"3" + strings.Repeat("0", 400) + "e1":    true,  // 3e401
		"1e0000000000000000400":                  false, "1e1000000000": true, "1e-1000000000": true,
		"12": false, "1.5": false,
		// Plain digits count the same: 1 and 401 zeros is 1e401.
		"1" + strings.Repeat("0", 400): false, "1" + strings.Repeat("0", 401): true, "-1" + strings.Repeat("0", 401): true,
		"0." + strings.Repeat("0", 399) + "1": false, "0." + strings.Repeat("0", 400) + "1": true,
		"0." + strings.Repeat("0", 9999): false, strings.Repeat("0", 500) + "1": false,
	} {
		require.Equal(t, huge, hugeExponent([]byte(raw)), raw)
	}
}

// A zero is zero however far its exponent goes: big.Rat alone refuses an
// exponent past int64, and such a zero was refused as "not a number".
func TestRatReadsAnyZero(t *testing.T) {
	for raw, want := range map[string]string{
		"0e-99999999999999999999": "0", "-0.00E+123456789012345678901": "0", "0e5": "0",
		"1.5": "3/2", "25e-1": "5/2",
	} {
		r, ok := Rat(raw)
		require.True(t, ok, raw)
		require.Equal(t, want, r.RatString(), raw)
	}
	for _, bad := range []string{"1e99999999999999999999", "0e", "0e+", ".0e99999999999999999999", "0.e99999999999999999999", "00x", "0e1.5", "abc"} {
		_, ok := Rat(bad)
		require.False(t, ok, bad)
	}
}

// JSON's whitespace is space, tab, LF and CR (RFC 8259 §2). A body wrapped
// in \v, \f, NBSP, U+0085 or U+3000 was trimmed as if they were, and the
// charge went out; the same byte between members was refused.
func TestOnlyJSONWhitespaceIsTrimmed(t *testing.T) {
	obj := `{"a":1}`
	got, err := precheck([]byte(" \t\r\n" + obj + "\n\r\t "))
	require.NoError(t, err)
	require.Equal(t, obj, string(got))
	for _, wrap := range [][2]string{{"\v", ""}, {"\f", ""}, {"\u00a0", ""}, {"\u3000", "\u2028"}, {"\u0085", ""}} {
		_, err := precheck([]byte(wrap[0] + obj + wrap[1]))
		require.ErrorContains(t, err, "which is not JSON whitespace (only space, tab, LF and CR are)", "%q", wrap[0])
	}
	// After the object, it is data after the object.
	s := MustCompileSchema([]byte(`{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":false}`), nil)
	var v struct {
		A int64 `json:"a"`
	}
	for _, tail := range []string{"\v", "\u0085", "\u00a0", "\u2028"} {
		err := DecodeInput([]byte(obj+tail), s, &v)
		require.ErrorContains(t, err, "the request body is not valid JSON (data after the JSON object at byte 7)", "%q", tail)
	}
}

// A byte-order mark or UTF-16 is named, not shown as an odd character.
func TestABOMIsNamed(t *testing.T) {
	_, err := precheck([]byte("\xef\xbb\xbf{}"))
	require.ErrorContains(t, err, "a byte-order mark (U+FEFF) before the JSON; send UTF-8 without a BOM")
	for body, want := range map[string]string{
		"\xff\xfe{\x00}\x00":            "UTF-16 text (little-endian)",
		"{\x00}\x00":                    "UTF-16 text (little-endian)",
		" \x00{\x00}\x00":               "UTF-16 text (little-endian)", // a space first, trimmed, misread it
		"\xfe\xff\x00{\x00}":            "UTF-16 text (big-endian)",
		"\x00{\x00}":                    "UTF-16 text (big-endian)",
		"\xff\xfe\x00\x00{\x00\x00\x00": "UTF-32 text (little-endian)",
		"{\x00\x00\x00}\x00\x00\x00":    "UTF-32 text (little-endian)",
		"\x00\x00\x00{\x00\x00\x00}":    "UTF-32 text (big-endian)",
	} {
		_, err := precheck([]byte(body))
		require.ErrorContains(t, err, "the request body is "+want+"; send the JSON as UTF-8", "%q", body)
	}
	_, err = precheck([]byte("\xef\xbb{}"))
	require.ErrorContains(t, err, "got bytes that are not UTF-8 text (EF BB 7B); send the JSON as UTF-8")
}

// A gzip body was "text starting with '\x1f'".
func TestACompressedBodyIsNamed(t *testing.T) {
	_, err := precheck([]byte{0x1f, 0x8b, 0x08, 0x00})
	require.ErrorContains(t, err, "gzip-compressed bytes (compressed bodies are not accepted: send the JSON uncompressed")
}

func TestMemberString(t *testing.T) {
	for body, want := range map[string]string{
		`{"a":1,"idempotencyKey":"k-1","type":9}`:             "k-1",
		`{"idempotencyKey":"k-1","b":{"idempotencyKey":"x"}}`: "k-1",
		`{"b":{"idempotencyKey":"x"}}`:                        "",
		`{"idempotencyKey":5}`:                                "",
		`{"IdempotencyKey":"k"}`:                              "",
		`{"idempotencyKey":"a","idempotencyKey":"b"}`:         "",
		`{"idempotencyKey":"k-1",`:                            "",
		`["idempotencyKey","k"]`:                              "",
		``:                                                    "",
		`{"type":"x","idempotencyKey":"k\u002d2"}`:            "k-2",
	} {
		require.Equal(t, want, MemberString([]byte(body), "idempotencyKey"), body)
	}
}

// A leading zero named no field ("the request body is not valid JSON
// (invalid character '1' after object value …)") or its object; 0x10 named
// the box, not its side. Each names the field, says what is wrong and, for
// a leading zero, how JSON writes the number.
func TestAMalformedNumberNamesItsField(t *testing.T) {
	s := MustCompileSchema([]byte(`{"type":"object","additionalProperties":false,"properties":{
		"bizId":{"type":"string"},
		"boxes":{"type":"array","items":{"type":"object","additionalProperties":false,"properties":{"quantity":{"type":"integer"},"length":{"type":"number"}}}}}}`), nil)
	var v map[string]any
	for body, want := range map[string]string{
		`{"bizId":01}`:     "bizId: not valid JSON: 01 is a number with a leading zero, which JSON does not allow (write 1)",
		`{"bizId":-007.5}`: "bizId: not valid JSON: -007.5 is a number with a leading zero, which JSON does not allow (write -7.5)",
		`{"bizId":00}`:     "bizId: not valid JSON: 00 is a number with a leading zero, which JSON does not allow (write 0)",
		`{"boxes":[{"quantity":1},{"quantity":01}]}`: "boxes[1].quantity: not valid JSON: 01 is a number with a leading zero, which JSON does not allow (write 1)",
		`{"boxes":[00.5e1]}`:                         "boxes[0]: not valid JSON: 00.5e1 is a number with a leading zero, which JSON does not allow (write 0.5e1)",
		`{"boxes":[{"length":0x10}]}`:                "boxes[0].length: not valid JSON: 0x10 is not a JSON number (JSON writes numbers in decimal digits, as 16 or 1.5e3)",
		`{"boxes":[{"quantity":1_000}]}`:             "boxes[0].quantity: not valid JSON: 1_000 is not a JSON number",
	} {
		err := DecodeInput([]byte(body), s, &v)
		require.ErrorContains(t, err, want, body)
	}
	// Other things after a value are not this.
	for _, body := range []string{`{"bizId":10 1}`, `{"bizId":"a"x}`, `{"bizId":true1}`} {
		err := DecodeInput([]byte(body), s, &v)
		require.ErrorContains(t, err, "not valid JSON", body)
		require.NotContains(t, err.Error(), "leading zero", body)
		require.NotContains(t, err.Error(), "is not a JSON number", body)
	}
}

// A member the schema does not name is an unknown field whatever it holds:
// holding 1e401, it was "expected a number of a vendor's type", as if the
// misspelled field existed, and the spelling hint was lost.
func TestAnUnknownMemberWithAHugeNumberIsUnknown(t *testing.T) {
	s := MustCompileSchema([]byte(`{"type":"object","additionalProperties":false,"properties":{
		"deliveryId":{"type":"string"},
		"boxes":{"type":"array","items":{"type":"object","additionalProperties":false,"properties":{"quantity":{"type":"integer"}}}}}}`), nil)
	var v map[string]any
	err := DecodeInput([]byte(`{"boxes":[{"quantity":1,"Quantity":1e401}]}`), s, &v)
	require.ErrorContains(t, err, `boxes[0].Quantity: unknown field; did you mean "boxes[0].quantity"?`)
	err = DecodeInput([]byte(`{"delivery_id":1e401}`), s, &v)
	require.ErrorContains(t, err, `delivery_id: unknown field; did you mean "deliveryId"?`)
	// A member of the wrong type is that, whatever it holds: a huge number
	// inside it said the field takes a number.
	err = DecodeInput([]byte(`{"deliveryId":{"a":1e999},"boxes":[{"quantity":[1e999]}]}`), s, &v)
	require.ErrorContains(t, err, "boxes[0].quantity: expected")
	require.ErrorContains(t, err, "got array")
	// A known field still says what it takes.
	err = DecodeInput([]byte(`{"boxes":[{"quantity":1e401}]}`), s, &v)
	require.ErrorContains(t, err, "boxes[0].quantity: expected")
	require.ErrorContains(t, err, "which no vendor type holds")
}
