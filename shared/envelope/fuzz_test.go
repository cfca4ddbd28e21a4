package envelope

import (
	"encoding/json"
	"testing"
)

type fuzzIn struct {
	A string `json:"a"`
	N *int64 `json:"n"`
	B []struct {
		X json.Number `json:"x"`
	} `json:"b"`
	O *struct {
		Y bool `json:"y"`
	} `json:"o"`
	R json.RawMessage `json:"r"`
}

// FuzzDecode: any bytes decode or fail with CodeInvalidInput; never a panic.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"a":"x","n":1,"b":[{"x":1.5}],"o":{"y":true},"r":{"z":[1]}}`, `{"A":1}`, `[`, `{"b":[{"x":"1"}]}`, `{"n":1e400}`, `{"o":null}`, ``, `"s"`, `{"a":"\u0000"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v fuzzIn
		if err := Decode(b, &v); err != nil {
			e, ok := err.(*Error)
			if !ok || e.Code != CodeInvalidInput {
				t.Fatalf("Decode(%q) = %v, want an *Error with CodeInvalidInput", b, err)
			}
		}
	})
}
