package otp

import (
	"crypto/rsa"
	"errors"
	"fmt"

	"filippo.io/bigmod"
)

// ErrBlindFault is the error of a blind signature that did not verify
// under the key's public half before release: a fault in one half of the
// CRT computation. Such a signature would give away the key (Boneh,
// DeMillo and Lipton: gcd(s^e - m, n) is a prime factor), so it is never
// released. It is the bank's failure, not the client's.
var ErrBlindFault = errors.New("blind signature failed its check before release")

// blindKey is a blind RSA private key prepared, once, for the signing
// operation of crypto/rsa: the CRT in constant time with filippo.io/bigmod
// (the extraction of crypto/rsa's own arithmetic). circl's BlindSign
// exponentiates with the whole private exponent in math/big: variable time
// on the bank's most valuable secret, and about three times slower.
type blindKey struct {
	n, p, q *bigmod.Modulus
	e       uint
	dP, dQ  []byte      // d mod (p-1), d mod (q-1), big-endian
	qInv    *bigmod.Nat // q^-1 mod p
	qModN   *bigmod.Nat // q as a number modulo n, for the recombination
}

// newBlindKey checks priv (two primes, consistent CRT values) and
// precomputes its moduli. It does not modify priv.
func newBlindKey(priv *rsa.PrivateKey) (*blindKey, error) {
	if len(priv.Primes) != 2 {
		return nil, fmt.Errorf("rsa private key of %d primes, want 2", len(priv.Primes))
	}
	k := *priv
	k.Precompute()
	if err := k.Validate(); err != nil {
		return nil, fmt.Errorf("rsa private key: %w", err)
	}
	n, err := bigmod.NewModulus(k.N.Bytes())
	if err != nil {
		return nil, fmt.Errorf("rsa private key: modulus: %w", err)
	}
	p, err := bigmod.NewModulus(k.Primes[0].Bytes())
	if err != nil {
		return nil, fmt.Errorf("rsa private key: p: %w", err)
	}
	q, err := bigmod.NewModulus(k.Primes[1].Bytes())
	if err != nil {
		return nil, fmt.Errorf("rsa private key: q: %w", err)
	}
	qInv, err := bigmod.NewNat().SetBytes(k.Precomputed.Qinv.Bytes(), p)
	if err != nil {
		return nil, fmt.Errorf("rsa private key: qInv: %w", err)
	}
	return &blindKey{
		n: n, p: p, q: q, e: uint(k.E),
		dP:    k.Precomputed.Dp.FillBytes(make([]byte, p.Size())),
		dQ:    k.Precomputed.Dq.FillBytes(make([]byte, q.Size())),
		qInv:  qInv,
		qModN: bigmod.NewNat().Mod(q.Nat(), n),
	}, nil
}

// sign returns the RSA signing primitive (RSASP1) of the blinded message:
// blinded^d mod n, computed as crypto/rsa decrypts, and checked against
// the public key before it is released.
func (k *blindKey) sign(blinded []byte) ([]byte, error) {
	c, err := bigmod.NewNat().SetBytes(blinded, k.n)
	if err != nil {
		return nil, fmt.Errorf("%w: blinded message not less than the modulus", ErrBlind)
	}
	t0 := bigmod.NewNat()
	m := bigmod.NewNat().Exp(t0.Mod(c, k.p), k.dP, k.p)  // m1 = c^dP mod p
	m2 := bigmod.NewNat().Exp(t0.Mod(c, k.q), k.dQ, k.q) // m2 = c^dQ mod q
	m.Sub(t0.Mod(m2, k.p), k.p)                          // m1 - m2 mod p
	m.Mul(k.qInv, k.p)                                   // h = qInv (m1 - m2) mod p
	m.ExpandFor(k.n).Mul(k.qModN, k.n)                   // h q mod n
	m.Add(m2.ExpandFor(k.n), k.n)                        // m2 + h q mod n
	// The public exponent is public: the check may take variable time.
	if bigmod.NewNat().ExpShortVarTime(m, k.e, k.n).Equal(c) != 1 {
		return nil, ErrBlindFault
	}
	return m.Bytes(k.n), nil
}
