// Package amount parses and formats money amounts, for apps as for the
// command line. Amounts are integers in minor units (cents) everywhere in
// otpcash; text is written in currency units with at most two decimals
// ("7", "7.5", "7.00", "12.34").
//
// Guarantees: Parse refuses anything else (zero, a sign, a third decimal,
// an exponent, overflow) with an error wrapping ErrInvalid, and what it
// accepts, Format writes back as the same amount.
//
// Where to start: Parse what a user typed, Format what a wallet reports.
package amount

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every error Parse returns.
var ErrInvalid = errors.New("invalid amount")

// Parse reads a positive amount in currency units and returns it in minor
// units. Zero, negative, more than two decimals and overflow are refused.
func Parse(s string) (int64, error) {
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || !digits(whole) || (hasDot && (frac == "" || !digits(frac))) {
		return 0, fmt.Errorf("%w %q: write a positive number of units with at most two decimals, like 7 or 7.50", ErrInvalid, s)
	}
	if len(frac) > 2 {
		return 0, fmt.Errorf("%w %q: at most two decimals (cents)", ErrInvalid, s)
	}
	units, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || units > (math.MaxInt64-99)/100 {
		return 0, fmt.Errorf("%w %q: too large", ErrInvalid, s)
	}
	cents := int64(0)
	if frac != "" {
		cents, _ = strconv.ParseInt((frac + "0")[:2], 10, 64)
	}
	v := units*100 + cents
	if v <= 0 {
		return 0, fmt.Errorf("%w %q: must be more than zero", ErrInvalid, s)
	}
	return v, nil
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Format writes minor units as currency units with two decimals.
func Format(minor int64) string {
	sign := ""
	if minor < 0 {
		sign = "-"
		minor = -minor
	}
	return fmt.Sprintf("%s%d.%02d", sign, minor/100, minor%100)
}
