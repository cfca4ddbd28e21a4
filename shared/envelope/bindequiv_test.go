package envelope_test

import (
	"bytes"
	stdjson "encoding/json"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/alicloud"
	"github.com/cloudcall/cloudcall/shared/ck1"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/quotaalert"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/schemacorpus"
	"github.com/cloudcall/cloudcall/shared/top"
	"github.com/cloudcall/cloudcall/shared/wechat"
)

// inputs are the Go types the functions decode their input into.
var inputs = map[string]func() any{
	"logistics-get-quota":          func() any { return new(wechat.QuotaInput) },
	"ck1-pricing-inbound-box":      func() any { return new(ck1.BoxInput) },
	"cams-query-chatapp-bind-waba": func() any { return new(alicloud.BindWabaInput) },
	"top-launch-extra-charge":      func() any { return new(top.ExtraChargeInput) },
	"quota-alert":                  func() any { return new(quotaalert.RunInput) },
}

// policies are every variant a deployment can choose.
var policies = []envelope.Policies{
	{},
	{UnknownFields: envelope.UnknownIgnore},
	{NullFields: envelope.NullAbsent},
	{UnknownFields: envelope.UnknownIgnore, NullFields: envelope.NullAbsent},
}

// sameAsTheLongWay: whenever the one-pass decoder takes a body, the long
// way (the rules, then json.Unmarshal) takes it too and fills the same
// value; when it gives up, it leaves the value as it found it (DecodeInput
// then reads it the long way, so every refusal's message is unchanged).
func sameAsTheLongWay(t *testing.T, s *envelope.Schema, fresh func() any, body []byte) bool {
	t.Helper()
	fast, long := fresh(), fresh()
	ok := s.DecodeFast(body, fast)
	if !ok {
		require.Equal(t, fresh(), fast, "the one pass gave up on %q but left a value behind", body)
		return false
	}
	require.NoError(t, s.DecodeLong(body, long), "the one pass took %q, the long way refuses it", body)
	require.True(t, reflect.DeepEqual(fast, long), "%q: the one pass filled %#v, the long way %#v", body, fast, long)
	return true
}

// edges are bodies around the corners where a hand-written decoder and
// json.Unmarshal could part: names in other spellings, duplicates, escapes,
// trailing text, whitespace, depth, huge numbers, members no one names.
func edges(example []byte) [][]byte {
	inner := bytes.TrimSuffix(bytes.TrimPrefix(bytes.TrimSpace(example), []byte("{")), []byte("}"))
	sep := []byte(",")
	if len(bytes.TrimSpace(inner)) == 0 {
		sep = nil
	}
	with := func(member string) []byte {
		return append(append(append([]byte("{"), inner...), append(sep, member...)...), '}')
	}
	out := [][]byte{
		example,
		append([]byte(" \t\r\n"), append(example, " \n"...)...),
		append(append([]byte{}, example...), " x"...),
		append(append([]byte{}, example...), "{}"...),
		append([]byte("\xef\xbb\xbf"), example...),
		with(`"zz":1`),
		with(`"zz":null`),
		with(`"zz":{"a":[1,2,{"b":"c"}]}`),
		with(`"zz":1e999999999`),
		with(`"zz":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`),
		with(`"zz":"\ud800"`),
		with(`"zz":"` + "\xff" + `"`),
		[]byte(`{}`),
		[]byte(`{"a":1,"a":2}`),
	}
	// Every member of the example again (a duplicate), in another case, with
	// an escaped name, and as null.
	var members map[string]any
	if err := jsonUnmarshal(example, &members); err == nil {
		for name := range members {
			out = append(out,
				with(`"`+name+`":null`),
				[]byte(`{"`+name+`":null}`),
				[]byte(`{"`+upperFirst(name)+`":"x"}`),
				[]byte(`{"\u00`+hex2(name[0])+name[1:]+`":"x"}`),
			)
		}
	}
	return out
}

func TestTheOnePassFillsWhatTheLongWayFills(t *testing.T) {
	for _, f := range registry.All() {
		fresh, ok := inputs[f.Name]
		require.True(t, ok, "%s: add its input type to inputs", f.Name)
		b, err := registry.InputSchema(f.Name)
		require.NoError(t, err)
		base, err := envelope.CompileSchema(b)
		require.NoError(t, err, f.Name)
		cases, err := schemacorpus.Generate(b)
		require.NoError(t, err)
		for _, p := range policies {
			s := base.With(p)
			fast, total := 0, 0
			for _, c := range cases {
				for _, body := range edges(c.Body) {
					total++
					if sameAsTheLongWay(t, s, fresh, body) {
						fast++
					}
				}
			}
			// The one pass must actually serve the functions' inputs: the
			// first example (what a caller sends) takes it under every policy.
			require.True(t, s.DecodeFast(cases[0].Body, fresh()), "%s %+v: the first example went the long way", f.Name, p)
			t.Logf("%s %+v: %d of %d bodies in one pass", f.Name, p, fast, total)
		}
	}
}

// FuzzTheOnePassFillsWhatTheLongWayFills: the same, on any bytes, for every
// function under every policy.
func FuzzTheOnePassFillsWhatTheLongWayFills(f *testing.F) {
	type fn struct {
		s     *envelope.Schema
		fresh func() any
	}
	var fns []fn
	for _, r := range registry.All() {
		b, err := registry.InputSchema(r.Name)
		require.NoError(f, err)
		base, err := envelope.CompileSchema(b)
		require.NoError(f, err)
		for _, p := range policies {
			fns = append(fns, fn{base.With(p), inputs[r.Name]})
		}
		cases, err := schemacorpus.Generate(b)
		require.NoError(f, err)
		for _, c := range cases[:min(len(cases), 8)] {
			f.Add(c.Body)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, x := range fns {
			sameAsTheLongWay(t, x.s, x.fresh, body)
		}
	})
}

func jsonUnmarshal(b []byte, v any) error { return stdjson.Unmarshal(b, v) }

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

type label string

// openNoMap is what the one pass fills; openIn adds a map, which it does not.
type openNoMap struct {
	A   string            `json:"a"`
	L   label             `json:"l"`
	N   *int64            `json:"n"`
	Any *struct{ X bool } `json:"any"`
	S   []struct {
		X stdjson.Number `json:"x"`
	} `json:"s"`
	Raw stdjson.RawMessage `json:"raw"`
}

type openIn struct {
	A   string            `json:"a"`
	L   label             `json:"l"`
	N   *int64            `json:"n"`
	Any *struct{ X bool } `json:"any"`
	S   []struct {
		X stdjson.Number `json:"x"`
	} `json:"s"`
	Raw stdjson.RawMessage `json:"raw"`
	M   map[string]int     `json:"m,omitempty"`
}

// Schemas that leave objects open, or say nothing of a member, and types
// the one pass does not fill (a map): it gives up where json.Unmarshal
// would refuse or fill differently, under both unknown-field policies.
func TestTheOnePassOnOpenSchemas(t *testing.T) {
	base, err := envelope.CompileSchema([]byte(`{"type":"object","properties":{"a":{"type":"string"},"n":{"type":"integer"},"any":{},"s":{"type":"array"}}}`))
	require.NoError(t, err)
	bodies := []string{
		`{"a":"x"}`, `{"a":"x","zz":1}`, `{"l":"y"}`, `{"n":1e3}`, `{"n":1.5}`, `{"n":null}`,
		`{"any":{"X":true}}`, `{"any":{"x":true}}`, `{"any":{"X":true,"Y":1}}`, `{"any":null}`, `{"any":"s"}`,
		`{"s":[{"x":1.5},{"x":"2"}]}`, `{"s":[]}`, `{"s":null}`, `{"s":[{"x":1,"y":2}]}`,
		`{"raw":{"k":[1,{"j":null}]}}`, `{"raw":null}`, `{"m":{"a":1}}`,
	}
	for _, p := range policies {
		s := base.With(p)
		took := 0
		for _, b := range bodies {
			sameAsTheLongWay(t, s, func() any { return new(openIn) }, []byte(b))
			if sameAsTheLongWay(t, s, func() any { return new(openNoMap) }, []byte(b)) {
				took++
			}
		}
		require.Positive(t, took, "%+v", p)
	}
	// Under refuse, a member neither the schema nor the type names is
	// json.Unmarshal's refusal: the one pass must give up on it.
	require.False(t, base.DecodeFast([]byte(`{"a":"x","zz":1}`), new(openNoMap)))
	require.True(t, base.With(envelope.Policies{UnknownFields: envelope.UnknownIgnore}).DecodeFast([]byte(`{"a":"x","zz":1}`), new(openNoMap)))
	// A type with a map goes the long way whole.
	require.False(t, base.DecodeFast([]byte(`{"a":"x"}`), new(openIn)))
}
