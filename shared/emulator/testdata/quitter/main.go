// Command quitter is a test fixture: an FC function that asks for work and
// exits 100 ms later, as a build with a bad background goroutine would.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aliyun/fc-runtime-go-sdk/fc"
)

func main() {
	go func() {
		time.Sleep(100 * time.Millisecond)
		fmt.Fprintln(os.Stderr, "quitter: giving up")
		os.Exit(3)
	}()
	fc.Start(func(ctx context.Context) (string, error) { return "ok", nil })
}
