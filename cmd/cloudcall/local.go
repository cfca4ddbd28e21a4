package main

import (
	"context"
	"fmt"
	"io"
)

// runLocal is built under issue 3.
func runLocal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return fmt.Errorf("not built yet (issue 3)")
}
