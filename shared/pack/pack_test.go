package pack_test

import (
	"archive/zip"
	"bytes"
	"context"
	"debug/buildinfo"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/idempotency/recordstore"
	"github.com/cloudcall/cloudcall/shared/pack"
)

func TestZipIsOneFixedEntry(t *testing.T) {
	exe := bytes.Repeat([]byte("\x7fELF binary"), 1000)
	a, err := pack.Zip("bootstrap", exe)
	require.NoError(t, err)
	b, err := pack.Zip("bootstrap", exe)
	require.NoError(t, err)
	require.Equal(t, a, b, "same input, same bytes")

	z, err := zip.NewReader(bytes.NewReader(a), int64(len(a)))
	require.NoError(t, err)
	require.Len(t, z.File, 1)
	f := z.File[0]
	require.Equal(t, "bootstrap", f.Name)
	require.Equal(t, os.FileMode(0o755), f.Mode())
	require.Equal(t, zip.Deflate, f.Method)
	require.True(t, f.Modified.Equal(time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)), "fixed timestamp, got %s", f.Modified)
	r, err := f.Open()
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, exe, got)

	c, err := pack.Zip("bootstrap", append(exe, '!'))
	require.NoError(t, err)
	require.NotEqual(t, a, c, "the bytes follow the executable")
}

func TestTargetNames(t *testing.T) {
	for _, tc := range []struct {
		target   pack.Target
		exe, zip string
	}{
		{pack.Target{Function: "quota-alert", Platform: "fc", Arch: "amd64"}, "main", filepath.Join("fc", "quota-alert.zip")},
		{pack.Target{Function: "quota-alert", Platform: "aws", Arch: "amd64"}, "bootstrap", filepath.Join("aws", "quota-alert-x86_64.zip")},
		{pack.Target{Function: "quota-alert", Platform: "aws", Arch: "arm64"}, "bootstrap", filepath.Join("aws", "quota-alert-arm64.zip")},
	} {
		require.Equal(t, tc.exe, tc.target.Executable())
		require.Equal(t, tc.zip, tc.target.ZipName())
	}
}

func TestBuildRefusesTargetsNoPlatformRuns(t *testing.T) {
	for _, tc := range []struct {
		target pack.Target
		want   string
	}{
		{pack.Target{Function: "quota-alert", Platform: "fc", Arch: "arm64"}, "linux/amd64 only"},
		{pack.Target{Function: "quota-alert", Platform: "gcp", Arch: "amd64"}, `platform "gcp": want fc or aws`},
		{pack.Target{Function: "quota-alert", Platform: "aws", Arch: "x86_64"}, `arch "x86_64": want amd64 or arm64`},
	} {
		err := pack.Build(context.Background(), t.TempDir(), tc.target, filepath.Join(t.TempDir(), "exe"))
		require.ErrorContains(t, err, tc.want)
	}
}

// The charge packaged for a Redis records store carries neither SQL client:
// they were a quarter of its cold start and 1.5 MiB of its binary.
func TestTheNoSQLTagLeavesTheSQLClientsOut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the charge")
	}
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "main")
	target := pack.Target{Function: "top-launch-extra-charge", Platform: "fc", Arch: "amd64", Tags: []string{recordstore.NoSQLTag}}
	require.NoError(t, pack.Build(context.Background(), root, target, out))
	info, err := buildinfo.ReadFile(out)
	require.NoError(t, err)
	var mods []string
	for _, d := range info.Deps {
		mods = append(mods, d.Path)
	}
	require.Contains(t, mods, "github.com/redis/go-redis/v9", "its Redis client stays")
	require.NotContains(t, mods, "github.com/jackc/pgx/v5")
	require.NotContains(t, mods, "github.com/go-sql-driver/mysql")
	var tags string
	for _, s := range info.Settings {
		if s.Key == "-tags" {
			tags = s.Value
		}
	}
	require.Equal(t, "lambda.norpc,"+recordstore.NoSQLTag, tags)
}
