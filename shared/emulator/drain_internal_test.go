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

// slowLines is a stream that takes its time: the copier starved of CPU on a
// loaded machine, as under -race in CI.
type slowLines struct {
	lineCounter
	delay time.Duration
}

func (s *slowLines) Write(p []byte) (int, error) {
	time.Sleep(s.delay)
	return s.lineCounter.Write(p)
}

// TestDrainWaitsForASlowCopier: a line written before the answer reaches the
// stream before drain returns, even when the copier takes longer than the
// 50 ms the wait used to be cut at (CI lost "hello handled" that way).
func TestDrainWaitsForASlowCopier(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	dst := &slowLines{delay: 150 * time.Millisecond}
	pc := &pipeCopier{r: r, dst: dst, done: make(chan struct{}), moved: make(chan struct{})}
	go pc.run()
	in := &Instance{pipes: [2]*pipeCopier{pc, pc}}
	for i := 1; i <= 3; i++ {
		_, err := fmt.Fprintf(w, "line %d\n", i)
		require.NoError(t, err)
		require.True(t, in.drain(drainBound))
		require.Equal(t, i, dst.lines(), "drain %d returned before the line arrived", i)
	}
	require.NoError(t, w.Close())
	<-pc.done
}

// TestDrainEndsThoughTheFunctionKeepsWriting: a function whose background
// goroutine never stops printing still gets its answer promptly, with every
// line written before the drain delivered; waiting for a quiet pipe would
// run out the bound on every call.
func TestDrainEndsThoughTheFunctionKeepsWriting(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	dst := &lineCounter{}
	pc := &pipeCopier{r: r, dst: dst, done: make(chan struct{}), moved: make(chan struct{})}
	go pc.run()
	in := &Instance{pipes: [2]*pipeCopier{pc, pc}}
	var written sync.WaitGroup
	var mu sync.Mutex
	n := 0
	stop := make(chan struct{})
	written.Add(1)
	go func() {
		defer written.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			_, _ = fmt.Fprintf(w, "tick %d\n", n)
			n++
			mu.Unlock()
		}
	}()
	for i := 0; i < 20; i++ {
		mu.Lock()
		before := n
		mu.Unlock()
		start := time.Now()
		require.True(t, in.drain(drainBound), "drain %d ran out its bound while the writer went on", i)
		require.Less(t, time.Since(start), drainBound)
		require.GreaterOrEqual(t, dst.lines(), before, "drain %d returned before the lines written ahead of it", i)
	}
	close(stop)
	written.Wait()
	require.NoError(t, w.Close())
	<-pc.done
}
