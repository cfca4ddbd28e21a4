package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/joho/godotenv"

	"github.com/cloudcall/cloudcall/shared/callerauth"
	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/console"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/linewriter"
	"github.com/cloudcall/cloudcall/shared/emulator/localstore"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/idempotency/recordstore"
	"github.com/cloudcall/cloudcall/shared/idempotency/redisrecords"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/store/redisstore"
	"github.com/cloudcall/cloudcall/shared/suggest"
)

// localSettings is what `cloudcall local` adds to every function's
// environment beyond the registry defaults and the sandboxes.
type localSettings struct {
	extra      map[string]string // --env-file
	callerKeys string            // --caller-keys
	storeURL   string            // the shared store every instance uses
	storePfx   string            // CLOUDCALL_STORE_PREFIX (per run on an external store)
	embedded   bool              // storeURL is the emulator's own
}

// ownRecords says the env file names the charge's records store (the URL
// or its _FILE), which then stands instead of the shared store.
func (s localSettings) ownRecords() bool {
	return s.extra["CLOUDCALL_IDEMPOTENCY_STORE"] != "" || s.extra["CLOUDCALL_IDEMPOTENCY_STORE_FILE"] != ""
}

// auth is how the functions' HTTP triggers will treat callers: signed
// (--caller-keys, or caller keys from the env file), open (the local
// default, unless the env file sets CLOUDCALL_ALLOW_ANONYMOUS), or closed
// (the env file turned anonymous calls off and gave no keys). The
// environment and the banner both follow it.
func (s localSettings) auth() (keys, anonymous bool) {
	env := config.FromMap(s.extra)
	if k, _ := env.Secret("CLOUDCALL_CALLER_KEYS"); s.callerKeys != "" || k != "" {
		return true, false // CLOUDCALL_CALLER_KEYS or its _FILE
	}
	if _, set := s.extra["CLOUDCALL_ALLOW_ANONYMOUS"]; set {
		// Read as a deployed function reads it: a value it does not know
		// leaves the triggers closed.
		return false, env.Bool("CLOUDCALL_ALLOW_ANONYMOUS", false)
	}
	return false, true
}

// envTopSession is the TOP_SESSION (or its _FILE) an --env-file sets.
func envTopSession(extra map[string]string) string {
	v, _ := config.FromMap(extra).Secret("TOP_SESSION")
	return v
}

// keys are the caller keys the functions take (--caller-keys wins over the
// env file, as in their environment), for the console to sign replays.
func (s localSettings) keys() map[string]string {
	raw := s.callerKeys
	if raw == "" {
		raw, _ = config.FromMap(s.extra).Secret("CLOUDCALL_CALLER_KEYS")
	}
	keys, _ := callerauth.ParseKeys(raw) // checked at start
	return keys
}

func runLocal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ctx, stopWatching := untilOrphaned(ctx, os.Getppid, processName, time.Second)
	defer stopWatching()
	fs := newFlagSet("local", args, stdout, stderr)
	addr := fs.String("addr", "127.0.0.1:9000", "front door `host:port` (HTTP triggers and invoke APIs); port 0 picks a free one")
	platform := fs.String("platform", "fc", "runtime API to emulate: fc (Function Compute go1) or aws (Lambda provided.al2023)")
	upstream := fs.String("upstream", "sandbox", "sandbox: the built-in vendor sandboxes with demo credentials; real: the real vendors with your environment")
	timers := fs.String("timers", "on", "on: fire timers on their schedules; off: only by hand (POST /__timers/<function>)")
	sandboxAddr := fs.String("sandbox-addr", "127.0.0.1:9100", "first `host:port` of the vendor sandboxes (one port per sandbox; port 0: any free ports)")
	maxInst := fs.Int("max-instances", emulator.DefaultMaxInstances(), "instances per function when all are busy: 2 per CPU unless set")
	idle := fs.Duration("idle", 5*time.Minute, "stop an instance idle this long")
	binDir := fs.String("bin", "bin", "where to build the function binaries")
	watch := fs.Bool("watch", false, "rebuild a function when its sources (a package of this module it imports, or a file one embeds, such as an input schema) change, and swap its instances gracefully")
	debugFn := fs.String("debug", "", "run this function's instance under Delve headless (needs dlv); its deadline is suspended")
	debugAddr := fs.String("debug-addr", "127.0.0.1:2345", "where Delve listens with --debug")
	envFile := fs.String("env-file", "", "dotenv `file` of extra environment for every function (overrides defaults and sandbox settings)")
	callerKeys := fs.String("caller-keys", "", "turn caller authentication on: `id:secret,...` (secrets of 16+ bytes); default: anonymous calls allowed. Other local users see it in ps: an --env-file's CLOUDCALL_CALLER_KEYS does the same unseen")
	asyncRetries := fs.String("async-retries", "platform", "times a failed asynchronous invocation (Event/Async) runs again: platform (Lambda's door 2, FC's 3, as they default) or a number; 0 turns retries off")
	asyncDelay := fs.Duration("async-retry-delay", emulator.DefaultAsyncRetryDelay, "wait before the first retry of a failed asynchronous invocation; doubles for each retry after it")
	storeAddr := fs.String("store-addr", "127.0.0.1:0", "`host:port` of the embedded store (port 0: any free port, printed in the banner); loopback only")
	storeFlag := fs.String("store", defaultStore(), "shared store of every instance: embedded (a Redis-protocol server inside the emulator) or a redis:// / rediss:// `URL`; $CLOUDCALL_STORE is the default when it is a Redis URL")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: cloudcall local [flags]\n\nRuns every function's real binary through the platform's runtime API, against the vendor sandboxes.\nAll instances of all functions share one store (embedded Redis by default), as a deployment does.\nThe web console is at the front door's / (loopback only).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, stderr); err != nil {
		return err
	}
	p, err := parsePlatform(*platform)
	if err != nil {
		return usagef("%v", err)
	}
	if *upstream != "sandbox" && *upstream != "real" {
		return usagef("--upstream %q: expected sandbox or real", *upstream)
	}
	if *timers != "on" && *timers != "off" {
		return usagef("--timers %q: expected on or off", *timers)
	}
	if *maxInst < 1 {
		return usagef("--max-instances %d: expected 1 or more", *maxInst)
	}
	if *idle <= 0 {
		return usagef("--idle %s: expected a positive duration such as 30s (instances are checked once a second)", *idle)
	}
	var retries *int
	if *asyncRetries != "platform" {
		n, err := strconv.Atoi(*asyncRetries)
		if err != nil || n < 0 {
			return usagef("--async-retries %q: expected platform or a number, 0 or more", *asyncRetries)
		}
		retries = &n
	}
	if *asyncDelay <= 0 {
		return usagef("--async-retry-delay %s: expected a positive duration such as 5s", *asyncDelay)
	}
	set := localSettings{callerKeys: *callerKeys}
	if *callerKeys != "" {
		if _, err := callerauth.ParseKeys(*callerKeys); err != nil {
			return usagef("--caller-keys: %v", strings.TrimPrefix(err.Error(), "CLOUDCALL_CALLER_KEYS: "))
		}
	}
	if set.extra, err = loadEnvFile(*envFile, stderr, false); err != nil {
		return err
	}
	if k, ok := set.extra["CLOUDCALL_CALLER_KEYS"]; ok && k != "" && *callerKeys != "" && k != *callerKeys {
		// Calls signed with the file's keys were refused with nothing said.
		fmt.Fprintf(stderr, "WARNING: --caller-keys and the env file's CLOUDCALL_CALLER_KEYS differ: the flag's keys are used, the file's are not\n")
	}
	switch s := *storeFlag; {
	case s == "embedded":
		if host, _, err := net.SplitHostPort(*storeAddr); err != nil || !console.LoopbackHost(host) {
			return usagef("--store-addr %q: expected a loopback host:port such as 127.0.0.1:6390 (the store holds tokens and records)", *storeAddr)
		}
		st, err := localstore.StartWith(*storeAddr, localstore.Options{Warn: func(msg string) { fmt.Fprintln(stdout, "WARNING: "+msg) }})
		if err != nil {
			return err
		}
		defer st.Close()
		set.storeURL, set.embedded = st.URL(), true
		set.storePfx = "cloudcall:"
	case strings.HasPrefix(s, "redis://"), strings.HasPrefix(s, "rediss://"):
		set.storeURL, set.storePfx = s, storePrefix(*upstream, os.Getenv("CLOUDCALL_STORE_PREFIX"), time.Now())
		warned, err := warnUnreachable(ctx, stdout, s)
		if err != nil {
			return err
		}
		if !warned && !set.ownRecords() {
			warnUndurable(ctx, stdout, "--store", s, set)
		}
	default:
		return usagef("--store %q: expected embedded or a redis:// / rediss:// URL", s)
	}
	if set.ownRecords() {
		if rs, err := config.FromMap(set.extra).Secret("CLOUDCALL_IDEMPOTENCY_STORE"); err == nil && recordstore.IsRedis(rs) {
			warnUndurable(ctx, stdout, "--env-file CLOUDCALL_IDEMPOTENCY_STORE", rs, set)
		}
	}
	real := *upstream == "real"
	if real && set.embedded && !set.ownRecords() {
		what := "the charge refuses to run (-1601) until --env-file sets CLOUDCALL_IDEMPOTENCY_STORE to a postgres:// or mysql:// URL, or --store names a Redis with appendonly yes"
		if v, ok := set.extra["CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE"]; (ok && v == "assume") || (!ok && os.Getenv("CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE") == "assume") {
			what = "CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE=assume waives that check, so the charge runs and its records go with this run"
		}
		fmt.Fprintf(stdout, "WARNING: --upstream real moves real money, and the embedded store forgets the charge's records when cloudcall local stops (a charge cut off at Ctrl-C would charge again in the next run): %s.\n", what)
	}
	if real && set.embedded {
		if msg := ck1SpendsIntoEmbedded(set); msg != "" {
			fmt.Fprintln(stdout, "WARNING: "+msg)
		}
	}
	var launcher []string
	if *debugFn != "" {
		if _, ok := registry.Lookup(*debugFn); !ok {
			return usagef("--debug %q: unknown function%s; known functions: %s", *debugFn, suggest.Hint(*debugFn, registry.Names()), strings.Join(registry.Names(), ", "))
		}
		if launcher, err = delveLauncher(*debugAddr); err != nil {
			return err
		}
	}

	// The ports first: a port in use is said at once, not after the build.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("listen on %s: %w (is another cloudcall local running? pass --addr 127.0.0.1:<free port>)", *addr, err)
		}
		return usagef("--addr %s: %v (expected host:port, e.g. 127.0.0.1:9000)", *addr, err)
	}
	// Closed while the functions build: a call held in the listen backlog
	// ran when they were built, long after its caller had given up (a
	// charge included). Until the banner, a call is refused at once; the
	// port stays bound, so a second run on it is refused before it builds.
	front := ln.Addr().String()
	_ = ln.Close()
	release := reserveFront(front)
	defer release() // on an early return; released before the door opens
	var sbs []*servedSandbox
	if !real {
		if sbs, err = serveSandboxes(*sandboxAddr, envTopSession(set.extra)); err != nil {
			return fmt.Errorf("%w (the sandboxes take the ports from --sandbox-addr %s on, one each: pass --sandbox-addr 127.0.0.1:<free port>)", err, *sandboxAddr)
		}
		defer closeSandboxes(sbs)
	}

	if _, err := emulator.ModuleRoot("."); err != nil {
		return err // before "building", which would be the wrong first line
	}
	fmt.Fprintf(stdout, "cloudcall local: building functions (the first build compiles every dependency: a few minutes; later ones take seconds); the front door http://%s opens when they are built\n", front)
	built, err := buildFunctionsTimed(ctx, stdout, *binDir, "")
	if err != nil {
		return err
	}
	bins := built.bins
	root, err := emulator.ModuleRoot(".")
	if err != nil {
		return err
	}
	absBin := *binDir
	if !filepath.IsAbs(absBin) {
		absBin = filepath.Join(root, absBin)
	}
	// Rebuilds go to this run's own folder: two runs from one checkout
	// deleted each other's (and then failed every cold start).
	removeStaleWatchDirs(absBin)
	watchDir := filepath.Join(absBin, fmt.Sprintf(".watch-%d", os.Getpid()))
	defer os.RemoveAll(watchDir)
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
	// One sink for every line the emulator and its instances print: each
	// line reaches stdout whole, whoever wrote it.
	sink := linewriter.New(stdout, 0)
	var fns []emulator.FunctionConfig
	var tms []emulator.Timer
	for _, f := range registry.All() {
		bin, ok := bins[f.Name]
		if !ok {
			continue
		}
		fc := emulator.FunctionConfig{
			Name: f.Name, Binary: bin, Platform: p, Env: functionEnv(f, p, sbs, real, set),
			Timeout: time.Duration(f.TimeoutSec) * time.Second, MemoryMB: f.MemoryMB,
			MaxInstances: *maxInst, Idle: *idle, Stdout: sink, LogPrefix: f.Name + " | ",
			HTTPMethods: f.HTTPMethods, NoHTTPTrigger: len(f.HTTPMethods) == 0,
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
	emu := emulator.New(emulator.Options{Platform: p, Functions: fns, Timers: tms, Log: sink, AsyncRetries: retries, AsyncRetryDelay: *asyncDelay})
	defer emu.Close()
	var w *watcher
	if *watch {
		build := func(ctx context.Context, root, pkg, dir string) (string, error) {
			if pkg == "./functions/"+*debugFn {
				return buildDebug(ctx, root, pkg, dir)
			}
			return emulator.Build(ctx, root, pkg, dir)
		}
		w = newWatcher(root, watchDir, emu, build, stdout, bins)
		w.seedDurations(built.took)
	}
	cons, err := newConsole(emu, string(p), bins, sbs, w, *debugFn, set.keys())
	if err != nil {
		return err
	}
	var fresh freshConns
	srv := &http.Server{Handler: frontDoors(cons, emu), ReadHeaderTimeout: 10 * time.Second, ConnState: fresh.track}
	srv.RegisterOnShutdown(cons.Close) // an open console tab must not hold the shutdown
	release()
	if ln, err = net.Listen("tcp", front); err != nil {
		return fmt.Errorf("the front door's port was taken while the functions built: %w (pass another --addr)", err)
	}
	defer ln.Close()
	go func() { _ = srv.Serve(ln) }()
	if *timers == "on" {
		emu.RunTimers(ctx)
	}
	banner(stdout, "http://"+ln.Addr().String(), string(p), *upstream, bins, sbs, tms, *timers, set)
	if *debugFn != "" {
		fmt.Fprintf(stdout, "debug: %s runs under Delve on %s (deadline suspended); attach with VS Code (docs/emulator.md: Debugging) or dlv connect %s\n", *debugFn, *debugAddr, *debugAddr)
	}
	if w != nil {
		var names []string
		for _, f := range fns {
			names = append(names, f.Name)
		}
		watching := make(chan struct{})
		go func() {
			defer close(watching)
			if err := w.run(ctx, names); err != nil {
				fmt.Fprintf(stdout, "watch: stopped: %v\n", err)
			}
		}()
		// The watch's folder goes once its last build is over: a build
		// still running at Ctrl-C wrote into it after it was removed.
		defer func() { <-watching }()
	}
	<-ctx.Done()
	if context.Cause(ctx) == errOrphaned {
		fmt.Fprintln(stderr, "cloudcall local: the process that started it exited (go run passes no signal on); stopping")
	}
	if real {
		fmt.Fprintln(stdout, "\ncloudcall local: stopping (instances)")
	} else {
		fmt.Fprintln(stdout, "\ncloudcall local: stopping (instances, sandboxes)")
	}
	shut, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// Nothing starts from now on; connections that have not sent a whole
	// request are closed at once (net/http waits 5 s for them, and a
	// browser's speculative connection held Ctrl-C that long).
	emu.StopStarting()
	fresh.closeAll()
	// Calls in flight, synchronous and asynchronous, get the same 3 s to
	// finish; no queued asynchronous invocation starts meanwhile.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		emu.StopAsync(shut)
	}()
	err = srv.Shutdown(shut)
	wg.Wait()
	if err != nil {
		// Calls still running after the 3 s: their instances are stopped
		// now, and their callers get the 502 naming the exit before the
		// process ends (some got no answer at all: the process exited
		// while those handlers were writing).
		emu.Close()
		last, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(last)
	}
	return nil
}

func banner(w io.Writer, base, platform, upstream string, bins map[string]string, sbs []*servedSandbox, tms []emulator.Timer, timers string, set localSettings) {
	fmt.Fprintf(w, "\ncloudcall local on %s — platform %s, upstream %s\n", base, platform, upstream)
	fmt.Fprintf(w, "console: %s/ (loopback only)\n", base)
	if host, _, err := net.SplitHostPort(strings.TrimPrefix(base, "http://")); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() {
			what := "against the sandboxes"
			if upstream == "real" {
				what = "against the REAL vendors, with your credentials (the charge moves money)"
			}
			fmt.Fprintf(w, "WARNING: listening on %s, reachable from other machines: the invoke APIs (and the HTTP triggers, without --caller-keys) run calls from anyone who can reach it, %s. Use --addr 127.0.0.1:PORT unless you mean it.\n", host, what)
		}
	}
	keyed, anonymous := set.auth()
	switch {
	case keyed && set.callerKeys != "":
		fmt.Fprintln(w, "caller auth: on (--caller-keys); HTTP triggers refuse unsigned calls, as deployed")
	case keyed:
		fmt.Fprintln(w, "caller auth: on (CLOUDCALL_CALLER_KEYS from --env-file); HTTP triggers refuse unsigned calls, as deployed")
	case anonymous:
		fmt.Fprintln(w, "WARNING: CLOUDCALL_ALLOW_ANONYMOUS=true for every function: HTTP triggers take unsigned calls here (never on a platform). --caller-keys turns caller auth on.")
	default:
		fmt.Fprintln(w, "caller auth: HTTP triggers refuse every call (the env file turns CLOUDCALL_ALLOW_ANONYMOUS off and sets no caller keys); use the invoke APIs, or --caller-keys")
	}
	// The invoke APIs stand for the platforms' own authenticated APIs, so
	// they take unsigned calls: only from this machine's programs, never
	// from a web page (the doors refuse cross-site and rebound requests).
	fmt.Fprintln(w, "invoke APIs and /__timers: unsigned, as the platforms' own APIs are to a signed-in user; web pages are refused")
	if set.embedded {
		gone := "gone when the emulator stops, with the sandboxes"
		if upstream == "real" {
			gone = "gone when the emulator stops"
		}
		fmt.Fprintf(w, "store: embedded Redis at %s, shared by every instance (%s)\n", set.storeURL, gone)
	} else {
		kept := ""
		if upstream == "real" {
			kept = ", the same every run (the real vendors' tokens, CK1's refresh token and the charge's records outlive it)"
		}
		fmt.Fprintf(w, "store: %s, keys under %s%s\n", redactURL(set.storeURL), set.storePfx, kept)
	}
	rs, _ := config.FromMap(set.extra).Secret("CLOUDCALL_IDEMPOTENCY_STORE")
	perRun := !set.embedded && upstream != "real" && recordstore.IsRedis(rs)
	if set.ownRecords() && perRun {
		// A Redis records store keeps them under the store prefix, which is
		// this run's on an external store (said "kept across runs", a key
		// charged in one run charged again in the next: an outside tester).
		fmt.Fprintf(w, "charge records: the env file's CLOUDCALL_IDEMPOTENCY_STORE, under this run's key prefix %s (a new run starts with none, as the sandboxes do)\n", set.storePfx)
	} else if set.ownRecords() && upstream == "real" && recordstore.IsRedis(rs) {
		// The env file's CLOUDCALL_STORE_PREFIX is not this run's, and
		// cloudcall records with that file found nothing (an outside
		// re-tester).
		fmt.Fprintf(w, "charge records: the env file's CLOUDCALL_IDEMPOTENCY_STORE, kept across runs under key prefix %s (for cloudcall records, CLOUDCALL_STORE_PREFIX=%s in its --env-file)\n", set.storePfx, set.storePfx)
	} else if set.ownRecords() && upstream == "real" {
		fmt.Fprintln(w, "charge records: the env file's CLOUDCALL_IDEMPOTENCY_STORE, kept across runs")
	} else if set.ownRecords() {
		fmt.Fprintln(w, "charge records: the env file's CLOUDCALL_IDEMPOTENCY_STORE, kept across runs (the sandboxes start empty each run: a key charged in an earlier run replays that run's answer, which the new TOP ledger does not hold)")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nFUNCTION\tHTTP TRIGGER\tFC INVOKE\tLAMBDA INVOKE")
	for _, f := range registry.All() {
		if bins[f.Name] == "" {
			continue
		}
		trigger := "— (none in the descriptors)"
		if len(f.HTTPMethods) > 0 {
			trigger = strings.Join(f.HTTPMethods, ",") + " " + base + "/" + f.Name
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/2023-03-30/functions/%s/invocations\t%s/2015-03-31/functions/%s/invocations\n", f.Name, trigger, base, f.Name, base, f.Name)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nTry:")
	for _, f := range registry.All() {
		if f.Example == "" || len(f.HTTPMethods) == 0 || bins[f.Name] == "" {
			continue
		}
		if upstream == "real" && f.MovesMoney {
			// The example is a sandbox order: against the real vendor it
			// is a real charge (or a refusal), never something to paste.
			fmt.Fprintf(w, "  (%s: no example against the real vendor; it moves money)\n", f.Name)
			continue
		}
		if !anonymous {
			// A trigger refuses an unsigned curl: the invoke API is the
			// unsigned way in from this machine.
			fmt.Fprintf(w, "  curl -s -X POST %s/2023-03-30/functions/%s/invocations -d '%s'\n", base, f.Name, f.Example)
			continue
		}
		fmt.Fprintf(w, "  curl -s -X POST %s/%s -H 'Content-Type: application/json' -d '%s'\n", base, f.Name, f.Example)
	}
	if keyed {
		fmt.Fprintf(w, "  (the HTTP triggers, %s/<function>, take only signed calls: the clients sign them, see the README)\n", base)
	}
	for _, t := range tms {
		fmt.Fprintf(w, "  curl -s -X POST %s/__timers/%s      # fire %s now (timers %s)\n", base, t.Function, t.Name, timers)
	}
	// --cli-binary-format is AWS CLI v2 only; v1 sends --payload as is, so
	// the line below passes the payload from a file, which both read raw.
	fmt.Fprintf(w, "  echo '{\"deliveryId\":\"YTO\",\"bizId\":\"xyz\"}' > in.json && AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x aws lambda invoke --region us-east-1 --endpoint-url %s --function-name logistics-get-quota --payload fileb://in.json out.json\n", base)
	for _, s := range sbs {
		fmt.Fprintf(w, "sandbox %-8s %s   (admin: %s%s)\n", s.vendor, s.url, s.url, s.admin)
	}
	fmt.Fprintln(w, "\nCtrl-C stops everything.")
}

// storePrefix is the key namespace on an external store. The sandboxes
// start fresh each run, so a sandbox run gets a namespace of its own: the
// functions never find a token or record the new sandboxes never issued.
// The real vendors outlive the run, and so must what was kept of them: the
// charge's records (a per-run namespace charged a key again in the next
// run), CK1's rotated refresh token (the one in the env file is spent) and
// the tokens themselves. A prefix in the environment is used as given.
func storePrefix(upstream, fromEnv string, now time.Time) string {
	switch {
	case fromEnv != "":
		return fromEnv
	case upstream == "real":
		return "cloudcall:local:real:"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "cloudcall:local:" + now.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b) + ":"
}

// redactURL hides a password in a store URL.
func redactURL(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.LastIndex(u[:i], ":"); j > strings.Index(u, "//")+1 {
			return u[:j+1] + "***" + u[i:]
		}
	}
	return u
}

// warnUnreachable says at start that --store does not answer (a mistyped
// port): the functions would start and fall back to their own memory with
// only a WARN line in the first function's log. It reports whether it
// warned; a Redis that refuses the URL's password or database is an error.
func warnUnreachable(ctx context.Context, w io.Writer, url string) (bool, error) {
	rs, err := redisstore.Open(redisstore.Options{URL: url, Timeout: 2 * time.Second})
	if err != nil {
		// A URL that cannot be read never works: not an outage to wait out.
		return false, usagef("--store %s: %v", redactURL(url), strings.TrimPrefix(err.Error(), "CLOUDCALL_STORE: "))
	}
	defer rs.Close()
	_, err = rs.Get(ctx, "~probe")
	if err == nil || errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	// A Redis that answers and refuses these settings will refuse them
	// every time: that is a mistake in the URL, not an outage to wait out.
	for _, refusal := range []string{"WRONGPASS", "NOAUTH", "ERR AUTH", "DB index is out of range", "invalid DB index"} {
		if strings.Contains(err.Error(), refusal) {
			return false, usagef("--store %s: that Redis refused these settings (%v): fix the password or the database number in the URL", redactURL(url), err)
		}
	}
	fmt.Fprintf(w, "WARNING: --store %s does not answer (%v): until it does, every instance serves from its own memory (each fetches its own tokens) and the charge answers -1501. Check the URL, or start that Redis.\n", redactURL(url), err)
	return true, nil
}

// warnUndurable says at start, not at the first charge, that the charge will
// refuse the Redis where its records go (appendonly off), and how to waive it
// for a local trial.
func warnUndurable(ctx context.Context, w io.Writer, what, url string, set localSettings) {
	if set.extra["CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE"] == "assume" {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := redisrecords.Persistence(pctx, url); errors.Is(err, idempotency.ErrNotDurable) {
		fmt.Fprintf(w, "WARNING: %s %s: the charge keeps its records in this store and will refuse it (-1601): %v. For local trials, put CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE=assume in --env-file.\n", what, redactURL(url), err)
	}
}

// loadEnvFile reads --env-file (none when path is empty); a file that cannot
// be read, or caller keys in it that are not valid, is a usage error now,
// as --caller-keys is, rather than -1601 from every call. usesStore: the
// caller takes the file's store settings (CLOUDCALL_STORE, its _FILE,
// CLOUDCALL_STORE_PREFIX), as cloudcall invoke does, instead of a store of
// its own.
func loadEnvFile(path string, stderr io.Writer, usesStore bool) (map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	env, err := readEnvFile(path)
	if err != nil {
		return nil, usagef("--env-file %s: %v", path, err)
	}
	if rs, rerr := config.FromMap(env).Secret("CLOUDCALL_IDEMPOTENCY_STORE"); rerr != nil {
		err = rerr // a _FILE that cannot be read
	} else if strings.EqualFold(strings.TrimSpace(rs), "memory") {
		err = errors.New("CLOUDCALL_IDEMPOTENCY_STORE=memory would give each instance its own charge records (a key could charge once per instance): give a postgres://, mysql:// or redis:// URL, or leave it out and the records share the emulator's store")
	} else if rs != "" && !slices.ContainsFunc([]string{"postgres://", "postgresql://", "mysql://", "redis://", "rediss://"}, func(p string) bool { return strings.HasPrefix(rs, p) }) {
		err = errors.New("CLOUDCALL_IDEMPOTENCY_STORE: expected a postgres://, mysql://, redis:// or rediss:// URL")
	}
	if err == nil {
		var keys string
		keys, err = config.FromMap(env).Secret("CLOUDCALL_CALLER_KEYS")
		if err == nil && keys != "" {
			_, err = callerauth.ParseKeys(keys)
		}
	}
	if err != nil {
		return nil, usagef("--env-file %s: %v", path, err)
	}
	// Said, not silently dropped: every instance must share one store.
	for _, k := range []string{"CLOUDCALL_STORE", "CLOUDCALL_STORE_FILE", "CLOUDCALL_STORE_PREFIX"} {
		if _, ok := env[k]; ok && !usesStore {
			why := "every instance shares the emulator's store (cloudcall local --store redis://... names another)"
			if k == "CLOUDCALL_STORE_PREFIX" {
				// cloudcall records given this file looked under it, and
				// found nothing (an outside re-tester).
				why = "the functions' keys go under the prefix the banner names, which is also the one to give cloudcall records"
			}
			fmt.Fprintf(stderr, "--env-file %s: %s is not used: %s\n", path, k, why)
		}
	}
	return env, nil
}

// readEnvFile reads dotenv syntax (KEY=value, # comments, quotes, export),
// after a UTF-8 byte order mark (what Windows Notepad writes), which
// godotenv read as part of the first name. A parse error names the line
// and never quotes the file: godotenv's message quotes it from the bad
// line on ("near …", "unterminated quoted value …"), and the lines after
// a typo are the file's secrets (an outside tester's caller key went to
// the terminal).
func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := strings.TrimPrefix(string(b), "\ufeff")
	env, err := godotenv.Unmarshal(text)
	if _, unnamed := env[""]; err == nil && unnamed {
		// godotenv takes "=value" as a variable with no name, which no
		// function reads: said, as a typo the user meant to fix.
		for i, l := range strings.Split(text, "\n") {
			if t := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "export ")); strings.HasPrefix(t, "=") {
				return nil, fmt.Errorf("line %d cannot be read: it has no name before = (a line is NAME=value, or a # comment)", i+1)
			}
		}
		return nil, errors.New("a line has no name before = (a line is NAME=value, or a # comment)")
	}
	if err == nil {
		// godotenv also takes "A B=v" (a name with a space) and YAML's
		// "name: value", so a pasted bare URL (redis://u:pw@h) became a
		// variable "redis": said, as for "=value" (a tester).
		for name := range env {
			if line, colon := envLineOf(text, name); !envName(name) || colon {
				what := "the name before = is not a variable name (letters, digits and _)"
				if colon {
					what = "it is not NAME=value (NAME: value, or a bare URL, is not read)"
				}
				if line > 0 {
					return nil, fmt.Errorf("line %d cannot be read: %s (a line is NAME=value, or a # comment)", line, what)
				}
				return nil, fmt.Errorf("a line cannot be read: %s (a line is NAME=value, or a # comment)", what)
			}
		}
		return env, nil
	}
	what := "it is not NAME=value or a # comment"
	switch {
	case strings.Contains(err.Error(), "unterminated quoted value"):
		what = "a quoted value has no closing quote"
	case strings.Contains(err.Error(), "in variable name"):
		what = "the name before = is not a variable name (letters, digits and _)"
	}
	if line := badEnvLine(text); line > 0 {
		return nil, fmt.Errorf("line %d cannot be read: %s (a line is NAME=value, or a # comment)", line, what)
	}
	return nil, fmt.Errorf("the file cannot be read as dotenv: %s (a line is NAME=value, or a # comment)", what)
}

// envName says whether name is what a shell takes as a variable name.
func envName(name string) bool {
	for i, r := range name {
		if r != '_' && (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return name != ""
}

// envLineOf is the first line that sets name, and whether it does so with
// YAML's colon rather than =; 0 when none is found.
func envLineOf(text, name string) (line int, colon bool) {
	for i, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		t = strings.TrimSpace(strings.TrimPrefix(t, "export "))
		rest, ok := strings.CutPrefix(t, name)
		if !ok {
			continue
		}
		switch rest = strings.TrimLeft(rest, " \t"); {
		case strings.HasPrefix(rest, "="):
			return i + 1, false
		case strings.HasPrefix(rest, ":"):
			return i + 1, true
		}
	}
	return 0, false
}

// badEnvLine is the line a parse error is about: the last line L whose
// lines before it still parse. Scanning from the end finds it past a valid
// quoted value of several lines, whose first lines alone do not parse (the
// first failing prefix named such a value's opening line: a re-tester).
// Each try parses a prefix again, so the search has a time budget: 0 when
// it runs out (a 10,000-line file took 45 s when every line was tried
// from the start).
func badEnvLine(text string) int {
	lines := strings.SplitAfter(text, "\n")
	budget := time.Now().Add(envLineBudget)
	for l := len(lines); l >= 1; l-- {
		if _, err := godotenv.Unmarshal(strings.Join(lines[:l-1], "")); err == nil {
			return l
		}
		if time.Now().After(budget) {
			return 0
		}
	}
	return 0
}

// envLineBudget bounds badEnvLine: 2,000 lines with the error on the first
// took 0.13 s.
const envLineBudget = 500 * time.Millisecond

// defaultStore is $CLOUDCALL_STORE when it names a Redis, else the embedded
// store (memory would give each instance its own state: not what deploys).
func defaultStore() string {
	if v := os.Getenv("CLOUDCALL_STORE"); strings.HasPrefix(v, "redis://") || strings.HasPrefix(v, "rediss://") {
		return v
	}
	return "embedded"
}

// freshConns are the front door's connections that have not sent a whole
// first request yet (http.StateNew): no call runs on them.
type freshConns struct {
	mu sync.Mutex
	m  map[net.Conn]struct{}
}

func (f *freshConns) track(c net.Conn, s http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s != http.StateNew {
		delete(f.m, c)
		return
	}
	if f.m == nil {
		f.m = map[net.Conn]struct{}{}
	}
	f.m[c] = struct{}{}
}

func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.m {
		_ = c.Close()
	}
	clear(f.m)
}

// errOrphaned ends local when the process that started it is gone.
var errOrphaned = errors.New("the parent process exited")

// untilOrphaned ends ctx when the `go run` that started this process exits:
// go run does not pass SIGTERM on to the program it built, so an IDE or
// script that stopped it left the emulator serving on its ports, with its
// instances (golang/go#40467, an outside tester). Only a parent named go is
// watched: under nohup, or started by a shell that then exits, the
// emulator is meant to outlive its parent (a re-tester's nohup stopped).
func untilOrphaned(ctx context.Context, ppid func() int, name func(pid int) string, every time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	first := ppid()
	if name(first) != "go" {
		return ctx, func() { cancel(nil) }
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if ppid() != first {
					cancel(errOrphaned)
					return
				}
			}
		}
	}()
	return ctx, func() { cancel(nil) }
}

// processName is a process's command name (Linux's /proc; "" elsewhere,
// where nothing is watched).
func processName(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ck1SpendsIntoEmbedded says when CK1 OAuth will run against the real CK1 on
// the embedded store: CK1_ALLOW_MEMORY_STORE=true (which `cloudcall sandbox`'s
// export lines carry) waives the refusal, so the first refresh spends
// CK1_REFRESH_TOKEN and keeps the rotated one only in a store that dies with
// this run; every later run is refused by CK1 (an outside tester).
func ck1SpendsIntoEmbedded(set localSettings) string {
	f, ok := registry.Lookup("ck1-pricing-inbound-box")
	if !ok {
		return ""
	}
	env := config.FromMap(functionEnv(f, runtimeapi.FC, nil, true, set))
	fixed, _ := env.Secret("CK1_ACCESS_TOKEN")
	refresh, _ := env.Secret("CK1_REFRESH_TOKEN")
	if fixed != "" || refresh == "" || !env.Bool("CK1_ALLOW_MEMORY_STORE", false) {
		return ""
	}
	return "CK1_ALLOW_MEMORY_STORE=true with --upstream real on the embedded store: CK1's first refresh spends CK1_REFRESH_TOKEN and keeps the rotated one only in this run's store, so the next run presents a spent token and CK1 refuses it until you authorise again. " +
		"Run with --store redis://... (a Redis that persists: the rotated token is kept under cloudcall:local:real:), or unset CK1_ALLOW_MEMORY_STORE (CK1 then answers -1601 instead of spending the token)"
}
