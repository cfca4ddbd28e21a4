package alicloud_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/alicloud"
	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/sandbox"
	"github.com/cloudcall/cloudcall/shared/sandbox/camssbx"
	"github.com/cloudcall/cloudcall/shared/store"
)

// The platform's per-invocation credentials come first; without them the
// standard chain is built on first need and reads the environment (its
// first provider).
func TestCredentialSource(t *testing.T) {
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-env")
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-secret")
	t.Setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "env-sts")
	src := alicloud.NewCredentialSource()

	got, err := src.Resolve(&envelope.Input{Credentials: &envelope.Credentials{AccessKeyID: "STS.fc", AccessKeySecret: "fc-secret", SecurityToken: "fc-token"}})
	require.NoError(t, err)
	require.Equal(t, alicloud.Credentials{AccessKeyID: "STS.fc", AccessKeySecret: "fc-secret", SecurityToken: "fc-token", Source: alicloud.SourceFC}, got)

	got, err = src.Resolve(&envelope.Input{})
	require.NoError(t, err)
	require.Equal(t, alicloud.Credentials{AccessKeyID: "LTAI-env", AccessKeySecret: "env-secret", SecurityToken: "env-sts", Source: alicloud.SourceEnv + " (and ALIBABA_CLOUD_SECURITY_TOKEN)"}, got)

	static := alicloud.StaticSource(alicloud.Credentials{AccessKeyID: "AK", AccessKeySecret: "SK"})
	got, err = static.Resolve(nil)
	require.NoError(t, err)
	require.Equal(t, alicloud.Credentials{AccessKeyID: "AK", AccessKeySecret: "SK", Source: "the configured static credentials"}, got)
}

// A wrong ALIBABA_CLOUD_ACCESS_KEY_SECRET answered 502 -1305
// "SignatureDoesNotMatch" as if CAMS had refused the request, while missing
// credentials were -1601 (outside tester). The signature is made from the
// function's configuration: CAMS refusing the key or the signature says the
// credentials are wrong, -1601 naming where they came from, the vendor's
// code kept in upstream and the secret never quoted.
func TestCredentialsCAMSRefusesAreConfiguration(t *testing.T) {
	const secret = "not-the-secret-7f3a"
	sbx := camssbx.New(camssbx.Options{})
	srv := httptest.NewServer(sbx.Handler())
	defer srv.Close()
	c, err := alicloud.NewClient(alicloud.Options{Endpoint: srv.URL, Version: alicloud.CAMSVersion, Product: "cams", HTTP: http.DefaultClient,
		Limiter: store.NewMemory(store.MemoryOptions{}), QPS: 10})
	require.NoError(t, err)
	call := func(src *alicloud.CredentialSource, in *envelope.Input) (int, map[string]any) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		in.Body = []byte(`{}`)
		r := alicloud.NewCAMS(c, src).Op().Invoke(ctx, in)
		require.NotContains(t, string(r.Body), secret, "the secret is never quoted")
		var m map[string]any
		require.NoError(t, json.Unmarshal(r.Body, &m), string(r.Body))
		return r.Status, m
	}
	check := func(st int, m map[string]any, code string, names ...string) {
		t.Helper()
		require.Equal(t, 500, st, m)
		require.Equal(t, float64(envelope.CodeConfig), m["errCode"], m)
		require.Equal(t, code, m["upstream"].(map[string]any)["code"], m)
		for _, n := range names {
			require.Contains(t, m["errMsg"], n, m)
		}
	}

	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", camssbx.DemoAccessKeyID)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret)
	st, m := call(alicloud.NewCredentialSource(), &envelope.Input{})
	check(st, m, "SignatureDoesNotMatch", "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")

	st, m = call(alicloud.NewCredentialSource(), &envelope.Input{Credentials: &envelope.Credentials{AccessKeyID: "STS.nobody", AccessKeySecret: secret, SecurityToken: "tok"}})
	check(st, m, "InvalidAccessKeyId.NotFound", "role credentials")
	require.NotContains(t, m["errMsg"], "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "the FC context's credentials, not the variables")

	sbx.Inject(sandbox.Fault{Path: "/", Kind: sandbox.FaultStatus, Status: 400,
		Body: `{"RequestId":"r1","Code":"InvalidAccessKeyId.Inactive","Message":"Specified access key is disabled."}`, Times: 1})
	st, m = call(alicloud.NewCredentialSource(), &envelope.Input{})
	check(st, m, "InvalidAccessKeyId.Inactive", "ALIBABA_CLOUD_ACCESS_KEY_ID")
}
