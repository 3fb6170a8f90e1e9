package vault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var newPIN = []byte("battery staple")

// TestChangePIN: a weak new PIN or a wrong old one changes nothing; the
// right old PIN and a good new one make the vault open with the new PIN
// only, its coins intact.
func TestChangePIN(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	v, dir := newVault(t)
	is.withdraw(t, v, "w1", 5, 10)
	if err := v.ChangePIN(ctx, testPIN, []byte("12345")); !errors.Is(err, ErrWeakPIN) {
		t.Fatalf("change to a 5-digit PIN: %v, want ErrWeakPIN", err)
	}
	if err := v.ChangePIN(ctx, []byte("wrong horse"), newPIN); !errors.Is(err, ErrWrongPIN) {
		t.Fatalf("change with a wrong old PIN: %v, want ErrWrongPIN", err)
	}
	if err := v.ChangePIN(ctx, testPIN, newPIN); err != nil {
		t.Fatal(err)
	}
	if got := len(held(t, v)); got != 2 {
		t.Fatalf("%d coins held after the change, want 2", got)
	}
	v.Close()
	if _, err := Open(ctx, dir, testPIN); !errors.Is(err, ErrWrongPIN) {
		t.Fatalf("open with the old PIN: %v, want ErrWrongPIN", err)
	}
	v, err := Open(ctx, dir, newPIN)
	if err != nil {
		t.Fatalf("open with the new PIN: %v", err)
	}
	defer v.Close()
	if got := len(held(t, v)); got != 2 {
		t.Fatalf("%d coins held after reopening, want 2", got)
	}
}

// TestChangePINWrongTriesCounted: wrong old PINs given to ChangePIN count
// like wrong PINs at Open: after the software vault's free tries, or the
// TPM's maximum, even the right PIN is refused for a while.
func TestChangePINWrongTriesCounted(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t, backend)
	tries := freeTries
	if backend == TPM {
		tries = 3
		setDA(t, o.TPM, uint32(tries), 3600, 3600)
	}
	v, err := Create(ctx, filepath.Join(t.TempDir(), "wallet"), testPIN, o)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for i := range tries {
		if err := v.ChangePIN(ctx, []byte("wrong horse"), newPIN); !errors.Is(err, ErrWrongPIN) {
			t.Fatalf("wrong old PIN %d: %v, want ErrWrongPIN", i+1, err)
		}
	}
	if err := v.ChangePIN(ctx, testPIN, newPIN); !errors.Is(err, ErrLocked) {
		t.Fatalf("the right old PIN after %d wrong ones: %v, want ErrLocked", tries, err)
	}
}

// pinCrashDir tells a re-run of the test binary to be the process
// TestChangePINCrash kills.
const pinCrashDir = "OTPCASH_VAULT_PIN_CRASH_DIR"

// TestChangePINCrash kills, with SIGKILL at random moments, a process that
// changes the vault's PIN back and forth, and checks after each kill that
// the vault opens with exactly one of the two PINs.
func TestChangePINCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes")
	}
	ctx := context.Background()
	o := testOptions(t, backend)
	if backend == TPM {
		// Each check tries one wrong PIN: keep the lockout away.
		setDA(t, o.TPM, 1000, 1, 1)
	}
	dir := filepath.Join(t.TempDir(), "wallet")
	v, err := Create(ctx, dir, testPIN, o)
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	for kill := range 5 {
		changes := 1 + rand.IntN(3)
		killChild(t, "TestChangePINChild", pinCrashDir, dir, "changed ", changes, time.Duration(rand.IntN(20_000))*time.Microsecond)
		var opened []string
		for _, pin := range [][]byte{testPIN, newPIN} {
			v, err := Open(ctx, dir, pin)
			switch {
			case err == nil:
				opened = append(opened, string(pin))
				v.Close()
			case !errors.Is(err, ErrWrongPIN):
				t.Fatalf("kill %d: open with %q: %v", kill, pin, err)
			}
		}
		if len(opened) != 1 {
			t.Fatalf("kill %d after %d changes: the vault opens with %q, want exactly one of the two PINs", kill, changes, opened)
		}
		t.Logf("kill %d after %d changes: opens with %q", kill, changes, opened[0])
	}
}

// TestChangePINChild changes the PIN of the vault in
// $OTPCASH_VAULT_PIN_CRASH_DIR back and forth until it is killed.
func TestChangePINChild(t *testing.T) {
	dir := os.Getenv(pinCrashDir)
	if dir == "" {
		t.Skip("run by TestChangePINCrash")
	}
	ctx := context.Background()
	cur, next := testPIN, newPIN
	v, err := Open(ctx, dir, cur)
	if errors.Is(err, ErrWrongPIN) {
		cur, next = next, cur
		v, err = Open(ctx, dir, cur)
	}
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if err := v.ChangePIN(ctx, cur, next); err != nil {
			t.Fatal(err)
		}
		cur, next = next, cur
		fmt.Println("changed", i)
	}
}

// TestTPMChangePIN: a PIN change advances the TPM's chain, so a copy of
// the vault from before it is dead, with either PIN; and a change whose
// extend was lost after the commit (the process died there) opens with
// the new PIN only, and finishes the extend.
func TestTPMChangePIN(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	dir, dev := newTPMVault(t, is, 5, 10)
	before := filepath.Join(t.TempDir(), "before")
	copyDir(t, dir, before)

	v, err := OpenWith(ctx, dir, testPIN, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := v.g.(*tpmProtector)
	inner := g.tpm
	g.tpm = noExtendTPM{inner}
	if err := v.ChangePIN(ctx, testPIN, newPIN); err == nil {
		t.Fatal("a PIN change whose extend failed returned no error")
	}
	g.tpm = inner
	v.Close()
	if _, err := OpenWith(ctx, dir, testPIN, nil); !errors.Is(err, ErrWrongPIN) {
		t.Fatalf("open with the old PIN after the interrupted change: %v, want ErrWrongPIN", err)
	}
	if v, err = OpenWith(ctx, dir, newPIN, nil); err != nil {
		t.Fatalf("open with the new PIN after the interrupted change: %v", err)
	}
	v.Close()
	for _, pin := range [][]byte{testPIN, newPIN} {
		if _, err := OpenWith(ctx, before, pin, &Options{TPM: dev}); !errors.Is(err, ErrRollback) {
			t.Fatalf("open of the copy from before the change with %q: %v, want ErrRollback", pin, err)
		}
	}
}
