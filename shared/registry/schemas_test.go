package registry

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
)

func compileSchema(t *testing.T, name string, b []byte) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	require.NoError(t, c.AddResource("mem://"+name, doc))
	s, err := c.Compile("mem://" + name)
	require.NoError(t, err, name)
	return s
}

// Every function has an input and an output schema that compile as 2020-12,
// whose examples validate, and whose input's first example is the registry's
// example (the one that works against the sandbox).
func TestSchemasPerFunction(t *testing.T) {
	for _, f := range All() {
		for _, kind := range []string{"input", "output"} {
			t.Run(f.Name+"/"+kind, func(t *testing.T) {
				b, err := schemaFile(f.Name, kind)
				require.NoError(t, err)
				var raw map[string]any
				require.NoError(t, json.Unmarshal(b, &raw))
				require.Equal(t, "https://json-schema.org/draft/2020-12/schema", raw["$schema"])
				require.NotEmpty(t, raw["description"])
				require.NotEmpty(t, raw["x-source"])
				s := compileSchema(t, f.Name+"."+kind, b)
				exs, ok := raw["examples"].([]any)
				require.True(t, ok && len(exs) > 0, "examples")
				for i := range exs {
					ex, _ := json.Marshal(exs[i])
					inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(ex))
					require.NoError(t, err)
					require.NoError(t, s.Validate(inst), "example %d", i)
				}
				if kind == "input" {
					first, _ := json.Marshal(exs[0])
					require.JSONEq(t, f.Example, string(first), "the registry example is the schema's first example")
				}
			})
		}
	}
	s := compileSchema(t, "error", ErrorSchema())
	require.NotNil(t, s)
}

// Every constrained property says where its rule comes from.
func TestEveryRuleCitesItsSource(t *testing.T) {
	rules := []string{"minLength", "maxLength", "pattern", "minimum", "maximum", "multipleOf", "minItems", "maxItems", "required"}
	for _, f := range All() {
		b, err := InputSchema(f.Name)
		require.NoError(t, err)
		var doc any
		require.NoError(t, json.Unmarshal(b, &doc))
		var walk func(path string, v any)
		walk = func(path string, v any) {
			m, ok := v.(map[string]any)
			if !ok {
				return
			}
			for _, r := range rules {
				if _, has := m[r]; has {
					_, src := m["x-source"]
					require.True(t, src, "%s %s: %s has no x-source", f.Name, path, r)
					require.NotEmpty(t, m["description"], "%s %s: no description", f.Name, path)
				}
			}
			for k, sub := range m {
				switch k {
				case "properties", "$defs":
					for name, p := range sub.(map[string]any) {
						walk(path+"/"+name, p)
					}
				case "items":
					walk(path+"[]", sub)
				}
			}
		}
		walk("", doc)
	}
}

func TestUnknownSchema(t *testing.T) {
	_, err := InputSchema("nope")
	require.ErrorIs(t, err, ErrNoSchema)
	require.True(t, strings.Contains(err.Error(), `"nope"`))
}
