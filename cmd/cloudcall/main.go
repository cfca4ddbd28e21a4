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
	"sort"
	"syscall"
)

// command is one subcommand. run gets the arguments after the subcommand name.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"local":   {"run every function under the local emulator, against the vendor sandboxes", runLocal},
		"invoke":  {"run one invocation of a function, like `sam local invoke`", runInvoke},
		"sandbox": {"serve the vendor sandboxes on loopback", runSandbox},
		"gen":     {"write s.yaml and template.yaml from the function registry", runGen},
		"package": {"build reproducible deployment zips for FC and Lambda", runPackage},
		"bench":   {"measure cold start, overhead, throughput, memory and token economy", runBench},
		"openapi": {"print the OpenAPI 3.1 document generated from the registry's schemas", runOpenAPI},
	}
}

// errUsage marks a bad command line: exit status 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "cloudcall: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "cloudcall %s: %v\n", args[0], err)
		return 1
	}
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "cloudcall — WeChat-style cloud calls for every vendor API, locally and on FC / Lambda")
	fmt.Fprintln(w, "\nUsage: cloudcall <command> [flags]   (cloudcall <command> --help for its flags)\n\nCommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
}
