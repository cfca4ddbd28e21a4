package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/cloudcall/cloudcall/shared/bench"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/suggest"
)

// runBench measures the bundle (shared/bench) and writes the report.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", args, stdout, stderr)
	out := fs.String("out", "", "write the Markdown report here (e.g. docs/benchmarks.md); empty: stdout")
	cold := fs.Int("cold", 300, "rounds of cold starts (each starts the hello floor, every function and its vendor-call floor)")
	calls := fs.Int("calls", 2000, "calls per concurrency level through the emulator")
	memCalls := fs.Int("memory-calls", 10000, "invocations for the RSS figures")
	tokCalls := fs.Int("token-calls", 10000, "invocations for the token economy")
	pairs := fs.Int("cams-pairs", 120, "paced call pairs for the CAMS peer comparison")
	only := fs.String("only", "", "comma-separated `sections` to run ("+strings.Join(bench.Sections(), ",")+"); empty: all")
	redis := fs.String("redis", "", "Redis URL for the token economy (default REDIS_URL, else 127.0.0.1:6379 when it answers; \"off\" skips)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: cloudcall bench [flags]\n\nMeasures binary size, cold start, warm overhead, throughput, memory and token economy of the functions against the sandboxes; progress on stderr.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, stderr); err != nil {
		return err
	}
	for name, v := range map[string]int{"--cold": *cold, "--calls": *calls, "--memory-calls": *memCalls, "--token-calls": *tokCalls, "--cams-pairs": *pairs} {
		if v < 1 {
			// 0 or less meant the default: a run that was to skip a part
			// ran all of it.
			return usagef("%s %d: expected 1 or more", name, v)
		}
	}
	var sections []string
	if *only != "" {
		for _, s := range strings.Split(*only, ",") {
			if !slices.Contains(bench.Sections(), s) {
				return usagef("--only %q: expected sections from %s%s", s, strings.Join(bench.Sections(), ","), suggest.Hint(s, bench.Sections()))
			}
			sections = append(sections, s)
		}
	}
	root, err := emulator.ModuleRoot(".")
	if err != nil {
		return fmt.Errorf("run cloudcall bench from inside the cloudcall checkout: %w", err)
	}
	if *out != "" {
		// Said now, not after minutes of measuring.
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return usagef("--out %s: %v", *out, err)
		}
		_ = f.Close()
	}
	url := *redis
	switch url {
	case "":
		url = bench.RedisURL()
	case "off":
		url = ""
	}
	r, err := bench.Run(ctx, bench.Options{ModuleDir: root, ColdStarts: *cold, Calls: *calls, MemoryCalls: *memCalls,
		TokenCalls: *tokCalls, CAMSPairs: *pairs, RedisURL: url, Progress: stderr, Only: sections})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := r.Markdown(&buf); err != nil {
		return err
	}
	if *out == "" {
		_, err := stdout.Write(buf.Bytes())
		return err
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}
