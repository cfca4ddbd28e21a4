// Package suggest names the known word closest to a mistyped one, for the
// "did you mean" of the CLI and the emulator's doors.
package suggest

import (
	"sort"
	"strings"
)

// Hint names the known word closest to a mistyped one ("invok",
// "top-launch-charge"), or says nothing when none is close: a suggestion
// that is far off misleads more than it helps.
func Hint(typed string, known []string) string {
	t := strings.ToLower(typed)
	best, bestD := "", 0
	for _, k := range known {
		d := editDistance(t, strings.ToLower(k))
		// Part of a known word ("ck1", "charge"), or most of it with a
		// piece left out ("top-launch-charge"), is as good a hint as a
		// near spelling.
		lk := strings.ToLower(k)
		if n := len(t); n >= 3 && (strings.Contains(lk, t) || 2*n >= len(lk) && subsequence(t, lk)) {
			d = min(d, 1)
		}
		if best == "" || d < bestD {
			best, bestD = k, d
		}
	}
	// At most a third of the word may be wrong, and never more than 4 edits.
	if best == "" || bestD > min(4, max(1, len([]rune(t))/3)) {
		return ""
	}
	return ` (did you mean "` + best + `"?)`
}

// HintAny is Hint over an unsorted set of names.
func HintAny[V any](typed string, known map[string]V) string {
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names) // ties go to the first name, the same every run
	return Hint(typed, names)
}

// subsequence says whether every byte of a appears in b, in order.
func subsequence(a, b string) bool {
	for i := 0; i < len(b) && a != ""; i++ {
		if b[i] == a[0] {
			a = a[1:]
		}
	}
	return a == ""
}

// editDistance is the edit distance in runes where a swap of two neighbours
// counts as one edit, as a typing slip does ("lcoal"), besides insert,
// delete and substitute (optimal string alignment).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
