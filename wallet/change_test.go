package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/p2p"
	"github.com/otpcash/otpcash/vault"
)

// changeWorld: a bank of 1.00 and 5.00 coins; Alice holds one 5.00 coin,
// Bob two 1.00 coins (what Withdrawal gives for 5.00 and 2.00 there).
func changeWorld(t *testing.T) (*testBank, *holder, *holder) {
	t.Helper()
	ctx := context.Background()
	b := newTestBankOf(t, denom.Set{100, 500})
	alice, bob := b.newHolder(t, 500), b.newHolder(t, 200)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 500); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.w.Withdraw(ctx, bob.acct(), 200); err != nil {
		t.Fatal(err)
	}
	if got := coinsHeld(t, alice); got.String() != "1x5.00" {
		t.Fatalf("Alice holds %s, want one 5.00 coin", got)
	}
	if got := coinsHeld(t, bob); got.String() != "2x1.00" {
		t.Fatalf("Bob holds %s, want two 1.00 coins", got)
	}
	return b, alice, bob
}

func coinsHeld(t testing.TB, h *holder) denom.Counts {
	t.Helper()
	coins, err := h.w.v.Coins(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := denom.Counts{}
	for _, coin := range coins {
		if coin.State == vault.Held {
			c[coin.Sandbox.Coin.Data.Value]++
		}
	}
	return c
}

func events(t testing.TB, h *holder, kind HistoryKind) []HistoryEntry {
	t.Helper()
	all, err := h.w.History(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []HistoryEntry
	for _, e := range all {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func TestPayWithChange(t *testing.T) {
	ctx := context.Background()
	b, alice, bob := changeWorld(t)
	paid, payErr, got, recvErr := pay(t, alice, bob, 300, nil)
	if payErr != nil || recvErr != nil {
		t.Fatalf("pay: %v; receive: %v", payErr, recvErr)
	}
	if paid.Amount != 300 || paid.Change != 200 || paid.Coins != 1 || got.Amount != 300 || got.Change != 200 {
		t.Errorf("paid %+v, received %+v", paid, got)
	}
	if a, bb := coinsHeld(t, alice), coinsHeld(t, bob); a.String() != "2x1.00" || bb.String() != "1x5.00" {
		t.Errorf("after paying 3.00 with a 5.00 coin: Alice holds %s, Bob %s", a, bb)
	}
	for _, h := range []*holder{alice, bob} {
		if bal := h.balance(t); bal.PendingOut != 0 {
			t.Errorf("coins left pending-out: %+v", bal)
		}
	}
	if len(events(t, alice, "change")) != 1 {
		t.Error("Alice's history has no change received")
	}
	// The change is Alice's money: both deposit everything.
	for _, h := range []*holder{alice, bob} {
		if _, err := h.w.Deposit(ctx, h.acct()); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		h    *holder
		want int64
	}{{alice, 200}, {bob, 500}} {
		if bal, err := b.Balance(ctx, tt.h.account); err != nil || bal != tt.want {
			t.Errorf("account balance %d, %v; want %d", bal, err, tt.want)
		}
	}
}

func TestPayRefusedWithoutChange(t *testing.T) {
	_, alice, bob := changeWorld(t)
	keysBefore, _ := alice.w.ExchangeKeys(context.Background())
	_, payErr, _, _ := pay(t, alice, bob, 350, nil)
	if !errors.Is(payErr, ErrInsufficient) || !errors.Is(payErr, denom.ErrUnpayable) ||
		!strings.Contains(payErr.Error(), `no coins of program "general" make 1.50 in change`) {
		t.Fatalf("paying 3.50 with a 5.00 coin to a payee with two 1.00 coins: %v", payErr)
	}
	if a, bb := coinsHeld(t, alice), coinsHeld(t, bob); a.String() != "1x5.00" || bb.String() != "2x1.00" {
		t.Errorf("a refused payment moved coins: Alice holds %s, Bob %s", a, bb)
	}
	if keys, _ := alice.w.ExchangeKeys(context.Background()); keys != keysBefore {
		t.Errorf("a refused payment used exchange keys: %d before, %d after", keysBefore, keys)
	}
}

// dishonest is a payee that tampers with the change it sends.
type dishonest struct {
	*payee
	change func([]otp.Sandbox) []otp.Sandbox
}

func (d dishonest) Receive(ctx context.Context, coins []otp.Sandbox) ([]otp.Ack, []otp.Sandbox, error) {
	acks, change, err := d.payee.Receive(ctx, coins)
	return acks, d.change(change), err
}

func payDishonest(t *testing.T, from, to *holder, value int64, change func([]otp.Sandbox) []otp.Sandbox) (Payment, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		to.w.receive(context.Background(), ln, func(h *payee) p2p.Handler { return dishonest{h, change} })
	}()
	defer wg.Wait()
	return from.w.Pay(context.Background(), ln.Addr().String(), value, "dishonest")
}

func TestPayeeKeepsTheChange(t *testing.T) {
	_, alice, bob := changeWorld(t)
	paid, err := payDishonest(t, alice, bob, 300, func([]otp.Sandbox) []otp.Sandbox { return nil })
	if !errors.Is(err, ErrChange) || !strings.Contains(err.Error(), "sent no change; it owes 2.00 (2x1.00)") {
		t.Fatalf("payee kept the change: %v", err)
	}
	if paid.Amount != 500 || paid.Change != 0 {
		t.Errorf("payment %+v, want 5.00 paid and no change", paid)
	}
	if ev := events(t, alice, "change-missing"); len(ev) != 1 || ev[0].Amount != 200 {
		t.Errorf("history of the missing change: %+v", ev)
	}
	// Alice sealed only the agreed 5.00 coin.
	if a := alice.balance(t); a.Held != 0 || a.PendingOut != 0 {
		t.Errorf("Alice %+v", a)
	}
}

func TestPayeeGivesWrongChange(t *testing.T) {
	_, alice, bob := changeWorld(t)
	_, err := payDishonest(t, alice, bob, 300, func(c []otp.Sandbox) []otp.Sandbox { return c[:1] })
	if !errors.Is(err, ErrChange) || !strings.Contains(err.Error(), "sent 1.00 (1x1.00) in change, not the 2.00 (2x1.00) agreed") {
		t.Fatalf("payee gave half the change: %v", err)
	}
	// The coin it did give is Alice's.
	if a := coinsHeld(t, alice); a.String() != "1x1.00" {
		t.Errorf("Alice holds %s, want the 1.00 coin given", a)
	}
	if ev := events(t, alice, "change-mismatch"); len(ev) != 1 || ev[0].Amount != 100 {
		t.Errorf("history of the short change: %+v", ev)
	}
}

// TestChangeCollectedAtNextMeeting: the link drops after the payee stored
// the payment and sealed the change; at the next meeting the change is
// collected, and nothing is lost or doubled.
func TestChangeCollectedAtNextMeeting(t *testing.T) {
	ctx := context.Background()
	b, alice, bob := changeWorld(t)
	if _, err := b.Credit(ctx, alice.account, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 100); err != nil {
		t.Fatal(err)
	}
	_, err := payDishonest(t, alice, bob, 300, func([]otp.Sandbox) []otp.Sandbox { return nil })
	if !errors.Is(err, ErrChange) {
		t.Fatalf("first meeting: %v", err)
	}
	if bb := bob.balance(t); bb.PendingOut != 200 {
		t.Fatalf("Bob's change in flight: %+v, want 2.00 pending-out", bb)
	}
	if _, err := bob.w.ExchangeKeys(ctx); err != nil {
		t.Fatal(err)
	}
	// Alice pays Bob 1.00 more; the change is collected first in the
	// same session.
	paid, payErr, _, recvErr := pay(t, alice, bob, 100, nil)
	if payErr != nil || recvErr != nil {
		t.Fatalf("second meeting: pay %v, receive %v", payErr, recvErr)
	}
	if a, bb := coinsHeld(t, alice), coinsHeld(t, bob); a.String() != "2x1.00" || bb.String() != "1x5.00 + 1x1.00" {
		t.Errorf("after collecting the change and paying 1.00: Alice %s, Bob %s (paid %+v)", a, bb, paid)
	}
	for _, h := range []*holder{alice, bob} {
		if bal := h.balance(t); bal.PendingOut != 0 {
			t.Errorf("coins left pending-out: %+v", bal)
		}
	}
}

// TestRedenominate re-denominates at the bank: Bob, paid 4.00 in two 2.00
// coins, swaps one for two 1.00 coins (the mix a 4.00 withdrawal gives
// there), in one transaction that leaves his account as it was; asked
// again, nothing moves.
func TestRedenominate(t *testing.T) {
	ctx := context.Background()
	b := newTestBankOf(t, denom.Set{100, 200, 500})
	alice, bob := b.newHolder(t, 500), b.newHolder(t, 0)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 500); err != nil {
		t.Fatal(err)
	}
	if _, payErr, _, recvErr := pay(t, alice, bob, 400, nil); payErr != nil || recvErr != nil {
		t.Fatalf("pay %v, receive %v", payErr, recvErr)
	}
	if got := coinsHeld(t, bob); got.String() != "2x2.00" {
		t.Fatalf("Bob holds %s, want two 2.00 coins", got)
	}
	res, err := bob.w.Redenominate(ctx, bob.acct())
	if err != nil || res.In != 1 || res.Out != 2 || res.Value != 200 {
		t.Fatalf("re-denomination = %+v, %v; want one 2.00 coin for two 1.00 coins", res, err)
	}
	if got := coinsHeld(t, bob); got.String() != "1x2.00 + 2x1.00" {
		t.Errorf("after the re-denomination Bob holds %s", got)
	}
	if bal, err := b.Balance(ctx, bob.account); err != nil || bal != 0 {
		t.Errorf("Bob's account after a re-denomination: %d, %v; want 0", bal, err)
	}
	if again, err := bob.w.Redenominate(ctx, bob.acct()); err != nil || again.In != 0 {
		t.Errorf("second re-denomination = %+v, %v; want nothing to do", again, err)
	}
	// The history says redenominate; the vault keeps the name it has
	// always stored, which vaults of earlier releases hold.
	hist, err := bob.w.History(ctx)
	if err != nil || hist[len(hist)-1].Kind != HistoryRedenominate {
		t.Errorf("history = %+v, %v; want it to end with %q", hist, err, HistoryRedenominate)
	}
	stored, err := bob.w.v.Events(ctx)
	if err != nil || stored[len(stored)-1].Kind != "exchange" {
		t.Errorf("vault events = %+v, %v; want the last stored as \"exchange\"", stored, err)
	}
	if r, err := bob.w.Deposit(ctx, bob.acct()); err != nil || r.Credited != 400 || len(r.Refused) != 0 {
		t.Fatalf("deposit after the re-denomination: %+v, %v", r, err)
	}
	rep, err := b.Audit(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("audit after a re-denomination: %v, %v", rep, err)
	}
}

// recordRedenomination records in h's vault, as Redenominate does, the
// swap of coins for n new coins of key under id, and returns it with its
// request to the bank.
func recordRedenomination(t *testing.T, h *holder, id string, coins []otp.Sandbox, key *otp.IssuerKey, n int) (vault.Redenomination, api.RedenominationRequest) {
	t.Helper()
	ctx := context.Background()
	rd := vault.Redenomination{ID: id, Account: h.account,
		Parts: []vault.RedenominationPart{{WithdrawalID: id + "/" + strconv.FormatInt(key.Value, 10), KeyID: key.KeyID, N: n}}}
	var err error
	if rd.Coins, err = h.w.depositItems(ctx, h.account, coins); err != nil {
		t.Fatal(err)
	}
	if _, err := h.w.v.HolderKeys(ctx, rd.Parts[0].WithdrawalID, n); err != nil {
		t.Fatal(err)
	}
	if err := h.w.v.RecordRedenomination(ctx, rd); err != nil {
		t.Fatal(err)
	}
	blind, err := h.w.newCoins(ctx, rd)
	if err != nil {
		t.Fatal(err)
	}
	return rd, redenominationRequest(rd, blind)
}

// redenominationWorld: Bob, paid 4.00 in two 2.00 coins at a bank of 1.00,
// 2.00 and 5.00 coins, and the bank's 1.00 coin key.
func redenominationWorld(t *testing.T) (*testBank, *holder, []otp.Sandbox, *otp.IssuerKey) {
	t.Helper()
	ctx := context.Background()
	b := newTestBankOf(t, denom.Set{100, 200, 500})
	alice, bob := b.newHolder(t, 500), b.newHolder(t, 0)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 500); err != nil {
		t.Fatal(err)
	}
	if _, payErr, _, recvErr := pay(t, alice, bob, 400, nil); payErr != nil || recvErr != nil {
		t.Fatalf("pay %v, receive %v", payErr, recvErr)
	}
	held, err := bob.w.v.Payable(ctx, "EUR", otp.GeneralProgramName)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := bob.w.cat().CoinKeys(otp.GeneralProgramName, bob.w.now())
	if err != nil {
		t.Fatal(err)
	}
	return b, bob, held, keys[0]
}

// TestRedenominateRepeatedAndRefused replays one re-denomination request:
// the bank answers it twice with the same signatures and applies it once;
// requests of unequal value, or with a coin already deposited, are refused
// and change nothing.
func TestRedenominateRepeatedAndRefused(t *testing.T) {
	ctx := context.Background()
	b, bob, held, one := redenominationWorld(t)
	_, req := recordRedenomination(t, bob, "redenominate-test", held[:1], one, 2)
	first, err := bob.w.bank.Redenominate(ctx, bob.token, req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := bob.w.bank.Redenominate(ctx, bob.token, req)
	if err != nil || len(second) != 1 || string(second[0][0]) != string(first[0][0]) {
		t.Fatalf("repeated re-denomination: %v; want the same signatures", err)
	}
	if bal, _ := b.Balance(ctx, bob.account); bal != 0 {
		t.Errorf("account after a repeated re-denomination: %d", bal)
	}
	rep, err := b.Audit(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("audit after a repeated re-denomination: %v, %v", rep, err)
	}
	// The same coin again, in a new re-denomination: already deposited.
	_, again := recordRedenomination(t, bob, "redenominate-test-2", held[:1], one, 2)
	if _, err := bob.w.bank.Redenominate(ctx, bob.token, again); err == nil || !strings.Contains(err.Error(), "nothing re-denominated") {
		t.Errorf("re-denomination of a coin already re-denominated: %v", err)
	}
	// Unequal value: the other 2.00 coin for three 1.00 coins.
	_, unequal := recordRedenomination(t, bob, "redenominate-test-3", held[1:], one, 3)
	if _, err := bob.w.bank.Redenominate(ctx, bob.token, unequal); err == nil || !strings.Contains(err.Error(), "coins of 2.00 for coins of 3.00") {
		t.Errorf("re-denomination of unequal value: %v", err)
	}
	if bal, _ := b.Balance(ctx, bob.account); bal != 0 {
		t.Errorf("account after refused re-denominations: %d", bal)
	}
	// The coin the refused re-denomination offered is still Bob's to
	// deposit; the one re-denominated above (behind the wallet's back) is
	// already credited.
	if r, err := bob.w.Deposit(ctx, bob.acct()); err != nil || r.Balance != 200 || len(r.Refused) != 0 {
		t.Errorf("deposit after refused re-denominations: %+v, %v; want a balance of 2.00", r, err)
	}
}

// TestRedenominateResumed: the bank carried out a re-denomination whose
// answer never reached the wallet (a crash, a lost reply); the next
// Redenominate asks again, gets the stored answer, and stores it once:
// the new coins held, the coin given deposited, the record gone. The
// record is read in either form: the one this release writes, and the
// one the release before wrote (the bank's request inside, under
// "exchange/ID"), whose request the wallet must send again byte for byte.
func TestRedenominateResumed(t *testing.T) {
	for _, form := range []string{"version 1", "version 0"} {
		t.Run(form, func(t *testing.T) {
			ctx := context.Background()
			b, bob, held, one := redenominationWorld(t)
			rd, req := recordRedenomination(t, bob, "lost-reply", held[:1], one, 2)
			if form == "version 0" {
				old, err := json.Marshal(map[string]any{"account": rd.Account, "id": rd.ID,
					"tokens":  []string{held[0].Coin.Data.Token},
					"parts":   []map[string]any{{"id": rd.Parts[0].WithdrawalID, "keyId": one.KeyID, "n": 2}},
					"request": req})
				if err != nil {
					t.Fatal(err)
				}
				if err := bob.w.v.SetSetting(ctx, "exchange/"+rd.ID, old); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := bob.w.bank.Redenominate(ctx, bob.token, req); err != nil {
				t.Fatal(err) // carried out; the answer is dropped
			}
			res, err := bob.w.Redenominate(ctx, bob.acct())
			if err != nil || res.In != 1 || res.Out != 2 || res.Value != 200 {
				t.Fatalf("resumed: %+v, %v; want one 2.00 coin for two 1.00 coins", res, err)
			}
			if got := coinsHeld(t, bob); got.String() != "1x2.00 + 2x1.00" {
				t.Errorf("after resuming Bob holds %s", got)
			}
			if _, err := bob.w.v.PendingRedenomination(ctx, rd.ID); !errors.Is(err, vault.ErrNotFound) {
				t.Errorf("record after resuming: %v; want none", err)
			}
			if r, err := bob.w.Deposit(ctx, bob.acct()); err != nil || r.Credited != 400 || len(r.Refused) != 0 {
				t.Fatalf("deposit after resuming: %+v, %v", r, err)
			}
			if rep, err := b.Audit(ctx); err != nil || !rep.OK() {
				t.Fatalf("audit: %v, %v", rep, err)
			}
		})
	}
}

// TestRedenominateRefusedForgotten: a re-denomination the bank refuses is
// forgotten whole, its new coins' keys with it; the coin given stays held.
func TestRedenominateRefusedForgotten(t *testing.T) {
	ctx := context.Background()
	_, bob, held, one := redenominationWorld(t)
	rd, _ := recordRedenomination(t, bob, "refused", held[:1], one, 3) // 2.00 for 3.00
	if _, err := bob.w.Redenominate(ctx, bob.acct()); err == nil || !strings.Contains(err.Error(), "coins of 2.00 for coins of 3.00") {
		t.Fatalf("redenominate: %v; want the bank's refusal", err)
	}
	if _, err := bob.w.v.PendingRedenomination(ctx, rd.ID); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("record after a refusal: %v; want none", err)
	}
	if ids, err := bob.w.v.PendingWithdrawals(ctx); err != nil || len(ids) != 0 {
		t.Errorf("pending withdrawals after a refusal: %v, %v", ids, err)
	}
	if got := coinsHeld(t, bob); got.String() != "2x2.00" {
		t.Errorf("after a refusal Bob holds %s", got)
	}
}

// TestChangeInOtherCoins: the payer plans change knowing nothing of the
// payee's purse (2.00 as one 2.00 coin, say); the payee agrees to give it
// in the fewest coins it holds (two 1.00), and says so.
func TestChangeInOtherCoins(t *testing.T) {
	ctx := context.Background()
	b := newTestBankOf(t, denom.Set{100, 200, 500})
	alice, bob := b.newHolder(t, 0), b.newHolder(t, 200)
	for range 2 {
		if _, err := bob.w.Withdraw(ctx, bob.acct(), 100); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := alice.w.v.OfferExchangeKeys(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	h := &payee{w: bob.w, p: Payment{Peer: "alice"}, offer: p2p.Offer{Amount: 300, Currency: "EUR", Program: "general"}}
	change, err := h.Change(ctx, p2p.ChangeProposal{Send: []int64{500}, Keys: keys})
	if err != nil || !slices.Equal(change, []int64{100, 100}) {
		t.Fatalf("Change = %v, %v; want two 1.00", change, err)
	}
	if len(h.agreement.To) != 2 || h.agreement.To[1].Pub != keys[1].Pub {
		t.Fatalf("the change is agreed to %d keys, want the first two", len(h.agreement.To))
	}
}

// TestPayeeCannotGiveChange: a payee without the change says so, and only
// so: the payer learns nothing of its coins, nothing is sealed, and the
// payer's exchange keys are not used.
func TestPayeeCannotGiveChange(t *testing.T) {
	ctx := context.Background()
	b := newTestBankOf(t, denom.Set{100, 500})
	alice, bob := b.newHolder(t, 500), b.newHolder(t, 100)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 500); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.w.Withdraw(ctx, bob.acct(), 100); err != nil {
		t.Fatal(err)
	}
	keysBefore, _ := alice.w.ExchangeKeys(ctx)
	_, payErr, _, recvErr := pay(t, alice, bob, 300, nil)
	if !errors.Is(payErr, ErrDeclined) || !strings.HasSuffix(payErr.Error(), "the payee cannot give 2.00 in change in at most 10 coins") || recvErr == nil {
		t.Fatalf("pay: %v; receive: %v", payErr, recvErr)
	}
	if a, bb := coinsHeld(t, alice), coinsHeld(t, bob); a.String() != "1x5.00" || bb.String() != "1x1.00" {
		t.Errorf("a refused payment moved coins: Alice holds %s, Bob %s", a, bb)
	}
	if keys, _ := alice.w.ExchangeKeys(ctx); keys != keysBefore {
		t.Errorf("a refused payment used exchange keys: %d before, %d after", keysBefore, keys)
	}
}
