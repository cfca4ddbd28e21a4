// Command hello is the cold-start floor: the platform SDK and nothing else.
// It answers {} on FC go1 or, when the Lambda runtime API is set, on Lambda.
package main

import (
	"context"
	"os"

	"github.com/aliyun/fc-runtime-go-sdk/fc"
	"github.com/aws/aws-lambda-go/lambda"
)

func handle(context.Context, map[string]any) (map[string]any, error) { return map[string]any{}, nil }

func main() {
	if os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" {
		lambda.Start(handle)
		return
	}
	fc.Start(handle)
}
