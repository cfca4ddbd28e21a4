package emulator

import "time"

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
