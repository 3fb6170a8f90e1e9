package bank_test

import (
	"context"
	"slices"
	"testing"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/internal/banktest"
)

func TestRevocations(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	ctx := context.Background()
	cat := e.Bank.Catalogue()
	empty, err := e.Client.Revocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.Verify(cat); err != nil || len(empty.Keys) != 0 {
		t.Fatalf("fresh bank's list: %+v, %v; want empty and signed", empty, err)
	}

	payer, payerToken := e.Account(t, 200)
	b, bToken := e.Account(t, 0)
	coins := e.Withdraw(t, payer, payerToken, 2)
	first, second := e.Pay(t, coins), e.Pay(t, coins[:1])
	for _, d := range []struct {
		token string
		req   api.DepositRequest
	}{
		{bToken, banktest.DepositRequest(t, b, first)},
		{bToken, banktest.DepositRequest(t, b, second)},
	} {
		if _, err := e.Client.Deposit(ctx, d.token, d.req); err != nil {
			t.Fatal(err)
		}
	}
	list, err := e.Client.Revocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := list.Verify(cat); err != nil {
		t.Fatalf("revocation list does not verify under the catalogue's root: %v", err)
	}
	twice := coins[0].Sandbox.Coin.Data.Holder
	if !slices.Equal(list.Keys, []string{twice}) {
		t.Fatalf("revoked keys %v; want only %s, the key that signed coin 0 away twice", list.Keys, twice)
	}
}
