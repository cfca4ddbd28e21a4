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
