package cloudcall

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

var numberType = reflect.TypeFor[json.Number]()

// checkInput finds what encoding/json would send other than as given: text
// that is not UTF-8 (it would go out with U+FFFD in place of the bytes, and
// the function could not refuse it) and a json.Number that is no number. It
// returns the field's path as the functions name it ("boxes[0].length")
// and what is wrong, or "" when the input goes out as it is.
func checkInput(v reflect.Value, path string) (field, problem string) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return "", ""
		}
		return checkInput(v.Elem(), path)
	case reflect.String:
		if v.Type() == numberType {
			// Valid JSON that starts as a number is one. An empty one
			// would go out as 0.
			// A JSON number starts with - or a digit and ends with a digit
			// (json.Valid also takes the spaces around one).
			if s := v.String(); s == "" || !json.Valid([]byte(s)) || s[0] != '-' && (s[0] < '0' || s[0] > '9') || s[len(s)-1] < '0' || s[len(s)-1] > '9' {
				return path, "expected a number, got " + strconv.Quote(s)
			}
			return "", ""
		}
		if !utf8.ValidString(v.String()) {
			return path, "expected text in UTF-8; it holds bytes that are not"
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return "", "" // []byte goes as base64
		}
		for i := range v.Len() {
			if f, p := checkInput(v.Index(i), path+"["+strconv.Itoa(i)+"]"); p != "" {
				return f, p
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			k := it.Key()
			if k.Kind() == reflect.String && !utf8.ValidString(k.String()) {
				return path, "expected keys in UTF-8; one holds bytes that are not"
			}
			name := k.String()
			if k.Kind() != reflect.String {
				name = ""
			}
			if f, p := checkInput(it.Value(), join(path, name)); p != "" {
				return f, p
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if name == "-" || strings.Contains(","+opts+",", ",omitempty,") && v.Field(i).IsZero() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			if fv := v.Field(i); (fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map) && fv.IsNil() {
				// A required array or object: encoding/json writes nil as
				// null, which the function refuses.
				if fv.Kind() == reflect.Slice {
					return join(path, name), "expected an array; a nil slice goes out as null (give an empty slice for none)"
				}
				return join(path, name), "expected an object; a nil map goes out as null (give an empty map for none)"
			}
			if f, p := checkInput(v.Field(i), join(path, name)); p != "" {
				return f, p
			}
		}
	}
	return "", ""
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
