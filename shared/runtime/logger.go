package runtime

import (
	"io"
	"log/slog"

	"github.com/cloudcall/cloudcall/shared/config"
)

// NewLogger writes one JSON object per line, the format both platforms' log
// services index.
func NewLogger(w io.Writer, env *config.Env) *slog.Logger {
	level := slog.LevelInfo
	if env.Get("CLOUDCALL_LOG_LEVEL", "") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
