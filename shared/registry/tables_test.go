package registry

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite docs/vendors.md's input tables from the schemas")

// The input tables of docs/vendors.md (linked from the README) are generated from the schemas: each function's
// table sits between <!-- input:NAME --> and <!-- /input:NAME --> and must be
// what InputTable renders (go test ./shared/registry -run ReadmeTables -update
// rewrites them).
func TestReadmeTablesMatchTheSchemas(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "vendors.md")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	readme := string(b)
	for _, f := range All() {
		table, err := InputTable(f.Name)
		require.NoError(t, err)
		re := regexp.MustCompile(fmt.Sprintf(`(?s)<!-- input:%s -->\n(.*?)<!-- /input:%s -->`, regexp.QuoteMeta(f.Name), regexp.QuoteMeta(f.Name)))
		m := re.FindStringSubmatch(readme)
		require.NotNil(t, m, "docs/vendors.md has no input table for %s", f.Name)
		if *update {
			readme = re.ReplaceAllLiteralString(readme, "<!-- input:"+f.Name+" -->\n"+table+"<!-- /input:"+f.Name+" -->")
			continue
		}
		require.Equal(t, table, m[1], "docs/vendors.md's input table of %s drifted from its schema: go test ./shared/registry -run ReadmeTables -update", f.Name)
	}
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(readme), 0o644))
	}
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
