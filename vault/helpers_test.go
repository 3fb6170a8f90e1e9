package vault

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/otpcash/otpcash/internal/testtpm"
	"github.com/otpcash/otpcash/otp"
)

// cheap keeps Argon2id fast in tests.
var cheap = &Options{Time: 1, MemoryKiB: 64, Threads: 1}

var testPIN = []byte("correct horse")

// issuer is a bank as far as the vault sees one: it signs coins and
// certifies exchange keys.
type issuer struct {
	coins map[int64]*otp.Signer // by coin value
	exch  *otp.Signer
	ver   *otp.Verifier
}

// newIssuer returns the test bank. Its keys and dates are fixed, so that
// every process of a test run shares one bank.
func newIssuer(t testing.TB) *issuer {
	t.Helper()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	signer := func(name string, k otp.IssuerKey) *otp.Signer {
		k.NotBefore, k.Expires, k.DepositUntil = t0, t0.AddDate(75, 0, 0), t0.AddDate(75, 3, 0)
		seed := sha256.Sum256([]byte("test-bank/" + name))
		priv := ed25519.NewKeyFromSeed(seed[:])
		k.KeyID, k.Alg, k.Public = name, otp.AlgEd25519, otp.EncodeKey(priv.Public().(ed25519.PublicKey))
		s, err := otp.NewSigner("test-bank", k, priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	is := &issuer{coins: map[int64]*otp.Signer{}}
	cat := &otp.Catalogue{Issuer: "test-bank", Issued: t0}
	for _, value := range []int64{1, 2, 5, 10, 20, 50, 100, 200, 500} {
		s := signer(fmt.Sprint("coin/", value), otp.IssuerKey{Use: otp.UseCoin, Value: value, Currency: "EUR"})
		is.coins[value] = s
		cat.Keys = append(cat.Keys, s.Key)
	}
	is.exch = signer("exchange", otp.IssuerKey{Use: otp.UseExchange})
	cat.Keys = append(cat.Keys, is.exch.Key)
	root := sha256.Sum256([]byte("test-bank/root"))
	if err := cat.Sign(ed25519.NewKeyFromSeed(root[:])); err != nil {
		t.Fatal(err)
	}
	is.ver = otp.NewVerifier(cat)
	return is
}

// issue signs one coin of value for holder.
func (is *issuer) issue(t testing.TB, value int64, holder ed25519.PublicKey) otp.Coin {
	t.Helper()
	s := is.coins[value]
	c, err := s.Issue(otp.NewSerial(), holder, s.Key.Expires, otp.GeneralProgram())
	if err != nil {
		t.Fatal(err)
	}
	return *c
}

// withdraw stores one coin of each value in v, through a withdrawal.
func (is *issuer) withdraw(t testing.TB, v *Vault, id string, values ...int64) []otp.Coin {
	t.Helper()
	ctx := context.Background()
	pubs, err := v.HolderKeys(ctx, id, len(values))
	if err != nil {
		t.Fatal(err)
	}
	coins := make([]otp.Coin, len(values))
	for i, value := range values {
		coins[i] = is.issue(t, value, pubs[i])
	}
	if err := v.AddWithdrawn(ctx, id, coins); err != nil {
		t.Fatal(err)
	}
	return coins
}

// certify makes n exchange keys in v and certifies them until expires.
func (is *issuer) certify(t testing.TB, v *Vault, n int, expires time.Time) []otp.ExchangeKey {
	t.Helper()
	ctx := context.Background()
	pubs, err := v.NewExchangeKeys(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	certs := make([]otp.ExchangeKey, n)
	for i, pub := range pubs {
		if certs[i], err = is.exch.Certify(pub, expires, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.AddExchangeKeys(ctx, certs); err != nil {
		t.Fatal(err)
	}
	return certs
}

func (is *issuer) refill(t testing.TB, v *Vault, n int) []otp.ExchangeKey {
	return is.certify(t, v, n, is.exch.Key.Expires)
}

// pay does the vaults' part of a payment of coins from payer to payee, as
// the executor and the payee's session would.
func (is *issuer) pay(t testing.TB, payer, payee *Vault, coins []otp.Sandbox) []otp.Sandbox {
	t.Helper()
	ctx := context.Background()
	is.refill(t, payee, len(coins))
	keys, err := payee.OfferExchangeKeys(ctx, len(coins))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := payer.Purse("payee").Seal(ctx, coins, keys)
	if err != nil {
		t.Fatal(err)
	}
	acks, _, err := payee.Receive(ctx, "payer", sealed)
	if err != nil {
		t.Fatal(err)
	}
	if err := payer.Purse("payee").Destroy(ctx, sealed, acks); err != nil {
		t.Fatal(err)
	}
	return sealed
}

// backend is the protector the tests' vaults use: OTPCASH_TEST_VAULT=tpm
// runs them on a fresh swtpm each (make test runs the package both ways).
var backend = os.Getenv("OTPCASH_TEST_VAULT")

// testOptions returns the options of a test vault on backend: cheap
// Argon2id, or a fresh swtpm.
func testOptions(t testing.TB, backend string) *Options {
	o := *cheap
	if backend == TPM {
		o.Protector, o.TPM = TPM, testtpm.Start(t)
	}
	return &o
}

func newVault(t testing.TB) (*Vault, string) {
	t.Helper()
	return newVaultOn(t, backend)
}

// newVaultOn is newVault with the protector backend.
func newVaultOn(t testing.TB, backend string) (*Vault, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "wallet")
	v, err := Create(context.Background(), dir, testPIN, testOptions(t, backend))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v, dir
}

// held returns v's held coins.
func held(t testing.TB, v *Vault) []otp.Sandbox {
	t.Helper()
	coins, err := v.Coins(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []otp.Sandbox
	for _, c := range coins {
		if c.State == Held {
			out = append(out, c.Sandbox)
		}
	}
	return out
}

// states maps each token to the states of its holdings in v, oldest first.
func states(t testing.TB, v *Vault) map[string][]State {
	t.Helper()
	coins, err := v.Coins(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]State{}
	for _, c := range coins {
		m[c.Sandbox.Coin.Data.Token] = append(m[c.Sandbox.Coin.Data.Token], c.State)
	}
	return m
}

// assertKeyDestroyed checks that v no longer has the private key of pub.
func assertKeyDestroyed(t testing.TB, v *Vault, pub string) {
	t.Helper()
	err := v.update(context.Background(), func(tx *tx) error {
		_, _, _, err := tx.key(pub)
		return err
	})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("key %.12s should be destroyed: %v", pub, err)
	}
}
