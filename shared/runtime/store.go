package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/store"
)

// OpenStore opens CLOUDCALL_STORE: "memory" (the default) or a redis:// URL.
func OpenStore(ctx context.Context, env *config.Env, log *slog.Logger) (store.Store, error) {
	url := env.Get("CLOUDCALL_STORE", "memory")
	switch {
	case url == "memory":
		return store.NewMemory(store.MemoryOptions{}), nil
	case strings.HasPrefix(url, "redis://"), strings.HasPrefix(url, "rediss://"):
		return nil, fmt.Errorf("CLOUDCALL_STORE: redis is not wired in yet")
	}
	return nil, fmt.Errorf("CLOUDCALL_STORE=%q: expected memory or a redis:// / rediss:// URL", url)
}
