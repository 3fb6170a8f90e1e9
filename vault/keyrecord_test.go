package vault

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/otpcash/otpcash/otp"
)

func TestPrivateKey(t *testing.T) {
	seed := sha256.Sum256([]byte("key a"))
	want := ed25519.NewKeyFromSeed(seed[:])
	pub := otp.EncodeKey(want.Public().(ed25519.PublicKey))

	priv, err := privateKey(seed[:], pub)
	if err != nil || !bytes.Equal(priv, want) {
		t.Fatalf("privateKey(seed a, pub a) = %x, %v; want key a", priv, err)
	}
	for _, tc := range []struct {
		name string
		seed []byte
	}{
		{"short seed", seed[:31]},
		{"long seed", append(seed[:], 0)},
		{"no seed", nil},
	} {
		if priv, err := privateKey(tc.seed, pub); !errors.Is(err, ErrKeyRecord) {
			t.Errorf("%s: privateKey = %x, %v; want %v", tc.name, priv, err, ErrKeyRecord)
		}
	}
}

// TestKeyRecordsHoldTheirSeed checks what privateKey relies on: every key
// record, whichever way the vault wrote it (made for a withdrawal or for
// payers, certified, promised, arrived on, and, on the TPM vault,
// re-encrypted by a PIN change), holds the seed of the public key it is
// stored under.
func TestKeyRecordsHoldTheirSeed(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	payer, _ := newVault(t)
	payee, _ := newVault(t)
	var pubs []string
	coins := is.withdraw(t, payer, "w1", 100, 100)
	for _, c := range coins {
		pubs = append(pubs, c.Data.Holder)
	}
	if _, err := payee.NewExchangeKeys(ctx, 1); err != nil { // uncertified
		t.Fatal(err)
	}
	if _, err := payee.HolderKeys(ctx, "w2", 1); err != nil { // a withdrawal's, pending
		t.Fatal(err)
	}
	for _, k := range is.refill(t, payee, 2) {
		pubs = append(pubs, k.Pub)
	}
	promised, err := payee.PromiseExchangeKeys(ctx, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	pubs = append(pubs, promised[0].Pub)
	for _, sb := range is.pay(t, payer, payee, held(t, payer)[:1]) { // the exchange key now holds it
		pubs = append(pubs, sb.Holder())
	}
	pending, err := payee.PendingWithdrawals(ctx)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending withdrawals %v, %v", pending, err)
	}
	w2, err := payee.HolderKeys(ctx, "w2", 0)
	if err != nil {
		t.Fatal(err)
	}
	pubs = append(pubs, otp.EncodeKey(w2[0]))
	if err := payee.ChangePIN(ctx, testPIN, []byte("a new PIN")); err != nil {
		t.Fatal(err)
	}

	checked := 0
	for _, v := range []*Vault{payer, payee} {
		err := v.update(ctx, func(tx *tx) error {
			for _, pub := range pubs {
				_, k, state, err := tx.key(pub)
				if errors.Is(err, ErrNotFound) {
					continue // the other vault's, or destroyed by the payment
				}
				if err != nil {
					return err
				}
				got := ed25519.NewKeyFromSeed(k.Seed).Public().(ed25519.PublicKey)
				if otp.EncodeKey(got) != pub {
					t.Errorf("%s key record of %.12s holds the seed of %.12s", state, pub, otp.EncodeKey(got))
				}
				checked++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The sealed coin's holder key is destroyed; every other key is found.
	if want := len(pubs) - 1; checked != want {
		t.Fatalf("checked %d key records, want %d", checked, want)
	}
}

// copyKeyRecord stores, as key pub's record, the encrypted record of key
// other, as someone who can write the vault's file but has not its keys
// could: were it opened, the payment would sign with other's seed and
// pub's public half.
func copyKeyRecord(t *testing.T, v *Vault, pub, other string) {
	t.Helper()
	err := v.update(context.Background(), func(tx *tx) error {
		from, err := tx.keyID(other)
		if err != nil {
			return err
		}
		to, err := tx.keyID(pub)
		if err != nil {
			return err
		}
		var state string
		var ref, blob []byte
		if err := tx.stmt(getRecord).QueryRowContext(tx.ctx, kindKey, from).Scan(&state, &ref, &blob); err != nil {
			return err
		}
		return tx.putSealed(kindKey, to, state, ref, blob)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A key record moved to another key's row does not open, so the payment
// stops on the payer's side (sealing) and the payee's (receiving), with
// nothing changed, instead of signing with a seed and a public half that
// disagree.
func TestKeyRecordMovedRefused(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	payer, _ := newVault(t)
	payee, _ := newVault(t)
	coins := is.withdraw(t, payer, "w1", 100, 100)

	copyKeyRecord(t, payer, coins[0].Data.Holder, coins[1].Data.Holder)
	is.refill(t, payee, 2)
	keys, err := payee.OfferExchangeKeys(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	coin := held(t, payer)
	for i := range coin {
		if coin[i].Holder() == coins[0].Data.Holder {
			coin = coin[i : i+1]
			break
		}
	}
	before := states(t, payer)
	if _, err := payer.Purse("payee").Seal(ctx, coin, keys[:1]); err == nil || !strings.Contains(err.Error(), "tampered") {
		t.Fatalf("Seal with a moved holder key record = %v; want it refused as tampered with", err)
	}
	if after := states(t, payer); !reflect.DeepEqual(before, after) {
		t.Fatalf("payer's coins changed: %v, then %v", before, after)
	}

	// The payee's side: an honest payer seals to a key whose row in the
	// payee's vault holds another key's record.
	honest, _ := newVault(t)
	is.withdraw(t, honest, "w2", 100)
	sealed, err := honest.Purse("payee").Seal(ctx, held(t, honest), keys[:1])
	if err != nil {
		t.Fatal(err)
	}
	copyKeyRecord(t, payee, keys[0].Pub, keys[1].Pub)
	before = states(t, payee)
	if _, _, err := payee.Receive(ctx, "payer", sealed); err == nil || !strings.Contains(err.Error(), "tampered") {
		t.Fatalf("Receive on a moved exchange key record = %v; want it refused as tampered with", err)
	}
	if after := states(t, payee); !reflect.DeepEqual(before, after) {
		t.Fatalf("payee's coins changed: %v, then %v", before, after)
	}
}

// BenchmarkPrivateKey measures rebuilding a one-time key from its record,
// once per coin on each side of a payment.
func BenchmarkPrivateKey(b *testing.B) {
	seed := sha256.Sum256([]byte("key a"))
	pub := otp.EncodeKey(ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey))
	for b.Loop() {
		if _, err := privateKey(seed[:], pub); err != nil {
			b.Fatal(err)
		}
	}
}
