package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/openapi"
)

// `cloudcall openapi` prints the registry's document; --help says what it does.
func TestOpenAPICommand(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"openapi"}, &out, &errb), errb.String())
	want, err := openapi.Document()
	require.NoError(t, err)
	require.Equal(t, string(want), out.String())

	out.Reset()
	errb.Reset()
	require.Equal(t, 0, run(context.Background(), []string{"openapi", "--help"}, &out, &errb))
	require.Contains(t, out.String(), "Usage: cloudcall openapi [--write]", "help goes to stdout (#14)")
	require.Equal(t, 2, run(context.Background(), []string{"openapi", "--nope"}, &out, &errb))
}
