package otp

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
)

// hop is one honest transfer of a test chain: the certificate the coin
// went to and the private key behind it.
type hop struct {
	to   ExchangeKey
	priv ed25519.PrivateKey
}

// honestHops certifies n fresh exchange keys under the fixture's exchange
// key, deterministically.
func honestHops(t testing.TB, f *fixture, n int) []hop {
	t.Helper()
	hops := make([]hop, n)
	for i := range hops {
		hops[i].priv = seedKey(fmt.Sprintf("hop %d", i))
		var err error
		hops[i].to, err = f.exchKey.Certify(hops[i].priv.Public().(ed25519.PublicKey), t0.AddDate(0, 3, 0), nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	return hops
}

// flipSig changes one bit of a base64url signature.
func flipSig(s string) string {
	b, err := b64.DecodeString(s)
	if err != nil {
		panic(err)
	}
	b[len(b)/2] ^= 1
	return b64.EncodeToString(b)
}

// TestForgedLaterLink forges one link after the first of a 2- or 3-hop
// chain, every other link honest (the links after the forged one are
// signed by the key the forged link names, as a thief would chain them).
// Every verifier path must refuse it: VerifySandbox (bank, deposit),
// VerifyReceived (payee, with and without its own last certificate
// trusted) and the payer's executor.
func TestForgedLaterLink(t *testing.T) {
	f := newFixture(t)
	rogue := signerFor("test-bank", f.exchKey.Key, seedKey("rogue"))
	rogue.Key.KeyID = f.exchKey.Key.KeyID
	other := cloneSandbox(t, &Sandbox{Coin: *f.coin})
	other.Coin.Data.Token = NewSerial().String()
	rehash(other)
	otherSum, err := other.Coin.checksumBytes()
	if err != nil {
		t.Fatal(err)
	}

	// forge returns link i of s (whose links before i are in place), made
	// by a forger who has the hops' keys; prev is the key that should sign.
	type forgery func(t *testing.T, s *Sandbox, i int, prev ed25519.PrivateKey, to ExchangeKey) Link
	signLink := func(t *testing.T, priv ed25519.PrivateKey, sum []byte, index int, to *ExchangeKey) string {
		head, canon, err := linkPayload(sum, index, to)
		if err != nil {
			t.Fatal(err)
		}
		return sign(priv, labelTransfer, head, canon)
	}
	sumOf := func(t *testing.T, s *Sandbox) []byte {
		sum, err := s.Coin.checksumBytes()
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	tests := []struct {
		name  string
		forge forgery
		want  error
	}{
		{"signature flipped", func(t *testing.T, s *Sandbox, i int, prev ed25519.PrivateKey, to ExchangeKey) Link {
			return Link{To: to, Sig: flipSig(signLink(t, prev, sumOf(t, s), i, &to))}
		}, ErrSignature},
		{"signed by the holder before the previous one", func(t *testing.T, s *Sandbox, i int, _ ed25519.PrivateKey, to ExchangeKey) Link {
			before := f.holder
			if i >= 2 {
				before = seedKey(fmt.Sprintf("hop %d", i-2))
			}
			return Link{To: to, Sig: signLink(t, before, sumOf(t, s), i, &to)}
		}, ErrSignature},
		{"signed by the key it goes to", func(t *testing.T, s *Sandbox, i int, _ ed25519.PrivateKey, to ExchangeKey) Link {
			return Link{To: to, Sig: signLink(t, seedKey(fmt.Sprintf("hop %d", i)), sumOf(t, s), i, &to)}
		}, ErrSignature},
		{"signed over another coin's checksum", func(t *testing.T, s *Sandbox, i int, prev ed25519.PrivateKey, to ExchangeKey) Link {
			return Link{To: to, Sig: signLink(t, prev, otherSum, i, &to)}
		}, ErrSignature},
		{"signed for the previous index", func(t *testing.T, s *Sandbox, i int, prev ed25519.PrivateKey, to ExchangeKey) Link {
			return Link{To: to, Sig: signLink(t, prev, sumOf(t, s), i-1, &to)}
		}, ErrSignature},
		{"exchange key swapped after signing", func(t *testing.T, s *Sandbox, i int, prev ed25519.PrivateKey, to ExchangeKey) Link {
			sig := signLink(t, prev, sumOf(t, s), i, &to)
			swapped, err := f.exchKey.Certify(seedKey("swapped").Public().(ed25519.PublicKey), to.Expires, nil)
			if err != nil {
				t.Fatal(err)
			}
			return Link{To: swapped, Sig: sig}
		}, ErrSignature},
		{"exchange key certified by a rogue key", func(t *testing.T, s *Sandbox, i int, prev ed25519.PrivateKey, to ExchangeKey) Link {
			pub, _ := to.PublicKey()
			forged, err := rogue.Certify(pub, to.Expires, nil)
			if err != nil {
				t.Fatal(err)
			}
			return Link{To: forged, Sig: signLink(t, prev, sumOf(t, s), i, &forged)}
		}, ErrSignature},
		{"exchange key of an unknown issuer", func(t *testing.T, s *Sandbox, i int, prev ed25519.PrivateKey, to ExchangeKey) Link {
			to.Issuer = "other-bank"
			return Link{To: to, Sig: signLink(t, prev, sumOf(t, s), i, &to)}
		}, ErrUnknownIssuer},
	}
	for _, hops := range []int{2, 3} {
		for forged := 1; forged < hops; forged++ {
			for _, tt := range tests {
				t.Run(fmt.Sprintf("%d hops, link %d, %s", hops, forged, tt.name), func(t *testing.T) {
					hs := honestHops(t, f, hops)
					s := &Sandbox{Coin: *f.coin}
					prev := f.holder
					for i, h := range hs {
						switch {
						case i < forged:
							if err := s.Transfer(prev, h.to); err != nil {
								t.Fatal(err)
							}
						case i == forged:
							s.Chain = append(s.Chain, tt.forge(t, s, i, prev, h.to))
						default: // Transfer would refuse to follow a swapped key
							s.Chain = append(s.Chain, Link{To: h.to, Sig: signLink(t, prev, sumOf(t, s), i, &h.to)})
						}
						prev = h.priv
					}
					checkRefused(t, f, s, hs[len(hs)-1].to, tt.want)
				})
			}
		}
	}
	t.Run("honest chains verify", func(t *testing.T) {
		for _, n := range []int{2, 3} {
			hs := honestHops(t, f, n)
			s := &Sandbox{Coin: *f.coin}
			prev := f.holder
			for _, h := range hs {
				if err := s.Transfer(prev, h.to); err != nil {
					t.Fatal(err)
				}
				prev = h.priv
			}
			own := func(k *ExchangeKey) bool { return k.Equal(&hs[n-1].to) }
			if err := f.v.VerifySandbox(s); err != nil {
				t.Fatalf("%d hops: VerifySandbox = %v", n, err)
			}
			if err := f.v.VerifyReceived([]Sandbox{*s}, own); err != nil {
				t.Fatalf("%d hops: VerifyReceived = %v", n, err)
			}
		}
	})
}

// checkRefused asserts that every verifier path refuses s with ErrChain
// and want. last is the certificate the payee would hold for the last
// link: its copy is trusted, as the wallet's payee trusts its own.
func checkRefused(t *testing.T, f *fixture, s *Sandbox, last ExchangeKey, want error) {
	t.Helper()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrChain) || !errors.Is(err, want) {
			t.Errorf("%s = %v; want %v and %v", what, err, ErrChain, want)
		}
	}
	check("VerifySandbox", f.v.VerifySandbox(s))
	check("VerifyReceived", f.v.VerifyReceived([]Sandbox{*s}, nil))
	own := func(k *ExchangeKey) bool { return k.Equal(&last) }
	check("VerifyReceived trusting the payee's own certificate", f.v.VerifyReceived([]Sandbox{*s}, own))

	// The payer's executor, with a purse that vouches for nothing, must
	// refuse the coin before it asks the payee for anything.
	peer := &fakePeer{keys: []ExchangeKey{f.exchange}, privs: []ed25519.PrivateKey{f.payee}}
	r := &Run{Verifier: f.v, Now: f.now, Peer: peer, Purse: &fakePurse{holder: seedKey("unused"), peer: peer}, Coins: []Sandbox{*s}}
	check("Execute", Execute(context.Background(), r))
	if len(peer.calls) != 0 {
		t.Errorf("Execute reached %v before refusing the coin", peer.calls)
	}
}
