package vault

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/otpcash/otpcash/otp"
)

// updateGoldenVault rewrites testdata/vault-v1 from the code of today. It
// was run once, by commit ebc9f3a, to keep a vault in the JSON record form
// (record form 1): never run it again after the record form changes, or
// the test of the upgrade loses its old vault.
var updateGoldenVault = flag.Bool("update-golden-vault", false, "rewrite testdata/vault-v1 (only before a record form change)")

const goldenVaultDir = "testdata/vault-v1"

// goldenVault is what testdata/vault-v1 holds, as the vault's API reads it.
type goldenVault struct {
	Coins     []goldenCoin
	Events    []Event
	Settings  map[string][]byte
	Exchange  int // exchange keys that can be offered
	Pending   []string
	Identity  []byte
	Reclaim   []string // tokens with a reclaim record
	SpentAcks map[string]otp.Ack
}

type goldenCoin struct {
	Token   string
	Value   int64
	State   State
	Peer    string
	Refusal *Refusal
	Updated time.Time
	// Sandbox is the coin as its checksum and signatures cover it: it
	// must come back byte for byte.
	Sandbox json.RawMessage
}

// readGolden reads v through the vault's API.
func readGolden(t *testing.T, v *Vault) goldenVault {
	t.Helper()
	ctx := context.Background()
	var g goldenVault
	coins, err := v.Coins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g.SpentAcks = map[string]otp.Ack{}
	for _, c := range coins {
		if err := newIssuer(t).ver.VerifySandbox(&c.Sandbox); err != nil {
			t.Fatalf("coin %.12s: %v", c.Sandbox.Coin.Data.Token, err)
		}
		sb, err := json.Marshal(c.Sandbox)
		if err != nil {
			t.Fatal(err)
		}
		g.Coins = append(g.Coins, goldenCoin{Token: c.Sandbox.Coin.Data.Token, Value: c.Sandbox.Coin.Data.Value,
			State: c.State, Peer: c.Peer, Refusal: c.Refusal, Updated: c.Updated, Sandbox: sb})
		if c.Ack != nil {
			g.SpentAcks[c.Sandbox.Coin.Data.Token] = *c.Ack
		}
	}
	slices.SortFunc(g.Coins, func(a, b goldenCoin) int {
		return cmp.Or(a.Updated.Compare(b.Updated), cmp.Compare(a.Token, b.Token))
	})
	if g.Events, err = v.Events(ctx); err != nil {
		t.Fatal(err)
	}
	g.Settings = map[string][]byte{}
	for _, name := range []string{"name", "bank"} {
		if g.Settings[name], err = v.Setting(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if g.Exchange, err = v.ExchangeKeyCount(ctx); err != nil {
		t.Fatal(err)
	}
	if g.Pending, err = v.PendingWithdrawals(ctx); err != nil {
		t.Fatal(err)
	}
	if _, g.Identity, err = v.Identity(ctx); err != nil {
		t.Fatal(err)
	}
	items, err := v.ReclaimItems(ctx, "acct", func(*otp.Coin) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		g.Reclaim = append(g.Reclaim, it.Sandbox.Coin.Data.Token)
	}
	return g
}

// TestWriteGoldenVault writes testdata/vault-v1 with -update-golden-vault:
// a small software vault with coins in each state (held, received,
// pending-out with a reclaim record, spent with its receipt, deposited,
// refused), exchange keys with and without a certificate, a pending
// withdrawal, history and settings, and want.json, what its API reads.
func TestWriteGoldenVault(t *testing.T) {
	if !*updateGoldenVault {
		t.Skip("run with -update-golden-vault")
	}
	ctx := context.Background()
	is := newIssuer(t)
	alice, dir := newVaultOn(t, "")
	bob, _ := newVaultOn(t, "")
	is.withdraw(t, alice, "w1", 1, 2, 5, 10, 20)
	byValue := map[int64]otp.Sandbox{}
	for _, sb := range held(t, alice) {
		byValue[sb.Coin.Data.Value] = sb
	}
	// spent, with bob's receipt
	is.pay(t, alice, bob, []otp.Sandbox{byValue[10]})
	// pending-out, with a reclaim record
	is.refill(t, bob, 1)
	keys, err := bob.OfferExchangeKeys(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Purse("bob").Seal(ctx, []otp.Sandbox{byValue[5]}, keys); err != nil {
		t.Fatal(err)
	}
	// received from bob, held with the receipt alice signed
	is.withdraw(t, bob, "b1", 50)
	is.pay(t, bob, alice, held(t, bob)[:1])
	// deposited and refused
	if err := alice.MarkDeposited(ctx, []string{byValue[1].Coin.Data.Token}); err != nil {
		t.Fatal(err)
	}
	two := byValue[2]
	refusal := Refusal{Token: two.Coin.Data.Token, Code: "double_deposit", Message: "deposited before", Key: two.Holder()}
	if err := alice.SettleDeposit(ctx, nil, []Refusal{refusal}, Event{Kind: "deposit", Amount: 1, Currency: "EUR", Detail: "1 refused"}); err != nil {
		t.Fatal(err)
	}
	// exchange keys: two certified (one was offered to nobody), one not
	is.refill(t, alice, 2)
	if _, err := alice.NewExchangeKeys(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// a withdrawal whose coins never came
	if _, err := alice.HolderKeys(ctx, "w2", 2); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 5, 9, 30, 0, 123456789, time.UTC)
	if err := alice.AddEvent(ctx, Event{Time: at, Kind: "payment", Amount: -10, Currency: "EUR", Peer: "bob", Detail: "coffee"}); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetSetting(ctx, "name", []byte("alice")); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetSetting(ctx, "bank", []byte("https://bank.example")); err != nil {
		t.Fatal(err)
	}
	want := readGolden(t, alice)
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, dbName+"-wal")); err == nil {
		t.Fatal("closed vault left its WAL")
	}
	if err := os.RemoveAll(goldenVaultDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(goldenVaultDir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(dir, dbName), filepath.Join(goldenVaultDir, dbName))
	b, err := json.MarshalIndent(want, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(goldenVaultDir, "want.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// openGoldenVault opens a copy of testdata/vault-v1, written by commit
// ebc9f3a in the JSON record form, and returns it with what it should read.
func openGoldenVault(t *testing.T) (*Vault, string, goldenVault) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "wallet")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(goldenVaultDir, dbName), filepath.Join(dir, dbName))
	b, err := os.ReadFile(filepath.Join(goldenVaultDir, "want.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want goldenVault
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	v, err := Open(context.Background(), dir, testPIN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v, dir, want
}

func checkGolden(t *testing.T, got, want goldenVault) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("vault reads\n%s\nwant\n%s", g, w)
	}
}

// TestGoldenVaultV1 opens the vault of testdata/vault-v1 and reads all of
// it as it was written.
func TestGoldenVaultV1(t *testing.T) {
	v, _, want := openGoldenVault(t)
	checkGolden(t, readGolden(t, v), want)
}
