package bank_test

import (
	"context"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/internal/banktest"
	"github.com/otpcash/otpcash/otp"
)

// TestReclaimSharedKey: a wallet reclaims the coins it sealed together
// with one reclaim key (vault), each under its own authorisation and
// proof. The bank credits them all, and refuses, with nothing changed, one
// coin's authorisation or proof offered for another: each signs its
// coin's checksum.
func TestReclaimSharedKey(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	ctx := context.Background()
	payer, payerToken := e.Account(t, 2*banktest.TestValue)
	held := e.Withdraw(t, payer, payerToken, 2)
	paid := e.Pay(t, held) // the payee never deposits them
	rpub, rpriv := banktest.NewKey(t)
	good := make([]api.ReclaimCoin, len(paid))
	for i := range paid {
		good[i] = banktest.ReclaimCoin(t, held[i], paid[i].Sandbox, payer, rpub, rpriv)
	}
	key, err := e.Bank.Catalogue().Key(paid[0].Sandbox.Coin.Data.KeyID, otp.UseCoin)
	if err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(key.DepositUntil.Add(time.Hour).Sub(e.Clock.Now()))

	otherProof, otherAuth := good[1], good[1]
	otherProof.Proof = good[0].Proof
	otherAuth.Authorization = good[0].Authorization
	for name, rc := range map[string]api.ReclaimCoin{
		"another coin's proof":         otherProof,
		"another coin's authorisation": otherAuth,
	} {
		before := state(t, e)
		resp, err := e.Client.Reclaim(ctx, payerToken, api.ReclaimRequest{Account: payer, Coins: []api.ReclaimCoin{rc}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r := resp.Results[0]; r.Status != api.StatusRefused || r.Code != api.CodeInvalidProof || resp.Balance != 0 {
			t.Fatalf("reclaim with %s: %+v; want refused %s and the balance still 0", name, resp, api.CodeInvalidProof)
		}
		sameState(t, before, state(t, e))
	}

	resp, err := e.Client.Reclaim(ctx, payerToken, api.ReclaimRequest{Account: payer, Coins: good})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resp.Results {
		if r.Status != api.StatusCredited {
			t.Fatalf("coin %d under the shared reclaim key: %+v; want credited", i, r)
		}
	}
	if resp.Balance != 2*banktest.TestValue {
		t.Fatalf("balance %d after reclaiming both coins, want %d", resp.Balance, 2*banktest.TestValue)
	}
}
