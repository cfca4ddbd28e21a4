package schemacorpus_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/alicloud"
	"github.com/cloudcall/cloudcall/shared/ck1"
	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/idempotency"
	"github.com/cloudcall/cloudcall/shared/quotaalert"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/runtime"
	"github.com/cloudcall/cloudcall/shared/sandbox/camssbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/ck1sbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/sandbox/wechatsbx"
	"github.com/cloudcall/cloudcall/shared/schemacorpus"
	"github.com/cloudcall/cloudcall/shared/store"
	"github.com/cloudcall/cloudcall/shared/top"
	"github.com/cloudcall/cloudcall/shared/wechat"
)

// sandboxed is one function against a fresh sandbox of its vendor: calls
// says how many requests reached the vendor.
type sandboxed struct {
	op    envelope.Op
	calls func() int
}

type counter interface{ Calls(string) int }

// builder is f's entry of builders; a function added to the registry without
// one failed with a nil-func panic (an outside tester), this says what to add.
func builder(t *testing.T, name string) sandboxed {
	t.Helper()
	b, ok := builders[name]
	require.True(t, ok, "add a builder for %s in corpus_test.go: it starts the function against its vendor's sandbox (startSelf with the sandbox's handler and env, the function's factory, the vendor path the sandbox counts), as the others do", name)
	return b(t)
}

// builders make each function against its sandbox, with the named policies
// stricter than the vendor opened wide: the corpus is about the vendor's
// rules (the policies have their own tests).
var builders = map[string]func(t *testing.T) sandboxed{
	"logistics-get-quota": func(t *testing.T) sandboxed {
		s := wechatsbx.New(wechatsbx.Options{})
		return startSelf(t, s.Handler(), s.Env, wechat.GetQuotaFactory, s, "/cgi-bin/express/business/quota/get", nil)
	},
	"ck1-pricing-inbound-box": func(t *testing.T) sandboxed {
		s := ck1sbx.New(ck1sbx.Options{})
		return startSelf(t, s.Handler(), s.Env, ck1.Factory, s, "/v1/pricing/inbound/box", nil)
	},
	"cams-query-chatapp-bind-waba": func(t *testing.T) sandboxed {
		s := camssbx.New(camssbx.Options{})
		srv := httptest.NewServer(s.Handler())
		t.Cleanup(srv.Close)
		c, err := alicloud.NewClient(alicloud.Options{Endpoint: srv.URL, Version: alicloud.CAMSVersion, Product: "cams", HTTP: srv.Client(),
			Limiter: store.NewMemory(store.MemoryOptions{}), QPS: 10})
		require.NoError(t, err)
		creds := alicloud.Credentials{AccessKeyID: camssbx.DemoAccessKeyID, AccessKeySecret: camssbx.DemoAccessKeySecret}
		return sandboxed{op: alicloud.NewCAMS(c, alicloud.StaticSource(creds)).Op(), calls: func() int { return s.Calls("http:/") }}
	},
	"top-launch-extra-charge": func(t *testing.T) sandboxed {
		s := topsbx.New(topsbx.Options{})
		// Records in memory: one process, and the corpus is about input rules.
		return startSelf(t, s.Handler(), s.Env, top.FactoryWith(idempotency.NewMemory(nil)), s, "/router/rest", map[string]string{
			"TOP_MAX_PRICE_FEN": strconv.FormatInt(math.MaxInt64, 10), "TOP_MIN_PRICE_FEN": strconv.FormatInt(math.MinInt64, 10)})
	},
	"quota-alert": func(t *testing.T) sandboxed {
		a := quotaalert.New(quotaalert.Config{}, nil, store.NewMemory(store.MemoryOptions{}), nil, nil)
		return sandboxed{op: a.Op(), calls: func() int { return 1 }} // a run with nothing to watch: no vendor
	},
}

// startSelf points the factory at a server of the sandbox's own handler.
func startSelf(t *testing.T, h http.Handler, envFor func(string) map[string]string, factory runtime.Factory, sbx counter, path string, extra map[string]string) sandboxed {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	env := envFor(srv.URL)
	for k, v := range extra {
		env[k] = v
	}
	op, err := factory(context.Background(), runtime.Deps{Env: config.FromMap(env), Store: store.NewMemory(store.MemoryOptions{}), HTTP: srv.Client()})
	require.NoError(t, err)
	return sandboxed{op: op, calls: func() int { return sbx.Calls("http:" + path) }}
}

// TestCorpusVerdictsMatchTheSchema runs every function's generated corpus
// through the schema (the jsonschema library alone) and through the function
// against its sandbox: what the schema accepts reaches the vendor exactly
// once and is never -1001; what it refuses is -1001, names a field at or
// under the changed one, and reaches nothing.
func TestCorpusVerdictsMatchTheSchema(t *testing.T) {
	for _, f := range registry.All() {
		t.Run(f.Name, func(t *testing.T) {
			schema, err := registry.InputSchema(f.Name)
			require.NoError(t, err)
			cases, err := schemacorpus.Generate(schema)
			require.NoError(t, err)
			output, err := registry.OutputSchema(f.Name)
			require.NoError(t, err)
			valid, invalid, successes := 0, 0, 0
			for _, c := range cases {
				want := schemacorpus.Verdict(schema, c.Body)
				fn := builder(t, f.Name)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp := fn.op.Invoke(ctx, &envelope.Input{Body: c.Body})
				cancel()
				var m map[string]any
				require.NoError(t, json.Unmarshal(resp.Body, &m), c.Name)
				code := m["errCode"].(float64)
				// Every answer is the published contract: the success
				// envelope of the function, or the shared error envelope.
				if code == 0 {
					successes++
					require.NoError(t, schemacorpus.Verdict(output, resp.Body), "%s: success answer off its output schema: %s", c.Name, resp.Body)
				} else {
					require.NoError(t, schemacorpus.Verdict(registry.ErrorSchema(), resp.Body), "%s: failure answer off the error schema: %s", c.Name, resp.Body)
				}
				if want == nil {
					valid++
					require.NotEqual(t, -1001.0, code, "%s: the schema accepts %s, the function refused: %s", c.Name, c.Body, m["errMsg"])
					require.Equal(t, 1, fn.calls(), "%s: accepted input reaches the vendor once: %s", c.Name, m["errMsg"])
					require.True(t, sandboxAccepts(f.Name, m), "%s: the sandbox refused what the schema accepts (its rules and the schema differ): %s", c.Name, m["errMsg"])
					continue
				}
				invalid++
				require.Equal(t, -1001.0, code, "%s: the schema refuses %s (%v), the function answered %v", c.Name, c.Body, want, m)
				field, _ := m["field"].(string)
				require.True(t, c.Path == "" || strings.HasPrefix(field, c.Path), "%s: field %q is not at %q (%s)", c.Name, field, c.Path, m["errMsg"])
				require.NotContains(t, m["errMsg"], "expected a string, got string")
				require.Equal(t, 0, fn.calls()-boolInt(f.Name == "quota-alert"), "%s: refused input reaches nothing", c.Name)
			}
			t.Logf("%s: %d cases, %d valid, %d invalid, identical verdicts", f.Name, len(cases), valid, invalid)
			require.Positive(t, valid)
			require.Positive(t, invalid)
			require.Positive(t, successes, "some corpus answers are successes checked against the output schema")
		})
	}
}

// sandboxAccepts: the sandbox's answer to input the schema accepts is a
// success or a refusal about state (an unknown warehouse, an unbound
// account), never one of its input checks: the sandboxes check the same
// documented rules as the schema.
func sandboxAccepts(name string, m map[string]any) bool {
	if m["errCode"].(float64) == 0 {
		return true
	}
	up, _ := m["upstream"].(map[string]any)
	code, _ := up["code"].(string)
	switch name {
	case "ck1-pricing-inbound-box":
		return code == "800F0420" // 仓库不存在: the warehouse code is valid, the warehouse unknown
	case "top-launch-extra-charge":
		return code == "27" // a session string TOP does not know
	case "logistics-get-quota":
		c := m["errCode"].(float64)
		return c == 9300503 || c == 9300525 // courier or account unknown
	}
	return false // CAMS accepts every valid input (no seeded value in the corpus)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Every documented rule at and just past its boundary: the schema accepts
// the one and refuses the other, and each function does the same (the first
// reaches the vendor, the second is -1001 naming the field).
func TestEveryRuleAtAndPastItsBoundary(t *testing.T) {
	total := 0
	for _, f := range registry.All() {
		schema, err := registry.InputSchema(f.Name)
		require.NoError(t, err)
		bounds, err := schemacorpus.Boundaries(schema)
		require.NoError(t, err)
		for _, b := range bounds {
			total++
			require.NoError(t, schemacorpus.Verdict(schema, b.At), "%s %s %s at the boundary: %s", f.Name, b.Path, b.Rule, b.At)
			require.Error(t, schemacorpus.Verdict(schema, b.Past), "%s %s %s past the boundary: %s", f.Name, b.Path, b.Rule, b.Past)
			fn := builder(t, f.Name)
			m := invoke(t, fn, b.At)
			require.NotEqual(t, -1001.0, m["errCode"], "%s %s %s at: %v", f.Name, b.Path, b.Rule, m)
			require.Equal(t, 1, fn.calls())
			fn = builder(t, f.Name)
			m = invoke(t, fn, b.Past)
			require.Equal(t, -1001.0, m["errCode"], "%s %s %s past: %v", f.Name, b.Path, b.Rule, m)
			require.Equal(t, b.Path, m["field"], "%s %s", f.Name, b.Rule)
			require.Equal(t, 0, fn.calls())
		}
	}
	require.GreaterOrEqual(t, total, 30)
	t.Logf("%d rules, each at and past its boundary", total)
}

func invoke(t *testing.T, fn sandboxed, body []byte) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp := fn.op.Invoke(ctx, &envelope.Input{Body: body})
	var m map[string]any
	require.NoError(t, json.Unmarshal(resp.Body, &m))
	return m
}
