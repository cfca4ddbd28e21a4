package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/suggest"
	"github.com/cloudcall/cloudcall/shared/upstream"
)

// servedSandbox is a sandbox listening on loopback.
type servedSandbox struct {
	vendor string
	url    string
	admin  string // path of its admin view
	env    map[string]string
	srv    *http.Server
}

// serveSandboxes starts every vendor sandbox on loopback. base is
// "host:port" for the first one (port 0: any free ports); topSession is
// a session the TOP sandbox takes besides its demo one.
func serveSandboxes(base, topSession string) ([]*servedSandbox, error) {
	host, portStr, err := net.SplitHostPort(base)
	if err != nil {
		return nil, fmt.Errorf("sandbox address %q: %w", base, err)
	}
	port, _ := strconv.Atoi(portStr)
	sbs := sandboxes(topSession)
	vendors := make([]string, 0, len(sbs))
	for v := range sbs {
		vendors = append(vendors, v)
	}
	sort.Strings(vendors)
	var out []*servedSandbox
	for i, v := range vendors {
		p := 0
		if port != 0 {
			p = port + i
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			closeSandboxes(out)
			return nil, fmt.Errorf("sandbox %s: %w", v, err)
		}
		srv := &http.Server{Handler: sbs[v].Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		url := "http://" + ln.Addr().String()
		env := sbs[v].Env(url)
		if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() && !ip.IsUnspecified() {
			// Served on the network: the functions reach it in plain http, with
			// the sandbox's demo credentials.
			env[upstream.PlaintextVar] = "true"
		}
		out = append(out, &servedSandbox{vendor: v, url: url, admin: sbs[v].Admin(), env: env, srv: srv})
	}
	return out, nil
}

func closeSandboxes(sbs []*servedSandbox) {
	for _, s := range sbs {
		_ = s.srv.Close()
	}
}

// functionEnv is what the platform would give the function: its registry
// defaults, the platform's own variables, either the sandboxes (demo
// credentials) or, with real upstreams, the caller's environment, then the
// --env-file and the emulator's settings (shared store, caller auth).
func functionEnv(f registry.Function, platform runtimeapi.Platform, sbs []*servedSandbox, real bool, set localSettings) map[string]string {
	env := map[string]string{}
	known := map[string]bool{}
	for _, v := range f.Env {
		known[v.Name] = true
		if v.Default != "" {
			env[v.Name] = v.Default
		}
		if real {
			if val, ok := os.LookupEnv(v.Name); ok {
				env[v.Name] = val
			}
			if val, ok := os.LookupEnv(v.Name + "_FILE"); ok {
				env[v.Name+"_FILE"] = val
			}
		}
	}
	if !real {
		// A sandbox configures its vendor's functions, and any function
		// that declares one of its variables (quota-alert's channels).
		for _, s := range sbs {
			for k, v := range s.env {
				if s.vendor == f.Vendor || known[k] {
					env[k] = v
				}
			}
		}
	}
	for k, v := range set.extra {
		env[k] = v
	}
	// An env file's NAME_FILE overrides a default NAME (a sandbox's demo
	// secret): a function refuses both set, and the file is what was meant.
	for k := range set.extra {
		if name, ok := strings.CutSuffix(k, "_FILE"); ok {
			if _, both := set.extra[name]; !both {
				delete(env, name)
			}
		}
	}
	switch keyed, anonymous := set.auth(); {
	case keyed:
		if set.callerKeys != "" {
			env["CLOUDCALL_CALLER_KEYS"] = set.callerKeys
		}
		delete(env, "CLOUDCALL_ALLOW_ANONYMOUS")
	case anonymous:
		// Locally nobody else can call the trigger; on a platform this stays off.
		env["CLOUDCALL_ALLOW_ANONYMOUS"] = "true"
	default:
		env["CLOUDCALL_ALLOW_ANONYMOUS"] = "false" // the env file's choice
	}
	if set.storeURL != "" {
		// The emulator's store, whatever form the env file named one in:
		// its CLOUDCALL_STORE_FILE beside this made every function refuse
		// both set (-1601: a re-tester).
		env["CLOUDCALL_STORE"] = set.storeURL
		env["CLOUDCALL_STORE_PREFIX"] = set.storePfx
		delete(env, "CLOUDCALL_STORE_FILE")
		delete(env, "CLOUDCALL_STORE_PREFIX_FILE")
		// The charge keeps its idempotency records in the same shared store,
		// unless the env file names a records store of its own (PostgreSQL,
		// MySQL or a Redis, to try a deployment's own; loadEnvFile refuses
		// "memory"): every instance shares that one too.
		own := set.ownRecords()
		if !own {
			env["CLOUDCALL_IDEMPOTENCY_STORE"] = set.storeURL
		}
		if set.embedded {
			// Gone when the emulator stops: CK1 OAuth must not spend a
			// real refresh token into it (the sandbox's own says it may).
			env["CLOUDCALL_STORE_EPHEMERAL"] = "true"
			if !own && !real {
				// The embedded store does not persist (no AOF): it lives and
				// dies with the sandboxes whose ledger its records guard, and
				// no real money moves, so the durability check is waived
				// here only. With --upstream real it is not: a charge cut
				// off at Ctrl-C was charged again by the next run.
				env["CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE"] = "assume"
			}
		}
	}
	if platform == runtimeapi.Lambda {
		env["AWS_LAMBDA_FUNCTION_NAME"] = f.Name
		env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = strconv.Itoa(f.MemoryMB)
		env["AWS_LAMBDA_FUNCTION_VERSION"] = "$LATEST"
		env["AWS_REGION"] = "us-east-1"
		env["_HANDLER"] = "bootstrap"
	} else {
		env["FC_FUNCTION_NAME"] = f.Name
		env["FC_FUNCTION_MEMORY_SIZE"] = strconv.Itoa(f.MemoryMB)
		env["FC_FUNCTION_HANDLER"] = "main"
		env["FC_REGION"] = "cn-hangzhou"
		env["FC_ACCOUNT_ID"] = "123456789012"
	}
	return env
}

// builtFunctions are the binaries by name, and how long each build took.
type builtFunctions struct {
	bins map[string]string
	took map[string]time.Duration
}

// buildFunctions compiles every registry function that has a folder,
// showing progress; it returns the binaries by name.
func buildFunctions(ctx context.Context, out io.Writer, binDir string, only string) (map[string]string, error) {
	b, err := buildFunctionsTimed(ctx, out, binDir, only)
	return b.bins, err
}

// buildFunctionsTimed is buildFunctions with each build's time.
func buildFunctionsTimed(ctx context.Context, out io.Writer, binDir string, only string) (builtFunctions, error) {
	res := builtFunctions{bins: map[string]string{}, took: map[string]time.Duration{}}
	root, err := emulator.ModuleRoot(".")
	if err != nil {
		return res, err // it says to run from inside the checkout
	}
	if !filepath.IsAbs(binDir) {
		binDir = filepath.Join(root, binDir)
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return res, err
	}
	bins := res.bins
	for _, f := range registry.All() {
		if only != "" && f.Name != only {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "functions", f.Name, "main.go")); err != nil {
			fmt.Fprintf(out, "  skip  %-30s (no functions/%s yet)\n", f.Name, f.Name)
			continue
		}
		fmt.Fprintf(out, "  build %-30s ...\n", f.Name)
		start := time.Now()
		bin, err := emulator.Build(ctx, root, "./functions/"+f.Name, binDir)
		if err != nil {
			return res, err
		}
		res.took[f.Name] = time.Since(start)
		fmt.Fprintf(out, "  built %-30s %s\n", f.Name, res.took[f.Name].Round(10*time.Millisecond))
		bins[f.Name] = bin
	}
	if only != "" && len(bins) == 0 {
		return res, fmt.Errorf("unknown function %q%s; known: %s", only, suggest.Hint(only, registry.Names()), strings.Join(registry.Names(), ", "))
	}
	return res, nil
}

func parsePlatform(s string) (runtimeapi.Platform, error) {
	switch s {
	case "fc":
		return runtimeapi.FC, nil
	case "aws", "lambda":
		return runtimeapi.Lambda, nil
	}
	return "", fmt.Errorf("--platform %q: expected fc or aws", s)
}
