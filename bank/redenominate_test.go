package bank_test

import (
	"bytes"
	"testing"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/internal/banktest"
	"github.com/otpcash/otpcash/otp"
)

// TestRedenominationAlias: POST /v1/exchanges, the deprecated path of
// re-denominations, is the same operation as POST /v1/redenominations for
// as long as it is served: a request sent to both is applied once and
// answered alike, a fresh one through the alias is carried out, and every
// answer of the alias names its successor.
func TestRedenominationAlias(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	id, token := e.Account(t, 2*banktest.TestValue)
	held := e.Withdraw(t, id, token, 2)
	request := func(rid string, coin banktest.Held) api.RedenominationRequest {
		key, _, blinded := e.BlindCoins(t, otp.GeneralProgramName, 1)
		return api.RedenominationRequest{ID: rid, Account: id, Coins: banktest.DepositRequest(t, id, []banktest.Held{coin}).Coins,
			Withdraw: []api.WithdrawBatch{{KeyID: key.KeyID, Blinded: blinded}}}
	}

	req := request("r-1", held[0])
	primary := call(t, e, "POST", "/v1/redenominations", token, req)
	var resp api.RedenominationResponse
	decodeOK(t, primary, &resp)
	if primary.header.Get("Deprecation") != "" {
		t.Errorf("POST /v1/redenominations says it is deprecated: %q", primary.header.Get("Deprecation"))
	}
	before := state(t, e)
	alias := call(t, e, "POST", "/v1/exchanges", token, req)
	if alias.status != 200 || !bytes.Equal(alias.body, primary.body) {
		t.Fatalf("the same request through the alias: %d %s; want the answer of the first, %s", alias.status, alias.body, primary.body)
	}
	sameState(t, before, state(t, e))
	for h, want := range map[string]string{"Deprecation": "@1796428800", "Link": `</v1/redenominations>; rel="successor-version"`} {
		if got := alias.header.Get(h); got != want {
			t.Errorf("alias answer: %s %q, want %q", h, got, want)
		}
	}

	fresh := call(t, e, "POST", "/v1/exchanges", token, request("r-2", held[1]))
	decodeOK(t, fresh, &resp)
	if len(resp.BlindSignatures) != 1 || len(resp.BlindSignatures[0]) != 1 {
		t.Fatalf("a fresh request through the alias: %s", fresh.body)
	}
	if bal := e.Balance(t, id, token); bal != 0 {
		t.Errorf("balance after two re-denominations: %d, want 0 (unchanged)", bal)
	}
	if got := state(t, e); got.IssuedCoins != before.IssuedCoins+1 || got.DepositedCoins != before.DepositedCoins+1 {
		t.Errorf("coins issued %d, deposited %d; want one more each than %d, %d", got.IssuedCoins, got.DepositedCoins, before.IssuedCoins, before.DepositedCoins)
	}
}
