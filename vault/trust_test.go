package vault

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/otpcash/otpcash/otp"
)

// The executor trusts the vault's purse (otp.AuthenticatedPurse) and skips
// the issuer signature and the receipts, which the vault checks. A coin
// that is not the vault's own copy, such as one with a forged issuer
// signature, must still be refused before anything is signed or sent, and
// a bad receipt must still leave the coin pending-out.
func TestTrustedPurseRefusesForgery(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	alice, _ := newVault(t)
	bob, _ := newVault(t)
	is.withdraw(t, alice, "w1", 10)
	is.refill(t, bob, 1)
	coins, err := alice.Select(ctx, 10, "EUR")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := alice.Purse("bob").(otp.AuthenticatedPurse); !ok {
		t.Fatal("the vault's purse is not an otp.AuthenticatedPurse")
	}
	forged := coins[0]
	forged.Coin.Signature.Value = otherFirst(forged.Coin.Signature.Value) // checksum still matches
	peer := &countingPeer{vaultPeer: vaultPeer{bob, is.ver}}
	run := &otp.Run{Verifier: is.ver, Now: time.Now(), Peer: peer, Purse: alice.Purse("bob"), Coins: []otp.Sandbox{forged}}
	if err := otp.Execute(ctx, run); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Execute with a forged issuer signature = %v; want the vault to refuse the coin", err)
	}
	if peer.sent != 0 || len(held(t, alice)) != 1 {
		t.Fatalf("forged coin: %d coins sent, alice holds %d", peer.sent, len(held(t, alice)))
	}

	// A wrong receipt: the executor does not check it, the vault does.
	peer.badAck = true
	run = &otp.Run{Verifier: is.ver, Now: time.Now(), Peer: peer, Purse: alice.Purse("bob"), Coins: coins}
	if err := otp.Execute(ctx, run); !errors.Is(err, otp.ErrSignature) {
		t.Fatalf("Execute with a wrong receipt = %v; want %v", err, otp.ErrSignature)
	}
	if pending, err := alice.PendingOut(ctx, "bob"); err != nil || len(pending) != 1 {
		t.Fatalf("after a wrong receipt: %d pending-out, %v; want 1", len(pending), err)
	}
}

// otherFirst changes the first character of a base64url signature. The
// keys are random, so a fixed replacement would leave one signature in 64
// untouched and the test would fail by chance.
func otherFirst(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

type countingPeer struct {
	vaultPeer
	sent   int
	badAck bool
}

func (p *countingPeer) Send(ctx context.Context, sealed []otp.Sandbox) ([]otp.Ack, error) {
	p.sent += len(sealed)
	acks, err := p.vaultPeer.Send(ctx, sealed)
	if err == nil && p.badAck {
		acks[0].Sig = otherFirst(acks[0].Sig)
	}
	return acks, err
}
