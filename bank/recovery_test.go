package bank_test

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/internal/banktest"
	"github.com/otpcash/otpcash/otp"
)

// claim is h's recovery claim for account: h's holder key authorises r
// for the coin as h holds it, and r signs the claim.
func claim(t *testing.T, h banktest.Held, r ed25519.PrivateKey, account string) api.ReclaimCoin {
	t.Helper()
	auth, err := h.Sandbox.RecoveryAuthorization(h.Key, r.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	proof, err := h.Sandbox.RecoveryProof(r, account)
	if err != nil {
		t.Fatal(err)
	}
	return api.ReclaimCoin{Sandbox: h.Sandbox, Authorization: auth, Key: otp.EncodeKey(r.Public().(ed25519.PublicKey)), Proof: proof}
}

// TestRecoveryThroughTheBank plays a lost wallet's recovery: a coin it
// still held, one it paid to a payee who deposited in time, one it paid
// to a payee who never claims, and one it paid to a payee who claims it
// after the deadline before the payer does. Before the deadline every
// claim is pending with nothing changed; after it the bank credits exactly
// the coins nobody else deposited or claimed first, once, and the audit
// holds after every step.
func TestRecoveryThroughTheBank(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	ctx := context.Background()
	owner, ownerToken := e.Account(t, 4*banktest.TestValue)
	payee, payeeToken := e.Account(t, 0)
	coins := e.Withdraw(t, owner, ownerToken, 4)
	_, r := banktest.NewKey(t)
	// The backup: every coin as the wallet held it.
	backup := make([]api.ReclaimCoin, len(coins))
	for i, h := range coins {
		backup[i] = claim(t, h, r, owner)
	}
	// After the backup, the wallet pays coins 1, 2 and 3.
	paid := e.Pay(t, coins[1:])
	if resp, err := e.Client.Deposit(ctx, payeeToken, banktest.DepositRequest(t, payee, paid[:1])); err != nil || resp.Results[0].Status != api.StatusCredited {
		t.Fatalf("the payee's deposit: %+v, %v", resp, err)
	}
	key, err := e.Bank.Catalogue().Key(coins[0].Sandbox.Coin.Data.KeyID, otp.UseCoin)
	if err != nil {
		t.Fatal(err)
	}
	req := api.RecoveryRequest{Account: owner, Coins: backup}

	e.Clock.Advance(key.DepositUntil.Add(-time.Second).Sub(e.Clock.Now()))
	before := state(t, e)
	resp, err := e.Client.Recover(ctx, ownerToken, req)
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range resp.Results {
		if res.Status != api.StatusRefused || res.Code != api.CodeNotYet {
			t.Fatalf("coin %d a second before its deadline: %+v, want pending (%s)", i, res, api.CodeNotYet)
		}
	}
	sameState(t, before, state(t, e))

	e.Clock.Advance(2 * time.Second)
	_, payeeR := banktest.NewKey(t)
	// The payee of coin 3 claims it first, with its longer chain.
	if resp, err := e.Client.Recover(ctx, payeeToken, api.RecoveryRequest{Account: payee, Coins: []api.ReclaimCoin{claim(t, paid[2], payeeR, payee)}}); err != nil || resp.Results[0].Status != api.StatusCredited {
		t.Fatalf("the payee's claim of coin 3: %+v, %v", resp, err)
	}
	state(t, e)
	want := []string{api.StatusCredited, api.CodeDoubleDeposit, api.StatusCredited, api.CodeDoubleDeposit}
	for run := range 2 {
		resp, err := e.Client.Recover(ctx, ownerToken, req)
		if err != nil {
			t.Fatal(err)
		}
		for i, res := range resp.Results {
			got := res.Status
			if res.Status == api.StatusRefused {
				got = res.Code
			}
			if w := want[i]; got != w && !(run == 1 && w == api.StatusCredited && got == api.StatusAlreadyCredited) {
				t.Fatalf("run %d, coin %d: %+v, want %s", run, i, res, w)
			}
		}
		// Coins 0 and 2: the one kept, and the one whose payee never came.
		if resp.Balance != 2*banktest.TestValue {
			t.Fatalf("run %d: balance %d, want %d", run, resp.Balance, 2*banktest.TestValue)
		}
		state(t, e)
	}
	// The payee of coin 2 comes at last: its chain shows that the payer's
	// holder key had paid the coin it recovered; the conflict names it.
	resp, err = e.Client.Recover(ctx, payeeToken, api.RecoveryRequest{Account: payee, Coins: []api.ReclaimCoin{claim(t, paid[1], payeeR, payee)}})
	if err != nil {
		t.Fatal(err)
	}
	res := resp.Results[0]
	if res.Code != api.CodeDoubleDeposit || res.Conflict == nil || res.Conflict.Key != coins[2].Sandbox.Holder() || res.Conflict.Index != 0 {
		t.Fatalf("the late payee's claim: %+v; want a double deposit naming the payer's holder key", res)
	}
	state(t, e)
}

// TestRecoveryRefusesBadClaims sends, after the deadline, claims that a
// lost wallet's owner could not make: each is refused as invalid_proof
// with nothing changed.
func TestRecoveryRefusesBadClaims(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	ctx := context.Background()
	owner, ownerToken := e.Account(t, banktest.TestValue)
	other, otherToken := e.Account(t, 0)
	h := e.Withdraw(t, owner, ownerToken, 1)[0]
	_, r := banktest.NewKey(t)
	_, wrong := banktest.NewKey(t)
	good := claim(t, h, r, owner)
	// A wrong phrase gives another recovery key, which no holder key
	// authorised.
	wrongKey := good
	wrongKey.Key = otp.EncodeKey(wrong.Public().(ed25519.PublicKey))
	wrongKey.Proof, _ = h.Sandbox.RecoveryProof(wrong, owner)
	// A thief's own holder-less authorisation: signed by r, not the holder.
	selfAuth := good
	selfAuth.Authorization, _ = h.Sandbox.RecoveryProof(r, owner)
	key, _ := e.Bank.Catalogue().Key(h.Sandbox.Coin.Data.KeyID, otp.UseCoin)
	e.Clock.Advance(key.DepositUntil.Add(time.Hour).Sub(e.Clock.Now()))
	for _, tc := range []struct {
		name    string
		account string
		token   string
		coin    api.ReclaimCoin
	}{
		{"a recovery key the holder never authorised", owner, ownerToken, wrongKey},
		{"an authorisation not by the holder key", owner, ownerToken, selfAuth},
		{"the claim for another account", other, otherToken, good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := state(t, e)
			resp, err := e.Client.Recover(ctx, tc.token, api.RecoveryRequest{Account: tc.account, Coins: []api.ReclaimCoin{tc.coin}})
			if err != nil {
				t.Fatal(err)
			}
			if res := resp.Results[0]; res.Code != api.CodeInvalidProof || resp.Balance != 0 {
				t.Fatalf("%+v; want refused %s", resp, api.CodeInvalidProof)
			}
			sameState(t, before, state(t, e))
		})
	}
	resp, err := e.Client.Recover(ctx, ownerToken, api.RecoveryRequest{Account: owner, Coins: []api.ReclaimCoin{good}})
	if err != nil || resp.Results[0].Status != api.StatusCredited {
		t.Fatalf("the good claim: %+v, %v", resp, err)
	}
	if ref := lastReference(t, e, owner, ownerToken); !strings.HasPrefix(ref, "rcv-") {
		t.Fatalf("recovery's ledger reference %q, want rcv-…", ref)
	}
}
