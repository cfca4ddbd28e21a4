package openapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/registry"
)

// openapi.json at the module root is the document the registry generates.
func TestCommittedDocumentHasNotDrifted(t *testing.T) {
	want, err := Document()
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join("..", "..", "openapi.json"))
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "openapi.json drifted: run `make gen`")
}

// kin-openapi (pinned in go.mod) loads and validates the document as
// OpenAPI 3.1, examples included.
func TestKinOpenAPIValidates(t *testing.T) {
	b, err := Document()
	require.NoError(t, err)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(b)
	require.NoError(t, err)
	require.True(t, doc.IsOpenAPI31OrLater())
	require.NoError(t, doc.Validate(context.Background(), openapi3.EnableExamplesValidation()))
}

// The Idempotency-Key header's published pattern takes exactly what the
// charge takes: printable ASCII without spaces, and no comma (platforms join
// a repeated header's values with commas).
func TestIdempotencyKeyHeaderPattern(t *testing.T) {
	b, err := Document()
	require.NoError(t, err)
	doc, err := openapi3.NewLoader().LoadFromData(b)
	require.NoError(t, err)
	s := doc.Components.Parameters["IdempotencyKey"].Value.Schema.Value
	for k, ok := range map[string]bool{"order-42_retry.1": true, "!#$%&'()*+-./:;<=>?@[]^`{|}~": true, "ka,kb": false, "a b": false, "键": false} {
		err := s.VisitJSON(k)
		require.Equal(t, ok, err == nil, "%q: %v", k, err)
	}
}

// What the document promises, per HTTP trigger.
func TestDocumentContents(t *testing.T) {
	b, err := Document()
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	require.Equal(t, "3.1.0", doc["openapi"])
	paths := doc["paths"].(map[string]any)
	http := 0
	for _, f := range registry.All() {
		item, ok := paths["/"+f.Name].(map[string]any)
		if len(f.HTTPMethods) == 0 {
			require.False(t, ok, "%s has no HTTP trigger", f.Name)
			continue
		}
		http++
		op := item["post"].(map[string]any)
		req := op["requestBody"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)
		require.NotEmpty(t, req["examples"], f.Name)
		resp := op["responses"].(map[string]any)
		for _, st := range []string{"200", "400", "401", "413", "429", "500", "502", "503", "504"} {
			require.Contains(t, resp, st, "%s answers %s", f.Name, st)
		}
		// -1102 is reserved (docs/envelope.md): no function answers 403, so
		// no path documents it (an outside tester).
		require.NotContains(t, resp, "403", "%s answers no 403", f.Name)
		// An example that says "upstream.code says why" carries upstream
		// (an outside tester: the charge's 502 had none).
		for st, r := range resp {
			ex, _ := r.(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["example"].(map[string]any)
			if ex["errCode"] == -1305.0 {
				up, _ := ex["upstream"].(map[string]any)
				require.NotEmpty(t, up["code"], "%s %s: a refusal's example names the vendor's code", f.Name, st)
				require.Equal(t, f.Vendor, up["vendor"], "%s %s", f.Name, st)
			}
		}
		_, conflict := resp["409"]
		_, hasParams := op["parameters"]
		require.Equal(t, f.Name == "top-launch-extra-charge", conflict, f.Name)
		require.Equal(t, f.Name == "top-launch-extra-charge", hasParams, "only the charge takes Idempotency-Key")
	}
	require.NotZero(t, http)
	require.Len(t, paths, http, "a path per HTTP trigger, and no other")
	comps := doc["components"].(map[string]any)
	errEnv := comps["schemas"].(map[string]any)["ErrorEnvelope"].(map[string]any)["properties"].(map[string]any)
	for _, f := range []string{"errCode", "errMsg", "field", "retryAfter", "upstream"} {
		require.Contains(t, errEnv, f)
	}
	require.Contains(t, comps["securitySchemes"], "cloudcallHmac")
	require.Len(t, doc["x-error-codes"], 14)
	require.Contains(t, doc["info"].(map[string]any)["description"], "| `-1401` | 409 |")
	require.NotContains(t, string(b), `"$defs"`, "local refs are inlined")
	require.NotContains(t, string(b), `#/$defs`)
}

func TestHandlerServesTheDocument(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var doc map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	require.Equal(t, "3.1.0", doc["openapi"])
	// The server named is the one that answered, not make run's default.
	require.Equal(t, srv.URL, doc["servers"].([]any)[0].(map[string]any)["url"])
}

// redoclyVersion is the pinned npm validator.
const redoclyVersion = "2.77.0"

// Redocly's CLI (an independent validator, pinned) lints the document with
// its recommended rules, installed into a cache directory on first use.
// Without node it skips, except under CI=true, where .ci/run must provide it.
func TestRedoclyLints(t *testing.T) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("npm is missing: .ci/run must install node and npm")
		}
		t.Skip("npm not found: skipping the Redocly lint of openapi.json (install node to run it)")
	}
	dir := os.Getenv("CLOUDCALL_NPM_CACHE")
	if dir == "" {
		cache, err := os.UserCacheDir()
		require.NoError(t, err)
		dir = filepath.Join(cache, "cloudcall-npm")
	}
	prefix := filepath.Join(dir, "redocly-"+redoclyVersion)
	bin := filepath.Join(prefix, "node_modules", ".bin", "redocly")
	if _, err := os.Stat(bin); err != nil {
		out, err := exec.Command(npm, "install", "--prefix", prefix, "--no-audit", "--no-fund", "--loglevel=error",
			"@redocly/cli@"+redoclyVersion).CombinedOutput()
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("npm install @redocly/cli@%s: %v\n%s", redoclyVersion, err, out)
			}
			t.Skipf("npm install @redocly/cli@%s failed (offline?): %v\n%s", redoclyVersion, err, out)
		}
	}
	b, err := Document()
	require.NoError(t, err)
	spec := filepath.Join(t.TempDir(), "openapi.json")
	require.NoError(t, os.WriteFile(spec, b, 0o644))
	cfg := filepath.Join(t.TempDir(), "redocly.yaml")
	// recommended, less two rules the bundle answers by design: every
	// function has a single server-relative trigger URL per deployment, and
	// operations are grouped by vendor tags declared inline.
	require.NoError(t, os.WriteFile(cfg, []byte("extends:\n  - recommended\nrules:\n  no-server-example.com: off\n  operation-tag-defined: off\n"), 0o644))
	cmd := exec.Command(bin, "lint", spec, "--config", cfg, "--format", "stylish")
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "redocly lint:\n%s", out)
	require.False(t, strings.Contains(string(out), "error"), "%s", out)
	t.Logf("redocly %s: %s", redoclyVersion, strings.TrimSpace(string(out)))
}

// The 400 example is what the function really answers for {}.
func TestBadInputExampleIsReal(t *testing.T) {
	b, err := Document()
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	op := doc["paths"].(map[string]any)["/logistics-get-quota"].(map[string]any)["post"].(map[string]any)
	ex := op["responses"].(map[string]any)["400"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["example"].(map[string]any)
	require.Equal(t, `openapi.logistics.getQuota:fail invalid input: deliveryId: required: the courier's delivery id, e.g. "YTO" (see getAllDelivery)`, ex["errMsg"])
	require.Equal(t, "deliveryId", ex["field"])

	// CAMS takes {}: its example is the empty body's answer, which names no
	// field (it said "(body): required", which no function sends).
	cams := doc["paths"].(map[string]any)["/cams-query-chatapp-bind-waba"].(map[string]any)["post"].(map[string]any)["responses"].(map[string]any)
	ex = cams["400"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["example"].(map[string]any)
	require.Equal(t, map[string]any{"errCode": float64(-1001), "errMsg": "cams.queryChatappBindWaba:fail invalid input: the request body is empty; send a JSON object"}, ex)
	// A throttle's example carries retryAfter, as the error schema says -1201 does.
	ex = cams["429"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["example"].(map[string]any)
	require.Equal(t, float64(-1201), ex["errCode"])
	require.Contains(t, ex, "retryAfter")

	// The charge's examples are what it answers: 504 an unknown outcome,
	// 502 TOP's refusal, each with the key it echoes once known.
	charge := doc["paths"].(map[string]any)["/top-launch-extra-charge"].(map[string]any)["post"].(map[string]any)["responses"].(map[string]any)
	for st, code := range map[string]float64{"504": -1304, "502": -1305, "409": -1401, "429": -1201} {
		ex = charge[st].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["example"].(map[string]any)
		require.Equal(t, code, ex["errCode"], st)
		require.Equal(t, "demo-1", ex["idempotencyKey"], st)
	}
	ex = charge["400"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["example"].(map[string]any)
	require.NotContains(t, ex, "idempotencyKey", "not known yet when the input is refused")
}

// Every vendor decimal tells generators it is exact digits: oapi-codegen made
// CK1's sides and amounts float32, and 999999.99 went out as 1000000.
func TestDecimalsAreMarkedForGenerators(t *testing.T) {
	b, err := Document()
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	n := 0
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["type"] == "number" {
				n++
				require.Equal(t, "decimal", x["format"], "%v", x)
				require.Equal(t, "decjson.Number", x["x-go-type"])
				require.Equal(t, map[string]any{"path": "encoding/json", "name": "decjson"}, x["x-go-type-import"])
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(doc["components"])
	require.GreaterOrEqual(t, n, 7, "CK1's three sides, four amounts and the logistics-times bounds at least")
}
