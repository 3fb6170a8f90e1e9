package otp

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
)

// TestVerifyDeposits checks that verifying a deposit's coins together
// gives every coin exactly the answer VerifySandbox and VerifyDepositProof
// give it alone, whatever else is in the batch: a bad coin refuses only
// itself, and no bad coin hides among good ones. Batches below minBatch
// signatures take the single path, the larger ones voi's batch.
func TestVerifyDeposits(t *testing.T) {
	f := newFixture(t)
	const account = "acct-1"
	damages := []struct {
		name   string
		damage func(s *Sandbox, proof *string)
		proof  bool // the proof is wrong, not the sandbox
	}{
		{"link signature", func(s *Sandbox, _ *string) { s.Chain[0].Sig = flipSig(s.Chain[0].Sig) }, false},
		{"issuer signature", func(s *Sandbox, _ *string) { s.Coin.Signature.Value = flipSig(s.Coin.Signature.Value) }, false},
		{"exchange key certificate", func(s *Sandbox, _ *string) { s.Chain[0].To.Sig = flipSig(s.Chain[0].To.Sig) }, false},
		{"value, checksum kept", func(s *Sandbox, _ *string) { s.Coin.Data.Value++ }, false},
		{"proof signature", func(_ *Sandbox, p *string) { *p = flipSig(*p) }, true},
		{"proof not base64url", func(_ *Sandbox, p *string) { *p = "!" + (*p)[1:] }, true},
		{"proof for another account", nil, true},
		{"link and proof", func(s *Sandbox, p *string) { s.Chain[0].Sig, *p = flipSig(s.Chain[0].Sig), flipSig(*p) }, false},
	}
	for _, n := range []int{1, 3, 8, 40} {
		hops := honestHops(t, f, n)
		for _, d := range damages {
			for _, at := range []int{0, n / 2, n - 1} {
				t.Run(fmt.Sprintf("%d coins/%s at %d", n, d.name, at), func(t *testing.T) {
					ss, proofs := make([]*Sandbox, n), make([]string, n)
					for i := range ss {
						coin, err := f.coinKey.Issue(NewSerial(), f.holder.Public().(ed25519.PublicKey), t0.AddDate(1, 0, 0), GeneralProgram())
						if err != nil {
							t.Fatal(err)
						}
						ss[i] = &Sandbox{Coin: *coin}
						if err := ss[i].Transfer(f.holder, hops[i].to); err != nil {
							t.Fatal(err)
						}
						acct := account
						if i == at && d.damage == nil {
							acct = "acct-2"
						}
						if proofs[i], err = ss[i].DepositProof(hops[i].priv, acct); err != nil {
							t.Fatal(err)
						}
					}
					if d.damage != nil {
						d.damage(ss[at], &proofs[at])
					}
					sandboxErrs, proofErrs := f.v.VerifyDeposits(ss, proofs, account)
					for i, s := range ss {
						wantS := f.v.VerifySandbox(s)
						var wantP error
						if wantS == nil {
							wantP = s.VerifyDepositProof(proofs[i], account)
						}
						if i == at && (wantS != nil) == d.proof || (i == at) != (wantS != nil || wantP != nil) {
							t.Fatalf("coin %d: alone, sandbox %v, proof %v: the damage is not where the test put it", i, wantS, wantP)
						}
						if !sameError(sandboxErrs[i], wantS) || !sameError(proofErrs[i], wantP) {
							t.Errorf("coin %d: together: sandbox %v, proof %v; alone: %v, %v", i, sandboxErrs[i], proofErrs[i], wantS, wantP)
						}
					}
				})
			}
		}
	}
}

// sameError reports whether a and b are both nil, or say the same and are
// both ErrSignature or both not.
func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Error() == b.Error() && errors.Is(a, ErrSignature) == errors.Is(b, ErrSignature)
}
