package main

import (
	"context"
	"fmt"
	"io"
)

// runInvoke is built under issue 3.
func runInvoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return fmt.Errorf("not built yet (issue 3)")
}
