package top_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/top"
)

// sessionRig is one sandbox that takes two sessions, and one records store
// that every function built on it shares, as instances and releases do.
type sessionRig struct {
	sbx     *topsbx.Server
	srv     *httptest.Server
	records *idempotency.Memory
}

const sessionA, sessionB = "seller-session-before", "seller-session-after"

func newSessionRig(t *testing.T) *sessionRig {
	sbx := topsbx.New(topsbx.Options{Sessions: []string{sessionA, sessionB}})
	srv := httptest.NewServer(sbx.Handler())
	t.Cleanup(srv.Close)
	return &sessionRig{sbx: sbx, srv: srv, records: idempotency.NewMemory(nil)}
}

// function builds the charge with TOP_SESSION set to session.
func (r *sessionRig) function(t *testing.T, session string) envelope.Op {
	vars := r.sbx.Env(r.srv.URL)
	vars["TOP_SESSION"] = session
	op, err := top.FactoryWith(r.records)(context.Background(), runtime.Deps{Env: config.FromMap(vars), Store: store.NewMemory(store.MemoryOptions{}), HTTP: r.srv.Client()})
	require.NoError(t, err)
	return op
}

// invokeOp answers as the runtime does (chargeRig's invoke).
func invokeOp(t *testing.T, op envelope.Op, body string) map[string]any {
	t.Helper()
	return (&chargeRig{op: op}).invoke(t, body)
}

func orderID(t *testing.T, m map[string]any) string {
	t.Helper()
	require.Equal(t, 0.0, m["errCode"], m)
	return m["result"].(map[string]any)["data"].(map[string]any)["extraChargeServiceOrderId"].(string)
}

func withSession(body, session string) string {
	var m map[string]any
	_ = json.Unmarshal([]byte(body), &m)
	m["session"] = session
	b, _ := json.Marshal(m)
	return string(b)
}

// A seller authorises again and TOP_SESSION changes: a charge made under
// the old session and repeated under the new one is the same charge, in
// every form. With the session in the fingerprint, the keyed repeat heard
// -1401 ("use a new key", which charged again) and the keyless one charged
// again (an outside re-tester).
func TestASessionChangeKeepsRepeatsRepeats(t *testing.T) {
	r := newSessionRig(t)
	before, after := r.function(t, sessionA), r.function(t, sessionB)

	first := orderID(t, invokeOp(t, before, charge("ROT-KEYED", 100, "rot-key")))
	require.Equal(t, first, orderID(t, invokeOp(t, after, charge("ROT-KEYED", 100, "rot-key"))), "keyed repeat")
	require.Equal(t, first, orderID(t, invokeOp(t, after, charge("ROT-KEYED", 100, ""))), "the keyed charge repeated without its key")
	require.Len(t, r.sbx.Charges("ROT-KEYED"), 1)

	first = orderID(t, invokeOp(t, before, charge("ROT-KEYLESS", 100, "")))
	require.Equal(t, first, orderID(t, invokeOp(t, after, charge("ROT-KEYLESS", 100, ""))), "keyless repeat")
	require.Equal(t, first, orderID(t, invokeOp(t, after, charge("ROT-KEYLESS", 100, "added-after"))), "the keyless charge repeated with a key")
	require.Len(t, r.sbx.Charges("ROT-KEYLESS"), 1)

	// A caller that sends the session and repeats with the seller's new one.
	first = orderID(t, invokeOp(t, before, withSession(charge("ROT-BODY", 100, "body-key"), sessionA)))
	require.Equal(t, first, orderID(t, invokeOp(t, before, withSession(charge("ROT-BODY", 100, "body-key"), sessionB))))
	require.Equal(t, first, orderID(t, invokeOp(t, before, withSession(charge("ROT-BODY", 100, ""), sessionB))))
	require.Len(t, r.sbx.Charges("ROT-BODY"), 1)

	// A new key is still a new charge, under either session.
	orderID(t, invokeOp(t, after, charge("ROT-KEYED", 100, "second-fee")))
	require.Len(t, r.sbx.Charges("ROT-KEYED"), 2)
}

// fingerprints are the request's fingerprint now (app, parameter) and as
// the release before this one computed it (app, session, parameter), for
// charge(order, 100, …) as the function sends it.
func fingerprints(order, session string) (now, before string) {
	param := `{"wds_coordination_order_id":"` + order + `","price":100,"type":2,"desc":"二次上门","feature":"{\"visit\":\"2\"}"}`
	n, _ := json.Marshal([]string{top.MethodLaunchExtra, topsbx.DemoAppKey, param})
	b, _ := json.Marshal([]string{top.MethodLaunchExtra, topsbx.DemoAppKey, session, param})
	return idempotency.Fingerprint(n), idempotency.Fingerprint(b)
}

// asBefore rewrites the records of order's request into what the release
// before this one left: its fingerprint held the session, its keyless slot
// was named by that fingerprint, and a keyless answer named that slot.
func (r *sessionRig) asBefore(t *testing.T, order, session string, keys ...string) {
	t.Helper()
	ctx := context.Background()
	ns := "idem:top:" + topsbx.DemoAppKey + ":"
	now, before := fingerprints(order, session)
	for _, k := range keys {
		rec, err := r.records.Read(ctx, ns+k)
		require.NoError(t, err, k)
		require.Equal(t, now, rec.Fingerprint, "the test computes the function's fingerprint")
		rec.Fingerprint = before
		ok, err := r.records.Finish(ctx, ns+k, rec.Token, rec, 24*time.Hour)
		require.True(t, ok && err == nil, k)
	}
	slot, err := r.records.Read(ctx, ns+idempotency.KeylessKey(now))
	require.NoError(t, err)
	ok, err := r.records.Release(ctx, ns+idempotency.KeylessKey(now), slot.Token)
	require.True(t, ok && err == nil)
	slot.Fingerprint = before
	slot.Body = json.RawMessage(strings.ReplaceAll(string(slot.Body), idempotency.KeylessKey(now), idempotency.KeylessKey(before)))
	ok, err = r.records.Reserve(ctx, ns+idempotency.KeylessKey(before), slot, 24*time.Hour)
	require.True(t, ok && err == nil)
}

// The release that took the session out of the fingerprint still finds
// the records the release before it wrote, for as long as they may live:
// without that, every repeat of the day before the update would have read
// as another request (keyed: -1401, keyless: a second charge).
func TestRecordsOfTheReleaseBeforeAreFound(t *testing.T) {
	r := newSessionRig(t)
	op := r.function(t, sessionA)
	for _, c := range []struct {
		name       string
		key        string // the first call's
		repeatWith func(order string) string
	}{
		{"keyed repeat", "old-key-1", func(string) string { return "old-key-1" }},
		{"keyless repeat of a keyed charge", "old-key-2", func(string) string { return "" }},
		{"keyless repeat", "", func(string) string { return "" }},
		{"repeat with the key the old answer gave", "", func(order string) string {
			_, slot := fingerprints(order, sessionA)
			return idempotency.KeylessKey(slot)
		}},
		{"keyed repeat of a keyless charge", "", func(string) string { return "added-after" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			order := "OLD-" + strings.ReplaceAll(c.name, " ", "-")
			first := orderID(t, invokeOp(t, op, charge(order, 100, c.key)))
			if c.key != "" {
				r.asBefore(t, order, sessionA, c.key)
			} else {
				r.asBefore(t, order, sessionA)
			}
			again := invokeOp(t, op, charge(order, 100, c.repeatWith(order)))
			require.Equal(t, first, orderID(t, again))
			if c.key == "" {
				_, slot := fingerprints(order, sessionA)
				require.Equal(t, idempotency.KeylessKey(slot), again["idempotencyKey"], "it names the slot that holds it")
			}
			require.Len(t, r.sbx.Charges(order), 1)
		})
	}
}

// readsFail is a records store whose reads fail: the migration's lookup
// cannot be made.
type readsFail struct{ idempotency.Records }

func (readsFail) Read(context.Context, string) (idempotency.Record, error) {
	return idempotency.Record{}, fmt.Errorf("%w: connection reset", idempotency.ErrUnavailable)
}

// A store that cannot be read for the old fingerprint's records refuses
// the charge as a reservation it cannot make would (-1501, retryable),
// echoing the key in force, and charges nothing.
func TestTheMigrationsLookupFailingChargesNothing(t *testing.T) {
	sbx := topsbx.New(topsbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	t.Cleanup(srv.Close)
	op, err := top.FactoryWith(readsFail{idempotency.NewMemory(nil)})(context.Background(), runtime.Deps{Env: config.FromMap(sbx.Env(srv.URL)), Store: store.NewMemory(store.MemoryOptions{}), HTTP: srv.Client()})
	require.NoError(t, err)
	keyed := invokeOp(t, op, charge("LOOKUP-FAILS", 100, "lk-1"))
	require.Equal(t, float64(envelope.CodeStoreUnavailable), keyed["errCode"], keyed)
	require.Equal(t, "lk-1", keyed["idempotencyKey"])
	keyless := invokeOp(t, op, charge("LOOKUP-FAILS", 100, ""))
	require.Equal(t, float64(envelope.CodeStoreUnavailable), keyless["errCode"], keyless)
	now, _ := fingerprints("LOOKUP-FAILS", topsbx.DemoSession)
	require.Equal(t, idempotency.KeylessKey(now), keyless["idempotencyKey"])
	require.Empty(t, sbx.Charges("LOOKUP-FAILS"))
}
