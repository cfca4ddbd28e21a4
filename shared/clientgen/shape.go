package clientgen

import (
	"fmt"
	"strconv"
	"strings"
)

// shape is what both clients check a success answer against before they
// hand it over: each field's JSON type and which fields must be there, from
// the output schema's type and required. A missing quotaNum decoded as 0 in
// Go ("no balance left") and as undefined in Node, and a string "210" passed
// in Node (an outside tester); both clients now refuse such an answer with
// -1303 naming the field. Generated, so it cannot differ between them.
type shape struct {
	typ      string // object, array, string, integer, number, boolean; "" takes anything
	null     bool   // null is allowed too
	required []string
	props    []shapeProp // in the schema's order
	items    *shape
	values   *shape // additionalProperties, when it is a schema
}

type shapeProp struct {
	name string
	s    *shape
}

// maxShapeDepth bounds $ref chains: the registry's schemas do not recurse.
const maxShapeDepth = 32

func shapeOf(r resolver, s *schema, depth int) (*shape, error) {
	if depth > maxShapeDepth {
		return nil, fmt.Errorf("the output schema nests deeper than %d (a $ref cycle?)", maxShapeDepth)
	}
	s, _, err := r.resolve(s)
	if err != nil {
		return nil, err
	}
	if len(s.OneOf)+len(s.AnyOf)+len(s.AllOf) > 0 && len(s.Properties) == 0 {
		return &shape{}, nil // several shapes: not checked
	}
	t, null := s.nonNull()
	out := &shape{null: null}
	switch t {
	case "string", "integer", "number", "boolean":
		out.typ = t
	case "array":
		out.typ = t
		if s.Items != nil {
			if out.items, err = shapeOf(r, s.Items, depth+1); err != nil {
				return nil, err
			}
		}
	case "object":
		out.typ = t
		out.required = s.Required
		for _, name := range s.order {
			ps, err := shapeOf(r, s.Properties[name], depth+1)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if ps.typ != "" {
				out.props = append(out.props, shapeProp{name: name, s: ps})
			}
		}
		if x := s.extra(); x != nil {
			if out.values, err = shapeOf(r, x, depth+1); err != nil {
				return nil, err
			}
		}
	default:
		return &shape{}, nil
	}
	return out, nil
}

// js renders the shape as a JavaScript object literal (it is JSON).
func (s *shape) js() string {
	var parts []string
	if s.typ != "" {
		parts = append(parts, `"type":`+strconv.Quote(s.typ))
	}
	if s.null {
		parts = append(parts, `"null":true`)
	}
	if len(s.required) > 0 {
		q := make([]string, len(s.required))
		for i, r := range s.required {
			q[i] = jsString(r)
		}
		parts = append(parts, `"required":[`+strings.Join(q, ",")+`]`)
	}
	if len(s.props) > 0 {
		q := make([]string, len(s.props))
		for i, p := range s.props {
			q[i] = jsString(p.name) + ":" + p.s.js()
		}
		parts = append(parts, `"properties":{`+strings.Join(q, ",")+`}`)
	}
	if s.items != nil {
		parts = append(parts, `"items":`+s.items.js())
	}
	if s.values != nil {
		parts = append(parts, `"values":`+s.values.js())
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// goLit renders the shape as a Go composite literal of the client's shape type.
func (s *shape) goLit() string {
	var parts []string
	if s.typ != "" {
		parts = append(parts, "Type: "+strconv.Quote(s.typ))
	}
	if s.null {
		parts = append(parts, "Null: true")
	}
	if len(s.required) > 0 {
		q := make([]string, len(s.required))
		for i, r := range s.required {
			q[i] = strconv.Quote(r)
		}
		parts = append(parts, "Required: []string{"+strings.Join(q, ", ")+"}")
	}
	if len(s.props) > 0 {
		q := make([]string, len(s.props))
		for i, p := range s.props {
			q[i] = "{" + strconv.Quote(p.name) + ", " + p.s.goLit() + "}"
		}
		parts = append(parts, "Props: []prop{"+strings.Join(q, ", ")+"}")
	}
	if s.items != nil {
		parts = append(parts, "Items: "+s.items.goLit())
	}
	if s.values != nil {
		parts = append(parts, "Values: "+s.values.goLit())
	}
	return "&shape{" + strings.Join(parts, ", ") + "}"
}
