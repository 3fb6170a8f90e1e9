package wallet

import (
	"cmp"
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/p2p"
	"github.com/otpcash/otpcash/vault"
)

// lie is what a dishonest payer says and does in a session: the offer,
// the values it proposes to send for change (none: no proposal), and the
// values of its coins it seals to the payee's keys, in order.
type lie struct {
	offer   p2p.Offer
	send    []int64
	seal    []int64
	program string // of the coins sealed; "general" when empty
	keys    int    // the payer's keys for change; 8 when 0
	dupKey  bool   // the second key for change repeats the first
}

// payLying runs one session from `from`, a payer that says and seals what
// l says, to `to`'s honest Receive. It returns where the payer stopped
// (the first error it met) and the payee's result.
func payLying(t *testing.T, from, to *holder, l lie) (payErr, recvErr error) {
	t.Helper()
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Go(func() { _, recvErr = to.w.Receive(ctx, ln) })
	defer wg.Wait()

	conn, err := from.w.dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	payer := p2p.NewPayer(conn)
	if _, err := payer.Hello(ctx, from.w.hello()); err != nil {
		return err, recvErr
	}
	if err := payer.Offer(ctx, l.offer); err != nil {
		return err, recvErr
	}
	n := len(l.seal)
	if l.send != nil {
		p := p2p.ChangeProposal{Send: l.send}
		if p.Keys, err = from.w.v.OfferExchangeKeys(ctx, cmp.Or(l.keys, 8)); err != nil {
			t.Fatal(err)
		}
		if l.dupKey {
			p.Keys[1] = p.Keys[0]
		}
		agreed, err := payer.ProposeChange(ctx, p)
		if err != nil {
			return err, recvErr
		}
		if err := from.w.v.PromiseKeys(ctx, p.Keys[:len(agreed)]); err != nil {
			t.Fatal(err)
		}
		n = len(l.send)
	}
	keys, err := payer.ExchangeKeys(ctx, n)
	if err != nil {
		return err, recvErr
	}
	program := l.program
	if program == "" {
		program = "general"
	}
	held, err := from.w.v.Payable(ctx, "EUR", program)
	if err != nil {
		t.Fatal(err)
	}
	var coins []otp.Sandbox
	for _, v := range l.seal {
		i := slices.IndexFunc(held, func(c otp.Sandbox) bool { return c.Coin.Data.Value == v })
		if i < 0 {
			t.Fatalf("the payer holds %s, cannot seal %v", countsOf(held), l.seal)
		}
		coins = append(coins, held[i])
		held = slices.Delete(held, i, i+1)
	}
	sealed, err := from.w.v.Purse(conn.PeerID()).Seal(ctx, coins, keys[:len(coins)])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := payer.Send(ctx, sealed); err != nil {
		return err, recvErr
	}
	return payer.Done(ctx), recvErr
}

// purseOf is what a test compares before and after a refused session: the
// coins held and in flight, by program and value.
func purseOf(t *testing.T, h *holder) string {
	t.Helper()
	coins, err := h.w.v.Coins(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	by := map[vault.State]map[string]denom.Counts{}
	for _, c := range coins {
		if by[c.State] == nil {
			by[c.State] = map[string]denom.Counts{}
		}
		d := &c.Sandbox.Coin.Data
		if by[c.State][d.Program] == nil {
			by[c.State][d.Program] = denom.Counts{}
		}
		by[c.State][d.Program][d.Value]++
	}
	var b strings.Builder
	for _, s := range []vault.State{vault.Held, vault.PendingOut, vault.Spent} {
		for _, prog := range []string{"general", "grocery-voucher"} {
			if c := by[s][prog]; len(c) > 0 {
				b.WriteString(string(s) + " " + prog + " " + c.String() + "; ")
			}
		}
	}
	return b.String()
}

// TestLyingPayerGetsNoChange plays a payer that lies about every field of a
// payment with change. The payee refuses each lie: before any key is handed
// out when the proposal itself is wrong, or when the coins arrive when they
// are not the coins proposed. Either way the payee's purse is unchanged and
// no change is sealed; the payer has lost nothing it did not seal itself
// (a coin it sealed stays pending-out at its side, to be reclaimed).
func TestLyingPayerGetsNoChange(t *testing.T) {
	b := newTestBankOf(t, denom.Set{100, 500})
	offer := func(v int64) p2p.Offer {
		return p2p.Offer{Amount: v, Currency: "EUR", Program: "general", Memo: "lie", MaxHops: 1}
	}
	tests := []struct {
		name   string
		l      lie
		sealed bool   // the payer got as far as sealing a coin
		reason string // in the payee's error
	}{
		{"a 1.00 coin where 3.00 was proposed", lie{offer: offer(100), send: []int64{300}, seal: []int64{100}},
			true, "a 100 EUR coin of program \"general\" arrived on a key agreed for 300 EUR"},
		{"a 1.00 coin where 5.00 was proposed", lie{offer: offer(100), send: []int64{500}, seal: []int64{100}},
			true, "agreed for 500 EUR"},
		{"two 1.00 coins where 5.00 and 1.00 were proposed", lie{offer: offer(400), send: []int64{500, 100}, seal: []int64{100, 100}},
			true, "agreed for 500 EUR"},
		{"the right values in the wrong order", lie{offer: offer(400), send: []int64{500, 100}, seal: []int64{100, 500}},
			true, "agreed for 500 EUR"},
		{"a voucher where general money was proposed", lie{offer: offer(100), send: []int64{300}, seal: []int64{100}, program: "grocery-voucher"},
			true, `program "grocery-voucher"`},
		{"a voucher paid as the general money offered", lie{offer: offer(100), seal: []int64{100}, program: "grocery-voucher"},
			true, `the offer was EUR of program "general"`},
		{"change beyond the payee's coins", lie{offer: offer(100), send: []int64{900}},
			false, "the payee cannot give 8.00 in change in at most 8 coins"},
		{"change in more coins than keys", lie{offer: offer(100), send: []int64{500}, keys: 2},
			false, "the payee cannot give 4.00 in change in at most 2 coins"},
		{"one key twice for change", lie{offer: offer(100), send: []int64{300}, dupKey: true},
			false, "the same exchange key twice for change"},
		{"no change due", lie{offer: offer(500), send: []int64{500}},
			false, "5.00 sent does not exceed the 5.00 offered"},
		{"a negative coin sent", lie{offer: offer(100), send: []int64{-100, 300}},
			false, "not positive"},
		{"a zero coin sent", lie{offer: offer(100), send: []int64{0, 200}},
			false, "not positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alice, bob := liarWorld(t, b)
			alice0, bob0 := purseOf(t, alice), purseOf(t, bob)
			bobBal := bob.balance(t)
			payErr, recvErr := payLying(t, alice, bob, tt.l)
			if payErr == nil || recvErr == nil {
				t.Fatalf("a lying payer's session: payer %v, payee %v; want both refused", payErr, recvErr)
			}
			// A proposal that is not even well formed is refused by the
			// payer's own encoder, and by the payee's decoder (p2p tests).
			if !strings.Contains(recvErr.Error(), tt.reason) && !strings.Contains(payErr.Error(), tt.reason) {
				t.Fatalf("payer: %v; payee: %v; want the reason %q", payErr, recvErr, tt.reason)
			}
			if tt.sealed && !errors.Is(recvErr, vault.ErrNotAgreed) && !strings.Contains(recvErr.Error(), "the offer was") {
				t.Fatalf("payee: %v; want %v", recvErr, vault.ErrNotAgreed)
			}
			if got := purseOf(t, bob); got != bob0 {
				t.Fatalf("the payee's purse changed: %s, was %s", got, bob0)
			}
			if got := bob.balance(t); got.Held != bobBal.Held || got.PendingOut != 0 {
				t.Fatalf("the payee's balance %+v, was %+v", got, bobBal)
			}
			if len(events(t, alice, "change")) != 0 {
				t.Fatal("the lying payer recorded change")
			}
			if got := purseOf(t, alice); tt.sealed != (got != alice0) || tt.sealed && !strings.Contains(got, "pending-out") {
				t.Fatalf("the payer's purse: %s, was %s; want changed only by its own sealing (%v)", got, alice0, tt.sealed)
			}
		})
	}
}

// liarWorld: Alice holds a 1.00 grocery voucher and general coins of 5.00,
// 1.00 and 1.00; Bob holds four 1.00.
func liarWorld(t *testing.T, b *testBank) (alice, bob *holder) {
	t.Helper()
	ctx := context.Background()
	alice, bob = b.newHolder(t, 800), b.newHolder(t, 400)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 100, WithProgram("grocery-voucher")); err != nil {
		t.Fatal(err)
	}
	for _, v := range []int64{100, 100, 500} {
		if _, err := alice.w.Withdraw(ctx, alice.acct(), v); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		if _, err := bob.w.Withdraw(ctx, bob.acct(), 100); err != nil {
			t.Fatal(err)
		}
	}
	if a, bb := purseOf(t, alice), purseOf(t, bob); a != "held general 1x5.00 + 2x1.00; held grocery-voucher 1x1.00; " || bb != "held general 4x1.00; " {
		t.Fatalf("Alice holds %s, Bob %s", a, bb)
	}
	return alice, bob
}

// TestLyingPayerResends: the coin a lying payer sealed stays pending-out at
// its side, and re-sending it at the next meeting is refused again, with
// the payee's purse unchanged and no change given.
func TestLyingPayerResends(t *testing.T) {
	alice, bob := liarWorld(t, newTestBankOf(t, denom.Set{100, 500}))
	l := lie{offer: p2p.Offer{Amount: 100, Currency: "EUR", Program: "general", MaxHops: 1}, send: []int64{300}, seal: []int64{100}}
	if payErr, recvErr := payLying(t, alice, bob, l); payErr == nil || !errors.Is(recvErr, vault.ErrNotAgreed) {
		t.Fatalf("payer %v, payee %v", payErr, recvErr)
	}
	bob0 := purseOf(t, bob)
	_, payErr, _, recvErr := pay(t, alice, bob, 100, nil)
	if !strings.Contains(payErr.Error(), "re-send") || !errors.Is(recvErr, vault.ErrNotAgreed) {
		t.Fatalf("the next meeting: payer %v, payee %v; want the re-sent coin refused", payErr, recvErr)
	}
	if got := purseOf(t, bob); got != bob0 {
		t.Fatalf("the payee's purse changed: %s, was %s", got, bob0)
	}
	if got := purseOf(t, alice); got != "held general 1x5.00 + 1x1.00; held grocery-voucher 1x1.00; pending-out general 1x1.00; " {
		t.Fatalf("the payer's purse %s", got)
	}
}

// TestShortPayment: a payer that offers 5.00 and sends one 1.00 coin does
// not leave the payee believing it was paid: Receive reports the amounts,
// and keeps the valid coin it did receive.
func TestShortPayment(t *testing.T) {
	alice, bob := liarWorld(t, newTestBankOf(t, denom.Set{100, 500}))
	bob0 := bob.balance(t)
	l := lie{offer: p2p.Offer{Amount: 500, Currency: "EUR", Program: "general", MaxHops: 1}, seal: []int64{100}}
	payErr, recvErr := payLying(t, alice, bob, l)
	if payErr != nil || !errors.Is(recvErr, ErrNotAsOffered) || !strings.Contains(recvErr.Error(), "received 1.00 of the 5.00 offered") {
		t.Fatalf("payer %v; payee %v; want %v with the amounts", payErr, recvErr, ErrNotAsOffered)
	}
	if got := bob.balance(t); got.Held != bob0.Held+100 {
		t.Fatalf("the payee holds %d, want the 1.00 received kept", got.Held)
	}
}
