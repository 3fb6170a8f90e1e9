package vault

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkPayment measures the vaults' share of a payment of a batch of
// coins: Seal, Receive and Destroy, each one durable transaction. The cost
// per coin should stay flat as batches grow.
func BenchmarkPayment(b *testing.B) {
	for _, n := range []int{1, 50, 500} {
		b.Run(fmt.Sprint("coins=", n), func(b *testing.B) {
			ctx := context.Background()
			is := newIssuer(b)
			alice, _ := newVault(b)
			bob, _ := newVault(b)
			values := make([]int64, n)
			for i := range values {
				values[i] = 1
			}
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				is.withdraw(b, alice, fmt.Sprint("w", i), values...)
				coins := held(b, alice)
				is.refill(b, bob, n)
				keys, err := bob.OfferExchangeKeys(ctx, n)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				sealed, err := alice.Purse("bob").Seal(ctx, coins, keys)
				if err != nil {
					b.Fatal(err)
				}
				acks, _, err := bob.Receive(ctx, "alice", sealed)
				if err != nil {
					b.Fatal(err)
				}
				if err := alice.Purse("bob").Destroy(ctx, sealed, acks); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/coin")
		})
	}
}
