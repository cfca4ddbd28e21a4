package descriptor_test

import (
	"fmt"
	"go/ast"
	"go/constant"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/tools/go/packages"
	"gopkg.in/yaml.v3"

	"github.com/cloudcall/cloudcall/shared/registry"
)

const (
	modulePath = "github.com/cloudcall/cloudcall"
	configPkg  = modulePath + "/shared/config"
	runtimePkg = modulePath + "/shared/runtime"
)

// descriptorPlatform maps a runtime.Platform value to the descriptor that
// deploys it; a plain HTTP server (local use) is deployed by none.
func descriptorPlatform(p string) string {
	switch p {
	case "fc", "fc-custom":
		return registry.FC
	case "lambda":
		return registry.AWS
	}
	return "local"
}

// envLookups are the methods of *config.Env that read a variable named by
// their first argument (RequireSecrets: by every argument).
var envLookups = map[string]bool{"Get": true, "Secret": true, "SecretOrWord": true, "Bool": true, "Int": true, "Duration": true, "RequireSecrets": true}

// secretLookups read a value that may be a credential.
var secretLookups = map[string]bool{"Secret": true, "SecretOrWord": true, "RequireSecrets": true}

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$`)

// envRead is one variable read by the configuration code.
type envRead struct {
	Name    string
	Default string // the code's default when it is a constant string (Get only)
	HasDef  bool
	Pos     string
	// Secret: read with Secret, SecretOrWord or RequireSecrets, so the value
	// may be a credential (redacted in logs; NoEcho in template.yaml).
	Secret bool
	// On is the descriptor platforms the read happens on (platformGuard);
	// nil: every platform.
	On []string
	// Unguarded: the enclosing function names a runtime.Platform constant
	// in a way platformGuard does not read, so where it reads is unknown.
	Unguarded bool
}

// platformConst is the value of a runtime.Platform constant an expression
// names, if it names one.
func platformConst(info *types.Info, e ast.Expr) (string, bool) {
	tv, ok := info.Types[e]
	if !ok || tv.Value == nil || tv.Value.Kind() != constant.String {
		return "", false
	}
	named, ok := tv.Type.(*types.Named)
	if !ok || named.Obj().Pkg() == nil || named.Obj().Pkg().Path() != runtimePkg || named.Obj().Name() != "Platform" {
		return "", false
	}
	return constant.StringVal(tv.Value), true
}

// platformGuard reads the one form of platform gating the scan knows: a
// statement of the function's body `if ...; p != runtime.PlatformX { return }`
// confines the function's reads to X's descriptor platform. other says
// whether the function names a Platform constant outside such a guard, so a
// gate of another form is caught rather than read as "every platform".
func platformGuard(info *types.Info, fd *ast.FuncDecl) (on []string, other bool) {
	if fd == nil || fd.Body == nil {
		return nil, false
	}
	guards := map[ast.Node]bool{}
	for _, st := range fd.Body.List {
		is, ok := st.(*ast.IfStmt)
		if !ok || is.Else != nil || len(is.Body.List) != 1 {
			continue
		}
		if _, ok := is.Body.List[0].(*ast.ReturnStmt); !ok {
			continue
		}
		be, ok := is.Cond.(*ast.BinaryExpr)
		if !ok || be.Op != token.NEQ {
			continue
		}
		if v, ok := platformConst(info, be.Y); ok {
			guards[be.Y] = true
			on = append(on, descriptorPlatform(v))
		}
	}
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		if guards[n] {
			return false
		}
		if e, ok := n.(ast.Expr); ok {
			if _, ok := platformConst(info, e); ok {
				other = true
			}
		}
		return true
	})
	return on, other
}

// codeReads loads every package of the module with types and returns, per
// package path, the variables its non-test code reads through config.Env,
// plus the module-internal imports of each package. A lookup whose name is
// not a constant is resolved to the env-shaped string literals of its
// enclosing function; one with none is an error (the list must stay
// derivable). A direct os.Getenv / os.LookupEnv in a function's packages is
// an error too: every variable goes through the config package.
func codeReads(t *testing.T) (reads map[string][]envRead, imports map[string][]string, problems []string) {
	t.Helper()
	cfg := &packages.Config{
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedImports | packages.NeedSyntax |
			packages.NeedTypes | packages.NeedTypesInfo,
		Dir: root(t),
	}
	pkgs, err := packages.Load(cfg, "./...")
	require.NoError(t, err)
	reads, imports = map[string][]envRead{}, map[string][]string{}
	for _, p := range pkgs {
		require.Empty(t, p.Errors, "loading %s", p.PkgPath)
		for path := range p.Imports {
			if strings.HasPrefix(path, modulePath+"/") {
				imports[p.PkgPath] = append(imports[p.PkgPath], path)
			}
		}
		if p.PkgPath == configPkg {
			continue // the primitives themselves
		}
		for _, f := range p.Syntax {
			pos := p.Fset.Position(f.Pos())
			if strings.HasSuffix(pos.Filename, "_test.go") {
				continue
			}
			var enclosing *ast.FuncDecl
			var on []string
			var unguarded bool
			ast.Inspect(f, func(n ast.Node) bool {
				if fd, ok := n.(*ast.FuncDecl); ok {
					enclosing = fd
					on, unguarded = platformGuard(p.TypesInfo, fd)
				}
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				fn, ok := p.TypesInfo.Uses[sel.Sel].(*types.Func)
				if !ok || fn.Pkg() == nil {
					return true
				}
				where := p.Fset.Position(call.Pos()).String()
				if fn.Pkg().Path() == "os" && (fn.Name() == "Getenv" || fn.Name() == "LookupEnv") {
					reads[p.PkgPath] = append(reads[p.PkgPath], envRead{Name: "os." + fn.Name(), Pos: where})
					return true
				}
				if fn.Pkg().Path() != configPkg || !envLookups[fn.Name()] || fn.Type().(*types.Signature).Recv() == nil {
					return true
				}
				args := call.Args
				if fn.Name() != "RequireSecrets" {
					args = args[:1]
				}
				for _, a := range args {
					if tv := p.TypesInfo.Types[a]; tv.Value != nil && tv.Value.Kind() == constant.String {
						r := envRead{Name: constant.StringVal(tv.Value), Pos: where, Secret: secretLookups[fn.Name()], On: on, Unguarded: unguarded}
						if fn.Name() == "Get" {
							if dv := p.TypesInfo.Types[call.Args[1]]; dv.Value != nil && dv.Value.Kind() == constant.String {
								r.Default, r.HasDef = constant.StringVal(dv.Value), true
							}
						}
						reads[p.PkgPath] = append(reads[p.PkgPath], r)
						continue
					}
					names := envLiterals(enclosing)
					if len(names) == 0 {
						problems = append(problems, fmt.Sprintf("%s: %s reads a variable whose name cannot be derived (use a constant or a literal list in the same function)", where, fn.Name()))
					}
					for _, nm := range names {
						// Not marked Secret: which of the function's literals
						// the secret lookup reads cannot be told apart here.
						reads[p.PkgPath] = append(reads[p.PkgPath], envRead{Name: nm, Pos: where, On: on, Unguarded: unguarded})
					}
				}
				return true
			})
		}
	}
	return reads, imports, problems
}

// envLiterals are the variable-shaped string literals of a function.
func envLiterals(fd *ast.FuncDecl) []string {
	if fd == nil {
		return nil
	}
	var out []string
	ast.Inspect(fd, func(n ast.Node) bool {
		if bl, ok := n.(*ast.BasicLit); ok && bl.Kind == token.STRING {
			if s := strings.Trim(bl.Value, "`\""); envName.MatchString(s) {
				out = append(out, s)
			}
		}
		return true
	})
	return out
}

// functionReads closes each function's package over its module-internal
// imports and returns the variables its binary reads.
func functionReads(reads map[string][]envRead, imports map[string][]string, fn string) map[string]envRead {
	out := map[string]envRead{}
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		for _, r := range reads[p] {
			prev, ok := out[r.Name]
			if !ok {
				out[r.Name] = r
				continue
			}
			// Read at several places: on the union of their platforms.
			if prev.On != nil && r.On == nil {
				prev.On = nil
			} else if prev.On != nil {
				prev.On = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(prev.On), r.On...))))
			}
			prev.Unguarded = prev.Unguarded || r.Unguarded
			if r.Secret && !prev.Secret {
				prev.Secret, prev.Pos = true, r.Pos // any secret read makes it a secret
			}
			out[r.Name] = prev
		}
		for _, q := range imports[p] {
			walk(q)
		}
	}
	walk(modulePath + "/functions/" + fn)
	return out
}

// descriptorEnv returns, per function, the variable names s.yaml and
// template.yaml give it.
func descriptorEnv(t *testing.T) (fc, sam map[string][]string) {
	fc, sam = fcFileEnv(t, "s.yaml"), map[string][]string{}
	var tm struct {
		Resources map[string]struct {
			Type       string `yaml:"Type"`
			Properties struct {
				FunctionName string `yaml:"FunctionName"`
				Environment  struct {
					Variables yaml.Node `yaml:"Variables"`
				} `yaml:"Environment"`
			} `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	raw, err := os.ReadFile(filepath.Join(root(t), "template.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &tm))
	for _, r := range tm.Resources {
		if r.Type != "AWS::Serverless::Function" {
			continue
		}
		v := r.Properties.Environment.Variables
		for i := 0; i < len(v.Content); i += 2 {
			sam[r.Properties.FunctionName] = append(sam[r.Properties.FunctionName], v.Content[i].Value)
		}
	}
	return fc, sam
}

// fcFileEnv returns, per function, the variable names a Serverless Devs
// descriptor (s.yaml, s.vpc.yaml) gives it.
func fcFileEnv(t *testing.T, file string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	var s struct {
		Resources map[string]struct {
			Props struct {
				Env yaml.Node `yaml:"environmentVariables"`
			} `yaml:"props"`
		} `yaml:"resources"`
	}
	raw, err := os.ReadFile(filepath.Join(root(t), file))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &s))
	for name, r := range s.Resources {
		for i := 0; i < len(r.Props.Env.Content); i += 2 {
			out[name] = append(out[name], r.Props.Env.Content[i].Value)
		}
	}
	return out
}

// readOn says whether the read happens on the descriptor platform.
func (r envRead) readOn(platform string) bool { return r.On == nil || slices.Contains(r.On, platform) }

// unreadOn lists, as "function VARIABLE", the variables a descriptor of the
// platform declares (declared: per function) that the function's code does
// not read on that platform, nor a library named in the registry (ReadBy).
func unreadOn(reads map[string][]envRead, imports map[string][]string, platform string, declared map[string][]string) []string {
	var out []string
	for _, f := range registry.All() {
		byLib := map[string]bool{}
		for _, v := range f.Env {
			byLib[v.Name] = v.ReadBy != ""
		}
		got := functionReads(reads, imports, f.Name)
		for _, name := range declared[f.Name] {
			if r, ok := got[name]; !(ok && r.readOn(platform)) && !byLib[name] {
				out = append(out, f.Name+" "+name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// missingFromRegistry lists the variables a function reads that its registry
// entry lacks (platform-provided ones aside).
func missingFromRegistry(reads map[string][]envRead, imports map[string][]string, fns []registry.Function) []string {
	platform := map[string]bool{}
	for _, v := range registry.PlatformVars() {
		platform[v.Name] = true
	}
	var out []string
	for _, f := range fns {
		declared := map[string]bool{}
		for _, v := range f.Env {
			declared[v.Name] = true
		}
		for name := range functionReads(reads, imports, f.Name) {
			if !platform[name] && !declared[name] {
				out = append(out, f.Name+" "+name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestEveryVariableTheCodeReadsIsDeployable derives, from the configuration
// code itself, the variables each function binary reads, and requires each to
// be in that function's registry entry and so in the descriptors of the
// platforms it is read on, unless the platform sets it
// (registry.PlatformVars). The other way round, every variable a platform's
// descriptor sets is read by the code on that platform (or by a named
// library).
func TestEveryVariableTheCodeReadsIsDeployable(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks the module")
	}
	reads, imports, problems := codeReads(t)
	require.Empty(t, problems)
	require.Empty(t, missingFromRegistry(reads, imports, registry.All()))
	platform := map[string]bool{}
	for _, v := range registry.PlatformVars() {
		platform[v.Name] = true
	}
	fcEnv, samEnv := descriptorEnv(t)
	vpcEnv := fcFileEnv(t, "s.vpc.yaml")
	total := 0
	for _, f := range registry.All() {
		got := functionReads(reads, imports, f.Name)
		require.NotEmpty(t, got, "%s: no configuration read found; is the scan looking at the right packages?", f.Name)
		declared := map[string]registry.Var{}
		for _, v := range f.Env {
			declared[v.Name] = v
		}
		for name, r := range got {
			require.False(t, strings.HasPrefix(name, "os."), "%s: %s calls %s: read variables through shared/config so they are listed and redacted", f.Name, r.Pos, name)
			if platform[name] {
				continue
			}
			v, ok := declared[name]
			require.True(t, ok, "%s reads %s (%s) but the registry does not list it: add it to shared/registry and run `make gen`", f.Name, name, r.Pos)
			// A value the code reads as a possible credential (a Redis URL
			// with a password) must be NoEcho in template.yaml and never
			// written into s.yaml: the registry's Secret says both.
			require.True(t, !r.Secret || v.Secret, "%s reads %s as a secret (%s) but the registry does not mark it Secret: template.yaml would echo it", f.Name, name, r.Pos)
			require.False(t, r.Unguarded, "%s: %s reads %s in a function that branches on runtime.Platform in a form the scan does not read: "+
				"gate it with `if ...; p != runtime.PlatformX { return }` so the descriptors can follow", f.Name, r.Pos, name)
			if r.HasDef && r.Default != "" {
				require.Equal(t, r.Default, v.Default, "%s: the registry's default for %s differs from the code's (%s)", f.Name, name, r.Pos)
			}
			for _, p := range []string{registry.FC, registry.AWS} {
				require.Equal(t, r.readOn(p), v.ReadOn(p), "%s: the code reads %s on %s: %v (%s), the registry says %v (OnlyOn)", f.Name, name, p, r.readOn(p), r.Pos, v.ReadOn(p))
			}
			if r.readOn(registry.FC) {
				require.Contains(t, fcEnv[f.Name], name, "s.yaml: %s lacks %s", f.Name, name)
			}
			if r.readOn(registry.AWS) {
				require.Contains(t, samEnv[f.Name], name, "template.yaml: %s lacks %s", f.Name, name)
			}
			total++
		}
		for _, v := range f.Env {
			_, read := got[v.Name]
			require.True(t, read || v.ReadBy != "", "%s: the registry lists %s but no code of the function reads it", f.Name, v.Name)
		}
		require.ElementsMatch(t, names(f.EnvOn(registry.FC)), fcEnv[f.Name], "s.yaml %s", f.Name)
		require.ElementsMatch(t, names(f.EnvOn(registry.FC)), vpcEnv[f.Name], "s.vpc.yaml %s", f.Name)
		require.ElementsMatch(t, names(f.EnvOn(registry.AWS)), samEnv[f.Name], "template.yaml %s", f.Name)
	}
	t.Logf("%d (function, variable) reads derived from the code, each in the descriptors of the platforms it is read on", total)

	// The reverse, per platform: every variable a descriptor declares is
	// read on that platform (an FC deployer was offered
	// CLOUDCALL_METRICS_NAMESPACE, which only Lambda reads).
	require.Empty(t, unreadOn(reads, imports, registry.FC, fcEnv), "s.yaml declares variables the FC code never reads")
	require.Empty(t, unreadOn(reads, imports, registry.FC, vpcEnv), "s.vpc.yaml declares variables the FC code never reads")
	require.Empty(t, unreadOn(reads, imports, registry.AWS, samEnv), "template.yaml declares variables the Lambda code never reads")

	// Every platform-provided variable listed is read somewhere (no stale entries).
	for _, v := range registry.PlatformVars() {
		read := false
		for _, f := range registry.All() {
			_, ok := functionReads(reads, imports, f.Name)[v.Name]
			read = read || ok
		}
		require.True(t, read, "registry.PlatformVars lists %s but no function reads it", v.Name)
	}

	// The scan bites: the runtime's reads (every function) and a vendor's own
	// (one function) are both found, with the code's default.
	lq := functionReads(reads, imports, "logistics-get-quota")
	for _, n := range []string{"CLOUDCALL_STORE", "CLOUDCALL_STORE_PREFIX", "CLOUDCALL_TIMEOUT", "CLOUDCALL_LOG_LEVEL", "WECHAT_TOKEN_MODE", "WECHAT_APPSECRET", "FC_RUNTIME_API"} {
		require.Contains(t, lq, n)
	}
	require.Equal(t, "stable", lq["WECHAT_TOKEN_MODE"].Default)
	require.NotContains(t, lq, "TOP_APP_SECRET", "a WeChat binary reads no TOP variable")
	qa := functionReads(reads, imports, "quota-alert")
	require.Contains(t, qa, "QUOTA_ALERT_SLACK_URL", "names from a literal list in the same function are derived")
	require.Equal(t, []string{registry.AWS}, lq["CLOUDCALL_METRICS_NAMESPACE"].On, "a read behind `p != PlatformLambda { return }` is Lambda's only")
	require.Nil(t, lq["CLOUDCALL_STORE"].On, "an ungated read is every platform's")

	// A descriptor that declares a variable its platform does not read is
	// caught, per function: the namespace on FC, as s.yaml had it.
	withNamespace := map[string][]string{}
	for _, f := range registry.All() {
		withNamespace[f.Name] = append(names(f.EnvOn(registry.FC)), "CLOUDCALL_METRICS_NAMESPACE")
	}
	var unread []string
	for _, f := range registry.All() {
		unread = append(unread, f.Name+" CLOUDCALL_METRICS_NAMESPACE")
	}
	sort.Strings(unread)
	require.Equal(t, unread, unreadOn(reads, imports, registry.FC, withNamespace), "every function, none of which reads it on FC")
	require.Empty(t, unreadOn(reads, imports, registry.AWS, withNamespace))

	// A registry that forgets a variable the code reads is caught, per function.
	fns := registry.All()
	for i := range fns {
		fns[i].Env = slices.DeleteFunc(fns[i].Env, func(v registry.Var) bool {
			return v.Name == "WECHAT_TOKEN_MODE" || v.Name == "CLOUDCALL_STORE_PREFIX" && fns[i].Name == "top-launch-extra-charge"
		})
	}
	missing := []string{"top-launch-extra-charge CLOUDCALL_STORE_PREFIX"}
	for _, f := range registry.All() {
		if slices.ContainsFunc(f.Env, func(v registry.Var) bool { return v.Name == "WECHAT_TOKEN_MODE" }) {
			missing = append(missing, f.Name+" WECHAT_TOKEN_MODE") // every WeChat function reads it
		}
	}
	sort.Strings(missing)
	require.Subset(t, missing, []string{"logistics-get-quota WECHAT_TOKEN_MODE", "quota-alert WECHAT_TOKEN_MODE"})
	require.Equal(t, missing, missingFromRegistry(reads, imports, fns))
}

func names(vs []registry.Var) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Name)
	}
	sort.Strings(out)
	return slices.Compact(out)
}
