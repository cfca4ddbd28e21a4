package emulator

import (
	"context"
	"fmt"
	"time"
)

// SetBinary swaps the function to a new build (cloudcall local --watch).
// Idle instances of the old build stop now; busy ones finish the call they
// are serving on the old binary and are retired when they release it, so no
// call in flight fails. Every call from now on cold-starts the new binary.
func (p *Pool) SetBinary(path string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg.Binary = path
	for i := 0; i < len(p.slots); i++ {
		s := p.slots[i]
		if !s.busy && s.binary != path {
			p.slots = append(p.slots[:i], p.slots[i+1:]...)
			if s.inst != nil {
				go s.inst.Stop()
			}
			i--
		}
	}
	p.handOffLocked()
}

// InstanceInfo is one live instance, for the console.
type InstanceInfo struct {
	Pid         int       `json:"pid"`
	Busy        bool      `json:"busy"`
	Warm        bool      `json:"warm"` // has served at least one call
	Invocations int       `json:"invocations"`
	Started     time.Time `json:"started"`
	LastUsed    time.Time `json:"lastUsed,omitzero"`
	RSSKiB      int64     `json:"rssKiB"`
	Binary      string    `json:"binary"`
}

// Snapshot lists the live instances.
func (p *Pool) Snapshot() []InstanceInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]InstanceInfo, 0, len(p.slots))
	for _, s := range p.slots {
		if s.inst == nil {
			continue // still exec'ing
		}
		out = append(out, InstanceInfo{Pid: s.inst.Pid(), Busy: s.busy, Warm: !s.fresh, Invocations: s.served,
			Started: s.started, LastUsed: s.lastUsed, RSSKiB: s.inst.RSSKiB(), Binary: s.binary})
	}
	return out
}

// probeTimeout bounds how long a new build may take to ask for work, and
// probeGrace is how long it must then stay up: a build that exits just
// after its first poll would fail every call and start a process for each.
const (
	probeTimeout = 10 * time.Second
	probeGrace   = 500 * time.Millisecond
)

// Probe starts bin once as the function's instance would run, waits for
// its first poll of the runtime API and probeGrace more, then stops it: a
// build that compiles but exits at start (a panic in init) or just after is
// refused before SetBinary, so the last good binary keeps serving. Under a debugger (a Launcher) it is not
// run: the debugger's single port belongs to the real instance.
func (p *Pool) Probe(ctx context.Context, bin string) error {
	p.mu.Lock()
	cfg := p.cfg
	p.mu.Unlock()
	if len(cfg.Launcher) > 0 {
		return nil
	}
	inst, err := StartInstance(InstanceConfig{Binary: bin, Platform: cfg.Platform, Env: cfg.Env, Log: p.sink, Prefix: cfg.LogPrefix})
	if err != nil {
		return &StartError{Function: cfg.Name, Err: err}
	}
	defer inst.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	timeout := time.NewTimer(probeTimeout)
	defer timeout.Stop()
	for inst.API.FirstPoll().IsZero() {
		select {
		case <-inst.Exited():
			if !inst.API.FirstPoll().IsZero() {
				return nil
			}
			return &StartError{Function: cfg.Name, Err: fmt.Errorf("%w before asking for work: %v", ErrExited, inst.exitErr), Tail: inst.StderrTail()}
		case <-timeout.C:
			return &StartError{Function: cfg.Name, Err: fmt.Errorf("it did not ask for work within %s (an init that waits?)", probeTimeout), Tail: inst.StderrTail()}
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	grace := time.NewTimer(probeGrace)
	defer grace.Stop()
	select {
	case <-inst.Exited():
		return &StartError{Function: cfg.Name, Err: fmt.Errorf("%w right after asking for work: %v", ErrExited, inst.exitErr), Tail: inst.StderrTail()}
	case <-ctx.Done():
		return ctx.Err()
	case <-grace.C:
		return nil
	}
}
