package bank

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/otp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixture is a deterministic world for the golden vectors: fixed keys,
// times and serial, so every signature is reproducible (Ed25519 signing is
// deterministic).
type fixture struct {
	cat      *otp.Catalogue
	coin     otp.Coin
	exchange otp.ExchangeKey
	sandbox  otp.Sandbox // the coin, paid once
	second   otp.Sandbox // the coin, paid again by the same holder
	proof    string      // the payee's deposit proof for account "acct-1"
	holder   ed25519.PublicKey
}

func seedKey(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	day := 24 * time.Hour
	signer := func(seed byte, k otp.IssuerKey) *otp.Signer {
		priv := seedKey(seed)
		k.Alg, k.Public = otp.AlgEd25519, otp.EncodeKey(priv.Public().(ed25519.PublicKey))
		s, err := otp.NewSigner("otpcash-bank", k, priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	coinKey := signer(1, otp.IssuerKey{KeyID: "coin-1", Use: otp.UseCoin, Value: 100, Currency: "EUR",
		NotBefore: t0, Expires: t0.Add(365 * day), DepositUntil: t0.Add(820 * day)})
	exKey := signer(2, otp.IssuerKey{KeyID: "exchange-1", Use: otp.UseExchange,
		NotBefore: t0, Expires: t0.Add(365 * day), DepositUntil: t0.Add(455 * day)})
	cat := &otp.Catalogue{Issuer: "otpcash-bank", Issued: t0, Keys: []otp.IssuerKey{coinKey.Key, exKey.Key}}
	if err := cat.Sign(seedKey(9)); err != nil {
		t.Fatal(err)
	}
	holder, payee := seedKey(3), seedKey(4)
	var serial otp.Serial
	for i := range serial {
		serial[i] = byte(i)
	}
	f := fixture{cat: cat, holder: holder.Public().(ed25519.PublicKey)}
	coin, err := coinKey.Issue(serial, f.holder, t0.Add(365*day), otp.GeneralProgram())
	if err != nil {
		t.Fatal(err)
	}
	f.coin = *coin
	if f.exchange, err = exKey.Certify(payee.Public().(ed25519.PublicKey), t0.Add(90*day), nil); err != nil {
		t.Fatal(err)
	}
	f.sandbox = otp.Sandbox{Coin: f.coin, Chain: []otp.Link{}}
	if err := f.sandbox.Transfer(holder, f.exchange); err != nil {
		t.Fatal(err)
	}
	if f.proof, err = f.sandbox.DepositProof(payee, "acct-1"); err != nil {
		t.Fatal(err)
	}
	other, err := exKey.Certify(seedKey(5).Public().(ed25519.PublicKey), t0.Add(90*day), nil)
	if err != nil {
		t.Fatal(err)
	}
	f.second = otp.Sandbox{Coin: f.coin, Chain: []otp.Link{}}
	if err := f.second.Transfer(holder, other); err != nil {
		t.Fatal(err)
	}
	return f
}

// goldenBodies are the API's request and response bodies, by file name.
func goldenBodies(t testing.TB) map[string]any {
	f := newFixture(t)
	t0 := f.cat.Issued
	holder := otp.EncodeKey(f.holder)
	return map[string]any{
		"catalogue.json":               f.cat,
		"create_account_response.json": api.CreateAccountResponse{ID: "acct-1", Token: "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		"credit_request.json":          api.CreditRequest{Amount: 1050},
		"credit_response.json":         api.CreditResponse{Balance: 1050},
		"account_response.json":        api.Account{ID: "acct-1", Currency: "EUR", Balance: 950},
		"history_response.json": api.History{Entries: []api.Entry{
			{Time: t0.Add(time.Hour), Kind: api.KindDeposit, Amount: 100, Reference: "dep-AAECAwQFBgcICQoL"},
			{Time: t0.Add(time.Minute), Kind: api.KindWithdraw, Amount: -100, Reference: "w-1"},
			{Time: t0, Kind: api.KindCredit, Amount: 1050, Reference: "admin credit"},
		}},
		"withdraw_request.json":  api.WithdrawRequest{ID: "w-1", Account: "acct-1", KeyID: "coin-AAECAwQFBgcICQoL", Blinded: []string{blindBytes(1)}},
		"withdraw_response.json": api.WithdrawResponse{BlindSignatures: []string{blindBytes(2)}},
		"redenomination_request.json": api.RedenominationRequest{ID: "x-1", Account: "acct-1", Coins: []api.DepositCoin{{Sandbox: f.sandbox, Proof: f.proof}},
			Withdraw: []api.WithdrawBatch{{KeyID: "coin-AAECAwQFBgcICQoL", Blinded: []string{blindBytes(1)}}}},
		"redenomination_response.json": api.RedenominationResponse{BlindSignatures: [][]string{{blindBytes(2)}}},
		"reclaim_request.json": api.ReclaimRequest{Account: "acct-1", Coins: []api.ReclaimCoin{{Sandbox: f.sandbox,
			Authorization: f.proof, Key: f.exchange.Pub, Proof: f.proof}}},
		"exchange_keys_request.json":        api.ExchangeKeysRequest{Pubs: []string{f.exchange.Pub}, Account: "acct-1"},
		"exchange_keys_response.json":       api.ExchangeKeysResponse{Keys: []otp.ExchangeKey{f.exchange}},
		"blind_exchange_keys_request.json":  api.ExchangeKeysRequest{KeyID: "exchange-AAECAwQFBgcICQoL", Blinded: []string{blindBytes(3)}},
		"blind_exchange_keys_response.json": api.ExchangeKeysResponse{BlindSignatures: []string{blindBytes(4)}},
		"deposit_request.json":              api.DepositRequest{Account: "acct-1", Coins: []api.DepositCoin{{Sandbox: f.sandbox, Proof: f.proof}}},
		"deposit_response.json": api.DepositResponse{Balance: 100, Results: []api.DepositResult{
			{Token: f.coin.Data.Token, Status: api.StatusCredited},
			{Token: f.coin.Data.Token, Status: api.StatusAlreadyCredited},
			{Token: f.coin.Data.Token, Status: api.StatusRefused, Code: api.CodeDoubleDeposit,
				Message:  "coin already deposited with another chain or to another account; key " + holder + " signed for it twice, as holder 0",
				Conflict: &api.ConflictKey{Key: holder, Index: 0}},
		}},
		"conflicts_response.json": api.Conflicts{Conflicts: []api.Conflict{{
			Token: f.coin.Data.Token, Key: holder, Index: 0, FirstAccount: "acct-1", SecondAccount: "acct-2",
			Detected: t0.Add(2 * time.Hour), First: f.sandbox, Second: f.second,
		}}},
		"error_response.json": api.Errorf(http.StatusPaymentRequired, api.CodeInsufficientFunds,
			"3 coins cost 3.00 EUR, more than the account's balance"),
		"health_response.json": api.Health{Status: "ok"},
	}
}

// blindBytes is a fixed stand-in for a blinded message or blind signature.
func blindBytes(seed byte) string {
	b := make([]byte, otp.BlindMessageSize)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return otp.EncodeBlinded(b)
}

// TestGolden pins the wire format: each body encodes to its file in
// testdata/, and each file decodes strictly back to the same body. Run
// with -update after an intended change.

func TestGolden(t *testing.T) {
	for name, v := range goldenBodies(t) {
		t.Run(name, func(t *testing.T) {
			want, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, '\n')
			path := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s differs from the encoding of its body (run go test -update if intended):\n%s", path, want)
			}
			typ := reflect.TypeOf(v)
			if typ.Kind() == reflect.Pointer {
				typ = typ.Elem()
			}
			back := reflect.New(typ)
			if err := decode(bytes.NewReader(got), back.Interface()); err != nil {
				t.Fatalf("strict decode: %v", err)
			}
			again, err := json.MarshalIndent(back.Interface(), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(append(again, '\n'), got) {
				t.Fatalf("%s does not survive a decode and encode", path)
			}
		})
	}
}

// TestGoldenRequestsParse checks that the golden requests pass the
// server's decoders, and the golden deposit the coin checks.
func TestGoldenRequestsParse(t *testing.T) {
	open := func(name string) *os.File {
		f, err := os.Open(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	if _, _, err := parseWithdrawRequest(open("withdraw_request.json"), 10); err != nil {
		t.Error(err)
	}
	if _, _, _, err := parseExchangeKeysRequest(open("exchange_keys_request.json"), 10); err != nil {
		t.Error(err)
	}
	if _, err := parseCreditRequest(open("credit_request.json")); err != nil {
		t.Error(err)
	}
	req, err := parseDepositRequest(open("deposit_request.json"), 10)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	checked := make([]checkedCoin, len(req.Coins))
	checkChunk(otp.NewVerifier(f.cat), req.Coins, checked, req.Account, f.cat.Issued)
	if c := checked[0]; c.result.Status != "" {
		t.Fatalf("golden deposit refused: %+v", c.result)
	}
}
