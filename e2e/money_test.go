package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/idempotency/sqlrecords/sqltest"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/store/redisstore/redistest"
)

// server is one charge process in HTTP-server mode (FC custom runtime):
// it serves many invocations at once, as an FC instance with
// instanceConcurrency does.
type server struct {
	url    string
	cmd    *exec.Cmd
	client *http.Client
}

func startServers(t *testing.T, n int, env map[string]string) []*server {
	t.Helper()
	var out []*server
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		cmd := exec.Command(bins["top-launch-extra-charge"])
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "FC_CUSTOM_LISTEN_PORT=" + strconv.Itoa(port), "FC_FUNCTION_NAME=top-launch-extra-charge", "FC_REGION=cn-hangzhou", "CLOUDCALL_HOST=127.0.0.1", "CLOUDCALL_TIMEOUT=15s"}
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		stderr := &syncBuf{} // the process writes while the test reads it
		cmd.Stderr = stderr
		require.NoError(t, cmd.Start())
		s := &server{url: "http://127.0.0.1:" + strconv.Itoa(port), cmd: cmd,
			client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}, Timeout: 30 * time.Second}}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				// What the function said is what tells an outage of the
				// store from a fault of the code.
				t.Logf("process %d's log, last 4 KB:\n%s", i, tail(stderr.String(), 4096))
			}
		})
		require.Eventually(t, func() bool {
			c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err == nil {
				_ = c.Close()
			}
			return err == nil
		}, 10*time.Second, 20*time.Millisecond, "process %d did not listen: %s", i, stderr.String())
		out = append(out, s)
	}
	return out
}

// invoke sends one direct invocation (FC custom runtime /invoke).
func (s *server) invoke(t *testing.T, payload string) map[string]any {
	req, err := http.NewRequest(http.MethodPost, s.url+"/invoke", bytes.NewReader([]byte(payload)))
	if err != nil {
		t.Errorf("invoke: %v", err)
		return nil
	}
	// FC's proxy marks an event invocation; nothing else is one.
	req.Header.Set("x-fc-control-path", "/invoke")
	resp, err := s.client.Do(req)
	if err != nil {
		t.Errorf("invoke: %v", err)
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Errorf("answer %q: %v", b, err)
	}
	return m
}

func chargeBody(order, key string) string {
	return fmt.Sprintf(`{"omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":%q,"price":4200,"type":2,"desc":"second visit"},"idempotencyKey":%q}`, order, key)
}

var sqlBackends = []struct {
	name string
	url  func(testing.TB) string
}{
	{"postgres", sqltest.Postgres},
	{"mysql", sqltest.MySQL},
}

// 4 processes × 100 concurrent callers, one key: exactly one ledger entry,
// and every caller is told the first result or 409.
func TestOneKeyFourProcessesHundredCallersEach(t *testing.T) {
	for _, b := range sqlBackends {
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			sbx := topsbx.New(topsbx.Options{})
			srv := httptest.NewServer(sbx.Handler())
			defer srv.Close()
			servers := startServers(t, 4, merge(sbx.Env(srv.URL), map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": url}))

			const perProcess = 100
			answers := make(chan map[string]any, 4*perProcess)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for _, s := range servers {
				for i := 0; i < perProcess; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						answers <- s.invoke(t, chargeBody("BFC-ONEKEY", "one-key"))
					}()
				}
			}
			close(start)
			wg.Wait()
			close(answers)

			codes := map[float64]int{}
			var firsts []map[string]any
			for m := range answers {
				require.NotNil(t, m)
				codes[m["errCode"].(float64)]++
				if m["errCode"] == 0.0 {
					firsts = append(firsts, m)
				}
			}
			t.Logf("%s: %v", b.name, codes)
			require.Len(t, sbx.Charges("BFC-ONEKEY"), 1, "exactly one ledger entry")
			require.Equal(t, 4*perProcess, codes[0]+codes[-1401], "each caller got the first result or 409: %v", codes)
			require.NotEmpty(t, firsts)
			for _, m := range firsts {
				require.Equal(t, firsts[0], m, "every success is the first result")
			}
			// Afterwards every repeat is the first result.
			for _, s := range servers {
				require.Equal(t, firsts[0], s.invoke(t, chargeBody("BFC-ONEKEY", "one-key")))
			}
			require.Len(t, sbx.Charges("BFC-ONEKEY"), 1)
		})
	}
}

// The database is cut mid-run (a proxy the test controls closes every
// connection and refuses new ones): calls answer -1501 and charge nothing;
// once it is back, the charge works again without a restart, refused keys
// charge once, and charged keys replay.
func TestDatabaseCutMidRun(t *testing.T) {
	for _, b := range sqlBackends {
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			proxy := redistest.NewProxy(t, sqltest.Host(url))
			sbx := topsbx.New(topsbx.Options{})
			srv := httptest.NewServer(sbx.Handler())
			defer srv.Close()
			servers := startServers(t, 4, merge(sbx.Env(srv.URL), map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": sqltest.WithHost(url, proxy.Addr())}))

			type result struct {
				order string
				code  float64
				phase int32 // when the call started: 0 before the cut, 1 during, 2 after
			}
			var phase atomic.Int32
			var mu sync.Mutex
			var results []result
			seen := map[float64]int{}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := 0; w < 16; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						order := fmt.Sprintf("BFC-CUT-%d-%d", w, i)
						p := phase.Load()
						m := servers[(w+i)%4].invoke(t, chargeBody(order, order))
						if m == nil {
							return
						}
						mu.Lock()
						results = append(results, result{order, m["errCode"].(float64), p})
						seen[m["errCode"].(float64)]++
						mu.Unlock()
					}
				}(w)
			}
			count := func(code float64) int { mu.Lock(); defer mu.Unlock(); return seen[code] }
			require.Eventually(t, func() bool { return count(0) >= 40 }, 60*time.Second, 10*time.Millisecond, "charges before the cut")
			proxy.Cut()
			phase.Store(1)
			require.Eventually(t, func() bool { return count(-1501) >= 40 }, 60*time.Second, 10*time.Millisecond, "refusals during the cut")
			phase.Store(2)
			proxy.Restore()
			before := count(0)
			require.Eventually(t, func() bool { return count(0) >= before+40 }, 60*time.Second, 10*time.Millisecond, "charges again after the cut, no restart")
			close(stop)
			wg.Wait()

			mu.Lock()
			defer mu.Unlock()
			t.Logf("%s: %d calls: %v", b.name, len(results), seen)
			for _, r := range results {
				n := len(sbx.Charges(r.order))
				switch r.code {
				case 0:
					require.Equal(t, 1, n, "%s answered 0", r.order)
				case -1501:
					require.Equal(t, 0, n, "%s answered -1501 yet was charged", r.order)
				case -1304:
					require.LessOrEqual(t, n, 1, r.order) // in flight at the cut: at most once, reconciled by hand
				default:
					t.Fatalf("%s: unexpected errCode %v", r.order, r.code)
				}
			}
			// Repeats: a key refused while the database was away charges once
			// now; a charged key replays. A call in flight at the instant of
			// the cut may have left its key "in progress" with nothing sent
			// (the write landed, its answer did not): 409, never a charge.
			refusedDuringCut := 0
			for i, r := range results {
				if r.code != -1501 && (r.code != 0 || i%5 != 0) {
					continue
				}
				m := servers[i%4].invoke(t, chargeBody(r.order, r.order))
				if r.code == -1501 && r.phase == 0 && m["errCode"] == -1401.0 {
					require.Empty(t, sbx.Charges(r.order), r.order)
					continue
				}
				require.Equal(t, 0.0, m["errCode"], "%s first answered %v, now %v", r.order, r.code, m)
				require.Len(t, sbx.Charges(r.order), 1, r.order)
				if r.code == -1501 && r.phase == 1 {
					refusedDuringCut++
				}
			}
			require.Greater(t, refusedDuringCut, 0)
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
