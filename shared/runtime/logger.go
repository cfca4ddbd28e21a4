package runtime

import (
	"io"
	"log/slog"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/logging"
)

// NewLogger writes one JSON object per line, the format both platforms' log
// services index, with every secret the environment handed out redacted.
func NewLogger(w io.Writer, env *config.Env) *slog.Logger {
	level := slog.LevelInfo
	if env.Get("CLOUDCALL_LOG_LEVEL", "") == "debug" {
		level = slog.LevelDebug
	}
	return logging.New(w, env.Secrets, level)
}
