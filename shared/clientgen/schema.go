// Package clientgen writes the callers' clients (the Node package's method
// table and TypeScript types, the Go client's types and methods) from the
// registry's JSON Schemas, so a client can never disagree with a function.
// It understands the subset of JSON Schema 2020-12 the registry uses.
package clientgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// schema is one JSON Schema node. Property order is kept as written, so the
// generated types read like the schema.
type schema struct {
	Ref                  string             `json:"$ref"`
	Type                 json.RawMessage    `json:"type"`
	Title                string             `json:"title"`
	Description          string             `json:"description"`
	Properties           map[string]*schema `json:"properties"`
	Required             []string           `json:"required"`
	AdditionalProperties json.RawMessage    `json:"additionalProperties"`
	Items                *schema            `json:"items"`
	Enum                 []json.RawMessage  `json:"enum"`
	Const                json.RawMessage    `json:"const"`
	Default              json.RawMessage    `json:"default"`
	OneOf                []*schema          `json:"oneOf"`
	AnyOf                []*schema          `json:"anyOf"`
	AllOf                []*schema          `json:"allOf"`
	Defs                 map[string]*schema `json:"$defs"`
	// EmptySent (x-empty-sent) marks an optional string the function sends
	// on as "" when given empty, unlike when absent: the Go field is a
	// *string so a caller can say either.
	EmptySent bool `json:"x-empty-sent"`

	order []string // property names in source order
}

func (s *schema) UnmarshalJSON(b []byte) error {
	type plain schema
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*s = schema(p)
	var raw struct {
		Properties json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if len(raw.Properties) > 0 {
		keys, err := objectKeys(raw.Properties)
		if err != nil {
			return err
		}
		s.order = keys
	}
	return nil
}

// objectKeys lists a JSON object's keys in the order they appear.
func objectKeys(obj []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, t.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

func parseSchema(b []byte) (*schema, error) {
	var s schema
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// types is the schema's "type" as a list ("string" or ["string","null"]).
func (s *schema) types() []string {
	if len(s.Type) == 0 {
		return nil
	}
	var one string
	if json.Unmarshal(s.Type, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(s.Type, &many)
	return many
}

// nonNull is the single non-null type, and whether null is allowed too.
func (s *schema) nonNull() (string, bool) {
	var t string
	null := false
	for _, x := range s.types() {
		if x == "null" {
			null = true
		} else if t == "" {
			t = x
		} else {
			return "", null // several: callers treat it as "any"
		}
	}
	if t == "" && len(s.Const) > 0 {
		t = jsonKind(s.Const)
	}
	if t == "" && len(s.Enum) > 0 {
		t = jsonKind(s.Enum[0])
		for _, e := range s.Enum[1:] {
			if k := jsonKind(e); k != t {
				return "", null
			}
		}
	}
	if t == "" && len(s.Properties) > 0 {
		t = "object"
	}
	if t == "" && s.Items != nil {
		t = "array"
	}
	return t, null
}

func jsonKind(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) == 0:
		return ""
	case v[0] == '"':
		return "string"
	case v[0] == '{':
		return "object"
	case v[0] == '[':
		return "array"
	case string(v) == "true" || string(v) == "false":
		return "boolean"
	case string(v) == "null":
		return "null"
	case bytes.ContainsAny(v, ".eE"):
		return "number"
	default:
		return "integer"
	}
}

func (s *schema) isRequired(name string) bool {
	for _, r := range s.Required {
		if r == name {
			return true
		}
	}
	return false
}

// closed says the object takes no fields besides its properties.
func (s *schema) closed() bool { return string(bytes.TrimSpace(s.AdditionalProperties)) == "false" }

// open says additional properties are allowed and pass through as they are.
func (s *schema) open() bool { return string(bytes.TrimSpace(s.AdditionalProperties)) == "true" }

// extra is the schema of additional properties, when it is one.
func (s *schema) extra() *schema {
	a := bytes.TrimSpace(s.AdditionalProperties)
	if len(a) == 0 || a[0] != '{' {
		return nil
	}
	var x schema
	if json.Unmarshal(a, &x) != nil {
		return nil
	}
	return &x
}

// resolver follows local $refs (#/$defs/name) within one document.
type resolver struct{ root *schema }

func (r resolver) resolve(s *schema) (*schema, string, error) {
	if s == nil || s.Ref == "" {
		return s, "", nil
	}
	name, ok := strings.CutPrefix(s.Ref, "#/$defs/")
	if !ok || r.root.Defs[name] == nil {
		return nil, "", fmt.Errorf("unsupported $ref %q (only #/$defs/<name> in the same schema)", s.Ref)
	}
	d := *r.root.Defs[name]
	if s.Description != "" { // a description next to the $ref wins
		d.Description = s.Description
	}
	return &d, name, nil
}

// pascal turns "wdsCoordinationOrderId" or "ck1-pricing" into
// "WdsCoordinationOrderID" / "Ck1Pricing", with Go's initialisms.
func pascal(s string) string {
	var parts []string
	cur := strings.Builder{}
	flush := func() {
		if cur.Len() > 0 {
			parts = append(parts, cur.String())
			cur.Reset()
		}
	}
	for i, r := range s {
		switch {
		case r == '-' || r == '_' || r == '.' || r == ' ':
			flush()
		case r >= 'A' && r <= 'Z' && i > 0:
			flush()
			cur.WriteRune(r)
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(word(p))
	}
	return b.String()
}

// word capitalises one word, spelling Go initialisms and the vendors' names
// the way Go code does.
func word(p string) string {
	switch up := strings.ToUpper(p); up {
	case "ID", "URL", "API", "HTTP", "JSON", "CK1", "CAMS", "TOP", "ASCP":
		return up
	case "OPENAPI":
		return "OpenAPI"
	}
	return strings.ToUpper(p[:1]) + p[1:]
}
