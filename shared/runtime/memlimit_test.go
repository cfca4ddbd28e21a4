package runtime

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
)

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		current int64 // the limit Go runs with
		want    int64
		warn    string
	}{
		{"FC at 128 MB", map[string]string{"FC_FUNCTION_MEMORY_SIZE": "128"}, math.MaxInt64, 96 << 20, ""},
		{"Lambda at 256 MB", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"}, math.MaxInt64, 192 << 20, ""},
		{"GOMEMLIMIT within the size: the runtime has it", map[string]string{"FC_FUNCTION_MEMORY_SIZE": "128", "GOMEMLIMIT": "50MiB"}, 50 << 20, 0, ""},
		{"no size known (HTTP-server mode)", nil, math.MaxInt64, 0, ""},
		{"a size that is no number", map[string]string{"FC_FUNCTION_MEMORY_SIZE": "lots"}, math.MaxInt64, 0, ""},
		{"zero", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "0"}, math.MaxInt64, 0, ""},
		{"GOMEMLIMIT=off on a sized instance: said", map[string]string{"FC_FUNCTION_MEMORY_SIZE": "128", "GOMEMLIMIT": "off"}, math.MaxInt64, 0,
			"GOMEMLIMIT=off turns the soft memory limit off: Go's collector is not held within the instance, so an event near the platform's size limit can get it killed; unset it and the function sets 96 MiB"},
		// As off: a re-tester's 100TiB said nothing.
		{"GOMEMLIMIT above the size: said", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512", "GOMEMLIMIT": "100TiB"}, 100 << 40, 0,
			"GOMEMLIMIT=100TiB is above this instance's 512 MB: Go's collector is not held within the instance, so an event near the platform's size limit can get it killed; unset it and the function sets 384 MiB"},
		{"GOMEMLIMIT=off with no size known", map[string]string{"GOMEMLIMIT": "off"}, math.MaxInt64, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit, warn := MemoryLimit(config.FromMap(tc.env), tc.current)
			require.Equal(t, tc.want, limit)
			require.Equal(t, tc.warn, warn)
		})
	}
}
