package emulator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

func TestBusRecordsInvocationsWithTheirLogLines(t *testing.T) {
	e, srv := newEmu(t, runtimeapi.FC, 1)
	recent, ch, cancel := e.Bus().Subscribe()
	defer cancel()
	require.Empty(t, recent)

	_, rep, err := e.Invoke(context.Background(), "hello", []byte(`{"action":"log"}`))
	require.NoError(t, err)
	// The line travels through a pipe: wait for the update that carries it.
	var got emulator.Invocation
	want := "hello logs for " + rep.RequestID
	for got.RequestID == "" || !slices.Contains(got.Logs, want) || got.Running {
		select {
		case got = <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("no log line for %s; last update %+v", rep.RequestID, got)
		}
	}
	require.Equal(t, rep.RequestID, got.RequestID)
	require.Equal(t, "hello", got.Function)
	require.Equal(t, "invoke", got.Trigger)
	require.True(t, got.Cold)
	require.Equal(t, rep.Instance, got.Pid)
	require.JSONEq(t, `{"action":"log"}`, string(got.Request))
	require.Contains(t, string(got.Response), `"hello":"fc"`)
	for _, l := range got.Logs { // the SDK's own lines and ours, all of this call
		require.Contains(t, l, rep.RequestID)
	}

	// An HTTP trigger call: trigger "http", its status, and the request id
	// in the answer's x-fc-request-id header.
	resp, _ := post(t, srv.URL+"/hello/x", `{"a":1}`, nil)
	id := resp.Header.Get("x-fc-request-id")
	require.NotEmpty(t, id)
	inv, ok := e.Bus().Get(id)
	require.True(t, ok)
	require.Equal(t, "http", inv.Trigger)
	require.Equal(t, 201, inv.Status)
	require.False(t, inv.Cold)
	require.Len(t, e.Bus().Recent(), 2)

	le, lsrv := newEmu(t, runtimeapi.Lambda, 1)
	resp, _ = post(t, lsrv.URL+"/hello", `{}`, nil)
	lid := resp.Header.Get("x-amzn-RequestId")
	require.NotEmpty(t, lid, "Lambda's HTTP fronts name the request x-amzn-RequestId")
	// API Gateway's id is its own, as deployed: the event carries it and
	// the answer's apigw-requestid says it; the console keeps the
	// invocation under Lambda's.
	gw := resp.Header.Get("Apigw-Requestid")
	require.Regexp(t, `^[A-Za-z0-9+/]{15}=$`, gw)
	require.NotEqual(t, lid, gw)
	inv, ok = le.Bus().Get(lid)
	require.True(t, ok)
	var ev struct {
		RequestContext struct {
			RequestID string `json:"requestId"`
		} `json:"requestContext"`
	}
	require.NoError(t, json.Unmarshal(inv.Request, &ev))
	require.Equal(t, gw, ev.RequestContext.RequestID)
	byGateway, ok := le.Bus().Get(gw)
	require.True(t, ok, "the id a client behind the gateway reports finds the record too")
	require.Equal(t, lid, byGateway.RequestID)
	_, ok = le.Bus().Get("")
	require.False(t, ok)
}

// TestEachInvocationKeepsItsOwnLines: calls back to back on one instance,
// no log tail asked for. The lines a function writes before it answers
// travel through a pipe and could still be in it when the next call began;
// they were credited to that next call (the console showed 726 of 11,782
// records with another call's lines under one caller).
func TestEachInvocationKeepsItsOwnLines(t *testing.T) {
	for _, p := range platforms() {
		t.Run(string(p), func(t *testing.T) {
			e, _ := newEmu(t, p, 1)
			var ids []string
			for range 200 {
				_, rep, err := e.Invoke(context.Background(), "hello", []byte(`{"action":"log"}`))
				require.NoError(t, err)
				ids = append(ids, rep.RequestID)
			}
			for _, id := range ids {
				inv, ok := e.Bus().Get(id)
				require.True(t, ok, id)
				require.Contains(t, inv.Logs, "hello handled "+id, "its own line arrived before it was recorded as done")
				for _, l := range inv.Logs {
					for _, other := range ids {
						if other != id {
							require.NotContains(t, l, other, "%s holds a line of %s", id, other)
						}
					}
				}
			}
		})
	}
}

func TestSetBinarySwapsWithoutFailingCallsInFlight(t *testing.T) {
	// A second copy of the same build stands for the rebuilt binary.
	next := filepath.Join(t.TempDir(), "hellofc-2")
	b, err := os.ReadFile(fixtures["hellofc"])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(next, b, 0o755))

	e, _ := newEmu(t, runtimeapi.FC, 2)
	p, _ := e.Pool("hello")
	res, _, err := e.Invoke(context.Background(), "hello", nil)
	require.NoError(t, err)
	oldPid := decode(t, res.Body)["pid"]

	var wg sync.WaitGroup
	var slowErr error
	var slowPid any
	wg.Add(1)
	go func() {
		defer wg.Done()
		r, _, err := e.Invoke(context.Background(), "hello", []byte(`{"action":"sleep","ms":600}`))
		slowErr = err
		if err == nil {
			slowPid = decode(t, r.Body)["pid"]
		}
	}()
	require.Eventually(t, func() bool { s := p.Snapshot(); return len(s) == 1 && s[0].Busy }, 5*time.Second, 10*time.Millisecond)
	p.SetBinary(next)

	res, _, err = e.Invoke(context.Background(), "hello", nil)
	require.NoError(t, err)
	newPid := decode(t, res.Body)["pid"]
	require.NotEqual(t, oldPid, newPid, "calls after the swap run the new binary")

	wg.Wait()
	require.NoError(t, slowErr, "the call in flight finished on the old binary")
	require.Equal(t, oldPid, slowPid)
	snap := p.Snapshot()
	require.Len(t, snap, 1, "the old instance is retired once its call is done")
	require.Equal(t, next, snap[0].Binary)
	require.Equal(t, 1, snap[0].Invocations)
	require.Equal(t, next, p.Config().Binary)
}

func TestTimersAndFireTimer(t *testing.T) {
	c, err := emulator.ParseCron("0 * * * *", "UTC")
	require.NoError(t, err)
	e := emulator.New(emulator.Options{Platform: runtimeapi.FC, Log: io.Discard,
		Functions: []emulator.FunctionConfig{{Name: "hello", Binary: fixtures["hellofc"], Timeout: 2 * time.Second}},
		Timers:    []emulator.Timer{{Function: "hello", Name: "hourly", Cron: c, Payload: `{}`}}})
	defer e.Close()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	require.Equal(t, []emulator.TimerInfo{{Function: "hello", Name: "hourly", Next: time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)}}, e.Timers(now))
	_, rep, err := e.FireTimer(context.Background(), "hello")
	require.NoError(t, err)
	inv, ok := e.Bus().Get(rep.RequestID)
	require.True(t, ok)
	require.Equal(t, "timer", inv.Trigger)
}

func TestBusKeepsAtMostMaxKeptOfAPayload(t *testing.T) {
	e, _ := newEmu(t, runtimeapi.FC, 1)
	big := []byte(`{"action":"x","pad":"` + strings.Repeat("a", emulator.MaxKept) + `"}`)
	_, rep, err := e.Invoke(context.Background(), "hello", big)
	require.NoError(t, err)
	inv, ok := e.Bus().Get(rep.RequestID)
	require.True(t, ok)
	require.JSONEq(t, fmt.Sprintf(`{"truncated":true,"bytes":%d}`, len(big)), string(inv.Request))
	require.Contains(t, string(inv.Response), `"hello":"fc"`, "small answers are kept")
}

// A cold start reserved just before a swap whose watcher then unlinked the
// old build starts the new build instead of failing the call.
func TestAStartRacingASwapRunsTheNewBuild(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(fixtures["hellofc"])
	require.NoError(t, err)
	old, next := filepath.Join(dir, "old"), filepath.Join(dir, "next")
	require.NoError(t, os.WriteFile(old, b, 0o755))
	require.NoError(t, os.WriteFile(next, b, 0o755))
	e := emulator.New(emulator.Options{Platform: runtimeapi.FC, Functions: []emulator.FunctionConfig{
		{Name: "hello", Binary: old, Timeout: 2 * time.Second, MaxInstances: 2}}})
	t.Cleanup(e.Close)
	p, _ := e.Pool("hello")
	pid, bin, err := emulator.StartReservedAfter(p, func() {
		p.SetBinary(next)
		require.NoError(t, os.Remove(old))
	})
	require.NoError(t, err)
	require.NotZero(t, pid)
	require.Equal(t, next, bin)
}

// TestProbeRefusesABuildThatExitsAtStart: --watch swapped in a build that
// compiled but panicked in init, and every call then failed and started a
// process of its own. Probe runs a new build once, to its first poll.
func TestProbeRefusesABuildThatExitsAtStart(t *testing.T) {
	e, _ := newEmu(t, runtimeapi.FC, 1)
	require.NoError(t, e.Probe(context.Background(), "hello", fixtures["hellofc"]))
	err := e.Probe(context.Background(), "hello", fixtures["broken"])
	var se *emulator.StartError
	require.ErrorAs(t, err, &se)
	require.ErrorIs(t, err, emulator.ErrExited)
	require.Contains(t, se.Tail, "WECHAT_APPID is not set (fixture)", "the binary's own words")
	// Up, then gone 100 ms after its first poll: refused too.
	err = e.Probe(context.Background(), "hello", fixtures["quitter"])
	require.ErrorAs(t, err, &se)
	require.ErrorContains(t, err, "right after asking for work")
	require.Contains(t, se.Tail, "quitter: giving up")
	pool, _ := e.Pool("hello")
	require.Zero(t, pool.Instances(), "a probe is no instance of the pool")
	require.Zero(t, processesRunning(t, fixtures["hellofc"]), "the probe's process is stopped")
}

// TestAChattyCallKeepsItsClosingLines: past 1000 lines the rest vanished,
// the function's closing lines with them. Now the head and the tail are
// kept, with one marker between them.
func TestAChattyCallKeepsItsClosingLines(t *testing.T) {
	e, _ := newEmu(t, runtimeapi.FC, 1)
	_, rep, err := e.Invoke(context.Background(), "hello", []byte(`{"action":"chatty","lines":3000}`))
	require.NoError(t, err)
	inv, ok := e.Bus().Get(rep.RequestID)
	require.True(t, ok)
	has := func(lines []string, s string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, s) })
	}
	last := inv.Logs[max(0, len(inv.Logs)-3):]
	require.Equal(t, 2*emulator.LogKeepLines+1, len(inv.Logs), "last lines: %q", last)
	marker := inv.Logs[emulator.LogKeepLines]
	require.Regexp(t, `^… [0-9,]+ lines \([0-9.]+ KB\) not kept …$`, marker)
	require.True(t, has(inv.Logs[:emulator.LogKeepLines], "chatty 000000 "), "the first line is kept")
	tail := inv.Logs[emulator.LogKeepLines+1:]
	require.True(t, has(tail, "chatty 002999 "), "the last chatty line is kept; last lines: %q", last)
	require.True(t, has(tail, "chatty done "+rep.RequestID), "the closing line is kept; last lines: %q", last)
}
