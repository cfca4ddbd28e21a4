package descriptor_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/cloudcall/cloudcall/shared/descriptor"
	"github.com/cloudcall/cloudcall/shared/metrics"
	"github.com/cloudcall/cloudcall/shared/registry"
)

func readRoot(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root(t), name))
	require.NoError(t, err)
	return raw
}

// samDoc is template.yaml as plain JSON values, intrinsics in long form.
func samDoc(t *testing.T) map[string]any {
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal(readRoot(t, "template.yaml"), &n))
	return plain(&n).(map[string]any)
}

// resolveCFN evaluates the intrinsics the template uses for the given
// parameter values (defaults otherwise), the way CloudFormation does before
// it creates resources: Ref, Fn::If, Fn::Not, Fn::Equals, Fn::Join.
// AWS::NoValue removes the property. Fn::Sub and Fn::GetAtt stay as they are
// (they name resources that exist only after creation).
func resolveCFN(t *testing.T, doc map[string]any, params map[string]any) map[string]any {
	t.Helper()
	values := map[string]any{}
	for name, p := range doc["Parameters"].(map[string]any) {
		def := p.(map[string]any)["Default"]
		if p.(map[string]any)["Type"] == "CommaDelimitedList" {
			def = strings.Split(fmt.Sprint(def), ",")
		}
		values[name] = def
	}
	for k, v := range params {
		values[k] = v
	}
	noValue := &struct{}{}
	conds := map[string]bool{}
	var eval func(v any) any
	eval = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			if len(x) == 1 {
				for k, arg := range x {
					switch k {
					case "Ref":
						if arg == "AWS::NoValue" {
							return noValue
						}
						if pv, ok := values[arg.(string)]; ok {
							return pv
						}
						return x // a resource
					case "Fn::If":
						a := arg.([]any)
						if conds[a[0].(string)] {
							return eval(a[1])
						}
						return eval(a[2])
					case "Fn::Not":
						return !eval(arg.([]any)[0]).(bool)
					case "Fn::Equals":
						a := arg.([]any)
						return fmt.Sprint(eval(a[0])) == fmt.Sprint(eval(a[1]))
					case "Fn::Join":
						a := arg.([]any)
						var parts []string
						for _, p := range eval(a[1]).([]string) {
							parts = append(parts, p)
						}
						return strings.Join(parts, a[0].(string))
					}
				}
			}
			out := map[string]any{}
			for k, e := range x {
				if r := eval(e); r != noValue {
					out[k] = r
				}
			}
			return out
		case []any:
			out := []any{}
			for _, e := range x {
				out = append(out, eval(e))
			}
			return out
		}
		return v
	}
	for name, c := range doc["Conditions"].(map[string]any) {
		conds[name] = eval(c).(bool)
	}
	out := eval(doc).(map[string]any)
	// A resource whose condition is false is not created.
	for id, r := range out["Resources"].(map[string]any) {
		if c, ok := r.(map[string]any)["Condition"].(string); ok && !conds[c] {
			delete(out["Resources"].(map[string]any), id)
		}
	}
	return out
}

func toSchemaValue(t *testing.T, v any) any {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	require.NoError(t, err)
	return out
}

func functionsOf(doc map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range doc["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if res["Type"] == "AWS::Serverless::Function" {
			out[id] = res["Properties"].(map[string]any)
		}
	}
	return out
}

// TestVPCVariants: without VPC settings both descriptors put no function in a
// VPC; with them every function gets the VPC, and all four documents (s.yaml,
// s.vpc.yaml, template.yaml resolved without and with subnets) validate
// against the official schemas.
func TestVPCVariants(t *testing.T) {
	dir := schemasDir(t)
	fc3 := compile(t, filepath.Join(dir, "fc3-props.schema.json"))
	sam := compile(t, filepath.Join(dir, "sam.schema.json"))

	// FC without VPC: no vpcConfig at all, as before.
	plainFC := renderDevs(t, readRoot(t, "s.yaml"), nil)
	require.Empty(t, fcPropsErrors(t, fc3, plainFC))
	require.NotContains(t, plainFC["vars"], "vpcConfig")
	for name, r := range plainFC["resources"].(map[string]any) {
		require.NotContains(t, r.(map[string]any)["props"], "vpcConfig", name)
	}
	// s.vpc.yaml without the VPC settings stops at once, as `s` would.
	_, err := renderDevsErr(readRoot(t, "s.vpc.yaml"), withRequired(nil))
	require.EqualError(t, err, "env('FC_VPC_ID', 'FC_VSWITCH_ID', 'FC_SECURITY_GROUP_ID') not found")
	// FC with VPC: the same file plus vpcConfig, from the environment.
	env := map[string]string{"FC_VPC_ID": "vpc-bp1test", "FC_VSWITCH_ID": "vsw-bp1test", "FC_SECURITY_GROUP_ID": "sg-bp1test"}
	vpcFC := renderDevs(t, readRoot(t, "s.vpc.yaml"), env)
	require.Empty(t, fcPropsErrors(t, fc3, vpcFC))
	require.Len(t, vpcFC["resources"], len(registry.All()))
	for name, r := range vpcFC["resources"].(map[string]any) {
		require.Equal(t, map[string]any{"vpcId": "vpc-bp1test", "vSwitchIds": []any{"vsw-bp1test"}, "securityGroupId": "sg-bp1test"},
			r.(map[string]any)["props"].(map[string]any)["vpcConfig"], name)
	}
	// Nothing else differs: dropping the VPC lines gives s.yaml.
	var kept []string
	for _, l := range strings.Split(string(readRoot(t, "s.vpc.yaml")), "\n") {
		if strings.Contains(l, "vpcConfig") || strings.Contains(l, "FC_VPC_ID") || strings.Contains(l, "FC_VSWITCH_ID") ||
			strings.Contains(l, "FC_SECURITY_GROUP_ID") || strings.TrimSpace(l) == "vSwitchIds:" || strings.HasPrefix(l, "# The VPC variant") {
			continue
		}
		kept = append(kept, l)
	}
	require.Equal(t, string(readRoot(t, "s.yaml")), strings.Join(kept, "\n"))
	// The validation bites: a vpcConfig without its security group fails.
	props := vpcFC["resources"].(map[string]any)["quota-alert"].(map[string]any)["props"].(map[string]any)
	delete(props["vpcConfig"].(map[string]any), "securityGroupId")
	require.Contains(t, fcPropsErrors(t, fc3, vpcFC), "quota-alert")

	// Lambda without VPC parameters: VpcConfig disappears (AWS::NoValue).
	doc := samDoc(t)
	none := resolveCFN(t, doc, nil)
	require.NoError(t, sam.Validate(toSchemaValue(t, none)))
	for id, p := range functionsOf(none) {
		require.NotContains(t, p, "VpcConfig", id)
	}
	// With subnets and security groups: every function is in the VPC.
	subnets := []string{"subnet-0a", "subnet-0b"}
	groups := []string{"sg-0c"}
	in := resolveCFN(t, doc, map[string]any{"VpcSubnetIds": subnets, "VpcSecurityGroupIds": groups})
	require.NoError(t, sam.Validate(toSchemaValue(t, in)))
	fns := functionsOf(in)
	require.Len(t, fns, len(registry.All()))
	for id, p := range fns {
		require.Equal(t, map[string]any{"SubnetIds": subnets, "SecurityGroupIds": groups}, p["VpcConfig"], id)
	}
}

// TestLogsWhereOperatorsLook: FC functions ship logs to SLS (logConfig auto,
// schema-valid); each Lambda function writes to its own log group, created by
// the stack with the retention parameter.
func TestLogsWhereOperatorsLook(t *testing.T) {
	fc := renderDevs(t, readRoot(t, "s.yaml"), nil)
	for name, r := range fc["resources"].(map[string]any) {
		require.Equal(t, "auto", r.(map[string]any)["props"].(map[string]any)["logConfig"], name)
	}
	doc := samDoc(t)
	retention := doc["Parameters"].(map[string]any)["LogRetentionDays"].(map[string]any)
	require.Equal(t, "Number", retention["Type"])
	require.Equal(t, json.Number("30"), retention["Default"])
	require.Contains(t, retention["AllowedValues"], json.Number("30"))
	res := doc["Resources"].(map[string]any)
	for id, p := range functionsOf(doc) {
		group := p["LoggingConfig"].(map[string]any)["LogGroup"].(map[string]any)["Ref"].(string)
		require.Equal(t, id+"LogGroup", group)
		lg := res[group].(map[string]any)
		require.Equal(t, "AWS::Logs::LogGroup", lg["Type"])
		require.Equal(t, map[string]any{"LogGroupName": "/aws/lambda/" + p["FunctionName"].(string),
			"RetentionInDays": map[string]any{"Ref": "LogRetentionDays"}}, lg["Properties"])
	}
}

// TestTemplateOutputs: a deploy prints each HTTP API URL and each function ARN.
func TestTemplateOutputs(t *testing.T) {
	doc := samDoc(t)
	outputs := doc["Outputs"].(map[string]any)
	urls := 0
	for _, f := range registry.All() {
		id := descriptor.LogicalID(f.Name)
		require.Equal(t, map[string]any{"Fn::GetAtt": []any{id, "Arn"}}, outputs[id+"Arn"].(map[string]any)["Value"], f.Name)
		if len(f.HTTPMethods) == 0 {
			require.NotContains(t, outputs, id+"Url", "%s has no HTTP trigger", f.Name)
			continue
		}
		urls++
		sub := outputs[id+"Url"].(map[string]any)["Value"].(map[string]any)["Fn::Sub"].(string)
		require.Equal(t, "https://${ServerlessHttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"+f.Name, sub)
		// The URL's path is the route the function's HttpApi event serves.
		events := functionsOf(doc)[id]["Events"].(map[string]any)
		require.Equal(t, "/"+f.Name, events["HttpPost"].(map[string]any)["Properties"].(map[string]any)["Path"])
	}
	require.NotZero(t, urls)
	require.Len(t, outputs, len(registry.All())+urls, "an Arn per function and a Url per HTTP trigger, nothing else")
}

// TestChargeAlarms: with an SNS topic the stack alarms on the charge's fault
// rate over 1% and on any -1304, from the metrics the EMF records carry, and
// on the platform's own Errors (a killed process writes no record); without
// one there are no alarms.
func TestChargeAlarms(t *testing.T) {
	dir := schemasDir(t)
	sam := compile(t, filepath.Join(dir, "sam.schema.json"))
	doc := samDoc(t)
	alarmsOf := func(d map[string]any) map[string]map[string]any {
		out := map[string]map[string]any{}
		for id, r := range d["Resources"].(map[string]any) {
			if r.(map[string]any)["Type"] == "AWS::CloudWatch::Alarm" {
				out[id] = r.(map[string]any)["Properties"].(map[string]any)
			}
		}
		return out
	}
	require.Empty(t, alarmsOf(resolveCFN(t, doc, nil)), "no topic, no alarms")

	topic := "arn:aws:sns:us-east-1:123456789012:oncall"
	with := resolveCFN(t, doc, map[string]any{"AlarmTopicArn": topic})
	require.NoError(t, sam.Validate(toSchemaValue(t, with)))
	alarms := alarmsOf(with)
	var money []string
	for _, f := range registry.All() {
		if f.MovesMoney {
			money = append(money, f.Name)
		}
	}
	require.Equal(t, []string{"top-launch-extra-charge"}, money)
	require.Len(t, alarms, 3)
	// A killed process writes no EMF record: the platform's Errors metric
	// is the one that sees a charge cut by a timeout or out of memory.
	crashed := alarms["TopLaunchExtraChargeFunctionPlatformErrorsAlarm"]
	require.Equal(t, "AWS/Lambda", crashed["Namespace"])
	require.Equal(t, "Errors", crashed["MetricName"])
	require.Equal(t, []any{map[string]any{"Name": "FunctionName", "Value": map[string]any{"Ref": "TopLaunchExtraChargeFunction"}}}, crashed["Dimensions"])
	require.Equal(t, json.Number("1"), crashed["Threshold"])
	require.Equal(t, []any{topic}, crashed["AlarmActions"])
	dim := []any{map[string]any{"Name": metrics.DimensionFunction, "Value": "top-launch-extra-charge"}}

	rate := alarms["TopLaunchExtraChargeFunctionErrorRateAlarm"]
	require.Equal(t, []any{topic}, rate["AlarmActions"])
	require.Equal(t, "GreaterThanThreshold", rate["ComparisonOperator"])
	require.Equal(t, json.Number("1"), rate["Threshold"])
	queries := rate["Metrics"].([]any)
	require.Len(t, queries, 3)
	// faults, not errors: an unsigned caller's -1101 is an error, and 20
	// of them paged the owner (an outside tester).
	for i, name := range []string{metrics.MetricFaults, metrics.MetricInvocations} {
		m := queries[i].(map[string]any)["MetricStat"].(map[string]any)["Metric"].(map[string]any)
		require.Equal(t, name, m["MetricName"])
		require.Equal(t, metrics.DefaultNamespace, m["Namespace"], "the namespace parameter's default")
		require.Equal(t, dim, m["Dimensions"])
	}
	require.Equal(t, "IF(i >= 20, 100 * e / i, 0)", queries[2].(map[string]any)["Expression"])

	unknown := alarms["TopLaunchExtraChargeFunctionOutcomeUnknownAlarm"]
	require.Equal(t, metrics.MetricOutcomeUnknown, unknown["MetricName"])
	require.Equal(t, dim, unknown["Dimensions"])
	require.Equal(t, "GreaterThanOrEqualToThreshold", unknown["ComparisonOperator"])
	require.Equal(t, json.Number("1"), unknown["Threshold"])
	require.Equal(t, json.Number("60"), unknown["Period"])
}

// TestSecretsStaySecret: secrets are NoEcho parameters, and in s.yaml
// ${env('NAME', <empty>)}: no value is ever written, and an unset secret does not
// stop the deploy (the function answers -1601 naming it instead); other
// variables carry their registry default.
func TestSecretsStaySecret(t *testing.T) {
	params := samDoc(t)["Parameters"].(map[string]any)
	fcRaw := string(readRoot(t, "s.yaml"))
	secrets := 0
	required := map[string]bool{}
	for _, f := range registry.All() {
		for _, v := range f.Env {
			p := params[samParamName(v.Name)].(map[string]any)
			if v.Required {
				// No default anywhere: the deploy stops without it.
				require.NotContains(t, p, "Default", v.Name)
				require.Contains(t, fcRaw, fmt.Sprintf(`%s: "${env('%s')}"`, v.Name, v.Name))
				required[v.Name] = true
				if v.Secret {
					require.Equal(t, true, p["NoEcho"], v.Name)
				}
				continue
			}
			if v.Secret {
				secrets++
				require.Empty(t, v.Default, "%s: a secret has no default in the registry", v.Name)
				require.Equal(t, true, p["NoEcho"], v.Name)
				require.Equal(t, "", p["Default"], v.Name)
				require.Contains(t, fcRaw, fmt.Sprintf(`%s: "${env('%s', '')}"`, v.Name, v.Name))
				continue
			}
			require.NotContains(t, p, "NoEcho", v.Name)
			require.Equal(t, v.Default, p["Default"], v.Name)
			if !v.ReadOn(registry.FC) {
				require.NotContains(t, fcRaw, v.Name+":", "s.yaml declares %s, which FC does not read", v.Name)
				continue
			}
			require.Contains(t, fcRaw, fmt.Sprintf(`%s: "${env('%s', '%s')}"`, v.Name, v.Name, v.Default))
		}
	}
	require.Greater(t, secrets, 10)
	// Every other function variable has a default in s.yaml: only the
	// Required ones can stop a deploy.
	for _, m := range regexp.MustCompile(`\$\{env\('([A-Z0-9_]+)'\)\}`).FindAllStringSubmatch(fcRaw, -1) {
		require.True(t, required[m[1]], "%s has no default in s.yaml", m[1])
	}
}

func samParamName(env string) string {
	var b strings.Builder
	for _, p := range strings.Split(strings.ToLower(env), "_") {
		b.WriteString(strings.ToUpper(p[:1]) + p[1:])
	}
	return b.String()
}
