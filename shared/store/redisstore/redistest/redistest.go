// Package redistest finds the Redis the tests may use: REDIS_URL. Without it
// a test skips with one line, except under CI=true, where a missing Redis
// fails the run (CI must exercise the shared-state code).
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
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

// Keyspace is a fresh key namespace on the Redis at url whose keys are
// deleted when the test ends, so `make test` leaves nothing behind in the
// database it used (keys without a TTL included).
func Keyspace(t testing.TB, url string) string {
	t.Helper()
	prefix := Prefix()
	t.Cleanup(func() {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return
		}
		c := redis.NewClient(opts)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				t.Logf("redis: could not delete the test's keys under %s: %v", prefix, err)
			}
		}
	})
	return prefix
}

// Prefix is a fresh key namespace so runs never see each other's keys. Tests
// use Keyspace, which also removes the keys afterwards.
func Prefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "cloudcall-test:" + hex.EncodeToString(b) + ":"
}

// Proxy forwards TCP to Redis and can cut every connection on demand, so a
// test can take Redis away from processes mid-run without stopping the
// server other tests share. It also counts what clients send.
type Proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
	sends  atomic.Int64
}

// NewProxy listens on loopback and forwards to target (host:port).
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &Proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { _ = ln.Close(); p.Cut() })
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { p.forward(up, c); _ = up.Close() }()
		go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
	}
}

// forward copies a client's bytes to Redis, counting each arrival.
func (p *Proxy) forward(up, c net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.sends.Add(1)
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Sends counts how many times clients' bytes arrived. A client that waits
// for each answer before its next command sends once per round trip, and a
// small pipeline arrives as one send, so a test can count round trips.
func (p *Proxy) Sends() int64 { return p.sends.Load() }

// Cut drops every connection and refuses new ones.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// Restore accepts connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// FailOver drops every connection and sends new ones to target: what a
// client sees when its Redis's address moves to a promoted replica.
func (p *Proxy) FailOver(target string) {
	p.Cut()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target, p.down = target, false
}

// HostPort extracts host:port and the path (the db) from a redis URL.
func HostPort(raw string) (hostport, db string) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", ""
	}
	return u.Host, u.Path
}
