package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"
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

// BenchmarkOfferExchangeKeys measures what a payee's session pays to list
// its exchange keys, with 5,000 certified: as remembered ("remembered":
// nothing changed them, or only this vault's own writes, which update the
// list), and read again ("read again": every certified key's version read
// and the list sorted, as after another process's commit, and as every
// listing was before the list was remembered).
func BenchmarkOfferExchangeKeys(b *testing.B) {
	ctx := context.Background()
	is := newIssuer(b)
	v, _ := newVaultOn(b, "")
	for range 10 {
		is.certify(b, v, 500, time.Now().Add(time.Hour))
	}
	for _, again := range []bool{false, true} {
		b.Run(map[bool]string{false: "remembered", true: "read again"}[again], func(b *testing.B) {
			if _, err := v.ExchangeKeyCount(ctx); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				v.mem.certsWhole = v.mem.certsWhole && !again
				if _, err := v.OfferExchangeKeys(ctx, 500); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRecord measures sealing and opening one coin record (a coin
// two hops on, with both receipts, a reclaim record and a refusal), in the
// record form of ebc9f3a (encoding/json) and in form 2, with the
// plaintext's size.
func BenchmarkRecord(b *testing.B) {
	s, err := newSealer(make([]byte, dataKeySize))
	if err != nil {
		b.Fatal(err)
	}
	h := recordExamples(b)["coin"].(*holding)
	id := s.id(kindCoin, []byte("x"))
	forms := []struct {
		name      string
		marshal   func(any) ([]byte, error)
		unmarshal func([]byte, any) error
	}{
		{"json", json.Marshal, json.Unmarshal},
		{"cbor", marshalRecord, unmarshalRecord},
	}
	for _, f := range forms {
		plain, err := f.marshal(h)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("seal/"+f.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p, err := f.marshal(h)
				if err != nil {
					b.Fatal(err)
				}
				s.sealPlain(kindCoin, id, "held", nil, p)
			}
			b.ReportMetric(float64(len(plain)), "B/record")
		})
		blob := s.sealPlain(kindCoin, id, "held", nil, plain)
		b.Run("open/"+f.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p, err := s.openPlain(kindCoin, id, "held", nil, blob)
				if err != nil {
					b.Fatal(err)
				}
				var v holding
				if err := f.unmarshal(p, &v); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(plain)), "B/record")
		})
	}
}

// BenchmarkPayable measures what a payment pays to list the coins it can
// choose from, in a vault holding 2,000 coins.
func BenchmarkPayable(b *testing.B) {
	ctx := context.Background()
	is := newIssuer(b)
	v, _ := newVaultOn(b, "")
	values := make([]int64, 500)
	for i := range values {
		values[i] = 1
	}
	for i := range 4 {
		is.withdraw(b, v, fmt.Sprint("w", i), values...)
	}
	for b.Loop() {
		coins, err := v.Payable(ctx, "EUR", "")
		if err != nil || len(coins) != 2000 {
			b.Fatal(len(coins), err)
		}
	}
}
