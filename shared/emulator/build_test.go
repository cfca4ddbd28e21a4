package emulator_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
)

// A build stopped at Ctrl-C (its context canceled) says so, and leaves no
// work folder behind: the go command, killed, left megabytes of a
// half-built binary in $TMPDIR every time (an outside tester, 4 of 4).
func TestAStoppedBuildLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles with an empty build cache")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Setenv("GOCACHE", t.TempDir()) // an empty cache: the build takes long enough to stop
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, cancel)
	_, err = emulator.Build(ctx, root, "./functions/quota-alert", t.TempDir())
	require.ErrorContains(t, err, "go build ./functions/quota-alert: stopped before it finished: context canceled")
	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	require.Empty(t, left, "nothing is left in $TMPDIR")
}

// A go.work the builds did not ask for is not used: one in a parent folder
// (a shared /tmp) swapped in another copy of a dependency, and its code ran
// inside the functions (an outside tester). Here one that names a module
// that does not exist, which any build using it fails on.
func TestABuildIgnoresAGoWork(t *testing.T) {
	work := filepath.Join(t.TempDir(), "go.work")
	require.NoError(t, os.WriteFile(work, []byte("go 1.26.0\n\nuse ./no-such-module\n"), 0o600))
	t.Setenv("GOWORK", work)
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	bin, err := emulator.Build(context.Background(), root, "./functions/quota-alert", t.TempDir())
	require.NoError(t, err)
	require.FileExists(t, bin)
}
