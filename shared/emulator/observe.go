package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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

// Bounds on the log lines kept per invocation: the first lines and the
// last ones, each up to LogKeepLines lines and LogKeepBytes bytes, with one
// marker line between them counting what was not kept. The tail is kept
// because a function's closing lines (FC's "Invoke End", the runtime's
// "invocation" line with errCode and a panic's cause) matter most.
const (
	LogKeepLines = 500
	LogKeepBytes = 256 << 10
)

// BusMaxBytes bounds what the bus keeps over all its invocations (payloads
// and log lines): 500 records of bounded logs could still hold 500 MB.
const BusMaxBytes = 64 << 20

// PublishEvery is how often a running invocation's new log lines are
// published at most: one publish per line sent a whole record per line to
// every subscriber (21 MB on the stream for a call of 200 1 KB lines). Its
// start and its end are published at once.
const PublishEvery = 100 * time.Millisecond

// SubscriberBuffer is how many updates a subscriber may fall behind before
// it is cut off (its channel closed); it then subscribes again and gets the
// current state, instead of silently missing a call's end.
const SubscriberBuffer = 256

// logTail keeps the head and the tail of an invocation's log lines.
type logTail struct {
	head, tail           []string
	headBytes, tailBytes int
	headDone             bool // a line did not fit in the head: later ones go to the tail
	lostLines, lostBytes int
}

func (l *logTail) add(line string) {
	if !l.headDone && len(l.head) < LogKeepLines && l.headBytes+len(line) <= LogKeepBytes {
		l.head = append(l.head, line)
		l.headBytes += len(line)
		return
	}
	l.headDone = true
	l.tail = append(l.tail, line)
	l.tailBytes += len(line)
	for len(l.tail) > 1 && (len(l.tail) > LogKeepLines || l.tailBytes > LogKeepBytes) {
		l.lostLines++
		l.lostBytes += len(l.tail[0])
		l.tailBytes -= len(l.tail[0])
		l.tail[0] = "" // let the string go now, not when append next moves the array
		l.tail = l.tail[1:]
	}
}

func (l *logTail) bytes() int { return l.headBytes + l.tailBytes }

// lines is a fresh slice: head, the marker when lines were lost, tail.
func (l *logTail) lines() []string {
	out := make([]string, 0, len(l.head)+1+len(l.tail))
	out = append(out, l.head...)
	if l.lostLines > 0 {
		out = append(out, fmt.Sprintf("… %s lines (%s) not kept …", thousands(l.lostLines), humanBytes(l.lostBytes)))
	}
	return append(out, l.tail...)
}

// thousands writes n with comma separators (2400 → "2,400").
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func humanBytes(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// record is an invocation as the bus holds it; subscribers get snapshots.
type record struct {
	inv     Invocation // Logs unset: they are in logs
	logs    logTail
	lastPub time.Time
	pending bool // lines arrived since lastPub and a flush is scheduled
}

func (r *record) size() int { return len(r.inv.Request) + len(r.inv.Response) + r.logs.bytes() }

// snapshot is a copy no one changes afterwards, so one is shared by every
// subscriber rather than cloned for each under the lock.
func (r *record) snapshot() Invocation {
	c := r.inv
	c.Logs = r.logs.lines()
	return c
}

// Bounds on the lines a running invocation's updates carry: its latest
// ones. Each update with every kept line (up to 512 KiB) sent 3.7 MB per
// subscriber for a call that logged for 4 s; its end carries them all.
const (
	PreviewLines = 50
	PreviewBytes = 16 << 10
)

// preview is a running invocation's update: its latest lines, after a
// marker counting the earlier ones (the record has them).
func (r *record) preview() Invocation {
	c := r.inv
	all := r.logs.lines()
	n, size := 0, 0
	for n < len(all) && n < PreviewLines && size+len(all[len(all)-1-n]) <= PreviewBytes {
		size += len(all[len(all)-1-n])
		n++
	}
	if n == len(all) {
		c.Logs = all
		return c
	}
	c.Logs = append([]string{fmt.Sprintf("… %s earlier lines (all kept ones once it ends, or in its record) …", thousands(len(all)-n))}, all[len(all)-n:]...)
	return c
}

// Bus keeps the latest invocations and tells subscribers about every change
// (start, end, and new log lines at most every PublishEvery).
type Bus struct {
	mu       sync.Mutex
	max      int
	bytes    int // kept over all records, at most maxBytes (but for the one growing)
	maxBytes int
	every    time.Duration
	order    []string
	byID     map[string]*record
	subs     map[chan Invocation]struct{}
}

// NewBus keeps the last max invocations.
func NewBus(max int) *Bus {
	return &Bus{max: max, maxBytes: BusMaxBytes, every: PublishEvery, byID: map[string]*record{}, subs: map[chan Invocation]struct{}{}}
}

// Subscribe returns the invocations kept so far (oldest first) and a channel
// of every later change, taken atomically so nothing falls between them. A
// subscriber that falls SubscriberBuffer updates behind has its channel
// closed rather than block calls or miss an end: subscribe again for the
// current state.
func (b *Bus) Subscribe() ([]Invocation, <-chan Invocation, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan Invocation, SubscriberBuffer)
	b.subs[ch] = struct{}{}
	return b.recentLocked(), ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.dropLocked(ch)
	}
}

func (b *Bus) dropLocked(ch chan Invocation) {
	if _, ok := b.subs[ch]; !ok {
		return
	}
	delete(b.subs, ch)
	// Drain it so a reader stuck elsewhere (a browser that stopped reading)
	// does not pin the snapshots it never took.
	for len(ch) > 0 {
		select {
		case <-ch:
		default:
		}
	}
	close(ch)
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
		out = append(out, b.byID[id].snapshot())
	}
	return out
}

// Get returns one invocation by request id: the platform's, or for an HTTP
// trigger call the id its event carries (API Gateway's own, which is what a
// client behind it reports).
func (b *Bus) Get(id string) (Invocation, bool) {
	b.mu.Lock()
	r, ok := b.byID[id]
	if ok {
		defer b.mu.Unlock()
		return r.snapshot(), true
	}
	type candidate struct {
		id      string
		request json.RawMessage
	}
	var cands []candidate
	for _, k := range b.order {
		if in := b.byID[k].inv; in.Trigger == "http" {
			cands = append(cands, candidate{k, in.Request})
		}
	}
	b.mu.Unlock()
	// Read outside the lock: a miss must not hold up the calls.
	for _, c := range cands {
		var ev struct {
			RequestContext struct {
				RequestID string `json:"requestId"`
			} `json:"requestContext"`
		}
		if id != "" && json.Unmarshal(c.request, &ev) == nil && ev.RequestContext.RequestID == id {
			return b.Get(c.id)
		}
	}
	return Invocation{}, false
}

func (b *Bus) publishLocked(r *record) {
	r.lastPub, r.pending = time.Now(), false
	var snap Invocation
	if r.inv.Running {
		snap = r.preview()
	} else {
		snap = r.snapshot()
	}
	for ch := range b.subs {
		select {
		case ch <- snap:
		default:
			b.dropLocked(ch)
		}
	}
}

// evictLocked drops the oldest records over max or BusMaxBytes, never keep
// (the one growing).
func (b *Bus) evictLocked(keep *record) {
	for i := 0; i < len(b.order) && (len(b.order) > b.max || b.bytes > b.maxBytes); {
		r := b.byID[b.order[i]]
		if r == keep {
			i++
			continue
		}
		b.bytes -= r.size()
		delete(b.byID, b.order[i])
		b.order = append(b.order[:i], b.order[i+1:]...)
	}
}

func (b *Bus) begin(fn, id string, payload []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := &record{inv: Invocation{RequestID: id, Function: fn, Trigger: triggerOf(payload), Start: time.Now(), Running: true,
		Request: rawJSON(payload)}}
	if old, ok := b.byID[id]; ok {
		// An asynchronous retry runs under the same request id, as on the
		// platforms. The earlier attempt stays a record of its own,
		// "<id>#1", instead of the two sharing one record and its logs.
		n := max(old.inv.Attempt, 1)
		old.inv.Attempt, old.inv.RequestID = n, fmt.Sprintf("%s#%d", id, n)
		b.byID[old.inv.RequestID] = old
		for i, k := range b.order {
			if k == id {
				b.order[i] = old.inv.RequestID
			}
		}
		r.inv.Attempt = n + 1
	}
	b.order = append(b.order, id)
	b.byID[id] = r
	b.bytes += r.size()
	b.evictLocked(r)
	b.publishLocked(r)
}

func (b *Bus) finish(id string, res runtimeapi.Result, rep Report, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.byID[id]
	if !ok {
		return
	}
	b.bytes -= r.size()
	in := &r.inv
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
	b.bytes += r.size()
	b.evictLocked(r)
	b.publishLocked(r)
}

// AppendLog attributes a line an instance wrote to the invocation it was
// serving (FunctionConfig.OnLine).
func (b *Bus) AppendLog(id, line string) {
	if id == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.byID[id]
	if !ok {
		return
	}
	before := r.logs.bytes()
	r.logs.add(line)
	b.bytes += r.logs.bytes() - before
	b.evictLocked(r)
	switch wait := b.every - time.Since(r.lastPub); {
	case r.pending:
	case wait <= 0:
		b.publishLocked(r)
	default:
		r.pending = true
		time.AfterFunc(wait, func() { b.flush(r) })
	}
}

// flush publishes the lines a record got since its last publish, unless
// its end (or eviction) came first.
func (b *Bus) flush(r *record) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.pending && b.byID[r.inv.RequestID] == r {
		b.publishLocked(r)
	}
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

// ErrNoTimer: the function has no timer to fire.
var ErrNoTimer = errors.New("the function has no timer")

// FireTimer runs a function's timer event now, as POST /__timers/<fn> does,
// and refuses a function without a timer as that door does (ErrNoTimer):
// the console ran one with a made-up timer event (an outside tester).
func (e *Emulator) FireTimer(ctx context.Context, fn string) (runtimeapi.Result, Report, error) {
	for _, t := range e.opts.Timers {
		if t.Function == fn {
			return e.Invoke(ctx, fn, e.TimerEvent(t.Name, t.Payload))
		}
	}
	return runtimeapi.Result{}, Report{}, fmt.Errorf("%q: %w", fn, ErrNoTimer)
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
