package bench

import (
	"fmt"
	"math"
	"slices"
)

// Spread summarises per-round ratios: each round measured both sides back
// to back, so a ratio is taken on the same machine at the same moment, and
// the p10–p90 band shows how much the machine's noise moved it.
type Spread struct {
	N             int
	P10, P50, P90 float64
	Unit          string // what each ratio came from: "rounds" (default) or "blocks"
}

func spreadOf(v []float64) Spread {
	if len(v) == 0 {
		return Spread{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return Spread{N: len(s), P10: fpct(s, 0.10), P50: fmedian(s), P90: fpct(s, 0.90)}
}

// fpct is the nearest-rank percentile of sorted values.
func fpct(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// fmedian is the middle value (the mean of the two middle ones for an even
// count).
func fmedian(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// String is "1.07× (p10–p90 1.02–1.12×, 7 rounds)".
func (s Spread) String() string {
	if s.N == 0 {
		return "–"
	}
	unit := s.Unit
	if unit == "" {
		unit = "rounds"
	}
	return fmt.Sprintf("%.2f× (p10–p90 %.2f–%.2f×, %d %s)", s.P50, s.P10, s.P90, s.N, unit)
}
