package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/cloudcall/cloudcall/shared/clientgen"
	"github.com/cloudcall/cloudcall/shared/descriptor"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/registry"
)

func runGen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gen", args, stdout, stderr)
	check := fs.Bool("check", false, "do not write: fail if s.yaml, s.vpc.yaml, template.yaml or the clients' generated files differ from the registry")
	awsIAM := fs.Bool("aws-iam", false, "template.yaml: protect every HttpApi route with AWS_IAM (SigV4 callers) instead of the bundle's caller signatures")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: cloudcall gen [--check] [--aws-iam]\n\nWrites s.yaml (Serverless Devs, FC 3.0), s.vpc.yaml (the same in a VPC: s deploy -t s.vpc.yaml),\ntemplate.yaml (AWS SAM) and the clients' generated files\n(clients/node/api.cjs, index.d.ts, index.d.mts; clients/go/cloudcall/api_gen.go) from shared/registry and its schemas.\n\nFlags:")
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
	files := map[string][]byte{"s.yaml": fc, "s.vpc.yaml": fcVPC, "template.yaml": sam}
	clients, err := clientgen.FromRegistry()
	if err != nil {
		return err
	}
	for name, b := range clients {
		files[name] = b
	}
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
	if drift {
		return errors.New("generated files drifted from the registry")
	}
	return nil
}
