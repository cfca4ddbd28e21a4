// Package redisproc starts a test's own redis-server on a free loopback port,
// so a test can restart it (empty, or reloading its AOF) without touching
// the Redis other tests share. Without redis-server on PATH a test skips with
// one line, except under CI=true, where it fails (.ci/run installs it).
package redisproc

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server process and its data directory.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	aof  bool
	cmd  *exec.Cmd
}

// Start runs redis-server with AOF (appendfsync always: every write is on
// disk before its reply, so a SIGKILL loses nothing, whatever the machine's
// load) or with no persistence at all (no AOF, no RDB snapshots).
func Start(t testing.TB, aof bool) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not on PATH; CI=true needs it (.ci/run installs it)")
		}
		t.Skip("redis-server is not on PATH; skipping (apt-get install redis-server)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	s := &Server{t: t, bin: bin, dir: t.TempDir(), port: port, aof: aof}
	s.start()
	t.Cleanup(s.kill)
	return s
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

func (s *Server) start() {
	s.t.Helper()
	args := []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(s.port), "--dir", s.dir, "--save", "", "--daemonize", "no"}
	if s.aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	s.cmd = exec.Command(s.bin, args...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("redis-server: %v", err)
	}
	opts, _ := redis.ParseURL(s.URL())
	c := redis.NewClient(opts)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on port %d did not answer: %v", s.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// Crash kills the server (SIGKILL, no shutdown save) and starts it again on
// the same port and directory: without persistence it comes back empty, with
// AOF it replays its log.
func (s *Server) Crash() {
	s.t.Helper()
	s.kill()
	s.start()
}

// Reconfigure kills the server and starts an empty one on the same port,
// with AOF or without persistence: a failover to a node that lost its data.
func (s *Server) Reconfigure(aof bool) {
	s.t.Helper()
	s.kill()
	s.aof = aof
	s.dir = s.t.TempDir()
	s.start()
}

// Keys counts the keys in db 0.
func (s *Server) Keys() int64 {
	opts, _ := redis.ParseURL(s.URL())
	c := redis.NewClient(opts)
	defer c.Close()
	n, err := c.DBSize(context.Background()).Result()
	if err != nil {
		s.t.Fatalf("DBSIZE: %v", err)
	}
	return n
}
