package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxDepth bounds JSON nesting in any input: no documented input nests deeper
// than a handful of levels, and a deep document is only a way to burn CPU.
const MaxDepth = 32

// Validator is implemented by inputs that check their documented rules after
// decoding. It returns an *Error built with Invalid.
type Validator interface {
	Validate() error
}

// Decode parses body strictly into v (a pointer to a struct): the body must be
// one JSON object, every key must be a field of v (an unknown key is named,
// with the right spelling suggested), every value must have the field's type,
// and v.Validate runs when v is a Validator. Every failure is an *Error with
// CodeInvalidInput.
func Decode(body []byte, v any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return Invalid("", "the request body is empty; send a JSON object")
	}
	if trimmed[0] != '{' {
		return Invalid("", "the request body must be a JSON object, got %s", jsonKind(trimmed))
	}
	if d := depth(trimmed); d > MaxDepth {
		return Invalid("", "the request body nests %d levels deep; at most %d are allowed", d, MaxDepth)
	}
	var raw any
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || len(bytes.TrimSpace(trimmed[dec.InputOffset():])) > 0 {
		return Invalid("", "the request body is not valid JSON")
	}
	if err := checkKeys(raw, reflect.TypeOf(v), ""); err != nil {
		return err
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				field = "(body)"
			} else if exact := locate(raw, strings.Split(te.Field, "."), te.Value, ""); exact != "" {
				field = exact // encoding/json leaves array indices out of the path
			}
			want := describeType(te.Type)
			if h := hintFor(reflect.TypeOf(v), field); h != "" {
				want = h
			}
			return Invalid(field, "expected %s, got %s", want, te.Value)
		}
		return Invalid("", "%v", err)
	}
	if val, ok := v.(Validator); ok {
		return val.Validate()
	}
	return nil
}

// checkKeys walks the decoded document alongside the Go type and reports the
// first key the type does not have.
func checkKeys(doc any, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch d := doc.(type) {
	case map[string]any:
		if t.Kind() != reflect.Struct {
			return nil // maps and raw JSON take any keys
		}
		fields := jsonFields(t)
		for _, k := range sortedKeys(d) {
			ft, ok := fields[k]
			full := join(path, k)
			if !ok {
				if s := suggest(k, fields); s != "" {
					return Invalid(full, "unknown field; did you mean %q?", join(path, s))
				}
				return Invalid(full, "unknown field; expected one of %s", strings.Join(sortedFieldNames(fields), ", "))
			}
			if err := checkKeys(d[k], ft, full); err != nil {
				return err
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, e := range d {
				if err := checkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// locate walks the document along a dotted path and returns the full path,
// array indices included, of the first value whose JSON kind matches what
// encoding/json reported ("number 12.5", "string", "bool", ...).
func locate(doc any, segs []string, value, path string) string {
	if arr, ok := doc.([]any); ok {
		for i, e := range arr {
			if p := locate(e, segs, value, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
		return ""
	}
	if len(segs) == 0 {
		if kindOf(doc) == value {
			return path
		}
		return ""
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return ""
	}
	v, ok := m[segs[0]]
	if !ok {
		return ""
	}
	return locate(v, segs[1:], value, join(path, segs[0]))
}

func kindOf(v any) string {
	switch x := v.(type) {
	case json.Number:
		return "number " + x.String()
	case string:
		return "string"
	case bool:
		return "bool"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return ""
}

// hintFor finds the `hint` tag of the field at a dotted JSON path: a field
// can say what it expects in the caller's terms ("an integer number of fen").
func hintFor(t reflect.Type, path string) string {
	var hint string
	for _, name := range strings.Split(path, ".") {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return ""
		}
		f, ok := fieldByJSONName(t, name)
		if !ok {
			return ""
		}
		hint, t = f.Tag.Get("hint"), f.Type
	}
	return hint
}

func fieldByJSONName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		n, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if n == "" {
			n = f.Name
		}
		if n == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" {
				continue
			}
			if n != "" {
				name = n
			}
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		out[name] = f.Type
	}
	return out
}

// suggest finds the field a vendor-spelled or mis-cased key was meant to be:
// delivery_id → deliveryId, WarehouseId → warehouseId, DELIVERYID → deliveryId.
func suggest(key string, fields map[string]reflect.Type) string {
	camel := LowerCamel(key)
	if _, ok := fields[camel]; ok {
		return camel
	}
	fold := strings.ReplaceAll(strings.ToLower(key), "_", "")
	for name := range fields {
		if strings.ToLower(name) == fold {
			return name
		}
	}
	return ""
}

// LowerCamel converts a vendor field name to the envelope's spelling with the
// mechanical rule of WeChat cloud calls: each "_x" becomes "X", and a leading
// capital is lowered (delivery_id → deliveryId, WarehouseId → warehouseId,
// delivery_resultcode → deliveryResultcode).
func LowerCamel(s string) string {
	var b strings.Builder
	upper := false
	for i, r := range s {
		switch {
		case r == '_' || r == '-':
			upper = b.Len() > 0
		case upper:
			b.WriteRune(unicode.ToUpper(r))
			upper = false
		case i == 0:
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	// An all-caps acronym at the start (ID, URL) lowers as a whole: "ID" → "id".
	if len(out) > 1 && strings.ToUpper(s) == s && !strings.ContainsAny(s, "_-") {
		return strings.ToLower(s)
	}
	return out
}

func depth(b []byte) int {
	max, cur := 0, 0
	inStr, esc := false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			cur++
			if cur > max {
				max = cur
			}
		case c == '}' || c == ']':
			cur--
		}
	}
	return max
}

func jsonKind(b []byte) string {
	switch c := b[0]; {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	default:
		r, _ := utf8.DecodeRune(b)
		return fmt.Sprintf("text starting with %q", r)
	}
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	default:
		return t.String()
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}
