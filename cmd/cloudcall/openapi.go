package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/openapi"
)

func runOpenAPI(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("openapi", args, stdout, stderr)
	write := fs.Bool("write", false, "write openapi.json at the module root instead of printing it (cloudcall gen writes it too)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: cloudcall openapi [--write]\n\nPrints the OpenAPI 3.1 document generated from the registry's schemas (the emulator serves it at GET /openapi.json, with its own address as the server URL).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, stderr); err != nil {
		return err
	}
	var root string
	if *write {
		var err error
		if root, err = emulator.ModuleRoot("."); err != nil {
			return err
		}
		// The document comes from the compiled-in registry (see gen).
		if err := registryCurrent(root); err != nil {
			return err
		}
	} else if r, err := emulator.ModuleRoot("."); err == nil {
		// Printed, it is said, not refused: outside a checkout there is
		// nothing to compare, and a pipe still gets a document (a
		// re-tester: a stale binary printed the old one in silence).
		if err := registryCurrent(r); err != nil {
			fmt.Fprintf(stderr, "WARNING: %v; the document below is that binary's\n", err)
		}
	}
	doc, err := openapi.Document()
	if err != nil {
		return err
	}
	if !*write {
		_, err := stdout.Write(doc)
		return err
	}
	path := filepath.Join(root, "openapi.json")
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "wrote", path)
	return nil
}
