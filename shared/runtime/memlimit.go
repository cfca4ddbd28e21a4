package runtime

import (
	"strconv"

	"github.com/cloudcall/cloudcall/shared/config"
)

// MemoryLimit is the soft limit for Go's collector: three quarters of the
// function's memory size (FC_FUNCTION_MEMORY_SIZE, AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
// in MB), the rest left to the binary's own pages and what the runtime
// holds outside the heap. Without it the collector lets the heap reach twice
// what is live: the SDK reads an event into a buffer that doubles as it
// grows, and a 30 MB event got a 128 MB instance killed before any limit of
// ours was looked at, a second one on a warm instance even when refused. 0
// leaves Go's default: GOMEMLIMIT set (the runtime honours it), or no size
// known (HTTP-server mode on a machine of its own).
func MemoryLimit(env *config.Env) int64 {
	if env.Get("GOMEMLIMIT", "") != "" {
		return 0
	}
	for _, name := range []string{"FC_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"} {
		if mb, err := strconv.ParseInt(env.Get(name, ""), 10, 64); err == nil && mb > 0 && mb <= 1<<20 {
			return mb << 20 / 4 * 3
		}
	}
	return 0
}
