package cloudcall

import (
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
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

// checkShape decodes raw, checks it against s, and returns the answer as
// it was checked, for the typed decode: encoding/json fills a field from a
// name in any case and keeps the last of a repeated name, so
// {"quotaNum":210,"QuotaNum":5} decoded as 5 after 210 was checked, and
// {"quotaNum":"x","quotaNum":210} failed on "x" where Node reads 210 (an
// outside re-tester). The checked answer has each name once, no other
// spelling beside a field the schema names, and integers written as
// integers (210.0 and 2.1e2 are JSON Schema integers, which int64 refused).
func checkShape(raw []byte, s *shape) ([]byte, error) {
	if s == nil {
		return raw, nil
	}
	var v any
	if err := decodeNumbers(raw, &v); err != nil {
		return nil, err
	}
	if p := s.problem(v, ""); p != "" {
		return nil, &shapeError{problem: p}
	}
	v, p := s.canonical(v, "")
	if p != "" {
		return nil, &shapeError{problem: p}
	}
	return json.Marshal(v)
}

// canonical is v, already checked against s, as the typed decode reads
// it: beside a named field, its other spellings dropped (Node reads the
// exact name too), and integers as integer literals. Maps and slices are
// rewritten in place. It says what the Go types cannot hold.
func (s *shape) canonical(v any, path string) (any, string) {
	switch v := v.(type) {
	case json.Number:
		if s.Type != "integer" {
			return v, ""
		}
		i, ok := wholeInt64(v)
		if !ok {
			return v, at(path) + "expected an integer the Go client holds (64 bits), got " + string(v)
		}
		return json.Number(strconv.FormatInt(i, 10)), ""
	case map[string]any:
		named := map[string]bool{}
		for _, p := range s.Props {
			named[p.Name] = true
			pv, ok := v[p.Name]
			if !ok {
				continue
			}
			for k := range v {
				if k != p.Name && strings.EqualFold(k, p.Name) {
					delete(v, k) // the checked spelling wins, as in Node
				}
			}
			cv, pr := p.Shape.canonical(pv, join(path, p.Name))
			if pr != "" {
				return v, pr
			}
			v[p.Name] = cv
		}
		if s.Values != nil {
			for k, kv := range v {
				if named[k] {
					continue
				}
				cv, pr := s.Values.canonical(kv, join(path, k))
				if pr != "" {
					return v, pr
				}
				v[k] = cv
			}
		}
	case []any:
		if s.Items != nil {
			for i, iv := range v {
				cv, pr := s.Items.canonical(iv, path+"["+strconv.Itoa(i)+"]")
				if pr != "" {
					return v, pr
				}
				v[i] = cv
			}
		}
	}
	return v, ""
}

// wholeInt64 is n, an integer in any JSON spelling (210, 210.0, 2.1e2),
// as an int64, when it is one.
func wholeInt64(n json.Number) (int64, bool) {
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
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
