// Command hellocall is the first-response floor: the hello floor plus the
// bare net/http requests the function's first call makes to its vendor, with
// a token the bench fetched beforehand. BENCH_FLOOR_CALLS holds one request
// per line, "METHOD<tab>URL<tab>BODY"; BENCH_FLOOR_AUTH is an optional
// Authorization header. It answers {} on FC go1.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/aliyun/fc-runtime-go-sdk/fc"
)

func handle(ctx context.Context, _ map[string]any) (map[string]any, error) {
	for _, line := range strings.Split(strings.TrimSpace(os.Getenv("BENCH_FLOOR_CALLS")), "\n") {
		method, rest, _ := strings.Cut(line, "\t")
		url, body, _ := strings.Cut(rest, "\t")
		if err := call(ctx, method, url, body); err != nil {
			return nil, err
		}
	}
	return map[string]any{}, nil
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

func main() { fc.Start(handle) }
