package clientgen_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/clientgen"
	"github.com/cloudcall/cloudcall/shared/emulator"
)

// The committed client files are what the registry's schemas generate.
func TestNoDrift(t *testing.T) {
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	files, err := clientgen.FromRegistry()
	require.NoError(t, err)
	require.Len(t, files, 4)
	for name, want := range files {
		have, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		require.NoError(t, err, "%s is missing: run `make gen` and commit it", name)
		require.Equal(t, string(want), string(have), "%s drifted from the registry's schemas: run `make gen` and commit it", name)
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	a, err := clientgen.FromRegistry()
	require.NoError(t, err)
	b, err := clientgen.FromRegistry()
	require.NoError(t, err)
	require.Equal(t, a, b)
}

const in = `{
  "type": "object", "additionalProperties": false, "required": ["name", "items"],
  "description": "The input.",
  "properties": {
    "name": {"type": "string", "description": "Who."},
    "count": {"type": "integer"},
    "ratio": {"$ref": "#/$defs/decimal"},
    "flag": {"type": "boolean", "default": false},
    "mode": {"enum": ["a", "b"]},
    "note": {"type": ["string", "null"]},
    "label": {"type": "string", "x-empty-sent": true},
    "tags": {"type": "object", "additionalProperties": {"type": "string"}},
    "any": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
    "items": {"type": "array", "items": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}, "size": {"$ref": "#/$defs/decimal"}}}},
    "idempotencyKey": {"type": "string"}
  },
  "$defs": {"decimal": {"type": "number", "description": "Exact digits."}}
}`

const out = `{
  "type": "object", "required": ["errCode", "errMsg", "total"],
  "properties": {"errCode": {"const": 0}, "errMsg": {"const": "shop.cart.checkOut:ok"}, "total": {"type": "number"}, "extra": {"type": "object"},
    "open": {"type": "object", "additionalProperties": true, "properties": {"a": {"type": "string"}}}}
}`

func generate(t *testing.T, fns ...clientgen.Function) map[string]string {
	t.Helper()
	files, err := clientgen.Generate(fns)
	require.NoError(t, err)
	m := map[string]string{}
	for k, v := range files {
		m[k] = string(v)
	}
	return m
}

func TestTypeScriptMapping(t *testing.T) {
	files := generate(t, clientgen.Function{Name: "shop-checkout", API: "shop.cart.checkOut", Input: []byte(in), Output: []byte(out)})
	ts := files[clientgen.NodeTypes]
	require.Equal(t, ts, files[clientgen.NodeTypesESM], "one set of declarations for require and import")
	for _, want := range []string{
		`export type FunctionName = "shop-checkout";`,
		"/** The input. */\nexport interface CheckOutInput {",
		"  /** Who. */\n  name: string;",
		"  count?: number;",
		"  ratio?: CheckOutInputDecimal;",
		"  flag?: boolean;",
		`  mode?: "a" | "b";`,
		"  note?: string | null;",
		"  tags?: Record<string, string>;",
		"  any?: string | number;",
		"  items: {\n    id: string;\n    /** Exact digits. */\n    size?: CheckOutInputDecimal;\n  }[];",
		"/** Exact digits. */\nexport type CheckOutInputDecimal = number;",
		"  errCode: 0;",
		`  errMsg: "shop.cart.checkOut:ok";`,
		"  extra?: Record<string, unknown>;",
		"  open?: {\n    a?: string;\n    [field: string]: unknown;\n  };",
		"export interface Client {\n  shop: {\n    cart: {",
		"checkOut(input: CheckOutInput, options?: ChargeOptions): Promise<CheckOutOutput>;",
	} {
		require.Contains(t, ts, want)
	}
	require.Equal(t, 1, strings.Count(ts, "export type CheckOutInputDecimal"), "a $def is declared once")
	require.Contains(t, files[clientgen.NodeAPI], `{ api: "shop.cart.checkOut", function: "shop-checkout", takesIdempotencyKey: true }`,
		"a function whose input takes idempotencyKey is the kind never retried on transport failures")
	require.NotContains(t, files[clientgen.NodeAPI], "idempotent:", "the flag is named for what it says (it read as \"safe to repeat\", backwards)")
	require.Contains(t, files[clientgen.NodeAPI], `"shop-checkout": {"type":"object","required":["errCode","errMsg","total"],"properties":{"errCode":{"type":"integer"},"errMsg":{"type":"string"},"total":{"type":"number"},"extra":{"type":"object"},"open":{"type":"object","properties":{"a":{"type":"string"}}}}},`,
		"the Node client checks a success answer against the same shape as the Go client")
}

func TestGoMapping(t *testing.T) {
	src := generate(t, clientgen.Function{Name: "shop-checkout", API: "shop.cart.checkOut", Input: []byte(in), Output: []byte(out)})[clientgen.GoAPI]
	for _, want := range []string{
		"Name string `json:\"name\"`",
		"Count *int64 `json:\"count,omitempty\"`",
		"Ratio *json.Number `json:\"ratio,omitempty\"`",
		"Flag bool `json:\"flag,omitempty\"`",
		"Mode string `json:\"mode,omitempty\"`",
		"Note *string `json:\"note,omitempty\"`",
		"Label *string `json:\"label,omitempty\"`", // "" is a value the vendor gets: a pointer says "" or absent
		"Tags map[string]string `json:\"tags,omitempty\"`",
		"Any json.RawMessage `json:\"any,omitempty\"`",
		"Items []CheckOutInputItemsItem `json:\"items\"`",
		"type CheckOutInputItemsItem struct {",
		"Size *json.Number `json:\"size,omitempty\"`",
		"IdempotencyKey string `json:\"idempotencyKey,omitempty\"`",
		"Total json.Number `json:\"total\"`",
		"Extra map[string]any `json:\"extra,omitempty\"`",
		"func (a ShopCartAPI) CheckOut(ctx context.Context, in CheckOutInput, opts ...CallOption) (*CheckOutOutput, error) {",
		// The success answer's shape, checked before decoding: required and types.
		`{API: "shop.cart.checkOut", Name: "shop-checkout", TakesIdempotencyKey: true, Output: &shape{Type: "object", Required: []string{"errCode", "errMsg", "total"}, ` +
			`Props: []prop{{"errCode", &shape{Type: "integer"}}, {"errMsg", &shape{Type: "string"}}, {"total", &shape{Type: "number"}}, {"extra", &shape{Type: "object"}}, {"open", &shape{Type: "object", Props: []prop{{"a", &shape{Type: "string"}}}}}}}},`,
		"Shop: ShopAPI{c: c, Cart: ShopCartAPI{c: c}},",
	} {
		require.Contains(t, strings.Join(strings.Fields(src), " "), strings.Join(strings.Fields(want), " "))
	}
}

func TestGenerateRefuses(t *testing.T) {
	good := clientgen.Function{Name: "a-b", API: "x.y.doIt", Input: []byte(`{"type":"object"}`), Output: []byte(`{"type":"object"}`)}
	for name, tc := range map[string]struct {
		fns  []clientgen.Function
		want string
	}{
		"foreign $ref": {[]clientgen.Function{{Name: "a", API: "x.y", Input: []byte(`{"type":"object","properties":{"p":{"$ref":"other.json#/x"}}}`), Output: good.Output}}, "unsupported $ref"},
		"not JSON":     {[]clientgen.Function{{Name: "a", API: "x.y", Input: []byte(`{`), Output: good.Output}}, "a input schema"},
		"flat api":     {[]clientgen.Function{{Name: "a", API: "noDots", Input: good.Input, Output: good.Output}}, "not a dotted method path"},
		"same method":  {[]clientgen.Function{good, {Name: "c-d", API: "z.doIt", Input: good.Input, Output: good.Output}}, "would both name their types DoIt"},
		"nested under a method": {[]clientgen.Function{good, {Name: "c-d", API: "x.y.doIt.more", Input: good.Input, Output: good.Output}},
			"nests under the method x.y.doIt"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := clientgen.Generate(tc.fns)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
