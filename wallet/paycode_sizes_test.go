package wallet

import (
	"context"
	"testing"
	"time"

	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/internal/paycode"
	"github.com/otpcash/otpcash/otp"
)

// TestPaycodeSizes measures the text forms with a bank's real coins (blind
// RSA) and keys, and the QR frames they take (go test -v -run
// TestPaycodeSizes ./wallet/). It checks that every form reassembles from
// its frames.
func TestPaycodeSizes(t *testing.T) {
	if testing.Short() {
		t.Skip("withdraws 111 coins")
	}
	ctx := context.Background()
	b := newTestBankOf(t, denom.Set{100})
	alice, anon := b.newHolder(t, 11100), b.newHolder(t, 0)
	shop := b.newMerchant(t, map[string]string{"name": "Erin's shop", "category": "grocery"})
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 11100); err != nil {
		t.Fatal(err)
	}
	if _, err := anon.w.RefillKeys(ctx, 120); err != nil {
		t.Fatal(err)
	}
	frames := func(text string) int {
		f := paycode.Frames(text, paycode.FrameSize)
		if got, err := paycode.Join(f); err != nil || got != text {
			t.Fatalf("%d frames do not reassemble: %v", len(f), err)
		}
		return len(f)
	}
	for _, payee := range []struct {
		name string
		h    *holder
	}{{"anonymous keys (blind RSA)", anon}, {"merchant keys (Ed25519, attributes)", shop}} {
		r, err := payee.h.w.Request(ctx, 500, "coffee", time.Minute, 5)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("request, 5 %s: %d characters, %d QR frames", payee.name, len(r.Text), frames(r.Text))
	}
	for _, n := range []int{1, 10} {
		r, err := anon.w.Request(ctx, int64(100*n), "", time.Minute, n)
		if err != nil {
			t.Fatal(err)
		}
		tp, err := alice.w.PayRequest(ctx, r.Text)
		if err != nil {
			t.Fatal(err)
		}
		got, err := anon.w.ReceiveToken(ctx, tp.Token)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("token of %d coins: %d characters, %d QR frames; its receipt: %d characters, %d QR frames",
			n, len(tp.Token), frames(tp.Token), len(got.Receipt), frames(got.Receipt))
	}
	// A request has at most paycode.MaxKeys keys; a token of 100 coins is
	// sealed directly to 100 of the payee's keys to measure it.
	held, err := alice.w.v.Payable(ctx, "EUR", otp.GeneralProgramName)
	if err != nil || len(held) < 100 {
		t.Fatalf("Alice holds %d coins: %v", len(held), err)
	}
	keys, err := anon.w.v.OfferExchangeKeys(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := alice.w.v.Purse("measure").Seal(ctx, held[:100], keys)
	if err != nil {
		t.Fatal(err)
	}
	text, err := paycode.EncodeToken(&paycode.Token{Coins: sealed})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("token of 100 coins: %d characters, %d QR frames", len(text), frames(text))
}
