package main

import (
	"context"
	"fmt"
	"io"
)

// runBench is built under issue 11.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return fmt.Errorf("not built yet (issue 11)")
}
