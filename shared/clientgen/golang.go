package clientgen

import (
	"bytes"
	"fmt"
	"go/format"
	"strings"
)

func golang(fns []*fn) ([]byte, error) {
	var b strings.Builder
	b.WriteString("// " + Header + "\n\npackage cloudcall\n\nimport (\n\t\"context\"\n\t\"encoding/json\"\n)\n\n")
	b.WriteString("// json.Number keeps vendor decimals' exact digits (never float64).\nvar _ json.Number\n\n")
	for _, f := range fns {
		for _, side := range []struct {
			s      *schema
			name   string
			output bool
		}{{f.in, f.typePrefix + "Input", false}, {f.out, f.typePrefix + "Output", true}} {
			g := &goGen{r: resolver{root: side.s}, prefix: side.name, output: side.output, done: map[string]bool{}}
			if _, err := g.structType(side.name, side.s); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", f.Name, side.name, err)
			}
			b.WriteString(g.out.String())
		}
	}
	root, err := buildTree(fns)
	if err != nil {
		return nil, err
	}
	b.WriteString("// functions lists the callable functions in registry order, each with what its\n// success answer must hold (from the output schema's types and required).\nfunc functions() []function {\n\treturn []function{\n")
	for _, f := range fns {
		fmt.Fprintf(&b, "\t\t{API: %q, Name: %q, TakesIdempotencyKey: %t,\n\t\t\tOutput: %s},\n", f.API, f.Name, f.takesKey, f.output.goLit())
	}
	b.WriteString("\t}\n}\n\n")
	// The namespaces: Client.OpenAPI.Logistics.GetQuota(...).
	var ns strings.Builder
	var init strings.Builder
	var fields strings.Builder
	for _, c := range root.children {
		tn := goNamespace(c, []string{c.name}, &ns)
		fields.WriteString(comment(fmt.Sprintf("%s calls the %s.* functions: %s.", word(c.name), c.name, strings.Join(goCalls(c, []string{word(c.name)}), ", ")), "\t// ", 96))
		fmt.Fprintf(&fields, "\t%s %s\n", word(c.name), tn)
		fmt.Fprintf(&init, "\t\t%s: %s,\n", word(c.name), goNamespaceInit(c, []string{c.name}))
	}
	b.WriteString("// APIs are the Client's fields, at the API names: cc.OpenAPI.Logistics.GetQuota(ctx, in).\ntype APIs struct {\n")
	b.WriteString(fields.String())
	b.WriteString("}\n\nfunc newAPIs(c *core) APIs {\n\treturn APIs{\n")
	b.WriteString(init.String())
	b.WriteString("\t}\n}\n\n")
	b.WriteString(ns.String())
	src, err := format.Source([]byte(b.String()))
	if err != nil {
		return nil, fmt.Errorf("generated Go does not format: %w\n%s", err, b.String())
	}
	return src, nil
}

// goCalls lists the methods under t as a caller writes them (CK1.Pricing.InboundBox).
func goCalls(t *tree, path []string) []string {
	var out []string
	for _, c := range t.children {
		p := append(append([]string{}, path...), pascal(c.name))
		if c.fn != nil {
			out = append(out, strings.Join(p, "."))
			continue
		}
		out = append(out, goCalls(c, p)...)
	}
	return out
}

func goNamespaceName(path []string) string {
	var b strings.Builder
	for _, p := range path {
		b.WriteString(pascal(p))
	}
	return b.String() + "API"
}

// goNamespace declares the struct of one namespace (and its children's) and
// returns its type name.
func goNamespace(t *tree, path []string, out *strings.Builder) string {
	name := goNamespaceName(path)
	var fields, methods strings.Builder
	for _, c := range t.children {
		if c.fn != nil {
			f := c.fn
			opt := ""
			if f.takesKey {
				opt = " A charge: it is never retried after it may have been sent, and a 429 retry sends the same bytes (so the same idempotency key)."
			}
			methods.WriteString(comment(fmt.Sprintf("%s calls %s (POST /%s). %s%s", pascal(c.name), f.API, f.Name, firstSentence(f.in.Description), opt), "// ", 100))
			fmt.Fprintf(&methods, "func (a %s) %s(ctx context.Context, in %sInput, opts ...CallOption) (*%sOutput, error) {\n", name, pascal(c.name), f.typePrefix, f.typePrefix)
			fmt.Fprintf(&methods, "\tvar out %sOutput\n\tif err := a.c.call(ctx, %q, in, &out, opts); err != nil {\n\t\treturn nil, err\n\t}\n\treturn &out, nil\n}\n\n", f.typePrefix, f.Name)
			continue
		}
		sub := append(append([]string{}, path...), c.name)
		child := goNamespace(c, sub, out)
		fields.WriteString(comment(fmt.Sprintf("%s calls the %s.* functions: %s.", pascal(c.name), strings.Join(sub, "."), strings.Join(goCalls(c, []string{pascal(c.name)}), ", ")), "\t// ", 96))
		fmt.Fprintf(&fields, "\t%s %s\n", pascal(c.name), child)
	}
	fmt.Fprintf(out, "// %s holds the %s methods.\ntype %s struct {\n\tc *core\n%s}\n\n", name, strings.Join(path, "."), name, fields.String())
	out.WriteString(methods.String())
	return name
}

func goNamespaceInit(t *tree, path []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s{c: c", goNamespaceName(path))
	for _, c := range t.children {
		if c.fn == nil {
			fmt.Fprintf(&b, ", %s: %s", pascal(c.name), goNamespaceInit(c, append(append([]string{}, path...), c.name)))
		}
	}
	b.WriteString("}")
	return b.String()
}

type goGen struct {
	r      resolver
	prefix string
	output bool
	done   map[string]bool
	out    bytes.Buffer
}

// structType declares a named struct for an object schema.
func (g *goGen) structType(name string, s *schema) (string, error) {
	var body strings.Builder
	for _, prop := range s.order {
		p := s.Properties[prop]
		rp, _, err := g.r.resolve(p)
		if err != nil {
			return "", err
		}
		required := s.isRequired(prop)
		t, err := g.typ(p, name+pascal(prop))
		if err != nil {
			return "", err
		}
		kind, _ := rp.nonNull()
		tag := prop
		switch {
		case required:
		case kind == "string" && rp.EmptySent && !strings.HasPrefix(t, "*"):
			t = "*" + t // "" and absent reach the vendor differently
			tag += ",omitempty"
		case kind == "string", kind == "array", strings.HasPrefix(t, "map["), t == "json.RawMessage", t == "any":
			tag += ",omitempty"
		case kind == "boolean" && string(rp.Default) == "false":
			tag += ",omitempty" // false is the default: leaving it out says the same
		default:
			t = "*" + t
			tag += ",omitempty"
		}
		desc := p.Description
		if desc == "" {
			desc = rp.Description
		}
		if desc != "" {
			body.WriteString(comment(desc, "\t// ", 96))
		}
		fmt.Fprintf(&body, "\t%s %s `json:%q`\n", pascal(prop), t, tag)
	}
	// An answer's open object (fields the vendor adds later pass through,
	// as in Node) keeps what the type does not name in Extra.
	open := g.output && s.open()
	if open {
		body.WriteString("\t// Extra holds the fields of the answer this type does not name (fields the vendor adds later),\n\t// numbers as json.Number. MarshalJSON writes them back.\n")
		body.WriteString("\tExtra map[string]any `json:\"-\"`\n")
	}
	doc := name + ": " + s.Description
	if s.Description == "" {
		doc = name + " is part of " + g.prefix + "."
	}
	fmt.Fprintf(&g.out, "%s", comment(doc, "// ", 100))
	fmt.Fprintf(&g.out, "type %s struct {\n%s}\n\n", name, body.String())
	if open {
		named := fmt.Sprintf("%q", s.order)
		named = strings.ReplaceAll(strings.Trim(named, "[]"), "\" \"", "\", \"")
		fmt.Fprintf(&g.out, "// UnmarshalJSON keeps the fields %s does not name in Extra.\nfunc (t *%s) UnmarshalJSON(b []byte) error {\n\ttype plain %s\n\tif err := decodeNumbers(b, (*plain)(t)); err != nil {\n\t\treturn err\n\t}\n\treturn unnamed(b, &t.Extra, %s)\n}\n\n", name, name, name, named)
		fmt.Fprintf(&g.out, "// MarshalJSON writes Extra's fields after the named ones.\nfunc (t %s) MarshalJSON() ([]byte, error) {\n\ttype plain %s\n\treturn withExtra(plain(t), t.Extra, %s)\n}\n\n", name, name, named)
	}
	return name, nil
}

// typ renders a schema as a Go type; objects become named structs.
func (g *goGen) typ(s *schema, name string) (string, error) {
	s, def, err := g.r.resolve(s)
	if err != nil {
		return "", err
	}
	if def != "" {
		name = g.prefix + pascal(def)
	}
	if len(s.OneOf)+len(s.AnyOf) > 0 && len(s.Properties) == 0 {
		return "json.RawMessage", nil
	}
	t, null := s.nonNull()
	var out string
	switch t {
	case "string":
		out = "string"
	case "integer":
		out = "int64"
	case "number":
		out = "json.Number"
	case "boolean":
		out = "bool"
	case "array":
		if s.Items == nil {
			return "[]json.RawMessage", nil
		}
		it, err := g.typ(s.Items, name+"Item")
		if err != nil {
			return "", err
		}
		out = "[]" + it
	case "object":
		if len(s.order) == 0 {
			if x := s.extra(); x != nil {
				v, err := g.typ(x, name+"Value")
				if err != nil {
					return "", err
				}
				return "map[string]" + v, nil
			}
			return "map[string]any", nil
		}
		if !g.done[name] {
			g.done[name] = true
			if _, err := g.structType(name, s); err != nil {
				return "", err
			}
		}
		out = name
	default:
		return "json.RawMessage", nil
	}
	if null && t != "array" {
		out = "*" + out
	}
	return out, nil
}
