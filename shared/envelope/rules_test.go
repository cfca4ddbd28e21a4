package envelope

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/schemacorpus"
)

// The streamed rules and the schema library agree on every generated input
// of every function, both ways: the rules never accept what the schema
// refuses (that would let bad input through), and never refuse what it
// accepts (that would cost the library's allocations on the warm path).
func TestRulesAgreeWithTheSchemaLibrary(t *testing.T) {
	for _, f := range registry.All() {
		b, err := registry.InputSchema(f.Name)
		require.NoError(t, err)
		s, err := CompileSchema(b)
		require.NoError(t, err, f.Name)
		cases, err := schemacorpus.Generate(b)
		require.NoError(t, err)
		for _, c := range cases {
			want := schemacorpus.Verdict(b, c.Body) == nil
			trimmed, err := precheck(c.Body)
			require.NoError(t, err)
			require.Equal(t, want, s.accepts(trimmed), "%s: %s: %s", f.Name, c.Name, c.Body)
		}
	}
}

func TestRulesRefuseWhatTheyDoNotCompile(t *testing.T) {
	for _, schema := range []string{
		`{"type":"object","oneOf":[{}]}`,
		`{"type":"object","properties":{"a":{"format":"email"}}}`,
		`{"$ref":"https://example.com/x.json"}`,
		`{"additionalProperties":{"type":"string"}}`,
	} {
		_, err := CompileSchema([]byte(schema))
		require.Error(t, err, schema)
	}
}

func TestRulesEdges(t *testing.T) {
	s, err := CompileSchema([]byte(`{"type":"object","properties":{
		"i":{"type":"integer","minimum":-9223372036854775808,"maximum":9223372036854775807},
		"d":{"type":"number","minimum":-999999.99,"maximum":999999.99,"multipleOf":0.01},
		"s":{"type":"string","maxLength":2,"pattern":"^[a-z客]*$"}}}`))
	require.NoError(t, err)
	for body, want := range map[string]bool{
		`{"i":9223372036854775807}`:  true,
		`{"i":9223372036854775808}`:  false,
		`{"i":-9223372036854775808}`: true,
		`{"i":-9223372036854775809}`: false,
		`{"i":1e18}`:                 true,
		`{"i":1.0}`:                  true,
		`{"i":1.5}`:                  false,
		`{"d":999999.99}`:            true,
		`{"d":999999.991}`:           false,
		`{"d":-999999.99}`:           true,
		`{"d":-1000000}`:             false,
		`{"d":999999}`:               true,
		`{"d":1000000}`:              false,
		`{"d":12.30}`:                true,
		`{"d":1e-2}`:                 true,
		`{"d":1e-3}`:                 false,
		`{"s":"客客"}`:                 true,
		`{"s":"客客客"}`:                false,
		`{"s":"\u5ba2a"}`:            true,
		`{"s":"A"}`:                  false,
		`{"s":"a","s":"b"}`:          false,
		`{"i":1} {}`:                 false,
		"{\"s\":\"\xff\"}":           false,
	} {
		require.Equal(t, want, s.accepts([]byte(body)), body)
	}
}
