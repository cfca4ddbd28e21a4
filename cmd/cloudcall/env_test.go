package main

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/top"
)

// With --upstream real the caller's CLOUDCALL_STORE_PREFIX reaches every
// function (it is a registry variable); unset, the registry's default.
func TestFunctionEnvHonoursTheStorePrefix(t *testing.T) {
	for _, name := range registry.Names() {
		f, ok := registry.Lookup(name)
		require.True(t, ok)
		t.Setenv("CLOUDCALL_STORE_PREFIX", "staging:")
		env := functionEnv(f, runtimeapi.FC, nil, true, localSettings{})
		require.Equal(t, "staging:", env["CLOUDCALL_STORE_PREFIX"], name)

		require.NoError(t, os.Unsetenv("CLOUDCALL_STORE_PREFIX"))
		env = functionEnv(f, runtimeapi.Lambda, nil, true, localSettings{})
		require.Equal(t, "cloudcall:", env["CLOUDCALL_STORE_PREFIX"], name)
	}
}

// The TOP sandbox that cloudcall local and invoke start takes the session
// an --env-file sets as well as its demo one: a user trying a seller's new
// session restarts with it (which restarts the sandbox too) and heard 27
// "Invalid Session" (an outside tester).
func TestTheTOPSandboxTakesTheEnvFilesSession(t *testing.T) {
	sbs, err := serveSandboxes("127.0.0.1:0", envTopSession(map[string]string{"TOP_SESSION": "renewed-session"}))
	require.NoError(t, err)
	defer closeSandboxes(sbs)
	var gateway string
	for _, s := range sbs {
		if s.vendor == "top" {
			gateway = s.env["TOP_GATEWAY_URL"]
		}
	}
	require.NotEmpty(t, gateway)
	c, err := top.NewClient(top.Options{AppKey: topsbx.DemoAppKey, Secret: topsbx.DemoSecret, Gateway: gateway})
	require.NoError(t, err)
	for session, code := range map[string]int{"renewed-session": 0, topsbx.DemoSession: 0, "another": 27} {
		r := c.Do(context.Background(), top.MethodLaunchExtra, session, map[string]string{"oms_launch_extra_charge_parameter": `{"wds_coordination_order_id":"BFC1","price":1,"type":1}`})
		require.Equal(t, top.Answered, r.Outcome, session)
		got := 0
		if r.Error != nil {
			got = r.Error.Code
		}
		require.Equal(t, code, got, session)
	}
}

// With --upstream real on the embedded store, CK1 OAuth with
// CK1_ALLOW_MEMORY_STORE=true (from `cloudcall sandbox`'s export lines)
// spends the real refresh token into a store that dies with the run: the
// banner warns; a fixed token, no waiver, or an external store do not.
func TestLocalWarnsWhenCK1SpendsItsRefreshTokenIntoTheEmbeddedStore(t *testing.T) {
	oauth := map[string]string{"CK1_CLIENT_ID": "id", "CK1_CLIENT_SECRET": "s", "CK1_REFRESH_TOKEN": "r", "CK1_ALLOW_MEMORY_STORE": "true"}
	for _, k := range []string{"CK1_ACCESS_TOKEN", "CK1_CLIENT_ID", "CK1_CLIENT_SECRET", "CK1_REFRESH_TOKEN", "CK1_ALLOW_MEMORY_STORE"} {
		t.Setenv(k, "")
		require.NoError(t, os.Unsetenv(k))
	}
	warn := ck1SpendsIntoEmbedded(localSettings{extra: oauth})
	require.Contains(t, warn, "CK1_ALLOW_MEMORY_STORE=true with --upstream real on the embedded store")
	require.Contains(t, warn, "--store redis://")

	// The shell's variables count too (real mode reads them).
	t.Setenv("CK1_ALLOW_MEMORY_STORE", "yes")
	t.Setenv("CK1_REFRESH_TOKEN", "r")
	require.NotEmpty(t, ck1SpendsIntoEmbedded(localSettings{}))

	fixed := map[string]string{"CK1_ACCESS_TOKEN": "t", "CK1_ALLOW_MEMORY_STORE": "true"}
	require.Empty(t, ck1SpendsIntoEmbedded(localSettings{extra: fixed}), "a fixed token spends nothing")
	noWaiver := map[string]string{"CK1_REFRESH_TOKEN": "r", "CK1_ALLOW_MEMORY_STORE": "false"}
	require.Empty(t, ck1SpendsIntoEmbedded(localSettings{extra: noWaiver}), "without the waiver the function refuses (-1601) and spends nothing")
}
