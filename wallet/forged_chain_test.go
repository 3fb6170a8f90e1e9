package wallet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/p2p"
)

// flipB64 changes one bit of a base64url string.
func flipB64(s string) string {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	b[len(b)/2] ^= 1
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestReceiveForgedLaterLink delivers to a payee, as a payer's session
// would (payee.Receive: verify, then store in the vault), 2- and 3-hop
// coins whose last link goes to one of the keys the payee offered and
// one earlier link after the first is forged. Each is refused as an
// invalid chain naming the link, and the payee's vault is unchanged. The
// honest chains built the same way are stored.
func TestReceiveForgedLaterLink(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	alice, bob := b.newHolder(t, 4000), b.newHolder(t, 0)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 4000); err != nil {
		t.Fatal(err)
	}
	certify := func(t *testing.T) (otp.ExchangeKey, ed25519.PrivateKey) {
		t.Helper()
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := alice.w.bank.CertifyExchangeKeys(ctx, alice.w.cat(), []ed25519.PublicKey{pub})
		if err != nil {
			t.Fatal(err)
		}
		return keys[0], priv
	}
	// twins seals two of Alice's coins to one key, moves both along the
	// same further hops, the last to the payee's offered key, and returns
	// them with keys[j], the private key that signed link j (j >= 1).
	twins := func(t *testing.T, h *payee, hops int) ([2]otp.Sandbox, []ed25519.PrivateKey) {
		t.Helper()
		held, err := alice.w.v.Payable(ctx, "EUR", otp.GeneralProgramName)
		if err != nil || len(held) < 2 {
			t.Fatalf("alice holds %d coins, %v", len(held), err)
		}
		first, priv := certify(t)
		sealed, err := alice.w.v.Purse("carol").Seal(ctx, held[:2], []otp.ExchangeKey{first, first})
		if err != nil {
			t.Fatal(err)
		}
		keys := []ed25519.PrivateKey{nil, priv}
		for j := 1; j < hops; j++ {
			var to otp.ExchangeKey
			if j == hops-1 {
				offered, err := h.ExchangeKeys(ctx, 1)
				if err != nil {
					t.Fatal(err)
				}
				to = offered[0]
			} else {
				to, priv = certify(t)
				keys = append(keys, priv)
			}
			for i := range sealed {
				if err := sealed[i].Transfer(keys[j], to); err != nil {
					t.Fatal(err)
				}
			}
		}
		return [2]otp.Sandbox{sealed[0], sealed[1]}, keys
	}
	tests := []struct {
		name  string
		forge func(t *testing.T, coin, twin *otp.Sandbox, i int, keys []ed25519.PrivateKey)
	}{
		{"signature flipped", func(t *testing.T, coin, _ *otp.Sandbox, i int, _ []ed25519.PrivateKey) {
			coin.Chain[i].Sig = flipB64(coin.Chain[i].Sig)
		}},
		{"exchange key not certified by the bank, signed over by the previous holder", func(t *testing.T, coin, _ *otp.Sandbox, i int, keys []ed25519.PrivateKey) {
			to := coin.Chain[i].To
			to.Sig = flipB64(to.Sig)
			cp := otp.Sandbox{Coin: coin.Coin, Chain: slices.Clone(coin.Chain[:i])}
			if err := cp.Transfer(keys[i], to); err != nil {
				t.Fatal(err)
			}
			coin.Chain[i] = cp.Chain[i]
		}},
		{"signed by another key than the previous holder", func(t *testing.T, coin, _ *otp.Sandbox, i int, _ []ed25519.PrivateKey) {
			// A stranger's certified key takes the previous holder's place
			// in a copy of the chain, and signs link i there.
			stranger, priv := certify(t)
			cp := otp.Sandbox{Coin: coin.Coin, Chain: slices.Clone(coin.Chain[:i])}
			cp.Chain[i-1].To = stranger
			if err := cp.Transfer(priv, coin.Chain[i].To); err != nil {
				t.Fatal(err)
			}
			coin.Chain[i].Sig = cp.Chain[i].Sig
		}},
		{"the link of another coin, by the same key (checksum binding)", func(t *testing.T, coin, twin *otp.Sandbox, i int, _ []ed25519.PrivateKey) {
			coin.Chain[i].Sig = twin.Chain[i].Sig
		}},
	}
	for _, hops := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d hops honest", hops), func(t *testing.T) {
			h := &payee{w: bob.w, p: Payment{Peer: "carol"}, offer: p2p.Offer{Amount: 100, Currency: "EUR", Program: "general"}}
			coins, _ := twins(t, h, hops)
			before := stateOf(t, bob)
			if _, _, err := h.Receive(ctx, coins[:1]); err != nil {
				t.Fatalf("honest %d-hop coin: %v", hops, err)
			}
			if after := stateOf(t, bob); after.Balance.Coins != before.Balance.Coins+1 || after.Keys != before.Keys-1 {
				t.Fatalf("honest coin not stored: %+v, then %+v", before, after)
			}
		})
		for i := 1; i < hops; i++ {
			for _, tt := range tests {
				t.Run(fmt.Sprintf("%d hops, link %d, %s", hops, i, tt.name), func(t *testing.T) {
					h := &payee{w: bob.w, p: Payment{Peer: "carol"}, offer: p2p.Offer{Amount: 100, Currency: "EUR", Program: "general"}}
					coins, keys := twins(t, h, hops)
					coin := coins[0]
					coin.Chain = slices.Clone(coin.Chain)
					tt.forge(t, &coin, &coins[1], i, keys)
					before := stateOf(t, bob)
					_, _, err := h.Receive(ctx, []otp.Sandbox{coin})
					if link := fmt.Sprintf("link %d:", i); !errors.Is(err, otp.ErrChain) || !strings.Contains(err.Error(), link) {
						t.Errorf("Receive = %v; want %v naming %q", err, otp.ErrChain, link)
					}
					if after := stateOf(t, bob); !reflect.DeepEqual(before, after) {
						t.Errorf("payee changed:\nbefore %+v\nafter  %+v", before, after)
					}
				})
			}
		}
	}
}
