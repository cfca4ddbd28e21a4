// Command hellolambda is a test fixture: a plain aws-lambda-go function.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Action  string `json:"action"`
	Ms      int    `json:"ms"`
	RawPath string `json:"rawPath"`
	Body    string `json:"body"`
}

func main() {
	lambda.Start(func(ctx context.Context, ev event) (any, error) {
		lc, _ := lambdacontext.FromContext(ctx)
		if ev.RawPath != "" && ev.Body != "" {
			// An HTTP trigger event: the action is in the body.
			var inner event
			if json.Unmarshal([]byte(ev.Body), &inner) == nil {
				ev.Action, ev.Ms = inner.Action, inner.Ms
			}
		}
		switch ev.Action {
		case "panic":
			panic("hello panics")
		case "sleep":
			time.Sleep(time.Duration(ev.Ms) * time.Millisecond)
		}
		if ev.RawPath != "" {
			b, _ := json.Marshal(map[string]any{"path": ev.RawPath, "echo": ev.Body})
			return map[string]any{"statusCode": 201, "headers": map[string]string{"X-Hello": "aws"}, "body": string(b)}, nil
		}
		fmt.Println("hello handled", lc.AwsRequestID)
		return map[string]any{"hello": "aws", "pid": os.Getpid(), "requestId": lc.AwsRequestID}, nil
	})
}
