package wallet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/wallet/recovery"
)

// newPhraseHolder is newHolder with a wallet made from a fresh recovery
// phrase, which it returns.
func (b *testBank) newPhraseHolder(t testing.TB, credit int64) (*holder, recovery.Phrase) {
	t.Helper()
	return b.newPhraseHolderOn(t, credit, Options{})
}

// newPhraseHolderOn is newPhraseHolder with the options opts.
func (b *testBank) newPhraseHolderOn(t testing.TB, credit int64, opts Options) (*holder, recovery.Phrase) {
	t.Helper()
	h := b.newHolder(t, credit) // for the account; its wallet is replaced
	h.w.Close()
	h.dir = filepath.Join(t.TempDir(), "wallet")
	opts.PINHashing, opts.Now, opts.ConfirmSAS = cheap, b.now, func(context.Context, string) bool { return true }
	w, p, err := Create(context.Background(), h.dir, b.url, []byte("123456"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	h.w = w
	return h, p
}

// onNewDevice makes a wallet from phrase p in a fresh directory, for the
// account of h, whose device is lost.
func (b *testBank) onNewDevice(t testing.TB, h *holder, p recovery.Phrase) *holder {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "wallet")
	w, err := InitFromPhrase(context.Background(), dir, b.url, []byte("654321"), p, Options{PINHashing: cheap, Now: b.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return &holder{w: w, dir: dir, account: h.account, token: h.token}
}

func (b *testBank) audit(t testing.TB) {
	t.Helper()
	r, err := b.Audit(context.Background())
	if err != nil || !r.OK() {
		t.Fatalf("audit: %v, %v", r.Problems, err)
	}
}

func (b *testBank) balanceOf(t testing.TB, h *holder) int64 {
	t.Helper()
	bal, err := b.Balance(context.Background(), h.account)
	if err != nil {
		t.Fatal(err)
	}
	return bal
}

// TestRecoverLostWallet: Alice pays Bob, receives from Carol, backs up,
// pays Bob, Dave and Erin again, and loses her device. Bob deposits in
// time; Dave never comes; Erin claims her coin herself after the
// deadline, before Alice recovers. On a new device, from the phrase and
// the backup, Alice gets nothing before the deadline and nothing payable
// ever; after it, the bank credits exactly the coins nobody else
// deposited or claimed: the two she still owned and Dave's, which he let
// lapse. Dave, coming at last, finds it spent, and the bank's evidence
// names Alice's key. Every refusal changes nothing, the audit holds after
// every step, and running the recovery again, after a crash between the
// bank's answer and the wallet's record, or from the backup once more,
// credits nothing twice.
func TestRecoverLostWallet(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	b := newClockedBank(t, denom.Set{100}, clock.Now)
	alice, phrase := b.newPhraseHolder(t, 500)
	bob, carol, erin := b.newHolder(t, 0), b.newHolder(t, 100), b.newHolder(t, 0)
	dave, davePhrase := b.newPhraseHolder(t, 0)
	erin.w.Close()
	erin, erinPhrase := b.newPhraseHolder(t, 0)
	for _, h := range []*holder{alice, carol} {
		if _, err := h.w.Withdraw(ctx, h.acct(), b.balanceOf(t, h)); err != nil {
			t.Fatal(err)
		}
	}
	mustPay := func(from, to *holder) {
		t.Helper()
		if _, payErr, _, recvErr := pay(t, from, to, 100, nil); payErr != nil || recvErr != nil {
			t.Fatalf("payment: %v, %v", payErr, recvErr)
		}
	}
	mustPay(alice, bob)
	mustPay(carol, alice)
	backup, err := alice.w.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustPay(alice, bob)
	mustPay(alice, dave)
	mustPay(alice, erin)
	if r, err := bob.w.Deposit(ctx, bob.acct()); err != nil || r.Credited != 200 {
		t.Fatalf("Bob's deposit: %+v, %v", r, err)
	}
	if err := alice.w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(alice.dir); err != nil {
		t.Fatal(err)
	}
	b.audit(t)

	fresh := b.onNewDevice(t, alice, phrase)
	other, _ := recovery.NewPhrase()
	daveBackup, err := dave.w.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), backup...)
	tampered[len(tampered)-20] ^= 1
	// A backup sealed with the right key whose coin's authorisation is
	// not its holder key's: whoever wrote it knew the backup key (kept in
	// the vault), not the holder key.
	keys, _ := phrase.Derive()
	doc, err := recovery.OpenBackup(&keys, backup)
	if err != nil {
		t.Fatal(err)
	}
	doc.Coins[0].Authorization = doc.Coins[1].Authorization
	forged, err := recovery.SealBackup(keys.ID, &keys.Backup, doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		phrase recovery.Phrase
		backup []byte
		want   error
	}{
		{"a wrong phrase", other, backup, ErrWrongPhrase},
		{"an authorisation not by the holder key", phrase, forged, otp.ErrSignature},
		{"a tampered backup", phrase, tampered, recovery.ErrBackupAuth},
		{"another wallet's backup", phrase, daveBackup, recovery.ErrOtherWallet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := fresh.w.Recover(ctx, &tc.phrase, tc.backup, fresh.acct()); !errors.Is(err, tc.want) {
				t.Fatalf("Recover = %v, want %v", err, tc.want)
			}
			if cl, err := fresh.w.v.RecoveryClaims(ctx); err != nil || len(cl.Coins) != 0 {
				t.Fatalf("claims kept after a refusal: %d, %v", len(cl.Coins), err)
			}
		})
	}

	res, err := fresh.w.Recover(ctx, &phrase, backup, fresh.acct())
	if err != nil || res.Imported != 5 || res.Pending != 5 || res.Coins != 0 {
		t.Fatalf("recovery before the deadline: %+v, %v; want 5 coins pending", res, err)
	}
	if bal := fresh.balance(t); bal.Held != 0 || bal.Coins != 0 {
		t.Fatalf("recovered coins are payable: %+v", bal)
	}
	if payable, err := fresh.w.v.Payable(ctx, "EUR", otp.GeneralProgramName); err != nil || len(payable) != 0 {
		t.Fatalf("the recovered wallet can pay %d coins (%v)", len(payable), err)
	}
	if got := b.balanceOf(t, alice); got != 0 {
		t.Fatalf("Alice's account before the deadline: %d", got)
	}

	cl, _ := fresh.w.v.RecoveryClaims(ctx)
	key, err := fresh.w.cat().Key(cl.Coins[0].Sandbox.Coin.Data.KeyID, otp.UseCoin)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(key.DepositUntil.Sub(clock.Now()) + time.Hour)
	if r, err := erin.w.Recover(ctx, &erinPhrase, mustBackup(t, erin), erin.acct()); err != nil || r.Credited != 100 {
		t.Fatalf("Erin's claim of her lapsed coin: %+v, %v", r, err)
	}
	// A crash after the bank credited, before the wallet recorded it:
	// the bank has the claims, the wallet still lists them.
	if _, err := fresh.w.bank.Recover(ctx, fresh.token, recoveryRequest(fresh.account, cl.Coins)); err != nil {
		t.Fatal(err)
	}
	b.audit(t)
	res, err = fresh.w.Recover(ctx, nil, nil, fresh.acct())
	if err != nil || res.Credited != 300 || res.Coins != 3 || res.Spent != 2 || res.Pending != 0 || len(res.Refused) != 0 {
		t.Fatalf("recovery after the deadline: %+v, %v; want 3 coins credited, Bob's and Erin's spent", res, err)
	}
	if got := b.balanceOf(t, alice); got != 300 {
		t.Fatalf("Alice's account: %d, want 300", got)
	}
	b.audit(t)
	for _, again := range []struct {
		name   string
		backup []byte
	}{{"no backup", nil}, {"the backup once more", backup}} {
		if _, err := fresh.w.Recover(ctx, &phrase, again.backup, fresh.acct()); err != nil {
			t.Fatalf("again, %s: %v", again.name, err)
		}
		if got := b.balanceOf(t, alice); got != 300 {
			t.Fatalf("again, %s: Alice's account %d, want 300", again.name, got)
		}
	}
	b.audit(t)

	r, err := dave.w.Recover(ctx, &davePhrase, mustBackup(t, dave), dave.acct())
	if err != nil || r.Credited != 0 || r.Spent != 1 {
		t.Fatalf("Dave's late claim: %+v, %v; want it spent", r, err)
	}
	conflicts, err := dave.w.bank.Conflicts(ctx, testAdminToken)
	// Bob's deposit, Erin's claim and Dave's claim each met Alice's.
	if err != nil || len(conflicts) != 3 {
		t.Fatalf("%d conflicts (%v), want 3", len(conflicts), err)
	}
	for _, c := range conflicts {
		if c.FirstAccount != alice.account && c.SecondAccount != alice.account {
			t.Fatalf("a conflict on %s not naming Alice's account", c.Token)
		}
	}
	b.audit(t)
}

func mustBackup(t *testing.T, h *holder) []byte {
	t.Helper()
	data, err := h.w.Backup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestRecoverOwnBackup: a wallet that recovers from its own backup, its
// device not lost after all, claims none of the coins it still has a
// record of (held, paid or in flight): they are its own to pay or
// deposit, or were paid, and its balance counts them once.
func TestRecoverOwnBackup(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	alice, phrase := b.newPhraseHolder(t, 500)
	bob := b.newHolder(t, 0)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 500); err != nil {
		t.Fatal(err)
	}
	if _, payErr, _, recvErr := pay(t, alice, bob, 200, nil); payErr != nil || recvErr != nil {
		t.Fatalf("pay: %v, %v", payErr, recvErr)
	}
	backup := mustBackup(t, alice)
	before := alice.balance(t)
	res, err := alice.w.Recover(ctx, &phrase, backup, alice.acct())
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 0 {
		t.Errorf("recovering from its own backup imported %d coins, want none", res.Imported)
	}
	if got := alice.balance(t); got.Held != before.Held || got.Recovering != 0 || got.RecoveringCoins != 0 {
		t.Errorf("balance %+v after recovering from its own backup, was %+v", got, before)
	}
}
