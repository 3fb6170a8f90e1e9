package wallet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/otpcash/otpcash/internal/testtpm"
)

// TestTPMCopiedWalletCannotPay is TestCopiedWalletDoubleSpend with a TPM
// wallet: after the original pays, a backup restored on the same TPM is
// refused, and a copy on another TPM too, so no second payee is ever paid
// and the bank has no double spend to refuse.
func TestTPMCopiedWalletCannotPay(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	bob := b.newHolder(t, 0)
	id, token, err := b.CreateAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Credit(ctx, id, 200); err != nil {
		t.Fatal(err)
	}
	dev := testtpm.Start(t)
	dir := filepath.Join(t.TempDir(), "alice")
	pin := []byte("123456")
	opts := Options{Protector: VaultTPM, TPM: dev, ConfirmSAS: func(context.Context, string) bool { return true }, Now: b.now}
	w, err := Init(ctx, dir, b.url, pin, opts)
	if err != nil {
		t.Fatal(err)
	}
	alice := &holder{w: w, dir: dir, account: id, token: token}
	if _, err := alice.w.Withdraw(ctx, Account{ID: id, Token: token}, 200); err != nil {
		t.Fatal(err)
	}
	alice.w.Close()
	backup := filepath.Join(t.TempDir(), "backup")
	copyDir(t, dir, backup)

	if alice.w, err = Open(ctx, dir, pin, opts); err != nil {
		t.Fatal(err)
	}
	if _, payErr, _, recvErr := pay(t, alice, bob, 200, nil); payErr != nil || recvErr != nil {
		t.Fatalf("pay from the original: %v, %v", payErr, recvErr)
	}
	alice.w.Close()

	// The backup restored in place, on the same TPM.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, backup, dir)
	if _, err := Open(ctx, dir, pin, Options{}); !errors.Is(err, ErrRollback) {
		t.Fatalf("open of the restored backup: %v, want ErrRollback", err)
	}
	// The backup on another machine's TPM.
	if _, err := Open(ctx, backup, pin, Options{TPM: testtpm.Start(t)}); !errors.Is(err, ErrOtherTPM) {
		t.Fatalf("open of the backup on another TPM: %v, want ErrOtherTPM", err)
	}
	if got := bob.balance(t); got.Held != 200 {
		t.Fatalf("bob holds %d, want 200", got.Held)
	}
}

// TestInitWeakPIN: Init refuses a weak PIN before asking the bank.
func TestInitWeakPIN(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wallet")
	if _, err := Init(context.Background(), dir, "http://127.0.0.1:1", []byte("1"), Options{}); !errors.Is(err, ErrWeakPIN) {
		t.Fatalf("Init with PIN \"1\": %v, want ErrWeakPIN", err)
	}
}
