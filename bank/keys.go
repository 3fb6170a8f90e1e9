package bank

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/otpcash/otpcash/bank/storage"
	"github.com/otpcash/otpcash/otp"
)

// useRoot marks the catalogue's root key in the store; coin and exchange
// keys are stored under their otp.KeyUse.
const useRoot = "root"

// rootEntry is the stored description of the root key. It records the
// issuer name, so a store cannot be served under another name, which would
// make every coin it issued unknown to wallets.
type rootEntry struct {
	Issuer string `json:"issuer"`
}

// keyring is an immutable snapshot of the bank's keys.
type keyring struct {
	cat      *otp.Catalogue
	catJSON  []byte
	verifier *otp.Verifier // trusts every key the bank ever had
	coin     *otp.Signer   // signs coins now
	exchange *otp.Signer   // certifies exchange keys now
	root     ed25519.PrivateKey
}

// signs reports whether the signer may sign at now.
func signs(s *otp.Signer, now time.Time) bool {
	return s != nil && !now.Before(s.Key.NotBefore) && now.Before(s.Key.Expires)
}

// current reports whether the keyring has keys that sign at now and match
// the configured coin type.
func (k *keyring) current(cfg Config, now time.Time) bool {
	return signs(k.coin, now) && signs(k.exchange, now) &&
		k.coin.Key.Value == cfg.CoinValue && k.coin.Key.Currency == cfg.Currency
}

// keyring returns the keys to use at now. The first call on a new store
// generates the keys; later, a key past its signing period (or a coin key
// for another coin type, after a configuration change) is replaced by a
// fresh one and the catalogue re-signed.
func (b *Bank) keyring(ctx context.Context, now time.Time) (*keyring, error) {
	if k := b.keys.Load(); k != nil && k.current(b.cfg, now) {
		return k, nil
	}
	b.rotating.Lock()
	defer b.rotating.Unlock()
	if k := b.keys.Load(); k != nil && k.current(b.cfg, now) {
		return k, nil
	}
	var ring *keyring
	err := b.st.Update(ctx, func(tx storage.Tx) error {
		stored, err := tx.IssuerKeys(ctx)
		if err != nil {
			return err
		}
		for {
			ring, err = b.loadKeyring(stored)
			if err != nil {
				return err
			}
			if ring != nil && ring.current(b.cfg, now) {
				return nil
			}
			// One missing key per round: the root first, as everything
			// else is published under it.
			k, err := b.newKey(ring, now)
			if err != nil {
				return err
			}
			if err := tx.InsertIssuerKey(ctx, k); err != nil {
				return err
			}
			b.log.InfoContext(ctx, "issuer key generated", "keyId", k.KeyID, "use", k.Use)
			stored = append(stored, k)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("issuer keys: %w", err)
	}
	b.keys.Store(ring)
	return ring, nil
}

// newKey generates the first key the keyring lacks at now.
func (b *Bank) newKey(ring *keyring, now time.Time) (storage.IssuerKey, error) {
	now = now.Truncate(time.Second)
	if ring == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return storage.IssuerKey{}, err
		}
		entry, err := json.Marshal(rootEntry{Issuer: b.cfg.Issuer})
		if err != nil {
			return storage.IssuerKey{}, err
		}
		return storage.IssuerKey{KeyID: useRoot, Use: useRoot, Seed: priv.Seed(), Entry: entry, Created: now}, nil
	}
	k := otp.IssuerKey{Use: otp.UseExchange, NotBefore: now, Expires: now.Add(b.cfg.CoinLifetime)}
	if !signs(ring.exchange, now) {
		// Exchange keys it certifies are valid for ExchangeKeyLifetime.
		k.DepositUntil = k.Expires.Add(b.cfg.ExchangeKeyLifetime)
	} else {
		// Coins it signs are payable for CoinLifetime, then depositable
		// for DepositGrace.
		k.Use, k.Value, k.Currency = otp.UseCoin, b.cfg.CoinValue, b.cfg.Currency
		k.DepositUntil = k.Expires.Add(b.cfg.CoinLifetime + b.cfg.DepositGrace)
	}
	s, priv, err := otp.GenerateSigner(b.cfg.Issuer, k)
	if err != nil {
		return storage.IssuerKey{}, err
	}
	entry, err := json.Marshal(s.Key)
	if err != nil {
		return storage.IssuerKey{}, err
	}
	return storage.IssuerKey{KeyID: s.Key.KeyID, Use: string(k.Use), Seed: priv.Seed(), Entry: entry, Created: now}, nil
}

// loadKeyring builds the keyring from the stored keys, oldest first; nil
// when there are none. The newest key of each use is the one that signs.
func (b *Bank) loadKeyring(stored []storage.IssuerKey) (*keyring, error) {
	if len(stored) == 0 {
		return nil, nil
	}
	if stored[0].Use != useRoot {
		return nil, fmt.Errorf("first stored key %q is not the root key", stored[0].KeyID)
	}
	var root rootEntry
	if err := json.Unmarshal(stored[0].Entry, &root); err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	if root.Issuer != b.cfg.Issuer {
		return nil, fmt.Errorf("the store belongs to issuer %q, not %q", root.Issuer, b.cfg.Issuer)
	}
	ring := &keyring{}
	cat := &otp.Catalogue{Issuer: b.cfg.Issuer, Issued: stored[len(stored)-1].Created, Keys: []otp.IssuerKey{}}
	for _, sk := range stored[1:] {
		var k otp.IssuerKey
		if err := json.Unmarshal(sk.Entry, &k); err != nil {
			return nil, fmt.Errorf("key %q: %w", sk.KeyID, err)
		}
		s, err := otp.NewSigner(b.cfg.Issuer, k, ed25519.NewKeyFromSeed(sk.Seed))
		if err != nil {
			return nil, err
		}
		switch k.Use {
		case otp.UseCoin:
			ring.coin = s
		case otp.UseExchange:
			ring.exchange = s
		default:
			return nil, fmt.Errorf("key %q: unknown use %q", sk.KeyID, k.Use)
		}
		cat.Keys = append(cat.Keys, k)
	}
	ring.root = ed25519.NewKeyFromSeed(stored[0].Seed)
	if err := cat.Sign(ring.root); err != nil {
		return nil, err
	}
	catJSON, err := json.Marshal(cat)
	if err != nil {
		return nil, err
	}
	ring.cat, ring.catJSON, ring.verifier = cat, catJSON, otp.NewVerifier(cat)
	return ring, nil
}
