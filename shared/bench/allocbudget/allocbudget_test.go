package allocbudget

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		name        string
		got, budget float64
		fails       bool
	}{
		{"under", 90, 100, false},
		{"equal", 100, 100, false},
		{"at the tolerance", 110, 100, false},
		{"just over", 111, 100, true},
		{"far over", 200, 100, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Verdict("f", tc.got, tc.budget)
			if !tc.fails {
				require.Empty(t, v)
				return
			}
			require.Contains(t, v, "f allocates")
			require.Contains(t, v, "over its budget of 100")
			require.Contains(t, v, UpdateEnv+"=1")
		})
	}
}

func TestMeasureCountsAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not comparable under -race")
	}
	var sink [][]byte
	got := Measure(50, func() { sink = append(sink[:0], make([]byte, 64), make([]byte, 64)) })
	require.InDelta(t, 2, got, 0.1)
	_ = sink
}

func TestEveryFunctionHasABudget(t *testing.T) {
	for _, fn := range []string{"logistics-get-quota", "ck1-pricing-inbound-box", "cams-query-chatapp-bind-waba", "top-launch-extra-charge", "quota-alert"} {
		b, err := Budget(fn)
		require.NoError(t, err, fn)
		require.Positive(t, b, fn)
	}
	_, err := Budget("no-such-function")
	require.ErrorContains(t, err, "no allocation budget for no-such-function")
}
