package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/idempotency/redisrecords"
	"github.com/cloudcall/cloudcall/shared/idempotency/redisrecords/redisproc"
	"github.com/cloudcall/cloudcall/shared/idempotency/sqlrecords"
	"github.com/cloudcall/cloudcall/shared/idempotency/sqlrecords/sqltest"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/store/redisstore/redistest"
	"github.com/cloudcall/cloudcall/shared/top"
)

// A person reconciles two -1304 answers with TOP: one charge was made (every
// retry is then answered with its order), one was not (the key charges
// again). The records are read where the function keeps them, with its
// settings from an env file.
func TestRecordsShowAndSettle(t *testing.T) {
	url := redistest.URL(t)
	vars := map[string]string{"CLOUDCALL_STORE": url, "CLOUDCALL_STORE_PREFIX": redistest.Keyspace(t, url), "TOP_APP_KEY": "12345678",
		"CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE": "assume"}
	envFile := writeEnvFile(t, vars)
	ctx := context.Background()
	g, records, err := top.RecordsGuard(ctx, config.FromMap(vars), top.RecordsOptions{})
	require.NoError(t, err)
	defer records.Close()
	runs := 0
	unknown := func(context.Context) idempotency.Outcome {
		runs++
		return idempotency.Outcome{Response: envelope.Response{Status: http.StatusGatewayTimeout, Body: []byte(`{"errCode":-1304,"errMsg":"top.ascp.launchExtraCharge:fail outcome unknown"}`)}}
	}
	// Calls the functions made 15 minutes ago: past the time in which
	// their requests could still reach TOP (75 s, and its 10-minute window).
	past := idempotency.New(idempotency.Options{Records: records, Namespace: "idem:top:12345678:", Stuck: 75 * time.Second,
		Now: func() time.Time { return time.Now().Add(-15 * time.Minute) }})
	for _, k := range []string{"k1", "k2"} {
		_, _, e := past.Run(ctx, idempotency.Call{Key: k, Fingerprint: "fp-" + k}, unknown)
		require.Nil(t, e)
	}

	show := func(key string) map[string]any {
		code, out, errOut := runCLI("records", "show", key, "--env-file", envFile)
		require.Equal(t, 0, code, errOut)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &m), out)
		return m
	}
	// A -1304 just answered: the function stopped waiting, not TOP, so its
	// request may still be charged (a re-tester's TOP charged 40 s after
	// the -1304, and a settlement as not charged let a retry charge too).
	_, _, e := g.Run(ctx, idempotency.Call{Key: "k0", Fingerprint: "fp-k0"}, unknown)
	require.Nil(t, e)
	m := show("k0")
	require.Equal(t, false, m["settleable"])
	require.Regexp(t, `^its request was sent \ds ago and may still reach the vendor; look the charge up there from \S+ \(a minute past its deadline, and 10m0s in which the vendor still takes its request\), then settle it$`, m["why"])
	code, _, errOut := runCLI("records", "settle", "k0", "--not-charged", "--env-file", envFile)
	require.Equal(t, 4, code, errOut)

	m = show("k1")
	require.Equal(t, "done", m["state"])
	require.Equal(t, true, m["settleable"])
	require.Equal(t, -1304.0, m["answer"].(map[string]any)["errCode"])

	code, out, errOut := runCLI("records", "settle", "k1", "--charged", "ECS7000000042", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "settled k1: charged, extra charge service order ECS7000000042; every retry with the key is answered with it\n", out)
	m = show("k1")
	require.Equal(t, true, m["settleable"], "a settlement by hand can be corrected")
	require.Regexp(t, `^charged, id ECS7000000042; settled by hand 20\d\d-`, m["settled"])
	answer := m["answer"].(map[string]any)
	require.Equal(t, "top.ascp.launchExtraCharge:ok", answer["errMsg"])
	require.Equal(t, "ECS7000000042", answer["result"].(map[string]any)["data"].(map[string]any)["extraChargeServiceOrderId"])
	require.Equal(t, "k1", answer["idempotencyKey"])
	resp, replayed, e := g.Run(ctx, idempotency.Call{Key: "k1", Fingerprint: "fp-k1"}, unknown)
	require.Nil(t, e)
	require.True(t, replayed)
	require.JSONEq(t, mustJSON(t, answer), string(resp.Body), "a retry hears the charge as settled")

	// A settlement by hand can be corrected; a call's own answer cannot.
	require.Equal(t, "", answer["requestId"], "no --request-id: TOP's id is not known")
	code, out, errOut = runCLI("records", "settle", "--env-file", envFile, "k1", "--charged", "ECS7000000043", "--request-id", "109wcmcgllsj1")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "settled k1: charged, extra charge service order ECS7000000043")
	require.Contains(t, show("k1")["settled"], "charged, id ECS7000000043; settled by hand ")
	resp, _, e = g.Run(ctx, idempotency.Call{Key: "k1", Fingerprint: "fp-k1"}, unknown)
	require.Nil(t, e)
	require.Equal(t, "109wcmcgllsj1", decoded(t, resp.Body)["requestId"], "the log line's upstreamRequestId, answered as TOP's")
	_, _, e = g.Run(ctx, idempotency.Call{Key: "k9", Fingerprint: "fp-k9"}, func(context.Context) idempotency.Outcome {
		return idempotency.Outcome{Response: envelope.Response{Status: 200, Body: []byte(`{"errCode":0}`)}}
	})
	require.Nil(t, e)
	code, _, errOut = runCLI("records", "settle", "k9", "--not-charged", "--env-file", envFile)
	require.Equal(t, 4, code, "not settleable")
	require.Contains(t, errOut, "nothing to settle: the call finished with a definite answer")

	code, out, errOut = runCLI("records", "settle", "k2", "--not-charged", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "settled k2: not charged")
	code, _, errOut = runCLI("records", "show", "k2", "--env-file", envFile)
	require.Equal(t, 3, code, "no record")
	require.Contains(t, errOut, "no record for k2")
	_, replayed, e = g.Run(ctx, idempotency.Call{Key: "k2", Fingerprint: "fp-k2"}, unknown)
	require.Nil(t, e)
	require.False(t, replayed, "the key runs again")
	require.Equal(t, 4, runs, "k0, k1, k2, and k2 again")

	// Judged by the earlier of the store's clock and this one, with no
	// allowance: a call started 60 s ago with no deadline recorded has 75 s
	// to run, then TOP takes its request for 10 minutes; one started 12
	// minutes ago is past both, and is settled at once.
	_, err = records.Reserve(ctx, "idem:top:12345678:k5", idempotency.Record{Token: "t5", State: idempotency.InProgress, Fingerprint: "fp-k5",
		Started: time.Now().Add(-60 * time.Second).UnixMilli()}, time.Hour)
	require.NoError(t, err)
	code, _, errOut = runCLI("records", "settle", "k5", "--not-charged", "--env-file", envFile)
	require.Equal(t, 4, code)
	require.Regexp(t, `the call started 1m0s ago and may still be running`, errOut)
	when := regexp.MustCompile(`it can be settled from (\S+) \(a minute past its deadline, and 10m0s in which the vendor still takes its request\)`).FindStringSubmatch(errOut)
	require.NotNil(t, when, errOut)
	from, err := time.Parse(time.RFC3339, when[1])
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(15*time.Second+top.TimestampWindow), from, 3*time.Second, "started 60 s ago: 75 s to run, then TOP's 10 minutes")
	require.Equal(t, false, show("k5")["settleable"])
	_, err = records.Reserve(ctx, "idem:top:12345678:k6", idempotency.Record{Token: "t6", State: idempotency.InProgress, Fingerprint: "fp-k6",
		Started: time.Now().Add(-12 * time.Minute).UnixMilli()}, time.Hour)
	require.NoError(t, err)
	require.Equal(t, true, show("k6")["settleable"], "past its 75 s and TOP's 10 minutes by the store's clock")
	_, _, e = g.Run(ctx, idempotency.Call{Key: "k6", Fingerprint: "fp-k6"}, unknown)
	require.Equal(t, envelope.CodeOutcomeUnknown, e.Code, "and the function has given up on it too")
	code, _, errOut = runCLI("records", "settle", "k6", "--not-charged", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)

	for _, args := range [][]string{
		{"records"}, {"records", "list"}, {"records", "show"}, {"records", "settle", "k1"},
		{"records", "settle", "k1", "--charged", "X", "--not-charged"}, {"records", "show", "k1", "--not-charged"},
		{"records", "settle", "k1", "--charged", ` ECS 1"<x> `}, {"records", "settle", "k1", "k2", "--not-charged"},
		// These looped for ever: the flag parser stops at "" and "-".
		{"records", "show", ""}, {"records", "settle", "k1", "--charged", "ECS1", ""}, {"records", "show", "k1", "-"},
		// An id that starts like a flag was recorded as the order.
		{"records", "settle", "k1", "--charged", "--not-charged"}, {"records", "settle", "k1", "--charged", "--env-file", envFile},
		{"records", "settle", "k1", "--not-charged", "--request-id", "109wcmcgllsj1"}, {"records", "settle", "k1", "--charged", "ECS1", "--request-id", "a b"},
		// A value flag given twice: the last one was recorded in silence.
		{"records", "settle", "k1", "--charged", "ECS1000000001", "--charged", "ECS2"}, {"records", "settle", "k1", "--charged", "", "--charged", "ECS2"}, {"records", "restore", "k1", "--charged", "ECS1", "--request-id", "r1", "--request-id", "r2"},
		// A key no request can carry: a restore under "k1 " (a space copied
		// with it) left k1 to charge again (an outside re-tester).
		{"records", "restore", "k1 ", "--charged", "ECS1"}, {"records", "restore", "k1\r", "--charged", "ECS1"}, {"records", "restore", "ключ", "--charged", "ECS1"},
		{"records", "restore", strings.Repeat("k", 129), "--charged", "ECS1"}, {"records", "settle", "k1 ", "--not-charged"}, {"records", "show", " k1"},
		{"records", "settle", "k1", "--not-charged", "--request-id", ""},
	} {
		code, _, errOut := runCLI(args...)
		require.Equal(t, 2, code, "%v: %s", args, errOut)
		require.Contains(t, errOut, "cloudcall records: ")
	}
}

// writeEnvFile writes vars as the dotenv file --env-file reads.
func writeEnvFile(t *testing.T, vars map[string]string) string {
	t.Helper()
	envFile := filepath.Join(t.TempDir(), "charge.env")
	var lines []byte
	for k, v := range vars {
		lines = append(lines, k+"="+v+"\n"...)
	}
	require.NoError(t, os.WriteFile(envFile, lines, 0o600))
	return envFile
}

// decoded is body as a JSON object.
func decoded(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	return m
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// The store lost its data (a Redis with AOF emptied: a failover to a node
// without it) after a charge: the warm instance refuses the key's retry
// with -1601 instead of charging it again, cloudcall records status says
// "lost", the person restores the charge the log shows and reopens the
// store, and from then on the retry, from a new instance and with another
// request under the key, is answered with the restored charge.
func TestRecordsAfterALoss(t *testing.T) {
	srv := redisproc.Start(t, true)
	vars := map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": srv.URL(), "TOP_APP_KEY": "12345678"}
	envFile := writeEnvFile(t, vars)
	ctx := context.Background()
	guardRecords := func(t *testing.T, vars map[string]string) idempotency.Records {
		_, records, err := top.RecordsGuard(ctx, config.FromMap(vars), top.RecordsOptions{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = records.Close() })
		return records
	}
	guard := func() *idempotency.Guard {
		g, records, err := top.RecordsGuard(ctx, config.FromMap(vars), top.RecordsOptions{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = records.Close() })
		return g
	}
	g := guard()
	runs := 0
	charge := func(context.Context) idempotency.Outcome {
		runs++
		return idempotency.Outcome{Response: envelope.Response{Status: 200, Body: []byte(`{"errCode":0,"errMsg":"top.ascp.launchExtraCharge:ok"}`)}}
	}
	_, _, e := g.Run(ctx, idempotency.Call{Key: "k1", Fingerprint: "fp-k1"}, charge)
	require.Nil(t, e)
	status := func(exit int) map[string]any {
		code, out, errOut := runCLI("records", "status", "--env-file", envFile)
		require.Equal(t, exit, code, errOut)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &m), out)
		return m
	}
	live := status(0)
	require.Equal(t, "live", live["state"])
	require.Regexp(t, `^[0-9a-f]{32}$`, live["fence"], "to note down")

	// On a store that lost nothing, a charge still running is no record to
	// restore over, and show speaks of no loss: every fenced store read as
	// lost, and restore replaced a running charge's record with the order
	// id typed (a re-tester).
	_, err := guardRecords(t, vars).Reserve(ctx, "idem:top:12345678:k8",
		idempotency.Record{Token: "r8", State: idempotency.InProgress, Fingerprint: "fp-k8", Started: time.Now().UnixMilli()}, time.Hour)
	require.NoError(t, err)
	code, out, errOut := runCLI("records", "show", "k8", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	require.NotContains(t, out, "lost its data")
	code, _, errOut = runCLI("records", "restore", "k8", "--charged", "ECS1", "--env-file", envFile)
	require.Equal(t, 4, code, errOut)
	require.Contains(t, errOut, "the redis store records no loss: restore is for")
	code, _, errOut = runCLI("records", "restore", "nothing-here", "--charged", "ECS1", "--env-file", envFile)
	require.Equal(t, 4, code, "a mistyped key on a healthy store made up a charge")

	o, err := redis.ParseURL(srv.URL())
	require.NoError(t, err)
	admin := redis.NewClient(o)
	defer admin.Close()
	require.NoError(t, admin.FlushAll(ctx).Err())
	_, _, e = g.Run(ctx, idempotency.Call{Key: "k1", Fingerprint: "fp-k1"}, charge)
	require.NotNil(t, e)
	require.Equal(t, envelope.CodeConfig, e.Code)
	require.Contains(t, e.Reason, "lost its data")
	require.Equal(t, 1, runs, "not charged again")
	st := status(5)
	require.Equal(t, "lost", st["state"])
	require.NotEmpty(t, st["lostAt"])
	require.NotContains(t, e.Reason, srv.URL()[len("redis://"):], "the store's address is the log's, not the caller's")
	code, _, errOut = runCLI("records", "show", "k1", "--env-file", envFile)
	require.Equal(t, 3, code)
	require.Contains(t, errOut, "the store lost its data (found "+st["lostAt"].(string)+")")
	require.Contains(t, errOut, "cloudcall records restore --charged <its vendorId> --env-file "+envFile+" k1; for a charge made with this key, restore its keylessKey")

	// A key that starts with '-' (the function takes "-dash") goes after
	// "--": no form of the command line could restore one, and its retry
	// after the reopening charged again (an outside re-tester).
	code, _, errOut = runCLI("records", "show", "--env-file", envFile, "--", "-dash")
	require.Equal(t, 3, code, errOut)
	require.Contains(t, errOut, "no record for -dash")
	require.Contains(t, errOut, "cloudcall records restore --charged <its vendorId> --env-file "+envFile+" -- -dash")
	code, out, errOut = runCLI("records", "restore", "--charged", "ECS7000000006", "--env-file", envFile, "--", "-dash")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "restored -dash: charged")
	code, out, errOut = runCLI("records", "show", "--env-file", envFile, "--", "-dash")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `"key":"-dash","state":"done"`)

	// A record the loss left unfinished (a failover to a replica that lagged
	// kept "reserved" for a key TOP charged): show says so, restore
	// replaces it.
	records := guardRecords(t, vars)
	ok, err := records.(idempotency.Rewriter).Rewrite(ctx, "idem:top:12345678:k7",
		idempotency.Record{Token: "r7", State: idempotency.Reserved, Fingerprint: "fp-k7", Started: time.Now().UnixMilli()}, time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	code, out, errOut = runCLI("records", "show", "k7", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "the store lost its data (found "+st["lostAt"].(string)+"), possibly this record's later writes with it")
	code, _, errOut = runCLI("records", "restore", "k7", "--charged", "ECS7000000079", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	// Corrected at once to "not charged", a retry would charge beside a
	// request that may still land (an outside tester): the restore keeps
	// the call's times, and the correction waits out their window.
	code, _, errOut = runCLI("records", "settle", "k7", "--not-charged", "--env-file", envFile)
	require.Equal(t, 4, code, errOut)
	require.Contains(t, errOut, "its call's request may still reach the vendor; it can be settled as not charged from ")
	// One still running is left to give its own answer.
	ok, err = records.(idempotency.Rewriter).Rewrite(ctx, "idem:top:12345678:k9",
		idempotency.Record{Token: "r9", State: idempotency.InProgress, Fingerprint: "fp-k9", Started: time.Now().UnixMilli()}, time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	code, _, errOut = runCLI("records", "restore", "k9", "--charged", "ECS7000000080", "--env-file", envFile)
	require.Equal(t, 4, code, errOut)
	require.Contains(t, errOut, "may still be running, or its request reach the vendor; restore it from ")

	// show's JSON holds the key and the command as they are: with < > &
	// escaped as \u003c…, the command pasted from it restored another key,
	// and one with a quote or a backslash, which JSON must escape, goes to
	// stderr whole (an outside re-tester charged three orders twice).
	for _, k := range []string{"k&1<2>", `q"1`, `q\1`} {
		ok, err = records.(idempotency.Rewriter).Rewrite(ctx, "idem:top:12345678:"+k,
			idempotency.Record{Token: "rq", State: idempotency.Reserved, Fingerprint: "fp-" + k, Started: time.Now().UnixMilli()}, time.Hour)
		require.NoError(t, err)
		require.True(t, ok)
	}
	code, out, errOut = runCLI("records", "show", "k&1<2>", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `"key":"k&1<2>"`)
	require.Contains(t, out, "cloudcall records restore --charged <its vendorId> --env-file "+envFile+" 'k&1<2>' replaces it")
	for _, k := range []string{`q"1`, `q\1`} {
		code, out, errOut = runCLI("records", "show", k, "--env-file", envFile)
		require.Equal(t, 0, code, errOut)
		require.Contains(t, out, "the command on stderr replaces it")
		require.Equal(t, "to restore it: cloudcall records restore --charged <its vendorId> --env-file "+envFile+" '"+k+"'\n", errOut)
	}

	code, _, errOut = runCLI("records", "mark-lost", "--env-file", envFile)
	require.Equal(t, 4, code, "a loss is recorded already")
	require.Contains(t, errOut, "records a loss already")
	code, _, errOut = runCLI("records", "reopen", "--env-file", envFile)
	require.Equal(t, 2, code, "reopen says the person reconciled")
	require.Contains(t, errOut, "--reconciled")
	code, out, errOut = runCLI("records", "restore", "k1", "--charged", "ECS7000000077", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "restored k1: charged, extra charge service order ECS7000000077; every retry with the key to TOP_APP_KEY 12345678 is answered with it, from redis "+
		strings.TrimPrefix(srv.URL(), "redis://")+`, key prefix "cloudcall:" (CLOUDCALL_IDEMPOTENCY_STORE)`+keylessHint+"\n", out)
	// And its keyless slot, which the charge's log line names (keylessKey).
	code, _, errOut = runCLI("records", "restore", "auto:fp-k1", "--charged", "ECS7000000077", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	code, _, errOut = runCLI("records", "restore", "k1", "--charged", "ECS7000000078", "--env-file", envFile)
	require.Equal(t, 4, code, "a record is there: restore writes none over it")
	require.Contains(t, errOut, "a record is there already")
	// A call running when the loss was found may still charge, and its
	// charge is in no log yet: the reopening waits for it (a re-tester: a
	// repeat after an early reopening charged it again).
	code, _, errOut = runCLI("records", "reopen", "--reconciled", "--env-file", envFile)
	require.Equal(t, 4, code, errOut)
	require.Regexp(t, `a call running when the loss was found \(`+st["lostAt"].(string)+`\) may still be charging until \S+Z`, errOut)
	require.Contains(t, errOut, "look up at TOP again every order whose call has no invocation line", "a lookup before then may miss a charge TOP still makes (a re-tester)")
	// Minutes later (the loss dated back, as time passing would).
	aged := "lost " + time.Now().Add(-20*time.Minute).UTC().Format(time.RFC3339) + " 0"
	require.NoError(t, admin.Set(ctx, "cloudcall:idem:fence", aged, 0).Err())
	code, out, errOut = runCLI("records", "reopen", "--reconciled", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "reopened: the loss found "+aged[len("lost "):len(aged)-2]+" is closed")
	require.Equal(t, "reopened", status(0)["state"])
	code, _, errOut = runCLI("records", "reopen", "--reconciled", "--env-file", envFile)
	require.Equal(t, 4, code)
	require.Contains(t, errOut, "records no loss")

	resp, replayed, e := guard().Run(ctx, idempotency.Call{Key: "k1", Fingerprint: "another request"}, charge)
	require.Nil(t, e)
	require.True(t, replayed)
	require.Contains(t, string(resp.Body), `"ECS7000000077"`)
	resp, replayed, e = guard().Run(ctx, idempotency.Call{Fingerprint: "fp-k1"}, charge)
	require.Nil(t, e)
	require.True(t, replayed, "the same request without its key: the restored slot")
	require.Contains(t, string(resp.Body), `"ECS7000000077"`)
	resp, replayed, e = guard().Run(ctx, idempotency.Call{Key: "k7", Fingerprint: "fp-k7"}, charge)
	require.Nil(t, e)
	require.True(t, replayed, "the restored record, not a takeover of the reserved one")
	require.Contains(t, string(resp.Body), `"ECS7000000079"`)
	require.Equal(t, 1, runs)
	require.Eventually(t, func() bool {
		_, _, e := g.Run(ctx, idempotency.Call{Key: "k2", Fingerprint: "fp-k2"}, charge)
		return e == nil
	}, 5*time.Second, 100*time.Millisecond, "the warm instance charges again once it rereads the fence")
	require.Equal(t, 2, runs)

	// A loss the fence cannot see (a failover to a replica that lagged) is
	// marked by hand: the warm instance refuses at its next charge.
	code, out, errOut = runCLI("records", "mark-lost", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	// It says which store: pointed at another than the function's, it
	// reported a brake no charge met (an outside re-tester).
	require.Contains(t, out, "marked lost: redis "+strings.TrimPrefix(srv.URL(), "redis://")+`, key prefix "cloudcall:" (CLOUDCALL_IDEMPOTENCY_STORE); every charge`)
	require.Equal(t, "lost", status(5)["state"])
	_, _, e = g.Run(ctx, idempotency.Call{Key: "k3", Fingerprint: "fp-k3"}, charge)
	require.NotNil(t, e)
	require.Equal(t, envelope.CodeConfig, e.Code)
	require.Equal(t, 2, runs)
	for _, args := range [][]string{{"records", "status", "k1"}, {"records", "mark-lost", "--charged", "X"}, {"records", "reopen", "--not-charged", "--reconciled"},
		{"records", "restore", "k1"}, {"records", "restore", "k1", "--charged", "X", "--not-charged"}, {"records", "status", "--reconciled"}} {
		code, _, errOut := runCLI(append(args, "--env-file", envFile)...)
		require.Equal(t, 2, code, "%v: %s", args, errOut)
	}
}

// A Redis user that may not run TIME (least privilege, or a proxy that does
// not pass it on) still gets the brake and the reopening: mark-lost failed
// with NOPERM while charges went on (an outside re-tester). Restore and
// reopen say they judge by this machine's clock.
func TestRecordsOnAStoreWithoutTime(t *testing.T) {
	srv := redisproc.Start(t, true)
	ctx := context.Background()
	o, err := redis.ParseURL(srv.URL())
	require.NoError(t, err)
	admin := redis.NewClient(o)
	defer admin.Close()
	require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", "charge", "on", ">charge-secret-0123456789", "~*",
		"+@read", "+@write", "+@scripting", "+@connection", "+info", "-time").Err())
	u := strings.Replace(srv.URL(), "redis://", "redis://charge:charge-secret-0123456789@", 1)
	envFile := filepath.Join(t.TempDir(), "charge.env")
	require.NoError(t, os.WriteFile(envFile, []byte("CLOUDCALL_IDEMPOTENCY_STORE="+u+"\nTOP_APP_KEY=12345678\n"), 0o600))
	g, records, err := top.RecordsGuard(ctx, config.FromMap(map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": u, "TOP_APP_KEY": "12345678"}), top.RecordsOptions{})
	require.NoError(t, err)
	defer records.Close()
	runs := 0
	charge := func(context.Context) idempotency.Outcome {
		runs++
		return idempotency.Outcome{Response: envelope.Response{Status: 200, Body: []byte(`{"errCode":0}`)}}
	}
	_, _, e := g.Run(ctx, idempotency.Call{Key: "k1", Fingerprint: "fp-k1"}, charge)
	require.Nil(t, e)

	code, out, errOut := runCLI("records", "mark-lost", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "marked lost")
	_, _, e = g.Run(ctx, idempotency.Call{Key: "k2", Fingerprint: "fp-k2"}, charge)
	require.NotNil(t, e)
	require.Equal(t, envelope.CodeConfig, e.Code)
	code, _, errOut = runCLI("records", "restore", "k9", "--charged", "ECS9", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "WARNING: the store's clock could not be read")
	require.NoError(t, admin.Set(ctx, "cloudcall:idem:fence", "lost "+time.Now().Add(-20*time.Minute).UTC().Format(time.RFC3339)+" 0", 0).Err())
	code, out, errOut = runCLI("records", "reopen", "--reconciled", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "reopened")
	require.Contains(t, errOut, "WARNING: the store's clock could not be read")
	require.Eventually(t, func() bool {
		_, _, e := g.Run(ctx, idempotency.Call{Key: "k3", Fingerprint: "fp-k3"}, charge)
		return e == nil
	}, 5*time.Second, 100*time.Millisecond)
	require.Equal(t, 2, runs)
	// By this machine's clock, a call started 100 s ago (75 s to run) is
	// allowed two minutes more: this clock may run ahead.
	_, err = records.Reserve(ctx, "idem:top:12345678:k8", idempotency.Record{Token: "t8", State: idempotency.InProgress, Fingerprint: "fp-k8",
		Started: time.Now().Add(-100 * time.Second).UnixMilli()}, time.Hour)
	require.NoError(t, err)
	code, out, errOut = runCLI("records", "show", "k8", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "WARNING: the store's clock could not be read")
	require.Regexp(t, `"why":"[^"]*the call started 1m4\ds ago and may still be running, or its request reach the vendor; it can be settled from \S+ \(a minute past its deadline, and 10m0s in which the vendor still takes its request, and 2m0s more for a clock that runs ahead\)`, out)
}

// A store whose clock runs ahead of the functions' cannot make a live call
// look dead: the tool judges by the earlier of the store's clock and this
// machine's. Taken alone, a Redis TIME 90 s ahead settled a charge one
// second into its run, and its retry charged again (an outside tester).
func TestRecordsAStoreClockAheadDoesNotSettleALiveCall(t *testing.T) {
	m := miniredis.RunT(t)
	m.SetTime(time.Now().Add(90 * time.Second))
	u := "redis://" + m.Addr() + "/0"
	vars := map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": u, "CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE": "assume", "TOP_APP_KEY": "12345678"}
	envFile := writeEnvFile(t, vars)
	ctx := context.Background()
	_, records, err := top.RecordsGuard(ctx, config.FromMap(vars), top.RecordsOptions{})
	require.NoError(t, err)
	defer records.Close()
	// A charge the functions' clocks (this machine's) started a second ago.
	_, err = records.Reserve(ctx, "idem:top:12345678:live", idempotency.Record{Token: "t1", State: idempotency.InProgress, Fingerprint: "fp-live",
		Started: time.Now().Add(-time.Second).UnixMilli()}, time.Hour)
	require.NoError(t, err)
	code, out, errOut := runCLI("records", "show", "live", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `"settleable":false`)
	require.Regexp(t, `the call started [01]s ago and may still be running`, out)
	code, _, errOut = runCLI("records", "settle", "live", "--not-charged", "--env-file", envFile)
	require.Equal(t, 4, code, errOut)
	require.Contains(t, errOut, "may still be running")
}

// A loss marked by hand is dated by the later of the store's clock and this
// machine's: reopening waits for the calls running then from that date, and
// one dated by a clock an hour behind let a reopening in at once, before a
// call cut by the loss had charged (an outside tester).
func TestRecordsALossIsDatedByTheLaterClock(t *testing.T) {
	m := miniredis.RunT(t)
	ahead := time.Now().Add(time.Hour).Truncate(time.Second)
	m.SetTime(ahead)
	envFile := writeEnvFile(t, map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": "redis://" + m.Addr() + "/0",
		"CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE": "assume", "TOP_APP_KEY": "12345678"})
	code, _, errOut := runCLI("records", "mark-lost", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	code, out, errOut := runCLI("records", "status", "--env-file", envFile)
	require.Equal(t, 5, code, errOut)
	var st struct{ LostAt string }
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	at, err := time.Parse(time.RFC3339, st.LostAt)
	require.NoError(t, err)
	require.WithinDuration(t, ahead, at, 2*time.Second, "the store's clock, an hour ahead of this one")
	code, _, errOut = runCLI("records", "reopen", "--reconciled", "--env-file", envFile)
	require.Equal(t, 4, code, errOut)
	require.Contains(t, errOut, "may still be charging until "+at.Add(75*time.Second+top.TimestampWindow).UTC().Format(time.RFC3339))
}

func TestRestoreCommand(t *testing.T) {
	require.Equal(t, "cloudcall records restore --charged <its vendorId> k1", restoreCommand("k1", ""))
	require.Equal(t, "cloudcall records restore --charged <its vendorId> --env-file charge.env auto:ab12", restoreCommand("auto:ab12", "charge.env"))
	require.Equal(t, "cloudcall records restore --charged <its vendorId> --env-file 'my env' -- -dash", restoreCommand("-dash", "my env"), "flags before --")
	require.Equal(t, `cloudcall records restore --charged <its vendorId> 'o$1;x'\''y'`, restoreCommand("o$1;x'y", ""), "quoted for a shell")
}

// With --env-file the records' store comes from the file alone: a
// CLOUDCALL_IDEMPOTENCY_STORE left in the shell beat the file's
// CLOUDCALL_STORE, and mark-lost or restore acted on a store the function
// does not use (an outside re-tester).
func TestRecordsTakeTheStoreFromTheEnvFile(t *testing.T) {
	srv := redisproc.Start(t, true)
	envFile := writeEnvFile(t, map[string]string{"CLOUDCALL_STORE": srv.URL(), "TOP_APP_KEY": "12345678"})
	t.Setenv("CLOUDCALL_IDEMPOTENCY_STORE", "postgres://u@127.0.0.1:1/other")
	t.Setenv("CLOUDCALL_STORE_PREFIX", "elsewhere:")
	code, out, errOut := runCLI("records", "status", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `"store":"redis"`)
	require.Contains(t, out, `key prefix \"cloudcall:\" (CLOUDCALL_STORE)`)
	require.Equal(t, "NOTE: CLOUDCALL_IDEMPOTENCY_STORE, CLOUDCALL_STORE_PREFIX from the shell not used: with --env-file, the store, its prefix and the app key come from "+envFile+" alone\n", errOut)
}

// After a rollback to the release before the fingerprint change, longer
// than the window, records migration --restart forgets when it opened, so
// the next call of the release updated to again opens it anew and finds
// the records the old release wrote meanwhile (an outside re-tester: updating again after
// three days charged the old release's charges twice).
func TestRecordsMigrationRestart(t *testing.T) {
	m := miniredis.RunT(t)
	vars := map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": "redis://" + m.Addr() + "/0",
		"CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE": "assume", "TOP_APP_KEY": "12345678"}
	envFile := writeEnvFile(t, vars)
	show := func(args ...string) map[string]any {
		code, out, errOut := runCLI(append([]string{"records", "migration", "--env-file", envFile}, args...)...)
		require.Equal(t, 0, code, errOut)
		var st map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &st), out)
		return st
	}
	st := show()
	require.Equal(t, false, st["open"])
	require.Contains(t, st["note"], "the next charge call of such a release opens the window")
	// Nothing to forget is said, not reported done: under another prefix
	// than the function's, the function's marker stood (an outside
	// re-tester).
	code, _, errOut := runCLI("records", "migration", "--restart", "--env-file", envFile)
	require.Equal(t, 3, code)
	require.Contains(t, errOut, "nothing to forget: no migration marker in redis ")

	ctx := context.Background()
	_, records, err := top.RecordsGuard(ctx, config.FromMap(vars), top.RecordsOptions{})
	require.NoError(t, err)
	defer records.Close()
	instance := func(now func() time.Time) *idempotency.Migration {
		return top.RecordsMigration(idempotency.New(idempotency.Options{Records: records, Namespace: "idem:top:12345678:", Now: now}))
	}
	old := func() string { return "old-fp" }
	// The first update, three days ago; the rollback's release then wrote a
	// keyless record under the old fingerprint.
	fp, e := instance(func() time.Time { return time.Now().Add(-72 * time.Hour) }).Fingerprint(ctx, "", "new-fp", old)
	require.Nil(t, e)
	require.Equal(t, "new-fp", fp)
	ok, err := records.Reserve(ctx, "idem:top:12345678:"+idempotency.KeylessKey("old-fp"), idempotency.Record{Token: "t", State: idempotency.Done, Fingerprint: "old-fp"}, time.Hour)
	require.True(t, ok && err == nil, err)

	st = show()
	require.Equal(t, false, st["open"])
	require.Contains(t, st["note"], "--restart")
	fp, _ = instance(time.Now).Fingerprint(ctx, "", "new-fp", old)
	require.Equal(t, "new-fp", fp, "the window has closed: the old release's record is not looked for")

	st = show("--restart")
	require.Equal(t, false, st["open"])
	require.NotContains(t, st, "started")
	require.Contains(t, st["note"], "forgotten: the next charge call")
	fp, _ = instance(time.Now).Fingerprint(ctx, "", "new-fp", old)
	require.Equal(t, "old-fp", fp, "the next call opens the window anew and finds it")
	st = show()
	require.Equal(t, true, st["open"])
	started, err := time.Parse(time.RFC3339, st["started"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), started, 5*time.Second)

	code, _, errOut = runCLI("records", "status", "--restart", "--env-file", envFile)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "--restart goes with migration")
}

// records status puts a fenced store to the checks an instance makes at its
// first charge: a records table made UNLOGGED under running instances read
// "live" while every new instance refused it (-1601).
func TestRecordsStatusSaysARefusedStore(t *testing.T) {
	pg := sqltest.Postgres(t)
	r, err := sqlrecords.Open(sqlrecords.Options{URL: pg})
	require.NoError(t, err)
	require.NoError(t, r.Warm(context.Background())) // an instance's first use: table and fence
	require.NoError(t, r.Close())
	envFile := writeEnvFile(t, map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": pg, "TOP_APP_KEY": "12345678"})

	code, out, errOut := runCLI("records", "status", "--env-file", envFile)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `"state":"live"`)

	db := sqltest.Open(t, pg)
	_, err = db.Exec(`ALTER TABLE ` + sqlrecords.Table + ` SET UNLOGGED`)
	require.NoError(t, err)
	code, out, errOut = runCLI("records", "status", "--env-file", envFile)
	require.Equal(t, 6, code, out+errOut)
	var st struct{ State, Refused string }
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Equal(t, "refused", st.State)
	require.Contains(t, st.Refused, "is UNLOGGED")
	require.Contains(t, st.Refused, "SET LOGGED")
	require.Contains(t, errOut, "every new instance answers -1601 until it is fixed")
}

// records status makes the checks an instance makes, the count of
// evictions too: a Redis that evicted keys since the fence's baseline (a
// volatile-ttl policy set for a while, records evicted, the fence kept) is
// reported lost, and the loss is written into the fence, not "live".
func TestRecordsStatusSaysAnEvictionLoss(t *testing.T) {
	ctx := context.Background()
	envFile, admin := liveRedisRecords(t, func(r *redisrecords.Records) {
		for i := 0; i < 20; i++ {
			ok, err := r.Reserve(ctx, "k"+strconv.Itoa(i), idempotency.Record{Token: "t", State: idempotency.InProgress}, 24*time.Hour)
			require.NoError(t, err)
			require.True(t, ok)
		}
	})
	used, err := strconv.Atoi(regexp.MustCompile(`used_memory:(\d+)`).FindStringSubmatch(admin.Info(ctx, "memory").Val())[1])
	require.NoError(t, err)
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory-policy", "volatile-ttl").Err())
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory", strconv.Itoa(used+100000)).Err())
	for i := 0; strings.Contains(admin.Info(ctx, "stats").Val(), "evicted_keys:0\r"); i++ { // until a key is evicted
		require.Less(t, i, 100000)
		require.NoError(t, admin.Set(ctx, "fill:"+strconv.Itoa(i), strings.Repeat("x", 200), 30*24*time.Hour).Err())
	}
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory", "0").Err())
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())

	code, out, errOut := runCLI("records", "status", "--env-file", envFile)
	require.Equal(t, 5, code, out+errOut)
	var st struct{ State, LostAt, Fence string }
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	require.Equal(t, "lost", st.State)
	require.NotEmpty(t, st.LostAt)
	fence, err := admin.Get(ctx, "cloudcall:idem:fence").Result()
	require.NoError(t, err)
	require.Equal(t, fence, st.Fence)
}

// records status refuses a Redis the charge refuses: appendonly turned off
// or an evicting policy set under running instances read "live" (exit 0)
// while every charge answered -1601 (an outside tester).
func TestRecordsStatusSaysARefusedRedis(t *testing.T) {
	ctx := context.Background()
	envFile, admin := liveRedisRecords(t, func(r *redisrecords.Records) {
		require.NoError(t, r.Warm(ctx)) // an instance's first use: the fence
	})
	refused := func(want string) {
		t.Helper()
		code, out, errOut := runCLI("records", "status", "--env-file", envFile)
		require.Equal(t, 6, code, out+errOut)
		var st struct{ State, Refused string }
		require.NoError(t, json.Unmarshal([]byte(out), &st), out)
		require.Equal(t, "refused", st.State)
		require.Contains(t, st.Refused, want)
		require.Contains(t, errOut, "every new instance answers -1601 until it is fixed")
	}
	require.NoError(t, admin.ConfigSet(ctx, "appendonly", "no").Err())
	refused("has appendonly off")
	require.NoError(t, admin.ConfigSet(ctx, "appendonly", "yes").Err())
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory", "100mb").Err())
	require.NoError(t, admin.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err())
	refused("may evict keys when full")
}

// liveRedisRecords starts a Redis with AOF, lets use write records on it,
// and checks that records status reads it "live": the env file that points
// the CLI at it, and an admin client to change it under the CLI.
func liveRedisRecords(t *testing.T, use func(*redisrecords.Records)) (string, *redis.Client) {
	t.Helper()
	srv := redisproc.Start(t, true)
	r, err := redisrecords.Open(redisrecords.Options{URL: srv.URL()})
	require.NoError(t, err)
	use(r)
	require.NoError(t, r.Close())
	envFile := writeEnvFile(t, map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": srv.URL(), "TOP_APP_KEY": "12345678"})
	code, out, errOut := runCLI("records", "status", "--env-file", envFile)
	require.Equal(t, 0, code, out+errOut)
	require.Contains(t, out, `"state":"live"`)
	o, err := redis.ParseURL(srv.URL())
	require.NoError(t, err)
	admin := redis.NewClient(o)
	t.Cleanup(func() { _ = admin.Close() })
	return envFile, admin
}

// Without TOP_APP_KEY the tool says to set it, and which one the bundled
// sandbox uses: a charge run by cloudcall invoke or local was not found
// without it, and its app key was written nowhere a user reads (a
// re-tester).
func TestRecordsNamesTheSandboxAppKey(t *testing.T) {
	m := miniredis.RunT(t)
	envFile := writeEnvFile(t, map[string]string{"CLOUDCALL_STORE": "redis://" + m.Addr() + "/0"})
	code, _, errOut := runCLI("records", "status", "--env-file", envFile)
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "set TOP_APP_KEY (the app key the charge runs with: records are kept per app key; against the bundled TOP sandbox it is "+topsbx.DemoAppKey+")")
}

// records status names the schema the charge resolves even when the URL
// sets none, and reports what a charge would answer: an outside tester's
// database whose default search_path moved to a schema without the table
// read "live" at first and then "unfenced" (exit 0) while a new instance
// charged a key again, and a search_path naming no schema read "unfenced".
func TestRecordsStatusNamesTheSchemaAndItsRefusals(t *testing.T) {
	pg := sqltest.Postgres(t)
	db := sqltest.Open(t, pg)
	_, err := db.Exec(`CREATE SCHEMA h3s`)
	require.NoError(t, err)
	r, err := sqlrecords.Open(sqlrecords.Options{URL: pg})
	require.NoError(t, err)
	require.NoError(t, r.Warm(context.Background()))
	require.NoError(t, r.Close())
	envFile := writeEnvFile(t, map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": pg, "TOP_APP_KEY": "12345678"})
	var st struct{ Where, State, Refused string }

	code, out, errOut := runCLI("records", "status", "--env-file", envFile)
	require.Equal(t, 0, code, out+errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Equal(t, "live", st.State)
	require.Contains(t, st.Where, "(schema public)")

	u, err := url.Parse(pg)
	require.NoError(t, err)
	_, err = db.Exec(`ALTER DATABASE ` + strings.TrimPrefix(u.Path, "/") + ` SET search_path = h3s`)
	require.NoError(t, err)
	code, out, errOut = runCLI("records", "status", "--env-file", envFile)
	require.Equal(t, 6, code, out+errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Equal(t, "refused", st.State)
	require.Contains(t, st.Where, "(schema h3s)")
	require.Contains(t, st.Refused, "public")
	require.Contains(t, st.Refused, "?search_path=")
	require.Contains(t, errOut, "every new instance answers -1601 until it is fixed")

	q := u.Query()
	q.Set("search_path", "h3_absent")
	u.RawQuery = q.Encode()
	envFile = writeEnvFile(t, map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": u.String(), "TOP_APP_KEY": "12345678"})
	code, out, errOut = runCLI("records", "status", "--env-file", envFile)
	require.Equal(t, 6, code, out+errOut)
	st = struct{ Where, State, Refused string }{}
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Equal(t, "refused", st.State)
	require.Contains(t, st.Refused, "no schema of the URL's search_path exists")
	require.Contains(t, st.Where, "(search_path h3_absent)")
}
