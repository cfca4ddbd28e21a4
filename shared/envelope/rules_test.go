package envelope

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/schemacorpus"
)

// The streamed rules and the schema library agree on every generated input
// of every function, both ways: the rules never accept what the schema
// refuses (that would let bad input through), and never refuse what it
// accepts (that would cost the library's allocations on the warm path).
func TestRulesAgreeWithTheSchemaLibrary(t *testing.T) {
	for _, f := range registry.All() {
		b, err := registry.InputSchema(f.Name)
		require.NoError(t, err)
		s, err := CompileSchema(b)
		require.NoError(t, err, f.Name)
		cases, err := schemacorpus.Generate(b)
		require.NoError(t, err)
		for _, c := range cases {
			want := schemacorpus.Verdict(b, c.Body) == nil
			trimmed, err := precheck(c.Body)
			require.NoError(t, err)
			require.Equal(t, want, s.accepts(trimmed), "%s: %s: %s", f.Name, c.Name, c.Body)
			err = s.check(trimmed) // the explanation walk, on the slow path
			require.Equal(t, want, err == nil, "%s: %s: %s: %v", f.Name, c.Name, c.Body, err)
		}
	}
}

func TestRulesRefuseWhatTheyDoNotCompile(t *testing.T) {
	for _, schema := range []string{
		`{"type":"object","oneOf":[{}]}`,
		`{"type":"object","properties":{"a":{"format":"email"}}}`,
		`{"$ref":"https://example.com/x.json"}`,
		`{"additionalProperties":{"type":"string"}}`,
	} {
		_, err := CompileSchema([]byte(schema))
		require.Error(t, err, schema)
	}
}

func TestRulesEdges(t *testing.T) {
	s, err := CompileSchema([]byte(`{"type":"object","properties":{
		"i":{"type":"integer","minimum":-9223372036854775808,"maximum":9223372036854775807},
		"d":{"type":"number","minimum":-999999.99,"maximum":999999.99,"multipleOf":0.01},
		"s":{"type":"string","maxLength":2,"pattern":"^[a-z客]*$"}}}`))
	require.NoError(t, err)
	for body, want := range map[string]bool{
		`{"i":9223372036854775807}`:  true,
		`{"i":9223372036854775808}`:  false,
		`{"i":-9223372036854775808}`: true,
		`{"i":-9223372036854775809}`: false,
		`{"i":1e18}`:                 true,
		`{"i":1.0}`:                  true,
		`{"i":1.5}`:                  false,
		`{"d":999999.99}`:            true,
		`{"d":999999.991}`:           false,
		`{"d":-999999.99}`:           true,
		`{"d":-1000000}`:             false,
		`{"d":999999}`:               true,
		`{"d":1000000}`:              false,
		`{"d":12.30}`:                true,
		`{"d":1e-2}`:                 true,
		`{"d":1e-3}`:                 false,
		`{"s":"客客"}`:                 true,
		`{"s":"客客客"}`:                false,
		`{"s":"\u5ba2a"}`:            true,
		`{"s":"A"}`:                  false,
		`{"s":"a","s":"b"}`:          false,
		`{"i":1} {}`:                 false,
		"{\"s\":\"\xff\"}":           false,
	} {
		require.Equal(t, want, s.accepts([]byte(body)), body)
	}
}

// FuzzDecodeInput: any bytes against the CK1 schema decode or fail with
// CodeInvalidInput, never a panic, and the streamed rules never accept what
// the schema library refuses.
func FuzzDecodeInput(f *testing.F) {
	b, err := registry.InputSchema("ck1-pricing-inbound-box")
	require.NoError(f, err)
	s, err := CompileSchema(b)
	require.NoError(f, err)
	for _, seed := range []string{
		`{"warehouseId":"US","boxes":[{"weight":1200,"length":30,"width":20,"height":15,"quantity":2}]}`,
		`{"warehouseId":"US","boxes":[{"weight":1e3,"length":1e2,"width":0.01,"height":999999.99,"quantity":-2147483648}]}`,
		`{"warehouseId":"","boxes":[]}`, `{"WarehouseId":"US"}`, `{"warehouseId":"US","warehouseId":"UK","boxes":[]}`,
		"{\"warehouseId\":\"U\xffS\",\"boxes\":[]}", `{"warehouseId":"US","boxes":[null]}`, `{"warehouseId":"US","boxes":[{"weight":"1"}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v struct {
			ServiceCode string `json:"serviceCode"`
			WarehouseID string `json:"warehouseId"`
			LocationID  string `json:"locationId"`
			Boxes       []struct {
				Weight   *int64          `json:"weight"`
				Length   json.RawMessage `json:"length"`
				Width    json.RawMessage `json:"width"`
				Height   json.RawMessage `json:"height"`
				Quantity *int64          `json:"quantity"`
			} `json:"boxes"`
			IncludeUnsuccessful bool `json:"includeUnsuccessful"`
			IsCustomsClearance  bool `json:"isCustomsClearance"`
			IsBorrowTaxNo       bool `json:"isBorrowTaxNo"`
		}
		if err := DecodeInput(body, s, &v); err != nil {
			e, ok := err.(*Error)
			if !ok || e.Code != CodeInvalidInput {
				t.Fatalf("DecodeInput(%q) = %v, want CodeInvalidInput", body, err)
			}
		}
		trimmed, err := precheck(body)
		if err != nil {
			return
		}
		checkErr := s.check(trimmed)
		if s.accepts(trimmed) != (checkErr == nil) {
			t.Fatalf("streamed rules and the explanation walk disagree on %q: %v", body, checkErr)
		}
		if checkErr == nil {
			if lib := schemacorpus.Verdict(b, trimmed); lib != nil {
				t.Fatalf("rules accept %q, the schema library refuses it: %v", body, lib)
			}
		}
	})
}

// One compiled schema serves concurrent calls (its tokenizers are pooled).
func TestDecodeInputConcurrently(t *testing.T) {
	b, err := registry.InputSchema("ck1-pricing-inbound-box")
	require.NoError(t, err)
	s, err := CompileSchema(b)
	require.NoError(t, err)
	good := []byte(`{"warehouseId":"US","boxes":[{"weight":1200,"length":30.5,"width":20,"height":15,"quantity":2}]}`)
	bad := []byte(`{"warehouseId":"US","boxes":[{"weight":0,"length":30,"width":20,"height":15,"quantity":2}]}`)
	done := make(chan error, 16)
	for i := 0; i < 16; i++ {
		go func() {
			for j := 0; j < 200; j++ {
				var v struct {
					WarehouseID string            `json:"warehouseId"`
					Boxes       []json.RawMessage `json:"boxes"`
				}
				if err := DecodeInput(good, s, &v); err != nil || v.WarehouseID != "US" {
					done <- fmt.Errorf("good input: %v", err)
					return
				}
				var e *Error
				if err := DecodeInput(bad, s, &v); !errors.As(err, &e) || e.Field != "boxes[0].weight" {
					done <- fmt.Errorf("bad input: %v", err)
					return
				}
			}
			done <- nil
		}()
	}
	for i := 0; i < 16; i++ {
		require.NoError(t, <-done)
	}
}

// Explaining a refused body holds a path and one failure, never the
// document: a 6 MiB list of boxes read into a tree took 25 bytes of memory
// per byte, and a list of three million 1s past 40; the function was killed
// at its 128 MB (502) instead of answering -1001. The heap in use is
// sampled while the walk runs; a tree of these bodies holds 40 to 100 MB
// for the whole walk, so even a sampler that misses the peak sees it.
func TestExplainingAHugeBodyKeepsLittle(t *testing.T) {
	s := MustCompileSchema(registry.InputSchema("ck1-pricing-inbound-box"))
	bad := `{"length":10.5,"width":20,"height":30,"weight":-1,"quantity":1}`
	for name, tc := range map[string]struct {
		body, msg string
	}{
		"bad boxes": {`{"warehouseId":"US","boxes":[` + bad + strings.Repeat(","+bad, 60_000) + `]}`,
			"errCode -1001: invalid input: boxes[0].weight: expected an integer number of grams from 1 to 2147483647, got number -1"},
		"two million 1s": {`{"warehouseId":"US","boxes":[1` + strings.Repeat(",1", 2_000_000) + `]}`,
			"errCode -1001: invalid input: boxes[0]: expected an object, got number 1"},
		"a million {}": {`{"warehouseId":"US","boxes":[{}` + strings.Repeat(",{}", 1_000_000) + `]}`,
			"errCode -1001: invalid input: boxes[0].weight: required"},
		"an unknown member": {`{"zz":[1` + strings.Repeat(",1", 2_000_000) + `],"warehouseId":"US","boxes":[]}`,
			`errCode -1001: invalid input: zz: unknown field; expected one of`},
	} {
		body := []byte(tc.body)
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		stop, peak := make(chan struct{}), make(chan uint64)
		go func() {
			var max uint64
			for {
				select {
				case <-stop:
					peak <- max
					return
				case <-time.After(time.Millisecond):
				}
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				max = maxOf(max, m.HeapInuse)
			}
		}()
		err := s.check(body)
		close(stop)
		grew := int64(<-peak) - int64(base.HeapInuse)
		require.ErrorContains(t, err, tc.msg, name)
		t.Logf("%s: %d bytes; heap in use grew by at most %d KB while explaining", name, len(body), grew>>10)
		require.Less(t, grew, int64(24<<20), name)
	}
}

func maxOf(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}
