package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/console"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/registry"
)

// copyTree copies the module's sources (not .git, build output, node_modules
// or docs) so a test can edit them.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "dist", "node_modules", "docs":
				if rel != "." {
					return filepath.SkipDir
				}
			}
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	require.NoError(t, err)
}

// TestWatch runs `cloudcall local --watch` on a copy of the source tree and
// edits a shared package logistics-get-quota imports (shared/wechat) while
// four callers keep calling it: the next calls answer with the new code and
// none fails during the swap; then a change that does not compile keeps the
// last good binary serving and shows the compiler's file:line in the terminal
// and the console.
func TestWatch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every function twice")
	}
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	tree := t.TempDir()
	copyTree(t, root, tree)
	base, out := runLocalIn(t, tree, "--watch")
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "watch: ") }, time.Minute, 50*time.Millisecond)
	// Every registry function has its folder in the tree: each is watched.
	require.Regexp(t, fmt.Sprintf(`watch: \d+ package folders of %d functions`, len(registry.All())), out.String())

	client := &http.Client{Timeout: 30 * time.Second}
	call := func() (int, map[string]any, error) {
		resp, err := client.Post(base+"/logistics-get-quota", "application/json", strings.NewReader(`{"deliveryId":"YTO","bizId":"xyz"}`))
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("%s: %w", b, err)
		}
		return resp.StatusCode, m, nil
	}
	status, m, err := call()
	require.NoError(t, err)
	require.Equal(t, 200, status)
	require.Equal(t, "openapi.logistics.getQuota:ok", m["errMsg"])

	// Callers keep going through the rebuild and the swap.
	var (
		mu       sync.Mutex
		calls    int
		failures []string
		newSeen  int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, m, err := call()
				mu.Lock()
				calls++
				switch {
				case err != nil:
					failures = append(failures, err.Error())
				case status != 200 || m["errCode"] != float64(0):
					failures = append(failures, fmt.Sprintf("%d %v", status, m))
				case m["errMsg"] == "openapi.logistics.getQuotaV2:ok":
					newSeen++
				}
				mu.Unlock()
			}
		}()
	}
	src := filepath.Join(tree, "shared", "wechat", "logistics.go")
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	const old = `APIGetQuota = "openapi.logistics.getQuota"`
	require.Contains(t, string(b), old)
	require.NoError(t, os.WriteFile(src, []byte(strings.Replace(string(b), old, `APIGetQuota = "openapi.logistics.getQuotaV2"`, 1)), 0o644))

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return newSeen >= 20
	}, 3*time.Minute, 20*time.Millisecond, "the new code never answered")
	close(stop)
	wg.Wait()
	require.Empty(t, failures, "no call fails during the swap")
	t.Logf("%d calls during the rebuild and swap, %d answered by the new code, 0 failed", calls, newSeen)
	status, m, err = call()
	require.NoError(t, err)
	require.Equal(t, 200, status)
	require.Equal(t, "openapi.logistics.getQuotaV2:ok", m["errMsg"], "every call after the swap runs the new code")
	rebuilt := regexp.MustCompile(`watch: rebuilt logistics-get-quota in [0-9.]+m?s`)
	require.True(t, rebuilt.MatchString(out.String()), "the rebuild time is printed")
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "watch: rebuilt quota-alert in ") }, 3*time.Minute, 50*time.Millisecond,
		"a shared package rebuilds every function that imports it")
	require.False(t, strings.Contains(out.String(), "rebuilding ck1-pricing-inbound-box"), "functions that do not import it are left alone")
	t.Logf("terminal: %s", rebuilt.FindString(out.String()))

	// A change that does not compile: the last good binary keeps serving.
	b, err = os.ReadFile(src)
	require.NoError(t, err)
	broken := string(b) + "\nvar watchTestBroken int = \"not an int\"\n"
	line := strings.Count(broken, "\n") // the line just added
	require.NoError(t, os.WriteFile(src, []byte(broken), 0o644))
	where := regexp.MustCompile(fmt.Sprintf(`logistics\.go:%d:\d+: cannot use "not an int"`, line))
	require.Eventually(t, func() bool {
		return strings.Contains(out.String(), "watch: logistics-get-quota does not compile; the last good binary keeps serving") &&
			where.MatchString(out.String())
	}, 3*time.Minute, 50*time.Millisecond, "the compiler error (file:line) is shown in the terminal")
	for range 5 {
		status, m, err = call()
		require.NoError(t, err)
		require.Equal(t, 200, status)
		require.Equal(t, "openapi.logistics.getQuotaV2:ok", m["errMsg"])
	}
	resp, err := client.Get(base + "/__console/api/state")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st struct {
		Functions []console.FunctionState `json:"functions"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	var got *console.FunctionState
	for i := range st.Functions {
		if st.Functions[i].Name == "logistics-get-quota" {
			got = &st.Functions[i]
		}
	}
	require.NotNil(t, got)
	require.Equal(t, "build-failed", got.State)
	require.NotNil(t, got.Build)
	require.False(t, got.Build.OK)
	require.Regexp(t, where, got.Build.Error, "the console shows the same file:line")

	// A failed build that imports a package it did not before, broken
	// itself: fixing that package rebuilds (its folder was never watched,
	// because the imports were read again only after a build that passed).
	probe := filepath.Join(tree, "shared", "watchprobe")
	require.NoError(t, os.MkdirAll(probe, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(probe, "probe.go"), []byte("package watchprobe\n\nfunc Hello() string { return \"hello\" + 1 }\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(tree, "shared", "wechat", "probe_use.go"),
		[]byte("package wechat\n\nimport \"github.com/cloudcall/cloudcall/shared/watchprobe\"\n\nvar _ = watchprobe.Hello\n"), 0o644))
	require.NoError(t, os.WriteFile(src, b, 0o644)) // logistics.go compiles again
	require.Eventually(t, func() bool {
		return regexp.MustCompile(`watchprobe/probe\.go:3:\d+: invalid operation`).MatchString(out.String())
	},
		3*time.Minute, 50*time.Millisecond, "the new package's error is shown")
	done := strings.Count(out.String(), "watch: rebuilt logistics-get-quota in ")
	require.NoError(t, os.WriteFile(filepath.Join(probe, "probe.go"), []byte("package watchprobe\n\nfunc Hello() string { return \"hello\" }\n"), 0o644))
	require.Eventually(t, func() bool { return strings.Count(out.String(), "watch: rebuilt logistics-get-quota in ") > done },
		3*time.Minute, 50*time.Millisecond, "fixing the package the compiler named rebuilds the function")
}

// A go.work in a parent folder does not change what --watch watches: with
// one, the listing found no folder and nothing reloaded, without a word
// (an outside tester).
func TestWatchIgnoresAGoWork(t *testing.T) {
	work := filepath.Join(t.TempDir(), "go.work")
	require.NoError(t, os.WriteFile(work, []byte("go 1.26.0\n\nuse ./no-such-module\n"), 0o600))
	t.Setenv("GOWORK", work)
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	w := &watcher{root: root}
	dirs, _, err := w.deps(context.Background(), "quota-alert")
	require.NoError(t, err)
	require.Contains(t, dirs, filepath.Join(root, "functions", "quota-alert"))
	require.Contains(t, dirs, filepath.Join(root, "shared", "quotaalert"))
}

// An input schema is compiled into the functions (//go:embed), and its
// messages are the validation messages: an edit there went live only when
// some Go edit rebuilt, and said nothing (an outside tester). --watch
// follows the files packages embed, and only the functions that embed them.
func TestWatchFollowsEmbeddedFiles(t *testing.T) {
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	w := &watcher{root: root, dirs: map[string]map[string]bool{}, embeds: map[string]map[string]bool{}}
	fsw, err := fsnotify.NewWatcher()
	require.NoError(t, err)
	defer fsw.Close()
	for _, fn := range []string{"ck1-pricing-inbound-box", "logistics-get-quota"} {
		require.NoError(t, w.track(context.Background(), fsw, fn))
	}
	schema := filepath.Join(root, "shared", "registry", "schemas", "ck1-pricing-inbound-box.input.json")
	require.Equal(t, []string{"ck1-pricing-inbound-box", "logistics-get-quota"}, w.affected(schema), "the registry embeds every schema in every function")
	require.Contains(t, fsw.WatchList(), filepath.Dir(schema))
	require.Nil(t, w.affected(filepath.Join(root, "shared", "registry", "schemas", "notes.txt")), "a file nobody embeds")
	require.Equal(t, []string{"ck1-pricing-inbound-box"}, w.affected(filepath.Join(root, "shared", "ck1", "pricing.go")))
}
