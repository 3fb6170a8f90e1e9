package denom

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkChange10000 pays 10,000 random amounts from 0.01 to 200.00 (the
// issue's experiment) and reports coins moved per payment: mean and 99th
// percentile for Best, Greedy and the paper's one coin per euro.
func BenchmarkChange10000(b *testing.B) {
	eur, _ := Default("EUR")
	for b.Loop() {
		res, err := Simulate(Simulation{Set: eur, Payments: 10000, Max: 20000, Seed: 1, Purse: 50000, Float: 10000, Bank: 10})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.Best.Mean, "best-mean")
		b.ReportMetric(float64(res.Best.P99), "best-p99")
		b.ReportMetric(res.Greedy.Mean, "greedy-mean")
		b.ReportMetric(float64(res.Greedy.P99), "greedy-p99")
		b.ReportMetric(res.Paper.Mean, "paper-mean")
		b.ReportMetric(float64(res.Paper.P99), "paper-p99")
	}
}

// BenchmarkBest plans one payment between two realistic purses: about 200
// coins each side, amounts up to 500.00.
func BenchmarkBest(b *testing.B) {
	eur, _ := Default("EUR")
	r := rand.New(rand.NewPCG(3, 4))
	payer, payee := randomPurse(r, eur[:12], 400), randomPurse(r, eur[:10], 400)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Best(1+r.Int64N(min(50000, payer.Total())), payer, payee); err != nil {
			b.Fatal(err)
		}
	}
}
