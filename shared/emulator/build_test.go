package emulator_test

import (
	"context"
	"os"
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
