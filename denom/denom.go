package denom

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/otpcash/otpcash/amount"
)

// Errors callers can test with errors.Is.
var (
	ErrAmount    = errors.New("amount cannot be made from the denominations")
	ErrUnpayable = errors.New("no combination of coins pays the amount")
	ErrNoDefault = errors.New("no default denominations for the currency")
	ErrSet       = errors.New("invalid denominations")
	ErrTooLarge  = errors.New("amount too large to plan")
)

// Set is a currency's denominations, ascending, positive, distinct.
type Set []int64

// euro is the euro's 8 coins and 7 notes, in cents.
var euro = Set{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000}

// Default returns the denominations of currency: the euro's coins and notes
// for EUR. Other currencies have none built in and must be configured.
func Default(currency string) (Set, error) {
	if currency == "EUR" {
		return slices.Clone(euro), nil
	}
	return nil, fmt.Errorf("%w %q: configure the denominations explicitly", ErrNoDefault, currency)
}

// Parse reads a comma-separated list of amounts ("0.01,0.02,1,2") as a
// Set, sorted ascending.
func Parse(s string) (Set, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: the list is empty", ErrSet)
	}
	var set Set
	for i, f := range strings.Split(s, ",") {
		v, err := amount.Parse(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %w", ErrSet, i+1, err)
		}
		set = append(set, v)
	}
	slices.Sort(set)
	if err := set.Validate(); err != nil {
		return nil, err
	}
	return set, nil
}

// Validate checks that s is ascending, positive and distinct.
func (s Set) Validate() error {
	if len(s) == 0 {
		return fmt.Errorf("%w: no denominations", ErrSet)
	}
	for i, v := range s {
		switch {
		case v <= 0:
			return fmt.Errorf("%w: %s is not positive", ErrSet, amount.Format(v))
		case i > 0 && v == s[i-1]:
			return fmt.Errorf("%w: %s is listed twice", ErrSet, amount.Format(v))
		case i > 0 && v < s[i-1]:
			return fmt.Errorf("%w: %s comes after %s: list them ascending", ErrSet, amount.Format(v), amount.Format(s[i-1]))
		}
	}
	return nil
}

// Contains reports whether v is one of the denominations.
func (s Set) Contains(v int64) bool {
	_, ok := slices.BinarySearch(s, v)
	return ok
}

// String writes s as Parse reads it.
func (s Set) String() string {
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = amount.Format(v)
	}
	return strings.Join(parts, ",")
}

// Counts is a multiset of coins: how many coins of each value.
type Counts map[int64]int

// CountsOf counts a list of coin values, as the peer-to-peer messages
// carry them.
func CountsOf(values []int64) Counts {
	c := make(Counts, len(values))
	for _, v := range values {
		c[v]++
	}
	return c
}

// Total returns the value of all the coins; math.MaxInt64 if it overflows.
func (c Counts) Total() int64 {
	var t int64
	for v, n := range c {
		if n <= 0 || v <= 0 {
			continue
		}
		if v > (math.MaxInt64-t)/int64(n) {
			return math.MaxInt64
		}
		t += v * int64(n)
	}
	return t
}

// Len returns the number of coins.
func (c Counts) Len() int {
	n := 0
	for _, k := range c {
		n += max(k, 0)
	}
	return n
}

// String writes the coins largest first, as "2x2.00 + 1x0.50"; "none"
// when there are none.
func (c Counts) String() string {
	var parts []string
	for _, v := range slices.Backward(slices.Sorted(maps.Keys(c))) {
		if c[v] > 0 {
			parts = append(parts, fmt.Sprintf("%dx%s", c[v], amount.Format(v)))
		}
	}
	if parts == nil {
		return "none"
	}
	return strings.Join(parts, " + ")
}

// add adds k coins of value v, dropping the entry at zero.
func (c Counts) add(v int64, k int) {
	if c[v] += k; c[v] == 0 {
		delete(c, v)
	}
}

// Withdrawal decomposes amount into a mix of the set's denominations that
// can make change: a change kit first, then the rest largest first.
//
// The kit is built up the set from its smallest value: coins of each value
// are added until the kit can pay, exactly, every amount below the next
// value (for the euro: 0.01, 2x0.02, 0.05, 0.10, 2x0.20, 0.50 pay every
// amount up to 1.10), and the kit stops growing before its value would
// exceed half the amount. So a wallet can pay any amount up to the kit's
// value exactly, with the kit alone; Reach reports that bound.
func (s Set) Withdrawal(amt int64) (Counts, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if amt <= 0 {
		return nil, fmt.Errorf("%w: %d is not positive", ErrAmount, amt)
	}
	kit, kitValue := s.kit(amt)
	rest, err := s.fewest(amt - kitValue)
	if err != nil {
		return nil, fmt.Errorf("%w: %s in %s", ErrAmount, amount.Format(amt), s)
	}
	for v, n := range rest {
		kit.add(v, n)
	}
	return kit, nil
}

// Reach returns the largest amount r such that every multiple of the
// smallest denomination up to r can be paid exactly from the kit
// Withdrawal(amt) includes.
func (s Set) Reach(amt int64) int64 {
	_, reach := s.kit(amt)
	return reach
}

// kit returns the change kit for a withdrawal of amt, and its value: it
// pays every multiple of s[0] up to its value.
func (s Set) kit(amt int64) (Counts, int64) {
	kit := Counts{}
	var reach int64
	for i := 0; i+1 < len(s); i++ {
		add := Counts{}
		r := reach
		for r < s[i+1]-s[0] {
			if s[i] > r+s[0] || r+s[i] > amt/2 {
				// A coin that leaves a gap, or a kit worth more than
				// half the withdrawal: stop here.
				return kit, reach
			}
			add.add(s[i], 1)
			r += s[i]
		}
		for v, n := range add {
			kit.add(v, n)
		}
		reach = r
	}
	return kit, reach
}

// fewest makes amt from unlimited coins of the set with the fewest coins:
// largest first when that is exact (it is for real currencies), else by
// dynamic programming.
func (s Set) fewest(amt int64) (Counts, error) {
	c := Counts{}
	rest := amt
	for _, v := range slices.Backward(s) {
		if k := rest / v; k > 0 {
			c.add(v, int(k))
			rest -= k * v
		}
	}
	if rest == 0 {
		return c, nil
	}
	unlimited := Counts{}
	for _, v := range s {
		unlimited[v] = int(min(amt/v, math.MaxInt32))
	}
	return exact(amt, unlimited)
}

// exact makes amt from the coins with the fewest coins.
func exact(amt int64, coins Counts) (Counts, error) {
	t, err := newTable(amt, coins)
	if err != nil {
		return nil, err
	}
	if !t.reachable(amt) {
		return nil, ErrUnpayable
	}
	return t.counts(amt), nil
}
