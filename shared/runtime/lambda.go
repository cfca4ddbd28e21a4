package runtime

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// startLambda serves the Lambda runtime API through the official SDK (build
// with -tags lambda.norpc: the bundle never uses the legacy go1.x RPC mode).
func startLambda(h *Handler) {
	lambda.Start(func(ctx context.Context, payload json.RawMessage) (json.RawMessage, error) {
		var m Meta
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			m.RequestID = lc.AwsRequestID
		}
		return h.Invoke(ctx, payload, m), nil
	})
}
