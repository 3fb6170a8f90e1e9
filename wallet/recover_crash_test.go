package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/internal/fault"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/wallet/recovery"
)

// recoverCrashJob is what TestRecoverCrash hands the process it kills.
type recoverCrashJob struct {
	Dir, Account, Token, Phrase, Backup string
	Now                                 time.Time
}

const recoverCrashEnv = "OTPCASH_TEST_RECOVER_CRASH"

const freshPIN = "654321" // onNewDevice's

// TestRecoverCrashChild is the process TestRecoverCrash kills: it runs
// one recovery of the job in recoverCrashEnv.
func TestRecoverCrashChild(t *testing.T) {
	raw := os.Getenv(recoverCrashEnv)
	if raw == "" {
		t.Skip("run by TestRecoverCrash")
	}
	var j recoverCrashJob
	if err := json.Unmarshal([]byte(raw), &j); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w, err := Open(ctx, j.Dir, []byte(freshPIN), Options{PINHashing: cheap, Now: func() time.Time { return j.Now }})
	if err != nil {
		t.Fatal(err)
	}
	p, err := recovery.ParsePhrase(j.Phrase)
	if err != nil {
		t.Fatal(err)
	}
	backup, err := os.ReadFile(j.Backup)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Recover(ctx, &p, backup, Account{ID: j.Account, Token: j.Token})
	t.Fatalf("recovery not killed: %v", err)
}

// faultyTestBinary builds this package's tests with the faultinject tag,
// the only build in which fault points kill, into a directory of t's.
func faultyTestBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wallet.test")
	if out, err := exec.Command("go", "test", "-c", "-tags", "faultinject", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build with faultinject: %v\n%s", err, out)
	}
	return bin
}

// dropAnswer is a link to the bank that delivers each request and loses
// the answer: the bank committed, the wallet heard nothing, as when the
// bank dies before it answers (fault.BankDeposited, on the same
// transaction as a deposit's).
type dropAnswer struct{}

func (dropAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return nil, errors.New("connection lost before the answer")
}

// TestRecoverCrash stops a recovery at each of its points: killed with
// SIGKILL after the claims are kept (none sent), after the bank answered
// (the claims not updated), after the claims are updated (the history
// not written), and with the bank's answer lost after it committed. After
// each the audit holds, the account was credited all or nothing, the
// wallet holds the claims as they were at that point and nothing
// payable, and the next recovery, without the phrase, completes it:
// the account is credited exactly once, and a recovery from the backup
// once more changes nothing.
func TestRecoverCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes")
	}
	bin := faultyTestBinary(t)
	for _, tc := range []struct {
		point    string
		credited bool // the bank credited before the stop
		claims   int  // claims the wallet keeps after the stop
	}{
		{fault.WalletRecoveryClaims, false, 3},
		{"bank answer lost", true, 3},
		{fault.WalletRecovered, true, 3},
		{fault.WalletRecoveryKept, true, 0},
	} {
		t.Run(tc.point, func(t *testing.T) {
			ctx := context.Background()
			clock := newClock()
			b := newClockedBank(t, denom.Set{100}, clock.Now)
			alice, phrase := b.newPhraseHolder(t, 300)
			bob := b.newHolder(t, 0)
			if _, err := alice.w.Withdraw(ctx, alice.acct(), 300); err != nil {
				t.Fatal(err)
			}
			backup := mustBackup(t, alice)
			// Paid after the backup and deposited in time: spent, never
			// credited to Alice.
			if _, payErr, _, recvErr := pay(t, alice, bob, 100, nil); payErr != nil || recvErr != nil {
				t.Fatalf("pay: %v, %v", payErr, recvErr)
			}
			if _, err := bob.w.Deposit(ctx, bob.acct()); err != nil {
				t.Fatal(err)
			}
			alice.w.Close()
			os.RemoveAll(alice.dir)
			fresh := b.onNewDevice(t, alice, phrase)
			keys, _ := phrase.Derive()
			doc, err := recovery.OpenBackup(&keys, backup)
			if err != nil {
				t.Fatal(err)
			}
			key, err := fresh.w.cat().Key(doc.Coins[0].Sandbox.Coin.Data.KeyID, otp.UseCoin)
			if err != nil {
				t.Fatal(err)
			}
			fresh.w.Close()
			backupFile := filepath.Join(t.TempDir(), "backup")
			if err := os.WriteFile(backupFile, backup, 0o600); err != nil {
				t.Fatal(err)
			}
			clock.Advance(key.DepositUntil.Sub(clock.Now()) + time.Hour)

			if tc.point == "bank answer lost" {
				w, err := Open(ctx, fresh.dir, []byte(freshPIN), Options{PINHashing: cheap, Now: clock.Now, HTTPClient: &http.Client{Transport: dropAnswer{}}})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Recover(ctx, &phrase, backup, fresh.acct()); err == nil {
					t.Fatal("recovery succeeded without the bank's answer")
				}
				w.Close()
			} else {
				job, _ := json.Marshal(recoverCrashJob{Dir: fresh.dir, Account: fresh.account, Token: fresh.token,
					Phrase: phrase.String(), Backup: backupFile, Now: clock.Now()})
				cmd := exec.Command(bin, "-test.run=^TestRecoverCrashChild$")
				cmd.Env = append(os.Environ(), recoverCrashEnv+"="+string(job), fault.Env+"="+tc.point)
				out, err := cmd.CombinedOutput()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("the recovery was not killed at %s: %v\n%s", tc.point, err, out)
				}
			}

			b.audit(t)
			want := int64(0)
			if tc.credited {
				want = 200
			}
			if got := b.balanceOf(t, alice); got != want {
				t.Fatalf("account after the stop: %d, want %d", got, want)
			}
			w, err := Open(ctx, fresh.dir, []byte(freshPIN), Options{PINHashing: cheap, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			bal, err := w.Balance(ctx)
			if err != nil || bal.RecoveringCoins != tc.claims || bal.Held != 0 || bal.Coins != 0 {
				t.Fatalf("wallet after the stop: %+v, %v; want %d claims, nothing payable", bal, err, tc.claims)
			}
			res, err := w.Recover(ctx, nil, nil, fresh.acct())
			if err != nil || res.Pending != 0 || len(res.Refused) != 0 {
				t.Fatalf("recovery after the stop: %+v, %v", res, err)
			}
			if tc.claims > 0 && (res.Credited != 200 || res.Spent != 1) {
				t.Fatalf("recovery after the stop: %+v; want 2.00 credited, 1 coin spent", res)
			}
			if got := b.balanceOf(t, alice); got != 200 {
				t.Fatalf("account after the recovery: %d, want 200 (credited once)", got)
			}
			if _, err := w.Recover(ctx, &phrase, backup, fresh.acct()); err != nil {
				t.Fatal(err)
			}
			if got := b.balanceOf(t, alice); got != 200 {
				t.Fatalf("account after recovering from the backup again: %d, want 200", got)
			}
			if bal, _ := w.Balance(ctx); bal.RecoveringCoins != 0 {
				t.Fatalf("%d claims left", bal.RecoveringCoins)
			}
			b.audit(t)
		})
	}
}
