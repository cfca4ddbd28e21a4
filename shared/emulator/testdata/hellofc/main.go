// Command hellofc is a test fixture: a plain fc-runtime-go-sdk function.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aliyun/fc-runtime-go-sdk/fc"
	"github.com/aliyun/fc-runtime-go-sdk/fccontext"
)

type event struct {
	Action  string `json:"action"`
	Ms      int    `json:"ms"`
	Lines   int    `json:"lines"`
	RawPath string `json:"rawPath"`
	Body    string `json:"body"`
}

func main() {
	fc.Start(func(ctx context.Context, ev event) (any, error) {
		fctx, _ := fccontext.FromContext(ctx)
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
		case "log":
			fmt.Fprintln(os.Stderr, "hello logs for "+fctx.RequestID)
		case "shout":
			// One line of Ms bytes on stdout and one on stderr at once.
			done := make(chan struct{})
			go func() { fmt.Fprintln(os.Stderr, "err:"+strings.Repeat("y", ev.Ms)); close(done) }()
			fmt.Println("out:" + strings.Repeat("x", ev.Ms))
			<-done
		case "chatty":
			// Lines numbered lines of 100 bytes on stderr: the console's
			// bounds on what it keeps and streams.
			for i := range ev.Lines {
				fmt.Fprintf(os.Stderr, "chatty %06d %s\n", i, strings.Repeat("c", 86))
			}
			fmt.Fprintln(os.Stderr, "chatty done "+fctx.RequestID)
		case "sleep":
			time.Sleep(time.Duration(ev.Ms) * time.Millisecond)
		case "grow":
			// Ms megabytes, touched, held a second: the memory limit's test.
			b := make([]byte, ev.Ms<<20)
			for i := range b {
				b[i] = 1
			}
			time.Sleep(time.Second)
			fmt.Println(len(b))
		}
		fmt.Println("hello handled", fctx.RequestID)
		out := map[string]any{"hello": "fc", "pid": os.Getpid(), "requestId": fctx.RequestID, "function": fctx.Function.Name}
		if ev.RawPath != "" {
			b, _ := json.Marshal(map[string]any{"path": ev.RawPath, "echo": ev.Body})
			return map[string]any{"statusCode": 201, "headers": map[string]string{"X-Hello": "fc"}, "body": string(b)}, nil
		}
		return out, nil
	})
}
