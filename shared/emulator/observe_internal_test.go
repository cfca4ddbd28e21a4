package emulator

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

func chatty(i, size int) string {
	l := fmt.Sprintf("line %06d ", i)
	return l + strings.Repeat("x", size-len(l))
}

// A record keeps the head and the tail of its lines, bounded in lines and
// in bytes, with one marker line saying what was not kept.
func TestLogTailKeepsHeadMarkerAndTail(t *testing.T) {
	for _, tc := range []struct {
		name        string
		lines, size int
		head, tail  int // lines kept each side
		marker      string
	}{
		{"few lines, all kept", 20, 100, 20, 0, ""},
		{"3000 short lines: the line bound", 3000, 100, 500, 500, "… 2,000 lines (195.3 KB) not kept …"},
		{"100 lines of 30 KB: the byte bound", 100, 30 << 10, 8, 8, "… 84 lines (2.5 MB) not kept …"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l logTail
			for i := range tc.lines {
				l.add(chatty(i, tc.size))
			}
			got := l.lines()
			want := tc.head + tc.tail
			if tc.marker != "" {
				want++
			}
			require.Equal(t, want, len(got))
			require.Equal(t, chatty(0, tc.size), got[0])
			require.Equal(t, chatty(tc.lines-1, tc.size), got[len(got)-1], "the last line is kept")
			if tc.marker != "" {
				require.Equal(t, chatty(tc.head-1, tc.size), got[tc.head-1])
				require.Equal(t, tc.marker, got[tc.head])
				require.Equal(t, chatty(tc.lines-tc.tail, tc.size), got[tc.head+1])
			}
			require.LessOrEqual(t, l.bytes(), 2*LogKeepBytes)
		})
	}
}

// run is one invocation through the bus as the emulator drives it.
func run(b *Bus, id string, lines int) {
	b.begin("hello", id, []byte(`{}`))
	for i := range lines {
		b.AppendLog(id, chatty(i, 100))
	}
	b.finish(id, runtimeapi.Result{Body: []byte(`{"errCode":0}`)}, Report{}, nil)
}

// A subscriber that falls behind is cut off (its channel closed) and, once
// it subscribes again, sees every call finished: none is left running
// because its last update was dropped.
func TestASubscriberThatFallsBehindEndsUpWithEveryEnd(t *testing.T) {
	b := NewBus(500)
	_, ch, cancel := b.Subscribe()
	defer cancel()
	for i := range SubscriberBuffer { // 2 updates a call (start, end): twice the buffer
		run(b, fmt.Sprint("call-", i), 0)
	}
	last := map[string]Invocation{}
	closed := false
	for !closed {
		select {
		case in, ok := <-ch:
			if !ok {
				closed = true
				break
			}
			last[in.RequestID] = in
		case <-time.After(time.Second):
			t.Fatal("the channel of a subscriber that fell behind was neither closed nor complete")
		}
	}
	recent, _, cancel2 := b.Subscribe() // what the page gets on reconnecting
	defer cancel2()
	for _, in := range recent {
		last[in.RequestID] = in
	}
	require.Len(t, last, SubscriberBuffer)
	for id, in := range last {
		require.False(t, in.Running, "%s left running", id)
	}
}

// Subscribers that never read hold shared snapshots, a bounded number of
// them, not a copy each; and the bus keeps at most maxBytes of records.
func TestSubscribersThatNeverReadPinABoundedAmount(t *testing.T) {
	b := NewBus(500)
	b.every = time.Hour // shim // publishes: start, first lines, end
	b.maxBytes = 1 << 20
	var chans []<-chan Invocation
	for range 30 {
		_, ch, cancel := b.Subscribe()
		defer cancel()
		chans = append(chans, ch)
	}
	for i := range 40 {
		run(b, fmt.Sprint("call-", i), 3000)
	}
	held := map[*string]int{} // distinct log arrays held, by their bytes
	perSub := 0
	for _, ch := range chans {
		n := 0
		for len(ch) > 0 {
			in := <-ch
			size := 0
			for _, l := range in.Logs {
				size += len(l)
			}
			n += size
			if len(in.Logs) > 0 {
				held[unsafe.SliceData(in.Logs)] = size
			}
		}
		perSub = max(perSub, n)
	}
	distinct := 0
	for _, n := range held {
		distinct += n
	}
	require.LessOrEqual(t, perSub, SubscriberBuffer*(2*LogKeepBytes+200), "one subscriber's buffer is bounded")
	require.Equal(t, perSub, distinct, "30 subscribers share one copy of each update")

	kept := 0
	for _, in := range b.Recent() {
		for _, l := range in.Logs {
			kept += len(l)
		}
	}
	require.LessOrEqual(t, kept, 1<<20, "the bus keeps at most maxBytes")
	require.Less(t, len(b.Recent()), 40, "older records were let go for the bytes")
}

// A call that logs for a long time: every update while it runs carries only
// its latest lines (each carried every kept line, 3.7 MB per subscriber for a
// call that logged for 4 s); its end carries all of them.
func TestARunningCallsUpdatesCarryItsLatestLines(t *testing.T) {
	b := NewBus(500)
	b.every = 0 // publish every line: the most updates a running call can make
	_, ch, cancel := b.Subscribe()
	defer cancel()
	b.begin("fn", "long", nil)
	require.Empty(t, (<-ch).Logs)
	for i := range 3000 {
		b.AppendLog("long", chatty(i, 100))
		for len(ch) > 0 {
			in := <-ch
			require.True(t, in.Running)
			size := 0
			for _, l := range in.Logs {
				size += len(l)
			}
			require.LessOrEqual(t, len(in.Logs), PreviewLines+1, "line %d", i)
			require.LessOrEqual(t, size, PreviewBytes+100, "line %d", i)
			require.Equal(t, chatty(i, 100), in.Logs[len(in.Logs)-1], "the latest line is there")
			if i >= PreviewLines {
				require.Contains(t, in.Logs[0], "earlier lines")
			}
		}
	}
	b.finish("long", runtimeapi.Result{Body: []byte(`{"errCode":0}`)}, Report{}, nil)
	end := <-ch
	require.False(t, end.Running)
	require.Len(t, end.Logs, 2*LogKeepLines+1, "its end carries the head, the marker and the tail")
	require.Equal(t, chatty(2999, 100), end.Logs[len(end.Logs)-1])
}
