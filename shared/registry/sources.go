package registry

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Sources is this package's source files and schemas as they were when the
// binary was built. Only the CLI reads it, to refuse generating from a
// registry older than the checkout's; the linker leaves it out of the
// functions, which never reference it.
//
//go:embed *.go schemas/*.json
var Sources embed.FS

// SourceDrift compares compiled (Sources) with the registry's files in dir
// (the checkout's shared/registry) and names each source or schema that
// changed, was added or was removed since the build, sorted. Test files do
// not count: they drive nothing that is generated.
func SourceDrift(compiled fs.FS, dir string) ([]string, error) {
	built, err := registryFiles(compiled)
	if err != nil {
		return nil, fmt.Errorf("the compiled-in registry: %w", err)
	}
	disk, err := registryFiles(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	var drift []string
	for name, b := range disk {
		have, ok := built[name]
		switch {
		case !ok:
			drift = append(drift, name+" (added)")
		case !bytes.Equal(have, b):
			drift = append(drift, name+" (changed)")
		}
	}
	for name := range built {
		if _, ok := disk[name]; !ok {
			drift = append(drift, name+" (removed)")
		}
	}
	sort.Strings(drift)
	return drift, nil
}

// registryFiles reads what the embed pattern covers: *.go but tests, and
// schemas/*.json.
func registryFiles(fsys fs.FS) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, pattern := range []string{"*.go", "schemas/*.json"} {
		names, err := fs.Glob(fsys, pattern)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if strings.HasSuffix(name, "_test.go") || strings.HasPrefix(path.Base(name), ".") {
				continue
			}
			b, err := fs.ReadFile(fsys, name)
			if err != nil {
				return nil, err
			}
			out[filepath.ToSlash(name)] = b
		}
	}
	return out, nil
}
