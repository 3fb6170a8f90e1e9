package wallet

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/p2p"
)

// newMerchant is a holder whose wallet gets exchange keys certified with
// its account's attributes.
func (b *testBank) newMerchant(t testing.TB, attrs map[string]string) *holder {
	t.Helper()
	ctx := context.Background()
	id, token, err := b.CreateAccountWithAttrs(ctx, attrs)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "wallet")
	w, err := Init(ctx, dir, b.url, []byte("123456"), Options{
		PINHashing: cheap,
		ConfirmSAS: func(context.Context, string) bool { return true },
		Merchant:   &Account{ID: id, Token: token},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return &holder{w: w, dir: dir, account: id, token: token}
}

// payProgram is pay with coins of one program.
func payProgram(t testing.TB, from, to *holder, value int64, program string) (payErr, recvErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Go(func() { _, recvErr = to.w.Receive(context.Background(), ln) })
	_, payErr = from.w.Pay(context.Background(), ln.Addr().String(), value, "groceries", WithProgram(program))
	ln.Close() // a payment refused before it dialled leaves Receive waiting
	wg.Wait()
	return payErr, recvErr
}

// TestPayPrograms: a grocery voucher is refused offline by the payer for
// a shop of another category, with the reason, and nothing changes; it
// pays a grocer, who deposits it.
func TestPayPrograms(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	alice := b.newHolder(t, 300)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 200, WithProgram("grocery-voucher")); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 100); err != nil {
		t.Fatal(err)
	}
	bal := alice.balance(t)
	if bal.Held != 300 || bal.Programs["grocery-voucher"].Held != 200 || bal.Programs["general"].Held != 100 {
		t.Fatalf("balance %+v", bal)
	}
	shop := b.newMerchant(t, map[string]string{"category": "electronics"})
	grocer := b.newMerchant(t, map[string]string{"category": "grocery"})

	tests := []struct {
		name    string
		to      *holder
		program string
		value   int64
		want    error
		reason  string
		held    int64 // alice's vouchers afterwards
	}{
		{"voucher at the electronics shop", shop, "grocery-voucher", 100, otp.ErrCondition,
			`payee.category in ["grocery", "supermarket"]: payee.category = "electronics"`, 200},
		{"more vouchers than held", grocer, "grocery-voucher", 300, ErrInsufficient, "", 200},
		{"voucher at the grocer", grocer, "grocery-voucher", 200, nil, "", 0},
		{"general coins by default only", shop, "general", 100, nil, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.to.balance(t)
			var offered string // the program the payee was asked to accept
			tt.to.w.opts.ConfirmOffer = func(_ context.Context, o Offer) bool { offered = o.Program; return true }
			defer func() { tt.to.w.opts.ConfirmOffer = nil }()
			payErr, _ := payProgram(t, alice, tt.to, tt.value, tt.program)
			if !errors.Is(payErr, tt.want) || tt.reason != "" && !strings.Contains(payErr.Error(), tt.reason) {
				t.Fatalf("Pay = %v; want %v with %q", payErr, tt.want, tt.reason)
			}
			if tt.want == nil && offered != tt.program {
				t.Fatalf("the payee was offered program %q; want %q", offered, tt.program)
			}
			if got := alice.balance(t).Programs["grocery-voucher"]; got.Held != tt.held || got.PendingOut != 0 {
				t.Fatalf("alice's vouchers %+v; want %d held", got, tt.held)
			}
			if tt.want != nil && tt.to.balance(t).Held != before.Held {
				t.Fatalf("the payee received coins of a refused payment")
			}
		})
	}
	res, err := grocer.w.Deposit(ctx, grocer.acct())
	if err != nil || res.Credited != 200 || len(res.Refused) != 0 {
		t.Fatalf("grocer's deposit %+v, %v", res, err)
	}
}

// TestPayeeChecksConditions: a payer that skips its own check (here, by
// sealing straight from its vault) still cannot make a payee accept a coin
// whose conditions fail for it.
func TestPayeeChecksConditions(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	alice := b.newHolder(t, 100)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 100, WithProgram("grocery-voucher")); err != nil {
		t.Fatal(err)
	}
	shop := b.newMerchant(t, map[string]string{"category": "electronics"})
	coins, err := alice.w.v.SelectProgram(ctx, 100, "EUR", "grocery-voucher")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := shop.w.v.OfferExchangeKeys(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := alice.w.v.Purse("shop").Seal(ctx, coins, keys)
	if err != nil {
		t.Fatal(err)
	}
	h := &payee{w: shop.w, p: Payment{Peer: "alice"}, offer: p2p.Offer{Amount: 100, Currency: "EUR", Program: "grocery-voucher"}}
	_, _, err = h.accept(ctx, sealed, true)
	if !errors.Is(err, otp.ErrCondition) || !strings.Contains(err.Error(), `payee.category = "electronics"`) {
		t.Fatalf("accept = %v; want %v naming the category", err, otp.ErrCondition)
	}
	if bal := shop.balance(t); bal.Held != 0 {
		t.Fatalf("shop holds %d after refusing", bal.Held)
	}
}

func TestWithdrawUnknownProgram(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	alice := b.newHolder(t, 100)
	_, err := alice.w.Withdraw(ctx, alice.acct(), 100, WithProgram("casino-chips"))
	if !errors.Is(err, otp.ErrUnknownKey) || !strings.Contains(err.Error(), "has general, grocery-voucher, max-hops") {
		t.Fatalf("Withdraw = %v; want %v listing the programs", err, otp.ErrUnknownKey)
	}
	if bal := alice.balance(t); bal.Held != 0 || len(bal.Programs) != 0 {
		t.Fatalf("balance %+v", bal)
	}
	// Nothing was debited: the whole balance is still there to withdraw.
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 100, WithProgram("max-hops")); err != nil {
		t.Fatal(err)
	}
	if bal := alice.balance(t); bal.Programs["max-hops"].Held != 100 {
		t.Fatalf("balance %+v", bal)
	}
}
