package bank_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/internal/banktest"
	"github.com/otpcash/otpcash/otp"
)

// TestReclaimBeforeDeadline asks the bank itself, not through a wallet
// that would decline to ask, to credit back a sealed coin whose payee can
// still deposit it: refused as not yet, up to the last second of the
// coin's deposit deadline, with nothing changed. The same request is
// credited once the deadline has passed, so the refusal is the
// deadline's and not the request's.
func TestReclaimBeforeDeadline(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	ctx := context.Background()
	payer, payerToken := e.Account(t, 100)
	held := e.Withdraw(t, payer, payerToken, 1)[0]
	sealed := e.Pay(t, []banktest.Held{held})[0].Sandbox // the payee never deposits it
	rpub, rpriv := banktest.NewKey(t)
	req := api.ReclaimRequest{Account: payer, Coins: []api.ReclaimCoin{banktest.ReclaimCoin(t, held, sealed, payer, rpub, rpriv)}}
	key, err := e.Bank.Catalogue().Key(sealed.Coin.Data.KeyID, otp.UseCoin)
	if err != nil {
		t.Fatal(err)
	}

	for _, when := range []struct {
		name string
		at   time.Time
	}{
		{"just after sealing", e.Clock.Now()},
		{"one second before the deposit deadline", key.DepositUntil.Add(-time.Second)},
	} {
		e.Clock.Advance(when.at.Sub(e.Clock.Now()))
		before := state(t, e)
		resp, err := e.Client.Reclaim(ctx, payerToken, req)
		if err != nil {
			t.Fatalf("%s: %v", when.name, err)
		}
		if r := resp.Results[0]; r.Status != api.StatusRefused || r.Code != api.CodeNotYet || resp.Balance != 0 {
			t.Fatalf("reclaim %s: %+v; want refused %s and the balance still 0", when.name, resp, api.CodeNotYet)
		}
		sameState(t, before, state(t, e))
	}

	e.Clock.Advance(key.DepositUntil.Add(time.Hour).Sub(e.Clock.Now()))
	resp, err := e.Client.Reclaim(ctx, payerToken, req)
	if err != nil || resp.Results[0].Status != api.StatusCredited || resp.Balance != banktest.TestValue {
		t.Fatalf("reclaim after the deadline: %+v, %v; want it credited", resp, err)
	}
	if ref := lastReference(t, e, payer, payerToken); !strings.HasPrefix(ref, "rcl-") {
		t.Fatalf("reclaim's ledger reference %q, want rcl-…", ref)
	}
}
