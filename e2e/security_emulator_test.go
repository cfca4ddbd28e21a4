package e2e

import (
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

// The suite through the emulator's HTTP-trigger front door, the real
// binaries polling each platform's runtime API, with caller keys passed the
// way the emulator hands a function its environment.
func TestSecuritySuiteThroughTheEmulator(t *testing.T) {
	for _, p := range []runtimeapi.Platform{runtimeapi.FC, runtimeapi.Lambda} {
		t.Run(string(p), func(t *testing.T) {
			sbx := startSandboxes(t)
			var fns []emulator.FunctionConfig
			for _, f := range httpFunctions() {
				fns = append(fns, emulator.FunctionConfig{Name: f.Name, Binary: bins[f.Name], Platform: p, Env: functionEnv(t, sbx, f),
					Timeout: 20 * time.Second, MemoryMB: f.MemoryMB, MaxInstances: 1, Idle: time.Minute, Stdout: io.Discard, HTTPMethods: f.HTTPMethods})
			}
			emu := emulator.New(emulator.Options{Platform: p, Functions: fns, Log: io.Discard})
			defer emu.Close()
			srv := httptest.NewServer(emu.Handler())
			defer srv.Close()
			runSuite(t, "emulator", "emulator-"+string(p), func(string) string { return srv.URL }, sbx.calls, sbx.stableTokens)

			// Repeated query names reach the function as the platform
			// delivers them (FC joins them with commas) and still verify.
			before := sbx.calls()
			rep := signed(t, suiteKeyID, suiteSecret, "POST", "/logistics-get-quota", "a=1&a=0", []byte(`{"deliveryId":"YTO","bizId":"xyz"}`), time.Now().Unix())
			st, m, raw := rep.send(t, srv.URL)
			require.Equal(t, 200, st, raw)
			require.Equal(t, float64(210), m["quotaNum"], raw)
			require.Greater(t, sbx.calls(), before, "it reached the vendor")

			// A non-canonical path never reaches a function there.
			before = sbx.calls()
			w := signed(t, suiteKeyID, suiteSecret, "POST", "/logistics-get-quota", "", []byte(`{"deliveryId":"YTO","bizId":"xyz"}`), time.Now().Unix())
			w.path = "/x/../logistics-get-quota"
			st, _, raw = w.send(t, srv.URL)
			require.Equal(t, 307, st, raw)
			require.Equal(t, before, sbx.calls())
		})
	}
}
