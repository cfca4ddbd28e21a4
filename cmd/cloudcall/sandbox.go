package main

import (
	"context"
	"fmt"
	"io"
)

// runSandbox is built under issue 3.
func runSandbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return fmt.Errorf("not built yet (issue 3)")
}
