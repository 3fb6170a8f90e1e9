package vault

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"reflect"
	"testing"

	"github.com/otpcash/otpcash/otp"
)

func TestPrivateKeyFromSeed(t *testing.T) {
	seedA, seedB := sha256.Sum256([]byte("key a")), sha256.Sum256([]byte("key b"))
	a, b := ed25519.NewKeyFromSeed(seedA[:]), ed25519.NewKeyFromSeed(seedB[:])
	pubA, pubB := otp.EncodeKey(a.Public().(ed25519.PublicKey)), otp.EncodeKey(b.Public().(ed25519.PublicKey))

	priv, err := privateKey(seedA[:], pubA)
	if err != nil || !bytes.Equal(priv, a) {
		t.Fatalf("privateKey(seed a, pub a) = %x, %v; want key a", priv, err)
	}
	// Signing with seed a and public half b would give, for one message, a
	// second signature whose difference from the first reveals a's scalar.
	for _, tc := range []struct {
		name string
		seed []byte
		pub  string
	}{
		{"seed of another key", seedA[:], pubB},
		{"short seed", seedA[:31], pubA},
		{"no seed", nil, pubA},
	} {
		if priv, err := privateKey(tc.seed, tc.pub); !errors.Is(err, ErrKeyRecord) {
			t.Errorf("%s: privateKey = %x, %v; want %v", tc.name, priv, err, ErrKeyRecord)
		}
	}
}

// swapSeed stores, under the key record of pub, the seed of another key,
// as a corrupted or forged record would be.
func swapSeed(t *testing.T, v *Vault, pub string) {
	t.Helper()
	other := sha256.Sum256([]byte("another key"))
	err := v.update(context.Background(), func(tx *tx) error {
		id, k, state, err := tx.key(pub)
		if err != nil {
			return err
		}
		k.Seed = other[:]
		return tx.put(kindKey, id, state, nil, k)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A key record whose seed is not its key's stops the payment, on the
// payer's side (sealing) and the payee's (receiving), with nothing changed.
func TestKeyRecordMismatchRefused(t *testing.T) {
	ctx := context.Background()
	is := newIssuer(t)
	payer, _ := newVault(t)
	payee, _ := newVault(t)
	coins := is.withdraw(t, payer, "w1", 100)

	swapSeed(t, payer, coins[0].Data.Holder)
	is.refill(t, payee, 1)
	keys, err := payee.OfferExchangeKeys(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	before := states(t, payer)
	if _, err := payer.Purse("payee").Seal(ctx, held(t, payer), keys); !errors.Is(err, ErrKeyRecord) {
		t.Fatalf("Seal with a swapped holder seed = %v; want %v", err, ErrKeyRecord)
	}
	if after := states(t, payer); !reflect.DeepEqual(before, after) {
		t.Fatalf("payer's coins changed: %v, then %v", before, after)
	}

	// The payee's side: an honest payer seals to a key whose record the
	// payee's vault holds with another seed.
	honest, _ := newVault(t)
	is.withdraw(t, honest, "w2", 100)
	sealed, err := honest.Purse("payee").Seal(ctx, held(t, honest), keys)
	if err != nil {
		t.Fatal(err)
	}
	swapSeed(t, payee, keys[0].Pub)
	before = states(t, payee)
	if _, _, err := payee.Receive(ctx, "payer", sealed); !errors.Is(err, ErrKeyRecord) {
		t.Fatalf("Receive on a swapped exchange-key seed = %v; want %v", err, ErrKeyRecord)
	}
	if after := states(t, payee); !reflect.DeepEqual(before, after) {
		t.Fatalf("payee's coins changed: %v, then %v", before, after)
	}
}
