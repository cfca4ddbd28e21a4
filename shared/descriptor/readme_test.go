package descriptor_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/registry"
)

var backticked = regexp.MustCompile("`([^`]+)`")

// configRows reads every Markdown table of README.md and docs/*.md whose
// first header cell is "variable" and returns the names its rows document in
// their first cell, with the file each came from (`A_URL` / `_SECRET`
// documents A_URL and A_SECRET; `P_*` every registry variable starting with
// P_), and the variable names its other cells mention.
func configRows(t *testing.T) (rows map[string]string, mentioned map[string]bool) {
	files := []string{filepath.Join(root(t), "README.md")}
	more, err := filepath.Glob(filepath.Join(root(t), "docs", "*.md"))
	require.NoError(t, err)
	files = append(files, more...)
	out := map[string]string{}
	mentioned = map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		inTable := false
		for _, l := range strings.Split(string(raw), "\n") {
			if !strings.HasPrefix(l, "|") {
				inTable = false
				continue
			}
			cells := strings.Split(strings.Trim(l, "| "), "|")
			first := strings.ToLower(strings.TrimSpace(cells[0]))
			if !inTable {
				inTable = first == "variable"
				continue
			}
			if strings.HasPrefix(first, "---") {
				continue
			}
			prev := ""
			for _, m := range backticked.FindAllStringSubmatch(cells[0], -1) {
				name := m[1]
				if strings.HasPrefix(name, "_") && prev != "" {
					name = prev[:strings.LastIndex(prev, "_")] + name
				}
				out[name] = filepath.Base(f)
				prev = name
			}
			for _, c := range cells[1:] {
				for _, m := range backticked.FindAllStringSubmatch(c, -1) {
					mentioned[m[1]] = true
				}
			}
		}
	}
	return out, mentioned
}

// TestEveryDocumentedVariableIsWhereItShouldBe: each variable a
// configuration table documents is set by both descriptors for every
// function that reads it, or is a deploy-time variable of s.yaml / s.vpc.yaml;
// and every variable of the registry is documented in such a table.
func TestEveryDocumentedVariableIsWhereItShouldBe(t *testing.T) {
	rows, mentioned := configRows(t)
	require.Greater(t, len(rows), 20, "the configuration tables were found")
	fcEnv, samEnv := descriptorEnv(t)
	readers := map[string][]string{}
	for _, f := range registry.All() {
		for _, v := range f.Env {
			readers[v.Name] = append(readers[v.Name], f.Name)
		}
	}
	onFC, onAWS := map[string]bool{}, map[string]bool{}
	for _, f := range registry.All() {
		for _, v := range f.Env {
			onFC[v.Name], onAWS[v.Name] = v.ReadOn(registry.FC), v.ReadOn(registry.AWS)
		}
	}
	deployTime := string(readRoot(t, "s.yaml")) + string(readRoot(t, "s.vpc.yaml"))
	platform := map[string]bool{}
	for _, v := range registry.PlatformVars() {
		platform[v.Name] = true
	}
	for name, file := range rows {
		if prefix, ok := strings.CutSuffix(name, "*"); ok {
			n := 0
			for v := range readers {
				if strings.HasPrefix(v, prefix) {
					n++
				}
			}
			require.Positive(t, n, "%s documents %s but the registry has no such variable", file, name)
			continue
		}
		if platform[name] {
			continue // set by the platform or cloudcall local (registry.PlatformVars)
		}
		fns, ok := readers[name]
		if !ok {
			require.Contains(t, deployTime, "${env('"+name+"'", "%s documents %s: it is neither a function variable (shared/registry) nor a deploy-time variable of s.yaml / s.vpc.yaml", file, name)
			require.Nil(t, samEnv[name])
			continue
		}
		for _, fn := range fns {
			if onFC[name] {
				require.Contains(t, fcEnv[fn], name, "s.yaml: %s does not set %s (documented in %s)", fn, name, file)
			}
			if onAWS[name] {
				require.Contains(t, samEnv[fn], name, "template.yaml: %s does not set %s (documented in %s)", fn, name, file)
			}
		}
	}
	for v := range readers {
		_, documented := rows[v]
		documented = documented || mentioned[v]
		for name := range rows {
			if p, ok := strings.CutSuffix(name, "*"); ok && strings.HasPrefix(v, p) {
				documented = true
			}
		}
		require.True(t, documented, "%s is deployable but no configuration table documents it", v)
	}
}
