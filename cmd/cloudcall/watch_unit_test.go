package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type fakeSwapper struct {
	mu       sync.Mutex
	swaps    []string
	probeErr error
}

func (f *fakeSwapper) Probe(context.Context, string, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.probeErr
}

func (f *fakeSwapper) SetBinary(fn, path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.swaps = append(f.swaps, fn+"="+path)
	return nil
}

func TestRebuildSwapsOnlyWhatCompiles(t *testing.T) {
	bin := t.TempDir()
	sw := &fakeSwapper{}
	fail := true
	build := func(_ context.Context, root, pkg, dir string) (string, error) {
		if fail {
			return "", errors.New("go build ./functions/a: exit status 1\nfunctions/a/main.go:3:9: undefined: nope")
		}
		out := filepath.Join(dir, filepath.Base(pkg))
		return out, os.WriteFile(out, []byte("bin"), 0o755)
	}
	var out bytes.Buffer
	w := newWatcher(t.TempDir(), filepath.Join(bin, ".watch-1"), sw, build, &out, map[string]string{"a": "/first/a"})
	require.True(t, w.Builds()["a"].OK)
	w.seedDurations(map[string]time.Duration{"a": 1500 * time.Millisecond})
	require.Equal(t, int64(1500), w.Builds()["a"].DurationMs, "the first build's time, not 0 ms")

	require.False(t, w.rebuild(context.Background(), "a"))
	require.Empty(t, sw.swaps, "a failed build swaps nothing")
	b := w.Builds()["a"]
	require.False(t, b.OK)
	require.Equal(t, "functions/a/main.go:3:9: undefined: nope", b.Error)
	require.Equal(t, "compile", b.Failed)
	require.Contains(t, out.String(), "watch: a does not compile; the last good binary keeps serving:\n  functions/a/main.go:3:9: undefined: nope")

	fail = false
	require.True(t, w.rebuild(context.Background(), "a"))
	require.True(t, w.rebuild(context.Background(), "a"))
	require.Equal(t, []string{"a=" + filepath.Join(bin, ".watch-1", "2", "a"), "a=" + filepath.Join(bin, ".watch-1", "3", "a")}, sw.swaps)
	require.True(t, w.Builds()["a"].OK)
	require.NoFileExists(t, filepath.Join(bin, ".watch-1", "2", "a"), "the replaced build is removed")
	require.FileExists(t, filepath.Join(bin, ".watch-1", "3", "a"))
	require.Regexp(t, `watch: rebuilt a in [0-9.]+m?s; new calls run it`, out.String())

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fail = true
	require.False(t, w.rebuild(ctx, "a"))
	require.True(t, w.Builds()["a"].OK, "a build cut short by shutdown is not a compile error")

	fail = false
	// It compiles, but the new binary exits before asking for work.
	sw.probeErr = errors.New("a failed to start: instance exited before asking for work: exit status 2\n--- last output ---\npanic: boom from init")
	require.False(t, w.rebuild(context.Background(), "a"))
	require.Len(t, sw.swaps, 2, "a build that exits at start swaps nothing")
	require.False(t, w.Builds()["a"].OK)
	require.Contains(t, w.Builds()["a"].Error, "panic: boom from init")
	require.Equal(t, "start", w.Builds()["a"].Failed, "the console says it does not start, not that it does not compile")
	require.Contains(t, out.String(), "watch: a builds but does not start and stay up; the last good binary keeps serving:")
	require.NoDirExists(t, filepath.Join(bin, ".watch-1", "5"), "the refused build is removed")
	require.FileExists(t, filepath.Join(bin, ".watch-1", "3", "a"), "the last good one stays")
}

// Two runs from one checkout shared bin/.watch: each removed it at start
// and at exit, and the other then failed every cold start (outside tester).
// A run keeps its rebuilds in .watch-<pid> and removes only those of runs
// that are gone.
func TestStaleWatchDirs(t *testing.T) {
	bin := t.TempDir()
	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	own := filepath.Join(bin, fmt.Sprintf(".watch-%d", os.Getpid()))
	gone := filepath.Join(bin, fmt.Sprintf(".watch-%d", dead.Process.Pid))
	for _, d := range []string{own, gone, filepath.Join(bin, ".watch", "3"), filepath.Join(bin, ".watch-notapid")} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	removeStaleWatchDirs(bin)
	require.DirExists(t, own, "a live run's rebuilds stay")
	require.NoDirExists(t, gone, "a gone run's are removed")
	require.NoDirExists(t, filepath.Join(bin, ".watch"), "an earlier version's single folder is removed")
	require.DirExists(t, filepath.Join(bin, ".watch-notapid"), "what is not a run's is left alone")
}

func TestAffectedFiles(t *testing.T) {
	w := newWatcher("/m", "/m/bin", &fakeSwapper{}, nil, &bytes.Buffer{}, nil)
	w.dirs["/m/shared/wechat"] = map[string]bool{"logistics-get-quota": true, "quota-alert": true}
	w.dirs["/m/functions/quota-alert"] = map[string]bool{"quota-alert": true}
	cases := []struct {
		path string
		want []string
	}{
		{"/m/shared/wechat/logistics.go", []string{"logistics-get-quota", "quota-alert"}},
		{"/m/functions/quota-alert/main.go", []string{"quota-alert"}},
		{"/m/shared/wechat/logistics_test.go", nil},
		{"/m/shared/wechat/.logistics.go.swp", nil},
		{"/m/shared/wechat/README.md", nil},
		{"/m/shared/ck1/client.go", nil},
		{"/m/go.sum", []string{"logistics-get-quota", "quota-alert"}},
		{"/m/go.mod", []string{"logistics-get-quota", "quota-alert"}},
		{"/m/shared/wechat/go.mod", nil},
	}
	for _, c := range cases {
		require.Equal(t, c.want, w.affected(c.path), c.path)
	}
}
