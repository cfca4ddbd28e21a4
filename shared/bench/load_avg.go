package bench

import (
	"os"
	"strings"
)

// loadAvg is /proc/loadavg's 1-, 5- and 15-minute figures ("" elsewhere):
// the report says how busy the shared machine was while it measured.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
