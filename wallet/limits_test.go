package wallet

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/internal/testtpm"
)

// backends are the vault protectors the limit tests run on: the limits
// are the wallet's, so both must enforce them alike.
var backends = []struct {
	name string
	opts func(t *testing.T) Options
}{
	{"software", func(*testing.T) Options { return Options{PINHashing: cheap} }},
	{"tpm", func(t *testing.T) Options { return Options{Protector: VaultTPM, TPM: testtpm.Start(t)} }},
}

// limitWorld is a bank with offline limits on a manual clock, a payer
// holding 800 on the backend's vault and a software payee holding none.
func limitWorld(t *testing.T, opts Options, maxValue int64, maxOffline time.Duration) (*manualClock, *holder, *holder) {
	t.Helper()
	clock := &manualClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	b := newBankOf(t, bank.Config{Denominations: denom.Set{100}, Now: clock.Now, MaxOfflineValue: maxValue, MaxOffline: maxOffline})
	alice, bob := b.newHolderOn(t, 800, opts), b.newHolder(t, 0)
	if _, err := alice.w.Withdraw(context.Background(), alice.acct(), 800); err != nil {
		t.Fatal(err)
	}
	return clock, alice, bob
}

// TestOfflineLimitPayer: a wallet whose revocation list is older than the
// bank's MaxOffline refuses to pay, before it meets the payee, and keeps
// every coin; meeting the bank (refill) lets it pay again.
func TestOfflineLimitPayer(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			clock, alice, bob := limitWorld(t, be.opts(t), 0, 72*time.Hour)
			var seen time.Time
			bob.w.opts.ConfirmOffer = func(_ context.Context, o Offer) bool { seen = o.RevocationsIssued; return true }
			clock.Advance(72 * time.Hour)
			if _, payErr, _, recvErr := pay(t, alice, bob, 100, nil); payErr != nil || recvErr != nil {
				t.Fatalf("pay at exactly the limit: %v, %v", payErr, recvErr)
			}
			if want := alice.w.trust.Load().revIssued; want.IsZero() || !seen.Equal(want) {
				t.Errorf("the payee's confirmation saw the revocation list issued %v, want %v", seen, want)
			}
			clock.Advance(time.Second)
			// Nobody listens there: only the limit can stop Pay
			// before it dials.
			_, err := alice.w.Pay(ctx, "127.0.0.1:1", 100, "late")
			if !errors.Is(err, ErrOfflineLimit) {
				t.Fatalf("pay 72h01s after the revocation list: %v, want ErrOfflineLimit", err)
			}
			if a := alice.balance(t); a.Held != 700 || a.PendingOut != 0 {
				t.Errorf("refused payment changed the payer's balance: %+v", a)
			}
			if _, err := alice.w.RefillKeys(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if _, payErr, _, recvErr := pay(t, alice, bob, 100, nil); payErr != nil || recvErr != nil {
				t.Fatalf("pay after meeting the bank: %v, %v", payErr, recvErr)
			}
		})
	}
}

// TestOfflineLimitPayee: the payee refuses, at the offer, before any of
// its exchange keys is handed out, a payer that says it is offline longer
// than the bank allows (or does not say), and a payment that would make
// it hold more than MaxOfflineValue. Nothing moves on either side.
func TestOfflineLimitPayee(t *testing.T) {
	tests := []struct {
		name   string
		value  int64
		says   string // what the payee's error names
		before func(t *testing.T, clock *manualClock, alice, bob *holder)
	}{
		{"payer offline too long", 100, "is 73h0m0s old", func(t *testing.T, clock *manualClock, alice, _ *holder) {
			clock.Advance(73 * time.Hour)
			noLimits(alice, alice.w.trust.Load().revIssued)
		}},
		{"payer claims a list from the future", 100, "claims to be issued 1h0m0s from now", func(t *testing.T, clock *manualClock, alice, _ *holder) {
			clock.Advance(73 * time.Hour)
			noLimits(alice, clock.Now().Add(time.Hour))
		}},
		{"payer does not say", 100, "revocation list is unknown", func(t *testing.T, _ *manualClock, alice, _ *holder) {
			noLimits(alice, time.Time{})
		}},
		{"payee would hold too much", 300, "would make 6.00 held", func(t *testing.T, _ *manualClock, alice, bob *holder) {
			if _, payErr, _, recvErr := pay(t, alice, bob, 300, nil); payErr != nil || recvErr != nil {
				t.Fatalf("first payment, within the limit: %v, %v", payErr, recvErr)
			}
		}},
	}
	for _, be := range backends {
		for _, tt := range tests {
			t.Run(be.name+"/"+tt.name, func(t *testing.T) {
				ctx := context.Background()
				clock, alice, bob := limitWorld(t, be.opts(t), 500, 72*time.Hour)
				tt.before(t, clock, alice, bob)
				a0, b0 := alice.balance(t), bob.balance(t)
				keys0, err := bob.w.v.ExchangeKeyCount(ctx)
				if err != nil {
					t.Fatal(err)
				}
				_, payErr, _, recvErr := pay(t, alice, bob, tt.value, nil)
				if !errors.Is(payErr, ErrDeclined) || !errors.Is(recvErr, ErrOfflineLimit) {
					t.Fatalf("pay: %v (want ErrDeclined); receive: %v (want ErrOfflineLimit)", payErr, recvErr)
				}
				if !strings.Contains(recvErr.Error(), tt.says) {
					t.Errorf("payee's error %q does not say %q", recvErr, tt.says)
				}
				if a, b := alice.balance(t), bob.balance(t); a.Held != a0.Held || a.PendingOut != 0 || b.Held != b0.Held {
					t.Errorf("balances moved: payer %+v to %+v, payee %+v to %+v", a0, a, b0, b)
				}
				if keys, err := bob.w.v.ExchangeKeyCount(ctx); err != nil || keys != keys0 {
					t.Errorf("payee's exchange keys %d, then %d (%v): keys handed out to a refused payer", keys0, keys, err)
				}
			})
		}
	}
}

// TestOfflineLimitPayeeBoundary: a payment that brings the payee to
// exactly MaxOfflineValue is taken.
func TestOfflineLimitPayeeBoundary(t *testing.T) {
	_, alice, bob := limitWorld(t, Options{PINHashing: cheap}, 500, 0)
	for _, v := range []int64{300, 200} {
		if _, payErr, _, recvErr := pay(t, alice, bob, v, nil); payErr != nil || recvErr != nil {
			t.Fatalf("pay %d: %v, %v", v, payErr, recvErr)
		}
	}
	if b := bob.balance(t); b.Held != 500 {
		t.Fatalf("payee holds %d, want 500", b.Held)
	}
}

// noLimits makes h a payer that ignores the bank's limits and says its
// revocation list was issued at issued: what a modified wallet can do.
func noLimits(h *holder, issued time.Time) {
	tr := *h.w.trust.Load()
	cat := *tr.cat
	cat.MaxOfflineValue, cat.MaxOfflineSeconds, cat.MaxHops = 0, 0, 0
	tr.cat, tr.revIssued = &cat, issued
	h.w.trust.Store(&tr)
}

// TestOfflineLimitRequest: a payment request that would make the payee
// hold more than MaxOfflineValue is refused when it is made, before any
// key is handed out; one that reaches the limit exactly is made.
func TestOfflineLimitRequest(t *testing.T) {
	ctx := context.Background()
	_, alice, bob := limitWorld(t, Options{PINHashing: cheap}, 500, 0)
	if _, payErr, _, recvErr := pay(t, alice, bob, 300, nil); payErr != nil || recvErr != nil {
		t.Fatalf("pay: %v, %v", payErr, recvErr)
	}
	keys0, err := bob.w.v.ExchangeKeyCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.w.Request(ctx, 300, "", time.Minute, 0); !errors.Is(err, ErrOfflineLimit) {
		t.Fatalf("request taking the payee to 6.00 of 5.00: %v, want ErrOfflineLimit", err)
	}
	if keys, err := bob.w.v.ExchangeKeyCount(ctx); err != nil || keys != keys0 {
		t.Errorf("exchange keys %d, then %d (%v): the refused request promised keys", keys0, keys, err)
	}
	if _, err := bob.w.Request(ctx, 200, "", time.Minute, 0); err != nil {
		t.Fatalf("request reaching the limit exactly: %v", err)
	}
}
