package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// InputTable renders a function's input schema as the README's Markdown
// table: one row per field (nested ones with their path), its JSON type,
// whether it is required, every rule the schema states and where the rule
// comes from. The README's tables are these, checked by a test.
func InputTable(name string) (string, error) {
	b, err := InputSchema(name)
	if err != nil {
		return "", err
	}
	var root map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	var rows []string
	var walk func(prefix string, node map[string]any)
	walk = func(prefix string, node map[string]any) {
		node = resolveRef(root, node)
		props, _ := node["properties"].(map[string]any)
		names := make([]string, 0, len(props))
		for k := range props {
			names = append(names, k)
		}
		slices.SortFunc(names, func(a, b string) int {
			ia, ib := reqIndex(node, a), reqIndex(node, b)
			switch {
			case ia >= 0 && ib >= 0:
				return ia - ib
			case ia >= 0:
				return -1
			case ib >= 0:
				return 1
			}
			return strings.Compare(a, b)
		})
		required := map[string]bool{}
		if req, ok := node["required"].([]any); ok {
			for _, r := range req {
				required[fmt.Sprint(r)] = true
			}
		}
		for _, n := range names {
			p := resolveRef(root, props[n].(map[string]any))
			path := prefix + n
			req := "no"
			if required[n] {
				req = "yes"
			}
			rows = append(rows, fmt.Sprintf("| `%s` | %s | %s | %s | %s |", path, typeName(p), req, cell(rules(p)), cell(fmt.Sprint(p["x-source"]))))
			switch typeName(p) {
			case "object":
				walk(path+".", p)
			case "array":
				if items, ok := p["items"].(map[string]any); ok {
					walk(path+"[].", items)
				}
			}
		}
	}
	walk("", root)
	if len(rows) == 0 {
		return "| field | type | required | rule | source |\n| --- | --- | --- | --- | --- |\n| (none) | | | the input is `{}`; any field is refused | " + cell(fmt.Sprint(root["x-source"])) + " |\n", nil
	}
	return "| field | type | required | rule | source |\n| --- | --- | --- | --- | --- |\n" + strings.Join(rows, "\n") + "\n", nil
}

// reqIndex is a field's place in the schema's required list, or -1: the
// tables list required fields first, in that order, then the others by name.
func reqIndex(node map[string]any, name string) int {
	if req, ok := node["required"].([]any); ok {
		for i, r := range req {
			if fmt.Sprint(r) == name {
				return i
			}
		}
	}
	return -1
}

func resolveRef(root, node map[string]any) map[string]any {
	ref, ok := node["$ref"].(string)
	if !ok || !strings.HasPrefix(ref, "#/") {
		return node
	}
	var target any = root
	for _, p := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, _ := target.(map[string]any)
		target = m[p]
	}
	out := map[string]any{}
	if m, ok := target.(map[string]any); ok {
		for k, v := range m {
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

func typeName(p map[string]any) string {
	switch t := p["type"].(type) {
	case string:
		return t
	case []any:
		parts := make([]string, len(t))
		for i, x := range t {
			parts[i] = fmt.Sprint(x)
		}
		return strings.Join(parts, " or ")
	}
	return "any"
}

// rules says in words what the schema checks of one field.
func rules(p map[string]any) string {
	var out []string
	minL, hasMin := p["minLength"]
	maxL, hasMax := p["maxLength"]
	switch {
	case hasMin && hasMax:
		out = append(out, fmt.Sprintf("%v to %v characters", minL, maxL))
	case hasMax:
		out = append(out, fmt.Sprintf("at most %v characters", maxL))
	case hasMin && fmt.Sprint(minL) == "1":
		out = append(out, "not empty")
	case hasMin:
		out = append(out, fmt.Sprintf("at least %v characters", minL))
	}
	if pat, ok := p["pattern"]; ok {
		out = append(out, fmt.Sprintf("matches `%v`", pat))
	}
	minV, hasMinV := p["minimum"]
	maxV, hasMaxV := p["maximum"]
	switch {
	case hasMinV && hasMaxV:
		out = append(out, fmt.Sprintf("%v to %v", minV, maxV))
	case hasMinV:
		out = append(out, fmt.Sprintf("at least %v", minV))
	case hasMaxV:
		out = append(out, fmt.Sprintf("at most %v", maxV))
	}
	if m, ok := p["multipleOf"]; ok {
		out = append(out, fmt.Sprintf("a multiple of %v", m))
	}
	if d, ok := p["default"]; ok {
		out = append(out, fmt.Sprintf("default %v", d))
	}
	if pol, ok := p["x-policy"].([]any); ok {
		names := make([]string, len(pol))
		for i, x := range pol {
			names[i] = "`" + fmt.Sprint(x) + "`"
		}
		out = append(out, "policy "+strings.Join(names, ", "))
	}
	if len(out) == 0 {
		if t := typeName(p); t == "integer" || t == "number" {
			// The one bound every number has, the bundle's own (docs/security.md).
			return "any " + t + " (no documented limit; within ±10^400, as every number)"
		}
		return "any " + typeName(p) + " (no documented limit)"
	}
	return strings.Join(out, "; ")
}

func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// RewriteInputTables returns doc (docs/vendors.md) with each function's input
// table, between <!-- input:NAME --> and <!-- /input:NAME -->, replaced by
// what InputTable renders. A function without its markers is an error that
// says which lines to add: `cloudcall gen` fills the table in once they are there.
func RewriteInputTables(doc string) (string, error) {
	var errs []error
	for _, f := range All() {
		table, err := InputTable(f.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		open, end := "<!-- input:"+f.Name+" -->", "<!-- /input:"+f.Name+" -->"
		re := regexp.MustCompile(`(?s)` + regexp.QuoteMeta(open) + `\n.*?` + regexp.QuoteMeta(end))
		if !re.MatchString(doc) {
			errs = append(errs, fmt.Errorf("docs/vendors.md has no input table for %s: add the two lines %s and %s (nothing between them) to its section (## Vendor (%s)), after the sentence that introduces its input, as every other function's are; `make gen` then writes the table between them", f.Name, open, end, f.Name))
			continue
		}
		doc = re.ReplaceAllLiteralString(doc, open+"\n"+table+end)
	}
	return doc, errors.Join(errs...)
}
