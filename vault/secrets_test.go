package vault

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/otpcash/otpcash/otp"
)

// secrets collects what must never be stored in the clear, with a name
// for each to report.
type secrets map[string][]byte

// keys adds every private key v holds now, and the public halves.
func (s secrets) keys(t *testing.T, v *Vault) {
	t.Helper()
	err := v.update(context.Background(), func(tx *tx) error {
		rows, err := list[keyRecord](tx, kindKey, allRecords, nil)
		for _, r := range rows {
			priv := ed25519.NewKeyFromSeed(r.val.Seed)
			pub := priv.Public().(ed25519.PublicKey)
			s["seed of "+otp.EncodeKey(pub)] = r.val.Seed
			s["private key of "+otp.EncodeKey(pub)] = priv
			s["public key "+otp.EncodeKey(pub)] = pub
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	priv, _, err := v.Identity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s["identity key"] = priv
}

// coins adds the serial and every holder key of each coin v lists.
func (s secrets) coins(t *testing.T, v *Vault) {
	t.Helper()
	coins, err := v.Coins(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range coins {
		sb := c.Sandbox
		serial, err := sb.Coin.Serial()
		if err != nil {
			t.Fatal(err)
		}
		s["serial "+sb.Coin.Data.Token] = serial[:]
		for i := range sb.Hops() + 1 {
			pub, err := otp.DecodeKey(sb.HolderAt(i))
			if err != nil {
				t.Fatal(err)
			}
			s["holder key "+sb.HolderAt(i)] = pub
		}
	}
}

// find reads every file under dir and reports each secret found in raw
// bytes or in either base64 form.
func (s secrets) find(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for name, secret := range s {
			for form, b := range map[string][]byte{
				"raw":       secret,
				"base64url": []byte(base64.RawURLEncoding.EncodeToString(secret)),
				"base64":    []byte(base64.StdEncoding.EncodeToString(secret)),
			} {
				if bytes.Contains(data, b) {
					found = append(found, fmt.Sprintf("%s: %s in %s form", filepath.Base(path), name, form))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 || len(s) == 0 {
		t.Fatalf("looked for %d secrets in %d files", len(s), files)
	}
	return found
}

func (s secrets) check(t *testing.T, dir string) {
	t.Helper()
	for _, f := range s.find(t, dir) {
		t.Error(f)
	}
}

func TestNoSecretsOnDisk(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	alice, aliceDir := newVault(t)
	bob, bobDir := newVault(t)
	s := secrets{}

	is.withdraw(t, alice, "w1", 100, 100, 50, 20, 10)
	if _, err := alice.HolderKeys(ctx, "w2", 2); err != nil { // a pending withdrawal
		t.Fatal(err)
	}
	is.refill(t, bob, 3)
	s.keys(t, alice)
	s.keys(t, bob)

	coins, err := alice.Select(ctx, 150, "EUR")
	if err != nil {
		t.Fatal(err)
	}
	is.pay(t, alice, bob, coins)
	is.pay(t, bob, alice, held(t, bob)[:1])
	// One coin left pending-out.
	keys := is.refill(t, bob, 1)
	if _, err := alice.Purse("bob").Seal(ctx, held(t, alice)[:1], keys); err != nil {
		t.Fatal(err)
	}
	items, err := alice.DepositItems(ctx, "acct")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.MarkDeposited(ctx, []string{items[0].Sandbox.Coin.Data.Token}); err != nil {
		t.Fatal(err)
	}
	s.keys(t, alice)
	s.keys(t, bob)
	s.coins(t, alice)
	s.coins(t, bob)

	// The search works: it finds a serial written out in the clear.
	control := t.TempDir()
	token := held(t, bob)[0].Coin.Data.Token
	if err := os.WriteFile(filepath.Join(control, "leak"), []byte(`{"token":"`+token+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if len(s.find(t, control)) != 1 {
		t.Fatal("the search missed a serial in the clear")
	}

	s.check(t, aliceDir)
	s.check(t, bobDir)
	alice.Close()
	bob.Close()
	s.check(t, aliceDir)
	s.check(t, bobDir)
}
