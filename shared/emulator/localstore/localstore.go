// Package localstore is the emulator's embedded Redis: a Redis-protocol
// server (miniredis) on loopback that every instance of every function
// shares, so `cloudcall local` runs the same store code path (redisstore, its
// Lua scripts, TIME) a multi-instance deployment runs against Redis. It lives
// exactly as long as the emulator and its sandboxes: a restart is a fresh
// store with fresh sandboxes, so neither holds state the other forgot. It
// takes a password made at start: any local user could otherwise read the
// tokens it caches (real ones under --upstream real) or delete the nonces
// that stop replays.
package localstore

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Tick is how often TTLs advance while advancing them is cheap: a key then
// outlives its TTL by at most this.
const Tick = 250 * time.Millisecond

// Server is the embedded store.
type Server struct {
	m    *miniredis.Miniredis
	pass string
	warn func(string)
	stop chan struct{}
	done sync.WaitGroup
	once sync.Once
}

// SlowAdvance is how long one expiry pass may take before Options.Warn
// hears of it (once): the store is paused meanwhile.
const SlowAdvance = 250 * time.Millisecond

// Options configures StartWith.
type Options struct {
	// Warn hears, once, that expiring keys paused the store for longer
	// than SlowAdvance: the load has grown past what it is for.
	Warn func(msg string)
}

// Start listens on addr ("127.0.0.1:0" for any free port).
func Start(addr string) (*Server, error) { return StartWith(addr, Options{}) }

// StartWith is Start with options.
func StartWith(addr string, o Options) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("embedded store address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("embedded store address %q: loopback only (plain TCP, no TLS)", addr)
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	pass := hex.EncodeToString(b)
	m := miniredis.NewMiniRedis()
	m.RequireAuth(pass)
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("embedded store on %s: %w", addr, err)
	}
	s := &Server{m: m, pass: pass, stop: make(chan struct{}), warn: o.Warn}
	s.done.Add(1)
	go s.clock()
	return s, nil
}

// clock runs TTLs on the wall clock, as on a real Redis: tokens, nonces and
// leases expire while the emulator runs (miniredis's default is to expire
// only when a test fast-forwards). Not miniredis's ClockTTL: that advances
// every TTL, sorting every key, on each command, so a `make run` left
// serving got slower with every key it kept (GET at 1.0 ms median with
// 1,700 keys, 20.8 ms with 25,500). Advancing on a timer moves that cost
// off the commands, and the timer backs off as the keys grow, so the store
// spends at most about a twentieth of its time there (a quarter of a second
// every 250 ms took 163 ms with 250,000 keys, and the store was locked most
// of the time); TTLs then run late by the period, at most MaxTick.
func (s *Server) clock() {
	defer s.done.Done()
	last := time.Now()
	t := time.NewTimer(Tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		start := time.Now()
		s.m.FastForward(start.Sub(last))
		last = start
		took := time.Since(start)
		if took > SlowAdvance && s.warn != nil && manyKeys(len(s.m.Keys())) {
			s.warn(fmt.Sprintf("embedded store: expiring keys paused it for %s (it keeps each signed call's nonce 11 minutes and each charge's records a day, about 2 KB a key, and the pause grows with them); for sustained load run with --store redis://127.0.0.1:6379/<db> (the charge keeps its records there only with appendonly yes, or with CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE=assume in an --env-file: docs/emulator.md)", took.Round(time.Millisecond)))
			s.warn = nil
		}
		t.Reset(period(took))
	}
}

// WarnKeys is how many keys a slow expiry pass must find before the warning
// blames them: the pass's time is wall time, so a busy machine (the lock
// waited for, the CPU shared) slowed it at 9,000 keys, where a pass takes
// 5 ms, and the advice to move the keys to a Redis was wrong.
const WarnKeys = 50_000

func manyKeys(n int) bool { return n >= WarnKeys }

// MaxTick bounds how late a TTL may run with a very large key set.
const MaxTick = 30 * time.Second

// period is the wait after an advance that took took: Tick, or twenty
// times as long, at most MaxTick.
func period(took time.Duration) time.Duration {
	return min(max(Tick, 20*took), MaxTick)
}

// URL is the CLOUDCALL_STORE value for the functions, password included.
// The user is named: redis-cli -u sends no password with an empty one.
func (s *Server) URL() string { return "redis://default:" + s.pass + "@" + s.m.Addr() + "/0" }

// Addr is host:port.
func (s *Server) Addr() string { return s.m.Addr() }

// Password is the password made at start.
func (s *Server) Password() string { return s.pass }

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
