package wallet

import (
	"context"
	"crypto/ed25519"
	"sync"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/vault"
)

type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *manualClock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// sealTo seals one of from's coins to the nth of to's exchange keys, as a
// payment does, and delivers nothing: the payee vanished.
func sealTo(t *testing.T, from, to *holder, nth int) otp.Sandbox {
	t.Helper()
	ctx := context.Background()
	held, err := from.w.v.Payable(ctx, "EUR", otp.GeneralProgramName)
	if err != nil || len(held) == 0 {
		t.Fatalf("nothing to seal: %v", err)
	}
	keys, err := to.w.v.OfferExchangeKeys(ctx, nth+1)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := from.w.v.Purse("bob").Seal(ctx, held[:1], keys[nth:])
	if err != nil {
		t.Fatal(err)
	}
	return sealed[0]
}

// TestReclaim: Alice's coin sealed to Bob never reaches him. Before the
// coin's deposit deadline the bank refuses to credit it back; after it,
// Alice reclaims it, once; Bob, who gets the coin late, cannot deposit it;
// and a coin Bob did deposit in time is refused to Alice's reclaim and
// becomes spent in her wallet, not lost.
func TestReclaim(t *testing.T) {
	ctx := context.Background()
	clock := &manualClock{t: time.Now().UTC().Truncate(time.Second)}
	b := newClockedBank(t, denom.Set{100}, clock.Now)
	alice, bob := b.newHolder(t, 200), b.newHolder(t, 0)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 200); err != nil {
		t.Fatal(err)
	}
	lost := sealTo(t, alice, bob, 0)
	delivered := sealTo(t, alice, bob, 1)
	// Bob gets the second coin (its receipt never reaches Alice) and
	// deposits it in time.
	if _, _, err := bob.w.v.Receive(ctx, "alice", []otp.Sandbox{delivered}); err != nil {
		t.Fatal(err)
	}
	if r, err := bob.w.Deposit(ctx, bob.acct()); err != nil || r.Credited != 100 {
		t.Fatalf("Bob's deposit in time: %+v, %v", r, err)
	}

	items, err := alice.w.v.ReclaimItems(ctx, alice.account, func(*otp.Coin) bool { return true })
	if err != nil || len(items) != 2 {
		t.Fatalf("reclaim items: %d, %v", len(items), err)
	}
	req := api.ReclaimRequest{Account: alice.account}
	for _, it := range items {
		req.Coins = append(req.Coins, api.ReclaimCoin{Sandbox: it.Sandbox, Authorization: it.Auth, Key: it.Key, Proof: it.Proof})
	}
	if res, err := alice.w.Reclaim(ctx, alice.acct()); err != nil || res.Coins != 0 {
		t.Fatalf("reclaim before any deadline: %+v, %v; want nothing asked", res, err)
	}
	if resp, err := alice.w.bank.Reclaim(ctx, alice.token, req); err != nil || resp.Results[0].Code != api.CodeNotYet {
		t.Fatalf("the bank asked before the deadline: %+v, %v; want %s", resp, err, api.CodeNotYet)
	}

	key, err := alice.w.cat().Key(lost.Coin.Data.KeyID, otp.UseCoin)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(key.DepositUntil.Sub(clock.Now()) + time.Hour)

	// Forged requests: a reclaim key the payer never authorised, and the
	// right key signing for another account.
	_, stranger, _ := ed25519.GenerateKey(nil)
	forged := req
	forged.Coins = []api.ReclaimCoin{req.Coins[0]}
	forged.Coins[0].Key = otp.EncodeKey(stranger.Public().(ed25519.PublicKey))
	if forged.Coins[0].Proof, err = lost.ReclaimProof(stranger, alice.account); err != nil {
		t.Fatal(err)
	}
	if resp, err := alice.w.bank.Reclaim(ctx, alice.token, forged); err != nil || resp.Results[0].Code != api.CodeInvalidProof {
		t.Fatalf("reclaim with an unauthorised key: %+v, %v", resp, err)
	}
	other := req
	other.Coins = []api.ReclaimCoin{req.Coins[0]}
	other.Account = bob.account
	if resp, err := bob.w.bank.Reclaim(ctx, bob.token, other); err != nil || resp.Results[0].Code != api.CodeInvalidProof {
		t.Fatalf("Alice's reclaim replayed for Bob's account: %+v, %v", resp, err)
	}
	if bal, _ := b.Balance(ctx, alice.account); bal != 0 {
		t.Fatalf("refused reclaims credited %d", bal)
	}

	res, err := alice.w.Reclaim(ctx, alice.acct())
	if err != nil || res.Coins != 1 || res.Credited != 100 || res.Spent != 1 || len(res.Refused) != 0 || res.Balance != 100 {
		t.Fatalf("reclaim after the deadline: %+v, %v; want the lost coin credited and the deposited one spent", res, err)
	}
	states := map[string]vault.State{}
	coins, _ := alice.w.v.Coins(ctx)
	for _, c := range coins {
		states[c.Sandbox.Coin.Data.Token] = c.State
	}
	if states[lost.Coin.Data.Token] != vault.Reclaimed || states[delivered.Coin.Data.Token] != vault.Spent {
		t.Errorf("Alice's coins after the reclaim: %v", states)
	}
	if again, err := alice.w.Reclaim(ctx, alice.acct()); err != nil || again.Coins != 0 {
		t.Errorf("second reclaim: %+v, %v; want nothing left", again, err)
	}

	// Bob gets the lost coin at last: too late to deposit.
	if _, _, err := bob.w.v.Receive(ctx, "alice", []otp.Sandbox{lost}); err != nil {
		t.Fatal(err)
	}
	if r, err := bob.w.Deposit(ctx, bob.acct()); err != nil || len(r.Refused) != 1 || r.Credited != 0 {
		t.Fatalf("Bob's late deposit of the reclaimed coin: %+v, %v; want it refused", r, err)
	}
	if bal, _ := b.Balance(ctx, alice.account); bal != 100 {
		t.Errorf("Alice's account: %d, want 1.00 reclaimed", bal)
	}
	rep, err := b.Audit(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("audit after reclaims: %v, %v", rep, err)
	}
}
