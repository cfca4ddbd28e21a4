package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/config"
	"github.com/cloudcall/cloudcall/shared/descriptor"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/sandbox/topsbx"
	"github.com/cloudcall/cloudcall/shared/store/redisstore/redistest"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpAndVersion(t *testing.T) {
	cases := []struct {
		name       string
		args       []string
		code       int
		stdout     string // contained in stdout
		stderrNone bool
	}{
		{"help", []string{"help"}, 0, "Commands:", true},
		{"--help", []string{"--help"}, 0, "Commands:", true},
		{"help of a command", []string{"help", "local"}, 0, "Usage: cloudcall local", true},
		{"help --help", []string{"help", "--help"}, 0, "Commands:", true},
		{"command --help", []string{"invoke", "--help"}, 0, "Usage: cloudcall invoke", true},
		{"flag help is well formed", []string{"package", "--help"}, 0, "-logical-id id\n", true},
		{"local flags", []string{"local", "-h"}, 0, "-caller-keys id:secret,...", true},
		{"version", []string{"--version"}, 0, "cloudcall ", true},
		{"version command", []string{"version"}, 0, " go1.", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(tc.args...)
			require.Equal(t, tc.code, code, errOut)
			require.Contains(t, out, tc.stdout)
			if tc.stderrNone {
				require.Empty(t, errOut, "help is output: stdout only")
			}
		})
	}
	require.NotContains(t, func() string { _, out, _ := runCLI("package", "--help"); return out }(), "sam build\n    \tone function", "no backquoted word taken as the flag's value name")
}

// TestUsageErrorsNameTheCommand: every refusal of a command line reads
// "cloudcall <command>: ...", with exit status 2; local's flag checks said
// "--platform ..." with no command before it.
func TestUsageErrorsNameTheCommand(t *testing.T) {
	emptyEvent, notJSON := filepath.Join(t.TempDir(), "empty.json"), filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(emptyEvent, nil, 0o600))
	require.NoError(t, os.WriteFile(notJSON, []byte("{deliveryId: YTO}"), 0o600))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"local", "--platform", "x"}, "cloudcall local: --platform \"x\": expected fc or aws\n"},
		{[]string{"local", "--timers", "maybe"}, "cloudcall local: --timers \"maybe\": expected on or off\n"},
		{[]string{"local", "--store", "memory"}, "cloudcall local: --store \"memory\": expected embedded or a redis:// / rediss:// URL\n"},
		{[]string{"local", "--max-instances", "0"}, "cloudcall local: --max-instances 0: expected 1 or more\n"},
		{[]string{"local", "--env-file", "/nonexistent/.env"}, "cloudcall local: --env-file /nonexistent/.env: open /nonexistent/.env: no such file or directory\n"},
		{[]string{"local", "extra"}, "cloudcall local: unexpected argument \"extra\" (flags only; see cloudcall local --help)\n"},
		{[]string{"invoke", "logistics-get-quota", "--platform", "gcp"}, "cloudcall invoke: --platform \"gcp\": expected fc or aws\n"},
		{[]string{"package", "--function", "qouta-alert"}, "cloudcall package: unknown function \"qouta-alert\" (did you mean \"quota-alert\"?); known functions: "},
		{[]string{"sandbox", "extra"}, "cloudcall sandbox: unexpected argument \"extra\""},
		// A mistyped flag: one line with the closest, not Go's bare message over the whole usage.
		{[]string{"local", "--adr", "127.0.0.1:1"}, "cloudcall local: unknown flag -adr (did you mean \"addr\"?); see cloudcall local --help\n"},
		{[]string{"invoke", "logistics-get-quota", "--evnt", "f.json"}, "cloudcall invoke: unknown flag -evnt (did you mean \"event\"?); see cloudcall invoke --help\n"},
		{[]string{"openapi", "--bogus"}, "cloudcall openapi: unknown flag -bogus; see cloudcall openapi --help\n"},
		{[]string{"local", "--addr", "nohost"}, "cloudcall local: --addr nohost: listen tcp: address nohost: missing port in address (expected host:port, e.g. 127.0.0.1:9000)\n"},
		{[]string{"local", "--max-instances", "x"}, "cloudcall local: invalid value \"x\" for flag -max-instances: parse error; see cloudcall local --help\n"},
		// A bad --event is a bad command line, as a bad --env-file is (it exited 1).
		{[]string{"invoke", "logistics-get-quota", "--event", "/nonexistent/e.json"}, "cloudcall invoke: --event /nonexistent/e.json: open /nonexistent/e.json: no such file or directory\n"},
		{[]string{"invoke", "logistics-get-quota", "--event", emptyEvent}, "cloudcall invoke: the event from " + emptyEvent + " is empty; give a JSON event"},
		{[]string{"invoke", "logistics-get-quota", "--event", notJSON}, "cloudcall invoke: the event from " + notJSON + " is not valid JSON ("},
	} {
		code, out, errOut := runCLI(tc.args...)
		require.Equal(t, 2, code, "%v", tc.args)
		require.Empty(t, out, "%v", tc.args)
		require.True(t, strings.HasPrefix(errOut, tc.want), "%v: %q", tc.args, errOut)
	}
}

// TestEveryCommandHelpsOnStdout: help is output, for every command.
func TestEveryCommandHelpsOnStdout(t *testing.T) {
	for name := range commands() {
		for _, args := range [][]string{{name, "--help"}, {"help", name}} {
			code, out, errOut := runCLI(args...)
			require.Equal(t, 0, code, "%v: %s", args, errOut)
			require.Contains(t, out, "Usage: cloudcall "+name, args)
			require.Empty(t, errOut, args)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	badKeysEnv := filepath.Join(t.TempDir(), ".env")
	require.NoError(t, os.WriteFile(badKeysEnv, []byte("CLOUDCALL_CALLER_KEYS=a:short\n"), 0o600))
	// The outside tester's file: the space after the colon became part of
	// the secret, and local started.
	spacedKeysEnv := filepath.Join(t.TempDir(), ".env")
	require.NoError(t, os.WriteFile(spacedKeysEnv, []byte("CLOUDCALL_CALLER_KEYS=\"backend: 0123456789abcdefSECRETX\"\n"), 0o600))
	cases := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no command", nil, "Commands:"},
		{"unknown command", []string{"nope"}, `unknown command "nope"`},
		{"help of an unknown command", []string{"help", "nope"}, `unknown command "nope"`},
		{"unknown function", []string{"invoke", "nope"}, `unknown function "nope"; known functions: ` + strings.Join(registry.Names(), ", ")},
		{"no function", []string{"invoke"}, "name a function: " + strings.Join(registry.Names(), ", ")},
		{"package unknown function", []string{"package", "--function", "nope"}, `unknown function "nope"; known functions:`},
		{"package unknown arch", []string{"package", "--arch", "mips"}, `--arch "mips": expected x86_64 or arm64`},
		{"embedded store off loopback", []string{"local", "--store-addr", "0.0.0.0:6390"}, `--store-addr "0.0.0.0:6390": expected a loopback host:port`},
		{"package Go's arch name", []string{"package", "--platform", "aws", "--arch", "amd64"}, `Lambda calls it x86_64`},
		{"package unknown platform", []string{"package", "--platform", "gcp"}, `--platform "gcp": expected fc, aws or all`},
		{"package unknown logical id", []string{"package", "--logical-id", "Nope"}, `unknown --logical-id "Nope"; known ids: LogisticsGetQuotaFunction,`},
		{"package stray argument", []string{"package", "extra"}, `unexpected argument "extra"`},
		{"package unknown records", []string{"package", "--records", "sql"}, `--records "sql": expected auto, redis or all`},
		{"package two functions", []string{"package", "--function", "logistics-get-quota", "--logical-id", "QuotaAlertFunction"}, `name different functions; give one`},
		{"event unknown kind", []string{"event", "fc-htp"}, `unknown kind "fc-htp" (did you mean "fc-http"?); kinds: apigw-v2,`},
		{"invoke with an event file but no --event", []string{"invoke", "logistics-get-quota", "zto.json"}, `unexpected argument "zto.json" (one function, then flags; an event file goes with --event FILE)`},
		{"invoke with flags after a stray argument", []string{"invoke", "top-launch-extra-charge", "extra", "--event", "charge.json"}, `unexpected argument "extra"`},
		{"invoke with two names", []string{"invoke", "--platform", "fc", "logistics-get-quota", "quota-alert"}, `unexpected argument "quota-alert"`},
		{"invoke with a mistyped upstream", []string{"invoke", "logistics-get-quota", "--upstream", "rael"}, `cloudcall invoke: --upstream "rael": expected sandbox or real`},
		{"sandbox stray argument", []string{"sandbox", "127.0.0.1:9790"}, `cloudcall sandbox: unexpected argument "127.0.0.1:9790"`},
		{"bench stray argument", []string{"bench", "extra"}, `cloudcall bench: unexpected argument "extra"`},
		{"bench count below one", []string{"bench", "--cold", "0"}, `cloudcall bench: --cold 0: expected 1 or more`},
		{"a near command", []string{"invok"}, `unknown command "invok" (did you mean "invoke"?)`},
		{"two letters swapped", []string{"lcoal"}, `unknown command "lcoal" (did you mean "local"?)`},
		{"help of a near command", []string{"help", "pakage"}, `unknown command "pakage" (did you mean "package"?)`},
		{"a near function", []string{"invoke", "top-launch-charge"}, `unknown function "top-launch-charge" (did you mean "top-launch-extra-charge"?); known functions: `},
		{"part of a function's name", []string{"invoke", "ck1"}, `unknown function "ck1" (did you mean "ck1-pricing-inbound-box"?)`},
		{"package near logical id", []string{"package", "--logical-id", "QuotaAlertFunctoin"}, `unknown --logical-id "QuotaAlertFunctoin" (did you mean "QuotaAlertFunction"?)`},
		{"event stray argument", []string{"event", "fc-http", "extra"}, `unexpected argument "extra"`},
		{"openapi stray argument", []string{"openapi", "extra"}, `cloudcall openapi: unexpected argument "extra"`},
		{"gen stray argument", []string{"gen", "extra"}, `cloudcall gen: unexpected argument "extra"`},
		{"bad caller keys", []string{"local", "--caller-keys", "short:x"}, "--caller-keys: entry 1: the secret must be at least 16 bytes"},
		{"bad store", []string{"local", "--store", "memcached://x"}, `--store "memcached://x": expected embedded or a redis:// / rediss:// URL`},
		{"missing env file", []string{"local", "--env-file", "/nonexistent/.env"}, "--env-file /nonexistent/.env:"},
		{"bad caller keys in the env file", []string{"local", "--env-file", badKeysEnv}, "the secret must be at least 16 bytes"},
		{"a space after the colon in the env file's caller keys", []string{"local", "--env-file", spacedKeysEnv}, "CLOUDCALL_CALLER_KEYS: entry 1: the secret begins or ends with whitespace"},
		{"a space after the colon in --caller-keys", []string{"local", "--caller-keys", "backend: 0123456789abcdefSECRETX"}, "--caller-keys: entry 1: the secret begins or ends with whitespace"},
		{"stray argument", []string{"local", "extra"}, `unexpected argument "extra"`},
		{"idle 0", []string{"local", "--idle", "0"}, "--idle 0s: expected a positive duration such as 30s"},
		{"negative idle", []string{"local", "--idle", "-5s"}, "--idle -5s: expected a positive duration"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(tc.args...)
			require.Equal(t, 2, code, out+errOut)
			require.Contains(t, errOut, tc.stderr)
			require.NotContains(t, errOut, "SECRETX", "a secret is never quoted")
		})
	}
}

func TestFunctionEnv(t *testing.T) {
	quota, _ := registry.Lookup("quota-alert")
	charge, _ := registry.Lookup("top-launch-extra-charge")
	sbs := []*servedSandbox{
		{vendor: "wechat", env: map[string]string{"WECHAT_APPID": "sbx-app"}},
		{vendor: "notify", env: map[string]string{"QUOTA_ALERT_SLACK_URL": "http://sbx/slack", "NOT_DECLARED": "x"}},
		{vendor: "top", env: map[string]string{"TOP_APP_KEY": "sbx-key"}},
	}
	dir := t.TempDir()
	envFile := filepath.Join(dir, ".env")
	require.NoError(t, os.WriteFile(envFile, []byte("# comment\nQUOTA_ALERT_THRESHOLD=7\nexport EXTRA=\"quoted value\"\n"), 0o644))
	extra, err := readEnvFile(envFile)
	require.NoError(t, err)

	t.Run("defaults", func(t *testing.T) {
		env := functionEnv(quota, runtimeapi.FC, sbs, false, localSettings{storeURL: "redis://127.0.0.1:1/0", storePfx: "cloudcall:", embedded: true})
		require.Equal(t, "sbx-app", env["WECHAT_APPID"], "its vendor's sandbox")
		require.Equal(t, "http://sbx/slack", env["QUOTA_ALERT_SLACK_URL"], "a sandbox variable it declares")
		require.NotContains(t, env, "NOT_DECLARED")
		require.NotContains(t, env, "TOP_APP_KEY", "another vendor's credentials")
		require.Equal(t, "true", env["CLOUDCALL_ALLOW_ANONYMOUS"])
		require.Equal(t, "redis://127.0.0.1:1/0", env["CLOUDCALL_STORE"])
		require.Equal(t, "redis://127.0.0.1:1/0", env["CLOUDCALL_IDEMPOTENCY_STORE"])
		require.Equal(t, "assume", env["CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE"])
		require.Equal(t, "quota-alert", env["FC_FUNCTION_NAME"])
		// With real vendors the embedded store's records are no record of
		// real money: no waiver, so the charge refuses it (a charge cut off
		// at Ctrl-C was charged again by the next run).
		real := functionEnv(charge, runtimeapi.FC, nil, true, localSettings{storeURL: "redis://127.0.0.1:1/0", storePfx: "cloudcall:", embedded: true})
		require.Equal(t, "verify", real["CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE"])
	})
	t.Run("env file and caller keys", func(t *testing.T) {
		env := functionEnv(charge, runtimeapi.Lambda, sbs, false, localSettings{extra: extra, callerKeys: "k1:0123456789abcdef", storeURL: "redis://r:6379/2", storePfx: "cloudcall:local:x:"})
		require.Equal(t, "7", env["QUOTA_ALERT_THRESHOLD"])
		require.Equal(t, "quoted value", env["EXTRA"])
		require.Equal(t, "k1:0123456789abcdef", env["CLOUDCALL_CALLER_KEYS"])
		require.NotContains(t, env, "CLOUDCALL_ALLOW_ANONYMOUS", "caller auth on: no anonymous calls")
		require.Equal(t, "cloudcall:local:x:", env["CLOUDCALL_STORE_PREFIX"])
		require.Equal(t, "verify", env["CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE"], "a real Redis is checked for durability")
		require.Equal(t, "sbx-key", env["TOP_APP_KEY"])
		require.Equal(t, "top-launch-extra-charge", env["AWS_LAMBDA_FUNCTION_NAME"])
	})
	// An env file's NAME_FILE replaces a sandbox's NAME: a function refuses
	// both set (which was meant cannot be known), and the file is.
	t.Run("an env file's _FILE secret", func(t *testing.T) {
		env := functionEnv(quota, runtimeapi.FC, sbs, false, localSettings{extra: map[string]string{"QUOTA_ALERT_SLACK_URL_FILE": "/run/secrets/slack"}})
		require.Equal(t, "/run/secrets/slack", env["QUOTA_ALERT_SLACK_URL_FILE"])
		require.NotContains(t, env, "QUOTA_ALERT_SLACK_URL")
		both := functionEnv(quota, runtimeapi.FC, sbs, false, localSettings{extra: map[string]string{"QUOTA_ALERT_SLACK_URL_FILE": "/f", "QUOTA_ALERT_SLACK_URL": "https://x/y"}})
		require.Equal(t, "https://x/y", both["QUOTA_ALERT_SLACK_URL"], "both in the file: the function says so")
	})
	// The emulator's store, whatever form the file named one in: its
	// CLOUDCALL_STORE_FILE beside the emulator's CLOUDCALL_STORE made every
	// function refuse both set (a re-tester).
	t.Run("an env file's CLOUDCALL_STORE_FILE", func(t *testing.T) {
		extra := map[string]string{"CLOUDCALL_STORE_FILE": "/run/secrets/store", "CLOUDCALL_STORE_PREFIX_FILE": "/run/secrets/prefix"}
		env := functionEnv(quota, runtimeapi.FC, sbs, false, localSettings{extra: extra, storeURL: "redis://127.0.0.1:1/0", storePfx: "cloudcall:", embedded: true})
		require.Equal(t, "redis://127.0.0.1:1/0", env["CLOUDCALL_STORE"])
		require.NotContains(t, env, "CLOUDCALL_STORE_FILE")
		require.NotContains(t, env, "CLOUDCALL_STORE_PREFIX_FILE")
	})
	// A deployment's own records store can be tried locally: the env file's
	// CLOUDCALL_IDEMPOTENCY_STORE was overwritten by --store, and with the
	// embedded store its Redis would have skipped the durability check.
	t.Run("the env file's records store", func(t *testing.T) {
		own := map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": "postgres://u@db:5432/money"}
		env := functionEnv(charge, runtimeapi.FC, sbs, false, localSettings{extra: own, storeURL: "redis://127.0.0.1:1/0", storePfx: "cloudcall:", embedded: true})
		require.Equal(t, "postgres://u@db:5432/money", env["CLOUDCALL_IDEMPOTENCY_STORE"])
		require.Equal(t, "redis://127.0.0.1:1/0", env["CLOUDCALL_STORE"], "the rest of the state stays shared in --store")
		require.NotEqual(t, "assume", env["CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE"], "the embedded store's waiver is not the env file's store's")

		mem := filepath.Join(t.TempDir(), ".env")
		require.NoError(t, os.WriteFile(mem, []byte("CLOUDCALL_IDEMPOTENCY_STORE=memory\n"), 0o600))
		var errOut bytes.Buffer
		_, err := loadEnvFile(mem, &errOut, false)
		require.ErrorIs(t, err, errUsage)
		require.ErrorContains(t, err, "--env-file "+mem+": CLOUDCALL_IDEMPOTENCY_STORE=memory would give each instance its own charge records")

		// The URL may come from a file, as every secret may: it was
		// overwritten by --store (the plain variable wins), and a file
		// saying memory passed.
		dir := t.TempDir()
		url := filepath.Join(dir, "records-url")
		require.NoError(t, os.WriteFile(url, []byte("postgres://u@db:5432/money\n"), 0o600))
		fileEnv := map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE_FILE": url}
		env = functionEnv(charge, runtimeapi.FC, sbs, false, localSettings{extra: fileEnv, storeURL: "redis://127.0.0.1:1/0", storePfx: "cloudcall:", embedded: true})
		require.NotContains(t, env, "CLOUDCALL_IDEMPOTENCY_STORE", "the file's URL stands")
		require.Equal(t, url, env["CLOUDCALL_IDEMPOTENCY_STORE_FILE"])
		var b bytes.Buffer
		banner(&b, "http://127.0.0.1:9000", "fc", "sandbox", nil, nil, nil, "on", localSettings{extra: fileEnv, storeURL: "redis://127.0.0.1:1/0", embedded: true})
		require.Contains(t, b.String(), "charge records: the env file's CLOUDCALL_IDEMPOTENCY_STORE, kept across runs")
		// A Redis records store shares the store prefix, this run's on an
		// external store: said "kept across runs", a key charged in one run
		// charged again in the next (an outside tester).
		b.Reset()
		redisRecords := map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": "redis://127.0.0.1:2/0"}
		banner(&b, "http://127.0.0.1:9000", "fc", "sandbox", nil, nil, nil, "on", localSettings{extra: redisRecords, storeURL: "redis://127.0.0.1:1/0", storePfx: "cloudcall:local:run1:"})
		require.Contains(t, b.String(), "charge records: the env file's CLOUDCALL_IDEMPOTENCY_STORE, under this run's key prefix cloudcall:local:run1: (a new run starts with none, as the sandboxes do)\n")
		b.Reset()
		banner(&b, "http://127.0.0.1:9000", "fc", "sandbox", nil, nil, nil, "on", localSettings{extra: redisRecords, storeURL: "redis://127.0.0.1:1/0", storePfx: "cloudcall:", embedded: true})
		require.Contains(t, b.String(), "charge records: the env file's CLOUDCALL_IDEMPOTENCY_STORE, kept across runs", "the embedded store's prefix is the same every run")
		// With the real vendors, the prefix is this tool's, not the env
		// file's: cloudcall records given the file found nothing (an
		// outside re-tester), so the banner says what to give it.
		b.Reset()
		banner(&b, "http://127.0.0.1:9000", "fc", "real", nil, nil, nil, "on", localSettings{extra: redisRecords, storeURL: "redis://127.0.0.1:1/0", storePfx: "cloudcall:local:real:"})
		require.Contains(t, b.String(), "charge records: the env file's CLOUDCALL_IDEMPOTENCY_STORE, kept across runs under key prefix cloudcall:local:real: (for cloudcall records, CLOUDCALL_STORE_PREFIX=cloudcall:local:real: in its --env-file)\n")
		require.NoError(t, os.WriteFile(url, []byte("memory\n"), 0o600))
		memFile := filepath.Join(dir, ".env")
		require.NoError(t, os.WriteFile(memFile, []byte("CLOUDCALL_IDEMPOTENCY_STORE_FILE="+url+"\n"), 0o600))
		errOut.Reset()
		_, err = loadEnvFile(memFile, &errOut, false)
		require.ErrorIs(t, err, errUsage)
		require.ErrorContains(t, err, "each instance its own charge records")

		// The shared store's own lines are said to be unused, not dropped
		// in silence.
		storeFile := filepath.Join(dir, "store.env")
		require.NoError(t, os.WriteFile(storeFile, []byte("CLOUDCALL_STORE=redis://127.0.0.1:1/0\n"), 0o600))
		errOut.Reset()
		_, err = loadEnvFile(storeFile, &errOut, false)
		require.NoError(t, err)
		require.Contains(t, errOut.String(), "CLOUDCALL_STORE is not used: every instance shares the emulator's store")
		require.NoError(t, os.WriteFile(storeFile, []byte("CLOUDCALL_STORE_PREFIX=h3x:\n"), 0o600))
		errOut.Reset()
		_, err = loadEnvFile(storeFile, &errOut, false)
		require.NoError(t, err)
		require.Contains(t, errOut.String(), "CLOUDCALL_STORE_PREFIX is not used: the functions' keys go under the prefix the banner names, which is also the one to give cloudcall records")
	})
}

// The env file's caller settings decide what the functions get, and the
// banner says what they got.
func TestEnvFileCallerSettings(t *testing.T) {
	f, _ := registry.Lookup("logistics-get-quota")
	keysFile := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(keysFile, []byte("k:0123456789abcdef\n"), 0o600))
	bins := map[string]string{"logistics-get-quota": "/bin/x"}
	for _, c := range []struct {
		name   string
		extra  map[string]string
		anon   string // CLOUDCALL_ALLOW_ANONYMOUS the function gets ("" unset)
		keys   string
		banner string
	}{
		{"the deployed default's empty keys", map[string]string{"CLOUDCALL_CALLER_KEYS": ""}, "true", "", "WARNING: CLOUDCALL_ALLOW_ANONYMOUS=true"},
		{"anonymous calls turned off", map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "false"}, "false", "", "HTTP triggers refuse every call"},
		{"keys from the env file", map[string]string{"CLOUDCALL_CALLER_KEYS": "k:0123456789abcdef", "CLOUDCALL_ALLOW_ANONYMOUS": "true"}, "", "k:0123456789abcdef", "caller auth: on (CLOUDCALL_CALLER_KEYS from --env-file)"},
		{"keys from a file the env file names", map[string]string{"CLOUDCALL_CALLER_KEYS_FILE": keysFile}, "", "", "caller auth: on (CLOUDCALL_CALLER_KEYS from --env-file)"},
		{"a value the functions do not know keeps them closed", map[string]string{"CLOUDCALL_ALLOW_ANONYMOUS": "nope"}, "false", "", "HTTP triggers refuse every call"},
	} {
		set := localSettings{extra: c.extra, storeURL: "redis://127.0.0.1:1/0", embedded: true}
		env := functionEnv(f, runtimeapi.FC, nil, false, set)
		require.Equal(t, c.anon, env["CLOUDCALL_ALLOW_ANONYMOUS"], c.name)
		require.Equal(t, c.keys, env["CLOUDCALL_CALLER_KEYS"], c.name)
		var b bytes.Buffer
		banner(&b, "http://127.0.0.1:9000", "fc", "sandbox", bins, nil, nil, "on", set)
		require.Contains(t, b.String(), c.banner, c.name)
		if c.anon != "true" {
			require.NotContains(t, b.String(), "WARNING", c.name)
			require.NotContains(t, b.String(), "curl -s -X POST http://127.0.0.1:9000/logistics-get-quota ", c.name)
		}
	}
}

func TestBanner(t *testing.T) {
	bins := map[string]string{}
	for _, n := range registry.Names() {
		bins[n] = "/bin/" + n
	}
	var anon, keyed bytes.Buffer
	banner(&anon, "http://127.0.0.1:9000", "fc", "sandbox", bins, nil, nil, "on", localSettings{storeURL: "redis://127.0.0.1:5/0", embedded: true})
	banner(&keyed, "http://127.0.0.1:9000", "fc", "sandbox", bins, nil, nil, "on", localSettings{callerKeys: "k:0123456789abcdef", storeURL: "redis://u:secretpw@host:6379/0"})
	require.Contains(t, anon.String(), "WARNING: CLOUDCALL_ALLOW_ANONYMOUS=true")
	require.NotContains(t, keyed.String(), "WARNING")
	require.Contains(t, keyed.String(), "caller auth: on")
	// With caller keys, the example curls go through the invoke API, which
	// takes them unsigned; the trigger's would be refused.
	require.Contains(t, keyed.String(), "curl -s -X POST http://127.0.0.1:9000/2023-03-30/functions/logistics-get-quota/invocations -d '")
	require.NotContains(t, keyed.String(), "curl -s -X POST http://127.0.0.1:9000/logistics-get-quota ")
	require.Contains(t, anon.String(), "curl -s -X POST http://127.0.0.1:9000/logistics-get-quota -H 'Content-Type: application/json'")
	for _, b := range []string{anon.String(), keyed.String()} {
		require.Contains(t, b, "invoke APIs and /__timers: unsigned", "the banner says which doors --caller-keys does not sign")
	}
	require.NotContains(t, keyed.String(), "secretpw")
	require.Contains(t, keyed.String(), "redis://u:***@host:6379/0")
	for _, n := range registry.Names() {
		require.Contains(t, anon.String(), "http://127.0.0.1:9000/2023-03-30/functions/"+n+"/invocations")
		require.Contains(t, anon.String(), "http://127.0.0.1:9000/2015-03-31/functions/"+n+"/invocations")
	}
	require.Contains(t, anon.String(), "quota-alert                   — (none in the descriptors)")
	require.NotContains(t, anon.String(), "reachable from other machines")

	// Every interface: said, and louder against the real vendors.
	for _, c := range []struct{ base, upstream, says string }{
		{"http://[::]:9000", "sandbox", "WARNING: listening on ::, reachable from other machines"},
		{"http://0.0.0.0:9000", "real", "against the REAL vendors"},
	} {
		var b bytes.Buffer
		banner(&b, c.base, "fc", c.upstream, bins, nil, nil, "on", localSettings{storeURL: "redis://127.0.0.1:5/0", embedded: true})
		require.Contains(t, b.String(), c.says)
	}

	// Against the real vendors the banner suggests no charge to paste and
	// names no sandbox; the sandbox run does both.
	var real, sbx bytes.Buffer
	banner(&real, "http://127.0.0.1:9000", "fc", "real", bins, nil, nil, "on", localSettings{storeURL: "redis://127.0.0.1:5/0", embedded: true})
	banner(&sbx, "http://127.0.0.1:9000", "fc", "sandbox", bins, nil, nil, "on", localSettings{storeURL: "redis://127.0.0.1:5/0", embedded: true})
	require.NotContains(t, real.String(), "wdsCoordinationOrderId")
	require.Contains(t, real.String(), "(top-launch-extra-charge: no example against the real vendor; it moves money)")
	require.NotContains(t, real.String(), "sandbox")
	require.Contains(t, sbx.String(), "-d '{\"omsLaunchExtraChargeParameter\"")
	require.Contains(t, sbx.String(), "with the sandboxes")

	real.Reset()
	banner(&real, "http://127.0.0.1:9000", "fc", "real", bins, nil, nil, "on", localSettings{storeURL: "redis://127.0.0.1:5/0", storePfx: "cloudcall:local:real:",
		extra: map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": "postgres://h/db"}})
	require.Contains(t, real.String(), "keys under cloudcall:local:real:, the same every run")
	require.Contains(t, real.String(), "charge records: the env file's CLOUDCALL_IDEMPOTENCY_STORE, kept across runs\n")
	require.NotContains(t, real.String(), "sandbox")
}

// TestInvokeRunsTheExample: `cloudcall invoke <fn>` runs the registry
// example once against the sandboxes (the charge through the embedded
// store, as under cloudcall local); the answer on stdout, logs on stderr.
func TestInvokeRunsTheExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a function")
	}
	for _, fn := range []string{"top-launch-extra-charge", "logistics-get-quota"} {
		t.Run(fn, func(t *testing.T) {
			code, out, errOut := runCLI("invoke", fn, "--bin", binDir)
			require.Equal(t, 0, code, errOut)
			require.Contains(t, out, `"errCode":0`)
			require.Contains(t, errOut, fn+" START RequestId: ")
		})
	}
}

// TestInvokeTakesAnEnvFile: the charge's price policies could not be tried
// with invoke (it reads no shell environment against the sandboxes); an
// --env-file reaches the function as under cloudcall local.
func TestInvokeTakesAnEnvFile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a function")
	}
	env := filepath.Join(t.TempDir(), ".env")
	require.NoError(t, os.WriteFile(env, []byte("TOP_MAX_PRICE_FEN=50\n"), 0o600))
	code, out, errOut := runCLI("invoke", "top-launch-extra-charge", "--bin", binDir, "--env-file", env)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `"errCode":-1001`)
	require.Contains(t, out, "over the safety cap of 50 fen")

	code, _, errOut = runCLI("invoke", "top-launch-extra-charge", "--bin", binDir, "--env-file", env+".missing")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "--env-file "+env+".missing")
}

// TestInvokeKeepsTheEnvFilesPrefix: the charge invoked with an env file that
// names its records store and key prefix keeps its record under that
// prefix, so cloudcall records given the same file finds it. It went under
// "cloudcall:", and the note pointed to a banner invoke does not print (an
// outside tester).
func TestInvokeKeepsTheEnvFilesPrefix(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a function")
	}
	// The records store named as such, or as the shared store (which
	// records --help also reads; a re-tester found that one dropped).
	for _, storeVar := range []string{"CLOUDCALL_IDEMPOTENCY_STORE", "CLOUDCALL_STORE", "CLOUDCALL_STORE_FILE"} {
		t.Run(storeVar, func(t *testing.T) {
			m := miniredis.RunT(t)
			url := "redis://" + m.Addr() + "/0"
			if storeVar == "CLOUDCALL_STORE_FILE" { // a re-tester: every function refused both set
				url = filepath.Join(t.TempDir(), "store")
				require.NoError(t, os.WriteFile(url, []byte("redis://"+m.Addr()+"/0\n"), 0o600))
			}
			env := writeEnvFile(t, map[string]string{storeVar: url, "CLOUDCALL_IDEMPOTENCY_REDIS_PERSISTENCE": "assume",
				"CLOUDCALL_STORE_PREFIX": "cloudcall:inv:", "TOP_APP_KEY": topsbx.DemoAppKey})
			event := filepath.Join(t.TempDir(), "charge.json")
			require.NoError(t, os.WriteFile(event, []byte(`{"idempotencyKey":"inv-1","omsLaunchExtraChargeParameter":{"wdsCoordinationOrderId":"BFC1","price":100,"type":2}}`), 0o600))
			code, out, errOut := runCLI("invoke", "top-launch-extra-charge", "--bin", binDir, "--env-file", env, "--event", event)
			require.Equal(t, 0, code, errOut)
			require.Contains(t, out, `"errCode":0`)
			require.NotContains(t, errOut, "is not used")
			require.True(t, m.Exists("cloudcall:inv:idem:top:"+topsbx.DemoAppKey+":inv-1"), "keys: %v", m.Keys())

			code, out, errOut = runCLI("records", "show", "inv-1", "--env-file", env)
			require.Equal(t, 0, code, out+errOut)
			require.Contains(t, out, `"state":"done"`)
		})
	}
}

func TestDefaultStore(t *testing.T) {
	for env, want := range map[string]string{
		"":                         "embedded",
		"memory":                   "embedded",
		"redis://127.0.0.1:6379/3": "redis://127.0.0.1:6379/3",
		"rediss://r.example:6380":  "rediss://r.example:6380",
	} {
		t.Setenv("CLOUDCALL_STORE", env)
		require.Equal(t, want, defaultStore(), env)
	}
}

// A port in use, or an address that is none, is said at once, before the
// functions are built (which takes minutes the first time), with the flag
// that fixes it.
func TestLocalSaysABadPortBeforeBuilding(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	bin := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int // 2: a malformed command line; 1: a port in use
		says string
	}{
		{[]string{"--addr", busy.Addr().String()}, 1, "is another cloudcall local running? pass --addr"},
		{[]string{"--addr", "nope"}, 2, "--addr nope:"},
		{[]string{"--addr", "127.0.0.1:0", "--sandbox-addr", busy.Addr().String()}, 1, "pass --sandbox-addr 127.0.0.1:<free port>"},
	} {
		code, out, errOut := runCLI(append([]string{"local", "--bin", bin, "--timers", "off"}, tc.args...)...)
		require.Equal(t, tc.code, code, out+errOut)
		require.Contains(t, errOut, tc.says)
		require.NotContains(t, out, "building functions", "nothing was built")
	}
}

// A --store nobody answers on (a mistyped port) started silently: the
// functions fell back to their own memory, and only the first function's
// log said so. The start says it.
func TestLocalSaysTheStoreDoesNotAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "redis://" + ln.Addr().String() + "/0"
	require.NoError(t, ln.Close())
	var out bytes.Buffer
	warned, err := warnUnreachable(context.Background(), &out, dead)
	require.NoError(t, err)
	require.True(t, warned)
	require.Contains(t, out.String(), "WARNING: --store "+dead+" does not answer (")
	require.Contains(t, out.String(), "the charge answers -1501")

	out.Reset()
	url := redistest.URL(t)
	warned, err = warnUnreachable(context.Background(), &out, url)
	require.NoError(t, err)
	require.False(t, warned)
	require.Empty(t, out.String())

	// A Redis that answers and refuses the URL's password or database is a
	// mistake in the URL, said at once (it started, as if Redis were down).
	u, err := neturl.Parse(url)
	require.NoError(t, err)
	locked := miniredis.RunT(t)
	locked.RequireAuth("the-password")
	for _, bad := range []string{"redis://:not-the-password@" + locked.Addr() + "/0", "redis://" + locked.Addr() + "/0", "redis://" + u.Host + "/9999",
		"redis://:not-the-password@" + u.Host + "/-1", "redis://" + u.Host + "/abc"} {
		out.Reset()
		warned, err = warnUnreachable(context.Background(), &out, bad)
		require.False(t, warned)
		require.ErrorIs(t, err, errUsage, bad)
		require.Regexp(t, "that Redis refused these settings|database -1: expected a number from 0|invalid database number", err.Error())
		require.NotContains(t, err.Error(), "not-the-password")
		require.Empty(t, out.String())
	}
}

// A line that is no dotenv line is named by its number: godotenv quoted the
// rest of the file.
func TestEnvFileErrorsNameTheLine(t *testing.T) {
	f := filepath.Join(t.TempDir(), ".env")
	require.NoError(t, os.WriteFile(f, []byte("A=1\n# a comment\nNOT A DOTENV LINE\nB=2\n"), 0o600))
	_, err := readEnvFile(f)
	require.ErrorContains(t, err, "line 3 cannot be read: ")
	require.ErrorContains(t, err, "(a line is NAME=value, or a # comment)")
	code, _, errOut := runCLI("local", "--env-file", f)
	require.Equal(t, 2, code)
	require.True(t, strings.HasPrefix(errOut, "cloudcall local: --env-file "+f+": line 3 cannot be read: "), errOut)
}

// A parse error quoted the file from the bad line on, so a typo above a
// secret printed the secret (an outside tester's caller key). Nothing of
// the file's content is in the error now, for either of godotenv's errors.
func TestEnvFileErrorsQuoteNothingOfTheFile(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"TOP_MAX_PRICE_FEN=50\nbad line here\nTOP_APP_SECRET=supersecret-value-123456\nCLOUDCALL_CALLER_KEYS=backend:0123456789abcdef0123\n",
			"line 2 cannot be read: the name before = is not a variable name"},
		{"A=1\nTOP_APP_SECRET=\"supersecret-value-123456\nB=2\n", "line 2 cannot be read: a quoted value has no closing quote"},
		// A valid value of several lines before the bad line: the bad line
		// is named, not the value's first (a re-tester).
		{"A=1\nB=\"multi\nline\"\nC=\nbad line here\nTOP_APP_SECRET=supersecret-value-123456\n", "line 5 cannot be read: the name before = is not a variable name"},
		// "=value" was taken as a variable with no name, silently.
		{"A=1\n=supersecret-value-123456\nB=2\n", "line 2 cannot be read: it has no name before ="},
		{"A=1\n  export =supersecret-value-123456\n", "line 2 cannot be read: it has no name before ="},
		// godotenv takes a name with a space, and YAML's "name: value": a
		// pasted bare URL became a variable "redis", silently (a tester).
		{"A=1\nCLOUDCALL IDEMPOTENCY_STORE=redis://u:supersecret-value-123456@127.0.0.1:6379/7\n", "line 2 cannot be read: the name before = is not a variable name"},
		{"A=1\n\nredis://u:supersecret-value-123456@127.0.0.1:6379/7\n", "line 3 cannot be read: it is not NAME=value (NAME: value, or a bare URL, is not read)"},
	} {
		f := filepath.Join(t.TempDir(), ".env")
		require.NoError(t, os.WriteFile(f, []byte(tc.file), 0o600))
		_, err := readEnvFile(f)
		require.ErrorContains(t, err, tc.want)
		for _, cmd := range [][]string{{"local", "--env-file", f}, {"invoke", "top-launch-extra-charge", "--env-file", f}} {
			code, out, errOut := runCLI(cmd...)
			require.Equal(t, 2, code, errOut)
			require.Contains(t, errOut, tc.want)
			for _, secret := range []string{"supersecret", "0123456789abcdef0123", "bad line here"} {
				require.NotContains(t, out+errOut, secret, cmd)
			}
		}
	}
}

// Run outside the checkout, local said "building functions … the front door
// opens when they are built" before saying it cannot build anything.
func TestLocalOutsideTheCheckoutSaysSoFirst(t *testing.T) {
	t.Chdir(t.TempDir())
	code, out, errOut := runCLI("local", "--addr", "127.0.0.1:0", "--sandbox-addr", "127.0.0.1:0", "--timers", "off")
	require.Equal(t, 1, code, out+errOut)
	require.Contains(t, errOut, "no go.mod in")
	require.Contains(t, errOut, "run cloudcall from inside the cloudcall checkout")
	require.NotContains(t, out, "building functions")
}

// The flag's caller keys win over an env file's; calls signed with the
// file's were refused with nothing said. The start says so.
func TestLocalSaysWhichCallerKeysWin(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	envFile := filepath.Join(t.TempDir(), ".env")
	require.NoError(t, os.WriteFile(envFile, []byte("CLOUDCALL_CALLER_KEYS=k1:BBBBBBBBBBBBBBBBBBBB,k2:CCCCCCCCCCCCCCCCCCCC\n"), 0o600))
	_, _, errOut := runCLI("local", "--addr", busy.Addr().String(), "--timers", "off", "--caller-keys", "k1:AAAAAAAAAAAAAAAAAAAA", "--env-file", envFile)
	require.Contains(t, errOut, "WARNING: --caller-keys and the env file's CLOUDCALL_CALLER_KEYS differ: the flag's keys are used, the file's are not")
	require.NotContains(t, errOut, "BBBB", "no secret shown")
	_, _, errOut = runCLI("local", "--addr", busy.Addr().String(), "--timers", "off", "--caller-keys", "k1:AAAAAAAAAAAAAAAAAAAA")
	require.NotContains(t, errOut, "WARNING: --caller-keys")
}

// A connection that has not sent a whole request (a browser's speculative
// one, a client mid-headers) is closed at the shutdown's start: net/http
// waits 5 s for it, and Ctrl-C took 6.5 s. One that sent its request is not
// touched.
func TestFreshConnectionsAreClosedAtShutdown(t *testing.T) {
	var fresh freshConns
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	srv.Config.ConnState = fresh.track
	srv.Start()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	silent, err := net.Dial("tcp", host)
	require.NoError(t, err)
	defer silent.Close()
	half, err := net.Dial("tcp", host)
	require.NoError(t, err)
	defer half.Close()
	_, err = half.Write([]byte("POST /x HTTP/1.1\r\nHost: a\r\n"))
	require.NoError(t, err)
	served, err := net.Dial("tcp", host)
	require.NoError(t, err)
	defer served.Close()
	_, err = served.Write([]byte("GET /x HTTP/1.1\r\nHost: a\r\n\r\n"))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(served), nil)
	require.NoError(t, err)
	require.Equal(t, 204, resp.StatusCode)
	require.Eventually(t, func() bool { fresh.mu.Lock(); defer fresh.mu.Unlock(); return len(fresh.m) == 2 }, 2*time.Second, 5*time.Millisecond)

	fresh.closeAll()
	for _, c := range []net.Conn{silent, half} {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
		_, err := c.Read(make([]byte, 1))
		require.ErrorIs(t, err, io.EOF, "closed by the server, not left to time out")
	}
	_, err = served.Write([]byte("GET /x HTTP/1.1\r\nHost: a\r\n\r\n"))
	require.NoError(t, err)
	resp, err = http.ReadResponse(bufio.NewReader(served), nil)
	require.NoError(t, err, "the served connection stays open")
	require.Equal(t, 204, resp.StatusCode)
}

// What --records builds the charge with: auto follows the environment it
// deploys from, and says so.
func TestRecordsTags(t *testing.T) {
	redis := config.FromMap(map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": "redis://10.0.0.1:6379/0"})
	pg := config.FromMap(map[string]string{"CLOUDCALL_IDEMPOTENCY_STORE": "postgres://u@h/db"})
	for _, tc := range []struct {
		records string
		env     *config.Env
		tags    []string
		note    string
	}{
		{"auto", redis, []string{"cloudcall_nosql"}, "the charge links the Redis client only (CLOUDCALL_IDEMPOTENCY_STORE is a Redis URL)"},
		{"auto", pg, nil, "the charge links the Redis, PostgreSQL and MySQL clients (CLOUDCALL_IDEMPOTENCY_STORE is a SQL URL)"},
		{"auto", config.FromMap(nil), nil, "(CLOUDCALL_IDEMPOTENCY_STORE is not set here)"},
		{"redis", pg, []string{"cloudcall_nosql"}, "the charge links the Redis client only (--records redis)"},
		{"all", redis, nil, "the charge links the Redis, PostgreSQL and MySQL clients (--records all)"},
	} {
		tags, note := recordsTags(tc.records, tc.env)
		require.Equal(t, tc.tags, tags, tc.records)
		require.Contains(t, note, tc.note)
	}
}

// A go run that goes away ends local: it passes no SIGTERM on, and an
// outside tester's emulator outlived it on its ports. Any other parent may
// go (nohup, a shell that exits): a re-tester's nohup'd emulator stopped.
func TestLocalEndsWhenItsGoRunIsGone(t *testing.T) {
	for _, tc := range []struct {
		parent string
		ends   bool
	}{{"go", true}, {"bash", false}, {"nohup", false}, {"", false}} {
		var parent atomic.Int64
		parent.Store(4242)
		ctx, stop := untilOrphaned(context.Background(), func() int { return int(parent.Load()) },
			func(pid int) string { require.Equal(t, 4242, pid); return tc.parent }, 5*time.Millisecond)
		time.Sleep(30 * time.Millisecond)
		require.NoError(t, ctx.Err(), "the same parent: running")
		parent.Store(1) // reparented to init
		select {
		case <-ctx.Done():
			require.True(t, tc.ends, "%s's exit ended it", tc.parent)
			require.ErrorIs(t, context.Cause(ctx), errOrphaned)
		case <-time.After(300 * time.Millisecond):
			require.False(t, tc.ends, "not ended after go run went")
		}
		stop()
	}
	require.NotEmpty(t, processName(os.Getpid()), "this platform names processes")
}

// A UTF-8 byte order mark, as Windows Notepad saves a file, is no part of
// the first name (it was refused as "not a variable name": a re-tester).
func TestEnvFileWithAByteOrderMark(t *testing.T) {
	f := filepath.Join(t.TempDir(), ".env")
	require.NoError(t, os.WriteFile(f, []byte("\xef\xbb\xbfA=1\r\nB=two\r\n"), 0o600))
	env, err := readEnvFile(f)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"A": "1", "B": "two"}, env)
}

// After `cloudcall gen --aws-iam`, `gen --check` told the user to run
// `make gen` and commit, which writes the open variant over the one they
// chose (an outside tester). It now says which variant is there and how
// to check it.
func TestGenCheckRecognisesTheIAMVariant(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/x\n"), 0o644))
	iam, err := descriptor.SAM(registry.All(), descriptor.SAMOptions{IAM: true})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "template.yaml"), iam, 0o644))
	t.Chdir(dir)
	code, _, stderr := runCLI("gen", "--check")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "template.yaml is the AWS_IAM variant (cloudcall gen --aws-iam) and up to date as such: check it with `cloudcall gen --check --aws-iam`")
	require.NotContains(t, stderr, "template.yaml differs from the registry")
	code, stdout, stderr := runCLI("gen", "--check", "--aws-iam")
	require.Equal(t, 1, code, "the other files are missing here")
	require.Contains(t, stdout, "template.yaml is up to date")
	require.NotContains(t, stderr, "template.yaml")
}
