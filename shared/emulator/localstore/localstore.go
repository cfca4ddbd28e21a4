// Package localstore is the emulator's embedded Redis: a Redis-protocol
// server (miniredis) on loopback that every instance of every function
// shares, so `cloudcall local` runs the same store code path (redisstore, its
// Lua scripts, TIME) a multi-instance deployment runs against Redis. It lives
// exactly as long as the emulator and its sandboxes: a restart is a fresh
// store with fresh sandboxes, so neither holds state the other forgot.
package localstore

import (
	"fmt"
	"net"

	"github.com/alicebob/miniredis/v2"
)

// Server is the embedded store.
type Server struct {
	m *miniredis.Miniredis
}

// Start listens on addr ("127.0.0.1:0" for any free port).
func Start(addr string) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("embedded store address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("embedded store address %q: loopback only (it has no password)", addr)
	}
	m := miniredis.NewMiniRedis()
	// TTLs run on the wall clock, as on a real Redis: tokens and rate-limit
	// windows expire while the emulator runs (miniredis's default is to
	// expire only when a test fast-forwards).
	m.ClockTTL(true)
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("embedded store on %s: %w", addr, err)
	}
	return &Server{m: m}, nil
}

// URL is the CLOUDCALL_STORE value for the functions.
func (s *Server) URL() string { return "redis://" + s.m.Addr() + "/0" }

// Addr is host:port.
func (s *Server) Addr() string { return s.m.Addr() }

// Keys lists the keys held now (the admin view and tests).
func (s *Server) Keys() []string { return s.m.Keys() }

// Close stops the server.
func (s *Server) Close() { s.m.Close() }
