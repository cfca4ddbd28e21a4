// Command hellorecords is the charge's records floor: hellocall plus the
// store round trips that make a charge at most once, made as plainly as they
// can be. BENCH_FLOOR_STORE_BEFORE writes (SET NX with an expiry, each on a
// key of its own under BENCH_FLOOR_STORE_PREFIX) go to the Redis at
// BENCH_FLOOR_REDIS before the vendor calls (package floor, as hellocall
// makes them), and BENCH_FLOOR_STORE_AFTER after them. The client
// is dialled in the background at start, as the charge's warm-up does. It
// answers {} on FC go1.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/aliyun/fc-runtime-go-sdk/fc"
	"github.com/redis/go-redis/v9"

	calls "github.com/cloudcall/cloudcall/shared/bench/testdata/floor"
)

type floor struct {
	rdb           *redis.Client
	prefix        string
	before, after int
}

func (f *floor) writes(ctx context.Context, n int, what string) error {
	for i := range n {
		key := fmt.Sprintf("%s%d:%s:%d", f.prefix, os.Getpid(), what, i)
		if err := f.rdb.SetNX(ctx, key, "x", time.Minute).Err(); err != nil {
			return fmt.Errorf("store write: %w", err)
		}
	}
	return nil
}

func (f *floor) handle(ctx context.Context, _ map[string]any) (map[string]any, error) {
	if err := f.writes(ctx, f.before, "before"); err != nil {
		return nil, err
	}
	if err := calls.Calls(ctx); err != nil {
		return nil, err
	}
	if err := f.writes(ctx, f.after, "after"); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

func main() {
	opt, err := redis.ParseURL(os.Getenv("BENCH_FLOOR_REDIS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "hellorecords: BENCH_FLOOR_REDIS:", err)
		os.Exit(2)
	}
	before, _ := strconv.Atoi(os.Getenv("BENCH_FLOOR_STORE_BEFORE"))
	after, _ := strconv.Atoi(os.Getenv("BENCH_FLOOR_STORE_AFTER"))
	f := &floor{rdb: redis.NewClient(opt), prefix: os.Getenv("BENCH_FLOOR_STORE_PREFIX"), before: before, after: after}
	go f.rdb.Ping(context.Background())
	fc.Start(f.handle)
}
