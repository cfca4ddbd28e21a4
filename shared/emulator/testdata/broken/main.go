// Command broken is a test fixture: a binary that fails at start.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "fatal: WECHAT_APPID is not set (fixture)")
	os.Exit(3)
}
