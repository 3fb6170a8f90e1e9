package otp

import (
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestReclaim(t *testing.T) {
	f := newFixture(t)
	s := Sandbox{Coin: *f.coin}
	if _, err := s.ReclaimAuthorization(f.holder, seedKey("r").Public().(ed25519.PublicKey)); !errors.Is(err, ErrChain) {
		t.Fatalf("authorisation for a coin never sealed: %v", err)
	}
	if err := s.Transfer(f.holder, f.exchange); err != nil {
		t.Fatal(err)
	}
	r, other := seedKey("reclaim"), seedKey("other")
	rPub := EncodeKey(r.Public().(ed25519.PublicKey))
	if _, err := s.ReclaimAuthorization(other, r.Public().(ed25519.PublicKey)); !errors.Is(err, ErrChain) {
		t.Fatalf("authorisation by a key that did not seal the coin: %v", err)
	}
	auth, err := s.ReclaimAuthorization(f.holder, r.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	proof, err := s.ReclaimProof(r, "acct-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyReclaim(auth, rPub, proof, "acct-1"); err != nil {
		t.Fatalf("a good reclaim: %v", err)
	}
	otherProof, _ := s.ReclaimProof(other, "acct-1")
	bad := []struct {
		name             string
		auth, key, proof string
		account          string
	}{
		{"another account", auth, rPub, proof, "acct-2"},
		{"a key the payer never authorised", auth, EncodeKey(other.Public().(ed25519.PublicKey)), otherProof, "acct-1"},
		{"the authorisation as proof", auth, rPub, auth, "acct-1"},
	}
	for i := range auth {
		bad = append(bad, struct {
			name             string
			auth, key, proof string
			account          string
		}{"authorisation with a byte flipped", flipText(auth, i), rPub, proof, "acct-1"})
	}
	for i := range proof {
		bad = append(bad, struct {
			name             string
			auth, key, proof string
			account          string
		}{"request with a byte flipped", auth, rPub, flipText(proof, i), "acct-1"})
	}
	for _, b := range bad {
		if err := s.VerifyReclaim(b.auth, b.key, b.proof, b.account); err == nil {
			t.Fatalf("%s: accepted", b.name)
		}
	}
}

// flipText flips the low bit of byte i of s.
func flipText(s string, i int) string {
	b := []byte(s)
	b[i] ^= 1
	return string(b)
}
