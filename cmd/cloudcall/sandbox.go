package main

import (
	"context"
	"fmt"
	"io"
	"sort"
)

func runSandbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sandbox", args, stdout, stderr)
	addr := fs.String("addr", "127.0.0.1:9100", "address of the first sandbox; the others take the next ports")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: cloudcall sandbox [--addr host:port]\n\nServes the vendor sandboxes on loopback and prints the environment that points a function at them.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, stderr); err != nil {
		return err
	}
	sbs, err := serveSandboxes(*addr, "")
	if err != nil {
		return fmt.Errorf("%w (the sandboxes take the ports from --addr %s on, one each: pass --addr 127.0.0.1:<free port>)", err, *addr)
	}
	defer closeSandboxes(sbs)
	for _, s := range sbs {
		fmt.Fprintf(stdout, "sandbox %s on %s\n", s.vendor, s.url)
		keys := make([]string, 0, len(s.env))
		for k := range s.env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(stdout, "  export %s=%q\n", k, s.env[k])
		}
	}
	fmt.Fprintln(stdout, "Admin: GET /__sandbox/calls, POST /__sandbox/faults, POST /__sandbox/clock. Ctrl-C stops.")
	<-ctx.Done()
	return nil
}
