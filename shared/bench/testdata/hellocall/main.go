// Command hellocall is the first-response floor: the hello floor plus the
// bare net/http requests the function's first call makes to its vendor, with
// a token the bench fetched beforehand (package floor). It answers {} on
// FC go1.
package main

import (
	"context"

	"github.com/aliyun/fc-runtime-go-sdk/fc"

	"github.com/cloudcall/cloudcall/shared/bench/testdata/floor"
)

func handle(ctx context.Context, _ map[string]any) (map[string]any, error) {
	if err := floor.Calls(ctx); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

func main() { fc.Start(handle) }
