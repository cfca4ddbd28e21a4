package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cloudcall/cloudcall/shared/clientgen"
	"github.com/cloudcall/cloudcall/shared/descriptor"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/openapi"
	"github.com/cloudcall/cloudcall/shared/registry"
)

// vendorsDoc is the one generated file gen does not write whole: it fills in
// the input tables between their markers.
const vendorsDoc = "docs/vendors.md"

func runGen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gen", args, stdout, stderr)
	check := fs.Bool("check", false, "do not write: fail naming each generated file that differs from the registry")
	awsIAM := fs.Bool("aws-iam", false, "template.yaml: protect every HttpApi route with AWS_IAM (SigV4 callers) instead of the bundle's caller signatures")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: cloudcall gen [--check] [--aws-iam]\n\nWrites everything shared/registry and its schemas drive: s.yaml (Serverless Devs, FC 3.0),\ns.vpc.yaml (the same in a VPC: s deploy -t s.vpc.yaml), template.yaml (AWS SAM), openapi.json,\nthe input tables of docs/vendors.md (between <!-- input:NAME --> and <!-- /input:NAME -->)\nand the clients' generated files (clients/node/api.cjs, index.d.ts, index.d.mts;\nclients/go/cloudcall/api_gen.go). --check writes nothing and fails naming each stale file.\nA binary built before the registry was edited refuses: rebuild it (make cli) or use make gen.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, stderr); err != nil {
		return err
	}
	root, err := emulator.ModuleRoot(".")
	if err != nil {
		return err
	}
	if err := registryCurrent(root); err != nil {
		return err
	}
	fc, err := descriptor.FC(registry.All())
	if err != nil {
		return err
	}
	fcVPC, err := descriptor.FC(registry.All(), descriptor.FCOptions{VPC: true})
	if err != nil {
		return err
	}
	sam, err := descriptor.SAM(registry.All(), descriptor.SAMOptions{IAM: *awsIAM})
	if err != nil {
		return err
	}
	doc, err := openapi.Document()
	if err != nil {
		return err
	}
	files := map[string][]byte{"s.yaml": fc, "s.vpc.yaml": fcVPC, "template.yaml": sam, "openapi.json": doc}
	clients, err := clientgen.FromRegistry()
	if err != nil {
		return err
	}
	for name, b := range clients {
		files[name] = b
	}
	// The tables are written into the doc as it is; a function without its
	// markers is reported after the other files are done.
	tablesErr := vendorTables(root, files)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	drift := false
	for _, name := range names {
		want := files[name]
		path := filepath.Join(root, filepath.FromSlash(name))
		have, _ := os.ReadFile(path)
		if bytes.Equal(have, want) {
			fmt.Fprintf(stdout, "%s is up to date\n", name)
			continue
		}
		if *check && name == "template.yaml" && !*awsIAM {
			// `make gen` would write the open variant over the one the
			// user chose (an outside tester followed the advice).
			if iam, err := descriptor.SAM(registry.All(), descriptor.SAMOptions{IAM: true}); err == nil && bytes.Equal(have, iam) {
				fmt.Fprintln(stderr, "template.yaml is the AWS_IAM variant (cloudcall gen --aws-iam) and up to date as such: check it with `cloudcall gen --check --aws-iam`; `make gen` would write the open variant over it")
				drift = true
				continue
			}
		}
		if *check {
			fmt.Fprintf(stderr, "%s differs from the registry: run `make gen` and commit it\n", name)
			if *awsIAM && name == "template.yaml" {
				fmt.Fprintln(stderr, "  (the committed template.yaml is the open variant: --check without --aws-iam)")
			}
			drift = true
			continue
		}
		if err := os.WriteFile(path, want, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", name)
	}
	if tablesErr != nil {
		return tablesErr
	}
	if drift {
		return errors.New("generated files drifted from the registry")
	}
	return nil
}

// vendorTables adds docs/vendors.md with its input tables filled in to
// files, unless a function has no markers there (or the doc is missing):
// that is the error, saying what to add.
func vendorTables(root string, files map[string][]byte) error {
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(vendorsDoc)))
	if err != nil {
		return fmt.Errorf("%s holds the functions' input tables, which gen fills in: %w", vendorsDoc, err)
	}
	doc, err := registry.RewriteInputTables(string(b))
	if err != nil {
		return err
	}
	files[vendorsDoc] = []byte(doc)
	return nil
}

// registryCurrent refuses a binary whose compiled-in registry is not the
// checkout's: it generated from the old one and called stale files up to
// date (an outside tester ran a bin/cloudcall built before a registry edit).
// A module without shared/registry is not a checkout: nothing to compare.
func registryCurrent(root string) error {
	dir := filepath.Join(root, "shared", "registry")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	drift, err := registry.SourceDrift(registry.Sources, dir)
	if err != nil {
		return fmt.Errorf("comparing this binary's registry with the checkout's: %w", err)
	}
	if len(drift) > 0 {
		return fmt.Errorf("this cloudcall binary was built from another shared/registry than the checkout's (%s): rebuild it (`make cli`) or run `make gen` (go run builds the current one)", strings.Join(drift, ", "))
	}
	return nil
}
