package vault

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpcash/otpcash/otp"
)

func TestCreateOpen(t *testing.T) {
	ctx := context.Background()
	v, dir := newVault(t)
	priv, pub, err := v.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(priv) != 32 || len(pub) != 32 {
		t.Fatalf("identity key sizes %d, %d", len(priv), len(pub))
	}
	if err := v.SetSetting(ctx, "bank", []byte("https://bank.example")); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, dir, testPIN, cheap); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Setting(ctx, "bank"); !errors.Is(err, errClosed) {
		t.Fatalf("Setting after Close: %v", err)
	}

	_, err = Open(ctx, dir, []byte("wrong"))
	if !errors.Is(err, ErrWrongPIN) || !strings.Contains(err.Error(), "wrong PIN") {
		t.Fatalf("Open with a wrong PIN: %v", err)
	}
	if _, err := Open(ctx, filepath.Join(dir, "nothing"), testPIN); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open of an empty place: %v, want ErrNotFound", err)
	}

	v, err = Open(ctx, dir, testPIN)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	priv2, pub2, err := v.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(priv, priv2) || !bytes.Equal(pub, pub2) {
		t.Fatal("identity changed across Open")
	}
	got, err := v.Setting(ctx, "bank")
	if err != nil || string(got) != "https://bank.example" {
		t.Fatalf("Setting = %q, %v", got, err)
	}
	if _, err := v.Setting(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing setting: %v, want ErrNotFound", err)
	}
}

func TestPermissions(t *testing.T) {
	v, dir := newVault(t)
	newIssuer(t).withdraw(t, v, "w", 100)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, e.Name())
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
	if !slices.Contains(names, dbName+"-wal") {
		t.Errorf("files %v: no write-ahead log", names)
	}
}

// Every connection runs with the settings durability and deletion rely on.
func TestPragmas(t *testing.T) {
	v, _ := newVault(t)
	for _, tt := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"secure_delete", "1"},
		{"busy_timeout", "10000"},
	} {
		var got string
		if err := v.db.QueryRow("PRAGMA " + tt.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %s, want %s", tt.pragma, got, tt.want)
		}
	}
}

// A crash during Create, before the vault's keys were committed, leaves
// the schema and no vault: Open says there is none, and Create can be run
// again.
func TestInterruptedCreate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, dbName)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := openDB(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(schema); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(ctx, dir, testPIN); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open of an empty database: %v, want ErrNotFound", err)
	}
	v, err := Create(ctx, dir, testPIN, cheap)
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    *Options
		want    argon2Params
		wantErr bool
	}{
		{"nil", nil, argon2Params{3, 64 << 10, 2}, false},
		{"zero", &Options{}, argon2Params{3, 64 << 10, 2}, false},
		{"partial", &Options{Time: 1}, argon2Params{1, 64 << 10, 2}, false},
		{"cheap", cheap, argon2Params{1, 64, 1}, false},
		{"too little memory", &Options{MemoryKiB: 8, Threads: 4}, argon2Params{}, true},
		{"too much memory", &Options{MemoryKiB: maxMemoryKiB + 1}, argon2Params{}, true},
		{"too slow", &Options{Time: maxTime + 1}, argon2Params{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opts.params()
			if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
				t.Fatalf("params() = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestPayment(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	alice, _ := newVault(t)
	bob, _ := newVault(t)
	is.withdraw(t, alice, "w1", 100, 50, 20)

	coins, err := alice.Select(ctx, 70, "EUR")
	if err != nil {
		t.Fatal(err)
	}
	if len(coins) != 2 || coins[0].Coin.Data.Value != 50 || coins[1].Coin.Data.Value != 20 {
		t.Fatalf("Select(70) picked %d coins", len(coins))
	}
	sealed := is.pay(t, alice, bob, coins)
	for _, sb := range sealed {
		if err := is.ver.VerifySandbox(&sb); err != nil {
			t.Fatal(err)
		}
		assertKeyDestroyed(t, alice, sb.HolderAt(0))
	}

	got, err := alice.Coins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	count := map[State]int{}
	for _, c := range got {
		count[c.State]++
		if c.State == Spent {
			if c.Ack == nil || c.Peer != "payee" {
				t.Errorf("spent coin without its receipt: %+v", c)
			} else if err := c.Sandbox.VerifyAck(*c.Ack); err != nil {
				t.Error(err)
			}
		}
	}
	if count[Held] != 1 || count[Spent] != 2 || len(got) != 3 {
		t.Fatalf("alice's coins by state: %v", count)
	}
	if p, err := alice.PendingOut(ctx, ""); err != nil || len(p) != 0 {
		t.Fatalf("PendingOut = %d, %v", len(p), err)
	}

	// The payee holds them and can deposit them.
	items, err := bob.DepositItems(ctx, "acct-bob")
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 {
		t.Fatalf("%d deposit items, want 2", len(items))
	}
	var tokens []string
	for _, it := range items {
		if err := it.Sandbox.VerifyDepositProof(it.Proof, "acct-bob"); err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, it.Sandbox.Coin.Data.Token)
	}
	if err := bob.MarkDeposited(ctx, tokens); err != nil {
		t.Fatal(err)
	}
	if err := bob.MarkDeposited(ctx, tokens); err != nil {
		t.Fatalf("marking deposited twice: %v", err)
	}
	for _, it := range items {
		assertKeyDestroyed(t, bob, it.Sandbox.Holder())
	}
	if items, err := bob.DepositItems(ctx, "acct-bob"); err != nil || len(items) != 0 {
		t.Fatalf("deposit items after deposit: %d, %v", len(items), err)
	}
	for tok, s := range states(t, bob) {
		if !slices.Equal(s, []State{Deposited}) {
			t.Errorf("bob's coin %.12s: %v", tok, s)
		}
	}
}

// TestExecute runs the otp executor with a vault as its purse, and the
// payee's vault behind its peer, checking everything the executor checks.
func TestExecute(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	alice, _ := newVault(t)
	bob, _ := newVault(t)
	is.withdraw(t, alice, "w1", 10, 10, 5)
	is.refill(t, bob, 3)
	coins, err := alice.Select(ctx, 25, "EUR")
	if err != nil {
		t.Fatal(err)
	}
	run := &otp.Run{Verifier: is.ver, Now: time.Now(), Peer: vaultPeer{bob, is.ver}, Purse: alice.Purse("bob"), Coins: coins}
	if err := otp.Execute(ctx, run); err != nil {
		t.Fatal(err)
	}
	if len(held(t, alice)) != 0 || len(held(t, bob)) != 3 {
		t.Fatalf("after the payment alice holds %d, bob %d coins", len(held(t, alice)), len(held(t, bob)))
	}
	if n, err := bob.ExchangeKeyCount(ctx); err != nil || n != 0 {
		t.Fatalf("bob has %d exchange keys left, %v", n, err)
	}
}

// vaultPeer is a payee reached without a network.
type vaultPeer struct {
	v   *Vault
	ver *otp.Verifier
}

func (p vaultPeer) ExchangeKeys(ctx context.Context, n int) ([]otp.ExchangeKey, error) {
	return p.v.OfferExchangeKeys(ctx, n)
}

func (p vaultPeer) Send(ctx context.Context, sealed []otp.Sandbox) ([]otp.Ack, error) {
	for i := range sealed {
		if err := p.ver.VerifySandbox(&sealed[i]); err != nil {
			return nil, err
		}
	}
	acks, _, err := p.v.Receive(ctx, "alice", sealed)
	return acks, err
}

// A coin paid away and paid back is held again, and the receipt of the
// first payment is kept.
func TestCoinComesBack(t *testing.T) {
	is := newIssuer(t)
	alice, _ := newVault(t)
	bob, _ := newVault(t)
	coin := is.withdraw(t, alice, "w", 100)[0]
	token := coin.Data.Token

	is.pay(t, alice, bob, held(t, alice))
	is.pay(t, bob, alice, held(t, bob))
	if got := states(t, alice)[token]; !slices.Equal(got, []State{Spent, Held}) {
		t.Fatalf("alice's holdings of the coin: %v", got)
	}
	is.pay(t, alice, bob, held(t, alice))
	if got := states(t, bob)[token]; !slices.Equal(got, []State{Spent, Held}) {
		t.Fatalf("bob's holdings of the coin: %v", got)
	}
	last := held(t, bob)[0]
	if last.Hops() != 3 {
		t.Fatalf("coin made %d hops, want 3", last.Hops())
	}
	if err := is.ver.VerifySandbox(&last); err != nil {
		t.Fatal(err)
	}
}

// rewriteValue rewrites v's record of the coin sb, in its state, with
// another value, as only a tampering hand would: for a test of what is
// remembered of records.
func rewriteValue(t *testing.T, v *Vault, sb otp.Sandbox, value int64) {
	t.Helper()
	err := v.update(context.Background(), func(tx *tx) error {
		tok := sb.Coin.Data.Token
		id := tx.holdingID(tok, sb.Hops())
		var h holding
		state, err := tx.get(kindCoin, id, &h)
		if err != nil {
			return err
		}
		h.Sandbox.Coin.Data.Value = value
		return tx.put(kindCoin, id, state, tx.serialRef(tok), &h)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// latestAll finds each coin's latest holding among all of them, for every
// time the batch names it, and none for a coin never held.
func TestLatestAll(t *testing.T) {
	is := newIssuer(t)
	alice, _ := newVault(t)
	bob, _ := newVault(t)
	tok := is.withdraw(t, alice, "w", 100)[0].Data.Token
	is.pay(t, alice, bob, held(t, alice))
	is.pay(t, bob, alice, held(t, bob))
	err := alice.view(context.Background(), func(tx *tx) error {
		rows, err := tx.latestAll([]string{tok, "never-held", tok})
		if err != nil {
			return err
		}
		for _, i := range []int{0, 2} {
			if State(rows[i].state) != Held || rows[i].val.Hop != 2 || rows[i].val.Sandbox.Coin.Data.Token != tok {
				t.Errorf("coin %d: %s at hop %d, want held at hop 2", i, rows[i].state, rows[i].val.Hop)
			}
		}
		if rows[1].state != "" {
			t.Errorf("a coin never held: %s", rows[1].state)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A payer that lost the receipt sends the coin again and gets the same
// receipt, even after the coin has moved on.
func TestReceiveAgain(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	alice, _ := newVault(t)
	bob, _ := newVault(t)
	carol, _ := newVault(t)
	is.withdraw(t, alice, "w", 100, 100)
	is.refill(t, bob, 2)
	keys, err := bob.OfferExchangeKeys(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := alice.Purse("bob").Seal(ctx, held(t, alice), keys)
	if err != nil {
		t.Fatal(err)
	}
	acks, _, err := bob.Receive(ctx, "alice", sealed)
	if err != nil {
		t.Fatal(err)
	}
	// The receipts are lost; alice's coins stay pending-out to bob.
	pending, err := alice.PendingOut(ctx, "bob")
	if err != nil || len(pending) != 2 {
		t.Fatalf("pending-out to bob: %d, %v", len(pending), err)
	}
	if other, err := alice.PendingOut(ctx, "carol"); err != nil || len(other) != 0 {
		t.Fatalf("pending-out to carol: %d, %v", len(other), err)
	}
	is.pay(t, bob, carol, held(t, bob)[:1])

	again, _, err := bob.Receive(ctx, "alice", pending)
	if err != nil {
		t.Fatal(err)
	}
	for i := range acks {
		j := slices.IndexFunc(pending, func(sb otp.Sandbox) bool { return sb.Coin.Data.Token == acks[i].Token })
		if again[j] != acks[i] {
			t.Errorf("re-sent coin %.12s got a different receipt", acks[i].Token)
		}
	}
	if err := alice.Purse("bob").Destroy(ctx, pending, again); err != nil {
		t.Fatal(err)
	}
	if n := len(held(t, bob)); n != 1 {
		t.Fatalf("bob holds %d coins, want 1", n)
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	type fixture struct {
		alice, bob *Vault
		coin       otp.Sandbox     // 50, held by alice
		sealed     otp.Sandbox     // 100, pending-out from alice, held by bob
		ack        otp.Ack         // bob's receipt for sealed
		cert       otp.ExchangeKey // certified and unused, of bob
	}
	setup := func(t *testing.T) *fixture {
		f := &fixture{}
		f.alice, _ = newVault(t)
		f.bob, _ = newVault(t)
		is.withdraw(t, f.alice, "w1", 100, 50)
		coins := held(t, f.alice)
		slices.SortFunc(coins, func(a, b otp.Sandbox) int { return int(b.Coin.Data.Value - a.Coin.Data.Value) })
		f.coin = coins[1]
		keys := is.refill(t, f.bob, 2)
		sealed, err := f.alice.Purse("bob").Seal(ctx, coins[:1], keys[:1])
		if err != nil {
			t.Fatal(err)
		}
		f.sealed = sealed[0]
		acks, _, err := f.bob.Receive(ctx, "alice", sealed)
		if err != nil {
			t.Fatal(err)
		}
		f.ack, f.cert = acks[0], keys[1]
		return f
	}
	withdrawn := func(c otp.Coin) []otp.Sandbox { return []otp.Sandbox{{Coin: c, Chain: []otp.Link{}}} }
	tests := []struct {
		name string
		want error  // wrapped by the error; nil for none
		msg  string // in the error text
		run  func(t *testing.T, f *fixture) error
	}{
		{"receive to a key we do not hold", ErrNotFound, "never made", func(t *testing.T, f *fixture) error {
			k := is.refill(t, f.alice, 1)
			sb, err := f.alice.Purse("alice").Seal(ctx, []otp.Sandbox{f.coin}, k)
			if err != nil {
				return err
			}
			_, _, err = f.bob.Receive(ctx, "alice", sb)
			return err
		}},
		{"receive a coin never transferred", otp.ErrChain, "never transferred", func(t *testing.T, f *fixture) error {
			_, _, err := f.bob.Receive(ctx, "alice", []otp.Sandbox{f.coin})
			return err
		}},
		{"receive on a used key", ErrState, "already arrived", func(t *testing.T, f *fixture) error {
			other := is.issue(t, 10, mustPub(t, f.alice, "w2"))
			if err := f.alice.AddWithdrawn(ctx, "w2", []otp.Coin{other}); err != nil {
				return err
			}
			sb, err := f.alice.Purse("bob").Seal(ctx, withdrawn(other), []otp.ExchangeKey{f.sealed.Chain[0].To})
			if err != nil {
				return err
			}
			_, _, err = f.bob.Receive(ctx, "alice", sb)
			return err
		}},
		{"add two withdrawn coins on one holder key", ErrState, "already holds a coin", func(t *testing.T, f *fixture) error {
			pub := mustPub(t, f.alice, "w2")
			return f.alice.AddWithdrawn(ctx, "w2", []otp.Coin{is.issue(t, 10, pub), is.issue(t, 10, pub)})
		}},
		{"receive two coins on one key in one batch", ErrState, "already arrived", func(t *testing.T, f *fixture) error {
			other := is.issue(t, 10, mustPub(t, f.alice, "w2"))
			if err := f.alice.AddWithdrawn(ctx, "w2", []otp.Coin{other}); err != nil {
				return err
			}
			sb, err := f.alice.Purse("bob").Seal(ctx, append([]otp.Sandbox{f.coin}, withdrawn(other)...), []otp.ExchangeKey{f.cert, f.cert})
			if err != nil {
				return err
			}
			_, _, err = f.bob.Receive(ctx, "alice", sb)
			return err
		}},
		{"receive a coin twice in one batch", ErrExists, "in the batch twice", func(t *testing.T, f *fixture) error {
			sb, err := f.alice.Purse("bob").Seal(ctx, []otp.Sandbox{f.coin}, []otp.ExchangeKey{f.cert})
			if err != nil {
				return err
			}
			_, _, err = f.bob.Receive(ctx, "alice", []otp.Sandbox{sb[0], sb[0]})
			return err
		}},
		{"receive a fork of a coin we received", ErrExists, "received the coin with a different chain", func(t *testing.T, f *fixture) error {
			fork := f.sealed
			fork.Chain = []otp.Link{{To: f.cert, Sig: f.sealed.Chain[0].Sig}}
			_, _, err := f.bob.Receive(ctx, "alice", []otp.Sandbox{fork})
			return err
		}},
		{"receive a coin we hold, extended elsewhere", ErrExists, "holds the coin", func(t *testing.T, f *fixture) error {
			fork := f.sealed
			fork.Chain = append(slices.Clone(f.sealed.Chain), otp.Link{To: f.cert, Sig: f.sealed.Chain[0].Sig})
			_, _, err := f.bob.Receive(ctx, "alice", []otp.Sandbox{fork})
			return err
		}},
		{"receive a coin we paid, back along another chain", ErrExists, "paid the coin away along a different chain", func(t *testing.T, f *fixture) error {
			fork := f.sealed
			fork.Chain = []otp.Link{{To: f.cert, Sig: f.sealed.Chain[0].Sig}, f.sealed.Chain[0]}
			_, _, err := f.alice.Receive(ctx, "bob", []otp.Sandbox{fork})
			return err
		}},
		{"seal a coin not held", ErrState, "pending-out, not held", func(t *testing.T, f *fixture) error {
			_, err := f.alice.Purse("bob").Seal(ctx, withdrawn(f.sealed.Coin), []otp.ExchangeKey{f.cert})
			return err
		}},
		{"seal a coin twice in one batch", ErrState, "in the batch twice", func(t *testing.T, f *fixture) error {
			_, err := f.alice.Purse("bob").Seal(ctx, []otp.Sandbox{f.coin, f.coin}, []otp.ExchangeKey{f.cert, f.cert})
			return err
		}},
		{"seal a coin we never had", ErrNotFound, "does not hold", func(t *testing.T, f *fixture) error {
			_, err := f.bob.Purse("x").Seal(ctx, []otp.Sandbox{f.coin}, []otp.ExchangeKey{f.cert})
			return err
		}},
		{"seal a changed coin", ErrNotFound, "differs", func(t *testing.T, f *fixture) error {
			c := f.coin
			c.Coin.Data.Value = 1000
			_, err := f.alice.Purse("bob").Seal(ctx, []otp.Sandbox{c}, []otp.ExchangeKey{f.cert})
			return err
		}},
		{"seal with too few keys", nil, "2 coins for 1 exchange keys", func(t *testing.T, f *fixture) error {
			_, err := f.alice.Purse("bob").Seal(ctx, []otp.Sandbox{f.coin, f.coin}, []otp.ExchangeKey{f.cert})
			return err
		}},
		{"destroy with a wrong receipt", otp.ErrSignature, "destroy", func(t *testing.T, f *fixture) error {
			bad := f.ack
			bad.Sig = f.sealed.Chain[0].Sig
			return f.alice.Purse("bob").Destroy(ctx, []otp.Sandbox{f.sealed}, []otp.Ack{bad})
		}},
		{"destroy a held coin", ErrState, "held, not pending-out", func(t *testing.T, f *fixture) error {
			sb := f.coin
			sb.Chain = []otp.Link{{To: f.cert}}
			return f.alice.Purse("bob").Destroy(ctx, []otp.Sandbox{sb}, []otp.Ack{f.ack})
		}},
		{"destroy a coin never sealed", ErrState, "never sealed", func(t *testing.T, f *fixture) error {
			return f.alice.Purse("bob").Destroy(ctx, []otp.Sandbox{f.coin}, []otp.Ack{f.ack})
		}},
		{"holder keys with another count", ErrExists, "with 2 keys, not 3", func(t *testing.T, f *fixture) error {
			_, err := f.alice.HolderKeys(ctx, "w1", 3)
			return err
		}},
		{"holder keys of an unknown withdrawal", ErrNotFound, "", func(t *testing.T, f *fixture) error {
			_, err := f.alice.HolderKeys(ctx, "nope", 0)
			return err
		}},
		{"holder keys, negative count", nil, "asked for -1 keys", func(t *testing.T, f *fixture) error {
			_, err := f.alice.HolderKeys(ctx, "w9", -1)
			return err
		}},
		{"withdrawn coin for a key of another withdrawal", ErrNotFound, "not one of the withdrawal's keys", func(t *testing.T, f *fixture) error {
			mustPub(t, f.alice, "w2")
			return f.alice.AddWithdrawn(ctx, "w2", []otp.Coin{is.issue(t, 10, mustPub(t, f.alice, "w3"))})
		}},
		{"two withdrawn coins on one key", ErrState, "already holds a coin", func(t *testing.T, f *fixture) error {
			pub := mustPub(t, f.alice, "w2")
			return f.alice.AddWithdrawn(ctx, "w2", []otp.Coin{is.issue(t, 10, pub), is.issue(t, 10, pub)})
		}},
		{"withdrawn coin with a stored serial", ErrExists, "different coin", func(t *testing.T, f *fixture) error {
			c := is.issue(t, 10, mustPub(t, f.alice, "w2"))
			c.Data.Token = f.coin.Coin.Data.Token
			return f.alice.AddWithdrawn(ctx, "w2", []otp.Coin{c})
		}},
		{"withdrawn coin with a malformed serial", otp.ErrTokenFormat, "", func(t *testing.T, f *fixture) error {
			c := is.issue(t, 10, mustPub(t, f.alice, "w2"))
			c.Data.Token = "serial"
			return f.alice.AddWithdrawn(ctx, "w2", []otp.Coin{c})
		}},
		{"withdrawn coins of an unknown withdrawal", ErrNotFound, "", func(t *testing.T, f *fixture) error {
			return f.alice.AddWithdrawn(ctx, "nope", []otp.Coin{f.coin.Coin})
		}},
		{"certificate for a key we did not make", ErrNotFound, "never made", func(t *testing.T, f *fixture) error {
			return f.alice.AddExchangeKeys(ctx, []otp.ExchangeKey{f.cert})
		}},
		{"certificate for a used key", ErrState, "holder key", func(t *testing.T, f *fixture) error {
			return f.bob.AddExchangeKeys(ctx, []otp.ExchangeKey{f.sealed.Chain[0].To})
		}},
		{"certificate with a malformed key", nil, "public key", func(t *testing.T, f *fixture) error {
			k := f.cert
			k.Pub = "xyz"
			return f.bob.AddExchangeKeys(ctx, []otp.ExchangeKey{k})
		}},
		{"too few exchange keys", ErrNoExchangeKeys, "have 1, want 2", func(t *testing.T, f *fixture) error {
			_, err := f.bob.OfferExchangeKeys(ctx, 2)
			return err
		}},
		{"select more than held", ErrInsufficient, "have 0.50 EUR, want 1.00", func(t *testing.T, f *fixture) error {
			_, err := f.alice.Select(ctx, 100, "EUR")
			return err
		}},
		{"select another currency", ErrInsufficient, "have 0.00 USD", func(t *testing.T, f *fixture) error {
			_, err := f.alice.Select(ctx, 50, "USD")
			return err
		}},
		{"select no exact sum", ErrInsufficient, "exactly 0.30", func(t *testing.T, f *fixture) error {
			_, err := f.alice.Select(ctx, 30, "EUR")
			return err
		}},
		{"mark an unknown coin deposited", ErrNotFound, "", func(t *testing.T, f *fixture) error {
			return f.bob.MarkDeposited(ctx, []string{otp.NewSerial().String()})
		}},
		{"mark a spent coin deposited", ErrState, "spent, not held", func(t *testing.T, f *fixture) error {
			if err := f.alice.Purse("bob").Destroy(ctx, []otp.Sandbox{f.sealed}, []otp.Ack{f.ack}); err != nil {
				return err
			}
			return f.alice.MarkDeposited(ctx, []string{f.sealed.Coin.Data.Token})
		}},
		{"forget a finished withdrawal", ErrState, "coins are stored", func(t *testing.T, f *fixture) error {
			return f.alice.ForgetWithdrawal(ctx, "w1")
		}},
		{"empty PIN", ErrWeakPIN, "at least 6 digits", func(t *testing.T, f *fixture) error {
			_, err := Create(ctx, t.TempDir(), nil, cheap)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			before := states(t, f.bob)
			err := tt.run(t, f)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %q does not wrap %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
			// A refused call changes nothing.
			after := states(t, f.bob)
			for tok, s := range before {
				if !slices.Equal(after[tok], s) {
					t.Errorf("bob's coin %.12s went from %v to %v", tok, s, after[tok])
				}
			}
		})
	}
}

func mustPub(t testing.TB, v *Vault, withdrawal string) ed25519.PublicKey {
	t.Helper()
	pubs, err := v.HolderKeys(context.Background(), withdrawal, 1)
	if err != nil {
		t.Fatal(err)
	}
	return pubs[0]
}

// A receive batch with one bad coin stores none of them.
func TestReceiveAllOrNothing(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	alice, _ := newVault(t)
	bob, _ := newVault(t)
	is.withdraw(t, alice, "w", 10, 20)
	keys := is.refill(t, bob, 1)
	stranger := is.refill(t, alice, 1) // a key bob does not hold
	coins := held(t, alice)
	sealed, err := alice.Purse("bob").Seal(ctx, coins, []otp.ExchangeKey{keys[0], stranger[0]})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bob.Receive(ctx, "alice", sealed); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), sealed[1].Coin.Data.Token[:12]) {
		t.Fatalf("Receive: %v", err)
	}
	if c, err := bob.Coins(ctx); err != nil || len(c) != 0 {
		t.Fatalf("bob stored %d coins of a refused batch, %v", len(c), err)
	}
	if n, err := bob.ExchangeKeyCount(ctx); err != nil || n != 1 {
		t.Fatalf("bob's exchange keys: %d, %v", n, err)
	}
}

func TestWithdrawal(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	v, _ := newVault(t)
	pubs, err := v.HolderKeys(ctx, "w1", 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.HolderKeys(ctx, "w2", 1); err != nil {
		t.Fatal(err)
	}
	again, err := v.HolderKeys(ctx, "w1", 0)
	if err != nil || !slices.EqualFunc(pubs, again, func(a, b ed25519.PublicKey) bool { return a.Equal(b) }) {
		t.Fatalf("HolderKeys again: %v", err)
	}
	if ids, err := v.PendingWithdrawals(ctx); err != nil || !slices.Equal(ids, []string{"w1", "w2"}) {
		t.Fatalf("PendingWithdrawals = %v, %v", ids, err)
	}
	coins := []otp.Coin{is.issue(t, 100, pubs[0]), is.issue(t, 100, pubs[1]), is.issue(t, 50, pubs[2])}
	// The first reply was lost after the vault stored part of it; the bank
	// answers again with all the coins.
	if err := v.AddWithdrawn(ctx, "w1", coins[:1]); err != nil {
		t.Fatal(err)
	}
	if err := v.AddWithdrawn(ctx, "w1", coins); err != nil {
		t.Fatal(err)
	}
	if err := v.AddWithdrawn(ctx, "w1", coins); err != nil {
		t.Fatal(err)
	}
	if n := len(held(t, v)); n != 3 {
		t.Fatalf("%d coins held, want 3", n)
	}
	if ids, err := v.PendingWithdrawals(ctx); err != nil || !slices.Equal(ids, []string{"w2"}) {
		t.Fatalf("PendingWithdrawals = %v, %v", ids, err)
	}
	if err := v.ForgetWithdrawal(ctx, "w2"); err != nil {
		t.Fatal(err)
	}
	if ids, err := v.PendingWithdrawals(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("PendingWithdrawals after forgetting = %v, %v", ids, err)
	}
	if err := v.ForgetWithdrawal(ctx, "w2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("forgetting twice: %v", err)
	}
}

func TestExchangeKeys(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	v, _ := newVault(t)
	now := time.Now()
	if _, err := v.NewExchangeKeys(ctx, 2); err != nil { // never certified
		t.Fatal(err)
	}
	soon := is.certify(t, v, 2, now.Add(time.Hour))
	later := is.certify(t, v, 1, now.Add(2*time.Hour))
	if n, err := v.ExchangeKeyCount(ctx); err != nil || n != 3 {
		t.Fatalf("ExchangeKeyCount = %d, %v", n, err)
	}
	got, err := v.OfferExchangeKeys(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(soon), later...)
	slices.SortFunc(want[:2], func(a, b otp.ExchangeKey) int { return strings.Compare(a.Pub, b.Pub) })
	for i := range want {
		if got[i].Pub != want[i].Pub || got[i].Sig != want[i].Sig {
			t.Fatalf("offered key %d is %.12s, want %.12s (soonest expiry first)", i, got[i].Pub, want[i].Pub)
		}
	}
	// Offering does not use keys up.
	if n, err := v.ExchangeKeyCount(ctx); err != nil || n != 3 {
		t.Fatalf("ExchangeKeyCount after offering = %d, %v", n, err)
	}
	// Certifying again replaces the certificate.
	if err := v.AddExchangeKeys(ctx, later); err != nil {
		t.Fatal(err)
	}
	v.now = func() time.Time { return now.Add(90 * time.Minute) }
	if n, err := v.ExchangeKeyCount(ctx); err != nil || n != 1 {
		t.Fatalf("ExchangeKeyCount with two keys expired = %d, %v", n, err)
	}
	if _, err := v.OfferExchangeKeys(ctx, 2); !errors.Is(err, ErrNoExchangeKeys) {
		t.Fatalf("OfferExchangeKeys(2): %v", err)
	}
	if _, err := v.OfferExchangeKeys(ctx, 0); err == nil {
		t.Fatal("OfferExchangeKeys(0) succeeded")
	}
}

func TestSelect(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	v, _ := newVault(t)
	is.withdraw(t, v, "w", 200, 50, 50, 20, 20, 20, 5)
	tests := []struct {
		amount int64
		want   []int64 // values picked
	}{
		{200, []int64{200}},
		{250, []int64{200, 50}},
		{60, []int64{20, 20, 20}}, // greedy takes 50 and is stuck
		{365, []int64{200, 50, 50, 20, 20, 20, 5}},
		{5, []int64{5}},
		{45, []int64{20, 20, 5}},
	}
	for _, tt := range tests {
		coins, err := v.Select(ctx, tt.amount, "EUR")
		if err != nil {
			t.Errorf("Select(%d): %v", tt.amount, err)
			continue
		}
		var got []int64
		for _, c := range coins {
			got = append(got, c.Coin.Data.Value)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Select(%d) picked %v, want %v", tt.amount, got, tt.want)
		}
	}
	for _, amt := range []int64{0, -5} {
		if _, err := v.Select(ctx, amt, "EUR"); err == nil {
			t.Errorf("Select(%d) succeeded", amt)
		}
	}
	// Coins past their payable date are not picked.
	v.now = func() time.Time { return is.coins[5].Key.Expires }
	if _, err := v.Select(ctx, 5, "EUR"); !errors.Is(err, ErrInsufficient) {
		t.Errorf("Select of expired coins: %v", err)
	}
}

func TestChoose(t *testing.T) {
	tests := []struct {
		values []int64
		amount int64
		want   []int
	}{
		{[]int64{10, 5, 1}, 16, []int{0, 1, 2}},
		{[]int64{10, 5, 1}, 11, []int{0, 2}},
		{[]int64{10, 5, 1}, 17, nil},
		{[]int64{6, 4, 4}, 8, []int{1, 2}},
		{[]int64{300, 200, 200, 200}, 600, []int{1, 2, 3}},
		{[]int64{7, 3}, 4, nil},
		{nil, 1, nil},
		{[]int64{4, 2}, 3, nil},                            // odd amount, even coins
		{[]int64{1 << 40, 9, 4, 4, 4}, 12, []int{2, 3, 4}}, // a coin too large to search over
		{[]int64{9, 4, 4, 4}, 12, []int{1, 2, 3}},          // greedy takes 9 and is stuck
		{[]int64{2, 2}, 1 << 40, nil},                      // too large to search
	}
	for _, tt := range tests {
		if got := choose(tt.values, tt.amount); !slices.Equal(got, tt.want) {
			t.Errorf("choose(%v, %d) = %v, want %v", tt.values, tt.amount, got, tt.want)
		}
	}
}

// choose finds an exact subset whenever one exists, against a search of
// every subset of small random purses.
func TestChooseExhaustive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	denominations := []int64{1, 2, 5, 10, 20, 50, 100}
	for range 2000 {
		values := make([]int64, r.IntN(9))
		for i := range values {
			values[i] = denominations[r.IntN(len(denominations))]
		}
		slices.SortFunc(values, func(a, b int64) int { return cmp.Compare(b, a) })
		amount := 1 + r.Int64N(200)
		exists := false
		for set := range 1 << len(values) {
			var sum int64
			for i, v := range values {
				if set&(1<<i) != 0 {
					sum += v
				}
			}
			exists = exists || sum == amount
		}
		pick := choose(values, amount)
		var sum int64
		for i, j := range pick {
			if i > 0 && j <= pick[i-1] {
				t.Fatalf("choose(%v, %d) = %v: not distinct, increasing indices", values, amount, pick)
			}
			sum += values[j]
		}
		if (pick != nil) != exists || (pick != nil && sum != amount) {
			t.Fatalf("choose(%v, %d) = %v (sum %d); a subset exists: %v", values, amount, pick, sum, exists)
		}
	}
}

// Two payments that selected the same coin: only one can seal it.
func TestConcurrentSeal(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	alice, _ := newVault(t)
	bob, _ := newVault(t)
	is.withdraw(t, alice, "w", 100)
	coins := held(t, alice)
	keys := is.refill(t, bob, 8)
	var wg sync.WaitGroup
	errs := make([]error, len(keys))
	for i := range keys {
		wg.Go(func() {
			_, errs[i] = alice.Purse("bob").Seal(ctx, coins, keys[i:i+1])
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrState):
			t.Errorf("losing Seal: %v, want ErrState", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d Seals of one coin succeeded", ok)
	}
}

func TestEvents(t *testing.T) {
	ctx := context.Background()
	v, _ := newVault(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	in := []Event{
		{Time: at, Kind: "withdraw", Amount: 500, Currency: "EUR", Detail: "5 coins"},
		{Kind: "pay", Amount: 120, Currency: "EUR", Peer: "bob"},
	}
	for i := range 300 {
		in = append(in, Event{Kind: "receive", Amount: int64(i)})
	}
	for _, e := range in {
		if err := v.AddEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := v.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("%d events, want %d", len(got), len(in))
	}
	if !got[0].Time.Equal(at) || got[1].Time.IsZero() {
		t.Errorf("event times %v, %v", got[0].Time, got[1].Time)
	}
	for i := range in {
		got[i].Time, in[i].Time = time.Time{}, time.Time{}
		if got[i] != in[i] {
			t.Fatalf("event %d = %+v, want %+v", i, got[i], in[i])
		}
	}
}

// Records are bound to their row and state: editing the plaintext state
// or moving a blob to another row makes it unreadable, not different.
func TestTamper(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	tests := []struct {
		name string
		sql  string
	}{
		{"state edited", `UPDATE record SET state = 'held' WHERE kind = 'coin' AND state = 'spent'`},
		{"blobs swapped", `UPDATE record SET blob = (SELECT blob FROM record WHERE kind = 'coin' AND state = 'held') WHERE kind = 'coin' AND state = 'spent'`},
		{"kind changed", `UPDATE record SET kind = 'coin' WHERE kind = 'setting'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alice, _ := newVault(t)
			bob, _ := newVault(t)
			is.withdraw(t, alice, "w", 10, 20)
			is.pay(t, alice, bob, held(t, alice)[:1])
			if err := alice.SetSetting(ctx, "x", []byte("y")); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.db.ExecContext(ctx, tt.sql); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.Coins(ctx); err == nil || !strings.Contains(err.Error(), "tampered") {
				t.Fatalf("Coins after tampering: %v", err)
			}
		})
	}
}

func TestClosedAndCancelled(t *testing.T) {
	v, _ := newVault(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := v.SetSetting(ctx, "a", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("SetSetting with a cancelled context: %v", err)
	}
	v.Close()
	if err := v.Close(); !errors.Is(err, errClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := v.Coins(context.Background()); !errors.Is(err, errClosed) {
		t.Fatalf("Coins after Close: %v", err)
	}
}

// The exchange keys a vault can offer are remembered by record version:
// every listing agrees with one that decrypts every record, a key a coin
// arrived on is no longer offered nor remembered, and a caller changing a
// key it was given changes nothing in the vault.
func TestOfferRemembers(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	alice, _ := newVault(t)
	bob, _ := newVault(t)
	is.withdraw(t, alice, "w1", 100, 50, 10)
	offer := func(step string, want int) []otp.ExchangeKey {
		t.Helper()
		if n, err := bob.ExchangeKeyCount(ctx); err != nil || n != want {
			t.Fatalf("%s: ExchangeKeyCount = %d, %v; want %d", step, n, err, want)
		}
		got, err := bob.OfferExchangeKeys(ctx, want)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if n := len(bob.mem.certs); n != want {
			t.Errorf("%s: %d certificates remembered, %d offerable", step, n, want)
		}
		bob.mem = memo{} // forget everything: list and decrypt again
		fresh, err := bob.OfferExchangeKeys(ctx, want)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if !reflect.DeepEqual(got, fresh) {
			t.Fatalf("%s: remembered offer %+v, decrypted %+v", step, got, fresh)
		}
		return got
	}
	is.refill(t, bob, 3)
	keys := offer("refilled", 3)
	keys[0].Attrs = map[string]string{"changed": "by the caller"}
	if again := offer("offered again", 3); again[0].Attrs != nil {
		t.Errorf("the caller's change reached the vault: %v", again[0].Attrs)
	}
	coin := is.pay(t, alice, bob, held(t, alice)[:1]) // refills one key, uses one
	left := offer("one key used", 3)
	for _, k := range left {
		if k.Pub == coin[0].Holder() {
			t.Errorf("the key coin %.12s arrived on is offered again", coin[0].Coin.Data.Token)
		}
	}
	is.refill(t, bob, 2)
	offer("refilled again", 5)
}

// fetch reads a batch of records by row key in as many queries as it
// needs, whatever the order, repeats and gaps of the keys it is given.
func TestFetch(t *testing.T) {
	ctx := context.Background()
	v, _ := newVault(t)
	id := func(i int) []byte { return v.s.id(kindSetting, []byte(fmt.Sprint(i))) }
	stored := map[int]bool{0: true, 7: true, fetchChunk - 1: true, fetchChunk: true, 2*fetchChunk + 3: true}
	for i := range stored {
		if err := v.SetSetting(ctx, fmt.Sprint(i), []byte(fmt.Sprint("value ", i))); err != nil {
			t.Fatal(err)
		}
	}
	var ids [][]byte
	var want []int
	for i := range 2*fetchChunk + 6 { // stored records on both sides of a chunk's edge
		ids, want = append(ids, id(i)), append(want, i)
	}
	ids, want = append(ids, id(7), id(7)), append(want, 7, 7)
	err := v.update(ctx, func(tx *tx) error {
		raws, err := fetch(tx, kindSetting, ids)
		if err != nil {
			return err
		}
		for j, r := range raws {
			if !bytes.Equal(r.id, ids[j]) || (r.blob != nil) != stored[want[j]] {
				t.Fatalf("record %d (%d): id %x, blob %d bytes; stored %v", j, want[j], r.id, len(r.blob), stored[want[j]])
			}
			if r.blob == nil {
				continue
			}
			var got []byte
			if err := tx.s.open(kindSetting, r.id, r.state, r.ref, r.blob, &got); err != nil || string(got) != fmt.Sprint("value ", want[j]) {
				t.Errorf("record %d (%d) = %q, %v", j, want[j], got, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSettleDeposit: the bank's answer to a deposit is recorded whole or
// not at all. A refused coin leaves the held coins with the bank's
// refusal, keeping its holder key; a bad answer (a coin not held) changes
// nothing, not even the coins the same answer credited.
func TestSettleDeposit(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	v, _ := newVault(t)
	coins := is.withdraw(t, v, "w1", 100, 200, 500)
	credited, refusedTok, other := coins[0].Data.Token, coins[1].Data.Token, coins[2].Data.Token
	refusal := Refusal{Token: refusedTok, Code: "double_deposit", Message: "already deposited", Key: "k"}
	ev := Event{Kind: "refused", Amount: 200, Detail: "coin refused"}

	bad := []Refusal{refusal, {Token: otp.NewSerial().String(), Code: "double_deposit"}}
	if err := v.SettleDeposit(ctx, []string{credited}, bad, ev); !errors.Is(err, ErrNotFound) {
		t.Fatalf("settling with a coin the vault does not hold: %v; want ErrNotFound", err)
	}
	for tok, s := range states(t, v) {
		if !slices.Equal(s, []State{Held}) {
			t.Errorf("after a refused settlement, coin %.12s is %v, want held", tok, s)
		}
	}
	if events, err := v.Events(ctx); err != nil || len(events) != 0 {
		t.Errorf("after a refused settlement, history %v, %v; want empty", events, err)
	}

	for range 2 { // settling twice is settling once
		if err := v.SettleDeposit(ctx, []string{credited}, []Refusal{refusal}, ev); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]State{credited: {Deposited}, refusedTok: {Refused}, other: {Held}}
	if got := states(t, v); !reflect.DeepEqual(got, want) {
		t.Errorf("states %v, want %v", got, want)
	}
	all, err := v.Coins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		if c.Sandbox.Coin.Data.Token == refusedTok && (c.Refusal == nil || *c.Refusal != refusal) {
			t.Errorf("refused coin's evidence %+v, want %+v", c.Refusal, refusal)
		}
	}
	if p, err := v.Payable(ctx, "EUR", ""); err != nil || len(p) != 1 || p[0].Coin.Data.Token != other {
		t.Errorf("payable after settling: %d coins, %v; want only the held one", len(p), err)
	}
	if items, err := v.DepositItems(ctx, "acct"); err != nil || len(items) != 1 {
		t.Errorf("deposit items after settling: %d, %v; want only the held one", len(items), err)
	}
	if events, err := v.Events(ctx); err != nil || len(events) != 2 || events[0].Detail != ev.Detail {
		t.Errorf("history %+v, %v; want the refusal, once per settlement", events, err)
	}
	// A refused coin cannot be marked deposited: the bank said no.
	if err := v.MarkDeposited(ctx, []string{refusedTok}); !errors.Is(err, ErrState) {
		t.Errorf("marking a refused coin deposited: %v; want ErrState", err)
	}
}

// TestPathForms creates and reopens a vault at every form of path a user
// types: the database is opened through a file: URI, where a relative path
// reads as an authority and '?' and '#' end the path.
func TestPathForms(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	t.Chdir(base)
	for _, dir := range []string{
		"alice",
		"./dot",
		"sub/dir",
		"../" + filepath.Base(base) + "/up",
		filepath.Join(base, "absolute"),
		"with space",
		"query?mode=ro",
		"hash#frag",
		"percent%20sign",
		"semi;colon&amp=1",
	} {
		t.Run(dir, func(t *testing.T) {
			v, err := Create(ctx, dir, testPIN, cheap)
			if err != nil {
				t.Fatalf("Create(%q): %v", dir, err)
			}
			if err := v.SetSetting(ctx, "k", []byte(dir)); err != nil {
				t.Fatal(err)
			}
			v.Close()
			// The database is where the user said, not in some file named
			// after part of the path.
			if _, err := os.Stat(filepath.Join(dir, dbName)); err != nil {
				t.Fatalf("vault not in %q: %v", dir, err)
			}
			v, err = Open(ctx, dir, testPIN)
			if err != nil {
				t.Fatalf("Open(%q): %v", dir, err)
			}
			defer v.Close()
			if got, err := v.Setting(ctx, "k"); err != nil || string(got) != dir {
				t.Fatalf("Setting after reopening %q = %q, %v", dir, got, err)
			}
		})
	}
	entries, _ := os.ReadDir(base)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"absolute", "alice", "dot", "hash#frag", "percent%20sign", "query?mode=ro", "semi;colon&amp=1", "sub", "up", "with space"}
	if !slices.Equal(names, want) {
		t.Errorf("files in the working directory: %q; want only the vaults' directories", names)
	}
}

// TestOfferableFollowsWrites checks that the exchange keys a vault
// remembers between sessions (so that a session need not list them all)
// follow every change: this vault's own writes, a transaction that writes
// and then lists, and the commits of another process on the same
// database, which data_version shows.
func TestOfferableFollowsWrites(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	v, dir := newVaultOn(t, "") // two handles on one directory: software
	keys := is.certify(t, v, 4, time.Now().Add(time.Hour))
	count := func(v *Vault, want int, when string) {
		t.Helper()
		if n, err := v.ExchangeKeyCount(ctx); err != nil || n != want {
			t.Fatalf("%s: ExchangeKeyCount = %d, %v; want %d", when, n, err, want)
		}
	}
	count(v, 4, "certified")

	if err := v.PromiseKeys(ctx, keys[:1]); err != nil {
		t.Fatal(err)
	}
	count(v, 3, "after this vault promised a key")

	err := v.update(ctx, func(t *tx) error {
		if err := t.promise(keys[1:2], nil, nil); err != nil {
			return err
		}
		offerable, err := t.offerable()
		if err == nil && len(offerable) != 2 {
			err = fmt.Errorf("offerable in the transaction that promised a key: %d keys, want 2", len(offerable))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	count(v, 2, "after the transaction")

	// A transaction that lists after its own write, then fails: what it
	// listed was never committed.
	err = v.update(ctx, func(t *tx) error {
		if err := t.promise(keys[2:3], nil, nil); err != nil {
			return err
		}
		if _, err := t.offerable(); err != nil {
			return err
		}
		return errors.New("the user cancelled")
	})
	if err == nil {
		t.Fatal("the failing transaction succeeded")
	}
	count(v, 2, "after a transaction that promised a key and failed")

	extra := is.certify(t, v, 1, time.Now().Add(time.Hour))
	count(v, 3, "after this vault certified a key")
	if err := v.PromiseKeys(ctx, extra); err != nil {
		t.Fatal(err)
	}
	count(v, 2, "after this vault promised the key it certified")

	other, err := Open(ctx, dir, testPIN)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.PromiseKeys(ctx, keys[2:3]); err != nil {
		t.Fatal(err)
	}
	count(v, 1, "after another handle promised a key")
	more := is.certify(t, other, 2, time.Now().Add(time.Hour))
	count(v, 3, "after another handle certified two keys")
	got, err := v.OfferExchangeKeys(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range got {
		if slices.ContainsFunc(keys[:3], func(p otp.ExchangeKey) bool { return p.Pub == k.Pub }) {
			t.Fatalf("offered the promised key %.12s", k.Pub)
		}
	}
	// A new connection counts data_version afresh: the list is read again
	// on it, not trusted on a count that only looks unchanged.
	v.db.SetMaxIdleConns(0) // every transaction on a new connection
	count(v, 3, "on a new connection")
	if err := other.PromiseKeys(ctx, more[:1]); err != nil {
		t.Fatal(err)
	}
	count(v, 2, "after another handle promised a key, on a new connection")

	// Remembered keys still expire.
	v.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	count(v, 0, "two hours later")
}

// The held coins a payment lists are remembered and kept up to date: by
// this vault's own writes of every kind (withdrawal, seal, receipt,
// settlement, a transaction that failed), by another handle's, on a new
// connection, and they still expire. At each step Payable must list what
// decrypting every record lists.
func TestHeldFollowsWrites(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	v, dir := newVaultOn(t, "") // two handles on one directory: software
	bob, _ := newVault(t)
	check := func(v *Vault, want int, when string) {
		t.Helper()
		got, err := v.Payable(ctx, "EUR", "")
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		all, err := v.Coins(ctx)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		fresh := PayableOf(all, "EUR", "", v.now())
		some, err := v.Coins(ctx, Held, PendingOut, Held)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		all = slices.DeleteFunc(all, func(c Coin) bool { return c.State != Held && c.State != PendingOut })
		if len(some) != len(all) {
			t.Fatalf("%s: %d coins held or pending-out, decrypting every record %d", when, len(some), len(all))
		}
		for i := range some {
			if some[i].Sandbox.Coin.Data.Token != all[i].Sandbox.Coin.Data.Token || some[i].State != all[i].State || some[i].Peer != all[i].Peer || !some[i].Updated.Equal(all[i].Updated) {
				t.Fatalf("%s: coin %d listed as %+v, decrypting every record as %+v", when, i, some[i], all[i])
			}
		}
		if len(got) != want || len(fresh) != want {
			t.Fatalf("%s: Payable lists %d coins, decrypting every record %d; want %d", when, len(got), len(fresh), want)
		}
		for i := range got {
			g, f := &got[i].Coin.Data, &fresh[i].Coin.Data
			if g.Token != f.Token || g.Value != f.Value || got[i].Hops() != fresh[i].Hops() {
				t.Fatalf("%s: coin %d is %.12s of %d after %d hops, decrypting every record gives %.12s of %d after %d",
					when, i, g.Token, g.Value, got[i].Hops(), f.Token, f.Value, fresh[i].Hops())
			}
		}
	}
	// The connection is marked from the start, outside any transaction:
	// a read transaction's mark would be rolled back, and every listing in
	// one would then read every version.
	var marked int
	if err := v.db.QueryRowContext(ctx, `SELECT count(*) FROM temp.sqlite_master WHERE name = 'memo_connection'`).Scan(&marked); err != nil || marked != 1 {
		t.Fatalf("a new vault's connection: %d marks, %v", marked, err)
	}
	is.withdraw(t, v, "w1", 100, 50, 20)
	check(v, 3, "withdrawn")
	check(v, 3, "listed again")
	if !v.mem.heldWhole {
		t.Fatal("a listing in a read transaction left the held coins to be read again")
	}
	is.withdraw(t, v, "w2", 50)
	check(v, 4, "after this vault withdrew another, of a value between two held")
	is.withdraw(t, v, "w2b", 5, 200, 20)
	check(v, 7, "after this vault withdrew three, out of order")

	coins, err := v.Payable(ctx, "EUR", "")
	if err != nil {
		t.Fatal(err)
	}
	is.refill(t, bob, 1)
	keys, err := bob.OfferExchangeKeys(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := v.Purse("bob").Seal(ctx, coins[:1], keys)
	if err != nil {
		t.Fatal(err)
	}
	check(v, 6, "after this vault sealed one")
	acks, _, err := bob.Receive(ctx, "v", sealed)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Purse("bob").Destroy(ctx, sealed, acks); err != nil {
		t.Fatal(err)
	}
	check(v, 6, "after the receipt")
	is.pay(t, bob, v, held(t, bob))
	check(v, 7, "after the coin came back")

	// A transaction that writes a held coin and fails: nothing changed.
	err = v.update(ctx, func(t *tx) error {
		h := &holding{Sandbox: coins[1], Updated: t.now}
		if err := t.put(kindCoin, t.holdingID(h.Sandbox.Coin.Data.Token, 7), string(Held), t.serialRef(h.Sandbox.Coin.Data.Token), h); err != nil {
			return err
		}
		return errors.New("the user cancelled")
	})
	if err == nil {
		t.Fatal("the failing transaction succeeded")
	}
	check(v, 7, "after a transaction that wrote a coin and failed")
	// This vault rewrites one held coin's record twice between listings:
	// it is in the order once.
	rewriteValue(t, v, coins[1], 3)
	rewriteValue(t, v, coins[1], 4)
	check(v, 7, "after this vault rewrote a held coin twice")
	// No holding is deleted today (one ends in a state), but a record
	// deleted must leave the held coins as a rewritten one does.
	err = v.update(ctx, func(t *tx) error {
		return t.delete(kindCoin, t.holdingID(coins[1].Coin.Data.Token, coins[1].Hops()))
	})
	if err != nil {
		t.Fatal(err)
	}
	check(v, 6, "after this vault deleted a held coin's record")
	// More coins written than held: every version is read again, rather
	// than a growing list of records.
	is.withdraw(t, v, "w5", 1, 1, 1, 1, 1, 1, 1, 1)
	if v.mem.heldWhole || v.mem.heldStale != nil {
		t.Fatalf("after writing 8 coin records with 6 held, %d are noted to be read again", len(v.mem.heldStale))
	}
	check(v, 14, "after this vault withdrew eight")

	other, err := Open(ctx, dir, testPIN)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	is.withdraw(t, other, "w3", 5, 5)
	check(v, 16, "after another handle withdrew two")
	mine, err := other.Payable(ctx, "EUR", "")
	if err != nil {
		t.Fatal(err)
	}
	is.pay(t, other, bob, mine[:2])
	check(v, 14, "after another handle paid two away")
	// Another handle rewrites a held coin's record, which stays held.
	rewriteValue(t, other, mine[2], 7)
	check(v, 14, "after another handle rewrote a held coin")

	// A new connection counts data_version afresh: the coins are read
	// again on it, not trusted on a count that only looks unchanged.
	v.db.SetMaxIdleConns(0) // every transaction on a new connection
	check(v, 14, "on a new connection")
	is.withdraw(t, other, "w4", 1)
	check(v, 15, "after another handle withdrew one, on a new connection")

	// Remembered coins still expire.
	v.now = func() time.Time { return time.Now().AddDate(100, 0, 0) }
	check(v, 0, "a hundred years later")
}
