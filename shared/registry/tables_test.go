package registry

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite docs/vendors.md's input tables from the schemas")

// The input tables of docs/vendors.md (linked from the README) are generated from the schemas: each function's
// table sits between <!-- input:NAME --> and <!-- /input:NAME --> and must be
// what InputTable renders (`make gen` rewrites them; so does -update here).
func TestReadmeTablesMatchTheSchemas(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "vendors.md")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	want, err := RewriteInputTables(string(b))
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
		return
	}
	require.Equal(t, want, string(b), "docs/vendors.md's input tables drifted from the schemas: run `make gen`")
}

// A new function without markers was refused with only "has no input table"
// (an outside tester): the error names the markers and where they go.
func TestRewriteInputTablesSaysWhichMarkersToAdd(t *testing.T) {
	doc := "# The functions\n\n## WeChat (logistics-get-quota)\n\n<!-- input:logistics-get-quota -->\nold\n<!-- /input:logistics-get-quota -->\n"
	_, err := RewriteInputTables(doc)
	require.Error(t, err)
	for _, f := range All() {
		if f.Name == "logistics-get-quota" {
			require.NotContains(t, err.Error(), "<!-- input:logistics-get-quota -->")
			continue
		}
		require.Contains(t, err.Error(), "docs/vendors.md has no input table for "+f.Name+": add the two lines <!-- input:"+f.Name+" --> and <!-- /input:"+f.Name+" --> (nothing between them) to its section")
	}
	// With the markers added, the tables are filled in between them.
	got, err := RewriteInputTables(doc + "\n" + markersFor(t, "logistics-get-quota"))
	require.NoError(t, err)
	require.NotContains(t, got, "\nold\n")
	table, err := InputTable("quota-alert")
	require.NoError(t, err)
	require.Contains(t, got, "<!-- input:quota-alert -->\n"+table+"<!-- /input:quota-alert -->")
}

// markersFor is an empty pair of markers for every function but except.
func markersFor(t *testing.T, except ...string) string {
	t.Helper()
	var s string
	for _, f := range All() {
		skip := false
		for _, n := range except {
			skip = skip || n == f.Name
		}
		if !skip {
			s += "<!-- input:" + f.Name + " -->\n<!-- /input:" + f.Name + " -->\n"
		}
	}
	return s
}

func TestInputTableRows(t *testing.T) {
	table, err := InputTable("ck1-pricing-inbound-box")
	require.NoError(t, err)
	require.Contains(t, table, "| `warehouseId` | string | yes | at most 10 characters; matches `^[a-zA-Z0-9\\-_]*$` |")
	require.Contains(t, table, "| `boxes[].weight` | integer | yes | 1 to 2147483647 |")
	require.Contains(t, table, "| `boxes[].length` | number | yes | -999999.99 to 999999.99; a multiple of 0.01 |")
	require.Contains(t, table, "| `boxes[].quantity` | integer | yes | any integer (no documented limit; within ±10^400, as every number) |")
	table, err = InputTable("top-launch-extra-charge")
	require.NoError(t, err)
	require.Contains(t, table, "policy `TOP_MAX_PRICE_FEN`, `TOP_MIN_PRICE_FEN`")
	table, err = InputTable("quota-alert")
	require.NoError(t, err)
	require.Contains(t, table, "| (none) |")
}
