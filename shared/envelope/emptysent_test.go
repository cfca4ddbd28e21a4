package envelope_test

import (
	stdjson "encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/registry"
)

// TestEmptySentMarksTheFunctionsPointerStrings holds the functions' input
// types and the schemas' x-empty-sent marks together: an optional string the
// function keeps as a *string (so "" reaches the vendor as "", apart from
// absent) must carry the mark, or the Go client, generated from the mark,
// makes it a string with omitempty and can never send "" (an outside tester:
// CK1's serviceCode and locationId); a plain string must not carry it.
func TestEmptySentMarksTheFunctionsPointerStrings(t *testing.T) {
	stringPtr := reflect.TypeFor[*string]()
	for _, f := range registry.All() {
		require.Contains(t, inputs, f.Name, "the input type of %s", f.Name)
	}
	for name, fresh := range inputs {
		t.Run(name, func(t *testing.T) {
			raw, err := registry.InputSchema(name)
			require.NoError(t, err)
			var root map[string]any
			require.NoError(t, stdjson.Unmarshal(raw, &root))
			defs, _ := root["$defs"].(map[string]any)
			checked := 0
			var walk func(s map[string]any, typ reflect.Type, path string)
			walk = func(s map[string]any, typ reflect.Type, path string) {
				if ref, ok := s["$ref"].(string); ok {
					s = defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
				}
				for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
					typ = typ.Elem()
				}
				if items, ok := s["items"].(map[string]any); ok {
					walk(items, typ, path+"[]")
				}
				props, _ := s["properties"].(map[string]any)
				if typ.Kind() != reflect.Struct {
					return
				}
				required, _ := s["required"].([]any)
				for prop, p := range props {
					f, ok := fieldByTag(typ, prop)
					require.True(t, ok, "%s%s: the schema names it, %s has no field for it", path, prop, typ)
					ps := p.(map[string]any)
					if ps["type"] == "string" && !slices.Contains(required, any(prop)) {
						marked := ps["x-empty-sent"] == true
						require.Equal(t, f.Type == stringPtr, marked,
							"%s%s: the function's field is %s, the schema's x-empty-sent is %t (a *string sends \"\" as given and needs the mark; a string needs none)",
							path, prop, f.Type, marked)
						checked++
					}
					walk(ps, f.Type, path+prop+".")
				}
			}
			walk(root, reflect.TypeOf(fresh()), "")
			t.Logf("%d optional strings checked", checked)
		})
	}
}

// fieldByTag is the struct field encoding/json fills from the member name.
func fieldByTag(typ reflect.Type, name string) (reflect.StructField, bool) {
	for i := range typ.NumField() {
		f := typ.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
