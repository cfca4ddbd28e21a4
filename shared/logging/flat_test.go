package logging

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// slogLine is what slog's own JSON handler writes for the record.
func slogLine(t testing.TB, at time.Time, level slog.Level, msg string, attrs []slog.Attr) string {
	var out bytes.Buffer
	r := slog.NewRecord(at, level, msg, 0)
	r.AddAttrs(attrs...)
	require.NoError(t, slog.NewJSONHandler(&out, nil).Handle(context.Background(), r))
	return out.String()
}

// flatLine is what HandleFlat writes (no secrets configured).
func flatLine(t testing.TB, at time.Time, level slog.Level, msg string, attrs []slog.Attr) string {
	var out bytes.Buffer
	h := New(&out, nil, slog.LevelDebug).Handler().(*Handler)
	require.NoError(t, h.HandleFlat(context.Background(), at, level, msg, attrs))
	return out.String()
}

// HandleFlat writes the line slog writes, byte for byte, for every value:
// the ones it writes itself and the ones it hands to slog.
func TestHandleFlatWritesWhatSlogWrites(t *testing.T) {
	at := time.Date(2026, 11, 30, 1, 2, 3, 450000000, time.UTC)
	cases := map[string][]slog.Attr{
		"invocation": {slog.String("requestId", "req-1"), slog.String("function", "logistics-get-quota"), slog.String("api", "openapi.logistics.getQuota"),
			slog.String("event", "direct"), slog.Int("status", 200), slog.Float64("latencyMs", 0.413), slog.Int("errCode", 0),
			slog.String("errClass", "ok"), slog.Bool("coldStart", false)},
		"html and DEL":     {slog.String("a", "<b>&amp;</b> ~\x7f")},
		"quote":            {slog.String("reason", `field "bizId": expected a string`)},
		"backslash":        {slog.String("path", `C:\tmp`)},
		"control":          {slog.String("x", "a\nb\tc\r\x01")},
		"unicode":          {slog.String("x", "顺丰 ✓")},
		"line separator":   {slog.String("x", "a\u2028b")},
		"invalid utf-8":    {slog.String("x", "a\xffb")},
		"key needs escape": {slog.String(`k"ey`, "v")},
		"float zero":       {slog.Float64("f", 0)},
		"float negative":   {slog.Float64("f", -12.5)},
		"float tiny":       {slog.Float64("f", 1e-7)},
		"float edge":       {slog.Float64("f", 1e-6)},
		"float huge":       {slog.Float64("f", 1e21)},
		"float below huge": {slog.Float64("f", 999999999999999999999.0)},
		"float nan":        {slog.Float64("f", math.NaN())},
		"negative int":     {slog.Int("n", -42)},
		"bool":             {slog.Bool("b", true)},
		"duration (other)": {slog.Duration("d", time.Second)},
		"any (other)":      {slog.Any("m", map[string]int{"a": 1})},
		"no attributes":    nil,
		"uint64 (other)":   {slog.Uint64("u", 7)},
		"time (other)":     {slog.Time("t", at)},
		"group (other)":    {slog.Group("g", slog.Int("a", 1))},
		"empty string":     {slog.String("e", "")},
		"many attributes":  {slog.Int("a", 1), slog.Int("b", 2), slog.Int("c", 3), slog.Int("d", 4), slog.Int("e", 5), slog.Int("f", 6), slog.Int("g", 7)},
	}
	for name, attrs := range cases {
		for _, level := range []slog.Level{slog.LevelInfo, slog.LevelError} {
			require.Equal(t, slogLine(t, at, level, "invocation", attrs), flatLine(t, at, level, "invocation", attrs), name)
		}
	}
	// A message or time slog would write differently goes to slog too.
	require.Equal(t, slogLine(t, at, slog.LevelInfo, "a \"quoted\" msg", nil), flatLine(t, at, slog.LevelInfo, "a \"quoted\" msg", nil))
	require.Equal(t, slogLine(t, time.Time{}, slog.LevelInfo, "m", nil), flatLine(t, time.Time{}, slog.LevelInfo, "m", nil))
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, slogLine(t, far, slog.LevelWarn, "m", nil), flatLine(t, far, slog.LevelWarn, "m", nil))
}

// The fast line is redacted like every other line.
func TestHandleFlatRedacts(t *testing.T) {
	var out bytes.Buffer
	h := New(&out, func() []string { return []string{"the-configured-secret"} }, slog.LevelInfo).Handler().(*Handler)
	require.NoError(t, h.HandleFlat(context.Background(), time.Now(), slog.LevelInfo, "invocation",
		[]slog.Attr{slog.String("reason", "bad the-configured-secret"), slog.String("cause", "GET /x?access_token=sbx_abc123 failed")}))
	require.NotContains(t, out.String(), "the-configured-secret")
	require.NotContains(t, out.String(), "sbx_abc123")
	require.Equal(t, 2, strings.Count(out.String(), Mask))
}

// Derived handlers are slog's own and still redact.
func TestDerivedHandlersRedact(t *testing.T) {
	var out bytes.Buffer
	log := New(&out, func() []string { return []string{"the-configured-secret"} }, slog.LevelInfo).With("fn", "x")
	_, flat := log.Handler().(*Handler)
	require.False(t, flat)
	log.Info("m", "v", "the-configured-secret")
	require.Contains(t, out.String(), `"fn":"x"`)
	require.NotContains(t, out.String(), "the-configured-secret")
}

// Many goroutines share one handler, its buffer pool and its writer: every
// line comes out whole (run with -race).
func TestHandleFlatConcurrentLinesStayWhole(t *testing.T) {
	var mu sync.Mutex
	var out bytes.Buffer
	h := New(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) }), nil, slog.LevelInfo).Handler().(*Handler)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				_ = h.HandleFlat(context.Background(), time.Now(), slog.LevelInfo, "invocation",
					[]slog.Attr{slog.Int("g", g), slog.String("s", strings.Repeat("x", i))})
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Len(t, lines, 1600)
	for _, l := range lines {
		require.True(t, strings.HasPrefix(l, `{"time":"`) && strings.HasSuffix(l, `"}`), l)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// FuzzHandleFlat: for any string and float, the line is slog's.
func FuzzHandleFlat(f *testing.F) {
	f.Add("req-1", 0.413, int64(200))
	f.Add("a\"b\\c\n\u2028\xff", 1e-9, int64(-1))
	f.Fuzz(func(t *testing.T, s string, x float64, n int64) {
		at := time.Unix(1764464523, 123456789).UTC()
		attrs := []slog.Attr{slog.String(s, s), slog.Float64("f", x), slog.Int64("n", n)}
		require.Equal(t, slogLine(t, at, slog.LevelInfo, "invocation", attrs), flatLine(t, at, slog.LevelInfo, "invocation", attrs))
	})
}
