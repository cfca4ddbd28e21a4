// Package schemacorpus generates test inputs from a function's JSON Schema:
// its first example with one change each, at and just past every boundary the
// schema states (lengths, ranges, decimals, required fields, types, unknown
// fields) plus values the vendors document as valid that are easy to refuse
// by mistake (spaces, CJK, ~, *, long strings). It says nothing about which
// inputs are valid: Verdict asks the schema itself, independently of the
// envelope's decoder, so a test can compare that with what a function does.
package schemacorpus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Case is one generated input.
type Case struct {
	Name string // what was changed, e.g. "boxes[0].weight = 2147483648"
	Path string // the field path that was changed (envelope spelling)
	Body []byte
}

// Generate builds the corpus of a schema.
func Generate(schema []byte) ([]Case, error) {
	var doc map[string]any
	if err := decode(schema, &doc); err != nil {
		return nil, err
	}
	exs, _ := doc["examples"].([]any)
	if len(exs) == 0 {
		return nil, fmt.Errorf("schemacorpus: the schema has no examples")
	}
	g := &gen{root: doc}
	base := exs[0]
	g.add("first example", "", base)
	for i, ex := range exs[1:] {
		g.add(fmt.Sprintf("example %d", i+2), "", ex)
	}
	g.object(base, nil, doc)
	return g.cases, nil
}

type gen struct {
	root  map[string]any
	cases []Case
}

func (g *gen) add(name, path string, doc any) {
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err) // only generated values: cannot fail
	}
	g.cases = append(g.cases, Case{Name: name, Path: path, Body: b})
}

// resolve follows a local $ref, keeping the node's own keywords.
func (g *gen) resolve(node map[string]any) map[string]any {
	ref, ok := node["$ref"].(string)
	if !ok {
		return node
	}
	var target any = g.root
	for _, p := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, _ := target.(map[string]any)
		target = m[p]
	}
	out := map[string]any{}
	if m, ok := target.(map[string]any); ok {
		for k, v := range g.resolve(m) {
			out[k] = v
		}
	}
	for k, v := range node {
		if k != "$ref" {
			out[k] = v
		}
	}
	return out
}

// object mutates each property of the object at loc in the base document.
func (g *gen) object(base any, loc []any, node map[string]any) {
	node = g.resolve(node)
	props, _ := node["properties"].(map[string]any)
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	slices.Sort(names)
	required := map[string]bool{}
	if req, ok := node["required"].([]any); ok {
		for _, r := range req {
			required[r.(string)] = true
		}
	}
	cur, _ := get(base, loc).(map[string]any)
	path := pathOf(loc)
	// Unknown fields: a made-up one, and the vendor's spelling of a real one.
	g.add(join(path, "unknownField")+" added", join(path, "unknownField"), set(base, append(clone(loc), "unknownField"), "x"))
	for _, name := range names {
		snake := toSnake(name)
		if snake != name {
			g.add(join(path, snake)+" added (vendor spelling)", join(path, snake), set(base, append(clone(loc), snake), get(base, append(clone(loc), name))))
			break
		}
	}
	for _, name := range names {
		p := g.resolve(props[name].(map[string]any))
		at := append(clone(loc), name)
		fp := join(path, name)
		if _, present := cur[name]; present {
			g.add(fp+" omitted", fp, del(base, at))
		}
		for _, v := range g.values(p) {
			g.add(fmt.Sprintf("%s = %s", fp, show(v)), fp, set(base, at, v))
		}
		switch typeOf(p) {
		case "object":
			if _, ok := cur[name].(map[string]any); ok {
				g.object(base, at, p)
			}
		case "array":
			items, _ := p["items"].(map[string]any)
			arr, _ := cur[name].([]any)
			if items == nil || len(arr) == 0 {
				continue
			}
			items = g.resolve(items)
			item := append(clone(at), 0)
			for _, v := range g.values(items) {
				g.add(fmt.Sprintf("%s[0] = %s", fp, show(v)), fp+"[0]", set(base, item, v))
			}
			if typeOf(items) == "object" {
				g.object(base, item, items)
			}
			// Many items, and a second item that breaks a rule.
			many := make([]any, 501)
			for i := range many {
				many[i] = arr[0]
			}
			g.add(fp+" with 501 items", fp, set(base, at, many))
			if obj, ok := arr[0].(map[string]any); ok && typeOf(items) == "object" {
				second := map[string]any{}
				for k, v := range obj {
					second[k] = v
				}
				for k := range second {
					delete(second, k)
					break
				}
				g.add(fp+"[1] missing a field", fp+"[1]", set(base, at, []any{arr[0], second}))
			}
		}
	}
}

// values are the candidates for one field: its boundaries from the schema,
// the wrong JSON types, and unusual values of its own type.
func (g *gen) values(node map[string]any) []any {
	var out []any
	switch typeOf(node) {
	case "string":
		minL, hasMin := intOf(node["minLength"])
		maxL, hasMax := intOf(node["maxLength"])
		out = append(out, "", "a", " spaced  value ", "客户空间 01", "a~b*c", "tab\there", "📦 box", strings.Repeat("x", 1000), strings.Repeat("长", 3000))
		if hasMin && minL > 0 {
			out = append(out, strings.Repeat("A", minL), strings.Repeat("A", minL-1))
		}
		if hasMax {
			out = append(out, strings.Repeat("A", maxL), strings.Repeat("A", maxL+1), strings.Repeat("客", maxL), strings.Repeat("客", maxL+1))
		}
		if ex, ok := firstExample(node).(string); ok {
			out = append(out, ex+" ", ex+"-_", ex+".")
		}
		out = append(out, json.Number("1"), true, nil, []any{"a"}, map[string]any{})
	case "integer":
		for _, k := range []string{"minimum", "maximum"} {
			if r, ok := ratOf(node[k]); ok {
				out = append(out, num(r), num(new(big.Rat).Sub(r, big.NewRat(1, 1))), num(new(big.Rat).Add(r, big.NewRat(1, 1))))
			}
		}
		out = append(out, json.Number("0"), json.Number("-1"), json.Number("1"), json.Number("2"), json.Number("1.5"),
			json.Number("1e2"), json.Number("100.0"), json.Number("1E0"), json.Number("1e30"), json.Number("-1e30"),
			"1", true, nil, []any{}, map[string]any{})
	case "number":
		step := big.NewRat(1, 100)
		if r, ok := ratOf(node["multipleOf"]); ok {
			step = r
		}
		for _, k := range []string{"minimum", "maximum"} {
			if r, ok := ratOf(node[k]); ok {
				out = append(out, num(r), num(new(big.Rat).Sub(r, step)), num(new(big.Rat).Add(r, step)))
			}
		}
		out = append(out, json.Number("0"), json.Number("-1"), json.Number("0.01"), json.Number("0.001"), json.Number("10.255"),
			json.Number("12.30"), json.Number("1e2"), json.Number("1.5E1"), json.Number("1e-2"), json.Number("1e-3"), json.Number("1e30"),
			"5", false, nil, []any{}, map[string]any{})
	case "boolean":
		out = append(out, true, false, "true", json.Number("1"), nil)
	case "object":
		out = append(out, map[string]any{}, nil, "x", []any{}, json.Number("1"))
	case "array":
		out = append(out, []any{}, nil, map[string]any{}, "x", []any{nil})
	}
	return out
}

// Verdict is the schema's own answer for a body, found with the schema
// library alone (encoding/json with exact numbers, then jsonschema): nil when
// the body is valid.
func Verdict(schema, body []byte) error {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return err
	}
	if err := c.AddResource("mem:///schema.json", doc); err != nil {
		return err
	}
	s, err := c.Compile("mem:///schema.json")
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}

func decode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

func typeOf(node map[string]any) string {
	if t, ok := node["type"].(string); ok {
		return t
	}
	return ""
}

func firstExample(node map[string]any) any {
	if exs, ok := node["examples"].([]any); ok && len(exs) > 0 {
		return exs[0]
	}
	return nil
}

func intOf(v any) (int, bool) {
	r, ok := ratOf(v)
	if !ok || !r.IsInt() {
		return 0, false
	}
	return int(r.Num().Int64()), true
}

func ratOf(v any) (*big.Rat, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, false
	}
	return new(big.Rat).SetString(string(n))
}

// num writes an exact decimal: an integer as digits, else with as many
// decimals as it needs.
func num(r *big.Rat) json.Number {
	if r.IsInt() {
		return json.Number(r.Num().String())
	}
	for places := 1; places <= 12; places++ {
		s := r.FloatString(places)
		if back, _ := new(big.Rat).SetString(s); back.Cmp(r) == 0 {
			return json.Number(s)
		}
	}
	return json.Number(r.FloatString(12))
}

func show(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 40 {
		return fmt.Sprintf("%s… (%d bytes)", b[:30], len(b))
	}
	return string(b)
}

func toSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r + 'a' - 'A')
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func pathOf(loc []any) string {
	var b strings.Builder
	for _, s := range loc {
		switch x := s.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", x)
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(x)
		}
	}
	return b.String()
}

func clone(loc []any) []any { return append([]any(nil), loc...) }

// deep copies a JSON document.
func deep(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deep(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = deep(e)
		}
		return a
	}
	return v
}

func get(doc any, loc []any) any {
	for _, s := range loc {
		switch x := s.(type) {
		case int:
			a, _ := doc.([]any)
			if x >= len(a) {
				return nil
			}
			doc = a[x]
		case string:
			m, _ := doc.(map[string]any)
			doc = m[x]
		}
	}
	return doc
}

// set returns a copy of doc with the value at loc replaced.
func set(doc any, loc []any, v any) any {
	out := deep(doc)
	if len(loc) == 0 {
		return v
	}
	parent := get(out, loc[:len(loc)-1])
	switch k := loc[len(loc)-1].(type) {
	case int:
		parent.([]any)[k] = v
	case string:
		parent.(map[string]any)[k] = v
	}
	return out
}

// del returns a copy of doc without the member at loc.
func del(doc any, loc []any) any {
	out := deep(doc)
	parent, _ := get(out, loc[:len(loc)-1]).(map[string]any)
	delete(parent, loc[len(loc)-1].(string))
	return out
}

// Boundary is one documented rule with an input at its edge and one just past
// it, each the schema's first example with that one field changed.
type Boundary struct {
	Path, Rule string
	At, Past   []byte
}

// Boundaries lists every rule the schema states on a field that the first
// example reaches (lengths, ranges, decimals, patterns, required fields),
// each at and just past its boundary.
func Boundaries(schema []byte) ([]Boundary, error) {
	var doc map[string]any
	if err := decode(schema, &doc); err != nil {
		return nil, err
	}
	exs, _ := doc["examples"].([]any)
	if len(exs) == 0 {
		return nil, fmt.Errorf("schemacorpus: the schema has no examples")
	}
	g := &gen{root: doc}
	base := exs[0]
	var out []Boundary
	pair := func(path, rule string, at, past any) {
		a, _ := json.Marshal(at)
		p, _ := json.Marshal(past)
		out = append(out, Boundary{Path: path, Rule: rule, At: a, Past: p})
	}
	var walk func(loc []any, node map[string]any)
	walk = func(loc []any, node map[string]any) {
		node = g.resolve(node)
		props, _ := node["properties"].(map[string]any)
		req, _ := node["required"].([]any)
		for _, r := range req {
			at := append(clone(loc), r.(string))
			pair(pathOf(at), "required", base, del(base, at))
		}
		names := make([]string, 0, len(props))
		for k := range props {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, name := range names {
			p := g.resolve(props[name].(map[string]any))
			at := append(clone(loc), name)
			path := pathOf(at)
			if minL, ok := intOf(p["minLength"]); ok && minL > 0 {
				pair(path, "minLength", set(base, at, strings.Repeat("A", minL)), set(base, at, strings.Repeat("A", minL-1)))
			}
			if maxL, ok := intOf(p["maxLength"]); ok {
				pair(path, "maxLength", set(base, at, strings.Repeat("A", maxL)), set(base, at, strings.Repeat("A", maxL+1)))
				if p["pattern"] == nil {
					pair(path, "maxLength (characters, not bytes)", set(base, at, strings.Repeat("客", maxL)), set(base, at, strings.Repeat("客", maxL+1)))
				}
			}
			if pat, ok := p["pattern"].(string); ok {
				ex, _ := get(base, at).(string)
				if ex == "" {
					ex = "A"
				}
				pair(path, "pattern "+pat, set(base, at, ex), set(base, at, ex+" "))
			}
			step := big.NewRat(1, 1)
			if typeOf(p) == "number" {
				step = big.NewRat(1, 100)
				if r, ok := ratOf(p["multipleOf"]); ok {
					step = r
				}
			}
			if r, ok := ratOf(p["minimum"]); ok {
				pair(path, "minimum", set(base, at, num(r)), set(base, at, num(new(big.Rat).Sub(r, step))))
			}
			if r, ok := ratOf(p["maximum"]); ok {
				pair(path, "maximum", set(base, at, num(r)), set(base, at, num(new(big.Rat).Add(r, step))))
			}
			if r, ok := ratOf(p["multipleOf"]); ok {
				pair(path, "multipleOf", set(base, at, num(new(big.Rat).Add(big.NewRat(1, 1), r))),
					set(base, at, num(new(big.Rat).Add(big.NewRat(1, 1), new(big.Rat).Quo(r, big.NewRat(10, 1))))))
			}
			switch typeOf(p) {
			case "object":
				if _, ok := get(base, at).(map[string]any); ok {
					walk(at, p)
				}
			case "array":
				if arr, ok := get(base, at).([]any); ok && len(arr) > 0 {
					if items, ok := p["items"].(map[string]any); ok {
						walk(append(clone(at), 0), items)
					}
				}
			}
		}
	}
	walk(nil, doc)
	return out, nil
}
