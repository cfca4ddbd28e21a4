package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/linewriter"
	"github.com/cloudcall/cloudcall/shared/emulator/localstore"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/suggest"
)

func runInvoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("invoke", args, stdout, stderr)
	event := fs.String("event", "", "event file, or - for standard input (default: the function's example input)")
	platform := fs.String("platform", "fc", "fc or aws")
	upstream := fs.String("upstream", "sandbox", "sandbox or real")
	binDir := fs.String("bin", "bin", "where to build the function binary")
	envFile := fs.String("env-file", "", "dotenv `file` of extra environment for the function (overrides defaults and sandbox settings), as sam local invoke --env-vars; with --upstream sandbox the shell's environment is not read")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: cloudcall invoke <function> [--event FILE|-] [--platform fc|aws] [--upstream sandbox|real] [--env-file FILE]\n\nRuns one invocation of the real binary, like `sam local invoke`: the result goes to stdout, logs to stderr.\nThe event is any platform event (cloudcall event <kind> prints samples) or a direct input; it must be JSON.\n\nFlags:")
		fs.PrintDefaults()
	}
	// The function name may come before or after the flags.
	var name string
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if name == "" && len(rest) > 0 {
		name, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		// Flag parsing stops at it, so the flags after it were dropped too:
		// running the registry example instead (a charge) is worse than
		// refusing.
		return usagef("unexpected argument %q (one function, then flags; an event file goes with --event FILE)", rest[0])
	}
	f, ok := registry.Lookup(name)
	switch {
	case name == "":
		return usagef("name a function: %s", strings.Join(registry.Names(), ", "))
	case !ok:
		return usagef("unknown function %q%s; known functions: %s", name, suggest.Hint(name, registry.Names()), strings.Join(registry.Names(), ", "))
	}
	if *upstream != "sandbox" && *upstream != "real" {
		// Anything else ran against the sandboxes, taken for the real vendors.
		return usagef("--upstream %q: expected sandbox or real", *upstream)
	}
	p, err := parsePlatform(*platform)
	if err != nil {
		return usagef("%v", err)
	}
	extra, err := loadEnvFile(*envFile, stderr, true)
	if err != nil {
		return err
	}
	payload := []byte(f.Example)
	switch *event {
	case "":
	case "-":
		if payload, err = io.ReadAll(os.Stdin); err != nil {
			return err
		}
	default:
		if payload, err = os.ReadFile(*event); err != nil {
			return usagef("--event %s: %v", *event, err) // exit 2, as a bad --env-file is
		}
	}
	if *event != "" {
		from := *event
		if from == "-" {
			from = "standard input"
		}
		if err := checkEvent(payload, from); err != nil {
			return err
		}
	}
	bins, err := buildFunctions(ctx, stderr, *binDir, f.Name)
	if err != nil {
		return err
	}
	real := *upstream == "real"
	var sbs []*servedSandbox
	if !real {
		if sbs, err = serveSandboxes("127.0.0.1:0", envTopSession(extra)); err != nil {
			return err
		}
		defer closeSandboxes(sbs)
	}
	// The file's store and key prefix are kept: they describe the
	// function, and cloudcall records given the same file looks there (an
	// outside tester found the charge's record under "cloudcall:" of a
	// store gone with invoke, told to read a banner invoke does not print).
	// Without a Redis one, the same embedded store as cloudcall local: the
	// charge keeps its idempotency record in a Redis store, never in
	// process memory.
	set := localSettings{storePfx: cmp.Or(extra["CLOUDCALL_STORE_PREFIX"], "cloudcall:"), extra: extra}
	fileStore, err := config.FromMap(extra).Secret("CLOUDCALL_STORE")
	if err != nil {
		return usagef("--env-file %s: %v", *envFile, err)
	}
	switch {
	case strings.HasPrefix(fileStore, "redis://"), strings.HasPrefix(fileStore, "rediss://"):
		set.storeURL = fileStore
	case fileStore == "" || strings.EqualFold(fileStore, "memory"):
		st, err := localstore.Start("127.0.0.1:0")
		if err != nil {
			return err
		}
		defer st.Close()
		set.storeURL, set.embedded = st.URL(), true
	default:
		return usagef("--env-file %s: CLOUDCALL_STORE %q: expected a redis:// / rediss:// URL, or leave it out for invoke's own embedded store", *envFile, fileStore)
	}
	// One sink for the emulator's lines and the function's: one lock over
	// stderr, whatever writer it is.
	sink := linewriter.New(stderr, 0)
	emu := emulator.New(emulator.Options{Platform: p, Log: sink, Functions: []emulator.FunctionConfig{{
		Name: f.Name, Binary: bins[f.Name], Platform: p, Env: functionEnv(f, p, sbs, real, set),
		Timeout: time.Duration(f.TimeoutSec) * time.Second, MemoryMB: f.MemoryMB, MaxInstances: 1, Stdout: sink, LogPrefix: f.Name + " | ",
	}}})
	defer emu.Close()
	res, _, err := emu.Invoke(ctx, f.Name, payload)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(res.Body))
	if res.Error != nil {
		return fmt.Errorf("function error %s: %s", res.Error.Type, res.Error.Message)
	}
	return nil
}
