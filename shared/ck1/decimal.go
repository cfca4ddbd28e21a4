package ck1

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strconv"
	"strings"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

// Decimal is a JSON number kept as its exact digits. Unlike json.Number it
// refuses a quoted number: "30" is a string, and the caller should know.
type Decimal string

// UnmarshalJSON takes a bare JSON number only.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || !(b[0] == '-' || (b[0] >= '0' && b[0] <= '9')) {
		kind := "string"
		switch {
		case len(b) == 0:
			kind = "nothing"
		case b[0] == 't' || b[0] == 'f':
			kind = "bool"
		case b[0] == 'n':
			return nil // null: left empty, reported as missing
		case b[0] == '{':
			kind = "object"
		case b[0] == '[':
			kind = "array"
		}
		// An UnmarshalTypeError gets the field path filled in by encoding/json.
		return &json.UnmarshalTypeError{Value: kind, Type: reflect.TypeOf(Decimal(""))}
	}
	if !json.Valid(b) {
		return errors.New("not a number")
	}
	*d = Decimal(plain(string(b)))
	return nil
}

// plain writes an exponent form with plain digits (1e2 → 100, 2.5E-1 →
// 0.25), as CK1's decimal(8,2) reads it; other numbers keep the caller's
// digits (30.50 stays 30.50) but never more than two decimals: the zeros
// past them go (30.5000 → 30.50, 3000000.00e-1 → 300000.00), since the
// schema has checked that the value is a multiple of 0.01, and a literal
// with more decimals than decimal(8,2) holds is not one to send.
func plain(s string) string {
	if strings.ContainsAny(s, "eE") {
		if r, ok := envelope.Rat(s); ok {
			s = r.FloatString(places(s, r))
		}
	}
	if i := strings.IndexByte(s, '.'); i >= 0 {
		for len(s)-i-1 > 2 && s[len(s)-1] == '0' {
			s = s[:len(s)-1]
		}
	}
	return s
}

// Integer is a JSON integer kept as its exact digits, written plainly (2.0
// → 2, 1e3 → 1000): CK1 documents Quantity as an integer and no range, so
// any integer the schema accepts is sent as it is, and CK1 judges it.
type Integer string

// UnmarshalJSON takes a bare JSON number with no fraction.
func (n *Integer) UnmarshalJSON(b []byte) error {
	var d Decimal
	if err := d.UnmarshalJSON(b); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			te.Type = reflect.TypeOf(Integer(""))
		}
		return err
	}
	if d == "" {
		return nil // null: left empty, reported as missing
	}
	r, ok := envelope.Rat(string(d))
	if !ok || !r.IsInt() {
		return errors.New("not an integer")
	}
	*n = Integer(r.Num().String())
	return nil
}

// MarshalJSON writes the digits.
func (n Integer) MarshalJSON() ([]byte, error) {
	if n == "" {
		return []byte("null"), nil
	}
	return []byte(n), nil
}

// MarshalJSON writes the digits as they came.
func (d Decimal) MarshalJSON() ([]byte, error) {
	if d == "" {
		return []byte("null"), nil
	}
	return []byte(d), nil
}

// sumExact adds decimal strings without rounding and writes the result with
// as many decimals as the most precise addend ("12.30" + "0.1" = "12.40"),
// so a total never shows more or fewer digits than its parts justify.
func sumExact(amounts []json.Number) (json.Number, error) {
	total := new(big.Rat)
	n := 0
	for _, a := range amounts {
		r, ok := new(big.Rat).SetString(string(a))
		if !ok {
			return "", fmt.Errorf("amount %q is not a decimal number", a)
		}
		total.Add(total, r)
		n = max(n, places(string(a), r))
	}
	return json.Number(total.FloatString(n)), nil
}

// places is how many decimals to write v (read from s) with: its own, but
// at most two for a zero. The envelope's magnitude bound passes any zero
// (0e-999999999 is zero), and written with its own 999999999 decimals it
// took gigabytes; a nonzero value's decimals are bounded by its digits.
func places(s string, v *big.Rat) int {
	n := decimalPlaces(s)
	if v.Sign() == 0 {
		n = min(n, 2)
	}
	return n
}

// decimalPlaces counts the digits after the point, exponent included
// ("1.25e1" has 1).
func decimalPlaces(s string) int {
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		exp, _ = strconv.Atoi(s[i+1:])         // past int: ±MaxInt, with an error
		exp = max(min(exp, 1<<30), -(1 << 30)) // so that n-exp cannot overflow
	}
	n := 0
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		n = len(mant) - i - 1
	}
	return max(n-exp, 0)
}
