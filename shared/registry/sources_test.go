package registry

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// copySources writes the compiled-in registry sources to a temp dir, as the
// checkout's shared/registry would be had nobody edited it since the build.
func copySources(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, fs.WalkDir(Sources, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := Sources.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	}))
	return dir
}

// A CLI built before a registry edit generated from its old registry and
// printed "s.yaml is up to date" (an outside tester): SourceDrift names every
// file of the checkout that differs from the compiled-in one, added or removed
// files included; test files do not count.
func TestSourceDriftNamesEveryChangedFile(t *testing.T) {
	cases := []struct {
		name string
		edit func(t *testing.T, dir string)
		want []string
	}{
		{"unchanged", func(*testing.T, string) {}, nil},
		{"a test file changed", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "new_test.go"), []byte("package registry\n"), 0o644))
		}, nil},
		{"a source edited", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "registry.go"), []byte("package registry\n"), 0o644))
		}, []string{"registry.go (changed)"}},
		{"a schema added", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "schemas", "logistics-get-all-delivery.input.json"), []byte("{}"), 0o644))
		}, []string{"schemas/logistics-get-all-delivery.input.json (added)"}},
		{"a schema removed", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "schemas", "quota-alert.input.json")))
		}, []string{"schemas/quota-alert.input.json (removed)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copySources(t)
			tc.edit(t, dir)
			got, err := SourceDrift(Sources, dir)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}
