package alicloud_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cloudcall/cloudcall/shared/alicloud"
	"github.com/cloudcall/cloudcall/shared/envelope"
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
	require.Equal(t, alicloud.Credentials{AccessKeyID: "STS.fc", AccessKeySecret: "fc-secret", SecurityToken: "fc-token"}, got)

	got, err = src.Resolve(&envelope.Input{})
	require.NoError(t, err)
	require.Equal(t, alicloud.Credentials{AccessKeyID: "LTAI-env", AccessKeySecret: "env-secret", SecurityToken: "env-sts"}, got)

	static := alicloud.StaticSource(alicloud.Credentials{AccessKeyID: "AK", AccessKeySecret: "SK"})
	got, err = static.Resolve(nil)
	require.NoError(t, err)
	require.Equal(t, alicloud.Credentials{AccessKeyID: "AK", AccessKeySecret: "SK"}, got)
}
