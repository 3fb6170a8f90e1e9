package vault

import "slices"

// The exact-subset search is bounded in memory (one int32 per possible
// sum) and in steps (coins times sums), keeping Select within a few
// megabytes and tens of milliseconds.
const (
	maxSubsetSums = 1 << 20
	maxSubsetWork = 1 << 24
)

// choose returns the indices of values, which are sorted largest first,
// that add up to exactly amount; nil if it finds none. Taking the largest
// coin that still fits is nearly always exact for real denominations; when
// it is not, a subset-sum search over the coins decides.
func choose(values []int64, amount int64) []int {
	var pick []int
	rest := amount
	for i, v := range values {
		if v <= rest {
			pick = append(pick, i)
			rest -= v
		}
	}
	if rest == 0 {
		return pick
	}
	return exactSubset(values, amount)
}

// exactSubset solves subset-sum by dynamic programming over the sums up to
// amount, in units of the values' greatest common divisor. Coins are tried
// in order, so sums are first reached with larger coins.
func exactSubset(values []int64, amount int64) []int {
	g := amount
	for _, v := range values {
		if v <= 0 {
			return nil
		}
		g = gcd(g, v)
	}
	target := amount / g
	if target > maxSubsetSums || target*int64(len(values)) > maxSubsetWork {
		return nil
	}
	// by[s] is the coin with which sum s was first reached, plus one; the
	// rest of s was reached with earlier coins only.
	by := make([]int32, target+1)
	reached := func(s int64) bool { return s == 0 || by[s] != 0 }
	for i, v := range values {
		w := v / g
		for s := target; s >= w; s-- {
			if by[s] == 0 && reached(s-w) {
				by[s] = int32(i + 1)
			}
		}
	}
	if !reached(target) {
		return nil
	}
	var pick []int
	for s := target; s > 0; {
		i := int(by[s] - 1)
		pick = append(pick, i)
		s -= values[i] / g
	}
	slices.Sort(pick)
	return pick
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
