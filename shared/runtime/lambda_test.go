package runtime

import (
	"context"
	"testing"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/stretchr/testify/require"
)

// Through the SDK's own handler path (what lambda.Start serves), the
// function sees the payload's bytes as they came: text after the first JSON
// value is refused, not dropped ({charge}{"httpMethod":"GET"} charged on
// --platform aws: a re-tester), and malformed JSON is the envelope's -1001,
// not the SDK's SyntaxError function error.
func TestLambdaSeesThePayloadAsItCame(t *testing.T) {
	sdk := lambda.NewHandler(lambdaBytes{validatingHandler(t, "openapi.logistics.getQuota")})
	for payload, says := range map[string]string{
		`{"deliveryId":"YTO","bizId":"xyz"}{"httpMethod":"GET"}`: "after",
		`{"deliveryId":"YTO","bizId":"xyz"} xyz`:                 "after top-level value",
		`{"deliveryId":`:                                         "not valid JSON",
	} {
		out, err := sdk.Invoke(context.Background(), []byte(payload))
		require.NoError(t, err, payload)
		msg, _, _ := errMsgOf(t, out)
		require.Contains(t, msg, "openapi.logistics.getQuota:fail invalid input", payload)
		require.Contains(t, msg, says, payload)
	}
	out, err := sdk.Invoke(context.Background(), []byte(`{"deliveryId":"YTO","bizId":"xyz"}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"errCode":0,"errMsg":"openapi.logistics.getQuota:ok","quotaNum":1}`, string(out))
}
