package vault

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/otpcash/otpcash/otp"
)

// TestWithdrawalSecret: a withdrawal's secret is made with its holder
// keys, the same on every call (so a resumed withdrawal rebuilds the same
// blinded coins), kept when its coins are stored, and its own.
func TestWithdrawalSecret(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	v, _ := newVault(t)
	if _, err := v.WithdrawalSecret(ctx, "w1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("secret of an unknown withdrawal: %v, want %v", err, ErrNotFound)
	}
	pubs, err := v.HolderKeys(ctx, "w1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.HolderKeys(ctx, "w2", 1); err != nil {
		t.Fatal(err)
	}
	first, err := v.WithdrawalSecret(ctx, "w1")
	if err != nil || len(first) != withdrawalSecretSize {
		t.Fatalf("secret: %x, %v", first, err)
	}
	other, err := v.WithdrawalSecret(ctx, "w2")
	if err != nil || bytes.Equal(first, other) {
		t.Fatalf("two withdrawals share a secret: %v", err)
	}
	if _, err := v.HolderKeys(ctx, "w1", 0); err != nil {
		t.Fatal(err)
	}
	if err := v.AddWithdrawn(ctx, "w1", []otp.Coin{is.issue(t, 100, pubs[0])}); err != nil {
		t.Fatal(err)
	}
	again, err := v.WithdrawalSecret(ctx, "w1")
	if err != nil || !bytes.Equal(first, again) {
		t.Fatalf("secret after the coins were stored: %x, %v; want %x", again, err, first)
	}
}
