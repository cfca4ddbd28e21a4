package syncbuf_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/syncbuf"
)

// Writers and readers at once, under -race: every line arrives whole.
func TestWritersAndReadersAtOnce(t *testing.T) {
	var b syncbuf.Buffer
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 100 {
				_, _ = fmt.Fprintf(&b, "writer %d line %d\n", w, i)
			}
		}()
		go func() {
			defer wg.Done()
			for range 100 {
				_ = b.String()
				_ = b.Lines()
			}
		}()
	}
	wg.Wait()
	lines := b.Lines()
	require.Len(t, lines, 800)
	seen := map[string]bool{}
	for _, l := range lines {
		seen[l] = true
	}
	require.Len(t, seen, 800, "no line torn or lost")
	require.Nil(t, new(syncbuf.Buffer).Lines())
}
