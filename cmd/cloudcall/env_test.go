package main

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/registry"
)

// cloudcall local passes the caller's store and key prefix to every
// function, with the sandboxes and with --upstream real; unset, the
// registry's default prefix applies.
func TestFunctionEnvHonoursTheStorePrefix(t *testing.T) {
	f, ok := registry.Lookup("logistics-get-quota")
	require.True(t, ok)
	for _, real := range []bool{false, true} {
		t.Setenv("CLOUDCALL_STORE_PREFIX", "staging:")
		t.Setenv("CLOUDCALL_STORE", "redis://127.0.0.1:6379/11")
		env := functionEnv(f, runtimeapi.FC, nil, real)
		require.Equal(t, "staging:", env["CLOUDCALL_STORE_PREFIX"], "real=%v", real)
		require.Equal(t, "redis://127.0.0.1:6379/11", env["CLOUDCALL_STORE"], "real=%v", real)
	}
}

func TestFunctionEnvDefaultPrefix(t *testing.T) {
	t.Setenv("CLOUDCALL_STORE_PREFIX", "")
	require.NoError(t, os.Unsetenv("CLOUDCALL_STORE_PREFIX"))
	f, _ := registry.Lookup("top-launch-extra-charge")
	env := functionEnv(f, runtimeapi.FC, nil, true)
	require.Equal(t, "cloudcall:", env["CLOUDCALL_STORE_PREFIX"])
}
