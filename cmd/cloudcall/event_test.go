package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/runtime"
)

// Every sample is the shape runtime.Detect recognises, and carries the
// function's example input where the shape has one.
func TestEventSamplesAreWhatTheRuntimeDetects(t *testing.T) {
	cases := []struct {
		kind, function string
		shape          runtime.Shape
		body           string
	}{
		{"fc-http", "logistics-get-quota", runtime.ShapeFCHTTP, `{"deliveryId":"YTO","bizId":"xyz"}`},
		{"apigw-v2", "logistics-get-quota", runtime.ShapeAPIGatewayV2, `{"deliveryId":"YTO","bizId":"xyz"}`},
		{"fc-http", "top-launch-extra-charge", runtime.ShapeFCHTTP, `{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC123","price":12345,"type":2,"desc":"second visit"},"idempotencyKey":"demo-1"}`},
		{"fc-timer", "quota-alert", runtime.ShapeFCTimer, `{}`},
		{"eventbridge", "quota-alert", runtime.ShapeEventBridge, `{}`},
		{"schedule-v2", "quota-alert", runtime.ShapeSchedule, `{}`},
	}
	for _, c := range cases {
		t.Run(c.kind+"/"+c.function, func(t *testing.T) {
			var out, errOut bytes.Buffer
			require.Equal(t, 0, run(context.Background(), []string{"event", c.kind, "--function", c.function}, &out, &errOut), errOut.String())
			require.True(t, json.Valid(out.Bytes()), out.String())
			in, shape, err := runtime.Detect(out.Bytes())
			require.NoError(t, err)
			require.Equal(t, c.shape, shape)
			require.JSONEq(t, c.body, string(in.Body))
		})
	}
}

func TestEventCommandLine(t *testing.T) {
	cases := []struct {
		args   []string
		status int
		stderr string
	}{
		{[]string{"event"}, 2, "name a kind: apigw-v2, eventbridge, fc-http, fc-timer, schedule-v2"},
		{[]string{"event", "s3-put"}, 2, "name a kind"},
		{[]string{"event", "fc-http", "--function", "nope"}, 2, `--function "nope": known functions: logistics-get-quota`},
		{[]string{"event", "--help"}, 0, "fc-timer     Function Compute timer trigger"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			require.Equal(t, c.status, run(context.Background(), c.args, &out, &errOut))
			require.Contains(t, errOut.String(), c.stderr)
		})
	}
}

// An event that is not JSON is an error that says so, before anything is
// built or run; it never reaches a function as null.
func TestInvokeRefusesAnEventThatIsNotJSON(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, content, want string }{
		{"empty.json", "", "is empty"},
		{"blank.json", " \n\t", "is empty"},
		{"broken.json", `{"deliveryId":`, "is not valid JSON"},
		{"two.json", `{} {}`, "is not valid JSON"},
		{"text.json", `deliveryId=YTO`, "is not valid JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			require.NoError(t, os.WriteFile(p, []byte(c.content), 0o644))
			var out, errOut bytes.Buffer
			require.Equal(t, 1, run(context.Background(), []string{"invoke", "logistics-get-quota", "--event", p, "--bin", filepath.Join(dir, "bin")}, &out, &errOut))
			require.Contains(t, errOut.String(), "the event from "+p+" "+c.want)
			require.Empty(t, out.String())
			_, err := os.Stat(filepath.Join(dir, "bin", "logistics-get-quota"))
			require.True(t, os.IsNotExist(err), "nothing was built")
		})
	}
}

func TestDebugWithoutDelveSaysHowToGetIt(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no dlv here
	var out, errOut bytes.Buffer
	require.Equal(t, 1, run(context.Background(), []string{"local", "--debug", "logistics-get-quota", "--addr", "127.0.0.1:0"}, &out, &errOut))
	require.Contains(t, errOut.String(), "go install github.com/go-delve/delve/cmd/dlv@"+DelveVersion)
	require.NotContains(t, out.String(), "building functions", "it says so before building anything")

	errOut.Reset()
	require.Equal(t, 2, run(context.Background(), []string{"local", "--debug", "nope"}, &out, &errOut))
	require.Contains(t, errOut.String(), `--debug "nope": known functions: logistics-get-quota`)
}
