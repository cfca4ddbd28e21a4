// Package pack builds a function for a platform and zips it reproducibly:
// the same source gives the same bytes (fixed timestamps and modes, no build
// id, no VCS stamp), so a deployment can be verified by checksum.
package pack

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Target is one build.
type Target struct {
	Function string   // folder under functions/
	Platform string   // fc or aws
	Arch     string   // amd64 or arm64 (FC go1 is amd64 only)
	Tags     []string // build tags beside lambda.norpc
}

// Executable is the file name the platform runs.
func (t Target) Executable() string {
	if t.Platform == "aws" {
		return "bootstrap"
	}
	return "main"
}

// ZipName is where the zip goes under dist/.
func (t Target) ZipName() string {
	if t.Platform == "aws" {
		arch := "x86_64"
		if t.Arch == "arm64" {
			arch = "arm64"
		}
		return filepath.Join("aws", t.Function+"-"+arch+".zip")
	}
	return filepath.Join("fc", t.Function+".zip")
}

// Build compiles the target's executable to out.
func Build(ctx context.Context, moduleRoot string, t Target, out string) error {
	switch {
	case t.Platform != "fc" && t.Platform != "aws":
		return fmt.Errorf("platform %q: want fc or aws", t.Platform)
	case t.Arch != "amd64" && t.Arch != "arm64":
		return fmt.Errorf("arch %q: want amd64 or arm64", t.Arch)
	case t.Platform == "fc" && t.Arch != "amd64":
		return fmt.Errorf("FC go1 runs on linux/amd64 only")
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-tags", strings.Join(append([]string{"lambda.norpc"}, t.Tags...), ","),
		"-ldflags", "-s -w -buildid=", "-o", out, "./functions/"+t.Function)
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), buildEnv(t.Arch)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s for %s/%s: %w\n%s", t.Function, t.Platform, t.Arch, err, b)
	}
	return nil
}

// buildEnv is what a build sets over the builder's environment (as
// emulator.Build does, and more): settings that change the bytes are pinned
// to Go's defaults, so a shell (or `go env -w`) with GOAMD64=v3 or a
// GOEXPERIMENT neither ships a binary that needs a newer CPU than the
// platform promises nor breaks "the same source gives the same bytes" (an
// outside tester: both changed the checksum, and nothing said so).
func buildEnv(arch string) []string {
	return []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + arch, "GOFLAGS=-mod=readonly", "GOWORK=off",
		"GOAMD64=v1", "GOARM64=v8.0", "GOEXPERIMENT=", "GOFIPS140=off"}
}

// GoVersion is the toolchain a build uses (GOTOOLCHAIN may pick another
// than the go on PATH): the bytes are the same for the same source and
// the same toolchain.
func GoVersion(ctx context.Context, moduleRoot string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", "GOVERSION")
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), buildEnv("amd64")...)
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOVERSION: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// fixedTime is the zip timestamp of every entry (the zip epoch).
var fixedTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// Zip writes one executable entry, mode 0755, with a fixed timestamp.
func Zip(name string, exe []byte) ([]byte, error) {
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: fixedTime}
	h.SetMode(0o755)
	f, err := w.CreateHeader(h)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(exe); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Package builds and zips a target into dist and returns the zip's path,
// its SHA-256 and the executable's size.
func Package(ctx context.Context, moduleRoot, dist string, t Target) (path, sum string, size int64, err error) {
	tmp, err := os.MkdirTemp("", "cloudcall-pack")
	if err != nil {
		return "", "", 0, err
	}
	defer os.RemoveAll(tmp)
	exe := filepath.Join(tmp, t.Executable())
	if err := Build(ctx, moduleRoot, t, exe); err != nil {
		return "", "", 0, err
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		return "", "", 0, err
	}
	z, err := Zip(t.Executable(), b)
	if err != nil {
		return "", "", 0, err
	}
	path = filepath.Join(dist, t.ZipName())
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", "", 0, err
	}
	if err := os.WriteFile(path, z, 0o644); err != nil {
		return "", "", 0, err
	}
	s := sha256.Sum256(z)
	return path, hex.EncodeToString(s[:]), int64(len(b)), nil
}
