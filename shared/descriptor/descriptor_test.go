package descriptor_test

import (
	"archive/zip"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/cloudcall/cloudcall/shared/descriptor"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/pack"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/runtime"
)

func root(t *testing.T) string {
	r, err := emulator.ModuleRoot(".")
	require.NoError(t, err)
	return r
}

func TestNoDrift(t *testing.T) {
	fc, err := descriptor.FC(registry.All())
	require.NoError(t, err)
	fcVPC, err := descriptor.FC(registry.All(), descriptor.FCOptions{VPC: true})
	require.NoError(t, err)
	sam, err := descriptor.SAM(registry.All())
	require.NoError(t, err)
	for name, want := range map[string][]byte{"s.yaml": fc, "s.vpc.yaml": fcVPC, "template.yaml": sam} {
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
		if isIntrinsic(n.Tag) {
			return map[string]any{"Fn::" + n.Tag[1:]: s}
		}
		return s
	}
	switch {
	case n.Tag == "!Ref":
		return map[string]any{"Ref": n.Value}
	case n.Tag == "!GetAtt":
		obj, attr, _ := strings.Cut(n.Value, ".")
		return map[string]any{"Fn::GetAtt": []any{obj, attr}}
	case isIntrinsic(n.Tag):
		return map[string]any{"Fn::" + n.Tag[1:]: n.Value}
	}
	switch n.Tag {
	case "!!int", "!!float":
		return json.Number(n.Value)
	case "!!null":
		return nil
	case "!!bool":
		return n.Value == "true"
	}
	return n.Value
}

// isIntrinsic tells a CloudFormation short form (!Sub) from YAML's own
// resolved tags (!!str).
func isIntrinsic(tag string) bool {
	return strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!")
}

var (
	devsEnv  = regexp.MustCompile(`\$\{env\('([A-Z0-9_]+)'(?:, '([^']*)')?\)\}`)
	devsVars = regexp.MustCompile(`\$\{vars\.([A-Za-z0-9_]+)\}`)
)

// renderDevs substitutes Serverless Devs variables the way `s` does
// (@serverless-devs/art-template's env()): ${env('X', 'd')} → $X when it is
// set and not empty, else d; ${env('X')} with X unset or empty is an error
// ("env('X') not found"); then ${vars.k} → vars[k], a value that is exactly
// ${vars.k} taking the variable whole, object included.
func renderDevs(t *testing.T, raw []byte, env map[string]string) map[string]any {
	doc, err := renderDevsErr(raw, withRequired(env))
	require.NoError(t, err)
	return doc
}

// withRequired adds a value for every Required variable (they have no
// default, so `s` stops without them) to env.
func withRequired(env map[string]string) map[string]string {
	out := map[string]string{}
	for _, f := range registry.All() {
		for _, v := range f.Env {
			if v.Required {
				out[v.Name] = "postgres://cloudcall@127.0.0.1:5432/cloudcall"
			}
		}
	}
	for k, v := range env {
		out[k] = v
	}
	return out
}

func renderDevsErr(raw []byte, env map[string]string) (map[string]any, error) {
	var missing []string
	s := devsEnv.ReplaceAllStringFunc(string(raw), func(m string) string {
		sub := devsEnv.FindStringSubmatch(m)
		if v := env[sub[1]]; v != "" {
			return v
		}
		if !strings.Contains(m, ",") {
			missing = append(missing, sub[1])
		}
		return sub[2]
	})
	if len(missing) > 0 {
		return nil, fmt.Errorf("env('%s') not found", strings.Join(missing, "', '"))
	}
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(s), &doc); err != nil {
		return nil, err
	}
	vars := doc["vars"].(map[string]any)
	var unknown []string
	var sub func(v any) any
	sub = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = sub(e)
			}
		case []any:
			for i, e := range x {
				x[i] = sub(e)
			}
		case string:
			if m := devsVars.FindStringSubmatch(x); m != nil && m[0] == x {
				if _, ok := vars[m[1]]; !ok {
					unknown = append(unknown, m[1])
				}
				return vars[m[1]]
			}
			return devsVars.ReplaceAllStringFunc(x, func(m string) string { return fmt.Sprint(vars[m[7:len(m)-1]]) })
		}
		return v
	}
	sub(doc["resources"])
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown vars %v", unknown)
	}
	return doc, nil
}

// fcPropsErrors validates each fc3 resource's props and returns the failures.
func fcPropsErrors(t *testing.T, schema *jsonschema.Schema, doc map[string]any) map[string]error {
	errs := map[string]error{}
	for name, r := range doc["resources"].(map[string]any) {
		res := r.(map[string]any)
		require.Equal(t, "fc3", res["component"])
		b, err := json.Marshal(res["props"])
		require.NoError(t, err)
		props, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		require.NoError(t, err)
		if err := schema.Validate(props); err != nil {
			errs[name] = err
		}
	}
	return errs
}

// samError validates a whole template, intrinsics in their long form.
func samError(t *testing.T, schema *jsonschema.Schema, raw []byte) error {
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal(raw, &n))
	b, err := json.Marshal(plain(&n))
	require.NoError(t, err)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	require.NoError(t, err)
	return schema.Validate(doc)
}

func TestDescriptorsValidateAgainstOfficialSchemas(t *testing.T) {
	dir := schemasDir(t)
	raw, err := os.ReadFile(filepath.Join(root(t), "s.yaml"))
	require.NoError(t, err)
	doc := renderDevs(t, raw, nil)
	require.Equal(t, "3.0.0", doc["edition"])
	require.Len(t, doc["resources"], len(registry.All()))
	fc3 := compile(t, filepath.Join(dir, "fc3-props.schema.json"))
	require.Empty(t, fcPropsErrors(t, fc3, doc))

	sam := compile(t, filepath.Join(dir, "sam.schema.json"))
	raw, err = os.ReadFile(filepath.Join(root(t), "template.yaml"))
	require.NoError(t, err)
	require.NoError(t, samError(t, sam, raw))
	iam, err := descriptor.SAM(registry.All(), descriptor.SAMOptions{IAM: true})
	require.NoError(t, err)
	require.NoError(t, samError(t, sam, iam), "the --aws-iam variant")

	// The validation bites: a wrong runtime and a misspelt SAM property fail.
	props := doc["resources"].(map[string]any)["quota-alert"].(map[string]any)["props"].(map[string]any)
	props["runtime"] = "go2"
	require.Contains(t, fcPropsErrors(t, fc3, doc), "quota-alert")
	require.Error(t, samError(t, sam, bytes.Replace(raw, []byte("MemorySize:"), []byte("MemorySise:"), 1)))
}

func TestDescriptorContents(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root(t), "s.yaml"))
	require.NoError(t, err)
	doc := renderDevs(t, raw, nil)
	require.Equal(t, "cn-hangzhou", doc["vars"].(map[string]any)["region"])
	var timers []map[string]any
	for name, r := range doc["resources"].(map[string]any) {
		props := r.(map[string]any)["props"].(map[string]any)
		require.Equal(t, "go1", props["runtime"])
		require.Equal(t, "main", props["handler"])
		require.Equal(t, "./dist/fc/"+name+".zip", props["code"])
		f, ok := registry.Lookup(name)
		require.True(t, ok, name)
		// CAMS takes its Alibaba Cloud credentials from the function's role
		// (FC passes its STS credentials per invocation): with no role in
		// s.yaml, only a long-lived AccessKey in plain variables worked.
		// Empty, the default, is no role; the other functions need none.
		if f.Vendor == "alicloud" {
			require.Equal(t, "", props["role"], name)
		} else {
			require.NotContains(t, props, "role", name)
		}
		for _, tr := range props["triggers"].([]any) {
			tr := tr.(map[string]any)
			if tr["triggerType"] == "timer" {
				timers = append(timers, tr["triggerConfig"].(map[string]any))
			} else {
				require.Equal(t, "anonymous", tr["triggerConfig"].(map[string]any)["authType"], name)
				require.NotEmpty(t, f.HTTPMethods, name)
			}
		}
	}
	require.Len(t, timers, 1, "quota-alert is the one scheduled function")
	withRole := renderDevs(t, raw, map[string]string{"CAMS_FC_ROLE_ARN": "acs:ram::123456789012:role/cloudcall-cams"})
	require.Equal(t, "acs:ram::123456789012:role/cloudcall-cams", withRole["resources"].(map[string]any)["cams-query-chatapp-bind-waba"].(map[string]any)["props"].(map[string]any)["role"])
	require.Equal(t, "CRON_TZ=Asia/Shanghai 0 0 * * * *", timers[0]["cronExpression"])

	// What FC delivers for that timer and what ScheduleV2 delivers are both
	// recognised by the runtime as a timer call with the payload as body.
	fcEvent, err := json.Marshal(map[string]any{"triggerTime": "2026-01-01T00:00:00Z", "triggerName": "quota-alert-hourly", "payload": timers[0]["payload"]})
	require.NoError(t, err)
	in, shape, err := runtime.Detect(fcEvent)
	require.NoError(t, err)
	require.Equal(t, runtime.ShapeFCTimer, shape)
	require.Equal(t, envelope.TriggerTimer, in.Trigger)
	require.JSONEq(t, "{}", string(in.Body))

	raw, err = os.ReadFile(filepath.Join(root(t), "template.yaml"))
	require.NoError(t, err)
	var tmpl struct {
		Globals   map[string]map[string]any `yaml:"Globals"`
		Resources map[string]struct {
			Type       string            `yaml:"Type"`
			Metadata   map[string]string `yaml:"Metadata"`
			Properties struct {
				FunctionName string `yaml:"FunctionName"`
				Events       map[string]struct {
					Type       string         `yaml:"Type"`
					Properties map[string]any `yaml:"Properties"`
				} `yaml:"Events"`
			} `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &tmpl))
	require.Equal(t, "provided.al2023", tmpl.Globals["Function"]["Runtime"])
	require.Equal(t, "bootstrap", tmpl.Globals["Function"]["Handler"])
	var inputs []string
	functions := 0
	for id, r := range tmpl.Resources {
		if r.Type != "AWS::Serverless::Function" {
			continue // log groups, alarms (operate_test.go)
		}
		functions++
		require.Equal(t, descriptor.LogicalID(r.Properties.FunctionName), id)
		require.Equal(t, "makefile", r.Metadata["BuildMethod"])
		for _, ev := range r.Properties.Events {
			switch ev.Type {
			case "HttpApi":
				require.Equal(t, "/"+r.Properties.FunctionName, ev.Properties["Path"])
			case "ScheduleV2":
				require.Equal(t, "cron(0 * * * ? *)", ev.Properties["ScheduleExpression"])
				require.Equal(t, "Asia/Shanghai", ev.Properties["ScheduleExpressionTimezone"])
				inputs = append(inputs, ev.Properties["Input"].(string))
			default:
				t.Fatalf("%s: unexpected event type %s", id, ev.Type)
			}
		}
	}
	require.Equal(t, len(registry.All()), functions)
	require.Len(t, inputs, 1)
	in, shape, err = runtime.Detect([]byte(inputs[0]))
	require.NoError(t, err)
	require.Equal(t, runtime.ShapeSchedule, shape)
	require.Equal(t, envelope.TriggerTimer, in.Trigger)
	require.JSONEq(t, "{}", string(in.Body))
}

// sam build runs `make build-<LogicalId>`: every logical id must resolve to
// the package command for that function.
func TestMakefileHasABuildTargetPerLogicalID(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	for _, f := range registry.All() {
		id := descriptor.LogicalID(f.Name)
		cmd := exec.Command("make", "-n", "build-"+id, "ARTIFACTS_DIR=/artifacts", "ARCH=arm64")
		cmd.Dir = root(t)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), "package --platform aws --logical-id "+id+" --arch arm64 --bootstrap-to /artifacts")
	}
}

// make deploy-fc refuses CLOUDCALL_ALLOW_ANONYMOUS left in the deployer's
// shell (s.yaml takes it from there) unless FC checks the callers: an
// outside tester deployed an open charge that way.
func TestDeployFCRefusesAnonymousTriggersFCDoesNotCheck(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	bin := t.TempDir()
	ran := filepath.Join(t.TempDir(), "ran")
	require.NoError(t, os.WriteFile(filepath.Join(bin, "s"), []byte("#!/bin/sh\necho \"$@\" > "+ran+"\n"), 0o755))
	for _, tc := range []struct {
		env    []string
		refuse bool
	}{
		{[]string{"CLOUDCALL_ALLOW_ANONYMOUS=true"}, true},
		{[]string{"CLOUDCALL_ALLOW_ANONYMOUS= TRUE"}, true},
		{[]string{"CLOUDCALL_ALLOW_ANONYMOUS=1", "FC_HTTP_AUTH_TYPE=anonymous"}, true},
		{[]string{"CLOUDCALL_ALLOW_ANONYMOUS=true", "FC_HTTP_AUTH_TYPE=function"}, false},
		{[]string{"CLOUDCALL_ALLOW_ANONYMOUS=false"}, false},
		// White space the functions trim (a CRLF .env file sourced into
		// the shell), and anything not plainly false: a day-one tester got
		// "true\r" past the check, and the functions read it as true.
		{[]string{"CLOUDCALL_ALLOW_ANONYMOUS=true\r"}, true},
		{[]string{"CLOUDCALL_ALLOW_ANONYMOUS=\vyes"}, true},
		{[]string{"CLOUDCALL_ALLOW_ANONYMOUS=\u00a0true"}, true},
		{[]string{"CLOUDCALL_ALLOW_ANONYMOUS=enabled"}, true},
		{[]string{"CLOUDCALL_ALLOW_ANONYMOUS= Off\r"}, false},
		{nil, false},
	} {
		_ = os.Remove(ran)
		cmd := exec.Command("make", "-s", "deploy-fc")
		cmd.Dir = root(t)
		cmd.Env = append([]string{"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, tc.env...)
		out, err := cmd.CombinedOutput()
		_, statErr := os.Stat(ran)
		if tc.refuse {
			require.Error(t, err, "%v: %s", tc.env, out)
			require.Regexp(t, "the HTTP triggers (would|then) run(ning)? unsigned calls", string(out), tc.env)
			require.True(t, os.IsNotExist(statErr), "%v: s deploy ran", tc.env)
		} else {
			require.NoError(t, err, "%v: %s", tc.env, out)
			require.NoError(t, statErr, "%v: s deploy did not run", tc.env)
		}
	}
}

func TestPackagesAreExactAndReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	ctx := context.Background()
	for _, tg := range []pack.Target{{Function: "logistics-get-quota", Platform: "fc", Arch: "amd64"}, {Function: "logistics-get-quota", Platform: "aws", Arch: "amd64"}} {
		var sums []string
		for i := 0; i < 2; i++ {
			if i == 1 {
				// A builder's shell settings that change the code Go
				// emits do not reach the package (an outside tester).
				t.Setenv("GOAMD64", "v3")
				t.Setenv("GOEXPERIMENT", "loopvar")
				t.Setenv("GOFIPS140", "latest")
			}
			path, sum, size, err := pack.Package(ctx, root(t), t.TempDir(), tg)
			require.NoError(t, err)
			require.Less(t, size, int64(20<<20))
			sums = append(sums, sum)
			z, err := zip.OpenReader(path)
			require.NoError(t, err)
			require.Len(t, z.File, 1, "the zip holds exactly the executable")
			require.Equal(t, tg.Executable(), z.File[0].Name)
			require.Equal(t, os.FileMode(0o755), z.File[0].Mode().Perm())
			require.True(t, z.File[0].Mode().IsRegular())
			requireLinuxAMD64(t, z.File[0])
			require.NoError(t, z.Close())
		}
		require.Equal(t, sums[0], sums[1], "two builds of %s give the same bytes", tg.ZipName())
	}
}

// requireLinuxAMD64 checks the zipped executable is a static linux/amd64 ELF.
func requireLinuxAMD64(t *testing.T, zf *zip.File) {
	r, err := zf.Open()
	require.NoError(t, err)
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	e, err := elf.NewFile(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, elf.EM_X86_64, e.Machine)
	require.Equal(t, elf.ELFOSABI_NONE, e.OSABI)
	require.Nil(t, e.Section(".interp"), "static: no dynamic loader (CGO off)")
}

// The charge's money store has no default in either descriptor: a deploy
// without it fails at deploy time (SAM: a parameter without Default, with an
// AllowedPattern; Serverless Devs: ${env('...')} without a default, which
// stops `s deploy` with "env('CLOUDCALL_IDEMPOTENCY_STORE') not found").
func TestChargeStoreCannotDeployWithoutADurableStore(t *testing.T) {
	sam, err := descriptor.SAM(registry.All())
	require.NoError(t, err)
	var tpl struct {
		Parameters map[string]map[string]any `yaml:"Parameters"`
		Resources  map[string]struct {
			Properties struct {
				Environment struct {
					Variables map[string]any `yaml:"Variables"`
				} `yaml:"Environment"`
			} `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	require.NoError(t, yaml.Unmarshal(sam, &tpl))
	p := tpl.Parameters["CloudcallIdempotencyStore"]
	require.NotNil(t, p)
	require.NotContains(t, p, "Default")
	require.Equal(t, true, p["NoEcho"])
	pattern := regexp.MustCompile(p["AllowedPattern"].(string))
	for _, ok := range []string{"postgres://u:p@rds.example:5432/money?sslmode=require", "mysql://u:p@polardb.example:3306/money", "rediss://:p@r-bp1.redis.rds.aliyuncs.com:6380/0"} {
		require.True(t, pattern.MatchString(ok), ok)
	}
	for _, bad := range []string{"", "memory", "sqlite:///tmp/x", "http://x"} {
		require.False(t, pattern.MatchString(bad), bad)
	}
	require.Contains(t, p["ConstraintDescription"], "postgres://")

	fc, err := descriptor.FC(registry.All())
	require.NoError(t, err)
	var s struct {
		Resources map[string]struct {
			Props struct {
				Env map[string]string `yaml:"environmentVariables"`
			} `yaml:"props"`
		} `yaml:"resources"`
	}
	require.NoError(t, yaml.Unmarshal(fc, &s))
	charge := s.Resources["top-launch-extra-charge"].Props.Env
	require.Equal(t, "${env('CLOUDCALL_IDEMPOTENCY_STORE')}", charge["CLOUDCALL_IDEMPOTENCY_STORE"])
	require.Equal(t, "${env('CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE', 'verify')}", charge["CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE"])
	for name, res := range s.Resources {
		if name != "top-launch-extra-charge" {
			require.NotContains(t, res.Props.Env, "CLOUDCALL_IDEMPOTENCY_STORE", "only the charge moves money")
		}
	}
}
