// Command peers runs `cloudcall bench` with the peers that the main module
// must not depend on: AWS's Runtime Interface Emulator and PowerWeChat, both
// at exact versions from the module proxy in this module's go.mod. `make
// bench` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/cloudcall/cloudcall/shared/bench"
)

const riePkg = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"

func main() {
	out := flag.String("out", "", "write the Markdown report here; empty: stdout")
	root := flag.String("root", "../..", "the cloudcall checkout")
	cold := flag.Int("cold", 300, "rounds of cold starts (each starts the hello floor, every function and its vendor-call floor)")
	calls := flag.Int("calls", 2000, "calls per concurrency level through the emulator")
	memCalls := flag.Int("memory-calls", 10000, "invocations for the RSS figures")
	tokCalls := flag.Int("token-calls", 10000, "invocations for the token economy")
	pairs := flag.Int("cams-pairs", 120, "paced call pairs for the CAMS peer comparison")
	only := flag.String("only", "", "comma-separated sections to run ("+strings.Join(bench.Sections(), ",")+"); empty: all")
	flag.Parse()
	o := bench.Options{ColdStarts: *cold, Calls: *calls, MemoryCalls: *memCalls, TokenCalls: *tokCalls, CAMSPairs: *pairs}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	if err := run(*out, *root, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(out, root string, o bench.Options) error {
	ctx := context.Background()
	abs, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "cloudcall-peers")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	rie := filepath.Join(work, "aws-lambda-rie")
	fmt.Fprintln(os.Stderr, "building aws-lambda-rie from this module's go.mod")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", rie, riePkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", riePkg, err, b)
	}
	o.ModuleDir = abs
	o.RedisURL = bench.RedisURL()
	o.Progress = os.Stderr
	o.Peers = bench.Peers{RIEBinary: rie, PowerWeChat: newPowerWeChat}
	return bench.Write(ctx, o, out, os.Stdout)
}
