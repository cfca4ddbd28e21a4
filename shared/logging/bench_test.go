package logging

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// BenchmarkInvocationLine is the line every invocation writes: two
// attributes bound once, six per call, two configured secrets to redact.
func BenchmarkInvocationLine(b *testing.B) {
	secrets := []string{"sbx_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "demo-appsecret-0123456789abcdef"}
	log := New(io.Discard, func() []string { return secrets }, slog.LevelInfo).With(slog.String("function", "logistics-get-quota"), slog.String("api", "openapi.logistics.getQuota"))
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		log.LogAttrs(ctx, slog.LevelInfo, "invocation", slog.String("requestId", "c0ffee-1234"), slog.String("event", "direct"),
			slog.Int("status", 200), slog.Float64("latencyMs", 0.123), slog.Int("errCode", 0))
	}
}

// BenchmarkInvocationLineFlat is the invocation line as the runtime writes
// it (HandleFlat), with three configured secrets to look for.
func BenchmarkInvocationLineFlat(b *testing.B) {
	secrets := []string{"sbx_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "demo-appsecret-0123456789abcdef", "wx-session-key-0123"}
	h := New(io.Discard, func() []string { return secrets }, slog.LevelInfo).Handler().(*Handler)
	attrs := []slog.Attr{slog.String("requestId", "c0ffee-1234-5678-9abc"), slog.String("function", "logistics-get-quota"),
		slog.String("api", "openapi.logistics.getQuota"), slog.String("event", "direct"), slog.Int("status", 200),
		slog.Float64("latencyMs", 0.413), slog.Int("errCode", 0), slog.String("errClass", "ok"), slog.Bool("coldStart", false)}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := h.HandleFlat(ctx, time.Now(), slog.LevelInfo, "invocation", attrs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEscapedLine is a failure's line quoting a vendor's JSON error (a
// backslash, so escaped spellings are looked for), with five secrets and
// none of them in it.
func BenchmarkEscapedLine(b *testing.B) {
	secrets := []string{"sbx_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "demo-appsecret-0123456789abcdef",
		"ck1/demo+secret/0123456789==", `ck1\/demo+secret\/0123456789==`, "wx-session-key-0123"}
	r := Redactor{Secrets: func() []string { return secrets }}
	line := []byte(`{"time":"2026-01-01T00:00:00Z","level":"WARN","msg":"vendor error","function":"ck1-pricing-inbound-box",` +
		`"body":"{\"error\":\"invalid_grant\",\"error_description\":\"the refresh token has expired or was used; ask the merchant to authorize again\",\"path\":\"\\/oauth2\\/token\"}"}` + "\n")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = r.Redact(line)
	}
}
