// Command hellofc is a test fixture: a plain fc-runtime-go-sdk function.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/aliyun/fc-runtime-go-sdk/fc"
	"github.com/aliyun/fc-runtime-go-sdk/fccontext"
)

type event struct {
	Action  string `json:"action"`
	Ms      int    `json:"ms"`
	RawPath string `json:"rawPath"`
	Body    string `json:"body"`
}

func main() {
	fc.Start(func(ctx context.Context, ev event) (any, error) {
		fctx, _ := fccontext.FromContext(ctx)
		switch ev.Action {
		case "panic":
			panic("hello panics")
		case "log":
			fmt.Fprintln(os.Stderr, "hello logs for "+fctx.RequestID)
		case "sleep":
			time.Sleep(time.Duration(ev.Ms) * time.Millisecond)
		}
		out := map[string]any{"hello": "fc", "pid": os.Getpid(), "requestId": fctx.RequestID, "function": fctx.Function.Name}
		if ev.RawPath != "" {
			b, _ := json.Marshal(map[string]any{"path": ev.RawPath, "echo": ev.Body})
			return map[string]any{"statusCode": 201, "headers": map[string]string{"X-Hello": "fc"}, "body": string(b)}, nil
		}
		return out, nil
	})
}
