package emulator_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/emulator/runtimeapi"
)

// BenchmarkInvokeLatency reports p50/p99 of warm invocations through the
// emulator (pool → runtime API → the hello binary) at 1 and 32 callers.
func BenchmarkInvokeLatency(b *testing.B) {
	for _, p := range []runtimeapi.Platform{runtimeapi.FC, runtimeapi.Lambda} {
		for _, callers := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/callers=%d", p, callers), func(b *testing.B) {
				bin := fixtures["hellofc"]
				if p == runtimeapi.Lambda {
					bin = fixtures["hellolambda"]
				}
				e := emulator.New(emulator.Options{Platform: p, Functions: []emulator.FunctionConfig{{Name: "hello", Binary: bin, Timeout: 5 * time.Second, MaxInstances: 4}}})
				defer e.Close()
				for i := 0; i < 8; i++ { // warm up every instance
					_, _, _ = e.Invoke(context.Background(), "hello", []byte(`{}`))
				}
				lat := make([]time.Duration, b.N)
				var wg sync.WaitGroup
				next := make(chan int)
				b.ResetTimer()
				for c := 0; c < callers; c++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range next {
							start := time.Now()
							if _, _, err := e.Invoke(context.Background(), "hello", []byte(`{}`)); err != nil {
								b.Error(err)
							}
							lat[i] = time.Since(start)
						}
					}()
				}
				for i := 0; i < b.N; i++ {
					next <- i
				}
				close(next)
				wg.Wait()
				b.StopTimer()
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			})
		}
	}
}

// BenchmarkColdStart is exec → first response of the hello binaries.
func BenchmarkColdStart(b *testing.B) {
	for _, p := range []runtimeapi.Platform{runtimeapi.FC, runtimeapi.Lambda} {
		b.Run(string(p), func(b *testing.B) {
			bin := fixtures["hellofc"]
			if p == runtimeapi.Lambda {
				bin = fixtures["hellolambda"]
			}
			for i := 0; i < b.N; i++ {
				in, err := emulator.StartInstance(emulator.InstanceConfig{Binary: bin, Platform: p})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := in.Invoke(context.Background(), runtimeapi.Invocation{Payload: []byte(`{}`), Timeout: 5 * time.Second}); err != nil {
					b.Fatal(err)
				}
				in.Stop()
			}
		})
	}
}
