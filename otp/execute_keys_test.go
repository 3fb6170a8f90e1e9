package otp

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
)

// sealCounter is a fakePurse that counts its Seal calls.
type sealCounter struct {
	fakePurse
	seals int
}

func (p *sealCounter) Seal(ctx context.Context, coins []Sandbox, to []ExchangeKey) ([]Sandbox, error) {
	p.seals++
	return p.fakePurse.Seal(ctx, coins, to)
}

// TestExecuteRefusesBadExchangeKey plays a payee that hands the payer an
// exchange key the bank did not certify, or no longer vouches for: the
// executor must refuse it in setupConnection, before anything is sealed
// to it. (The p2p tamper test catches this too, over a real session; this
// is the executor's own, fast check.)
func TestExecuteRefusesBadExchangeKey(t *testing.T) {
	f := newFixture(t)
	pub := f.payee.Public().(ed25519.PublicKey)
	rogue := signerFor("test-bank", f.exchKey.Key, seedKey("rogue"))
	rogue.Key.KeyID = f.exchKey.Key.KeyID
	tests := []struct {
		name string
		key  func(t *testing.T) ExchangeKey
		want error
	}{
		{"forged by a rogue key", func(t *testing.T) ExchangeKey {
			k, err := rogue.Certify(pub, f.exchange.Expires, nil)
			if err != nil {
				t.Fatal(err)
			}
			return k
		}, ErrSignature},
		{"unsigned", func(*testing.T) ExchangeKey { k := f.exchange; k.Sig = ""; return k }, ErrSignature},
		{"attributes changed after certification", func(*testing.T) ExchangeKey {
			k := f.exchange
			k.Attrs = map[string]string{"category": "jeweller"}
			return k
		}, ErrSignature},
		{"another public key under the certificate", func(*testing.T) ExchangeKey {
			k := f.exchange
			k.Pub = EncodeKey(seedKey("thief").Public().(ed25519.PublicKey))
			return k
		}, ErrSignature},
		{"expired", func(t *testing.T) ExchangeKey {
			k, err := f.exchKey.Certify(pub, f.now.Add(-1), nil)
			if err != nil {
				t.Fatal(err)
			}
			return k
		}, ErrExpired},
		{"of an unknown issuer", func(*testing.T) ExchangeKey { k := f.exchange; k.Issuer = "other-bank"; return k }, ErrUnknownIssuer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer := &fakePeer{keys: []ExchangeKey{tt.key(t)}, privs: []ed25519.PrivateKey{f.payee}}
			purse := &sealCounter{fakePurse: fakePurse{holder: f.holder, peer: peer}}
			r := &Run{Verifier: f.v, Now: f.now, Peer: peer, Purse: purse, Coins: []Sandbox{{Coin: *f.coin}}}
			err := Execute(context.Background(), r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Execute = %v; want %v", err, tt.want)
			}
			if purse.seals != 0 || r.Sealed != nil || len(peer.calls) != 1 || peer.calls[0] != StepSetupConnection {
				t.Fatalf("after the refusal: %d Seal calls, %d coins sealed, side effects %v; want only %s",
					purse.seals, len(r.Sealed), peer.calls, StepSetupConnection)
			}
		})
	}
}
