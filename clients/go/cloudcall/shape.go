package cloudcall

import (
	"encoding/json"
	"math"
	"sort"
	"strconv"
)

// shape is what a function's success answer must hold, generated from its
// output schema (api_gen.go): each field's JSON type and the fields it
// requires. encoding/json fills a missing field with its zero value, and
// quotaNum's 0 means "no balance left": an answer without it, or with a
// field of another JSON type, is refused (-1303) naming the field, as the
// Node client does from the same schema.
type shape struct {
	Type     string // object, array, string, integer, number, boolean; "" takes anything
	Null     bool   // null is allowed too
	Required []string
	Props    []prop // in the schema's order
	Items    *shape
	Values   *shape // additionalProperties, when it is a schema
}

type prop struct {
	Name  string
	Shape *shape
}

// shapeError says where an answer departs from its shape.
type shapeError struct{ problem string }

func (e *shapeError) Error() string { return e.problem }

// checkShape decodes raw and checks it against s.
func checkShape(raw []byte, s *shape) error {
	if s == nil {
		return nil
	}
	var v any
	if err := decodeNumbers(raw, &v); err != nil {
		return err
	}
	if p := s.problem(v, ""); p != "" {
		return &shapeError{problem: p}
	}
	return nil
}

func article(typ string) string {
	switch typ {
	case "object", "array", "integer":
		return "an " + typ
	}
	return "a " + typ
}

// problem is the first place v departs from s ("quotaNum: required,
// missing"), or "". The words and the order are the Node client's.
func (s *shape) problem(v any, path string) string {
	if s.Type == "" {
		return ""
	}
	if v == nil {
		if s.Null {
			return ""
		}
		return at(path) + "expected " + article(s.Type) + ", got null"
	}
	if !s.holds(v) {
		return at(path) + "expected " + article(s.Type) + ", got " + kindOf(v)
	}
	switch v := v.(type) {
	case map[string]any:
		for _, r := range s.Required {
			if _, ok := v[r]; !ok {
				return join(path, r) + ": required, missing"
			}
		}
		named := map[string]bool{}
		for _, p := range s.Props {
			named[p.Name] = true
			if pv, ok := v[p.Name]; ok {
				if pr := p.Shape.problem(pv, join(path, p.Name)); pr != "" {
					return pr
				}
			}
		}
		if s.Values != nil {
			keys := make([]string, 0, len(v))
			for k := range v {
				if !named[k] {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			for _, k := range keys {
				if pr := s.Values.problem(v[k], join(path, k)); pr != "" {
					return pr
				}
			}
		}
	case []any:
		if s.Items != nil {
			for i, iv := range v {
				if pr := s.Items.problem(iv, path+"["+strconv.Itoa(i)+"]"); pr != "" {
					return pr
				}
			}
		}
	}
	return ""
}

func (s *shape) holds(v any) bool {
	switch s.Type {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "integer":
		// As JSON Schema (and Node's Number.isInteger) count: 2.0 is one.
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		if _, err := n.Int64(); err == nil {
			return true
		}
		f, err := n.Float64()
		return err == nil && f == math.Trunc(f)
	}
	return true
}

func kindOf(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	}
	return "null"
}

// at leads a problem with its field ("quotaNum: "); the answer itself has none.
func at(path string) string {
	if path == "" {
		return "the answer: "
	}
	return path + ": "
}
