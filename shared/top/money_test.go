package top_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/idempotency/recordstore"
	"github.com/cloudcall/cloudcall/shared/idempotency/redisrecords/redisproc"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/top"
)

// chargeRig is the production factory (records from the environment)
// against the sandbox.
type chargeRig struct {
	sbx *topsbx.Server
	op  envelope.Op
	err error
}

func newChargeRig(t *testing.T, env map[string]string) *chargeRig {
	t.Helper()
	sbx := topsbx.New(topsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	t.Cleanup(srv.Close)
	vars := sbx.Env(srv.URL)
	for k, v := range env {
		vars[k] = v
	}
	op, err := top.Factory(context.Background(), runtime.Deps{Env: config.FromMap(vars), Store: store.NewMemory(store.MemoryOptions{}), HTTP: srv.Client()})
	return &chargeRig{sbx: sbx, op: op, err: err}
}

// invoke answers the way the runtime does, a factory error included.
func (r *chargeRig) invoke(t *testing.T, body string) map[string]any {
	t.Helper()
	var resp envelope.Response
	if r.err != nil {
		resp = envelope.Failure(r.op.API, envelope.ConfigError("%v", r.err))
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp = r.op.Invoke(ctx, &envelope.Input{Body: []byte(body), Trigger: envelope.TriggerDirect})
	}
	var m map[string]any
	require.NoError(t, json.Unmarshal(resp.Body, &m), string(resp.Body))
	return m
}

// With only the memory store there is nowhere durable for the record: the
// charge refuses, naming what to set, and charges nothing.
func TestMemoryStoreRefusesTheCharge(t *testing.T) {
	for _, env := range []map[string]string{{}, {"CLOUDCALL_STORE": "memory"}} {
		r := newChargeRig(t, env)
		for i := 0; i < 3; i++ {
			m := r.invoke(t, charge("BFC-MEM", 100, "mem-1"))
			require.Equal(t, -1601.0, m["errCode"], m)
			require.Contains(t, m["errMsg"], "CLOUDCALL_IDEMPOTENCY_STORE")
			require.Contains(t, m["errMsg"], "CLOUDCALL_STORE")
		}
		require.Empty(t, r.sbx.Charges(""), "0 charges")
	}
}

// The charge as cloudcall package builds it for a Redis records store, then
// given a PostgreSQL or MySQL one (changed in the console): it charges
// nothing and says how to package it again.
func TestASQLStoreInABuildForRedisIsRefused(t *testing.T) {
	if recordstore.HasSQL {
		t.Skip("this build links the SQL clients; make test runs this package again with -tags " + recordstore.NoSQLTag)
	}
	for _, url := range []string{"postgres://u:pw@127.0.0.1:1/db", "mysql://u:pw@127.0.0.1:1/db"} {
		r := newChargeRig(t, map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": url})
		m := r.invoke(t, charge("BFC-NOSQL", 100, "nosql-1"))
		require.Equal(t, -1601.0, m["errCode"], m)
		require.Contains(t, m["errMsg"], "CLOUDCALL_IDEMPOTENCY_STORE: this binary was packaged for a Redis records store")
		require.Contains(t, m["errMsg"], "--records all")
		require.NotContains(t, m["errMsg"], "pw@")
		require.Empty(t, r.sbx.Charges(""), "0 charges")
	}
}

// A policy the charge does not know is a setting to fix, named, before
// anything is sent.
func TestAnUnknownAfterLossPolicyIsRefused(t *testing.T) {
	r := newChargeRig(t, map[string]string{"CLOUDCALL_STORE": "redis://127.0.0.1:1/0", "CLOUDCALL_IDEMPOTENCY_AFTER_LOSS": "ignore"})
	m := r.invoke(t, charge("BFC-POLICY", 100, "policy-1"))
	require.Equal(t, -1601.0, m["errCode"], m)
	require.Contains(t, m["errMsg"], `CLOUDCALL_IDEMPOTENCY_AFTER_LOSS="ignore": expected refuse (the default) or continue`)
	require.NotContains(t, m["errMsg"], "CLOUDCALL_STORE:", "the policy's setting, not the URL's")
	require.Empty(t, r.sbx.Charges(""))
}

// A Redis without persistence restarted empty between two calls with the
// same key: it never held a record, so it never charged (0 entries, not 2).
// With AOF, the restarted Redis still holds the record: the repeat is a
// replay and the ledger keeps exactly one entry.
func TestRedisRestart(t *testing.T) {
	t.Run("without persistence: refused, no charge before or after the restart", func(t *testing.T) {
		srv := redisproc.Start(t, false)
		r := newChargeRig(t, map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": srv.URL()})
		require.NoError(t, r.err)
		m := r.invoke(t, charge("BFC-NOPERSIST", 100, "restart-1"))
		require.Equal(t, -1601.0, m["errCode"], m)
		require.Contains(t, m["errMsg"], "appendonly")
		srv.Crash()
		m = r.invoke(t, charge("BFC-NOPERSIST", 100, "restart-1"))
		require.Equal(t, -1601.0, m["errCode"], m)
		require.Empty(t, r.sbx.Charges("BFC-NOPERSIST"), "no ledger entry, so never a second one")
	})
	t.Run("without persistence through CLOUDCALL_STORE: the same", func(t *testing.T) {
		srv := redisproc.Start(t, false)
		r := newChargeRig(t, map[string]string{"CLOUDCALL_STORE": srv.URL()})
		require.NoError(t, r.err)
		m := r.invoke(t, charge("BFC-NOPERSIST2", 100, "restart-2"))
		require.Equal(t, -1601.0, m["errCode"], m)
		require.Empty(t, r.sbx.Charges(""))
	})
	t.Run("with AOF: the repeat after the restart is a replay", func(t *testing.T) {
		srv := redisproc.Start(t, true)
		r := newChargeRig(t, map[string]string{"CLOUDCALL_STORE": srv.URL()})
		require.NoError(t, r.err)
		first := r.invoke(t, charge("BFC-AOF", 100, "restart-3"))
		require.Equal(t, 0.0, first["errCode"], first)
		srv.Crash() // SIGKILL: no shutdown save; the AOF is all there is
		var again map[string]any
		require.Eventually(t, func() bool {
			again = r.invoke(t, charge("BFC-AOF", 100, "restart-3"))
			return again["errCode"] != -1501.0 // while the pool reconnects
		}, 10*time.Second, 100*time.Millisecond)
		require.Equal(t, first, again, "the first answer, replayed")
		require.Len(t, r.sbx.Charges("BFC-AOF"), 1)
	})
	t.Run("with AOF, back empty (the AOF lost): refused until reopened, never charged again", func(t *testing.T) {
		// An outside tester deleted the AOF under load: 30 keys, 96 charges.
		srv := redisproc.Start(t, true)
		r := newChargeRig(t, map[string]string{"CLOUDCALL_STORE": srv.URL()})
		require.NoError(t, r.err)
		first := r.invoke(t, charge("BFC-LOST", 100, "restart-4"))
		require.Equal(t, 0.0, first["errCode"], first)
		srv.Reconfigure(true) // a failover to a node without the data
		var again map[string]any
		require.Eventually(t, func() bool {
			again = r.invoke(t, charge("BFC-LOST", 100, "restart-4"))
			return again["errCode"] != -1501.0 // while the pool reconnects
		}, 10*time.Second, 100*time.Millisecond)
		require.Equal(t, -1601.0, again["errCode"], again)
		require.Contains(t, again["errMsg"], "lost its data")
		require.Contains(t, again["errMsg"], "cloudcall records reopen --reconciled")
		// Another key too, and from a new instance: the loss is in the store.
		fresh := newChargeRig(t, map[string]string{"CLOUDCALL_STORE": srv.URL()})
		m := fresh.invoke(t, charge("BFC-LOST-2", 100, "restart-5"))
		require.Equal(t, -1601.0, m["errCode"], m)
		require.Len(t, r.sbx.Charges("BFC-LOST"), 1, "charged once")
		require.Empty(t, fresh.sbx.Charges(""), "nothing sent by the new instance")
	})
}

// finishFails loses every finish, the way a store that drops right after
// the vendor answered does.
type finishFails struct{ *idempotency.Memory }

func (f finishFails) Finish(ctx context.Context, k, tok string, r idempotency.Record, ttl time.Duration) (bool, error) {
	if r.State == idempotency.Reserved || (r.State == idempotency.InProgress && r.Known == "") {
		return f.Memory.Finish(ctx, k, tok, r, ttl) // the steps before sending
	}
	return false, fmt.Errorf("%w: connection reset", idempotency.ErrUnavailable)
}

// The charge happened but its record could not be finished: an ERROR line
// names the key and TOP's order id, and a later repeat hears -1304 (never a
// second charge).
func TestFinishFailingIsLoggedAndNeverChargesTwice(t *testing.T) {
	sbx := topsbx.New(topsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	var mu sync.Mutex
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil))
	mem := idempotency.NewMemory(nil)
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c, err := top.NewClient(top.Options{AppKey: topsbx.DemoAppKey, Secret: topsbx.DemoSecret, Session: topsbx.DemoSession, Gateway: srv.URL + "/router/rest", HTTP: srv.Client()})
	require.NoError(t, err)
	g := idempotency.New(idempotency.Options{Records: finishFails{mem}, Namespace: "idem:top:" + topsbx.DemoAppKey + ":",
		Stuck: time.Minute, FinishFor: 300 * time.Millisecond, Log: log, Now: clock})
	op := top.NewCharger(c, g, 0, 1_000_000).Op()

	call := func() map[string]any {
		resp := op.Invoke(context.Background(), &envelope.Input{Body: []byte(charge("BFC-FIN", 100, "fin-1")), Trigger: envelope.TriggerDirect})
		var m map[string]any
		require.NoError(t, json.Unmarshal(resp.Body, &m))
		return m
	}
	first := call()
	require.Equal(t, 0.0, first["errCode"], first)
	require.Len(t, sbx.Charges("BFC-FIN"), 1)
	orderID := sbx.Charges("BFC-FIN")[0].ID

	mu.Lock()
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(l, `"level":"ERROR"`) {
			require.NoError(t, json.Unmarshal([]byte(l), &line))
		}
	}
	mu.Unlock()
	require.NotNil(t, line, "an ERROR line")
	require.Equal(t, "fin-1", line["idempotencyKey"], "the key cloudcall records settle takes")
	require.Equal(t, orderID, line["vendorId"])

	// The record could not even say what is known: 409 while the first
	// call could still be running, then -1304; never a second charge.
	m := call()
	require.Equal(t, -1401.0, m["errCode"], m)
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	m = call()
	require.Equal(t, -1304.0, m["errCode"], m)
	require.Contains(t, m["errMsg"], "reconcile before retrying")
	require.Len(t, sbx.Charges("BFC-FIN"), 1)
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// A keyed charge retried without its key (same order, price, type, desc,
// feature, session) is answered from the keyed record: one charge.
func TestKeyedChargeRetriedWithoutItsKey(t *testing.T) {
	r := newRig(t, nil)
	_, first := r.call(t, charge("BFC-NOKEY", 100, "with-key"), nil)
	require.Equal(t, 0.0, first["errCode"], first)
	_, again := r.call(t, charge("BFC-NOKEY", 100, ""), nil)
	require.Equal(t, first, again)
	require.Len(t, r.sbx.Charges("BFC-NOKEY"), 1)
	// The key in the header instead of the body is the same key.
	_, hdr := r.call(t, charge("BFC-NOKEY", 100, ""), map[string]string{"Idempotency-Key": "with-key"})
	require.Equal(t, first, hdr)
	require.Len(t, r.sbx.Charges("BFC-NOKEY"), 1)
	// Keyless first, then retried with a key: still one charge.
	_, k1 := r.call(t, charge("BFC-KEYLATER", 100, ""), nil)
	require.Equal(t, 0.0, k1["errCode"], k1)
	_, k2 := r.call(t, charge("BFC-KEYLATER", 100, "added-later"), nil)
	require.Equal(t, k1, k2)
	require.Len(t, r.sbx.Charges("BFC-KEYLATER"), 1)
	// A new key is a new charge, by the caller's explicit choice.
	_, second := r.call(t, charge("BFC-NOKEY", 100, "another-key"), nil)
	require.Equal(t, 0.0, second["errCode"], second)
	require.NotEqual(t, first, second)
	require.Len(t, r.sbx.Charges("BFC-NOKEY"), 2)
}

// 200 concurrent charges (FC's largest per-instance concurrency) on one
// instance and a healthy Redis 10 ms away: every one charges, none is
// refused -1501 for want of a pooled connection (a 16-connection pool with
// 300 ms bounds refused most of them).
func TestTwoHundredConcurrentChargesOnHealthyRedis(t *testing.T) {
	srv := redisproc.Start(t, true)
	away := slowProxy(t, strings.TrimSuffix(strings.TrimPrefix(srv.URL(), "redis://"), "/0"), 10*time.Millisecond)
	r := newChargeRig(t, map[string]string{"CLOUDCALL_STORE": "redis://" + away + "/0"})
	require.NoError(t, r.err)
	const callers = 200
	codes := make(chan float64, callers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			m := r.invoke(t, charge(fmt.Sprintf("BFC-200-%d", i), 100, fmt.Sprintf("k200-%d", i)))
			codes <- m["errCode"].(float64)
		}(i)
	}
	close(start)
	wg.Wait()
	close(codes)
	got := map[float64]int{}
	for c := range codes {
		got[c]++
	}
	require.Equal(t, map[float64]int{0: callers}, got)
	require.Len(t, r.sbx.Charges(""), callers)
}

// slowProxy forwards TCP to target, delaying each answer by d: a Redis on
// another host.
func slowProxy(t *testing.T, target string, d time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := up.Read(buf)
					if n > 0 {
						time.Sleep(d)
						if _, werr := c.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				_ = c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// A charge instance prepares its records store at cold start, before any
// call reaches it: persistence checked (the fence written) and the three
// scripts loaded; nothing is sent to TOP and no record is written.
func TestChargeWarmsItsRecordsStoreAtColdStart(t *testing.T) {
	srv := redisproc.Start(t, true)
	sbx := topsbx.New(topsbx.Options{})
	hs := httptest.NewServer(sbx.Handler())
	defer hs.Close()
	env := sbx.Env(hs.URL)
	env["CLOUDCALL_IDEMPOTENCY_STORE"] = srv.URL()
	e := config.FromMap(env)
	_, err := runtime.New(context.Background(), e, runtime.NewLogger(io.Discard, e), top.Factory)
	require.NoError(t, err)
	opts, err := redis.ParseURL(srv.URL())
	require.NoError(t, err)
	c := redis.NewClient(opts)
	defer c.Close()
	// The scripts load beside the durability check, so either may finish
	// first.
	require.Eventually(t, func() bool {
		info, err := c.Info(context.Background(), "memory").Result()
		return err == nil && strings.Contains(info, "number_of_cached_scripts:3") && srv.Keys() > 1
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, int64(2), srv.Keys(), "only the durability fence and its eviction baseline")
	require.Empty(t, sbx.Charges(""))
}

// A caller AWS_IAM authenticated sends its key in the body, which SigV4
// covers: the unsigned header would let a captured call, replayed with a new
// header, charge again. The body key still works; nothing is charged for
// the refused header.
func TestPlatformCallerSendsTheKeyInTheBody(t *testing.T) {
	r := newRig(t, nil)
	in := &envelope.Input{Body: []byte(charge("BFC-IAM", 100, "")), Trigger: envelope.TriggerHTTP,
		Header: http.Header{"Idempotency-Key": {"k-iam"}}, PlatformCaller: "aws-iam:arn:aws:iam::1:user/b"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp := r.op.Invoke(ctx, in)
	require.Equal(t, 400, resp.Status, string(resp.Body))
	require.Contains(t, string(resp.Body), `"field":"idempotencyKey"`)
	require.Contains(t, string(resp.Body), "idempotencyKey")
	require.Empty(t, r.sbx.Charges("BFC-IAM"))

	in = &envelope.Input{Body: []byte(charge("BFC-IAM", 100, "k-iam")), Trigger: envelope.TriggerHTTP, PlatformCaller: in.PlatformCaller}
	resp = r.op.Invoke(ctx, in)
	require.Equal(t, 200, resp.Status, string(resp.Body))
	require.Len(t, r.sbx.Charges("BFC-IAM"), 1)
}
