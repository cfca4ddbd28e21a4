package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/cloudcall/cloudcall/shared/console"
)

// swapper is what the watcher needs of the emulator.
type swapper interface {
	Probe(ctx context.Context, fn, path string) error
	SetBinary(fn, path string) error
}

// builder compiles one function into dir; emulator.Build in production.
type builder func(ctx context.Context, root, pkg, dir string) (string, error)

// watcher rebuilds a function when a source file of any package it imports
// from this module changes (go list -deps), and swaps its instances to the
// new binary. A build that fails keeps the last good binary serving.
type watcher struct {
	// watchDir holds this run's rebuilds, one folder per build; nothing
	// else is ever in it.
	root, watchDir string
	build          builder
	emu            swapper
	out            io.Writer

	mu   sync.Mutex
	gen  int
	dirs map[string]map[string]bool // package dir → functions that import it
	// embeds are the files packages compile in (//go:embed: the input
	// schemas, where the validation messages live) → functions: an edit
	// there went live only when some Go edit rebuilt (an outside tester).
	embeds map[string]map[string]bool
	builds map[string]console.Build
	bins   map[string]string // current binary per function
}

func newWatcher(root, watchDir string, emu swapper, build builder, out io.Writer, bins map[string]string) *watcher {
	w := &watcher{root: root, watchDir: watchDir, build: build, emu: emu, out: out, dirs: map[string]map[string]bool{},
		embeds: map[string]map[string]bool{}, builds: map[string]console.Build{}, bins: map[string]string{}}
	for fn, b := range bins {
		w.bins[fn] = b
		w.builds[fn] = console.Build{OK: true, At: time.Now()}
	}
	return w
}

// seedDurations records how long the first builds took (the console said
// "built in 0 ms").
func (w *watcher) seedDurations(took map[string]time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for fn, d := range took {
		if b, ok := w.builds[fn]; ok {
			b.DurationMs = d.Milliseconds()
			w.builds[fn] = b
		}
	}
}

// removeStaleWatchDirs removes the rebuild folders of runs that are gone
// (".watch-<pid>" whose process no longer exists, and the single ".watch"
// of earlier versions); a live run's folder is left alone.
func removeStaleWatchDirs(binDir string) {
	_ = os.RemoveAll(filepath.Join(binDir, ".watch"))
	ents, _ := os.ReadDir(binDir)
	for _, e := range ents {
		pid, ok := strings.CutPrefix(e.Name(), ".watch-")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil || n <= 0 || alive(n) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(binDir, e.Name()))
	}
}

// alive says whether a process with this pid exists (EPERM: it does, as
// another user's).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Builds reports the latest build of every function (the console shows it).
func (w *watcher) Builds() map[string]console.Build {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]console.Build, len(w.builds))
	for k, v := range w.builds {
		out[k] = v
	}
	return out
}

// deps lists the folders of the module's packages fn's main imports,
// directly or not, itself included; a package that does not compile is
// listed with what it imports (-e).
func (w *watcher) deps(ctx context.Context, fn string) (dirs, embeds []string, err error) {
	// One line per package folder ("D dir") and per file it embeds
	// ("E dir/file"): lines, not fields, as a path may hold spaces.
	const format = `{{if not .Standard}}D {{.Dir}}{{"\n"}}{{range .EmbedFiles}}E {{$.Dir}}/{{.}}{{"\n"}}{{end}}{{end}}`
	cmd := exec.CommandContext(ctx, "go", "list", "-e", "-deps", "-tags", "lambda.norpc", "-f", format, "./functions/"+fn)
	cmd.Dir = w.root
	cmd.Env = append(os.Environ(), "GOWORK=off") // as the builds: a parent go.work listed no folder, and nothing reloaded
	b, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("go list -deps ./functions/%s: %w", fn, err)
	}
	inModule := func(p string) bool {
		rel, err := filepath.Rel(w.root, p)
		return err == nil && !strings.HasPrefix(rel, "..")
	}
	for _, line := range strings.Split(string(b), "\n") {
		kind, p, ok := strings.Cut(line, " ")
		if !ok || !inModule(p) {
			continue
		}
		if kind == "D" {
			dirs = append(dirs, p)
		} else if kind == "E" {
			embeds = append(embeds, filepath.Clean(p))
		}
	}
	if len(dirs) == 0 {
		// Its own folder at least: none means the listing went wrong, and
		// watching nothing reloaded nothing without a word.
		return nil, nil, fmt.Errorf("go list -deps ./functions/%s listed no package folder of this module", fn)
	}
	return dirs, embeds, nil
}

// track (re)computes fn's folders and adds the new ones to fsw.
func (w *watcher) track(ctx context.Context, fsw *fsnotify.Watcher, fn string) error {
	dirs, embeds, err := w.deps(ctx, fn)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, fns := range w.dirs {
		delete(fns, fn)
	}
	for _, fns := range w.embeds {
		delete(fns, fn)
	}
	watch := func(d string) error {
		if _, ok := w.dirs[d]; ok {
			return nil
		}
		w.dirs[d] = map[string]bool{}
		if err := fsw.Add(d); err != nil {
			return fmt.Errorf("watch %s: %w", d, err)
		}
		return nil
	}
	for _, d := range dirs {
		if err := watch(d); err != nil {
			return err
		}
		w.dirs[d][fn] = true
	}
	for _, f := range embeds {
		// The file's folder is watched for it (schemas/ is no package).
		if err := watch(filepath.Dir(f)); err != nil {
			return err
		}
		if w.embeds[f] == nil {
			w.embeds[f] = map[string]bool{}
		}
		w.embeds[f][fn] = true
	}
	return nil
}

// affected names the functions a changed file belongs to (sorted).
func (w *watcher) affected(path string) []string {
	base := filepath.Base(path)
	if (base == "go.mod" || base == "go.sum") && filepath.Dir(path) == w.root {
		return w.all() // a dependency changed: everything links it
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	fns := w.embeds[filepath.Clean(path)]
	if fns == nil {
		if !strings.HasSuffix(base, ".go") || strings.HasSuffix(base, "_test.go") || strings.HasPrefix(base, ".") {
			return nil
		}
		fns = w.dirs[filepath.Dir(path)]
	}
	var out []string
	for fn := range fns {
		out = append(out, fn)
	}
	sort.Strings(out)
	return out
}

// all names every function tracked.
func (w *watcher) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	set := map[string]bool{}
	for _, fns := range w.dirs {
		for fn := range fns {
			set[fn] = true
		}
	}
	out := make([]string, 0, len(set))
	for fn := range set {
		out = append(out, fn)
	}
	sort.Strings(out)
	return out
}

// run watches until ctx ends.
func (w *watcher) run(ctx context.Context, fns []string) error {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer fsw.Close()
	for _, fn := range fns {
		if err := w.track(ctx, fsw, fn); err != nil {
			return err
		}
	}
	if err := fsw.Add(w.root); err != nil { // go.mod, go.sum
		return fmt.Errorf("watch %s: %w", w.root, err)
	}
	w.mu.Lock()
	n := len(w.dirs)
	w.mu.Unlock()
	fmt.Fprintf(w.out, "watch: %d package folders of %d functions; a change rebuilds the functions that import it\n", n, len(fns))
	pending := map[string]bool{}
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-fsw.Errors:
			if !ok {
				return nil
			}
			fmt.Fprintf(w.out, "watch: %v\n", err)
		case ev, ok := <-fsw.Events:
			if !ok {
				return nil
			}
			if !ev.Has(fsnotify.Write) && !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename) {
				continue
			}
			for _, fn := range w.affected(ev.Name) {
				pending[fn] = true
			}
			if len(pending) > 0 {
				// Editors write a file in several steps: build once they settle.
				debounce = time.After(150 * time.Millisecond)
			}
		case <-debounce:
			debounce = nil
			names := make([]string, 0, len(pending))
			for fn := range pending {
				names = append(names, fn)
			}
			sort.Strings(names)
			pending = map[string]bool{}
			for _, fn := range names {
				if ctx.Err() != nil {
					return nil // shutting down: no build starts now
				}
				w.rebuild(ctx, fn)
				// Imports may have changed, in a build that failed too: the
				// package the compiler names is then watched, and fixing
				// it rebuilds (go list -e lists what it can of a broken
				// package).
				_ = w.track(ctx, fsw, fn)
			}
		}
	}
}

// rebuild builds fn into a fresh folder and swaps to it; a failed build
// keeps the last good binary and reports the compiler's file:line output.
func (w *watcher) rebuild(ctx context.Context, fn string) bool {
	w.mu.Lock()
	w.gen++
	dir := filepath.Join(w.watchDir, strconv.Itoa(w.gen))
	w.mu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(w.out, "watch: %v\n", err)
		return false
	}
	fmt.Fprintf(w.out, "watch: rebuilding %s\n", fn)
	start := time.Now()
	bin, err := w.build(ctx, w.root, "./functions/"+fn, dir)
	took := time.Since(start)
	if err != nil {
		_ = os.RemoveAll(dir)
		if ctx.Err() != nil {
			return false // shutting down: the build was cut short, not wrong
		}
		msg := compilerOutput(err)
		w.mu.Lock()
		w.builds[fn] = console.Build{OK: false, At: time.Now(), DurationMs: took.Milliseconds(), Error: msg, Failed: "compile"}
		w.mu.Unlock()
		fmt.Fprintf(w.out, "watch: %s does not compile; the last good binary keeps serving:\n%s\n", fn, indent(msg))
		return false
	}
	// A build that compiles but exits at start (a panic in init) would
	// fail every call and start a process for each: it is refused too.
	if err := w.emu.Probe(ctx, fn, bin); err != nil {
		_ = os.RemoveAll(dir)
		if ctx.Err() != nil {
			return false
		}
		msg := err.Error()
		w.mu.Lock()
		w.builds[fn] = console.Build{OK: false, At: time.Now(), DurationMs: took.Milliseconds(), Error: msg, Failed: "start"}
		w.mu.Unlock()
		fmt.Fprintf(w.out, "watch: %s builds but does not start and stay up; the last good binary keeps serving:\n%s\n", fn, indent(msg))
		return false
	}
	if err := w.emu.SetBinary(fn, bin); err != nil {
		fmt.Fprintf(w.out, "watch: %v\n", err)
		return false
	}
	w.mu.Lock()
	old := w.bins[fn]
	w.bins[fn] = bin
	w.builds[fn] = console.Build{OK: true, At: time.Now(), DurationMs: took.Milliseconds()}
	w.mu.Unlock()
	// Instances still finishing a call run the old file; unlinking it is
	// safe, its folder goes with it once empty.
	if strings.HasPrefix(old, w.watchDir+string(filepath.Separator)) {
		_ = os.Remove(old)
		_ = os.Remove(filepath.Dir(old))
	}
	fmt.Fprintf(w.out, "watch: rebuilt %s in %s; new calls run it, calls in flight finish on the old binary\n", fn, took.Round(10*time.Millisecond))
	return true
}

// compilerOutput keeps the go build output (file:line: message) of an error
// from emulator.Build.
func compilerOutput(err error) string {
	s := err.Error()
	if _, rest, ok := strings.Cut(s, "\n"); ok {
		s = rest
	}
	return strings.TrimSpace(s)
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
