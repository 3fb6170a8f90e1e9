package wallet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otpcash/otpcash/wallet/recovery"
)

// TestBankBackup: a wallet keeps its backup at the bank; its device is
// lost; a new device from the phrase is refused to overwrite the bank's
// copy until it fetched it, fetches it, recovers from it, and then
// uploads its own, which carries the pending claims on: a third device
// recovers them from it. The claims show in the balance, apart.
func TestBankBackup(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	alice, phrase := b.newPhraseHolder(t, 500)
	bob := b.newHolder(t, 0)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 500); err != nil {
		t.Fatal(err)
	}
	fresh := b.onNewDevice(t, alice, phrase)
	if _, _, err := fresh.w.FetchBackup(ctx); !errors.Is(err, ErrNoBankBackup) {
		t.Fatalf("fetch before any upload: %v, want ErrNoBankBackup", err)
	}
	for i, want := range []int64{1, 2} {
		if i == 1 {
			if _, payErr, _, recvErr := pay(t, alice, bob, 200, nil); payErr != nil || recvErr != nil {
				t.Fatalf("pay: %v, %v", payErr, recvErr)
			}
		}
		st, err := alice.w.BackupToBank(ctx, nil)
		if err != nil || st.Version != want || st.Size == 0 {
			t.Fatalf("upload %d: %+v, %v", want, st, err)
		}
	}
	alice.w.Close()
	os.RemoveAll(alice.dir)

	// The new device has never seen the bank's copy: its upload would
	// replace the lost wallet's coins with its own empty wallet, however
	// often it tries.
	for try := range 3 {
		if _, err := fresh.w.BackupToBank(ctx, nil); !errors.Is(err, ErrBackupStale) {
			t.Fatalf("upload %d from a device that never fetched: %v, want ErrBackupStale", try+1, err)
		}
	}
	data, st, err := fresh.w.FetchBackup(ctx)
	if err != nil || st.Version != 2 {
		t.Fatalf("fetch: %+v, %v", st, err)
	}
	// Neither the fetch alone nor a recovery refused lets it replace the
	// copy: only one that took the copy in.
	wrong, _ := recovery.NewPhrase()
	if _, err := fresh.w.Recover(ctx, &wrong, data, fresh.acct()); !errors.Is(err, ErrWrongPhrase) {
		t.Fatalf("recover with a wrong phrase: %v", err)
	}
	if _, err := fresh.w.BackupToBank(ctx, nil); !errors.Is(err, ErrBackupStale) {
		t.Fatalf("upload after a fetch and a refused recovery: %v, want ErrBackupStale", err)
	}
	res, err := fresh.w.Recover(ctx, &phrase, data, fresh.acct())
	if err != nil || res.Imported != 3 || res.Pending != 3 {
		t.Fatalf("recover from the bank's copy: %+v, %v; want the 3 coins kept after the payment, pending", res, err)
	}
	if bal := fresh.balance(t); bal.Recovering != 300 || bal.RecoveringCoins != 3 || bal.Held != 0 {
		t.Fatalf("balance after the recovery: %+v; want 3.00 recovering apart, nothing held", bal)
	}
	if st, err := fresh.w.BackupToBank(ctx, nil); err != nil || st.Version != 3 {
		t.Fatalf("upload after the fetch: %+v, %v", st, err)
	}

	third := b.onNewDevice(t, alice, phrase)
	data, _, err = third.w.FetchBackup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := third.w.Recover(ctx, &phrase, data, third.acct()); err != nil || res.Imported != 3 {
		t.Fatalf("recover from the recovering device's backup: %+v, %v; want its 3 claims", res, err)
	}
}

// TestBankBackupOldVault: a vault made before bank-held backups has no
// upload key; the phrase, once, gives it, and a wrong phrase changes
// nothing.
func TestBankBackupOldVault(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	alice, phrase := b.newPhraseHolder(t, 0)
	s, err := alice.w.recoverySecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.BankKey = nil
	if err := alice.w.setJSON(ctx, settingRecovery, s); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.w.BackupToBank(ctx, nil); !errors.Is(err, ErrNeedPhrase) {
		t.Fatalf("upload without the key: %v, want ErrNeedPhrase", err)
	}
	other, _ := recovery.NewPhrase()
	if _, err := alice.w.BackupToBank(ctx, &other); !errors.Is(err, ErrWrongPhrase) {
		t.Fatalf("upload with another phrase: %v, want ErrWrongPhrase", err)
	}
	if _, err := alice.w.BackupToBank(ctx, nil); !errors.Is(err, ErrNeedPhrase) {
		t.Fatalf("a wrong phrase was kept: %v", err)
	}
	if _, err := alice.w.BackupToBank(ctx, &phrase); err != nil {
		t.Fatal(err)
	}
	if st, err := alice.w.BackupToBank(ctx, nil); err != nil || st.Version != 2 {
		t.Fatalf("second upload, without the phrase: %+v, %v", st, err)
	}
}

// TestBackupDir: a wallet with a backup directory writes its backup there
// after every withdrawal, payment, receipt and deposit, payer and payee,
// replacing it whole; each opens with the phrase and holds the coins of
// that moment.
func TestBackupDir(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	aliceDir, bobDir := t.TempDir(), t.TempDir()
	alice, alicePhrase := b.newPhraseHolderOn(t, 500, Options{BackupDir: aliceDir})
	bob, bobPhrase := b.newPhraseHolderOn(t, 0, Options{BackupDir: bobDir})
	coinsIn := func(dir string, p recovery.Phrase) int {
		t.Helper()
		files, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != 1 || !strings.HasSuffix(files[0].Name(), ".backup") || strings.HasPrefix(files[0].Name(), ".") {
			t.Fatalf("%s holds %v; want one backup and no temporary file", dir, files)
		}
		data, err := os.ReadFile(filepath.Join(dir, files[0].Name()))
		if err != nil {
			t.Fatal(err)
		}
		k, _ := p.Derive()
		doc, err := recovery.OpenBackup(&k, data)
		if err != nil {
			t.Fatal(err)
		}
		return len(doc.Coins)
	}
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 500); err != nil {
		t.Fatal(err)
	}
	if n := coinsIn(aliceDir, alicePhrase); n != 5 {
		t.Fatalf("after the withdrawal the backup holds %d coins, want 5", n)
	}
	for i := 1; i <= 2; i++ {
		if _, payErr, _, recvErr := pay(t, alice, bob, 100, nil); payErr != nil || recvErr != nil {
			t.Fatalf("pay: %v, %v", payErr, recvErr)
		}
		if n := coinsIn(aliceDir, alicePhrase); n != 5-i {
			t.Fatalf("after payment %d the payer's backup holds %d coins, want %d", i, n, 5-i)
		}
		if n := coinsIn(bobDir, bobPhrase); n != i {
			t.Fatalf("after payment %d the payee's backup holds %d coins, want %d", i, n, i)
		}
	}
	if _, err := bob.w.Deposit(ctx, bob.acct()); err != nil {
		t.Fatal(err)
	}
	if n := coinsIn(bobDir, bobPhrase); n != 0 {
		t.Fatalf("after the deposit the payee's backup holds %d coins, want 0", n)
	}
}
