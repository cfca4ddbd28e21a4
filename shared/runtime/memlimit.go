package runtime

import (
	"fmt"
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
// known (HTTP-server mode on a machine of its own). current is the limit
// Go runs with (debug.SetMemoryLimit(-1): GOMEMLIMIT as the runtime read
// it). warn is set when GOMEMLIMIT takes that protection away on a
// platform that sized the instance (off, or more than its memory): a
// setting easy to leave behind, which says nothing until it matters.
func MemoryLimit(env *config.Env, current int64) (limit int64, warn string) {
	size := int64(0)
	for _, name := range []string{"FC_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"} {
		if mb, err := strconv.ParseInt(env.Get(name, ""), 10, 64); err == nil && mb > 0 && mb <= 1<<20 {
			size = mb
			break
		}
	}
	switch v := env.Get("GOMEMLIMIT", ""); {
	case v != "" && size > 0 && current > size<<20:
		what := "is above this instance's " + strconv.FormatInt(size, 10) + " MB"
		if v == "off" {
			what = "turns the soft memory limit off"
		}
		return 0, fmt.Sprintf("GOMEMLIMIT=%s %s: Go's collector is not held within the instance, so an event near the platform's size limit can get it killed; unset it and the function sets %d MiB", v, what, size/4*3)
	case v != "":
		return 0, ""
	}
	return size << 20 / 4 * 3, ""
}
