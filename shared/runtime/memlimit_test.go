package runtime

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
)

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want int64
		warn string
	}{
		{"FC at 128 MB", map[string]string{"FC_FUNCTION_MEMORY_SIZE": "128"}, 96 << 20, ""},
		{"Lambda at 256 MB", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"}, 192 << 20, ""},
		{"GOMEMLIMIT set: the runtime has it", map[string]string{"FC_FUNCTION_MEMORY_SIZE": "128", "GOMEMLIMIT": "50MiB"}, 0, ""},
		{"no size known (HTTP-server mode)", nil, 0, ""},
		{"a size that is no number", map[string]string{"FC_FUNCTION_MEMORY_SIZE": "lots"}, 0, ""},
		{"zero", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "0"}, 0, ""},
		{"GOMEMLIMIT=off on a sized instance: said", map[string]string{"FC_FUNCTION_MEMORY_SIZE": "128", "GOMEMLIMIT": "off"}, 0,
			"GOMEMLIMIT=off: Go's collector has no soft memory limit, so an event near the platform's size limit can get this 128 MB instance killed; unset it and the function sets 96 MiB"},
		{"GOMEMLIMIT=off with no size known", map[string]string{"GOMEMLIMIT": "off"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit, warn := MemoryLimit(config.FromMap(tc.env))
			require.Equal(t, tc.want, limit)
			require.Equal(t, tc.warn, warn)
		})
	}
}
