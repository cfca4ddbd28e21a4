package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
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
		{"fc-timer", "", runtime.ShapeFCTimer, `{}`}, // a timer kind names the scheduled function by itself
	}
	for _, c := range cases {
		t.Run(c.kind+"/"+c.function, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := []string{"event", c.kind}
			if c.function != "" {
				args = append(args, "--function", c.function)
			}
			require.Equal(t, 0, run(context.Background(), args, &out, &errOut), errOut.String())
			require.True(t, json.Valid(out.Bytes()), out.String())
			in, shape, err := runtime.Detect(out.Bytes())
			require.NoError(t, err)
			require.Equal(t, c.shape, shape)
			require.JSONEq(t, c.body, string(in.Body))
		})
	}
}

// The README's pipe: a sample event into `cloudcall invoke --event -`.
func TestEventPipedIntoInvoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a function")
	}
	bin := cliBin
	bins := t.TempDir()
	cases := []struct {
		kind, function, want string
	}{
		{"fc-http", "logistics-get-quota", `"statusCode":200`},
		{"apigw-v2", "logistics-get-quota", `"statusCode":200`},
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			ev, err := exec.Command(bin, "event", c.kind, "--function", c.function).Output()
			require.NoError(t, err)
			cmd := exec.Command(bin, "invoke", c.function, "--event", "-", "--bin", bins)
			cmd.Stdin = bytes.NewReader(ev)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			require.NoError(t, cmd.Run(), stderr.String())
			var hr struct {
				StatusCode int    `json:"statusCode"`
				Body       string `json:"body"`
			}
			require.NoError(t, json.Unmarshal(stdout.Bytes(), &hr), stdout.String())
			require.Equal(t, 200, hr.StatusCode)
			require.JSONEq(t, `{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":210}`, hr.Body)
		})
	}
	// A timer sample from a file: quota-alert runs once over the sandbox's accounts.
	timer := filepath.Join(t.TempDir(), "timer.json")
	ev, err := exec.Command(bin, "event", "schedule-v2", "--function", "quota-alert").Output()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(timer, ev, 0o644))
	out, err := exec.Command(bin, "invoke", "quota-alert", "--event", timer, "--bin", bins).Output()
	require.NoError(t, err)
	var sum struct {
		ErrCode int            `json:"errCode"`
		Checked int            `json:"checked"`
		Levels  map[string]int `json:"levels"`
	}
	require.NoError(t, json.Unmarshal(out, &sum), string(out))
	require.Equal(t, 0, sum.ErrCode)
	require.Equal(t, 4, sum.Checked)
	require.Equal(t, map[string]int{"ok": 1, "low": 1, "empty": 1, "error": 1}, sum.Levels)

	cmd := exec.Command(bin, "invoke", "logistics-get-quota", "--event", "-", "--bin", bins)
	cmd.Stdin = strings.NewReader("")
	b, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(b), "the event from standard input is empty")
}

func TestEventCommandLine(t *testing.T) {
	cases := []struct {
		args   []string
		status int
		stderr string
	}{
		{[]string{"event"}, 2, "name a kind: apigw-v2, eventbridge, fc-http, fc-timer, schedule-v2"},
		{[]string{"event", "s3-put"}, 2, `unknown kind "s3-put"; kinds:`},
		{[]string{"event", "fc-http", "--function", "nope"}, 2, `--function "nope": unknown function; known functions: logistics-get-quota`},
		{[]string{"event", "fc-http", "--function"}, 2, "flag needs an argument"},
		{[]string{"event", "fc-http", "--function", "quota-alert"}, 2, "quota-alert has no HTTP trigger (it runs on its schedule): use fc-timer, eventbridge or schedule-v2"},
		{[]string{"event", "fc-timer", "--function", "top-launch-extra-charge"}, 2, "top-launch-extra-charge has no timer (it is called over HTTP): use fc-http or apigw-v2"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			require.Equal(t, c.status, run(context.Background(), c.args, &out, &errOut))
			require.Contains(t, errOut.String(), c.stderr)
		})
	}
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"event", "--help"}, &out, &errOut))
	require.Contains(t, out.String(), "fc-timer     Function Compute timer trigger", "help goes to stdout")
}

// An event that is not JSON is a usage error (exit 2) that says so, before anything is
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
			require.Equal(t, 2, run(context.Background(), []string{"invoke", "logistics-get-quota", "--event", p, "--bin", filepath.Join(dir, "bin")}, &out, &errOut))
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
	require.Contains(t, errOut.String(), `--debug "nope": unknown function; known functions: logistics-get-quota`)
}
