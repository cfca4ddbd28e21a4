package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// DelveVersion is the Delve release the README pins.
const DelveVersion = "v1.27.2"

// errNoDelve says --debug needs Delve and how to get it.
var errNoDelve = errors.New("--debug runs the function under Delve, and `dlv` is not on PATH: install it with\n" +
	"  go install github.com/go-delve/delve/cmd/dlv@" + DelveVersion + "\n" +
	"and make sure $(go env GOPATH)/bin is on PATH")

// delveLauncher is the command line an instance runs under: Delve headless
// on addr, running the program at once, accepting several clients (VS Code
// attaches and detaches without stopping it).
func delveLauncher(addr string) ([]string, error) {
	dlv, err := exec.LookPath("dlv")
	if err != nil {
		return nil, errNoDelve
	}
	return []string{dlv, "exec", "--headless", "--listen=" + addr, "--api-version=2", "--accept-multiclient", "--continue"}, nil
}

// buildDebug compiles a function for Delve: no optimisation or inlining, and
// real paths (no -trimpath) so an editor's breakpoints match.
func buildDebug(ctx context.Context, root, pkg, dir string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-gcflags=all=-N -l", "-tags", "lambda.norpc", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off") // as emulator.Build
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}
