package vault

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/otpcash/otpcash/otp"
)

// Every one-time private key is one key record, found by its public key,
// and deleted once it can sign nothing more of use: when its coin is sealed
// to a payee or deposited. Its state says what it is for.
const (
	keyWithdrawal  = "withdrawal"  // first holder of a coin being withdrawn
	keyUncertified = "uncertified" // exchange key waiting for the bank's certificate
	keyCertified   = "certified"   // exchange key that can be offered to a payer
	keyPromised    = "promised"    // exchange key handed to one payer for good (PromiseExchangeKeys)
	keyHolder      = "holder"      // holds a coin of this vault
)

type keyRecord struct {
	Seed []byte           `json:"seed" cbor:"1,keyasint"`
	Cert *otp.ExchangeKey `json:"cert,omitempty" cbor:"2,keyasint,omitempty"`
	// Agreement is the change agreement a promised key was handed out
	// under, if any.
	Agreement []byte `json:"agreement,omitempty" cbor:"3,keyasint,omitempty"`
	// Due is the coin the agreement's payer proposed to seal to this key:
	// set with Agreement, and checked when a coin arrives on the key.
	Due *due `json:"due,omitempty" cbor:"4,keyasint,omitempty"`
	// Request is the payment request a promised key was handed out for:
	// a coin arrives on it only in a payment token for that request
	// (ReceiveRequest), never in a live session.
	Request string `json:"request,omitempty" cbor:"5,keyasint,omitempty"`
}

// maxKeys bounds one request for new keys, so a wrong count cannot exhaust
// memory or stall the vault.
const maxKeys = 1 << 16

func checkCount(n int) error {
	if n < 1 || n > maxKeys {
		return fmt.Errorf("asked for %d keys, want 1..%d", n, maxKeys)
	}
	return nil
}

// newKey makes and stores a one-time key in state.
func (t *tx) newKey(state string) (ed25519.PublicKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	pub, k := newKeyRecord(seed)
	return pub, t.put(kindKey, t.s.id(kindKey, pub), state, nil, k)
}

// newKeyRecord is the one way a seed enters a key record: the public key
// the record is stored under is derived here, from the seed, and from
// nowhere else. Every other write of a key record rewrites one read under
// the same row id (a change of state, a certificate, rekey), and a key
// record's row id, a MAC of its public key, is in the associated data of
// its encryption, so it opens only under the key it was written for. So
// a record opened under a public key holds that key's seed, and
// privateKey can join the two without deriving the public half again.
func newKeyRecord(seed []byte) (ed25519.PublicKey, keyRecord) {
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	return pub, keyRecord{Seed: seed}
}

// key loads the key record for the text public key pub.
func (t *tx) key(pub string) (id []byte, k keyRecord, state string, err error) {
	if id, err = t.keyID(pub); err != nil {
		return nil, k, "", err
	}
	state, err = t.get(kindKey, id, &k)
	if errors.Is(err, ErrNotFound) {
		err = errNoKey(pub)
	}
	return id, k, state, err
}

// keyID is the row key of the key record for the text public key pub. It
// does not check that pub is a curve point of large order (otp.DecodeKey):
// the vault stores only keys it made, so a bad one finds no record, and
// every key that comes from a peer was decoded when its certificate was
// verified. The check costs some 3.7 us, a fifth of an Ed25519 signature,
// and a payment looks up a key per coin on each side.
func (t *tx) keyID(pub string) ([]byte, error) {
	raw, err := otp.KeyBytes(pub)
	if err != nil {
		return nil, err
	}
	return t.s.id(kindKey, raw), nil
}

func errNoKey(pub string) error {
	return fmt.Errorf("key %.12s: %w: this vault never made it or has destroyed it", pub, ErrNotFound)
}

// holderPrivate returns the private key of the key record k, in state (""
// when there is none), which must be the holder key pub of a coin.
func holderPrivate(k *keyRecord, state, pub string) (ed25519.PrivateKey, error) {
	if err := checkHolderKey(state, pub); err != nil {
		return nil, err
	}
	return privateKey(k.Seed, pub)
}

// ErrKeyRecord reports a stored one-time key whose seed is not a seed.
var ErrKeyRecord = errors.New("key record does not hold a key")

// privateKey rebuilds the one-time private key of a key record from its
// seed and pub (text form), the public key the record was looked up by:
// the caller must pass that same key. otp.SignEd25519 signs with whatever
// public half it is handed, and two signatures of one message under two
// public halves give away the secret scalar; deriving the half from the
// seed would cost a scalar base multiplication per coin on each side of a
// payment. It is taken from pub because the record opened under pub's row
// id, and the vault writes a seed only under the key derived from it
// (newKeyRecord; docs/SECURITY.md).
func privateKey(seed []byte, pub string) (ed25519.PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("key %.12s: %w: a seed of %d bytes", pub, ErrKeyRecord, len(seed))
	}
	raw, err := otp.KeyBytes(pub)
	if err != nil {
		return nil, err
	}
	return append(append(make(ed25519.PrivateKey, 0, ed25519.PrivateKeySize), seed...), raw...), nil
}

// checkHolderKey checks that a key record in state ("" when there is
// none) is the holder key pub of a coin.
func checkHolderKey(state, pub string) error {
	switch state {
	case keyHolder:
		return nil
	case "":
		return errNoKey(pub)
	}
	return fmt.Errorf("key %.12s: %w: %s, not a coin's holder key", pub, ErrState, state)
}

// withdrawal is a withdrawal whose holder keys exist. It is pending until
// its coins are stored.
type withdrawal struct {
	ID   string   `json:"id" cbor:"1,keyasint"`
	Keys []string `json:"keys" cbor:"2,keyasint"`
	// Secret is the withdrawal's secret: the serials and blinding of its
	// coins are derived from it (otp.WithdrawalRand), so that asking the
	// bank again rebuilds the same blinded coins.
	Secret []byte `json:"secret" cbor:"3,keyasint"`
}

// withdrawalSecretSize is the size of a withdrawal's secret in bytes.
const withdrawalSecretSize = 32

const (
	withdrawalPending = "pending"
	withdrawalDone    = "done"
)

// HolderKeys returns the n first-holder keys of withdrawal withdrawalID,
// making and storing them the first time, so that a withdrawal interrupted
// after the bank was asked can be finished by asking again with the same
// id and keys. Asking again with a different n is an error wrapping
// ErrExists; n == 0 returns the keys of an existing withdrawal.
func (v *Vault) HolderKeys(ctx context.Context, withdrawalID string, n int) ([]ed25519.PublicKey, error) {
	if withdrawalID == "" {
		return nil, errors.New("holder keys: empty withdrawal id")
	}
	var pubs []ed25519.PublicKey
	err := v.update(ctx, func(t *tx) error {
		id := t.s.id(kindWithdrawal, []byte(withdrawalID))
		var w withdrawal
		_, err := t.get(kindWithdrawal, id, &w)
		switch {
		case err == nil:
			if n != 0 && n != len(w.Keys) {
				return fmt.Errorf("%w with %d keys, not %d", ErrExists, len(w.Keys), n)
			}
			for _, k := range w.Keys {
				pub, err := otp.DecodeKey(k)
				if err != nil {
					return err
				}
				pubs = append(pubs, pub)
			}
			return nil
		case !errors.Is(err, ErrNotFound):
			return err
		case n == 0:
			return ErrNotFound
		}
		if err := checkCount(n); err != nil {
			return err
		}
		w = withdrawal{ID: withdrawalID, Keys: make([]string, n), Secret: make([]byte, withdrawalSecretSize)}
		if _, err := rand.Read(w.Secret); err != nil {
			return err
		}
		for i := range n {
			pub, err := t.newKey(keyWithdrawal)
			if err != nil {
				return err
			}
			pubs = append(pubs, pub)
			w.Keys[i] = otp.EncodeKey(pub)
		}
		return t.put(kindWithdrawal, id, withdrawalPending, nil, w)
	})
	if err != nil {
		return nil, fmt.Errorf("holder keys of withdrawal %q: %w", withdrawalID, err)
	}
	return pubs, nil
}

// WithdrawalSecret returns the secret of withdrawal withdrawalID, made
// with its holder keys (HolderKeys), from which the wallet derives the
// serials and blinding of its coins (otp.WithdrawalRand).
func (v *Vault) WithdrawalSecret(ctx context.Context, withdrawalID string) ([]byte, error) {
	var w withdrawal
	err := v.update(ctx, func(t *tx) error {
		_, err := t.get(kindWithdrawal, t.s.id(kindWithdrawal, []byte(withdrawalID)), &w)
		return err
	})
	if err == nil && len(w.Secret) != withdrawalSecretSize {
		err = fmt.Errorf("%w: made before blind withdrawals, it has no secret", ErrState)
	}
	if err != nil {
		return nil, fmt.Errorf("secret of withdrawal %q: %w", withdrawalID, err)
	}
	return w.Secret, nil
}

// PendingWithdrawals returns the ids of withdrawals with keys but no coins
// yet: those to finish by asking the bank again.
func (v *Vault) PendingWithdrawals(ctx context.Context) ([]string, error) {
	var ids []string
	err := v.update(ctx, func(t *tx) error {
		ws, err := list[withdrawal](t, kindWithdrawal, byState, withdrawalPending)
		for _, w := range ws {
			ids = append(ids, w.val.ID)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pending withdrawals: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// ForgetWithdrawal deletes a pending withdrawal and its keys, for when the
// bank refused it and debited nothing. A withdrawal whose coins are stored
// cannot be forgotten (ErrState).
func (v *Vault) ForgetWithdrawal(ctx context.Context, withdrawalID string) error {
	err := v.update(ctx, func(t *tx) error { return t.forgetWithdrawal(withdrawalID) })
	if err != nil {
		return fmt.Errorf("forget withdrawal %q: %w", withdrawalID, err)
	}
	return nil
}

func (t *tx) forgetWithdrawal(withdrawalID string) error {
	id := t.s.id(kindWithdrawal, []byte(withdrawalID))
	var w withdrawal
	state, err := t.get(kindWithdrawal, id, &w)
	if err != nil {
		return err
	}
	if state != withdrawalPending {
		return fmt.Errorf("%w: its coins are stored", ErrState)
	}
	for _, pub := range w.Keys {
		kid, _, _, err := t.key(pub)
		if err != nil {
			return err
		}
		if err := t.delete(kindKey, kid); err != nil {
			return err
		}
	}
	return t.delete(kindWithdrawal, id)
}

// NewExchangeKeys makes and stores n one-time keys for payers to transfer
// coins to. They can be offered once the bank has certified them (see
// AddExchangeKeys).
func (v *Vault) NewExchangeKeys(ctx context.Context, n int) ([]ed25519.PublicKey, error) {
	if err := checkCount(n); err != nil {
		return nil, fmt.Errorf("new exchange keys: %w", err)
	}
	pubs := make([]ed25519.PublicKey, n)
	err := v.update(ctx, func(t *tx) error {
		for i := range pubs {
			var err error
			if pubs[i], err = t.newKey(keyUncertified); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("new exchange keys: %w", err)
	}
	return pubs, nil
}

// AddExchangeKeys attaches the bank's certificates to keys made by
// NewExchangeKeys. The caller has verified them. A certificate for a key
// this vault did not make is an error and nothing is stored.
func (v *Vault) AddExchangeKeys(ctx context.Context, keys []otp.ExchangeKey) error {
	err := v.update(ctx, func(t *tx) error {
		for i := range keys {
			id, k, state, err := t.key(keys[i].Pub)
			if err != nil {
				return fmt.Errorf("exchange key: %w", err)
			}
			if state != keyUncertified && state != keyCertified {
				return fmt.Errorf("exchange key %.12s: %w: the key is a %s key", keys[i].Pub, ErrState, state)
			}
			k.Cert = &keys[i]
			if err := t.put(kindKey, id, keyCertified, nil, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add exchange keys: %w", err)
	}
	return nil
}

// offerable returns the certified exchange keys no coin has arrived on and
// that are still valid, those expiring first first. Expired keys are kept:
// a payer whose clock is behind may still have sealed a coin to one. Every
// session asks for them, twice: they are remembered (t.mem), kept up to
// date through the vault's own writes, and listed again only when another
// process may have changed them, decrypting then only the keys certified
// since. The slice is the memo's: a caller takes keys with firstKeys.
func (t *tx) offerable() ([]otp.ExchangeKey, error) {
	at, sameConn, err := t.dataVersion()
	if err != nil {
		return nil, err
	}
	m := t.mem
	if !m.certsWhole || len(t.keyWrites) > 0 || at != m.certsAt || !sameConn {
		certs, _, err := remembered(t, kindKey, keyCertified, m.certs, certOf)
		if err != nil {
			return nil, err
		}
		// Whole as this transaction sees it: Vault.update forgets it if the
		// transaction wrote a key record and does not commit.
		m.certs, m.offer, m.certsWhole, m.certsAt = certs, sortedCerts(certs), true, at
	}
	valid := sort.Search(len(m.offer), func(i int) bool { return t.now.Before(m.offer[i].Expires) })
	return m.offer[valid:len(m.offer):len(m.offer)], nil
}

// certOf is what the memo keeps of a certified key record: its
// certificate, public data.
func certOf(r *keyRecord) otp.ExchangeKey {
	if r.Cert == nil {
		return otp.ExchangeKey{} // expired at the zero time: never offered
	}
	return *r.Cert
}

// sortedCerts returns the certificates of certs, those expiring first
// first, then by key.
func sortedCerts(certs map[string]versioned[otp.ExchangeKey]) []otp.ExchangeKey {
	out := make([]otp.ExchangeKey, 0, len(certs))
	for _, c := range certs {
		out = append(out, c.val)
	}
	slices.SortFunc(out, func(a, b otp.ExchangeKey) int {
		if c := a.Expires.Compare(b.Expires); c != 0 {
			return c
		}
		return strings.Compare(a.Pub, b.Pub)
	})
	return out
}

// rememberKeyWrites brings the remembered offerable keys up to date with
// the key records t wrote, once t has committed: a key a coin arrived on
// leaves them, a key certified joins them, and the next session need not
// list every key again. It reports false if it could not read a record it
// wrote; the caller then forgets them.
func (t *tx) rememberKeyWrites() bool {
	m := t.mem
	if !m.certsWhole || len(t.keyWrites) == 0 {
		return true // nothing remembered, or nothing to change in it
	}
	gone := make(map[string]bool)
	joined := false
	for id, w := range t.keyWrites {
		if old, ok := m.certs[id]; ok {
			delete(m.certs, id)
			gone[old.val.Pub] = true
		}
		if w.state != keyCertified {
			continue
		}
		var r keyRecord
		if err := t.s.open(kindKey, w.id, w.state, w.ref, w.blob, &r); err != nil {
			return false
		}
		m.certs[id] = versioned[otp.ExchangeKey]{w.version(), certOf(&r)}
		joined = true
	}
	if joined || gone[""] {
		m.offer = sortedCerts(m.certs)
	} else {
		// Only keys gone (a payment received): the order stands. A new
		// slice, as callers of offerable in t may still hold the old one.
		m.offer = slices.DeleteFunc(slices.Clone(m.offer), func(k otp.ExchangeKey) bool { return gone[k.Pub] })
	}
	return true
}

// firstKeys returns copies of the first n offerable keys, down to their
// attributes, for a caller to keep or change; ErrNoExchangeKeys if there
// are fewer.
func (t *tx) firstKeys(n int) ([]otp.ExchangeKey, error) {
	all, err := t.offerable()
	if err != nil {
		return nil, err
	}
	if len(all) < n {
		return nil, fmt.Errorf("%w: have %d, want %d", ErrNoExchangeKeys, len(all), n)
	}
	out := slices.Clone(all[:n])
	for i := range out {
		out[i].Attrs = maps.Clone(out[i].Attrs)
	}
	return out, nil
}

// OfferExchangeKeys returns n certified, unused, unexpired exchange keys
// for a payer; ErrNoExchangeKeys if there are fewer. Offering is not
// recorded: a key stays usable until a coin arrives on it, so keys offered
// to a payer who walked away are not wasted. The caller must not offer the
// same keys in two sessions at once, since a second coin on a key is
// refused.
func (v *Vault) OfferExchangeKeys(ctx context.Context, n int) ([]otp.ExchangeKey, error) {
	if n < 1 {
		return nil, fmt.Errorf("offer exchange keys: asked for %d", n)
	}
	var keys []otp.ExchangeKey
	err := v.update(ctx, func(t *tx) error {
		var err error
		keys, err = t.firstKeys(n)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("offer exchange keys: %w", err)
	}
	return keys, nil
}

// ExchangeKeyCount returns how many exchange keys could be offered now:
// how many coins the vault can receive before it must refill.
func (v *Vault) ExchangeKeyCount(ctx context.Context) (int, error) {
	var n int
	err := v.update(ctx, func(t *tx) error {
		keys, err := t.offerable()
		n = len(keys)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("exchange key count: %w", err)
	}
	return n, nil
}
