//go:build race

package redisrecords_test

import "time"

// Under the race detector every goroutine runs several times slower; the
// conformance run's 200 concurrent first dials get a longer bound there
// (the default, 1 s, is what the plain run and production use).
const testTimeout = 5 * time.Second
