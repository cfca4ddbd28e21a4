// Package recordstest is the record protocol's conformance suite: the
// behaviour every idempotency.Records backend (memory, Redis, PostgreSQL,
// MySQL) must show, concurrency included. Each backend's tests call Run.
package recordstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/idempotency"
)

// Options describes the backend under test.
type Options struct {
	// PurgeCounts: Purge deletes expired records itself and reports exactly
	// how many (SQL); false for backends that expire natively (Redis).
	PurgeCounts bool
}

func rec(token, state string) idempotency.Record {
	return idempotency.Record{Token: token, State: state, Fingerprint: "fp-" + token, Started: 1_700_000_000_000}
}

// Run checks r. Keys are made unique per run, so a shared backend is fine.
func Run(t *testing.T, r idempotency.Records, o Options) {
	ctx := context.Background()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	run := hex.EncodeToString(b)
	k := func(n string) string { return "conformance:" + run + ":" + n }

	t.Run("read missing", func(t *testing.T) {
		_, err := r.Read(ctx, k("missing"))
		require.ErrorIs(t, err, idempotency.ErrNotFound)
	})
	t.Run("reserve is insert-if-absent and keeps every field", func(t *testing.T) {
		first := rec("t1", idempotency.InProgress)
		first.Alias = "other-key"
		ok, err := r.Reserve(ctx, k("a"), first, time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = r.Reserve(ctx, k("a"), rec("t2", idempotency.InProgress), time.Minute)
		require.NoError(t, err)
		require.False(t, ok, "a live record is never replaced by a reservation")
		got, err := r.Read(ctx, k("a"))
		require.NoError(t, err)
		require.Equal(t, first, got)
	})
	t.Run("finish is compare-and-set on the token", func(t *testing.T) {
		ok, err := r.Reserve(ctx, k("f"), rec("tf", idempotency.InProgress), time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		done := rec("tf", idempotency.Done)
		done.Status = 200
		done.Body = json.RawMessage(`{"errCode":0,"errMsg":"x:ok","id":"新 1"}`)
		ok, err = r.Finish(ctx, k("f"), "not-the-token", rec("zz", idempotency.Done), time.Minute)
		require.NoError(t, err)
		require.False(t, ok, "another call's token never finishes the record")
		ok, err = r.Finish(ctx, k("f"), "tf", done, time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		got, err := r.Read(ctx, k("f"))
		require.NoError(t, err)
		require.Equal(t, done.State, got.State)
		require.Equal(t, 200, got.Status)
		require.JSONEq(t, string(done.Body), string(got.Body))
		ok, err = r.Finish(ctx, k("missing-f"), "tf", done, time.Minute)
		require.NoError(t, err)
		require.False(t, ok, "finish never creates a record")
		_, err = r.Read(ctx, k("missing-f"))
		require.ErrorIs(t, err, idempotency.ErrNotFound)
	})
	t.Run("release is compare-and-delete on the token", func(t *testing.T) {
		ok, err := r.Reserve(ctx, k("r"), rec("tr", idempotency.InProgress), time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = r.Release(ctx, k("r"), "not-the-token")
		require.NoError(t, err)
		require.False(t, ok)
		_, err = r.Read(ctx, k("r"))
		require.NoError(t, err)
		ok, err = r.Release(ctx, k("r"), "tr")
		require.NoError(t, err)
		require.True(t, ok)
		_, err = r.Read(ctx, k("r"))
		require.ErrorIs(t, err, idempotency.ErrNotFound)
		ok, err = r.Reserve(ctx, k("r"), rec("tr2", idempotency.InProgress), time.Minute)
		require.NoError(t, err)
		require.True(t, ok, "a released key can be reserved again")
	})
	t.Run("keys are exact (case, length, bytes)", func(t *testing.T) {
		long := k(fmt.Sprintf("%0300d", 7))
		for i, key := range []string{k("Case"), k("case"), long, long + "8", k("ünï")} {
			ok, err := r.Reserve(ctx, key, rec(fmt.Sprintf("tk%d", i), idempotency.InProgress), time.Minute)
			require.NoError(t, err)
			require.True(t, ok, "key %d is its own record", i)
		}
		got, err := r.Read(ctx, long+"8")
		require.NoError(t, err)
		require.Equal(t, "tk3", got.Token)
	})
	t.Run("records expire after the ttl and the key is free again", func(t *testing.T) {
		ok, err := r.Reserve(ctx, k("e"), rec("te", idempotency.InProgress), 300*time.Millisecond)
		require.NoError(t, err)
		require.True(t, ok)
		require.Eventually(t, func() bool {
			_, err := r.Read(ctx, k("e"))
			return err != nil
		}, 10*time.Second, 50*time.Millisecond)
		_, err = r.Read(ctx, k("e"))
		require.ErrorIs(t, err, idempotency.ErrNotFound)
		ok, err = r.Finish(ctx, k("e"), "te", rec("te", idempotency.Done), time.Minute)
		require.NoError(t, err)
		require.False(t, ok, "an expired record cannot be finished")
		ok, err = r.Reserve(ctx, k("e"), rec("te2", idempotency.InProgress), time.Minute)
		require.NoError(t, err)
		require.True(t, ok, "an expired record no longer holds its key")
		got, err := r.Read(ctx, k("e"))
		require.NoError(t, err)
		require.Equal(t, "te2", got.Token)
	})
	t.Run("finish sets the ttl", func(t *testing.T) {
		ok, err := r.Reserve(ctx, k("ft"), rec("tft", idempotency.InProgress), 300*time.Millisecond)
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = r.Finish(ctx, k("ft"), "tft", rec("tft", idempotency.Done), time.Hour)
		require.NoError(t, err)
		require.True(t, ok)
		time.Sleep(600 * time.Millisecond) // past the reservation's ttl
		got, err := r.Read(ctx, k("ft"))
		require.NoError(t, err)
		require.Equal(t, idempotency.Done, got.State)
	})
	t.Run("purge is bounded and spares live records", func(t *testing.T) {
		// Drain what earlier runs left, so the counts below are this run's.
		for {
			n, err := r.Purge(ctx, 1000)
			require.NoError(t, err)
			if n == 0 {
				break
			}
		}
		for i := 0; i < 5; i++ {
			ok, err := r.Reserve(ctx, k(fmt.Sprintf("p%d", i)), rec("tp", idempotency.InProgress), 200*time.Millisecond)
			require.NoError(t, err)
			require.True(t, ok)
		}
		ok, err := r.Reserve(ctx, k("p-live"), rec("tl", idempotency.InProgress), time.Hour)
		require.NoError(t, err)
		require.True(t, ok)
		require.Eventually(t, func() bool {
			_, err := r.Read(ctx, k("p4"))
			return err != nil
		}, 10*time.Second, 50*time.Millisecond)
		time.Sleep(50 * time.Millisecond)
		n1, err := r.Purge(ctx, 3)
		require.NoError(t, err)
		require.LessOrEqual(t, n1, 3, "purge never deletes more than its limit")
		n2, err := r.Purge(ctx, 100)
		require.NoError(t, err)
		if o.PurgeCounts {
			require.Equal(t, 3, n1)
			require.Equal(t, 2, n2)
		}
		_, err = r.Read(ctx, k("p-live"))
		require.NoError(t, err, "a live record survives the clean-up")
	})
	t.Run("one reservation among concurrent callers", func(t *testing.T) {
		require.Equal(t, 1, concurrentWins(t, 50, func(i int) (bool, error) {
			return r.Reserve(ctx, k("race"), rec(fmt.Sprintf("c%d", i), idempotency.InProgress), time.Minute)
		}))
	})
	t.Run("one takeover of an expired record among concurrent callers", func(t *testing.T) {
		ok, err := r.Reserve(ctx, k("race-exp"), rec("old", idempotency.Done), 200*time.Millisecond)
		require.NoError(t, err)
		require.True(t, ok)
		require.Eventually(t, func() bool {
			_, err := r.Read(ctx, k("race-exp"))
			return err != nil
		}, 10*time.Second, 50*time.Millisecond)
		require.Equal(t, 1, concurrentWins(t, 30, func(i int) (bool, error) {
			return r.Reserve(ctx, k("race-exp"), rec(fmt.Sprintf("n%d", i), idempotency.InProgress), time.Minute)
		}))
	})
	t.Run("one finish among concurrent finishers", func(t *testing.T) {
		ok, err := r.Reserve(ctx, k("race-fin"), rec("tok", idempotency.InProgress), time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		// Each finisher moves the token on, so only one can match.
		require.Equal(t, 1, concurrentWins(t, 20, func(i int) (bool, error) {
			return r.Finish(ctx, k("race-fin"), "tok", rec(fmt.Sprintf("tok-%d", i), idempotency.Done), time.Minute)
		}))
	})
	t.Run("many keys at once", func(t *testing.T) {
		const callers = 200
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for i := 0; i < callers; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				key := k(fmt.Sprintf("many-%d", i))
				tok := fmt.Sprintf("m%d", i)
				ok, err := r.Reserve(ctx, key, rec(tok, idempotency.InProgress), time.Minute)
				if err == nil && !ok {
					err = fmt.Errorf("%s: not reserved", key)
				}
				if err == nil {
					ok, err = r.Finish(ctx, key, tok, rec(tok, idempotency.Done), time.Minute)
					if err == nil && !ok {
						err = fmt.Errorf("%s: not finished", key)
					}
				}
				errs <- err
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err, "200 concurrent callers on a healthy backend all get through")
		}
	})
	t.Run("the guard: concurrent calls with one key, then without it, run once", func(t *testing.T) {
		g := idempotency.New(idempotency.Options{Records: r, Namespace: k("guard") + ":", Stuck: time.Minute})
		for i := range 20 {
			var runs atomic.Int32
			fn := func(context.Context) idempotency.Outcome {
				runs.Add(1)
				return idempotency.Outcome{Response: envelopeOK}
			}
			fp := fmt.Sprintf("fp-%d", i)
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _, _ = g.Run(ctx, idempotency.Call{Key: "key-" + fp, Fingerprint: fp}, fn)
				}()
			}
			wg.Wait()
			_, _, e := g.Run(ctx, idempotency.Call{Fingerprint: fp}, fn)
			require.Nil(t, e, fp)
			require.Equal(t, int32(1), runs.Load(), "%s: one charge for the keyed calls and their keyless retry", fp)
		}
	})
	t.Run("the guard: a throttled first attempt, then retries with and without the key, charge once", func(t *testing.T) {
		g := idempotency.New(idempotency.Options{Records: r, Namespace: k("guard-rel") + ":", Stuck: time.Minute})
		for i := range 10 {
			var attempts, charges atomic.Int32
			fn := func(context.Context) idempotency.Outcome {
				if attempts.Add(1) == 1 {
					return idempotency.Outcome{Response: envelope.Response{Status: 429, Body: []byte(`{"errCode":-1201}`)}, Verdict: idempotency.Release}
				}
				charges.Add(1)
				return idempotency.Outcome{Response: envelopeOK}
			}
			fp := fmt.Sprintf("fp-%d", i)
			var wg sync.WaitGroup
			for j := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					call := idempotency.Call{Key: "key-" + fp, Fingerprint: fp}
					if j%3 == 2 {
						call.Key = ""
					}
					for range 100 {
						resp, _, e := g.Run(ctx, call, fn)
						if e == nil && resp.Status == 200 {
							return
						}
						time.Sleep(time.Millisecond)
					}
				}()
			}
			wg.Wait()
			require.Equal(t, int32(1), charges.Load(), "%s: one charge", fp)
		}
	})
}

var envelopeOK = envelope.Response{Status: 200, Body: []byte(`{"errCode":0}`)}

// concurrentWins runs f from n goroutines released at once and returns how
// many succeeded; an error from any of them fails the test.
func concurrentWins(t *testing.T, n int, f func(i int) (bool, error)) int {
	t.Helper()
	var wins atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			ok, err := f(i)
			if err != nil {
				errs <- err
				return
			}
			if ok {
				wins.Add(1)
			}
		}(i)
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	return int(wins.Load())
}
