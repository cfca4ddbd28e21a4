package metrics_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/metrics"
)

// table returns the rows of the Markdown table whose header starts with head.
func table(t *testing.T, doc, head string) [][]string {
	var rows [][]string
	in := false
	for _, l := range strings.Split(doc, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, head):
			in = true
		case in && strings.HasPrefix(l, "| ---"):
		case in && strings.HasPrefix(l, "|"):
			var cells []string
			for _, c := range strings.Split(strings.Trim(l, "|"), "|") {
				cells = append(cells, strings.TrimSpace(c))
			}
			rows = append(rows, cells)
		case in:
			return rows
		}
	}
	require.NotEmpty(t, rows, "table %q not found", head)
	return rows
}

var tick = regexp.MustCompile("`([^`]+)`")

// docs/operate.md's errClass and metric tables say what the code does.
func TestOperateDocMatchesTheCode(t *testing.T) {
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(root, "docs", "operate.md"))
	require.NoError(t, err)
	doc := string(raw)

	codes := 0
	for _, row := range table(t, doc, "| errClass | errCode |") {
		class := strings.Trim(row[0], "`")
		fault := row[2] == "yes"
		require.Equal(t, fault, metrics.Fault(class), class)
		for _, m := range tick.FindAllStringSubmatch(row[1], -1) {
			code, err := strconv.Atoi(m[1])
			require.NoError(t, err, row[1])
			require.Equal(t, class, metrics.Class(code), "docs say %d is %s", code, class)
			codes++
		}
		if strings.Contains(row[1], "WeChat") {
			require.Equal(t, class, metrics.Class(9300531))
		}
	}
	require.Equal(t, 15, codes, "every code of the README's table, once")

	var buf bytes.Buffer
	e, err := metrics.NewEMF("", &buf)
	require.NoError(t, err)
	require.NoError(t, e.Write(metrics.Invocation{Function: "f"}))
	var rec struct {
		AWS struct {
			CloudWatchMetrics []struct {
				Metrics []struct{ Name, Unit string }
			}
		} `json:"_aws"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
	var want, have [][2]string
	for _, m := range rec.AWS.CloudWatchMetrics[0].Metrics {
		want = append(want, [2]string{m.Name, m.Unit})
	}
	for _, row := range table(t, doc, "| metric | unit |") {
		have = append(have, [2]string{strings.Trim(row[0], "`"), row[1]})
	}
	require.Equal(t, want, have)
}

// Every bundle error code the documentation lists has a class of its own
// (only -1999 is "internal"), so a new code cannot hide among the bugs.
func TestEveryDocumentedCodeHasAClass(t *testing.T) {
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	require.NoError(t, err)
	seen := 0
	for _, f := range append([]string{filepath.Join(root, "README.md")}, files...) {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		if !strings.Contains(string(raw), "| errCode | HTTP |") {
			continue
		}
		for _, row := range table(t, string(raw), "| errCode | HTTP |") {
			m := tick.FindStringSubmatch(row[0])
			if m == nil {
				continue // "WeChat errcode"
			}
			code, err := strconv.Atoi(m[1])
			require.NoError(t, err)
			seen++
			if code == -1999 {
				require.Equal(t, metrics.ClassInternal, metrics.Class(code))
				continue
			}
			require.NotEqual(t, metrics.ClassInternal, metrics.Class(code), "%s documents %d: give it a class in shared/metrics", filepath.Base(f), code)
		}
	}
	require.GreaterOrEqual(t, seen, 15, "the error-code table was found")
}
