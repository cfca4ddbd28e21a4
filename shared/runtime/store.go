package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/store/redisstore"
)

// OpenStore opens CLOUDCALL_STORE: "memory" (the default, one instance) or a
// redis:// / rediss:// URL (many instances), wrapped so an outage degrades
// to per-instance memory instead of failing calls. It does not dial: a cold
// start never waits on Redis.
func OpenStore(ctx context.Context, env *config.Env, log *slog.Logger) (store.Store, error) {
	url, err := env.SecretOrWord("CLOUDCALL_STORE", "memory") // a URL may carry a password
	if err != nil {
		return nil, err
	}
	switch {
	case url == "" || url == "memory":
		return store.NewMemory(store.MemoryOptions{}), nil
	case strings.HasPrefix(url, "redis://"), strings.HasPrefix(url, "rediss://"):
		rs, err := redisstore.Open(redisstore.Options{URL: url, Prefix: env.Get("CLOUDCALL_STORE_PREFIX", "cloudcall:")})
		if err != nil {
			return nil, err
		}
		return store.NewFallback(rs, store.FallbackOptions{Log: log}), nil
	}
	return nil, fmt.Errorf("CLOUDCALL_STORE: expected memory or a redis:// / rediss:// URL")
}
