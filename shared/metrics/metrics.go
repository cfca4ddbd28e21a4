// Package metrics describes each invocation in the terms operators chart and
// alarm on (function, api, errCode class, latency, cold start) and, on AWS
// Lambda, writes it as one CloudWatch Embedded Metric Format (EMF) record, so
// CloudWatch extracts the metrics from the log stream without an agent or a
// PutMetricData call. On Function Compute the same fields go into the JSON
// invocation log line, where SLS queries them.
//
// Why a writer of its own: AWS publishes no Go EMF library, and the
// community ones are either unmaintained or need a newer Go than the bundle's;
// the record is one fixed JSON shape, written here in a single Write.
// Specification: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/cloudcall/cloudcall/shared/envelope"
)

// Error classes: the errCode table of the README, grouped by whose move it is.
const (
	ClassOK        = "ok"        // 0
	ClassInput     = "input"     // -1001, -1002: the caller sent a bad request
	ClassAuth      = "auth"      // -1101, -1102: caller authentication refused
	ClassThrottled = "throttled" // -1201
	ClassTimeout   = "timeout"   // -1301
	ClassUpstream  = "upstream"  // -1302, -1303: the vendor unreachable, failing or unreadable
	ClassUnknown   = "unknown"   // -1304: a money-moving write may or may not have happened
	ClassVendor    = "vendor"    // -1305 and WeChat's own errcodes: the vendor's answer was no
	ClassConflict  = "conflict"  // -1401: idempotency conflict
	ClassStore     = "store"     // -1501: shared state unavailable
	ClassConfig    = "config"    // -1601: the function lacks configuration
	ClassInternal  = "internal"  // -1999 and any other negative code: a bug
	// ClassPartial is a success (errCode 0) whose result lists failures:
	// a quota-alert run whose alert reached no channel, say.
	ClassPartial = "partial"
)

// Class maps an errCode to its class.
func Class(code int) string {
	if code > 0 || code > -1000 && code < 0 {
		// WeChat's errcode passed through (-1 "system busy" among them):
		// the bundle's own codes are -1001 and below.
		return ClassVendor
	}
	switch code {
	case 0:
		return ClassOK
	case envelope.CodeInvalidInput, envelope.CodePayloadTooLarge:
		return ClassInput
	case envelope.CodeUnauthenticated, envelope.CodeForbidden:
		return ClassAuth
	case envelope.CodeThrottled:
		return ClassThrottled
	case envelope.CodeUpstreamTimeout:
		return ClassTimeout
	case envelope.CodeUpstreamUnreachable, envelope.CodeUpstreamMalformed:
		return ClassUpstream
	case envelope.CodeOutcomeUnknown:
		return ClassUnknown
	case envelope.CodeUpstream:
		return ClassVendor
	case envelope.CodeIdempotencyConflict:
		return ClassConflict
	case envelope.CodeStoreUnavailable:
		return ClassStore
	case envelope.CodeConfig:
		return ClassConfig
	}
	return ClassInternal
}

// Fault reports whether a class is the operator's problem (the function, its
// configuration, its store or the vendor's availability), as opposed to an
// answer the caller or the vendor chose (bad input, auth, throttling,
// conflicts, refusals).
func Fault(class string) bool {
	switch class {
	case ClassTimeout, ClassUpstream, ClassUnknown, ClassStore, ClassConfig, ClassInternal, ClassPartial:
		return true
	}
	return false
}

// Invocation is what one invocation measured.
type Invocation struct {
	Function  string
	API       string
	RequestID string
	ErrCode   int
	Partial   bool // errCode 0, but the result lists failures
	// Replayed: a recorded answer given again (a -1304 among them is
	// counted once, when it was first answered).
	Replayed bool
	// Unrecorded: a charge that ran whose record could not be finished.
	Unrecorded bool
	Latency    time.Duration
	ColdStart  bool
}

// Class is the invocation's errClass: Class(ErrCode), or partial for a
// success with failures.
func (inv Invocation) Class() string {
	if inv.ErrCode == 0 && inv.Partial {
		return ClassPartial
	}
	return Class(inv.ErrCode)
}

// LogAttrs are the fields the JSON invocation line carries besides those it
// already has (function, api, errCode, latencyMs). An array, so the hot path
// allocates nothing for them.
func (inv Invocation) LogAttrs() [2]slog.Attr {
	return [2]slog.Attr{slog.String("errClass", inv.Class()), slog.Bool("coldStart", inv.ColdStart)}
}

// DefaultNamespace is the CloudWatch namespace unless configured.
const DefaultNamespace = "cloudcall"

// Metric names, shared by the EMF records, the docs' queries and alarms.
const (
	MetricInvocations    = "invocations"
	MetricErrors         = "errors" // errCode != 0
	MetricFaults         = "faults" // a class for which Fault is true
	MetricOutcomeUnknown = "outcomeUnknown"
	MetricColdStart      = "coldStart"
	MetricLatency        = "latencyMs"
	DimensionFunction    = "function"
	DimensionErrClass    = "errClass"
)

// EMF writes one EMF record per invocation to Out.
type EMF struct {
	Namespace string
	Out       io.Writer
	Now       func() time.Time // nil: time.Now
}

// NewEMF checks the namespace against the specification (1-255 characters,
// no control characters, not starting with ':').
func NewEMF(namespace string, out io.Writer) (*EMF, error) {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	if len(namespace) > 255 || namespace[0] == ':' {
		return nil, fmt.Errorf("CLOUDCALL_METRICS_NAMESPACE=%q: expected 1-255 characters, not starting with ':'", namespace)
	}
	for _, r := range namespace {
		if r < 0x20 || r > 0x7e {
			return nil, fmt.Errorf("CLOUDCALL_METRICS_NAMESPACE=%q: expected printable ASCII", namespace)
		}
	}
	return &EMF{Namespace: namespace, Out: out}, nil
}

type metricDef struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type directive struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []metricDef `json:"Metrics"`
}

type meta struct {
	Timestamp         int64       `json:"Timestamp"`
	CloudWatchMetrics []directive `json:"CloudWatchMetrics"`
}

// record is the whole line: the metadata, then the dimension values and
// metric values as top-level members (the specification's target members),
// then properties that are searchable in Logs Insights but not metrics.
type record struct {
	AWS            meta    `json:"_aws"`
	Function       string  `json:"function"`
	ErrClass       string  `json:"errClass"`
	Invocations    int     `json:"invocations"`
	Errors         int     `json:"errors"`
	Faults         int     `json:"faults"`
	OutcomeUnknown int     `json:"outcomeUnknown"`
	ColdStart      int     `json:"coldStart"`
	LatencyMs      float64 `json:"latencyMs"`
	API            string  `json:"api"`
	ErrCode        int     `json:"errCode"`
	RequestID      string  `json:"requestId,omitempty"`
}

var metricDefs = []metricDef{
	{MetricInvocations, "Count"},
	{MetricErrors, "Count"},
	{MetricFaults, "Count"},
	{MetricOutcomeUnknown, "Count"},
	{MetricColdStart, "Count"},
	{MetricLatency, "Milliseconds"},
}

// Record builds the EMF record of one invocation (without the newline).
func (e *EMF) Record(inv Invocation) ([]byte, error) {
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	fn := inv.Function
	if fn == "" {
		fn = inv.API // a dimension value may not be empty
	}
	class := inv.Class()
	r := record{
		AWS: meta{Timestamp: now().UnixMilli(), CloudWatchMetrics: []directive{{
			Namespace: e.Namespace,
			// Per function, and per function and class: error rates and the
			// latency of successes alone both come from these.
			Dimensions: [][]string{{DimensionFunction}, {DimensionFunction, DimensionErrClass}},
			Metrics:    metricDefs,
		}}},
		Function: fn, ErrClass: class, Invocations: 1,
		Errors: b2i(inv.ErrCode != 0), Faults: b2i(Fault(class)), OutcomeUnknown: b2i(inv.ErrCode == envelope.CodeOutcomeUnknown && !inv.Replayed || inv.Unrecorded),
		ColdStart: b2i(inv.ColdStart), LatencyMs: float64(inv.Latency.Microseconds()) / 1000,
		API: inv.API, ErrCode: inv.ErrCode, RequestID: inv.RequestID,
	}
	return json.Marshal(r)
}

// Write writes the record and a newline in one Write, so records from
// concurrent invocations never interleave.
func (e *EMF) Write(inv Invocation) error {
	b, err := e.Record(inv)
	if err != nil {
		return err
	}
	_, err = e.Out.Write(append(b, '\n'))
	return err
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
