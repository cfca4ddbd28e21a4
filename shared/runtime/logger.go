package runtime

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/logging"
	"github.com/cloudcall/cloudcall/shared/upstream"
)

// NewLogger writes one JSON object per line, the format both platforms' log
// services index, with every secret the environment handed out redacted.
func NewLogger(w io.Writer, env *config.Env) *slog.Logger {
	level, _ := logLevel(env)
	return logging.NewRedacting(w, logging.Redactor{Secrets: env.Secrets, Encoded: env.EncodedSecrets}, level)
}

// logLevel reads CLOUDCALL_LOG_LEVEL in any case; a value it does not know
// is info, and an error New lists with the other configuration problems.
func logLevel(env *config.Env) (slog.Level, error) {
	v := env.Get("CLOUDCALL_LOG_LEVEL", "")
	switch strings.ToLower(v) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("CLOUDCALL_LOG_LEVEL=%q: expected debug, info, warn or error", v)
}

// debugTransport logs every vendor request at debug level: method, host,
// path, status and time, never the query (WeChat's carries the access
// token), headers or bodies. New installs it only when debug is on.
type debugTransport struct {
	next http.RoundTripper
	log  *slog.Logger
}

func (d debugTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := d.next.RoundTrip(r)
	attrs := []any{"method", r.Method, "host", r.URL.Host, "path", r.URL.Path, "ms", float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		d.log.Debug("vendor request failed", append(attrs, "error", upstream.Clean(err).Error())...)
		return resp, err
	}
	d.log.Debug("vendor request", append(attrs, "status", resp.StatusCode)...)
	return resp, nil
}
