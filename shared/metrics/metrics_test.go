package metrics_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/metrics"
)

// emfUnits are the units the specification allows.
var emfUnits = map[string]bool{}

func init() {
	for _, u := range []string{"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
		"Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
		"Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second",
		"Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"} {
		emfUnits[u] = true
	}
}

// checkEMF checks one log line against the Embedded Metric Format
// specification's requirements: a root object with an _aws member holding an
// integer Timestamp and a CloudWatchMetrics array; each directive with a
// Namespace (1-255 characters), Dimensions (arrays of at most 30 names, each
// a top-level string member) and Metrics (at most 100 definitions with a
// Name, an allowed Unit, StorageResolution 1 or 60), each metric value a
// top-level number or array of at most 100 numbers.
func checkEMF(line []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var root map[string]any
	if err := d.Decode(&root); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	aws, ok := root["_aws"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("_aws: missing or not an object")
	}
	ts, ok := aws["Timestamp"].(json.Number)
	if !ok {
		return nil, fmt.Errorf("_aws.Timestamp: missing or not a number")
	}
	if _, err := ts.Int64(); err != nil {
		return nil, fmt.Errorf("_aws.Timestamp %s: not integer milliseconds", ts)
	}
	dirs, ok := aws["CloudWatchMetrics"].([]any)
	if !ok || len(dirs) == 0 {
		return nil, fmt.Errorf("_aws.CloudWatchMetrics: missing or empty")
	}
	for i, x := range dirs {
		dir, ok := x.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("CloudWatchMetrics[%d]: not an object", i)
		}
		ns, ok := dir["Namespace"].(string)
		if !ok || len(ns) < 1 || len(ns) > 255 {
			return nil, fmt.Errorf("CloudWatchMetrics[%d].Namespace: missing or not 1-255 characters", i)
		}
		sets, ok := dir["Dimensions"].([]any)
		if !ok {
			return nil, fmt.Errorf("CloudWatchMetrics[%d].Dimensions: missing", i)
		}
		for j, s := range sets {
			set, ok := s.([]any)
			if !ok || len(set) > 30 {
				return nil, fmt.Errorf("Dimensions[%d]: not an array of at most 30 names", j)
			}
			for _, n := range set {
				name, _ := n.(string)
				if v, ok := root[name].(string); !ok || v == "" {
					return nil, fmt.Errorf("dimension %q: no top-level string member", name)
				}
			}
		}
		defs, ok := dir["Metrics"].([]any)
		if !ok || len(defs) > 100 {
			return nil, fmt.Errorf("CloudWatchMetrics[%d].Metrics: missing or over 100", i)
		}
		for _, m := range defs {
			def, _ := m.(map[string]any)
			name, _ := def["Name"].(string)
			if name == "" || len(name) > 255 {
				return nil, fmt.Errorf("metric definition without a 1-255 character Name")
			}
			if u, ok := def["Unit"]; ok && !emfUnits[fmt.Sprint(u)] {
				return nil, fmt.Errorf("metric %s: unit %v not allowed", name, u)
			}
			if r, ok := def["StorageResolution"]; ok && fmt.Sprint(r) != "1" && fmt.Sprint(r) != "60" {
				return nil, fmt.Errorf("metric %s: StorageResolution %v", name, r)
			}
			switch v := root[name].(type) {
			case json.Number:
			case []any:
				if len(v) > 100 {
					return nil, fmt.Errorf("metric %s: over 100 values", name)
				}
				for _, e := range v {
					if _, ok := e.(json.Number); !ok {
						return nil, fmt.Errorf("metric %s: a value is not a number", name)
					}
				}
			default:
				return nil, fmt.Errorf("metric %s: no top-level number member", name)
			}
		}
	}
	return root, nil
}

func TestClass(t *testing.T) {
	for _, tc := range []struct {
		code  int
		class string
		fault bool
	}{
		{0, metrics.ClassOK, false},
		{9300531, metrics.ClassVendor, false}, // WeChat's own errcode
		{-1, metrics.ClassVendor, false},      // WeChat's "system busy", passed through
		{envelope.CodeInvalidInput, metrics.ClassInput, false},
		{envelope.CodePayloadTooLarge, metrics.ClassInput, false},
		{envelope.CodeUnauthenticated, metrics.ClassAuth, false},
		{envelope.CodeForbidden, metrics.ClassAuth, false},
		{envelope.CodeThrottled, metrics.ClassThrottled, false},
		{envelope.CodeUpstreamTimeout, metrics.ClassTimeout, true},
		{envelope.CodeUpstreamUnreachable, metrics.ClassUpstream, true},
		{envelope.CodeUpstreamMalformed, metrics.ClassUpstream, true},
		{envelope.CodeOutcomeUnknown, metrics.ClassUnknown, true},
		{envelope.CodeUpstream, metrics.ClassVendor, false},
		{envelope.CodeIdempotencyConflict, metrics.ClassConflict, false},
		{envelope.CodeStoreUnavailable, metrics.ClassStore, true},
		{envelope.CodeConfig, metrics.ClassConfig, true},
		{envelope.CodeInternal, metrics.ClassInternal, true},
		{-1777, metrics.ClassInternal, true}, // a code nobody mapped is a bug
	} {
		require.Equal(t, tc.class, metrics.Class(tc.code), "%d", tc.code)
		require.Equal(t, tc.fault, metrics.Fault(tc.class), "%d", tc.code)
	}
}

func TestRecord(t *testing.T) {
	var buf bytes.Buffer
	e, err := metrics.NewEMF("", &buf)
	require.NoError(t, err)
	e.Now = func() time.Time { return time.UnixMilli(1767225600123) }
	for _, tc := range []struct {
		name string
		inv  metrics.Invocation
		want map[string]any
	}{
		{"cold success", metrics.Invocation{Function: "top-launch-extra-charge", API: "top.ascp.launchExtraCharge", RequestID: "r1", Latency: 12345 * time.Microsecond, ColdStart: true},
			map[string]any{"function": "top-launch-extra-charge", "api": "top.ascp.launchExtraCharge", "errClass": "ok", "errCode": json.Number("0"), "requestId": "r1",
				"invocations": json.Number("1"), "errors": json.Number("0"), "faults": json.Number("0"), "outcomeUnknown": json.Number("0"), "coldStart": json.Number("1"), "latencyMs": json.Number("12.345")}},
		{"outcome unknown", metrics.Invocation{Function: "top-launch-extra-charge", API: "top.ascp.launchExtraCharge", ErrCode: envelope.CodeOutcomeUnknown, Latency: time.Second},
			map[string]any{"function": "top-launch-extra-charge", "api": "top.ascp.launchExtraCharge", "errClass": "unknown", "errCode": json.Number("-1304"),
				"invocations": json.Number("1"), "errors": json.Number("1"), "faults": json.Number("1"), "outcomeUnknown": json.Number("1"), "coldStart": json.Number("0"), "latencyMs": json.Number("1000")}},
		// A recorded -1304 given again was counted when first answered: the
		// alarm fired then, not at every retry.
		{"outcome unknown answered again", metrics.Invocation{Function: "top-launch-extra-charge", API: "top.ascp.launchExtraCharge", ErrCode: envelope.CodeOutcomeUnknown, Replayed: true},
			map[string]any{"function": "top-launch-extra-charge", "api": "top.ascp.launchExtraCharge", "errClass": "unknown", "errCode": json.Number("-1304"),
				"invocations": json.Number("1"), "errors": json.Number("1"), "faults": json.Number("1"), "outcomeUnknown": json.Number("0"), "coldStart": json.Number("0"), "latencyMs": json.Number("0")}},
		// TOP charged and the record could not be finished: its repeats will
		// hear -1304, so it is counted as one now (the alarm fired on nothing).
		{"a charge whose record was not finished", metrics.Invocation{Function: "top-launch-extra-charge", API: "top.ascp.launchExtraCharge", Unrecorded: true},
			map[string]any{"function": "top-launch-extra-charge", "api": "top.ascp.launchExtraCharge", "errClass": "ok", "errCode": json.Number("0"),
				"invocations": json.Number("1"), "errors": json.Number("0"), "faults": json.Number("0"), "outcomeUnknown": json.Number("1"), "coldStart": json.Number("0"), "latencyMs": json.Number("0")}},
		{"bad input, no function name", metrics.Invocation{API: "ck1.pricing.inboundBox", ErrCode: envelope.CodeInvalidInput},
			map[string]any{"function": "ck1.pricing.inboundBox", "api": "ck1.pricing.inboundBox", "errClass": "input", "errCode": json.Number("-1001"),
				"invocations": json.Number("1"), "errors": json.Number("1"), "faults": json.Number("0"), "outcomeUnknown": json.Number("0"), "coldStart": json.Number("0"), "latencyMs": json.Number("0")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf.Reset()
			require.NoError(t, e.Write(tc.inv))
			line := buf.Bytes()
			require.Equal(t, 1, bytes.Count(line, []byte("\n")))
			root, err := checkEMF(line)
			require.NoError(t, err, "%s", line)
			aws := root["_aws"].(map[string]any)
			delete(root, "_aws")
			require.Equal(t, tc.want, root)
			require.Equal(t, json.Number("1767225600123"), aws["Timestamp"])
			dir := aws["CloudWatchMetrics"].([]any)[0].(map[string]any)
			require.Equal(t, "cloudcall", dir["Namespace"])
			require.Equal(t, []any{[]any{"function"}, []any{"function", "errClass"}}, dir["Dimensions"])
			require.Len(t, dir["Metrics"], 6)
		})
	}
}

// The checker bites: records missing what the specification requires fail.
func TestCheckEMFRefusesBrokenRecords(t *testing.T) {
	for _, line := range []string{
		`{"latencyMs":1}`,
		`{"_aws":{"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[],"Metrics":[]}]}}`,
		`{"_aws":{"Timestamp":1.5,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[],"Metrics":[]}]}}`,
		`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Dimensions":[],"Metrics":[]}]}}`,
		`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[["function"]],"Metrics":[]}]}}`,
		`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[],"Metrics":[{"Name":"x"}]}]}}`,
		`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[],"Metrics":[{"Name":"x","Unit":"Minutes"}]}],"x":1}}`,
		`{"x":"1","_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[],"Metrics":[{"Name":"x"}]}]}}`,
	} {
		_, err := checkEMF([]byte(line))
		require.Error(t, err, line)
	}
}

func TestNamespace(t *testing.T) {
	for _, ns := range []string{":x", string(make([]byte, 256)), "caf\u00e9", "a\nb"} {
		_, err := metrics.NewEMF(ns, nil)
		require.ErrorContains(t, err, "CLOUDCALL_METRICS_NAMESPACE")
	}
	e, err := metrics.NewEMF("shop/prod", nil)
	require.NoError(t, err)
	require.Equal(t, "shop/prod", e.Namespace)
}

// Concurrent invocations never interleave records (one Write each).
func TestConcurrentWrites(t *testing.T) {
	var mu sync.Mutex
	var lines [][]byte
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, append([]byte(nil), p...))
		return len(p), nil
	})
	e, err := metrics.NewEMF("", w)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, e.Write(metrics.Invocation{Function: "f", API: "a", ErrCode: -1001}))
		}()
	}
	wg.Wait()
	require.Len(t, lines, 32)
	for _, l := range lines {
		_, err := checkEMF(l)
		require.NoError(t, err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
