package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/cloudcall/cloudcall/shared/registry"
)

// Size is one function's stripped binary sizes in bytes.
type Size struct {
	Function   string
	FC, Lambda int64
}

// floorName is the hello-world function's name in every table.
const floorName = "hello (floor)"

const helloPkg = "./shared/bench/testdata/hello"

// callFloorName is the first-response floor: hello plus one bare POST to the
// function's vendor endpoint (shared/bench/testdata/hellocall).
const callFloorName = "hello + one POST (floor)"

const callFloorPkg = "./shared/bench/testdata/hellocall"

// recordsFloorName is the charge's records floor: the vendor-call floor plus
// the store round trips that make a charge at most once, with go-redis
// (shared/bench/testdata/hellorecords).
const recordsFloorName = "hello + store writes + one POST (records floor)"

const recordsFloorPkg = "./shared/bench/testdata/hellorecords"

// helloLambda keys the Lambda build of the hello floor in the binaries map:
// both emulators run it in the RIE comparison.
const helloLambda = "hello (Lambda build)"

// buildAll compiles each function twice, stripped (-s -w -trimpath,
// linux/amd64, no cgo): the plain build and the -tags lambda.norpc build.
// The lambda.norpc binaries are what make build and cloudcall package ship
// for both platforms, so they are the ones that run under the emulator.
//
// The charge is built as cloudcall package builds it for the benchmark's
// Redis records store (noSQLTag: no SQL clients), and once more
// with every records client, as packaged for a SQL store (allClients).
func buildAll(ctx context.Context, moduleDir, dir string, fns []string) (map[string]string, []Size, error) {
	bins := map[string]string{}
	var sizes []Size
	var names []string
	for _, fn := range append([]string{floorName}, fns...) {
		names = append(names, fn)
		if f, ok := registry.Lookup(fn); ok && f.MovesMoney {
			names = append(names, fn+allClients)
		}
	}
	for _, fn := range names {
		pkg := "./functions/" + strings.TrimSuffix(fn, allClients)
		if fn == floorName {
			pkg = helloPkg
		}
		var extra []string
		if f, ok := registry.Lookup(fn); ok && f.MovesMoney {
			extra = []string{noSQLTag}
		}
		s := Size{Function: fn}
		for _, platform := range []string{"fc", "lambda"} {
			out := binPath(dir, filepathSafe(fn), platform)
			tags := extra
			if platform == "lambda" {
				tags = append([]string{"lambda.norpc"}, extra...)
			}
			if err := build(ctx, moduleDir, pkg, out, tagsFlag(tags)); err != nil {
				return nil, nil, err
			}
			st, err := os.Stat(out)
			if err != nil {
				return nil, nil, err
			}
			if platform == "fc" {
				s.FC = st.Size()
			} else {
				// What ships for both platforms (make build, cloudcall
				// package) is the lambda.norpc build: that is what runs.
				s.Lambda = st.Size()
				bins[fn] = out
			}
		}
		sizes = append(sizes, s)
	}
	bins[helloLambda] = binPath(dir, "hello", "lambda")
	out := binPath(dir, "hellocall", "lambda")
	if err := build(ctx, moduleDir, callFloorPkg, out, []string{"-tags", "lambda.norpc"}); err != nil {
		return nil, nil, err
	}
	bins[callFloorName] = out
	out = binPath(dir, "hellorecords", "lambda")
	if err := build(ctx, moduleDir, recordsFloorPkg, out, []string{"-tags", "lambda.norpc"}); err != nil {
		return nil, nil, err
	}
	bins[recordsFloorName] = out
	return bins, sizes, nil
}

func filepathSafe(name string) string {
	if name == floorName {
		return "hello"
	}
	if base, ok := strings.CutSuffix(name, allClients); ok {
		return base + "-allclients"
	}
	return name
}

// noSQLTag is recordstore.NoSQLTag (a test holds them equal), not imported:
// the peers module builds this package and would need the SQL clients' sums.
const noSQLTag = "cloudcall_nosql"

// allClients names the build of a money function with every records
// client linked: what cloudcall package builds for a SQL records store.
const allClients = " (all records clients)"

func tagsFlag(tags []string) []string {
	if len(tags) == 0 {
		return nil
	}
	return []string{"-tags", strings.Join(tags, ",")}
}

func build(ctx context.Context, moduleDir, pkg, out string, tags []string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	args := append([]string{"build", "-trimpath", "-ldflags", "-s -w"}, tags...)
	args = append(args, "-o", linkerOutput(out), pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOWORK=off") // as emulator.Build
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return install(linkerOutput(out), out)
}

// linkerOutput is where the linker wrote the binary installed at path.
func linkerOutput(path string) string { return path + ".linked" }

// install writes the binary the way a deployment unpacks it: one write of
// the whole file. How a file was written decides how the kernel caches it
// (the linker writes through a shared mapping, which leaves 4 KiB pages; a
// sequential write leaves large folios), and that changed the start of one
// and the same binary by 0.1–0.4× of a hello start on this machine, more
// than most of what the cold-start figures compare. The cold starts exec a
// fresh copy of the installed file per start (coldOnceUnpacked); the report
// also gives the ratios for the files as the linker left them.
func install(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}
