package vault

import (
	"context"
	"testing"

	"github.com/otpcash/otpcash/otp"
)

// TestReclaimKeyPerSeal: the coins sealed in one transaction share one
// reclaim key, each with its own authorisation and proof that verify;
// coins sealed in another get another key.
func TestReclaimKeyPerSeal(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	payer, _ := newVault(t)
	payee, _ := newVault(t)
	is.withdraw(t, payer, "w1", 100, 100, 100, 100, 100)
	is.refill(t, payee, 5)
	keys, err := payee.OfferExchangeKeys(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	coins := held(t, payer)
	chunk := map[string]int{} // token: the Seal that sealed it
	for n, part := range [][2]int{{0, 3}, {3, 5}} {
		sealed, err := payer.Purse("payee").Seal(ctx, coins[part[0]:part[1]], keys[part[0]:part[1]])
		if err != nil {
			t.Fatal(err)
		}
		for _, sb := range sealed {
			chunk[sb.Coin.Data.Token] = n
		}
	}
	items, err := payer.ReclaimItems(ctx, "acct-1", func(*otp.Coin) bool { return true })
	if err != nil || len(items) != 5 {
		t.Fatalf("reclaim items: %d, %v; want 5", len(items), err)
	}
	keyOf := map[int]string{}
	auths := map[string]bool{}
	for _, it := range items {
		if err := it.Sandbox.VerifyReclaim(it.Auth, it.Key, it.Proof, "acct-1"); err != nil {
			t.Fatalf("coin %.12s: %v", it.Sandbox.Coin.Data.Token, err)
		}
		n := chunk[it.Sandbox.Coin.Data.Token]
		if k, ok := keyOf[n]; ok && k != it.Key {
			t.Fatalf("seal %d: coins with reclaim keys %.12s and %.12s; want one", n, k, it.Key)
		}
		keyOf[n] = it.Key
		if auths[it.Auth] {
			t.Fatalf("coin %.12s: an authorisation another coin has", it.Sandbox.Coin.Data.Token)
		}
		auths[it.Auth] = true
	}
	if keyOf[0] == keyOf[1] {
		t.Fatalf("two seals share reclaim key %.12s", keyOf[0])
	}
}
