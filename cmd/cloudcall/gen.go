package main

import (
	"context"
	"fmt"
	"io"
)

// runGen is built under issue 9.
func runGen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return fmt.Errorf("not built yet (issue 9)")
}
