package emulator

// StartReservedAfter reserves an instance slot, runs between (a swap, a
// deleted file), then starts the slot: the window a concurrent --watch swap
// can fall into.
func StartReservedAfter(p *Pool, between func()) (pid int, binary string, err error) {
	p.mu.Lock()
	s := p.reserveLocked()
	p.mu.Unlock()
	between()
	s, err = p.start(s)
	if err != nil {
		return 0, "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return s.inst.Pid(), s.binary, nil
}

// BodyPeak is the most request-body bytes the doors ever held at once.
func BodyPeak(e *Emulator) int64 { return e.bodies.Peak() }

// BodyReserved is the request-body room reserved now; BodyWaiting the
// calls waiting for room.
func BodyReserved(e *Emulator) int64 { return e.bodies.reserved.Load() }
func BodyWaiting(e *Emulator) int64  { return e.bodies.waiting.Load() }
