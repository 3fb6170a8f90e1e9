package wallet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/otpcash/otpcash/bank/client"
	"github.com/otpcash/otpcash/otp"
)

// copyDir copies a closed wallet directory, as a user restoring a backup
// would.
func copyDir(t testing.TB, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

// TestCopiedWalletDoubleSpend pays the same coins from a wallet and from a
// copy of it to two payees: the software vault cannot stop that, the bank
// must. The first deposit is credited; the second is refused and names the
// one-time key that signed twice.
func TestCopiedWalletDoubleSpend(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	alice, bob, carol := b.newHolder(t, 200), b.newHolder(t, 0), b.newHolder(t, 0)
	if _, err := alice.w.Withdraw(ctx, alice.account, alice.token, 200); err != nil {
		t.Fatal(err)
	}
	dir := alice.dir
	if err := alice.w.Close(); err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(t.TempDir(), "copy")
	copyDir(t, dir, copied)
	opts := Options{Vault: cheap, ConfirmSAS: func(context.Context, string) bool { return true }}
	var err error
	if alice.w, err = Open(ctx, dir, []byte("123456"), opts); err != nil {
		t.Fatal(err)
	}
	clone := &holder{account: alice.account, token: alice.token}
	if clone.w, err = Open(ctx, copied, []byte("123456"), opts); err != nil {
		t.Fatal(err)
	}
	defer clone.w.Close()

	if _, payErr, _, recvErr := pay(t, alice, bob, 200, nil); payErr != nil || recvErr != nil {
		t.Fatalf("pay from the original: %v, %v", payErr, recvErr)
	}
	if _, payErr, _, recvErr := pay(t, clone, carol, 200, nil); payErr != nil || recvErr != nil {
		t.Fatalf("pay from the copy: %v, %v (offline, nothing can tell the copy from the original)", payErr, recvErr)
	}

	first, err := bob.w.Deposit(ctx, bob.account, bob.token)
	if err != nil || first.Credited != 200 || len(first.Refused) != 0 {
		t.Fatalf("first deposit = %+v, %v; want 2.00 credited", first, err)
	}
	second, err := carol.w.Deposit(ctx, carol.account, carol.token)
	if err != nil {
		t.Fatal(err)
	}
	if second.Credited != 0 || len(second.Refused) != 2 {
		t.Fatalf("second deposit = %+v; want both coins refused", second)
	}
	holders := map[string]bool{}
	coins, err := alice.w.v.Coins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range coins {
		holders[c.Sandbox.Coin.Data.Holder] = true
	}
	for _, r := range second.Refused {
		if r.Code != "double_deposit" || !holders[r.Key] {
			t.Errorf("refusal %+v: want double_deposit naming one of Alice's first-holder keys", r)
		}
	}
	conflicts, err := client.New(b.url, nil).Conflicts(ctx, testAdminToken)
	if err != nil {
		t.Fatal(err)
	}
	if len(conflicts) != 2 {
		t.Fatalf("bank recorded %d conflicts; want 2", len(conflicts))
	}

	// Once online, a wallet learns the revoked keys and refuses, offline,
	// to pay on the coins they signed away twice.
	if _, err := carol.w.RefillKeys(ctx, DefaultKeyPool); err != nil {
		t.Fatal(err)
	}
	if _, payErr, _, _ := pay(t, carol, bob, 200, nil); !errors.Is(payErr, otp.ErrRevoked) {
		t.Fatalf("paying on a revoked coin: %v; want ErrRevoked", payErr)
	}
	if c, bb := carol.balance(t), bob.balance(t); c.Held != 200 || c.PendingOut != 0 || bb.Held != 0 {
		t.Errorf("refused payment changed state: Carol %+v, Bob %+v", c, bb)
	}
	reopened, err := Open(ctx, carol.dir, []byte("123456"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	if _, payErr, _, _ := pay(t, &holder{w: reopened}, bob, 100, nil); !errors.Is(payErr, otp.ErrRevoked) {
		t.Fatalf("after reopening, paying on a revoked coin: %v; want ErrRevoked", payErr)
	}
}
