package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/registry"
)

func runLocal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9000", "front door address (HTTP triggers and invoke APIs)")
	platform := fs.String("platform", "fc", "runtime API to emulate: fc (Function Compute go1) or aws (Lambda provided.al2023)")
	upstream := fs.String("upstream", "sandbox", "sandbox: the built-in vendor sandboxes with demo credentials; real: the real vendors with your environment")
	timers := fs.String("timers", "on", "on: fire timers on their schedules; off: only by hand (POST /__timers/<function>)")
	sandboxAddr := fs.String("sandbox-addr", "127.0.0.1:9100", "first port of the vendor sandboxes (one port per vendor)")
	maxInst := fs.Int("max-instances", 4, "instances per function when all are busy")
	idle := fs.Duration("idle", 5*time.Minute, "stop an instance idle this long")
	binDir := fs.String("bin", "bin", "where to build the function binaries")
	watch := fs.Bool("watch", false, "rebuild a function when its sources (or a package of this module it imports) change, and swap its instances gracefully")
	debugFn := fs.String("debug", "", "run this function's instance under Delve headless (needs dlv); its deadline is suspended")
	debugAddr := fs.String("debug-addr", "127.0.0.1:2345", "where Delve listens with --debug")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: cloudcall local [flags]\n\nRuns every function's real binary through the platform's runtime API, against the vendor sandboxes.\nThe web console is at the front door's / (loopback only).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	p, err := parsePlatform(*platform)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errUsage
	}
	if *upstream != "sandbox" && *upstream != "real" {
		fmt.Fprintf(stderr, "--upstream %q: expected sandbox or real\n", *upstream)
		return errUsage
	}
	if *timers != "on" && *timers != "off" {
		fmt.Fprintf(stderr, "--timers %q: expected on or off\n", *timers)
		return errUsage
	}
	real := *upstream == "real"
	var launcher []string
	if *debugFn != "" {
		if _, ok := registry.Lookup(*debugFn); !ok {
			fmt.Fprintf(stderr, "--debug %q: known functions: %s\n", *debugFn, strings.Join(registry.Names(), ", "))
			return errUsage
		}
		if launcher, err = delveLauncher(*debugAddr); err != nil {
			return err
		}
	}

	fmt.Fprintln(stdout, "cloudcall local: building functions")
	bins, err := buildFunctions(ctx, stdout, *binDir, "")
	if err != nil {
		return err
	}
	root, err := emulator.ModuleRoot(".")
	if err != nil {
		return err
	}
	absBin := *binDir
	if !filepath.IsAbs(absBin) {
		absBin = filepath.Join(root, absBin)
	}
	_ = os.RemoveAll(filepath.Join(absBin, ".watch")) // a previous run's rebuilds
	defer os.RemoveAll(filepath.Join(absBin, ".watch"))
	if *debugFn != "" {
		dir := filepath.Join(absBin, ".debug")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  building %s for Delve (-gcflags=all=-N -l; the first time takes a while)\n", *debugFn)
		if bins[*debugFn], err = buildDebug(ctx, root, "./functions/"+*debugFn, dir); err != nil {
			return err
		}
	}
	var sbs []*servedSandbox
	if !real {
		if sbs, err = serveSandboxes(*sandboxAddr); err != nil {
			return err
		}
		defer closeSandboxes(sbs)
	}
	var fns []emulator.FunctionConfig
	var tms []emulator.Timer
	for _, f := range registry.All() {
		bin, ok := bins[f.Name]
		if !ok {
			continue
		}
		fc := emulator.FunctionConfig{
			Name: f.Name, Binary: bin, Platform: p, Env: functionEnv(f, p, sbs, real),
			Timeout: time.Duration(f.TimeoutSec) * time.Second, MemoryMB: f.MemoryMB,
			MaxInstances: *maxInst, Idle: *idle, Stdout: prefixWriter(stdout, f.Name),
		}
		if f.Name == *debugFn {
			// One instance (one Delve port), and no deadline: a call paused
			// at a breakpoint must not time out under the debugger.
			fc.Launcher, fc.MaxInstances, fc.Timeout = launcher, 1, debugTimeout
		}
		fns = append(fns, fc)
		if f.Schedule != nil {
			c, err := emulator.ParseCron(f.Schedule.Cron, f.Schedule.TimeZone)
			if err != nil {
				return fmt.Errorf("%s schedule: %w", f.Name, err)
			}
			tms = append(tms, emulator.Timer{Function: f.Name, Name: f.Schedule.Name, Cron: c, Payload: f.Schedule.Payload})
		}
	}
	emu := emulator.New(emulator.Options{Platform: p, Functions: fns, Timers: tms, Log: stdout})
	defer emu.Close()
	var w *watcher
	if *watch {
		build := func(ctx context.Context, root, pkg, dir string) (string, error) {
			if pkg == "./functions/"+*debugFn {
				return buildDebug(ctx, root, pkg, dir)
			}
			return emulator.Build(ctx, root, pkg, dir)
		}
		w = newWatcher(root, absBin, emu, build, stdout, bins)
	}
	cons, err := newConsole(emu, string(p), bins, sbs, w, *debugFn)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another cloudcall local running? use --addr)", *addr, err)
	}
	srv := &http.Server{Handler: frontDoors(cons, emu), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	if *timers == "on" {
		emu.RunTimers(ctx)
	}
	banner(stdout, "http://"+ln.Addr().String(), string(p), *upstream, bins, sbs, tms, *timers)
	if *debugFn != "" {
		fmt.Fprintf(stdout, "debug: %s runs under Delve on %s (deadline suspended); attach with VS Code (README: Debugging) or dlv connect %s\n", *debugFn, *debugAddr, *debugAddr)
	}
	if w != nil {
		var names []string
		for _, f := range fns {
			names = append(names, f.Name)
		}
		go func() {
			if err := w.run(ctx, names); err != nil {
				fmt.Fprintf(stdout, "watch: stopped: %v\n", err)
			}
		}()
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "\ncloudcall local: stopping (instances, sandboxes)")
	shut, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(shut)
	return nil
}

func banner(w io.Writer, base, platform, upstream string, bins map[string]string, sbs []*servedSandbox, tms []emulator.Timer, timers string) {
	fmt.Fprintf(w, "\ncloudcall local on %s — platform %s, upstream %s\n", base, platform, upstream)
	fmt.Fprintf(w, "console: %s/ (loopback only)\n", base)
	fmt.Fprintln(w, "WARNING: CLOUDCALL_ALLOW_ANONYMOUS=true for every function: HTTP triggers take unsigned calls here (never on a platform).")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nFUNCTION\tHTTP TRIGGER\tINVOKE (FC / Lambda style)")
	for _, f := range registry.All() {
		if bins[f.Name] == "" {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s/%s\t%s/2023-03-30/functions/%s/invocations\n", f.Name, base, f.Name, base, f.Name)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nTry:")
	for _, f := range registry.All() {
		if f.Example == "" || len(f.HTTPMethods) == 0 || bins[f.Name] == "" {
			continue
		}
		fmt.Fprintf(w, "  curl -s -X POST %s/%s -H 'Content-Type: application/json' -d '%s'\n", base, f.Name, f.Example)
	}
	for _, t := range tms {
		fmt.Fprintf(w, "  curl -s -X POST %s/__timers/%s      # fire %s now (timers %s)\n", base, t.Function, t.Name, timers)
	}
	fmt.Fprintf(w, "  aws lambda invoke --endpoint-url %s --function-name logistics-get-quota --cli-binary-format raw-in-base64-out --payload '{\"deliveryId\":\"YTO\",\"bizId\":\"xyz\"}' out.json\n", base)
	for _, s := range sbs {
		fmt.Fprintf(w, "sandbox %-8s %s   (admin: %s/__sandbox/calls)\n", s.vendor, s.url, s.url)
	}
	fmt.Fprintln(w, "\nCtrl-C stops everything.")
}

// prefixWriter labels each line a function prints with its name.
func prefixWriter(w io.Writer, name string) io.Writer {
	return &linePrefixer{w: w, prefix: name + " | "}
}

type linePrefixer struct {
	mu     sync.Mutex // an instance's stdout and stderr are copied concurrently
	w      io.Writer
	prefix string
	buf    []byte
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			break
		}
		if _, err := fmt.Fprintf(l.w, "%s%s\n", l.prefix, l.buf[:i]); err != nil {
			return len(p), err
		}
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}
