package ck1

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
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
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("not a number")
	}
	*d = Decimal(n)
	return nil
}

// MarshalJSON writes the digits as they came.
func (d Decimal) MarshalJSON() ([]byte, error) {
	if d == "" {
		return []byte("null"), nil
	}
	return []byte(d), nil
}
