package envelope

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const testSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object", "additionalProperties": false, "required": ["name", "boxes"],
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 5, "x-expect": "a short name"},
    "code": {"type": "string", "pattern": "^[A-Z]*$", "x-expect": "capital letters, e.g. \"AB\""},
    "price": {"type": "integer", "minimum": -9223372036854775808, "maximum": 9223372036854775807, "x-expect": "an integer number of fen"},
    "boxes": {"type": "array", "items": {"type": "object", "additionalProperties": false, "required": ["weight"],
      "properties": {"weight": {"type": "integer", "minimum": 1, "maximum": 2147483647, "x-expect": "grams from 1 to 2147483647"},
                     "side": {"$ref": "#/$defs/side"}}}}
  },
  "$defs": {"side": {"type": "number", "multipleOf": 0.01, "maximum": 999999.99, "x-expect": "cm with at most 2 decimals"}}
}`

type boxIn struct {
	Weight *int64          `json:"weight"`
	Side   json.RawMessage `json:"side"`
}

type schemaIn struct {
	Name  string  `json:"name"`
	Code  string  `json:"code"`
	Price *int64  `json:"price"`
	Boxes []boxIn `json:"boxes"`
}

func TestDecodeInputMessages(t *testing.T) {
	s, err := CompileSchema([]byte(testSchema))
	require.NoError(t, err)
	cases := []struct {
		name, body, field, reason string
	}{
		{"duplicate key names it", `{"name":"a","name":"b","boxes":[]}`, "name", `name: duplicate key "name"; send each field once`},
		{"duplicate nested key with index", `{"name":"a","boxes":[{"weight":1},{"weight":1,"weight":2}]}`, "boxes[1].weight", `boxes[1].weight: duplicate key "weight"; send each field once`},
		{"invalid UTF-8 names the field", "{\"name\":\"a\xff\",\"boxes\":[]}", "name", "name: not valid UTF-8; send text as UTF-8"},
		{"a lone surrogate escape names the field", `{"name":"a\udc00b","boxes":[]}`, "name", "name: contains a lone surrogate escape (\\uD800 to \\uDFFF without its pair), which is no character"},
		{"invalid UTF-8 in a key", "{\"na\xffme\":\"a\",\"boxes\":[]}", "", "not valid UTF-8"},
		{"past a Long", `{"name":"a","price":9223372036854775808,"boxes":[]}`, "price", "price: expected an integer number of fen, got number 9223372036854775808"},
		{"below a Long", `{"name":"a","price":-9223372036854775809,"boxes":[]}`, "price", "got number -9223372036854775809"},
		{"past an Int32 with index", `{"name":"a","boxes":[{"weight":1},{"weight":2147483648}]}`, "boxes[1].weight", "boxes[1].weight: expected grams from 1 to 2147483647, got number 2147483648"},
		{"fraction for an integer", `{"name":"a","boxes":[{"weight":1.5}]}`, "boxes[0].weight", "boxes[0].weight: expected grams from 1 to 2147483647, got number 1.5"},
		{"string for a number says both", `{"name":"a","boxes":[{"weight":1,"side":"5"}]}`, "boxes[0].side", `boxes[0].side: expected cm with at most 2 decimals, got string`},
		{"three decimals", `{"name":"a","boxes":[{"weight":1,"side":1.005}]}`, "boxes[0].side", "boxes[0].side: expected cm with at most 2 decimals, got number 1.005"},
		{"too long counts characters", `{"name":"客客客客客客","boxes":[]}`, "name", "name: at most 5 characters, got 6"},
		{"empty required string", `{"name":"","boxes":[]}`, "name", "name: must not be empty: a short name"},
		{"pattern shows the value", `{"name":"a","code":"ab c","boxes":[]}`, "code", `code: expected capital letters, e.g. "AB", got "ab c"`},
		{"missing, in the schema's order", `{}`, "name", "name: required: a short name"},
		{"missing in an item", `{"name":"a","boxes":[{"weight":1},{}]}`, "boxes[1].weight", "boxes[1].weight: required: grams from 1 to 2147483647"},
		{"unknown suggested", `{"name":"a","boxes":[],"Price":1}`, "Price", `Price: unknown field; did you mean "price"?`},
		{"unknown listed", `{"name":"a","boxes":[{"weight":1,"zzz":1}]}`, "boxes[0].zzz", `boxes[0].zzz: unknown field; expected one of "side", "weight"`},
		{"wrong type for a string", `{"name":7,"boxes":[]}`, "name", "name: expected a string, got number 7"},
		{"null array item", `{"name":"a","boxes":[null]}`, "boxes[0]", "boxes[0]: expected an object, got null"},
		{"an exponent no type holds", `{"name":"a","boxes":[{"weight":1},{"weight":1e1000001}]}`, "boxes[1].weight", "boxes[1].weight: expected grams from 1 to 2147483647, got number 1e1000001, which no vendor type holds"},
		{"a huge exponent, negative", `{"name":"a","price":-1e401,"boxes":[]}`, "price", "got number -1e401, which no vendor type holds"},
		{"a tiny exponent too", `{"name":"a","boxes":[{"weight":1,"side":1e-500}]}`, "boxes[0].side", "got number 1e-500, which no vendor type holds"},
		// For a string the size is beside the point (a reviewer).
		{"an exponent for a string", `{"name":1e999999,"boxes":[]}`, "name", "name: expected a short name, got number 1e999999"},
		{"trailing data", `{"name":"a","boxes":[]} {}`, "", "the request body is not valid JSON (data after the JSON object at byte 24)"},
		{"trailing text", `{"name":"a","boxes":[]} trailing`, "", "the request body is not valid JSON (data after the JSON object at byte 24)"},
		{"trailing bytes", "{\"name\":\"a\",\"boxes\":[]}\n\xff", "", "the request body is not valid JSON (data after the JSON object at byte 24)"},
		{"truncated", `{"name":"a"`, "", "the request body is not valid JSON"},
		{"truncated in a value", `{"name":"a","boxes":[{"weight":1`, "", "the request body is not valid JSON"},
		{"NaN names the field", `{"name":"a","boxes":[{"weight":NaN}]}`, "boxes[0].weight", "boxes[0].weight: not valid JSON (invalid character 'N' at start of value at byte 31)"},
		{"a raw tab in a string", "{\"name\":\"a\tb\",\"boxes\":[]}", "name", "name: not valid JSON"},
		{"an empty key", `{"":1,"name":"a","boxes":[]}`, `""`, `"": unknown field; expected one of`},
		{"an empty key in an item", `{"name":"a","boxes":[{"weight":1,"":0}]}`, `boxes[0].""`, `boxes[0]."": unknown field; expected one of "side", "weight"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var in schemaIn
			err := DecodeInput([]byte(c.body), s, &in)
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, CodeInvalidInput, e.Code)
			require.Equal(t, c.field, e.Field)
			require.Contains(t, e.Reason, c.reason)
			require.Equal(t, e.Reason, strings.TrimSpace(e.Reason))
		})
	}
}

// A refusal repeats a bounded part of the input: a 60,000-character unknown
// key came back twice (message and field), a 60,000-digit number whole.
func TestRefusalsEchoABoundedPart(t *testing.T) {
	s, err := CompileSchema([]byte(testSchema))
	require.NoError(t, err)
	key, digits := strings.Repeat("k", 60000), "1"+strings.Repeat("0", 59999)
	for _, body := range []string{
		`{"name":"a","boxes":[],"` + key + `":1}`,
		`{"name":"a","boxes":[{"weight":` + digits + `}]}`,
		`{"name":"a","boxes":[{"weight":"x","` + key + `":1}]}`,
	} {
		var in schemaIn
		var e *Error
		require.ErrorAs(t, DecodeInput([]byte(body), s, &in), &e)
		require.Less(t, len(e.Reason), 1000, e.Reason[:min(200, len(e.Reason))]) // short now: a huge number is quoted in part
		require.Less(t, len(e.Field), 400)
	}
	var in schemaIn
	var e *Error
	require.ErrorAs(t, DecodeInput([]byte(`{"name":"a","boxes":[],"`+key+`":1}`), s, &in), &e)
	require.Equal(t, strings.Repeat("k", 256)+"… (60000 bytes in all)", e.Field)
}

func TestDecodeInputFillsTheValue(t *testing.T) {
	s, err := CompileSchema([]byte(testSchema))
	require.NoError(t, err)
	var in schemaIn
	// Integers the schema counts as integers (1e3, 7.0) fill int64 fields
	// exactly; a number keeps its digits.
	require.NoError(t, DecodeInput([]byte(`{"name":"客 ~*","price":-9223372036854775808,"boxes":[{"weight":1e3,"side":12.30},{"weight":7.0}]}`), s, &in))
	require.Equal(t, "客 ~*", in.Name)
	require.Equal(t, int64(-9223372036854775808), *in.Price)
	require.Equal(t, int64(1000), *in.Boxes[0].Weight)
	require.Equal(t, "12.30", string(in.Boxes[0].Side))
	require.Equal(t, int64(7), *in.Boxes[1].Weight)

	// Zero is zero, whatever its exponent.
	in = schemaIn{}
	require.NoError(t, DecodeInput([]byte(`{"name":"a","price":0e999,"boxes":[{"weight":1,"side":0.00e-500},{"weight":1,"side":-0e500}]}`), s, &in))
	require.Equal(t, int64(0), *in.Price)
	require.Equal(t, "0.00e-500", string(in.Boxes[0].Side))
	// Past what big.Rat reads (an int64 exponent), too.
	in = schemaIn{}
	require.NoError(t, DecodeInput([]byte(`{"name":"a","price":0e99999999999999999999,"boxes":[{"weight":1,"side":-0.0E-99999999999999999999}]}`), s, &in))
	require.Equal(t, int64(0), *in.Price)
	require.Equal(t, "-0.0E-99999999999999999999", string(in.Boxes[0].Side))
}

// A function that takes no fields says so instead of listing nothing.
func TestNoFieldsMessage(t *testing.T) {
	s, err := CompileSchema([]byte(`{"type":"object","additionalProperties":false,"properties":{}}`))
	require.NoError(t, err)
	var in struct{}
	err = DecodeInput([]byte(`{"deliveryId":"YTO"}`), s, &in)
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, "deliveryId", e.Field)
	require.Equal(t, "invalid input: deliveryId: unknown field; this function takes no input fields: send {}", e.Reason)
	require.NotContains(t, e.Reason, "expected one of")
}

// Without a schema, Decode keeps the same hygiene in its single pass.
func TestDecodeHygieneWithoutSchema(t *testing.T) {
	var in quotaIn
	for body, want := range map[string]string{
		`{"deliveryId":"a","deliveryId":"b"}`: `deliveryId: duplicate key "deliveryId"`,
		"{\"deliveryId\":\"\xc3\"}":           "deliveryId: not valid UTF-8",
	} {
		err := Decode([]byte(body), &in)
		var e *Error
		require.ErrorAs(t, err, &e, body)
		require.Contains(t, e.Reason, want)
	}
	var n struct {
		N int64 `json:"n"`
	}
	err := Decode([]byte(`{"n":9223372036854775808}`), &n)
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, "n", e.Field)
	require.Contains(t, e.Reason, "expected an integer, got number 9223372036854775808")
	require.NoError(t, Decode([]byte(`{"n":1e3}`), &n))
	require.Equal(t, int64(1000), n.N)
}

// Under the ignore policy a member the schema does not name is skipped, at
// any depth, and every rule on the members it names still holds; refuse (the
// default) says it.
func TestUnknownFieldPolicy(t *testing.T) {
	s, err := CompileSchema([]byte(testSchema))
	require.NoError(t, err)
	body := []byte(`{"name":"a","extra":{"x":[1]},"boxes":[{"weight":2,"note":"n"}]}`)
	var in schemaIn
	var e *Error
	require.ErrorAs(t, DecodeInput(body, s.With(Policies{UnknownFields: UnknownRefuse}), &in), &e)
	require.Equal(t, "extra", e.Field)
	require.Same(t, s, s.With(Policies{UnknownFields: UnknownRefuse}))

	open := s.With(Policies{UnknownFields: UnknownIgnore})
	require.Same(t, open, s.With(Policies{UnknownFields: UnknownIgnore}), "built once")
	in = schemaIn{}
	require.NoError(t, DecodeInput(body, open, &in))
	require.Equal(t, "a", in.Name)
	require.Len(t, in.Boxes, 1)
	require.ErrorAs(t, DecodeInput([]byte(`{"name":"a","extra":1,"boxes":[{"weight":0}]}`), open, &in), &e)
	require.Equal(t, "boxes[0].weight", e.Field, "the named fields' rules hold")
	require.ErrorAs(t, DecodeInput([]byte(`{"extra":1,"boxes":[]}`), open, &in), &e)
	require.Equal(t, "name", e.Field, "and required ones are still required")
	// The strict schema is untouched.
	require.ErrorAs(t, DecodeInput(body, s, &in), &e)

	// A member that differs from a named one only in case is refused even
	// here, at any depth: the vendors' binders read it as that field (a
	// re-tester's {"price":100,"Price":999999} charged 100).
	for body, field := range map[string]string{
		`{"name":"a","Name":"b","boxes":[]}`:                  "Name",
		`{"NAME":"b","name":"a","boxes":[]}`:                  "NAME",
		`{"name":"a","boxes":[{"weight":2,"WEIGHT":9}]}`:      "boxes[0].WEIGHT",
		`{"name":"a","boxes":[{"weight":2,"wei\u0047ht":9}]}`: "boxes[0].weiGht",
		`{"name":"a","boxes":[],"boxe\u017f":[]}`:             "boxe\u017f",
	} {
		in = schemaIn{}
		require.ErrorAs(t, DecodeInput([]byte(body), open, &in), &e, body)
		require.Equal(t, CodeInvalidInput, e.Code, body)
		require.Equal(t, field, e.Field, body)
		require.Contains(t, e.Reason, "names are exact", body)
		require.Contains(t, e.Reason, "refused even under CLOUDCALL_UNKNOWN_FIELDS=ignore", body)
	}
	// A name that only looks like the field says how it is written.
	require.ErrorAs(t, DecodeInput([]byte(`{"name":"a","boxes":[],"boxe\u017f":[]}`), open, &in), &e)
	require.Contains(t, e.Reason, `names are exact (written "boxe\u017f"): the field is "boxes"`)
	require.ErrorAs(t, DecodeInput([]byte(`{"name":"a","boxes":[],"boxe\u017f":[]}`), s, &in), &e)
	require.Contains(t, e.Reason, `unknown field (written "boxe\u017f"); did you mean "boxes"?`)
	// So does one with what cannot be seen in it: a space, a zero-width
	// character, a BOM, a combining mark (a reviewer read "deliveryId\u200b:
	// unknown field; expected one of ..., \"deliveryId\"").
	for body, want := range map[string]string{
		`{"name":"a","boxes":[],"boxes\u200b":[]}`: `unknown field (written "boxes\u200b"); did you mean "boxes"?`,
		`{"name":"a","boxes":[],"boxes ":[]}`:      `unknown field (written "boxes "); did you mean "boxes"?`,
		`{"name":"a","boxes":[],"\ufeffname":"b"}`: `unknown field (written "\ufeffname"); did you mean "name"?`,
		`{"name":"a","boxes":[],"box\u0301es":[]}`: `unknown field (written "box\u0301es"); did you mean "boxes"?`,
		`{"name":"a","boxes":[],"x\u00a0":1}`:      `unknown field (written "x\u00a0"); expected one of "boxes", "code", "name", "price"`,
		`{"name":"a","boxes":[],"\u0007":1}`:       `unknown field (written "\a"); expected one of "boxes", "code", "name", "price"`,
	} {
		require.ErrorAs(t, DecodeInput([]byte(body), s, &in), &e, body)
		require.Contains(t, e.Reason, ": "+want, body)
	}
}

// Under the absent null policy a null member the schema names reads as that
// member left out, at any depth: an optional one is not sent, a required one
// is "required". An array element that is null is still a value of the
// wrong type, and an unknown member is unknown whatever it holds. refuse
// (the default) says "got null".
func TestNullFieldPolicy(t *testing.T) {
	s, err := CompileSchema([]byte(testSchema))
	require.NoError(t, err)
	body := []byte(`{"name":"a","code":null,"price":null,"boxes":[{"weight":2,"side":null}]}`)
	var in schemaIn
	var e *Error
	require.ErrorAs(t, DecodeInput(body, s, &in), &e)
	require.Contains(t, e.Reason, "got null")

	absent := s.With(Policies{NullFields: NullAbsent})
	require.Same(t, absent, s.With(Policies{NullFields: NullAbsent}), "built once")
	require.Same(t, s, absent.With(Policies{}), "the defaults are the schema itself")
	in = schemaIn{}
	require.NoError(t, DecodeInput(body, absent, &in))
	require.Equal(t, "a", in.Name)
	require.Nil(t, in.Price, "not sent")
	require.Equal(t, "", in.Code)
	require.Equal(t, int64(2), *in.Boxes[0].Weight)

	for body, field := range map[string]string{
		`{"name":null,"boxes":[]}`:                      "name",            // required: null is not sent
		`{"name":"a","boxes":null}`:                     "boxes",           // so is a required array
		`{"name":"a","boxes":[{"weight":null}]}`:        "boxes[0].weight", // at any depth
		`{"name":"a","boxes":[null]}`:                   "boxes[0]",        // an element is a value
		`{"name":"a","boxes":[],"nmae":null}`:           "nmae",            // unknown whatever it holds
		`{"name":"a","boxes":[],"price":"1"}`:           "price",           // the rules still hold
		`{"name":null,"boxes":[{"weight":null}],"x":1}`: "x",               // unknown first, as ever
	} {
		require.ErrorAs(t, DecodeInput([]byte(body), absent, &in), &e, body)
		require.Equal(t, field, e.Field, body)
	}
	require.ErrorAs(t, DecodeInput([]byte(`{"name":null,"boxes":[]}`), absent, &in), &e)
	require.Contains(t, e.Reason, "name: required")

	// Both policies together.
	both := s.With(Policies{UnknownFields: UnknownIgnore, NullFields: NullAbsent})
	require.NotSame(t, both, absent)
	require.NoError(t, DecodeInput([]byte(`{"name":"a","extra":null,"code":null,"boxes":[]}`), both, &in))
}
