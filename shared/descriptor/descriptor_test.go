package descriptor_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/cloudcall/cloudcall/shared/descriptor"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/pack"
	"github.com/cloudcall/cloudcall/shared/registry"
)

func root(t *testing.T) string {
	r, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	return r
}

func TestNoDrift(t *testing.T) {
	fc, err := descriptor.FC(registry.All())
	require.NoError(t, err)
	sam, err := descriptor.SAM(registry.All())
	require.NoError(t, err)
	for name, want := range map[string][]byte{"s.yaml": fc, "template.yaml": sam} {
		have, err := os.ReadFile(filepath.Join(root(t), name))
		require.NoError(t, err)
		require.Equal(t, string(want), string(have), "%s drifted from the registry: run `make gen` and commit it", name)
	}
}

func TestFunctionsFoldersMatchTheRegistry(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join(root(t), "functions"))
	require.NoError(t, err)
	var folders []string
	for _, e := range entries {
		if e.IsDir() {
			folders = append(folders, e.Name())
		}
	}
	names := registry.Names()
	sort.Strings(folders)
	sort.Strings(names)
	require.Equal(t, names, folders, "every functions/ folder is in the registry and vice versa")
}

func TestEachFunctionGetsOnlyItsOwnVendorSecrets(t *testing.T) {
	prefixes := map[string]*regexp.Regexp{
		"wechat": regexp.MustCompile(`^(WECHAT_|QUOTA_ALERT_|CLOUDCALL_)`), "ck1": regexp.MustCompile(`^(CK1_|CLOUDCALL_)`),
		"alicloud": regexp.MustCompile(`^(ALIBABA_CLOUD_|CAMS_|CLOUDCALL_)`), "top": regexp.MustCompile(`^(TOP_|CLOUDCALL_)`),
	}
	for _, f := range registry.All() {
		for _, v := range f.Env {
			require.Regexp(t, prefixes[f.Vendor], v.Name, "%s must not receive %s", f.Name, v.Name)
		}
	}
}

func TestCronDialects(t *testing.T) {
	s := registry.Schedule{Name: "x", Cron: "0 * * * *", TimeZone: "Asia/Shanghai"}
	require.Equal(t, "CRON_TZ=Asia/Shanghai 0 0 * * * *", descriptor.FCCron(s))
	aws, err := descriptor.AWSCron(s)
	require.NoError(t, err)
	require.Equal(t, "cron(0 * * * ? *)", aws)
	aws, err = descriptor.AWSCron(registry.Schedule{Cron: "30 9 * * 1-5"})
	require.NoError(t, err)
	require.Equal(t, "cron(30 9 ? * 2-6 *)", aws, "Monday-Friday is 2-6 in EventBridge")
	_, err = descriptor.AWSCron(registry.Schedule{Cron: "0 0 1 * 1"})
	require.Error(t, err)
	require.Equal(t, "QuotaAlertFunction", descriptor.LogicalID("quota-alert"))
}

// schemasDir finds ../shared/schemas beside the checkout (or
// CLOUDCALL_SCHEMAS_DIR); missing schemas fail under CI=true.
func schemasDir(t *testing.T) string {
	dir := os.Getenv("CLOUDCALL_SCHEMAS_DIR")
	if dir == "" {
		dir = filepath.Join(root(t), "..", "shared", "schemas")
	}
	if _, err := os.Stat(filepath.Join(dir, "sam.schema.json")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("schemas not found in %s (set CLOUDCALL_SCHEMAS_DIR): the descriptor conformance test must run in CI", dir)
		}
		t.Skipf("schemas not found in %s; set CLOUDCALL_SCHEMAS_DIR to run the descriptor conformance test", dir)
	}
	return dir
}

func compile(t *testing.T, path string) *jsonschema.Schema {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	c.UseRegexpEngine(lookaheadRegexp)
	require.NoError(t, c.AddResource(path, doc))
	s, err := c.Compile(path)
	require.NoError(t, err)
	return s
}

// lookaheadRegexp is Go's regexp plus the one construct the SAM schema uses
// that RE2 lacks: a leading negative lookahead, ^(?!X)rest.
func lookaheadRegexp(pattern string) (jsonschema.Regexp, error) {
	if re, err := regexp.Compile(pattern); err == nil {
		return re, nil
	}
	m := regexp.MustCompile(`^\^\(\?!(.+?)\)(.*)$`).FindStringSubmatch(pattern)
	if m == nil {
		return nil, fmt.Errorf("unsupported regexp %q", pattern)
	}
	not, err := regexp.Compile("^(?:" + m[1] + ")")
	if err != nil {
		return nil, err
	}
	rest, err := regexp.Compile("^" + m[2])
	if err != nil {
		return nil, err
	}
	return negLookahead{pattern, not, rest}, nil
}

type negLookahead struct {
	src       string
	not, rest *regexp.Regexp
}

func (n negLookahead) MatchString(s string) bool {
	return !n.not.MatchString(s) && n.rest.MatchString(s)
}
func (n negLookahead) String() string { return n.src }

// plain turns a YAML node into JSON values, rendering CloudFormation's short
// intrinsics (!Ref X) in their long form ({"Ref": "X"}).
func plain(n *yaml.Node) any {
	switch n.Kind {
	case yaml.DocumentNode:
		return plain(n.Content[0])
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i < len(n.Content); i += 2 {
			m[n.Content[i].Value] = plain(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		s := []any{}
		for _, c := range n.Content {
			s = append(s, plain(c))
		}
		return s
	}
	switch n.Tag {
	case "!Ref":
		return map[string]any{"Ref": n.Value}
	case "!!int":
		var i int
		_ = yaml.Unmarshal([]byte(n.Value), &i)
		return json.Number(n.Value)
	case "!!bool":
		return n.Value == "true"
	}
	return n.Value
}

var devsEnv = regexp.MustCompile(`\$\{env\('[A-Z0-9_]+', '([^']*)'\)\}`)

// renderDevs substitutes Serverless Devs variables the way `s` does when the
// environment is empty: ${env('X', 'd')} → d, then ${vars.k} → vars[k].
func renderDevs(t *testing.T, raw []byte) map[string]any {
	s := devsEnv.ReplaceAllString(string(raw), "$1")
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(s), &doc))
	vars := doc["vars"].(map[string]any)
	for k, v := range vars {
		s = regexp.MustCompile(regexp.QuoteMeta("${vars."+k+"}")).ReplaceAllString(s, v.(string))
	}
	require.NoError(t, yaml.Unmarshal([]byte(s), &doc))
	return doc
}

func TestDescriptorsValidateAgainstOfficialSchemas(t *testing.T) {
	dir := schemasDir(t)
	raw, err := os.ReadFile(filepath.Join(root(t), "s.yaml"))
	require.NoError(t, err)
	doc := renderDevs(t, raw)
	require.Equal(t, "3.0.0", doc["edition"])
	fc3 := compile(t, filepath.Join(dir, "fc3-props.schema.json"))
	resources := doc["resources"].(map[string]any)
	require.Len(t, resources, len(registry.All()))
	for name, r := range resources {
		res := r.(map[string]any)
		require.Equal(t, "fc3", res["component"])
		b, _ := json.Marshal(res["props"])
		props, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		require.NoError(t, err)
		require.NoError(t, fc3.Validate(props), "s.yaml resource %s", name)
	}

	raw, err = os.ReadFile(filepath.Join(root(t), "template.yaml"))
	require.NoError(t, err)
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal(raw, &n))
	b, _ := json.Marshal(plain(&n))
	tmpl, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	require.NoError(t, err)
	require.NoError(t, compile(t, filepath.Join(dir, "sam.schema.json")).Validate(tmpl))
}

func TestPackagesAreExactAndReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	ctx := context.Background()
	for _, tg := range []pack.Target{{Function: "logistics-get-quota", Platform: "fc", Arch: "amd64"}, {Function: "logistics-get-quota", Platform: "aws", Arch: "amd64"}} {
		var sums []string
		for i := 0; i < 2; i++ {
			path, sum, size, err := pack.Package(ctx, root(t), t.TempDir(), tg)
			require.NoError(t, err)
			require.Less(t, size, int64(20<<20))
			sums = append(sums, sum)
			z, err := zip.OpenReader(path)
			require.NoError(t, err)
			require.Len(t, z.File, 1, "the zip holds exactly the executable")
			require.Equal(t, tg.Executable(), z.File[0].Name)
			require.Equal(t, os.FileMode(0o755), z.File[0].Mode().Perm())
			z.Close()
		}
		require.Equal(t, sums[0], sums[1], "two builds of %s give the same bytes", tg.ZipName())
	}
}
