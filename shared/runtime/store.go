package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/store/redisstore"
)

// EphemeralStoreTimeout bounds a command on the emulator's embedded store
// (CLOUDCALL_STORE_EPHEMERAL), which is on loopback and never down, only
// paused now and then.
const EphemeralStoreTimeout = 10 * time.Second

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
		o := redisstore.Options{URL: url, Prefix: env.Get("CLOUDCALL_STORE_PREFIX", "cloudcall:")}
		if env.Bool("CLOUDCALL_STORE_EPHEMERAL", false) {
			// The emulator's embedded store pauses to expire keys (longer
			// as they grow): a pause past the usual 300 ms made every
			// instance fall back to its memory, replays included.
			o.Timeout = EphemeralStoreTimeout
		}
		rs, err := redisstore.Open(o)
		if err != nil {
			return nil, err
		}
		return store.NewFallback(rs, store.FallbackOptions{Log: log}), nil
	}
	return nil, fmt.Errorf("CLOUDCALL_STORE: expected memory or a redis:// / rediss:// URL")
}
