package linewriter_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator/linewriter"
)

// lockedBuffer records every Write separately so a test can check each one
// is exactly one whole line.
type recorder struct {
	mu     sync.Mutex
	writes [][]byte
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, append([]byte(nil), p...))
	return len(p), nil
}

func (r *recorder) lines(t *testing.T) []string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, w := range r.writes {
		require.True(t, bytes.HasSuffix(w, []byte("\n")), "every write is a whole line: %q", w)
		require.Equal(t, 1, bytes.Count(w, []byte("\n")), "one line per write: %q", w)
		out = append(out, string(w[:len(w)-1]))
	}
	return out
}

func TestStreamLines(t *testing.T) {
	cases := []struct {
		name   string
		max    int
		writes []string
		flush  bool
		want   []string
	}{
		{"one line", 0, []string{"hello\n"}, false, []string{"fn | hello"}},
		{"split across writes", 0, []string{"hel", "lo\nwor", "ld\n"}, false, []string{"fn | hello", "fn | world"}},
		{"several in one write", 0, []string{"a\nb\nc\n"}, false, []string{"fn | a", "fn | b", "fn | c"}},
		{"partial kept until flush", 0, []string{"a\npartial"}, true, []string{"fn | a", "fn | partial"}},
		{"partial not emitted without flush", 0, []string{"a\npartial"}, false, []string{"fn | a"}},
		{"empty line kept", 0, []string{"\n"}, false, []string{"fn | "}},
		{"long line split, not dropped", 4, []string{"abcdefghij\n"}, false, []string{"fn | abcd", "fn | efgh", "fn | ij"}},
		{"long partial split before newline", 4, []string{"abcdefghij"}, false, []string{"fn | abcd", "fn | efgh"}},
		{"utf-8 not cut mid-rune", 4, []string{"aé日本\n"}, false, []string{"fn | aé", "fn | 日", "fn | 本"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			st := linewriter.New(rec, tc.max).Prefixed("fn | ").Stream()
			for _, w := range tc.writes {
				n, err := st.Write([]byte(w))
				require.NoError(t, err)
				require.Equal(t, len(w), n)
			}
			if tc.flush {
				require.NoError(t, st.Flush())
			}
			got := rec.lines(t)
			require.Equal(t, tc.want, got)
			for _, l := range got {
				require.True(t, utf8.ValidString(l), l)
			}
		})
	}
}

func TestTeeSeesEachLine(t *testing.T) {
	rec := &recorder{}
	var seen []string
	st := linewriter.New(rec, 0).Stream("p ", func(l []byte) { seen = append(seen, string(l)) })
	_, _ = st.Write([]byte("one\ntwo\n"))
	require.Equal(t, []string{"one", "two"}, seen)
}

// TestTeeThatAppendsCannotCorrupt: a tee that appends to the line it is
// given (as the emulator's does, adding a newline) leaves the rest alone,
// also on the split path where the next bytes share the buffer.
func TestTeeThatAppendsCannotCorrupt(t *testing.T) {
	rec := &recorder{}
	var seen []string
	st := linewriter.New(rec, 4).Stream("", func(l []byte) { seen = append(seen, string(append(l, '!'))) })
	_, _ = st.Write([]byte("abcdefghij\nxy\n"))
	require.Equal(t, []string{"abcd", "efgh", "ij", "xy"}, rec.lines(t))
	require.Equal(t, []string{"abcd!", "efgh!", "ij!", "xy!"}, seen)
}

// TestConcurrentProducers races many producers (as the os/exec copy
// goroutines of every instance's stdout and stderr do) on one sink, writing
// lines in random-sized fragments: every line arrives exactly once, whole.
func TestConcurrentProducers(t *testing.T) {
	const producers, linesEach = 16, 300
	rec := &recorder{}
	sink := linewriter.New(rec, 256)
	fn := sink.Prefixed("fn | ")
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := fn.Stream()
			var all bytes.Buffer
			for i := range linesEach {
				fmt.Fprintf(&all, "producer=%d line=%d %s\n", p, i, strings.Repeat("x", i%97))
			}
			b := all.Bytes()
			for step := 1; len(b) > 0; step = step%13 + 1 {
				n := min(step, len(b))
				_, _ = st.Write(b[:n])
				b = b[n:]
			}
		}()
	}
	// Whole-line writers (the emulator's START/END lines) share the sink.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range linesEach {
			fmt.Fprintf(sink, "emulator line=%d\n", i)
		}
	}()
	wg.Wait()
	lines := rec.lines(t)
	require.Len(t, lines, producers*linesEach+linesEach)
	seen := map[string]bool{}
	for _, l := range lines {
		require.False(t, seen[l], "duplicate %q", l)
		seen[l] = true
	}
	for p := range producers {
		for i := range linesEach {
			l := fmt.Sprintf("fn | producer=%d line=%d %s", p, i, strings.Repeat("x", i%97))
			require.True(t, seen[l], "missing %q", l)
		}
	}
}

// TestSharedPrefixedWriteIsSafe: writing to the per-function writer itself
// from many goroutines never panics and loses nothing (lines may only be
// spliced when producers write partial lines, which is why Stream exists).
func TestSharedPrefixedWriteIsSafe(t *testing.T) {
	rec := &recorder{}
	fn := linewriter.New(rec, 0).Prefixed("fn | ")
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				_, _ = fmt.Fprintf(fn, "p%d-%d\n", p, i)
			}
		}()
	}
	wg.Wait()
	require.NoError(t, fn.Flush())
	require.Len(t, rec.lines(t), 8*200)
}

func FuzzStream(f *testing.F) {
	f.Add([]byte("a\nb"), 3)
	f.Add([]byte("日本語\n\n"), 1)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		if max <= 0 || max > 1<<16 {
			max = 1 + (max&0xff+256)%256
		}
		var out bytes.Buffer
		st := linewriter.New(&out, max).Stream("", nil)
		_, _ = st.Write(b)
		_ = st.Flush()
		// Nothing lost, nothing added but newlines, no line over the bound.
		require.Equal(t, strings.ReplaceAll(string(b), "\n", ""), strings.ReplaceAll(out.String(), "\n", ""))
		for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
			require.LessOrEqual(t, len(l), max)
		}
	})
}
