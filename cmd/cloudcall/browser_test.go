package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/registry"
)

// TestConsoleInBrowser starts `cloudcall local` and runs the console's
// browser tests (shared/console/browsertest) against it: playwright-core
// (pinned in its package.json) driving the system's chromium.
// CONSOLE_SCREENSHOTS=<dir> also writes the screenshots (make screenshots).
func TestConsoleInBrowser(t *testing.T) {
	root, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	suite := filepath.Join(root, "shared", "console", "browsertest")
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	_, nodeErr := exec.LookPath("node")
	need(t, "node", "install Node.js 20", nodeErr == nil)
	need(t, "playwright-core", "npm ci --prefix shared/console/browsertest", fileExists(filepath.Join(suite, "node_modules", "playwright-core", "package.json")))
	need(t, "chromium", "apt-get update && apt-get install -y chromium", fileExists(chromium))

	base, _ := runLocalIn(t, root)
	shots := os.Getenv("CONSOLE_SCREENSHOTS")
	if shots != "" && !filepath.IsAbs(shots) {
		shots = filepath.Join(root, shots)
	}
	cmd := exec.Command("node", "--test", "--test-reporter=spec", "console.test.mjs")
	cmd.Dir = suite
	cmd.Env = append(os.Environ(), "CONSOLE_URL="+base, "FUNCTIONS="+strings.Join(registry.Names(), ","),
		"CHROMIUM="+chromium, "CONSOLE_SCREENSHOTS="+shots)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test console.test.mjs:\n%s", out)
	require.NoError(t, err, "the browser tests failed")
}
