package vault

import (
	"context"
	"errors"
	"testing"

	"github.com/otpcash/otpcash/otp"
)

// changeFixture: Alice pays Bob 3.00 with a 5.00 coin and Bob owes her a
// 2.00 coin in change.
type changeFixture struct {
	is         *issuer
	alice, bob *Vault
	five, two  otp.Sandbox // Alice's 5.00 coin, Bob's 2.00 coin
	agreement  ChangeAgreement
	keys       []otp.ExchangeKey // Bob's keys for the payment
}

func newChangeFixture(t *testing.T) *changeFixture {
	t.Helper()
	ctx := context.Background()
	f := &changeFixture{is: newIssuer(t)}
	f.alice, _ = newVault(t)
	f.bob, _ = newVault(t)
	f.is.withdraw(t, f.alice, "a", 500)
	f.is.withdraw(t, f.bob, "b", 200)
	f.five, f.two = held(t, f.alice)[0], held(t, f.bob)[0]
	f.is.refill(t, f.alice, 2)
	f.is.refill(t, f.bob, 2)
	to, err := f.alice.PromiseExchangeKeys(ctx, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.agreement = ChangeAgreement{Peer: "alice", Change: []string{f.two.Coin.Data.Token}, To: to,
		Send: []int64{500}, Currency: "EUR", Program: f.five.Coin.Data.Program}
	if f.keys, err = f.bob.PromiseExchangeKeys(ctx, 1, &f.agreement); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestChangeGivenWithPayment(t *testing.T) {
	ctx := context.Background()
	f := newChangeFixture(t)
	// Promised keys are never offered again: Alice and Bob each have one
	// of their two keys left.
	for _, v := range []*Vault{f.alice, f.bob} {
		if n, err := v.ExchangeKeyCount(ctx); err != nil || n != 1 {
			t.Fatalf("offerable keys after a promise: %d, %v; want 1", n, err)
		}
	}
	sealed, err := f.alice.Purse("bob").Seal(ctx, []otp.Sandbox{f.five}, f.keys)
	if err != nil {
		t.Fatal(err)
	}
	acks, change, err := f.bob.Receive(ctx, "alice", sealed)
	if err != nil {
		t.Fatal(err)
	}
	if len(acks) != 1 || len(change) != 1 || change[0].Coin.Data.Token != f.two.Coin.Data.Token || change[0].Holder() != f.agreement.To[0].Pub {
		t.Fatalf("receive gave %d acks and change %+v; want the 2.00 coin sealed to Alice's key", len(acks), change)
	}
	if got := states(t, f.bob)[f.two.Coin.Data.Token]; len(got) != 1 || got[0] != PendingOut {
		t.Fatalf("Bob's change coin is %v, want pending-out", got)
	}
	pending, err := f.bob.PendingOut(ctx, "alice")
	if err != nil || len(pending) != 1 {
		t.Fatalf("Bob's pending-out to Alice: %d, %v", len(pending), err)
	}
	// The payment re-sent (its receipt lost) is acknowledged again and
	// gives no second change.
	again, change2, err := f.bob.Receive(ctx, "alice", sealed)
	if err != nil || len(change2) != 0 || again[0] != acks[0] {
		t.Fatalf("re-sent payment: change %d, %v", len(change2), err)
	}
	// Alice takes the change on the key she promised, and Bob settles.
	if err := f.is.ver.VerifySandbox(&change[0]); err != nil {
		t.Fatal(err)
	}
	cacks, _, err := f.alice.Receive(ctx, "bob", change)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.bob.Purse("alice").Destroy(ctx, change, cacks); err != nil {
		t.Fatal(err)
	}
	if err := f.alice.Purse("bob").Destroy(ctx, sealed, acks); err != nil {
		t.Fatal(err)
	}
	if h := held(t, f.alice); len(h) != 1 || h[0].Coin.Data.Value != 200 {
		t.Fatalf("Alice holds %+v, want the 2.00 coin", h)
	}
	if h := held(t, f.bob); len(h) != 1 || h[0].Coin.Data.Value != 500 {
		t.Fatalf("Bob holds %+v, want the 5.00 coin", h)
	}
}

func TestChangeRefusedWhenItCannotBeGiven(t *testing.T) {
	ctx := context.Background()
	f := newChangeFixture(t)
	// Bob spends his 2.00 coin elsewhere before Alice's payment arrives.
	carol, _ := newVault(t)
	f.is.pay(t, f.bob, carol, []otp.Sandbox{f.two})
	sealed, err := f.alice.Purse("bob").Seal(ctx, []otp.Sandbox{f.five}, f.keys)
	if err != nil {
		t.Fatal(err)
	}
	before := states(t, f.bob)
	if _, _, err := f.bob.Receive(ctx, "alice", sealed); !errors.Is(err, ErrState) {
		t.Fatalf("receive without the change to give: %v, want ErrState", err)
	}
	if after := states(t, f.bob); !sameStates(before, after) {
		t.Fatalf("a refused payment changed Bob's coins: %v -> %v", before, after)
	}
	// The payment stays pending-out at Alice, to be re-sent.
	if pending, _ := f.alice.PendingOut(ctx, "bob"); len(pending) != 1 {
		t.Fatalf("Alice has %d coins pending-out, want 1", len(pending))
	}
}

func TestPromiseNeedsHeldChange(t *testing.T) {
	ctx := context.Background()
	f := newChangeFixture(t)
	a := f.agreement
	a.Change = []string{f.five.Coin.Data.Token}
	if _, err := f.bob.PromiseExchangeKeys(ctx, 1, &a); err == nil {
		t.Fatal("Bob promised change in a coin he does not hold")
	}
	if n, _ := f.bob.ExchangeKeyCount(ctx); n != 1 {
		t.Fatalf("a refused promise used keys: %d offerable, want 1", n)
	}
}

func sameStates(a, b map[string][]State) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w := b[k]
		if len(v) != len(w) {
			return false
		}
		for i := range v {
			if v[i] != w[i] {
				return false
			}
		}
	}
	return true
}

func TestDueAdmits(t *testing.T) {
	d := &due{Value: 300, Currency: "EUR", Program: "general"}
	coin := func(value int64, currency, program string) *otp.Coin {
		return &otp.Coin{Data: otp.Data{Value: value, Currency: currency, Program: program}}
	}
	for _, tt := range []struct {
		name string
		d    *due
		c    *otp.Coin
		ok   bool
	}{
		{"the coin proposed", d, coin(300, "EUR", "general"), true},
		{"a smaller value", d, coin(100, "EUR", "general"), false},
		{"a larger value", d, coin(500, "EUR", "general"), false},
		{"another currency", d, coin(300, "USD", "general"), false},
		{"another program", d, coin(300, "EUR", "grocery-voucher"), false},
		{"an agreement that names no coin", nil, coin(300, "EUR", "general"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.d.admits(tt.c)
			if tt.ok != (err == nil) || !tt.ok && !errors.Is(err, ErrNotAgreed) {
				t.Fatalf("admits = %v; want ok %v or %v", err, tt.ok, ErrNotAgreed)
			}
		})
	}
}
