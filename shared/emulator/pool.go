package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

// FunctionConfig is one function as the emulator runs it.
type FunctionConfig struct {
	Name         string
	Binary       string
	Platform     runtimeapi.Platform
	Env          map[string]string
	Timeout      time.Duration
	MemoryMB     int
	MaxInstances int           // scale-out limit (default 4)
	Idle         time.Duration // stop an instance idle this long (default 5m)
	Stdout       io.Writer     // where the functions' own log lines go
	Launcher     []string      // run the binary through this (Delve under --debug)
	// OnLine receives each line an instance writes, with the request id it
	// was serving; Emulator.New sets it to feed the invocation bus.
	OnLine func(requestID, line string)
}

// Report is what the emulator prints after each invocation.
type Report struct {
	RequestID    string
	Function     string
	Duration     time.Duration
	InitDuration time.Duration // cold start: exec → ready for the first invocation (0 when warm)
	MaxRSSKiB    int64
	Instance     int // pid
	Cold         bool
}

// ErrTimedOut is returned when an invocation passes its timeout; the
// instance is recycled.
var ErrTimedOut = errors.New("task timed out")

// StartError is a binary that died before answering its first invocation.
type StartError struct {
	Function string
	Tail     string
	Err      error
}

func (e *StartError) Error() string {
	return fmt.Sprintf("%s failed to start: %v\n--- last output ---\n%s", e.Function, e.Err, e.Tail)
}

func (e *StartError) Unwrap() error { return e.Err }

type slot struct {
	inst     *Instance
	busy     bool
	lastUsed time.Time
	fresh    bool // has not served an invocation yet
	started  time.Time
	binary   string // what it runs; SetBinary retires slots on an older one
	served   int
}

// Pool runs a function's instances.
type Pool struct {
	cfg FunctionConfig

	mu      sync.Mutex
	cond    *sync.Cond
	slots   []*slot
	starts  int
	closed  bool
	stopped chan struct{}
}

// NewPool prepares a pool; no process starts until the first invocation.
func NewPool(cfg FunctionConfig) *Pool {
	if cfg.MaxInstances <= 0 {
		cfg.MaxInstances = 4
	}
	if cfg.Idle <= 0 {
		cfg.Idle = 5 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	p := &Pool{cfg: cfg, stopped: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go p.reap()
	return p
}

// Config returns the function's configuration.
func (p *Pool) Config() FunctionConfig {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

// Instances counts live instances.
func (p *Pool) Instances() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.slots)
}

// Starts counts processes started so far (cold starts).
func (p *Pool) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// acquire returns an idle live instance, or a new one while under the limit,
// or waits for one to free up.
func (p *Pool) acquire(ctx context.Context) (*slot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.closed {
			return nil, errors.New("emulator is shutting down")
		}
		p.dropDead()
		for _, s := range p.slots {
			if !s.busy {
				s.busy = true
				return s, nil
			}
		}
		if len(p.slots) < p.cfg.MaxInstances {
			s := &slot{busy: true, fresh: true, started: time.Now()}
			p.slots = append(p.slots, s)
			p.starts++
			icfg := InstanceConfig{Binary: p.cfg.Binary, Platform: p.cfg.Platform, Env: p.cfg.Env, Stdout: p.cfg.Stdout, Stderr: p.cfg.Stdout,
				Launcher: p.cfg.Launcher, OnLine: p.cfg.OnLine}
			s.binary = p.cfg.Binary
			p.mu.Unlock()
			inst, err := StartInstance(icfg)
			p.mu.Lock()
			if err != nil {
				p.remove(s)
				return nil, &StartError{Function: p.cfg.Name, Err: err}
			}
			s.inst = inst
			return s, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p.cond.Wait()
	}
}

func (p *Pool) release(s *slot, keep bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.busy = false
	s.fresh = false
	s.served++
	s.lastUsed = time.Now()
	if s.binary != p.cfg.Binary {
		keep = false // swapped while it served this call: retire it now
	}
	if !keep {
		p.remove(s)
		go s.inst.Stop()
	}
	p.cond.Broadcast()
}

func (p *Pool) remove(s *slot) {
	for i, x := range p.slots {
		if x == s {
			p.slots = append(p.slots[:i], p.slots[i+1:]...)
			return
		}
	}
}

// dropDead forgets idle instances whose process ended (a Lambda binary after
// a panic): the next call cold-starts a new one.
func (p *Pool) dropDead() {
	for i := 0; i < len(p.slots); i++ {
		s := p.slots[i]
		if !s.busy && s.inst != nil && !s.inst.Alive() {
			p.slots = append(p.slots[:i], p.slots[i+1:]...)
			go s.inst.Stop()
			i--
		}
	}
}

// Invoke runs one invocation, cold-starting an instance if none is free.
func (p *Pool) Invoke(ctx context.Context, inv runtimeapi.Invocation) (runtimeapi.Result, Report, error) {
	if inv.RequestID == "" {
		inv.RequestID = runtimeapi.NewRequestID()
	}
	if inv.Timeout <= 0 {
		inv.Timeout = p.cfg.Timeout
	}
	if inv.Function == "" {
		inv.Function = p.cfg.Name
	}
	if inv.MemoryMB == 0 {
		inv.MemoryMB = p.cfg.MemoryMB
	}
	for attempt := 0; ; attempt++ {
		res, rep, err := p.invokeOnce(ctx, inv)
		// An instance that died before taking the call (a Lambda binary exits
		// right after posting a panic) never saw it: run it on a fresh one.
		var se *StartError
		if errors.Is(err, runtimeapi.ErrNotDelivered) && !errors.As(err, &se) && ctx.Err() == nil && attempt < 2 {
			continue
		}
		return res, rep, err
	}
}

func (p *Pool) invokeOnce(ctx context.Context, inv runtimeapi.Invocation) (runtimeapi.Result, Report, error) {
	rep := Report{RequestID: inv.RequestID, Function: p.cfg.Name}
	s, err := p.acquire(ctx)
	if err != nil {
		return runtimeapi.Result{}, rep, err
	}
	rep.Cold = s.fresh
	rep.Instance = s.inst.Pid()
	begin := time.Now()
	res, err := s.inst.Invoke(ctx, inv)
	rep.Duration = time.Since(begin)
	if fp := s.inst.API.FirstPoll(); rep.Cold && !fp.IsZero() {
		rep.InitDuration = fp.Sub(s.started) // exec → first poll for work
	}
	rep.MaxRSSKiB = s.inst.MaxRSSKiB()
	switch {
	case errors.Is(err, runtimeapi.ErrNotDelivered) && !rep.Cold:
		p.release(s, false)
		return res, rep, err
	case err != nil && errors.Is(err, ErrExited) && rep.Cold && res.Body == nil:
		p.release(s, false)
		return res, rep, &StartError{Function: p.cfg.Name, Err: err, Tail: s.inst.StderrTail()}
	case err != nil:
		p.release(s, false)
		return res, rep, err
	case res.TimedOut:
		p.release(s, false) // a handler past its deadline may still be running: recycle
		return res, rep, fmt.Errorf("%w after %.2f seconds", ErrTimedOut, inv.Timeout.Seconds())
	}
	// A Lambda binary exits right after posting a panic: keep the slot only
	// while the process lives (dropDead removes it otherwise).
	p.release(s, true)
	return res, rep, nil
}

// reap stops instances idle longer than cfg.Idle.
func (p *Pool) reap() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.stopped:
			return
		case <-t.C:
		}
		p.mu.Lock()
		for i := 0; i < len(p.slots); i++ {
			s := p.slots[i]
			if !s.busy && time.Since(s.lastUsed) > p.cfg.Idle {
				p.slots = append(p.slots[:i], p.slots[i+1:]...)
				go s.inst.Stop()
				i--
			}
		}
		p.mu.Unlock()
	}
}

// Close stops every instance (no orphans).
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	slots := p.slots
	p.slots = nil
	close(p.stopped)
	p.cond.Broadcast()
	p.mu.Unlock()
	for _, s := range slots {
		if s.inst != nil {
			s.inst.Stop()
		}
	}
}
