package bank_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/internal/banktest"
	"github.com/otpcash/otpcash/otp"
)

// BenchmarkDeposit deposits batches of 100 coins, each paid once, through
// the HTTP API and the SQLite store: decode, verification, one
// transaction.
func BenchmarkDeposit(b *testing.B) {
	const batch = 100
	e := banktest.New(b, bank.Config{})
	ctx := context.Background()
	payer, payerToken := e.Account(b, 0)
	payee, payeeToken := e.Account(b, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if _, err := e.Bank.Credit(ctx, payer, batch*100); err != nil {
			b.Fatal(err)
		}
		req := banktest.DepositRequest(b, payee, e.Pay(b, e.Withdraw(b, payer, payerToken, batch)))
		b.StartTimer()
		resp, err := e.Client.Deposit(ctx, payeeToken, req)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range resp.Results {
			if r.Status != api.StatusCredited {
				b.Fatalf("coin not credited: %+v", r)
			}
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "coins/s")
}

// BenchmarkWithdraw withdraws batches of 100 blind-signed coins through the
// HTTP API and the SQLite store: the wallet's blinding before and
// unblinding after are not timed, the bank's blind signing is.
func BenchmarkWithdraw(b *testing.B) {
	const batch = 100
	e := banktest.New(b, bank.Config{})
	ctx := context.Background()
	payer, payerToken := e.Account(b, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		if _, err := e.Bank.Credit(ctx, payer, batch*100); err != nil {
			b.Fatal(err)
		}
		key, _, blinded := e.BlindCoins(b, otp.GeneralProgramName, batch)
		req := api.WithdrawRequest{ID: fmt.Sprint("bench-", i), Account: payer, KeyID: key.KeyID, Blinded: blinded}
		b.StartTimer()
		if _, err := e.Client.Withdraw(ctx, payerToken, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "coins/s")
}
