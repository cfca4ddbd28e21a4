package ck1

import (
	"encoding/json"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSumExactKeepsDigits(t *testing.T) {
	cases := []struct {
		in   []json.Number
		want json.Number
	}{
		{[]json.Number{"12.30"}, "12.30"},
		{[]json.Number{"0.1"}, "0.1"},
		{[]json.Number{"12.30", "0.1"}, "12.40"},
		{[]json.Number{"0.1", "0.2"}, "0.3"}, // float64 would say 0.30000000000000004
		{[]json.Number{"96", "45.00"}, "141.00"},
		{[]json.Number{"1.25e1", "0.5"}, "13.0"},
		{[]json.Number{"99999999999999999.99", "0.01"}, "100000000000000000.00"},
		{[]json.Number{"-5.00", "5"}, "0.00"},
		{[]json.Number{"12.3", "0e-50"}, "12.30"}, // a zero adds at most two decimals
	}
	for _, c := range cases {
		got, err := sumExact(c.in)
		require.NoError(t, err)
		require.Equal(t, c.want, got, "%v", c.in)
	}
	_, err := sumExact([]json.Number{"12,30"})
	require.Error(t, err)
}

func TestTotalCharge(t *testing.T) {
	cny := func(a string) Money { return Money{Currency: "CNY", Amount: json.Number(a)} }
	cases := []struct {
		name    string
		raw     string
		summary []Money
		want    *Money
	}{
		{"vendor object wins", `{"Currency":"USD","Amount":7.10}`, []Money{cny("1")}, &Money{"USD", "7.10"}},
		{"vendor list of one", `[{"Currency":"USD","Amount":7.10}]`, nil, &Money{"USD", "7.10"}},
		{"one currency summed", ``, []Money{cny("12.30"), cny("0.1")}, &Money{"CNY", "12.40"}},
		{"null derives", `null`, []Money{cny("96.00")}, &Money{"CNY", "96.00"}},
		{"mixed currencies: none", ``, []Money{cny("1.00"), {"USD", "2.00"}}, nil},
		{"failed service: none", ``, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, totalCharge(json.RawMessage(c.raw), c.summary))
		})
	}
}

// What CK1 receives for a side and a quantity: the caller's digits, plain,
// never more decimals than decimal(8,2) holds (the schema has checked the
// value is a multiple of 0.01, so only zeros go), and any integer quantity
// exactly (CK1 documents no range for it).
func TestWireDigits(t *testing.T) {
	for in, want := range map[string]string{
		"30": "30", "30.5": "30.5", "30.50": "30.50", "30.5000000": "30.50", "999999.990000": "999999.99",
		"1e2": "100", "2.5E-1": "0.25", "3000000.00e-1": "300000.00", "-0": "-0", "0.070": "0.07",
		"0.00e-500": "0.00", "0e500": "0", "0e-999999999": "0.00", "-0.0e-2147483648": "0.00",
		"0e-99999999999999999999": "0.00", "0.0E+99999999999999999999": "0",
	} {
		var d Decimal
		require.NoError(t, json.Unmarshal([]byte(in), &d), in)
		b, err := json.Marshal(d)
		require.NoError(t, err)
		require.Equal(t, want, string(b), in)
	}
	for in, want := range map[string]string{
		"2": "2", "2.0": "2", "1e3": "1000", "2.50e1": "25", "-2147483649": "-2147483649",
		"4611686018427387904": "4611686018427387904", "1e30": "1000000000000000000000000000000", "-0": "0",
		"0e999": "0", "0e-999999999": "0", "0e-99999999999999999999": "0",
	} {
		var n Integer
		require.NoError(t, json.Unmarshal([]byte(in), &n), in)
		b, err := json.Marshal(n)
		require.NoError(t, err)
		require.Equal(t, want, string(b), in)
	}
	for _, bad := range []string{`"2"`, "1.5", "true", "{}"} {
		var n Integer
		require.Error(t, json.Unmarshal([]byte(bad), &n), bad)
	}
}

// A zero written with a huge negative exponent is written with two decimals,
// not its own billion: 30 bytes of input took gigabytes and the platform's
// timeout.
func TestAZeroIsNotWrittenOutToItsExponent(t *testing.T) {
	zero := new(big.Rat)
	require.Equal(t, 2, places("0e-999999999", zero))
	require.Equal(t, 1, places("0.0", zero))
	require.Equal(t, 5, places("0.00001", big.NewRat(1, 100000)))
}
