//go:build !race

package redisrecords_test

import "time"

// testTimeout 0 keeps the package default.
const testTimeout time.Duration = 0
