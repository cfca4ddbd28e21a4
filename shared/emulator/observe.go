package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

// Invocation is one call as the console shows it: what was sent, what came
// back, and the log lines the instance wrote while serving it.
type Invocation struct {
	RequestID      string          `json:"requestId"`
	Function       string          `json:"function"`
	Trigger        string          `json:"trigger"` // http, invoke or timer, from the payload's shape
	Start          time.Time       `json:"start"`
	Running        bool            `json:"running"`
	Attempt        int             `json:"attempt,omitempty"` // of an asynchronous invocation run again (1, 2, ...)
	Request        json.RawMessage `json:"request"`
	Response       json.RawMessage `json:"response,omitempty"`
	Status         int             `json:"status,omitempty"`  // HTTP status, for HTTP trigger events
	ErrCode        *int64          `json:"errCode,omitempty"` // the envelope's, when the answer is one
	ErrMsg         string          `json:"errMsg,omitempty"`
	Error          string          `json:"error,omitempty"` // platform-level failure (timeout, crash, function error)
	DurationMs     float64         `json:"durationMs"`
	InitDurationMs float64         `json:"initDurationMs,omitempty"`
	Cold           bool            `json:"cold"`
	Pid            int             `json:"pid,omitempty"`
	Logs           []string        `json:"logs"`
}

func (in *Invocation) clone() Invocation {
	c := *in
	c.Logs = append([]string(nil), in.Logs...)
	return c
}

// Bus keeps the latest invocations and tells subscribers about every change
// (start, end, each log line).
type Bus struct {
	mu    sync.Mutex
	max   int
	order []string
	byID  map[string]*Invocation
	subs  map[chan Invocation]struct{}
}

// NewBus keeps the last max invocations.
func NewBus(max int) *Bus {
	return &Bus{max: max, byID: map[string]*Invocation{}, subs: map[chan Invocation]struct{}{}}
}

// Subscribe returns the invocations kept so far (oldest first) and a channel
// of every later change, taken atomically so nothing falls between them. A
// subscriber that does not keep up loses updates rather than block calls.
func (b *Bus) Subscribe() ([]Invocation, <-chan Invocation, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan Invocation, 256)
	b.subs[ch] = struct{}{}
	return b.recentLocked(), ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// Recent lists the invocations kept, oldest first.
func (b *Bus) Recent() []Invocation {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.recentLocked()
}

func (b *Bus) recentLocked() []Invocation {
	out := make([]Invocation, 0, len(b.order))
	for _, id := range b.order {
		out = append(out, b.byID[id].clone())
	}
	return out
}

// Get returns one invocation by request id.
func (b *Bus) Get(id string) (Invocation, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	in, ok := b.byID[id]
	if !ok {
		return Invocation{}, false
	}
	return in.clone(), true
}

func (b *Bus) publishLocked(in *Invocation) {
	for ch := range b.subs {
		select {
		case ch <- in.clone():
		default:
		}
	}
}

func (b *Bus) begin(fn, id string, payload []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	in := &Invocation{RequestID: id, Function: fn, Trigger: triggerOf(payload), Start: time.Now(), Running: true,
		Request: rawJSON(payload), Logs: []string{}}
	if old, ok := b.byID[id]; ok {
		// An asynchronous retry runs under the same request id, as on the
		// platforms. The earlier attempt stays a record of its own,
		// "<id>#1", instead of the two sharing one record and its logs.
		n := max(old.Attempt, 1)
		old.Attempt, old.RequestID = n, fmt.Sprintf("%s#%d", id, n)
		b.byID[old.RequestID] = old
		for i, k := range b.order {
			if k == id {
				b.order[i] = old.RequestID
			}
		}
		in.Attempt = n + 1
	}
	b.order = append(b.order, id)
	b.byID[id] = in
	for len(b.order) > b.max {
		delete(b.byID, b.order[0])
		b.order = b.order[1:]
	}
	b.publishLocked(in)
}

func (b *Bus) finish(id string, res runtimeapi.Result, rep Report, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	in, ok := b.byID[id]
	if !ok {
		return
	}
	in.Running = false
	in.DurationMs = float64(rep.Duration.Microseconds()) / 1000
	in.InitDurationMs = float64(rep.InitDuration.Microseconds()) / 1000
	in.Cold, in.Pid = rep.Cold, rep.Instance
	if len(res.Body) > 0 {
		in.Response = rawJSON(res.Body)
	}
	switch {
	case err != nil:
		in.Error = err.Error()
	case res.Error != nil:
		in.Error = res.Error.Type + ": " + res.Error.Message
	default:
		in.Status, in.ErrCode, in.ErrMsg = envelopeOf(res.Body)
	}
	b.publishLocked(in)
}

// AppendLog attributes a line an instance wrote to the invocation it was
// serving (FunctionConfig.OnLine).
func (b *Bus) AppendLog(id, line string) {
	if id == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	in, ok := b.byID[id]
	if !ok {
		return
	}
	if len(in.Logs) < 1000 {
		in.Logs = append(in.Logs, line)
	}
	b.publishLocked(in)
}

// triggerOf names the event shape the way runtime.Detect does.
func triggerOf(payload []byte) string {
	var ev struct {
		RawPath        *string         `json:"rawPath"`
		RequestContext json.RawMessage `json:"requestContext"`
		TriggerTime    *string         `json:"triggerTime"`
		Source         string          `json:"source"`
		DetailType     string          `json:"detail-type"`
	}
	if json.Unmarshal(payload, &ev) != nil {
		return "invoke"
	}
	switch {
	case ev.RawPath != nil && ev.RequestContext != nil:
		return "http"
	case ev.TriggerTime != nil, ev.Source == "cloudcall.schedule", ev.DetailType == "Scheduled Event":
		return "timer"
	}
	return "invoke"
}

// envelopeOf reads the HTTP status (for HTTP trigger answers) and the
// envelope's errCode / errMsg.
func envelopeOf(body []byte) (status int, code *int64, msg string) {
	var hr struct {
		StatusCode int    `json:"statusCode"`
		Body       string `json:"body"`
	}
	if json.Unmarshal(body, &hr) == nil && hr.StatusCode != 0 {
		status, body = hr.StatusCode, []byte(hr.Body)
	}
	var env struct {
		ErrCode *int64 `json:"errCode"`
		ErrMsg  string `json:"errMsg"`
	}
	if json.Unmarshal(body, &env) == nil {
		code, msg = env.ErrCode, env.ErrMsg
	}
	return status, code, msg
}

// MaxKept bounds the request and the response the bus keeps per invocation
// (500 invocations of 32 MB payloads would hold 16 GB).
const MaxKept = 256 << 10

// Truncated marks a request or response too large to keep.
type Truncated struct {
	Truncated bool `json:"truncated"`
	Bytes     int  `json:"bytes"`
}

// rawJSON keeps a JSON payload as is and quotes anything else.
func rawJSON(b []byte) json.RawMessage {
	if len(bytes.TrimSpace(b)) == 0 {
		return json.RawMessage(`null`)
	}
	if len(b) > MaxKept {
		t, _ := json.Marshal(Truncated{Truncated: true, Bytes: len(b)})
		return t
	}
	if json.Valid(b) {
		return append(json.RawMessage(nil), b...)
	}
	q, _ := json.Marshal(string(b))
	return q
}

// line attributes one output line, holding start-up lines until the first
// invocation arrives.
func (in *Instance) line(onLine func(string, string), line string) {
	in.mu.Lock()
	id := in.current
	if id == "" && len(in.early) < 100 {
		in.early = append(in.early, line)
	}
	in.mu.Unlock()
	if id != "" {
		onLine(id, line)
	}
}

// Bus is the emulator's stream of invocations (the console subscribes).
func (e *Emulator) Bus() *Bus { return e.bus }

func (e *Emulator) tapLines(next func(string, string)) func(string, string) {
	return func(id, line string) {
		e.bus.AppendLog(id, line)
		if next != nil {
			next(id, line)
		}
	}
}

// TimerInfo is a timer and its next fire time, for the console.
type TimerInfo struct {
	Function string    `json:"function"`
	Name     string    `json:"name"`
	Next     time.Time `json:"next"`
}

// Timers lists the timers with their next fire time after now.
func (e *Emulator) Timers(now time.Time) []TimerInfo {
	out := make([]TimerInfo, 0, len(e.opts.Timers))
	for _, t := range e.opts.Timers {
		out = append(out, TimerInfo{Function: t.Function, Name: t.Name, Next: t.Cron.Next(now)})
	}
	return out
}

// FireTimer runs a function's timer event now, as POST /__timers/<fn> does.
func (e *Emulator) FireTimer(ctx context.Context, fn string) (runtimeapi.Result, Report, error) {
	name, payload := fn+"-manual", "{}"
	for _, t := range e.opts.Timers {
		if t.Function == fn {
			name, payload = t.Name, t.Payload
		}
	}
	return e.Invoke(ctx, fn, e.TimerEvent(name, payload))
}

// Instances lists a function's live instances (nil for an unknown one).
func (e *Emulator) Instances(fn string) []InstanceInfo {
	p, ok := e.pools[fn]
	if !ok {
		return nil
	}
	return p.Snapshot()
}

// Queued is how many asynchronous invocations of fn wait in its queue, and
// the queue's size (a full queue answers 429).
func (e *Emulator) Queued(fn string) (waiting, limit int) {
	q, ok := e.queues[fn]
	if !ok {
		return 0, 0
	}
	return len(q), cap(q)
}

// Probe starts a new build of fn once to see that it gets to ask for work
// (see Pool.Probe).
func (e *Emulator) Probe(ctx context.Context, fn, path string) error {
	p, ok := e.pools[fn]
	if !ok {
		return e.unknown(fn)
	}
	return p.Probe(ctx, path)
}

// SetBinary swaps a function to a new build (see Pool.SetBinary).
func (e *Emulator) SetBinary(fn, path string) error {
	p, ok := e.pools[fn]
	if !ok {
		return e.unknown(fn)
	}
	p.SetBinary(path)
	return nil
}
