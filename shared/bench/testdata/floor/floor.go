// Package floor is what the first-response floors share: the bare net/http
// requests a function's first call makes to its vendor, one per line of
// BENCH_FLOOR_CALLS ("METHOD<tab>URL<tab>BODY"), with BENCH_FLOOR_AUTH as an
// optional Authorization header.
package floor

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// Calls makes the requests of BENCH_FLOOR_CALLS in order.
func Calls(ctx context.Context) error {
	for _, line := range strings.Split(strings.TrimSpace(os.Getenv("BENCH_FLOOR_CALLS")), "\n") {
		method, rest, _ := strings.Cut(line, "\t")
		url, body, _ := strings.Cut(rest, "\t")
		if err := call(ctx, method, url, body); err != nil {
			return err
		}
	}
	return nil
}

func call(ctx context.Context, method, url, body string) error {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if a := os.Getenv("BENCH_FLOOR_AUTH"); a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode >= 500 {
		return fmt.Errorf("vendor answered HTTP %d", resp.StatusCode)
	}
	return nil
}
