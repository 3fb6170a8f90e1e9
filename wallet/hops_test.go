package wallet

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/p2p"
)

// hopsWorld is a bank that allows coins of at most 2 transfers offline.
// Carol withdrew 4.00 and paid Alice 3.00 (three coins of 1 transfer);
// Alice paid Bob 1.00 (one coin of 2 transfers); Dave holds nothing.
func hopsWorld(t *testing.T, maxHops int) (alice, bob, dave *holder) {
	t.Helper()
	b := newBankOf(t, bank.Config{Denominations: denom.Set{100}, MaxHops: maxHops})
	carol := b.newHolder(t, 400)
	alice, bob, dave = b.newHolder(t, 0), b.newHolder(t, 0), b.newHolder(t, 0)
	if _, err := carol.w.Withdraw(context.Background(), carol.acct(), 400); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		from, to *holder
		value    int64
	}{{carol, alice, 300}, {alice, bob, 100}} {
		if _, payErr, _, recvErr := pay(t, p.from, p.to, p.value, nil); payErr != nil || recvErr != nil {
			t.Fatalf("pay %d: %v, %v", p.value, payErr, recvErr)
		}
	}
	return alice, bob, dave
}

// TestOfferShowsHops: the payee's confirmation sees the most transfers
// the coins will have made, counted from the coins the payer chose.
func TestOfferShowsHops(t *testing.T) {
	alice, bob, dave := hopsWorld(t, 0)
	var seen int
	dave.w.opts.ConfirmOffer = func(_ context.Context, o Offer) bool { seen = o.MaxHops; return true }
	if _, payErr, _, recvErr := pay(t, alice, dave, 100, nil); payErr != nil || recvErr != nil {
		t.Fatalf("pay: %v, %v", payErr, recvErr)
	}
	if seen != 2 {
		t.Errorf("Alice's coin of 1 transfer offered as %d hops, want 2", seen)
	}
	if _, payErr, _, recvErr := pay(t, bob, dave, 100, nil); payErr != nil || recvErr != nil {
		t.Fatalf("pay: %v, %v", payErr, recvErr)
	}
	if seen != 3 {
		t.Errorf("Bob's coin of 2 transfers offered as %d hops, want 3", seen)
	}
}

// TestLyingPayerHops: a payer that says its coins made fewer transfers
// than their chains show is refused when the coins arrive
// (ErrNotAsOffered), and the payee stores nothing; the same coin under a
// true offer is taken.
func TestLyingPayerHops(t *testing.T) {
	alice, _, dave := hopsWorld(t, 0)
	dave0, alice0 := purseOf(t, dave), purseOf(t, alice)
	lie := lie{offer: p2p.Offer{Amount: 100, Currency: "EUR", Program: "general", MaxHops: 1}, seal: []int64{100}}
	payErr, recvErr := payLying(t, alice, dave, lie)
	if payErr == nil || !errors.Is(recvErr, ErrNotAsOffered) || !strings.Contains(recvErr.Error(), "has made 2 transfers, the offer said at most 1") {
		t.Fatalf("payer %v; payee %v; want %v naming the hops", payErr, recvErr, ErrNotAsOffered)
	}
	if got := purseOf(t, dave); got != dave0 {
		t.Fatalf("the payee's purse changed: %s, was %s", got, dave0)
	}
	if got := purseOf(t, alice); got == alice0 {
		t.Fatal("the lying payer's coin is not pending-out")
	}
	truth := lie
	truth.offer.MaxHops = 2
	if payErr, recvErr := payLying(t, alice, dave, truth); payErr != nil || recvErr != nil {
		t.Fatalf("the true offer: payer %v, payee %v", payErr, recvErr)
	}
	if got := dave.balance(t); got.Held != 100 {
		t.Fatalf("the payee holds %d after the true offer, want 100", got.Held)
	}
}

// TestHopLimit: with the bank's maxHops at 2, an honest payer does not
// offer a coin whose next transfer would be the third, and the payee
// refuses, before handing out a key, a payer that offers one anyway
// (ErrOfflineLimit), and refuses such a coin when it arrives under an
// offer that understates it, storing nothing.
func TestHopLimit(t *testing.T) {
	ctx := context.Background()
	_, bob, dave := hopsWorld(t, 2)
	// Nobody listens there: only the limit can stop Pay before it dials.
	if _, err := bob.w.Pay(ctx, "127.0.0.1:1", 100, ""); !errors.Is(err, ErrInsufficient) || !strings.Contains(err.Error(), "have 0.00 EUR of program \"general\" payable offline") {
		t.Fatalf("Bob pays with his coin of 2 transfers: %v, want %v", err, ErrInsufficient)
	}
	noLimits(bob, bob.w.trust.Load().revIssued)
	tests := []struct {
		name  string
		claim int
		says  string
	}{
		{"offer beyond the limit", 3, "the payer offers coins of 3 transfers, the bank allows 2 offline"},
		{"offer within the limit, coin beyond", 2, "of 3 transfers, the bank allows 2 offline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dave0 := purseOf(t, dave)
			keys0, err := dave.w.v.ExchangeKeyCount(ctx)
			if err != nil {
				t.Fatal(err)
			}
			l := lie{offer: p2p.Offer{Amount: 100, Currency: "EUR", Program: "general", MaxHops: tt.claim}, seal: []int64{100}}
			payErr, recvErr := payLying(t, bob, dave, l)
			if payErr == nil || !errors.Is(recvErr, ErrOfflineLimit) || !strings.Contains(recvErr.Error(), tt.says) {
				t.Fatalf("payer %v; payee %v; want %v saying %q", payErr, recvErr, ErrOfflineLimit, tt.says)
			}
			if got := purseOf(t, dave); got != dave0 {
				t.Fatalf("the payee's purse changed: %s, was %s", got, dave0)
			}
			keys, err := dave.w.v.ExchangeKeyCount(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tt.claim > 2 && keys != keys0 {
				t.Errorf("exchange keys %d, then %d: keys handed out to an offer beyond the limit", keys0, keys)
			}
		})
	}
}

// TestHopLimitToken: a payment token's coins are held to the bank's
// maxHops when imported, and a refused token stores nothing; an honest
// payer's token is made only of coins within it.
func TestHopLimitToken(t *testing.T) {
	ctx := context.Background()
	alice, bob, dave := hopsWorld(t, 2)
	req, err := dave.w.Request(ctx, 100, "", time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.w.PayRequest(ctx, req.Text); !errors.Is(err, ErrInsufficient) {
		t.Fatalf("Bob pays the request with his coin of 2 transfers: %v, want %v", err, ErrInsufficient)
	}
	noLimits(bob, bob.w.trust.Load().revIssued)
	tp, err := bob.w.PayRequest(ctx, req.Text)
	if err != nil {
		t.Fatal(err)
	}
	dave0 := purseOf(t, dave)
	if _, err := dave.w.ReceiveToken(ctx, tp.Token); !errors.Is(err, ErrOfflineLimit) || !strings.Contains(err.Error(), "of 3 transfers, the bank allows 2") {
		t.Fatalf("ReceiveToken of a coin of 3 transfers: %v, want %v", err, ErrOfflineLimit)
	}
	if got := purseOf(t, dave); got != dave0 {
		t.Fatalf("the payee's purse changed: %s, was %s", got, dave0)
	}
	// The request is still open: a coin within the limit pays it.
	tp, err = alice.w.PayRequest(ctx, req.Text)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dave.w.ReceiveToken(ctx, tp.Token); err != nil {
		t.Fatalf("ReceiveToken of a coin of 2 transfers: %v", err)
	}
}

// changeHopsWorld is a bank that allows coins of at most 2 transfers
// offline. Dave withdrew a 5.00 coin; Bob holds two 1.00 coins of 2
// transfers (Carol withdrew them and paid Alice, who paid Bob), which a
// third transfer would take past the limit.
func changeHopsWorld(t *testing.T) (bob, dave *holder) {
	t.Helper()
	ctx := context.Background()
	b := newBankOf(t, bank.Config{Denominations: denom.Set{100, 500}, MaxHops: 2})
	carol, alice := b.newHolder(t, 200), b.newHolder(t, 0)
	bob, dave = b.newHolder(t, 0), b.newHolder(t, 500)
	for h, value := range map[*holder]int64{carol: 200, dave: 500} {
		if _, err := h.w.Withdraw(ctx, h.acct(), value); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []struct{ from, to *holder }{{carol, alice}, {alice, bob}} {
		if _, payErr, _, recvErr := pay(t, p.from, p.to, 200, nil); payErr != nil || recvErr != nil {
			t.Fatalf("pay: %v, %v", payErr, recvErr)
		}
	}
	return bob, dave
}

// TestChangeHopLimit: change is a payment to the payer, held to the
// bank's maxHops both ways. An honest payee does not give coins whose
// transfer to the payer would pass the limit, and says it cannot give the
// change; a payer refuses such change from a payee that gives it anyway,
// storing none of it.
func TestChangeHopLimit(t *testing.T) {
	t.Run("payee", func(t *testing.T) {
		bob, dave := changeHopsWorld(t)
		dave0, bob0 := purseOf(t, dave), purseOf(t, bob)
		_, payErr, _, _ := pay(t, dave, bob, 300, nil)
		if !errors.Is(payErr, ErrDeclined) || !strings.Contains(payErr.Error(), "the payee cannot give 2.00 in change") {
			t.Fatalf("pay 3.00 with 5.00 to a payee holding only coins of 2 transfers: %v, want %v", payErr, ErrDeclined)
		}
		if purseOf(t, dave) != dave0 || purseOf(t, bob) != bob0 {
			t.Fatalf("a refused payment moved coins: Dave %s (was %s), Bob %s (was %s)", purseOf(t, dave), dave0, purseOf(t, bob), bob0)
		}
	})
	t.Run("payer", func(t *testing.T) {
		bob, dave := changeHopsWorld(t)
		noLimits(bob, bob.w.trust.Load().revIssued) // Bob gives what the bank's limit forbids
		_, payErr, _, _ := pay(t, dave, bob, 300, nil)
		if !errors.Is(payErr, ErrChange) || !errors.Is(payErr, ErrOfflineLimit) || !strings.Contains(payErr.Error(), "of 3 transfers, the bank allows 2 offline") {
			t.Fatalf("change of coins of 3 transfers: %v, want %v and %v", payErr, ErrChange, ErrOfflineLimit)
		}
		if got := coinsHeld(t, dave); got.Len() != 0 {
			t.Errorf("Dave holds %s: the refused change was stored", got)
		}
		if ev := events(t, dave, HistoryChangeRefused); len(ev) != 1 {
			t.Errorf("history of the refused change: %+v", ev)
		}
	})
}
