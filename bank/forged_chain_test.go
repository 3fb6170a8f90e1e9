package bank_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/internal/banktest"
	"github.com/otpcash/otpcash/otp"
)

// twinChains withdraws two coins and moves both along the same hops:
// at each hop both go to one freshly certified exchange key, so from the
// second link on, both links of a hop are signed by the same key, each
// over its own coin. It returns the two coins as the last key holds them,
// and the private keys of the first's holders: keys[j] signed link j.
func twinChains(t *testing.T, e *banktest.Env, account, token string, hops int) ([2]banktest.Held, []ed25519.PrivateKey) {
	t.Helper()
	held := e.Withdraw(t, account, token, 2)
	keys := []ed25519.PrivateKey{held[0].Key}
	for range hops {
		pub, priv := banktest.NewKey(t)
		xk, err := e.Client.CertifyExchangeKeys(context.Background(), e.Bank.Catalogue(), []ed25519.PublicKey{pub})
		if err != nil {
			t.Fatal(err)
		}
		for i := range held {
			sb := held[i].Sandbox
			sb.Chain = slices.Clone(sb.Chain)
			if err := sb.Transfer(held[i].Key, xk[0]); err != nil {
				t.Fatal(err)
			}
			held[i] = banktest.Held{Sandbox: sb, Key: priv}
		}
		keys = append(keys, priv)
	}
	return [2]banktest.Held{held[0], held[1]}, keys
}

// flipB64 changes one bit of a base64url string.
func flipB64(s string) string {
	b64 := base64.RawURLEncoding
	b, err := b64.DecodeString(s)
	if err != nil {
		panic(err)
	}
	b[len(b)/2] ^= 1
	return b64.EncodeToString(b)
}

// TestDepositForgedLaterLink deposits 2- and 3-hop coins with one link
// after the first forged: each is refused as an invalid chain naming the
// link, and nothing changes. The honest chains built the same way are
// credited.
func TestDepositForgedLaterLink(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	ctx := context.Background()
	payer, payerToken := e.Account(t, 100_000)
	payee, payeeToken := e.Account(t, 0)
	tests := []struct {
		name  string
		forge func(t *testing.T, coin, twin *otp.Sandbox, i int, keys []ed25519.PrivateKey)
		msg   string
	}{
		{"signature flipped", func(t *testing.T, coin, _ *otp.Sandbox, i int, _ []ed25519.PrivateKey) {
			coin.Chain[i].Sig = flipB64(coin.Chain[i].Sig)
		}, "not signed by the previous holder"},
		{"exchange key not certified by the bank, signed over by the previous holder", func(t *testing.T, coin, _ *otp.Sandbox, i int, keys []ed25519.PrivateKey) {
			to := coin.Chain[i].To
			to.Sig = flipB64(to.Sig)
			cp := otp.Sandbox{Coin: coin.Coin, Chain: slices.Clone(coin.Chain[:i])}
			if err := cp.Transfer(keys[i], to); err != nil {
				t.Fatal(err)
			}
			coin.Chain[i] = cp.Chain[i]
		}, "invalid signature"},
		{"signed by another key than the previous holder", func(t *testing.T, coin, _ *otp.Sandbox, i int, _ []ed25519.PrivateKey) {
			coin.Chain[i].Sig = signedByStranger(t, e, coin, i)
		}, "not signed by the previous holder"},
		{"the link of another coin, by the same key (checksum binding)", func(t *testing.T, coin, twin *otp.Sandbox, i int, _ []ed25519.PrivateKey) {
			coin.Chain[i].Sig = twin.Chain[i].Sig
		}, "not signed by the previous holder"},
	}
	for _, hops := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d hops honest", hops), func(t *testing.T) {
			twins, _ := twinChains(t, e, payer, payerToken, hops)
			resp, err := e.Client.Deposit(ctx, payeeToken, banktest.DepositRequest(t, payee, twins[:]))
			if err != nil || resp.Results[0].Status != api.StatusCredited || resp.Results[1].Status != api.StatusCredited {
				t.Fatalf("honest %d-hop coins: %+v, %v", hops, resp, err)
			}
		})
		for i := 1; i < hops; i++ {
			for _, tt := range tests {
				t.Run(fmt.Sprintf("%d hops, link %d, %s", hops, i, tt.name), func(t *testing.T) {
					twins, keys := twinChains(t, e, payer, payerToken, hops)
					req := banktest.DepositRequest(t, payee, twins[:1])
					coin := &req.Coins[0].Sandbox
					coin.Chain = slices.Clone(coin.Chain)
					tt.forge(t, coin, &twins[1].Sandbox, i, keys)
					before := state(t, e)
					resp, err := e.Client.Deposit(ctx, payeeToken, req)
					if err != nil {
						t.Fatal(err)
					}
					r := resp.Results[0]
					link := fmt.Sprintf("link %d:", i)
					if r.Status != api.StatusRefused || r.Code != api.CodeInvalidChain || !strings.Contains(r.Message, link) || !strings.Contains(r.Message, tt.msg) {
						t.Fatalf("result %+v; want refused %s naming %q and %q", r, api.CodeInvalidChain, link, tt.msg)
					}
					sameState(t, before, state(t, e))
				})
			}
		}
	}
}

// signedByStranger returns a signature over link i of coin exactly as its
// previous holder would sign it (same checksum, index and exchange key),
// made by another key: a stranger's certified exchange key takes the
// previous holder's place in a copy of the chain, and signs link i there.
func signedByStranger(t *testing.T, e *banktest.Env, coin *otp.Sandbox, i int) string {
	t.Helper()
	pub, priv := banktest.NewKey(t)
	keys, err := e.Client.CertifyExchangeKeys(context.Background(), e.Bank.Catalogue(), []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	cp := otp.Sandbox{Coin: coin.Coin, Chain: slices.Clone(coin.Chain[:i])}
	cp.Chain[i-1].To = keys[0]
	if err := cp.Transfer(priv, coin.Chain[i].To); err != nil {
		t.Fatal(err)
	}
	return cp.Chain[i].Sig
}
