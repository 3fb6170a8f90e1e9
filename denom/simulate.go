package denom

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Simulation is the setting of Simulate: a customer paying a shop, both
// holding coins of Set.
type Simulation struct {
	Set      Set
	Payments int    // how many payments
	Max      int64  // amounts are uniform in 0.01..Max
	Seed     uint64 // for the amounts
	// The customer starts with Purse, withdrawn as Set.Withdrawal gives
	// it. When it holds less than Max, or cannot pay, it goes online:
	// withdraws Purse more and re-denominates all its coins for a fresh
	// mix (as otpcash wallet redenominate does). The shop starts with a float of
	// Float, and every Bank payments deposits its takings and starts again
	// from a fresh float.
	Purse, Float int64
	Bank         int
}

// Stats summarises coins moved per payment.
type Stats struct {
	Mean     float64
	P99, Max int
	Failed   int // payments the method found no plan for (Best: before going online)
}

// SimulationResult compares Best, Greedy and the paper's scheme of one
// 1.00 coin per euro, which moves ceil(amount) coins and cannot pay cents
// (counted as paying the amount rounded up, the most favourable reading).
type SimulationResult struct {
	Best, Greedy, Paper Stats
	TopUps              int // times the customer went online after the start
}

// Simulate pays Payments random amounts from a customer to a shop,
// planning each with Best and moving those coins (change flows back), and
// asks Greedy and the paper's scheme what they would have moved in the
// same state.
func Simulate(sim Simulation) (SimulationResult, error) {
	if err := sim.Set.Validate(); err != nil {
		return SimulationResult{}, err
	}
	if sim.Payments < 1 || sim.Max < 1 || sim.Purse < sim.Max || sim.Bank < 1 {
		return SimulationResult{}, fmt.Errorf("simulation: want payments, max, bank >= 1 and purse >= max")
	}
	r := rand.New(rand.NewPCG(sim.Seed, 0x6f7470636173682e))
	customer, err := sim.Set.Withdrawal(sim.Purse)
	if err != nil {
		return SimulationResult{}, err
	}
	shop, err := sim.Set.Withdrawal(sim.Float)
	if err != nil {
		return SimulationResult{}, err
	}
	var best, greedy, paper []int
	var res SimulationResult
	for i := range sim.Payments {
		if i > 0 && i%sim.Bank == 0 {
			shop, _ = sim.Set.Withdrawal(sim.Float)
		}
		amt := 1 + r.Int64N(sim.Max)
		online := func() error {
			res.TopUps++
			customer, err = sim.Set.Withdrawal(customer.Total() + sim.Purse)
			return err
		}
		if customer.Total() < sim.Max {
			if err := online(); err != nil {
				return res, err
			}
		}
		p, err := Best(amt, customer, shop)
		if err != nil {
			res.Best.Failed++
			if err := online(); err != nil {
				return res, err
			}
			if p, err = Best(amt, customer, shop); err != nil {
				return res, fmt.Errorf("payment %d of %d: %w", i, amt, err)
			}
		}
		if g, err := Greedy(amt, customer, shop); err == nil {
			greedy = append(greedy, g.Moved())
		} else {
			res.Greedy.Failed++
		}
		best = append(best, p.Moved())
		paper = append(paper, int((amt+99)/100))
		for v, n := range p.Send {
			customer.add(v, -n)
			shop.add(v, n)
		}
		for v, n := range p.Change {
			shop.add(v, -n)
			customer.add(v, n)
		}
	}
	res.Best = summarise(best, res.Best.Failed)
	res.Greedy = summarise(greedy, res.Greedy.Failed)
	res.Paper = summarise(paper, 0)
	return res, nil
}

func summarise(moved []int, failed int) Stats {
	s := Stats{Failed: failed}
	if len(moved) == 0 {
		return s
	}
	sum := 0
	for _, m := range moved {
		sum += m
	}
	sorted := slices.Sorted(slices.Values(moved))
	s.Mean = float64(sum) / float64(len(moved))
	s.P99 = sorted[(len(sorted)*99+99)/100-1]
	s.Max = sorted[len(sorted)-1]
	return s
}
