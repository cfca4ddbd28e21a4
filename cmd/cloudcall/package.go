package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/descriptor"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/idempotency/recordstore"
	"github.com/cloudcall/cloudcall/shared/pack"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/suggest"
)

func runPackage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("package", args, stdout, stderr)
	platform := fs.String("platform", "all", "fc, aws or all")
	function := fs.String("function", "", "one function (default: every function)")
	logicalID := fs.String("logical-id", "", "one function by its SAM logical `id` (what sam build passes)")
	arch := fs.String("arch", "", "aws only: x86_64 or arm64 (default: both)")
	dist := fs.String("dist", "dist", "output folder")
	records := fs.String("records", "auto", "the charge's records clients: redis (leave the PostgreSQL and MySQL clients out), all, or auto: redis when "+recordstore.VarStore+" (else CLOUDCALL_STORE) here is a redis:// URL, else all")
	bootstrapTo := fs.String("bootstrap-to", "", "aws only: write the bare bootstrap executable into this folder (sam build's ARTIFACTS_DIR) instead of a zip")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: cloudcall package [--platform fc|aws|all] [--function NAME] [--arch x86_64|arm64]\n\nBuilds linux binaries (CGO off, -trimpath, stripped, -tags lambda.norpc) and reproducible zips:\ndist/fc/<function>.zip (main) and dist/aws/<function>-<arch>.zip (bootstrap).\n\nThe charge (top-launch-extra-charge) links only the client of its records store when the environment names a\nRedis one (--records auto, the default): PostgreSQL's and MySQL's clients are a quarter of its cold start.\nThe same source and the same --records choice give the same bytes.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// Each flag is checked on its own, so a mistake is named, not met with
	// "nothing to package" (or, for --arch, by packaging less in silence).
	var ids []string
	for _, f := range registry.All() {
		ids = append(ids, descriptor.LogicalID(f.Name))
	}
	switch {
	case *platform != "fc" && *platform != "aws" && *platform != "all":
		return usagef("--platform %q: expected fc, aws or all", *platform)
	case *arch == "amd64" || *arch == "x86-64":
		return usagef("--arch %q: Lambda calls it x86_64; expected x86_64 or arm64", *arch)
	case *arch != "" && *arch != "x86_64" && *arch != "arm64":
		return usagef("--arch %q: expected x86_64 or arm64 (Lambda's names)", *arch)
	case *arch != "" && *platform == "fc":
		return usagef("--arch is for --platform aws: FC's go1 runtime is x86_64 only")
	case *records != "auto" && *records != "redis" && *records != "all":
		return usagef("--records %q: expected auto, redis or all", *records)
	case *function != "" && *logicalID != "" && descriptor.LogicalID(*function) != *logicalID:
		return usagef("--function %q and --logical-id %q name different functions; give one", *function, *logicalID)
	case *logicalID != "" && !slices.Contains(ids, *logicalID):
		return usagef("unknown --logical-id %q%s; known ids: %s", *logicalID, suggest.Hint(*logicalID, ids), strings.Join(ids, ", "))
	}
	if err := noArgs(fs, stderr); err != nil {
		return err
	}
	root, err := emulator.ModuleRoot(".")
	if err != nil {
		return err
	}
	if !filepath.IsAbs(*dist) {
		*dist = filepath.Join(root, *dist)
	}
	tags, note := recordsTags(*records, config.FromOS())
	var targets []pack.Target
	for _, f := range registry.All() {
		if (*function != "" && f.Name != *function) || (*logicalID != "" && descriptor.LogicalID(f.Name) != *logicalID) {
			continue
		}
		if *platform == "fc" || *platform == "all" {
			targets = append(targets, pack.Target{Function: f.Name, Platform: "fc", Arch: "amd64", Tags: tags})
		}
		if *platform == "aws" || *platform == "all" {
			for _, a := range []string{"x86_64", "arm64"} {
				if *arch == "" || *arch == a {
					goarch := "amd64"
					if a == "arm64" {
						goarch = "arm64"
					}
					targets = append(targets, pack.Target{Function: f.Name, Platform: "aws", Arch: goarch, Tags: tags})
				}
			}
		}
	}
	if len(targets) == 0 {
		if *function != "" {
			return usagef("unknown function %q%s; known functions: %s", *function, suggest.Hint(*function, registry.Names()), strings.Join(registry.Names(), ", "))
		}
		return usagef("nothing to package: check --platform (fc, aws or all), --function (%s) or --logical-id", strings.Join(registry.Names(), ", "))
	}
	if note != "" && slices.ContainsFunc(targets, func(t pack.Target) bool { f, _ := registry.Lookup(t.Function); return f.MovesMoney }) {
		fmt.Fprintln(stdout, note)
	}
	if *bootstrapTo != "" {
		if len(targets) != 1 || targets[0].Platform != "aws" {
			return usagef("--bootstrap-to takes exactly one aws target: give --platform aws, --function or --logical-id, and --arch")
		}
		return pack.Build(ctx, root, targets[0], filepath.Join(*bootstrapTo, "bootstrap"))
	}
	gover, err := pack.GoVersion(ctx, root)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, t := range targets {
		if !seen[t.Arch] {
			// It sat silent for minutes at the first arm64 build.
			seen[t.Arch] = true
			fmt.Fprintf(stdout, "building for linux/%s with %s (the first build for it compiles every dependency: a few minutes)\n", t.Arch, gover)
		}
		start := time.Now()
		path, sum, size, err := pack.Package(ctx, root, *dist, t)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = path // outside the checkout: the full path reads better
		}
		// The zip is what gets uploaded and what the platforms' size limits
		// count; the executable inside is larger.
		zi, err := os.Stat(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "[%d/%d] %-42s zip %5.1f MiB (executable %5.1f MiB)  sha256 %s…  %s\n", i+1, len(targets), rel,
			float64(zi.Size())/(1<<20), float64(size)/(1<<20), sum[:12], time.Since(start).Round(10*time.Millisecond))
	}
	return nil
}

// recordsTags is the build tags --records asks for, and a line saying what
// the charge links and why.
func recordsTags(records string, env *config.Env) ([]string, string) {
	sql, why := true, "--records all"
	switch records {
	case "redis":
		sql, why = false, "--records redis"
	case "auto":
		sql, why = recordstore.Packaging(env)
	}
	if sql {
		return nil, "records: the charge links the Redis, PostgreSQL and MySQL clients (" + why + ")"
	}
	return []string{recordstore.NoSQLTag}, "records: the charge links the Redis client only (" + why + "); it refuses a postgres:// or mysql:// store until packaged again with --records all"
}
