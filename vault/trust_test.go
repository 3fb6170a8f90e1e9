package vault

import (
	"bytes"
	"context"
	"encoding/json"
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

// sameCoin and sameLinks must agree with the JSON comparison they stand
// for whenever they say they are sure.
func TestExtendsAgreesWithJSON(t *testing.T) {
	is := newIssuer(t)
	alice, _ := newVault(t)
	bob, _ := newVault(t)
	is.withdraw(t, alice, "w1", 10)
	is.refill(t, bob, 1)
	sealed := is.pay(t, alice, bob, held(t, alice))[0]
	variants := map[string]func(s *otp.Sandbox){
		"same":               func(s *otp.Sandbox) {},
		"token":              func(s *otp.Sandbox) { s.Coin.Data.Token += "x" },
		"value":              func(s *otp.Sandbox) { s.Coin.Data.Value++ },
		"signature":          func(s *otp.Sandbox) { s.Coin.Signature.Value += "x" },
		"checksum":           func(s *otp.Sandbox) { s.Coin.Checksum += "x" },
		"null conditions":    func(s *otp.Sandbox) { s.Coin.Data.Conditions = nil },
		"empty conditions":   func(s *otp.Sandbox) { s.Coin.Data.Conditions = []string{} },
		"a condition":        func(s *otp.Sandbox) { s.Coin.Data.Conditions = []string{"true"} },
		"step":               func(s *otp.Sandbox) { s.Coin.CallMethod[0].Method += "x" },
		"step args":          func(s *otp.Sandbox) { s.Coin.CallMethod[0].Args = map[string]any{"a": 1.0} },
		"expiry instant":     func(s *otp.Sandbox) { s.Coin.Data.Expires = s.Coin.Data.Expires.Add(time.Nanosecond) },
		"expiry location":    func(s *otp.Sandbox) { s.Coin.Data.Expires = s.Coin.Data.Expires.In(time.FixedZone("X", 3600)) },
		"expiry same offset": func(s *otp.Sandbox) { s.Coin.Data.Expires = s.Coin.Data.Expires.In(time.FixedZone("", 0)) },
		"link sig":           func(s *otp.Sandbox) { s.Chain[0].Sig += "x" },
		"link attrs":         func(s *otp.Sandbox) { s.Chain[0].To.Attrs = map[string]string{"a": "b"} },
		"link empty attrs":   func(s *otp.Sandbox) { s.Chain[0].To.Attrs = map[string]string{} },
		"link cert":          func(s *otp.Sandbox) { s.Chain[0].To.Sig += "x" },
		"link key":           func(s *otp.Sandbox) { s.Chain[0].To.Pub += "x" },
		"link expiry zone":   func(s *otp.Sandbox) { s.Chain[0].To.Expires = s.Chain[0].To.Expires.In(time.FixedZone("", 0)) },
	}
	for name, mutate := range variants {
		t.Run(name, func(t *testing.T) {
			b := clone(t, sealed)
			mutate(&b)
			a, err := json.Marshal(sealed)
			if err != nil {
				t.Fatal(err)
			}
			bj, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			want := bytes.Equal(a, bj)
			got, err := extends(&sealed, &b)
			if err != nil || got != want {
				t.Fatalf("extends = %v, %v; JSON says %v", got, err, want)
			}
			if c, sure := sameCoin(&sealed.Coin, &b.Coin); sure {
				l, lsure := sameLinks(sealed.Chain, b.Chain)
				if c && lsure && l != want {
					t.Fatalf("sameCoin/sameLinks sure and wrong: %v %v, JSON says %v", c, l, want)
				}
				if !c && want {
					t.Fatalf("sameCoin sure the coins differ; JSON says equal")
				}
			}
		})
	}
}

func clone(t *testing.T, s otp.Sandbox) otp.Sandbox {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out otp.Sandbox
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
