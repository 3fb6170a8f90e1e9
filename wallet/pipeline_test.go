package wallet

import (
	"context"
	"testing"

	"github.com/otpcash/otpcash/otp"
)

// TestPipelinedPay pays a batch in chunks (otp.Pipeline) over the real
// session, then again over a link cut after the payee stored its first
// chunk: the acknowledged chunks are spent, the rest pending-out until the
// next meeting, and every coin ends up in exactly one wallet.
func TestPipelinedPay(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	alice, bob := b.newHolder(t, 1500), b.newHolder(t, 0)
	alice.w.pipeline = otp.Pipeline{Chunk: 2}
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 1500); err != nil {
		t.Fatal(err)
	}
	chunks := 0 // batches the payee stored
	bob.w.opts.OnEvent = func(e Event) {
		if e.Kind == EventReceived {
			chunks++
		}
	}
	paid, payErr, got, recvErr := pay(t, alice, bob, 700, nil)
	if payErr != nil || recvErr != nil {
		t.Fatalf("pay: %v; receive: %v", payErr, recvErr)
	}
	if chunks != 4 {
		t.Fatalf("the payee stored 7 coins in %d chunks; want 4 of at most 2 coins", chunks)
	}
	if paid.Coins != 7 || got.Coins != 7 || got.Amount != 700 {
		t.Fatalf("paid %+v, received %+v; want 7 coins", paid, got)
	}
	if a, bb := alice.balance(t), bob.balance(t); a.Held != 800 || a.PendingOut != 0 || bb.Held != 700 {
		t.Fatalf("after paying: Alice %+v, Bob %+v", a, bb)
	}

	r := &relay{}
	bob.w.opts.OnEvent = func(e Event) {
		if e.Kind == "received" {
			r.cut()
		}
	}
	_, payErr, _, recvErr = pay(t, alice, bob, 600, r.via(t))
	bob.w.opts.OnEvent = nil
	if payErr == nil || recvErr == nil {
		t.Fatalf("payment over a cut link: pay %v, receive %v; want both to fail", payErr, recvErr)
	}
	// Coins pending-out may already be stored by Bob: they count once the
	// receipts are back.
	a, bb := alice.balance(t), bob.balance(t)
	if a.Held+a.PendingOut != 800 || a.PendingOut == 0 || a.Held == 800 || bb.Held < 900 {
		t.Fatalf("after the cut: Alice %+v, Bob %+v", a, bb)
	}
	if _, payErr, _, recvErr = pay(t, alice, bob, 100, nil); payErr != nil || recvErr != nil {
		t.Fatalf("second meeting: pay %v, receive %v", payErr, recvErr)
	}
	left := a.Held - 100
	if a, bb := alice.balance(t), bob.balance(t); a.Held != left || a.PendingOut != 0 || bb.Held != 1500-left {
		t.Fatalf("after resending: Alice %+v, Bob %+v; want %d held by Alice, the rest by Bob", a, bb, left)
	}
	res, err := bob.w.Deposit(ctx, bob.acct())
	if err != nil || res.Credited != 1500-left {
		t.Fatalf("Bob's deposit = %+v, %v", res, err)
	}
}
