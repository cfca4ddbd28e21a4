package main

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/registry"
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
