// Package redistest finds the Redis the tests may use: REDIS_URL. Without it
// a test skips with one line, except under CI=true, where a missing Redis
// fails the run (CI must exercise the shared-state code).
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// URL returns REDIS_URL after checking Redis answers, or skips / fails.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		missing(t, "REDIS_URL is not set")
		return ""
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		missing(t, "Redis at REDIS_URL does not answer: "+err.Error())
	}
	return url
}

func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("redis: %s; CI=true needs Redis (.ci/run starts one)", why)
	}
	t.Skipf("redis: %s; skipping (set REDIS_URL=redis://127.0.0.1:6379/15 to run)", why)
}

// Prefix is a fresh key namespace so runs never see each other's keys.
func Prefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "cloudcall-test:" + hex.EncodeToString(b) + ":"
}
