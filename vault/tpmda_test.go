package vault

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/otpcash/otpcash/internal/testtpm"
)

// TestTPMDictionaryAttackSetup sets a swtpm's dictionary-attack
// parameters, the recommended ones then others, and reads each back from
// the TPM; parameters that would lock the vaults out for good or turn the
// protection off are refused, and so is a wrong lockout authorization,
// with the TPM's parameters unchanged.
func TestTPMDictionaryAttackSetup(t *testing.T) {
	ctx := context.Background()
	dev := testtpm.Start(t)
	readBack := func(want DAParams) {
		t.Helper()
		got, err := DictionaryAttack(ctx, dev)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("the TPM's parameters are %+v, want %+v", got, want)
		}
	}
	if err := SetDictionaryAttack(ctx, dev, nil, RecommendedDA); err != nil {
		t.Fatal(err)
	}
	readBack(DAParams{MaxTries: 10, Recovery: 600 * time.Second, LockoutRecovery: 86400 * time.Second})

	for _, p := range []DAParams{
		{MaxTries: 0, Recovery: time.Minute},
		{MaxTries: 3, Recovery: 0},
		{MaxTries: 3, Recovery: 1500 * time.Millisecond},
		{MaxTries: 3, Recovery: time.Minute, LockoutRecovery: -time.Second},
		{MaxTries: 3, Recovery: time.Duration(1<<32) * time.Second},
	} {
		if err := SetDictionaryAttack(ctx, dev, nil, p); !errors.Is(err, ErrDAParams) {
			t.Errorf("SetDictionaryAttack(%+v) = %v, want ErrDAParams", p, err)
		}
	}
	readBack(RecommendedDA)

	// The owner sets a lockout authorization; only it sets the numbers.
	tp, err := openTPM(dev)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tpm2.HierarchyChangeAuth{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHLockout, Auth: tpm2.PasswordAuth(nil)},
		NewAuth:    tpm2.TPM2BAuth{Buffer: []byte("lockout secret")},
	}.Execute(tp)
	tp.Close()
	if err != nil {
		t.Fatal(err)
	}
	other := DAParams{MaxTries: 5, Recovery: 60 * time.Second, LockoutRecovery: 0}
	if err := SetDictionaryAttack(ctx, dev, []byte("lockout secret"), other); err != nil {
		t.Fatal(err)
	}
	readBack(other)
	if err := SetDictionaryAttack(ctx, dev, []byte("wrong"), RecommendedDA); !errors.Is(err, tpm2.TPMRCAuthFail) && !errors.Is(err, tpm2.TPMRCBadAuth) {
		t.Fatalf("a wrong lockout authorization: %v, want an authorization failure", err)
	}
	readBack(other)
}
