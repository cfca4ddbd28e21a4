// Package linewriter joins the output of many processes into one stream
// without ever mixing or losing lines: each producer (one instance's stdout,
// another's stderr) gets its own Stream that buffers a partial line, and every
// complete line reaches the destination in a single Write under one lock, with
// its prefix. A line longer than the bound is split into bounded pieces, never
// dropped; nothing here can panic on what a function prints.
package linewriter

import (
	"bytes"
	"io"
	"sync"
	"unicode/utf8"
)

// DefaultMaxLine bounds one emitted line (prefix excluded). Longer lines are
// split at this size, on a UTF-8 boundary.
const DefaultMaxLine = 64 << 10

// Sink is a destination shared by many Streams (and by whole-line writers
// such as the emulator's START / END / REPORT lines). Its Write is atomic:
// one Write call reaches the destination whole, never interleaved.
type Sink struct {
	mu      sync.Mutex
	w       io.Writer
	maxLine int
}

// New wraps w. maxLine <= 0 means DefaultMaxLine.
func New(w io.Writer, maxLine int) *Sink {
	if w == nil {
		w = io.Discard
	}
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	return &Sink{w: w, maxLine: maxLine}
}

// Write writes p in one piece under the sink's lock. Callers write whole
// lines; partial lines belong in a Stream.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// Prefixed is a per-function writer: every Stream it hands out labels its
// lines with prefix. It is safe for concurrent use; for line integrity each
// producer takes its own Stream (a shared buffer would splice one producer's
// half line into another's).
type Prefixed struct {
	sink   *Sink
	prefix string
	shared *Stream // for callers that Write to the Prefixed directly
}

// Prefixed returns the writer for one function.
func (s *Sink) Prefixed(prefix string) *Prefixed {
	return &Prefixed{sink: s, prefix: prefix, shared: s.Stream(prefix, nil)}
}

// Stream returns a new producer stream labelled with the function's prefix.
func (p *Prefixed) Stream() *Stream { return p.sink.Stream(p.prefix, nil) }

// Write buffers through one shared stream: safe, but concurrent producers
// should use Stream().
func (p *Prefixed) Write(b []byte) (int, error) { return p.shared.Write(b) }

// Flush emits the shared stream's partial line.
func (p *Prefixed) Flush() error { return p.shared.Flush() }

// Stream is one producer's line buffer. It is safe for concurrent use, but it
// is meant for one producer (an os/exec copy goroutine).
type Stream struct {
	sink   *Sink
	prefix string
	tee    func(line []byte) // sees each emitted line (without prefix and newline)

	mu  sync.Mutex
	buf []byte
}

// Stream returns a producer stream with prefix; tee, when not nil, is called
// with each complete line (it must not keep the slice).
func (s *Sink) Stream(prefix string, tee func(line []byte)) *Stream {
	return &Stream{sink: s, prefix: prefix, tee: tee}
}

// Write buffers p and emits every complete line. It always reports len(p):
// a producer must never block or fail because of what it printed.
func (st *Stream) Write(p []byte) (int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.buf = append(st.buf, p...)
	// The destination's errors are not the producer's problem: a function
	// must never block or die because the terminal went away.
	for {
		i := bytes.IndexByte(st.buf, '\n')
		if i < 0 {
			break
		}
		_ = st.emit(st.buf[:i])
		st.buf = st.buf[i+1:]
	}
	for len(st.buf) > st.sink.maxLine {
		cut := splitPoint(st.buf, st.sink.maxLine)
		_ = st.emit(st.buf[:cut])
		st.buf = st.buf[cut:]
	}
	// Keep the buffer from pinning a large backing array.
	if len(st.buf) == 0 {
		st.buf = nil
	} else if cap(st.buf) > 4*st.sink.maxLine {
		st.buf = append([]byte(nil), st.buf...)
	}
	return len(p), nil
}

// Flush emits a pending partial line (a process that exited mid-line).
func (st *Stream) Flush() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.buf) == 0 {
		return nil
	}
	err := st.emit(st.buf)
	st.buf = nil
	return err
}

// Close flushes.
func (st *Stream) Close() error { return st.Flush() }

func (st *Stream) emit(line []byte) error {
	// Lines longer than the bound arrive here only from the newline path.
	for len(line) > st.sink.maxLine {
		cut := splitPoint(line, st.sink.maxLine)
		if err := st.emitOne(line[:cut]); err != nil {
			return err
		}
		line = line[cut:]
	}
	return st.emitOne(line)
}

func (st *Stream) emitOne(line []byte) error {
	if st.tee != nil {
		// Capacity capped: a tee that appends must not write into the
		// buffer's next line.
		st.tee(line[:len(line):len(line)])
	}
	out := make([]byte, 0, len(st.prefix)+len(line)+1)
	out = append(out, st.prefix...)
	out = append(out, line...)
	out = append(out, '\n')
	_, err := st.sink.Write(out)
	return err
}

// splitPoint is the largest cut <= max that does not split a UTF-8 sequence
// (falling back to max for bytes that are not UTF-8 at all).
func splitPoint(b []byte, max int) int {
	if max >= len(b) {
		return len(b)
	}
	for cut := max; cut > max-utf8.UTFMax && cut > 0; cut-- {
		if utf8.RuneStart(b[cut]) {
			return cut
		}
	}
	return max
}
