package emulator

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lineCounter counts the lines that reached it.
type lineCounter struct {
	mu sync.Mutex
	n  int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range p {
		if b == '\n' {
			c.n++
		}
	}
	return len(p), nil
}

func (c *lineCounter) lines() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// TestDrainIsExactAndWakes: drain returns only once every byte written
// before it was called has reached the stream, and it is woken by the
// copier rather than waiting out its bound. A drain that began while the
// copier was retrying an empty pipe (EAGAIN) waited for a wake-up that
// never came: 50 ms on about one invocation in 150.
func TestDrainIsExactAndWakes(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	dst := &lineCounter{}
	pc := &pipeCopier{r: r, dst: dst, done: make(chan struct{}), moved: make(chan struct{})}
	go pc.run()
	in := &Instance{pipes: [2]*pipeCopier{pc, pc}} // one pipe, looked at twice
	for i := 1; i <= 3000; i++ {
		_, err := fmt.Fprintf(w, "line %d\n", i)
		require.NoError(t, err)
		if i%2 == 0 {
			// Let the copier deliver it and loop back into a read of an
			// empty pipe, where drain then finds it.
			for dst.lines() < i {
			}
		}
		require.True(t, in.drain(2*time.Second), "drain %d ran out its bound", i)
		require.Equal(t, i, dst.lines(), "drain %d returned before the line arrived", i)
	}
	require.NoError(t, w.Close())
	<-pc.done
}
