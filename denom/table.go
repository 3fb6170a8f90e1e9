package denom

import (
	"fmt"
	"math"
	"slices"
)

// Bounds on one plan: the sums searched (in units of the greatest common
// divisor of the values, so cents for the euro) and the table's cells.
// 2^22 cents is 41,943.04 euros; 2^24 cells of two bytes is 32 MiB.
const (
	maxUnits = 1 << 22
	maxCells = 1 << 24
)

const unreachable = math.MaxInt32

// table holds, for every sum up to its size, the fewest coins of a purse
// that make it, and which coins: a bounded knapsack solved one value at a
// time with a sliding-window minimum, so its cost is the number of values
// times the number of sums, whatever the counts.
type table struct {
	unit   int64
	values []int64    // ascending
	best   []int32    // best[s]: fewest coins making s units; unreachable if none
	pick   [][]uint16 // pick[i][s]: coins of values[i] in that best, given values[:i+1]
}

// newTable builds the table for sums up to size (minor units) from coins.
// Counts above 65535 coins of one value are taken as 65535.
func newTable(size int64, coins Counts, unit ...int64) (*table, error) {
	g := size
	for _, u := range unit {
		g = gcd(g, u)
	}
	values := make([]int64, 0, len(coins))
	for v, n := range coins {
		if v <= 0 {
			return nil, fmt.Errorf("%w: coin value %d", ErrSet, v)
		}
		if n > 0 {
			values = append(values, v)
			g = gcd(g, v)
		}
	}
	slices.Sort(values)
	if g == 0 {
		g = 1
	}
	n := size / g
	if n >= maxUnits || int64(len(values))*(n+1) > maxCells {
		return nil, fmt.Errorf("%w: %d units of %d", ErrTooLarge, n, g)
	}
	t := &table{unit: g, values: values, best: make([]int32, n+1), pick: make([][]uint16, len(values))}
	for s := range t.best {
		t.best[s] = unreachable
	}
	t.best[0] = 0
	next := make([]int32, n+1)
	window := make([]int64, 0, 64)
	for i, v := range values {
		w := v / g
		c := int64(min(coins[v], math.MaxUint16))
		pick := make([]uint16, n+1)
		for r := int64(0); r < w && r <= n; r++ {
			// Along r, r+w, r+2w...: next[j] is the least of
			// best[i'] + (j - i') over i' in [j-c, j], kept as a
			// deque of i' with best[i'] - i' increasing.
			window = window[:0]
			for j := int64(0); r+j*w <= n; j++ {
				if b := t.best[r+j*w]; b != unreachable {
					for len(window) > 0 && int64(t.best[r+window[len(window)-1]*w])-window[len(window)-1] >= int64(b)-j {
						window = window[:len(window)-1]
					}
					window = append(window, j)
				}
				for len(window) > 0 && window[0] < j-c {
					window = window[1:]
				}
				s := r + j*w
				if len(window) == 0 {
					next[s] = unreachable
					continue
				}
				k := j - window[0]
				next[s] = t.best[r+window[0]*w] + int32(k)
				pick[s] = uint16(k)
			}
		}
		t.best, next = next, t.best
		t.pick[i] = pick
	}
	return t, nil
}

// reachable reports whether the coins make amt exactly.
func (t *table) reachable(amt int64) bool {
	return amt >= 0 && amt%t.unit == 0 && amt/t.unit < int64(len(t.best)) && t.best[amt/t.unit] != unreachable
}

// coins returns the fewest coins making amt, or unreachable.
func (t *table) coins(amt int64) int32 {
	if !t.reachable(amt) {
		return unreachable
	}
	return t.best[amt/t.unit]
}

// counts returns the coins of a fewest-coins way to make amt, which must be
// reachable.
func (t *table) counts(amt int64) Counts {
	c := Counts{}
	s := amt / t.unit
	for i := len(t.values) - 1; i >= 0; i-- {
		if k := int(t.pick[i][s]); k > 0 {
			c.add(t.values[i], k)
			s -= int64(k) * (t.values[i] / t.unit)
		}
	}
	return c
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
