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
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Tick is how often TTLs advance: a key outlives its TTL by at most this.
const Tick = 250 * time.Millisecond

// Server is the embedded store.
type Server struct {
	m    *miniredis.Miniredis
	stop chan struct{}
	done sync.WaitGroup
	once sync.Once
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
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("embedded store on %s: %w", addr, err)
	}
	s := &Server{m: m, stop: make(chan struct{})}
	s.done.Add(1)
	go s.clock()
	return s, nil
}

// clock runs TTLs on the wall clock, as on a real Redis: tokens, nonces and
// leases expire while the emulator runs (miniredis's default is to expire
// only when a test fast-forwards). A ticker, not miniredis's ClockTTL:
// that advances every TTL, sorting every key, on each command, so a
// `make run` left serving got slower with every key it kept (GET at 1.0 ms
// median with 1,700 keys, 20.8 ms with 25,500; a charge at 1.5 s).
func (s *Server) clock() {
	defer s.done.Done()
	t := time.NewTicker(Tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.m.FastForward(now.Sub(last))
			last = now
		}
	}
}

// URL is the CLOUDCALL_STORE value for the functions.
func (s *Server) URL() string { return "redis://" + s.m.Addr() + "/0" }

// Addr is host:port.
func (s *Server) Addr() string { return s.m.Addr() }

// Keys lists the keys held now (the admin view and tests).
func (s *Server) Keys() []string { return s.m.Keys() }

// Close stops the server.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.stop)
		s.done.Wait()
		s.m.Close()
	})
}
