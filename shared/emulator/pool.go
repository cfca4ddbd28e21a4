package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudcall/cloudcall/shared/emulator/linewriter"
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
	MaxInstances int           // scale-out limit (default DefaultMaxInstances())
	Idle         time.Duration // stop an instance idle this long (default 5m)
	// Stdout is where the functions' own log lines go, each prefixed with
	// LogPrefix. Pass the emulator's *linewriter.Sink so they never mix with
	// its START / END lines; any other writer gets a sink of its own.
	Stdout    io.Writer
	LogPrefix string
	// HTTPMethods are the HTTP trigger's methods from the descriptors (nil:
	// any method); NoHTTPTrigger says the descriptors give it no trigger.
	HTTPMethods   []string
	NoHTTPTrigger bool
	// Launcher runs the binary through another program (Delve under --debug).
	Launcher []string
	// OnLine receives each line an instance writes, with the request id it
	// was serving; Emulator.New sets it to feed the invocation bus.
	OnLine func(requestID, line string)
}

// DefaultMaxInstances is the scale-out limit when none is set: two instances
// per CPU (at least 2). An instance spends most of a call waiting on its
// vendor, so one per core leaves cores idle; more than two per core only adds
// processes contending for the same cores.
func DefaultMaxInstances() int { return max(2, 2*goruntime.NumCPU()) }

// Report is what the emulator prints after each invocation.
type Report struct {
	RequestID    string
	Function     string
	Duration     time.Duration
	InitDuration time.Duration // cold start: exec → ready for the first invocation (0 when warm)
	MaxRSSKiB    int64
	Instance     int // pid
	Cold         bool
	Log          []byte // the last 4 KiB the instance printed during this invocation
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
	if e.Tail == "" {
		return fmt.Sprintf("%s failed to start: %v", e.Function, e.Err)
	}
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

// grant is what a waiter receives: an instance handed over by the caller
// that released it, or a reserved slot to start a new instance in.
type grant struct {
	s     *slot
	start bool
}

// Pool runs a function's instances. A freed instance goes straight to the
// caller that has waited longest (FIFO), never back into a scramble where
// the caller that just released it wins again.
type Pool struct {
	cfg  FunctionConfig
	sink *linewriter.Sink

	mu      sync.Mutex
	slots   []*slot
	waiters []chan grant // FIFO; closed on shutdown
	starts  int
	closed  bool
	// draining: a shutdown began; calls running finish, and no call starts
	// (a queued one started then was killed mid-call at the 3 s mark).
	draining bool
	stopped  chan struct{}
}

// NewPool prepares a pool; no process starts until the first invocation.
func NewPool(cfg FunctionConfig) *Pool {
	if cfg.MaxInstances <= 0 {
		cfg.MaxInstances = DefaultMaxInstances()
	}
	if cfg.Idle <= 0 {
		cfg.Idle = 5 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	sink, ok := cfg.Stdout.(*linewriter.Sink)
	if !ok {
		sink = linewriter.New(cfg.Stdout, 0)
	}
	p := &Pool{cfg: cfg, sink: sink, stopped: make(chan struct{})}
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

// InFlight counts invocations its instances have taken and not answered.
func (p *Pool) InFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.slots {
		if s.inst != nil {
			n += s.inst.API.InFlight()
		}
	}
	return n
}

// Queued counts calls waiting for an instance.
func (p *Pool) Queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters)
}

// Starts counts processes started so far (cold starts).
func (p *Pool) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// acquire returns an idle live instance, or a new one while under the limit,
// or queues for the next one freed.
func (p *Pool) acquire(ctx context.Context) (*slot, error) {
	p.mu.Lock()
	if p.closed || p.draining {
		p.mu.Unlock()
		return nil, errShuttingDown
	}
	if err := ctx.Err(); err != nil {
		// The caller had gone before the call could start: it never runs.
		p.mu.Unlock()
		return nil, fmt.Errorf("%w: not run: the caller had gone before an instance took the call", err)
	}
	p.dropDead()
	// Queued callers come first: an arrival takes an idle instance only when
	// nobody waits (a freed instance is handed over, so none sits idle then).
	if len(p.waiters) == 0 {
		for _, s := range p.slots {
			if !s.busy {
				s.busy = true
				p.mu.Unlock()
				return s, nil
			}
		}
		if len(p.slots) < p.cfg.MaxInstances {
			s := p.reserveLocked()
			p.mu.Unlock()
			return p.start(s)
		}
	}
	ch := make(chan grant, 1)
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()
	select {
	case g, ok := <-ch:
		if !ok {
			return nil, errShuttingDown
		}
		if g.start {
			return p.start(g.s)
		}
		return g.s, nil
	case <-ctx.Done():
		p.mu.Lock()
		for i, w := range p.waiters {
			if w == ch {
				p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
				p.mu.Unlock()
				return nil, ctx.Err()
			}
		}
		p.mu.Unlock()
		// A grant raced the cancellation: pass it on rather than leak it.
		if g, ok := <-ch; ok {
			if g.start {
				p.mu.Lock()
				p.remove(g.s)
				p.handOffLocked()
				p.mu.Unlock()
			} else {
				p.release(g.s, true)
			}
		}
		return nil, ctx.Err()
	}
}

var errShuttingDown = errors.New("emulator is shutting down")

// reserveLocked adds a busy slot for an instance about to start.
func (p *Pool) reserveLocked() *slot {
	s := &slot{busy: true, fresh: true, started: time.Now(), binary: p.cfg.Binary}
	p.slots = append(p.slots, s)
	p.starts++
	return s
}

// start runs the process for a reserved slot.
func (p *Pool) start(s *slot) (*slot, error) {
	launch := func(bin string) (*Instance, error) {
		return StartInstance(InstanceConfig{Binary: bin, Platform: p.cfg.Platform, Env: p.cfg.Env, Log: p.sink, Prefix: p.cfg.LogPrefix,
			Launcher: p.cfg.Launcher, OnLine: p.cfg.OnLine})
	}
	p.mu.Lock()
	bin := s.binary
	p.mu.Unlock()
	inst, err := launch(bin)
	if err != nil {
		// A swap (--watch) between the reservation and the start may have
		// unlinked the old build: start the new one instead.
		p.mu.Lock()
		cur := p.cfg.Binary
		if cur != bin {
			s.binary = cur
		}
		p.mu.Unlock()
		if cur != bin {
			inst, err = launch(cur)
		}
	}
	if err != nil {
		p.mu.Lock()
		p.remove(s)
		p.handOffLocked()
		p.mu.Unlock()
		return nil, &StartError{Function: p.cfg.Name, Err: err}
	}
	// Under the lock: the console's Snapshot, InFlight and Close read
	// s.inst while this start was exec'ing.
	p.mu.Lock()
	if p.closed {
		// Close ran while this process was exec'ing and could not stop it.
		p.mu.Unlock()
		inst.Stop()
		return nil, errShuttingDown
	}
	s.started = time.Now()
	s.inst = inst
	p.mu.Unlock()
	return s, nil
}

// handOffLocked gives the longest waiter a new slot if there is room (after
// an instance was removed).
func (p *Pool) handOffLocked() {
	if len(p.waiters) > 0 && len(p.slots) < p.cfg.MaxInstances && !p.closed {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		w <- grant{s: p.reserveLocked(), start: true}
	}
}

func (p *Pool) release(s *slot, keep bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.fresh = false
	s.served++
	s.lastUsed = time.Now()
	if s.binary != p.cfg.Binary {
		keep = false // swapped while it served this call: retire it now
	}
	if keep && !p.closed && s.inst.Alive() {
		if len(p.waiters) > 0 {
			w := p.waiters[0]
			p.waiters = p.waiters[1:]
			w <- grant{s: s} // stays busy: it changes hands, never goes idle
			return
		}
		s.busy = false
		return
	}
	s.busy = false
	p.remove(s)
	go s.inst.Stop()
	p.handOffLocked()
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
	// Like FC and Lambda, the instance runs an invocation to its answer or
	// its timeout whatever the caller does, and is neither killed nor handed
	// to anyone else until it answers: killing it would cut a charge off
	// mid-call. The report waits for that answer too, so END, REPORT and the
	// console's record say what the call did even when nobody heard it.
	begin := time.Now()
	over := p.watchMemory(s.inst)
	res, log, err := s.inst.InvokeLogged(context.WithoutCancel(ctx), inv)
	if over() && err != nil {
		err = &MemoryError{LimitMB: p.cfg.MemoryMB, Err: err}
	}
	return p.settle(s, inv, rep, begin, res, log, err)
}

// MemoryError is an instance killed for using more memory than its
// function's MemorySize, as FC and Lambda kill it.
type MemoryError struct {
	LimitMB int
	Err     error // the exit the kill caused
}

func (e *MemoryError) Error() string {
	return fmt.Sprintf("memory limit exceeded: the instance used more than its %d MB and was killed, as the platform kills it (%v)", e.LimitMB, e.Err)
}

func (e *MemoryError) Unwrap() error { return e.Err }

// watchMemory kills in when its resident memory passes the function's
// MemorySize while it serves a call: a 30-byte input that took 2.6 GB ran
// to the timeout here, where the platform would have killed it. The
// returned func stops the watch and says whether it killed.
func (p *Pool) watchMemory(in *Instance) func() bool {
	limit := int64(p.cfg.MemoryMB) * 1024
	if limit <= 0 || len(p.cfg.Launcher) > 0 {
		// Under a launcher (Delve) the process watched is the debugger,
		// whose own memory would count against the function's.
		return func() bool { return false }
	}
	done := make(chan struct{})
	var killed atomic.Bool
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if in.RSSKiB() > limit {
					killed.Store(true)
					in.kill()
					return
				}
			}
		}
	}()
	return func() bool {
		close(done)
		return killed.Load()
	}
}

// settle reports an invocation's end and returns its instance to the pool,
// or retires it.
func (p *Pool) settle(s *slot, inv runtimeapi.Invocation, rep Report, begin time.Time, res runtimeapi.Result, log []byte, err error) (runtimeapi.Result, Report, error) {
	rep.Duration = time.Since(begin)
	rep.Log = log
	if fp := s.inst.API.FirstPoll(); rep.Cold && !fp.IsZero() {
		rep.InitDuration = fp.Sub(s.started) // exec → first poll for work
	}
	rep.MaxRSSKiB = s.inst.MaxRSSKiB()
	switch {
	case errors.Is(err, runtimeapi.ErrNotDelivered) && !rep.Cold:
		p.release(s, false)
		return res, rep, err
	case err != nil && errors.Is(err, ErrExited) && rep.Cold && s.inst.API.FirstPoll().IsZero() && !s.inst.Signaled():
		// Died before asking for work: a start-up failure, and its output
		// is its own (no invocation ran), so the tail helps.
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

// Drain starts a shutdown: the calls running finish, queued ones are told
// the emulator is shutting down, and none starts from now on.
func (p *Pool) Drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draining = true
	for _, w := range p.waiters {
		close(w)
	}
	p.waiters = nil
}

// Close stops every instance (no orphans).
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	// A slot still starting has no instance yet; its start sees closed and
	// stops the process itself.
	var insts []*Instance
	for _, s := range p.slots {
		if s.inst != nil {
			insts = append(insts, s.inst)
		}
	}
	p.slots = nil
	close(p.stopped)
	for _, w := range p.waiters {
		close(w)
	}
	p.waiters = nil
	p.mu.Unlock()
	for _, in := range insts {
		in.Stop()
	}
}
