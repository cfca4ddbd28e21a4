package runtime

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// startLambda serves the Lambda runtime API through the official SDK (build
// with -tags lambda.norpc: the bundle never uses the legacy go1.x RPC mode).
func startLambda(h *Handler) { lambda.Start(lambdaBytes{h}) }

// lambdaBytes is the SDK's Handler interface: the payload's bytes as they
// came. A json.RawMessage argument went through the SDK's json.Decoder,
// which reads the first value and drops what follows it ({charge}{...} ran
// the charge), and answered malformed JSON with a SyntaxError function
// error; the envelope refuses both, naming them, as on FC.
type lambdaBytes struct{ h *Handler }

func (l lambdaBytes) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var m Meta
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		m.RequestID = lc.AwsRequestID
	}
	return l.h.Invoke(ctx, payload, m), nil
}
