// Command hellocall is the first-response floor: the hello floor plus one
// bare net/http POST to the vendor endpoint the function calls, with a token
// the bench fetched beforehand (BENCH_FLOOR_URL, BENCH_FLOOR_BODY, and
// BENCH_FLOOR_AUTH for an Authorization header). It answers {} on FC go1.
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, os.Getenv("BENCH_FLOOR_URL"), strings.NewReader(os.Getenv("BENCH_FLOOR_BODY")))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if a := os.Getenv("BENCH_FLOOR_AUTH"); a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode >= 500 {
		return nil, fmt.Errorf("vendor answered HTTP %d", resp.StatusCode)
	}
	return map[string]any{}, nil
}

func main() { fc.Start(handle) }
