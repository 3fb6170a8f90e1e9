package denom

import (
	"fmt"
	"maps"
	"slices"

	"github.com/otpcash/otpcash/amount"
)

// Plan is how one payment moves coins: Send from the payer to the payee,
// Change from the payee back to the payer. Send.Total() - Change.Total()
// is the amount paid.
type Plan struct {
	Send, Change Counts
}

// Moved returns the number of coins the plan moves in both directions.
func (p Plan) Moved() int { return p.Send.Len() + p.Change.Len() }

// UnpayableError says why no plan pays an amount: what the payer holds,
// and the nearest amount above it the payer's coins make, with the change
// the payee would have to give and what it has.
type UnpayableError struct {
	Amount     int64
	PayerTotal int64
	Payee      Counts
	Nearest    int64 // the least amount above Amount the payer's coins make; 0 if none
}

func (e *UnpayableError) Error() string {
	switch {
	case e.PayerTotal < e.Amount:
		return fmt.Sprintf("cannot pay %s: the payer holds %s in all", amount.Format(e.Amount), amount.Format(e.PayerTotal))
	case e.Nearest == 0:
		return fmt.Sprintf("cannot pay %s exactly: no combination of the payer's coins makes it or more within the limits", amount.Format(e.Amount))
	case e.Payee.Len() == 0:
		return fmt.Sprintf("cannot pay %s exactly: the payer's coins reach %s at the nearest, and the payee has no coins to give %s in change",
			amount.Format(e.Amount), amount.Format(e.Nearest), amount.Format(e.Nearest-e.Amount))
	default:
		return fmt.Sprintf("cannot pay %s exactly: the payer's coins reach %s at the nearest, and the payee cannot give %s in change from its %s",
			amount.Format(e.Amount), amount.Format(e.Nearest), amount.Format(e.Nearest-e.Amount), e.Payee)
	}
}

func (e *UnpayableError) Unwrap() error { return ErrUnpayable }

// Best returns the plan that pays amt moving the fewest coins in both
// directions together, Send from the payer's coins and Change from the
// payee's (which may be empty: then only an exact payment will do). Among
// plans moving as few coins, it takes the one with the least change, then
// the fewest coins sent. No plan: an *UnpayableError (ErrUnpayable) that
// says what is missing. The search covers change up to the payee's total
// and sums up to 2^22 units of the values' greatest common divisor (about
// 42,000.00 for cents); beyond that it fails with ErrTooLarge.
func Best(amt int64, payer, payee Counts) (Plan, error) {
	if amt <= 0 {
		return Plan{}, fmt.Errorf("%w: %d is not positive", ErrAmount, amt)
	}
	have := payer.Total()
	if have < amt {
		return Plan{}, &UnpayableError{Amount: amt, PayerTotal: have, Payee: payee}
	}
	most := min(have-amt, payee.Total()) // the most change worth asking for
	unit := append(slices.Collect(maps.Keys(payer)), slices.Collect(maps.Keys(payee))...)
	send, err := newTable(amt+most, payer, unit...)
	if err != nil {
		return Plan{}, fmt.Errorf("plan %s: %w", amount.Format(amt), err)
	}
	back, err := newTable(most, payee, unit...)
	if err != nil {
		return Plan{}, fmt.Errorf("plan %s: %w", amount.Format(amt), err)
	}
	step := gcd(send.unit, back.unit)
	found, bestT, bestCost := false, int64(0), int64(0)
	for t := int64(0); t <= most; t += step {
		a, b := send.coins(amt+t), back.coins(t)
		if a == unreachable || b == unreachable {
			continue
		}
		// Ties go to the earlier, smaller change.
		if cost := int64(a) + int64(b); !found || cost < bestCost {
			found, bestT, bestCost = true, t, cost
		}
	}
	if !found {
		return Plan{}, &UnpayableError{Amount: amt, PayerTotal: have, Payee: payee, Nearest: nearest(amt, have, payer, unit)}
	}
	return Plan{Send: send.counts(amt + bestT), Change: back.counts(bestT)}, nil
}

// nearest returns the least amount above amt the payer's coins make, for
// an error message; 0 if there is none within bounds.
func nearest(amt, have int64, payer Counts, unit []int64) int64 {
	t, err := newTable(have, payer, unit...)
	if err != nil {
		return 0
	}
	for s := (amt/t.unit + 1) * t.unit; s <= have; s += t.unit {
		if t.reachable(s) {
			return s
		}
	}
	return 0
}

// Greedy plans the payment the way people do at a till: coins largest
// first while they fit; if that is not exact, the smallest further coin
// that covers the rest, and the payee gives the difference largest first.
// It is the yardstick for Best; ErrUnpayable when it finds no plan.
func Greedy(amt int64, payer, payee Counts) (Plan, error) {
	if amt <= 0 {
		return Plan{}, fmt.Errorf("%w: %d is not positive", ErrAmount, amt)
	}
	send, rest := takeLargest(amt, payer)
	if rest == 0 {
		return Plan{Send: send}, nil
	}
	left := maps.Clone(payer)
	for v, n := range send {
		left.add(v, -n)
	}
	for _, v := range slices.Sorted(maps.Keys(left)) {
		if v < rest || left[v] == 0 {
			continue
		}
		change, short := takeLargest(v-rest, payee)
		if short != 0 {
			continue
		}
		plan := Plan{Send: maps.Clone(send), Change: change}
		plan.Send.add(v, 1)
		if len(plan.Change) == 0 {
			plan.Change = nil
		}
		return plan, nil
	}
	return Plan{}, fmt.Errorf("%w: greedy finds no plan for %s", ErrUnpayable, amount.Format(amt))
}

// takeLargest takes coins largest first while they fit into amt and
// returns them with what is left of amt.
func takeLargest(amt int64, coins Counts) (Counts, int64) {
	took := Counts{}
	for _, v := range slices.Backward(slices.Sorted(maps.Keys(coins))) {
		if k := min(int64(coins[v]), amt/v); k > 0 {
			took.add(v, int(k))
			amt -= k * v
		}
	}
	return took, amt
}
