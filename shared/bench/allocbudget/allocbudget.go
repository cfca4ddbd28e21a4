// Package allocbudget is the benchmark regression guard: allocations per
// call of each function, measured in-process against its sandbox, compared
// with a committed budget (budgets/<function>.txt). A test fails when a
// function allocates more than 10 % over its budget. Allocation counts do
// not move with the machine's load, so the guard holds on any machine;
// time is never asserted.
package allocbudget

import (
	"embed"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Tolerance is the growth over budget that fails the guard.
const Tolerance = 0.10

// UpdateEnv, set to 1, makes Check write the measured figure as the new
// budget instead of comparing (after a deliberate change; commit the file).
const UpdateEnv = "CLOUDCALL_UPDATE_ALLOC_BUDGET"

//go:embed budgets
var budgets embed.FS

// Budget is the committed allocations per call of fn.
func Budget(fn string) (float64, error) {
	b, err := budgets.ReadFile("budgets/" + fn + ".txt")
	if err != nil {
		return 0, fmt.Errorf("no allocation budget for %s: run `%s=1 go test ./...` and commit shared/bench/allocbudget/budgets/%s.txt: %w", fn, UpdateEnv, fn, err)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		return 0, fmt.Errorf("allocation budget for %s: %w", fn, err)
	}
	return v, nil
}

// Verdict compares a measurement with a budget: "" when within the
// tolerance, else what failed.
func Verdict(fn string, got, budget float64) string {
	if got <= budget*(1+Tolerance) {
		return ""
	}
	return fmt.Sprintf("%s allocates %.0f times per call, %.0f%% over its budget of %.0f (the guard allows %.0f%%). "+
		"Find the new allocations with `go test -run '^$' -bench . -benchmem -memprofile mem.out` and `go tool pprof -sample_index=alloc_objects`; "+
		"if the growth is deliberate, run the test with %s=1 and commit shared/bench/allocbudget/budgets/%s.txt.",
		fn, got, 100*(got/budget-1), budget, 100*Tolerance, UpdateEnv, fn)
}

// Measure is the allocations per call of call, averaged over runs
// (testing.AllocsPerRun: GOMAXPROCS 1, one warm-up call first).
func Measure(runs int, call func()) float64 { return testing.AllocsPerRun(runs, call) }

// Check measures call and compares it with fn's budget, or writes the
// budget when UpdateEnv is set. Under the race detector allocation counts
// are not comparable, so it skips.
func Check(t testing.TB, fn string, runs int, call func()) {
	t.Helper()
	if raceEnabled {
		t.Skip("allocation counts are not comparable under -race; `make test` runs the guard without it")
	}
	got := Measure(runs, call)
	if os.Getenv(UpdateEnv) == "1" {
		path := filepath.Join(sourceDir(), "budgets", fn+".txt")
		if err := os.WriteFile(path, []byte(strconv.Itoa(int(math.Ceil(got)))+"\n"), 0o644); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
		t.Logf("%s: budget set to %.0f allocations per call in %s", fn, math.Ceil(got), path)
		return
	}
	budget, err := Budget(fn)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %.1f allocations per call, budget %.0f (+%.0f%% allowed)", fn, got, budget, 100*Tolerance)
	if v := Verdict(fn, got, budget); v != "" {
		t.Fatal(v)
	}
	if got < budget*(1-Tolerance) {
		t.Logf("%s allocates %.0f times per call, well under its budget of %.0f: lower the budget (%s=1) so the guard keeps the gain", fn, got, budget, UpdateEnv)
	}
}

// sourceDir is this package's directory (the budgets are written next to it).
func sourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}
