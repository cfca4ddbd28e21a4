package ck1

import (
	"encoding/json"
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
