package runtime_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/store"
)

// pausingProxy forwards to addr, holding each client write for pause: a
// store that stops to expire keys now and then.
func pausingProxy(t *testing.T, addr string, pause time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			go func() { _, _ = io.Copy(c, s); c.Close() }()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						time.Sleep(pause)
						if _, werr := s.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						s.Close()
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// The emulator's embedded store pauses to expire keys, longer as they grow:
// past the 300 ms command bound every instance took it for down and fell
// back to its own memory (replays accepted twice, charges refused). On the
// embedded store (CLOUDCALL_STORE_EPHEMERAL) a command waits out a pause.
func TestTheEmbeddedStoreIsWaitedOutNotFallenBackFrom(t *testing.T) {
	m := miniredis.RunT(t)
	url := "redis://" + pausingProxy(t, m.Addr(), 600*time.Millisecond) + "/0"
	for _, ephemeral := range []bool{false, true} {
		env := map[string]string{"CLOUDCALL_STORE": url}
		if ephemeral {
			env["CLOUDCALL_STORE_EPHEMERAL"] = "true"
		}
		st, err := runtime.OpenStore(context.Background(), config.FromMap(env), slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		_, err = store.Durable(st).Get(context.Background(), "k")
		if ephemeral {
			require.ErrorIs(t, err, store.ErrNotFound, "the pause is waited out")
		} else {
			require.ErrorIs(t, err, store.ErrUnavailable, "a Redis that slow is down")
		}
		_ = st.Close()
	}
}
