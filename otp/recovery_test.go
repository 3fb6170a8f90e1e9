package otp

import (
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestRecovery(t *testing.T) {
	f := newFixture(t)
	held := Sandbox{Coin: *f.coin}
	r, other := seedKey("recovery"), seedKey("other")
	rPub := EncodeKey(r.Public().(ed25519.PublicKey))
	if _, err := held.RecoveryAuthorization(other, r.Public().(ed25519.PublicKey)); !errors.Is(err, ErrChain) {
		t.Fatalf("authorisation by a key that does not hold the coin: %v", err)
	}
	auth, err := held.RecoveryAuthorization(f.holder, r.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	proof, err := held.RecoveryProof(r, "acct-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := held.VerifyRecovery(auth, rPub, proof, "acct-1"); err != nil {
		t.Fatalf("a good claim: %v", err)
	}
	// The coin paid on: the authorisation was for the chain as it was.
	paid := Sandbox{Coin: *f.coin}
	if err := paid.Transfer(f.holder, f.exchange); err != nil {
		t.Fatal(err)
	}
	paidProof, _ := paid.RecoveryProof(r, "acct-1")
	reclaimAuth, _ := paid.ReclaimAuthorization(f.holder, r.Public().(ed25519.PublicKey))
	reclaimProof, _ := held.ReclaimProof(r, "acct-1")
	otherProof, _ := held.RecoveryProof(other, "acct-1")
	bad := []struct {
		name             string
		sb               *Sandbox
		auth, key, proof string
		account          string
	}{
		{"another account", &held, auth, rPub, proof, "acct-2"},
		{"a key the holder never authorised", &held, auth, EncodeKey(other.Public().(ed25519.PublicKey)), otherProof, "acct-1"},
		{"the authorisation as proof", &held, auth, rPub, auth, "acct-1"},
		{"a reclaim's request as proof", &held, auth, rPub, reclaimProof, "acct-1"},
		{"the coin with a longer chain", &paid, auth, rPub, paidProof, "acct-1"},
		{"a reclaim authorisation", &paid, reclaimAuth, rPub, paidProof, "acct-1"},
	}
	for i := range auth {
		bad = append(bad, struct {
			name             string
			sb               *Sandbox
			auth, key, proof string
			account          string
		}{"authorisation with a byte flipped", &held, flipText(auth, i), rPub, proof, "acct-1"})
	}
	for i := range proof {
		bad = append(bad, struct {
			name             string
			sb               *Sandbox
			auth, key, proof string
			account          string
		}{"claim with a byte flipped", &held, auth, rPub, flipText(proof, i), "acct-1"})
	}
	for _, b := range bad {
		if err := b.sb.VerifyRecovery(b.auth, b.key, b.proof, b.account); err == nil {
			t.Fatalf("%s: accepted", b.name)
		}
	}
}
