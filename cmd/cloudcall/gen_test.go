package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/registry"
)

// genTree is a module like the checkout as far as gen reads it: go.mod, the
// registry's sources as compiled into this test binary, the clients' folders
// and docs/vendors.md with every input table emptied (its markers kept). It
// returns the checkout's vendors.md, which gen should reproduce.
func genTree(t *testing.T) (dir, vendors string) {
	t.Helper()
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(root, "docs", "vendors.md"))
	require.NoError(t, err)
	dir = t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module github.com/cloudcall/cloudcall\n"), 0o644))
	for _, d := range []string{"docs", "clients/node", "clients/go/cloudcall"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.FromSlash(d)), 0o755))
	}
	emptied := regexp.MustCompile(`(?s)(<!-- input:[a-z0-9-]+ -->\n).*?(<!-- /input:)`).ReplaceAllString(string(b), "$1$2")
	require.NotEqual(t, string(b), emptied)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docs", "vendors.md"), []byte(emptied), 0o644))
	reg := filepath.Join(dir, "shared", "registry")
	require.NoError(t, fs.WalkDir(registry.Sources, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(reg, filepath.FromSlash(p)), 0o755)
		}
		b, err := registry.Sources.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(reg, filepath.FromSlash(p)), b, 0o644)
	}))
	return dir, string(b)
}

// openapi.json and docs/vendors.md's input tables took steps of their own
// (`cloudcall openapi --write`, a go test -update) that gen --check did not
// check (an outside tester, adding a function): gen writes them with the
// rest, and --check names each stale one with the fix.
func TestGenWritesAndChecksEveryGeneratedFile(t *testing.T) {
	dir, vendors := genTree(t)
	t.Chdir(dir)
	code, _, stderr := runCLI("gen", "--check")
	require.Equal(t, 1, code)
	for _, name := range []string{"openapi.json", "docs/vendors.md", "s.yaml", "s.vpc.yaml", "template.yaml", "clients/go/cloudcall/api_gen.go"} {
		require.Contains(t, stderr, name+" differs from the registry: run `make gen` and commit it\n")
	}
	_, err := os.Stat("openapi.json")
	require.ErrorIs(t, err, fs.ErrNotExist, "--check writes nothing")

	code, stdout, stderr := runCLI("gen")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "wrote openapi.json\n")
	require.Contains(t, stdout, "wrote docs/vendors.md\n")
	b, err := os.ReadFile(filepath.Join("docs", "vendors.md"))
	require.NoError(t, err)
	require.Equal(t, vendors, string(b), "the tables as the checkout has them")

	code, stdout, stderr = runCLI("gen", "--check")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "openapi.json is up to date\n")
	require.Contains(t, stdout, "docs/vendors.md is up to date\n")
}

// A function with no markers in docs/vendors.md: gen says which lines to
// add and where, not only "has no input table".
func TestGenNamesTheMissingTableMarkers(t *testing.T) {
	dir, _ := genTree(t)
	path := filepath.Join(dir, "docs", "vendors.md")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	without := regexp.MustCompile(`<!-- /?input:quota-alert -->\n`).ReplaceAllString(string(b), "")
	require.NoError(t, os.WriteFile(path, []byte(without), 0o644))
	t.Chdir(dir)
	for _, args := range [][]string{{"gen"}, {"gen", "--check"}} {
		code, _, stderr := runCLI(args...)
		require.Equal(t, 1, code, args)
		require.Contains(t, stderr, "docs/vendors.md has no input table for quota-alert: add the two lines <!-- input:quota-alert --> and <!-- /input:quota-alert --> (nothing between them) to its section", args)
	}
}

// A CLI built before a registry edit generated from its own, older registry
// and printed "s.yaml is up to date" (an outside tester): gen, gen --check
// and openapi --write refuse, naming what changed and how to rebuild.
func TestGenRefusesARegistryNewerThanTheBinary(t *testing.T) {
	cases := []struct {
		name string
		edit func(t *testing.T, reg string)
		file string
	}{
		{"a source edited", func(t *testing.T, reg string) {
			f := filepath.Join(reg, "registry.go")
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(f, append(b, "\n// edited\n"...), 0o644))
		}, "registry.go (changed)"},
		{"a schema added", func(t *testing.T, reg string) {
			require.NoError(t, os.WriteFile(filepath.Join(reg, "schemas", "logistics-get-all-delivery.input.json"), []byte("{}"), 0o644))
		}, "schemas/logistics-get-all-delivery.input.json (added)"},
		{"a schema removed", func(t *testing.T, reg string) {
			require.NoError(t, os.Remove(filepath.Join(reg, "schemas", "quota-alert.output.json")))
		}, "schemas/quota-alert.output.json (removed)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := genTree(t)
			tc.edit(t, filepath.Join(dir, "shared", "registry"))
			t.Chdir(dir)
			for _, args := range [][]string{{"gen"}, {"gen", "--check"}, {"openapi", "--write"}} {
				code, stdout, stderr := runCLI(args...)
				require.Equal(t, 1, code, args)
				require.NotContains(t, stdout, "up to date", args)
				require.Contains(t, stderr, "this cloudcall binary was built from another shared/registry than the checkout's ("+tc.file+"): rebuild it (`make cli`) or run `make gen` (go run builds the current one)", args)
			}
			// Printed, the document still comes, with the warning.
			code, stdout, stderr := runCLI("openapi")
			require.Equal(t, 0, code)
			require.Contains(t, stdout, `"openapi": "3.1`)
			require.Contains(t, stderr, "WARNING: this cloudcall binary was built from another shared/registry than the checkout's ("+tc.file+")")
			_, err := os.Stat(filepath.Join(dir, "openapi.json"))
			require.ErrorIs(t, err, fs.ErrNotExist, "nothing written")
			_, err = os.Stat(filepath.Join(dir, "s.yaml"))
			require.ErrorIs(t, err, fs.ErrNotExist, "nothing written")
		})
	}
}
