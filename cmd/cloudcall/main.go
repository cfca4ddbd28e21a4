// Command cloudcall is the developer CLI: the local emulator, one-shot
// invocations, the vendor sandboxes, the descriptor generator and benchmarks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"

	"github.com/cloudcall/cloudcall/shared/suggest"
)

// command is one subcommand. run gets the arguments after the subcommand name.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"local":   {"run every function under the local emulator, against the vendor sandboxes", runLocal},
		"event":   {"print a sample platform event (FC HTTP, API Gateway v2, FC timer, EventBridge, ScheduleV2)", runEvent},
		"invoke":  {"run one invocation of a function, like `sam local invoke`", runInvoke},
		"sandbox": {"serve the vendor sandboxes on loopback", runSandbox},
		"gen":     {"write everything the function registry drives: s.yaml, s.vpc.yaml, template.yaml, openapi.json, docs/vendors.md's input tables, the clients' generated files", runGen},
		"package": {"build reproducible deployment zips for FC and Lambda", runPackage},
		"bench":   {"measure cold start, overhead, throughput, memory and token economy", runBench},
		"openapi": {"print the OpenAPI 3.1 document generated from the registry's schemas", runOpenAPI},
		"records": {"show, settle and restore the charge's idempotency records after reconciling with TOP (a -1304, a store that lost its data); status and reopen the store", runRecords},
	}
}

// exitError is a failure with an exit status of its own, documented by the
// command that returns it (1 is any other failure, 2 a bad command line).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// errUsage marks a bad command line: exit status 2.
var errUsage = errors.New("usage")

// usageError is a bad command line with what is wrong in it; run says it as
// "cloudcall <command>: <what>", so every command's refusals read alike.
type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == errUsage }

func usagef(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

func main() {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		// A closed terminal stops local as Ctrl-C does, draining, not
		// killed outright (a re-tester). Under nohup HUP stays ignored:
		// asking for it would undo that.
		sigs = append(sigs, syscall.SIGHUP)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	switch {
	case len(args) == 0:
		usage(stderr, cmds)
		return 2
	case args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || (args[0] == "help" && (len(args) == 1 || strings.HasPrefix(args[1], "-"))):
		usage(stdout, cmds)
		return 0
	case args[0] == "help":
		if _, ok := cmds[args[1]]; !ok {
			fmt.Fprintf(stderr, "cloudcall help: unknown command %q%s\n\n", args[1], suggest.HintAny(args[1], cmds))
			usage(stderr, cmds)
			return 2
		}
		return run(ctx, []string{args[1], "--help"}, stdout, stderr)
	case args[0] == "--version" || args[0] == "-version" || args[0] == "version":
		fmt.Fprintln(stdout, version())
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "cloudcall: unknown command %q%s\n\n", args[0], suggest.HintAny(args[0], cmds))
		usage(stderr, cmds)
		return 2
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	if ee, ok := errors.AsType[*exitError](err); ok {
		fmt.Fprintf(stderr, "cloudcall %s: %v\n", args[0], ee.err)
		return ee.code
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		if ue, ok := errors.AsType[*usageError](err); ok {
			fmt.Fprintf(stderr, "cloudcall %s: %s\n", args[0], ue.msg)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "cloudcall %s: %v\n", args[0], err)
		return 1
	}
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "cloudcall — WeChat-style cloud calls for every vendor API, locally and on FC / Lambda")
	fmt.Fprintln(w, "\nUsage: cloudcall <command> [flags]   (cloudcall help <command> for its flags; cloudcall --version)\n\nCommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
}

// newFlagSet is a subcommand's flags. Asked for help, it prints to stdout
// (help is output, not an error); parse errors go to stderr.
func newFlagSet(name string, args []string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" || a == "-help" || a == "--h" {
			fs.SetOutput(stdout)
		}
	}
	return fs
}

// parseFlags parses a command's flags. A flag it does not know is said in
// one line with the closest it does ("-adr": did you mean "addr"?), not as
// Go's bare "flag provided but not defined" over the whole usage; -h prints
// the usage and returns flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if usage != nil {
			usage()
		} else {
			fmt.Fprintf(out, "Usage of cloudcall %s:\n", fs.Name())
			fs.PrintDefaults()
		}
		return err
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		msg = "unknown flag " + name + suggest.Hint(strings.TrimLeft(name, "-"), names)
	}
	return usagef("%s; see cloudcall %s --help", msg, fs.Name())
}

// noArgs refuses positional arguments a command does not take: ignored,
// they read as if they had done something.
func noArgs(fs *flag.FlagSet, stderr io.Writer) error {
	if fs.NArg() == 0 {
		return nil
	}
	return usagef("unexpected argument %q (flags only; see cloudcall %s --help)", fs.Arg(0), fs.Name())
}

// version is the module version and VCS revision the binary was built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "cloudcall (unknown build)"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var rev, when, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	out := "cloudcall " + v
	if rev != "" {
		out += " " + rev[:min(12, len(rev))] + dirty
		if when != "" {
			out += " " + when
		}
	}
	out += " " + bi.GoVersion
	if rev == "" {
		out += " (no VCS revision: built outside a git checkout, or with -buildvcs=false)"
	}
	return out
}
