package bank

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/otpcash/otpcash/bank/storage"
	"github.com/otpcash/otpcash/internal/strictjson"
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
	verifier *otp.Verifier            // trusts every key the bank ever had
	blind    map[string]*otp.Signer   // every blind coin key, by key id
	newest   map[coinType]*otp.Signer // the newest blind coin key of each coin type
	exchange *otp.Signer              // certifies merchants' exchange keys now, in the clear
	anon     *otp.Signer              // certifies anonymous exchange keys now, blindly
	root     ed25519.PrivateKey
}

// signs reports whether the signer may sign at now.
func signs(s *otp.Signer, now time.Time) bool {
	return s != nil && !now.Before(s.Key.NotBefore) && now.Before(s.Key.Expires)
}

// coinType is what one blind coin key signs: coins of one program and
// value.
type coinType struct {
	program string
	value   int64
}

// current reports whether the keyring has an exchange key that signs at
// now and, for every configured program still running and every
// denomination, a blind coin key that signs at now the configured coin
// type.
func (k *keyring) current(cfg Config, now time.Time) bool {
	return signs(k.exchange, now) && signs(k.anon, now) && len(k.missing(cfg, now)) == 0
}

// missing returns the coin types of running programs without a current
// coin key.
func (k *keyring) missing(cfg Config, now time.Time) []coinType {
	var out []coinType
	for _, name := range cfg.Programs.Names() {
		def, _ := cfg.Programs.Get(name)
		if !def.Expires.IsZero() && !def.Expires.Truncate(time.Second).After(now) {
			continue // ended: its coins stay depositable under the old keys
		}
		for _, v := range cfg.Denominations {
			s := k.newest[coinType{name, v}]
			if !signs(s, now) || s.Key.Currency != cfg.Currency || !s.Key.CoinProgram().Equal(def.Program) {
				out = append(out, coinType{name, v})
			}
		}
	}
	return out
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
			// The root first, as everything else is published under
			// it, then the exchange key, then every missing coin key.
			keys, err := b.newKeys(ring, now)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := tx.InsertIssuerKey(ctx, k); err != nil {
					return err
				}
				b.log.InfoContext(ctx, "issuer key generated", "keyId", k.KeyID, "use", k.Use)
			}
			stored = append(stored, keys...)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("issuer keys: %w", err)
	}
	b.keys.Store(ring)
	return ring, nil
}

// newKeys generates the keys the keyring lacks at now: the root key if
// there is none, else the exchange key if it lacks one, else the blind
// exchange key if it lacks one, else every missing blind coin key, on all cores (an RSA-2048 key takes tens of
// milliseconds, and a bank has one per program and denomination).
func (b *Bank) newKeys(ring *keyring, now time.Time) ([]storage.IssuerKey, error) {
	now = now.Truncate(time.Second)
	if ring == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		entry, err := json.Marshal(rootEntry{Issuer: b.cfg.Issuer})
		if err != nil {
			return nil, err
		}
		return []storage.IssuerKey{{KeyID: useRoot, Use: useRoot, Seed: priv.Seed(), Entry: entry, Created: now}}, nil
	}
	k := otp.IssuerKey{Use: otp.UseExchange, NotBefore: now, Expires: now.Add(b.cfg.CoinLifetime)}
	if !signs(ring.exchange, now) {
		// Exchange keys it certifies are valid for ExchangeKeyLifetime.
		k.DepositUntil = k.Expires.Add(b.cfg.ExchangeKeyLifetime)
		s, priv, err := otp.GenerateSigner(b.cfg.Issuer, k)
		if err != nil {
			return nil, err
		}
		sk, err := storedKey(s, priv.Seed(), now)
		return []storage.IssuerKey{sk}, err
	}
	if !signs(ring.anon, now) {
		// A blind key certifies without seeing the expiry, so every key
		// it certifies expires at its depositUntil: from one to two
		// ExchangeKeyLifetimes after certification.
		k.Expires = now.Add(b.cfg.ExchangeKeyLifetime)
		k.DepositUntil = k.Expires.Add(b.cfg.ExchangeKeyLifetime)
		s, priv, err := otp.GenerateBlindSigner(b.cfg.Issuer, k, otp.Program{})
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		sk, err := storedKey(s, der, now)
		return []storage.IssuerKey{sk}, err
	}
	missing := ring.missing(b.cfg, now)
	keys := make([]storage.IssuerKey, len(missing))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, ct := range missing {
		g.Go(func() error {
			var err error
			keys[i], err = b.newCoinKey(ct, k, now)
			return err
		})
	}
	return keys, g.Wait()
}

// newCoinKey generates the blind coin key for ct, from the template k:
// the coins it signs are payable for CoinLifetime after its signing
// period (or until the program ends), then depositable for DepositGrace.
func (b *Bank) newCoinKey(ct coinType, k otp.IssuerKey, now time.Time) (storage.IssuerKey, error) {
	def, err := b.program(ct.program, now)
	if err != nil {
		return storage.IssuerKey{}, err
	}
	k.Use, k.Value, k.Currency = otp.UseCoin, ct.value, b.cfg.Currency
	k.PayableUntil = k.Expires.Add(b.cfg.CoinLifetime).Truncate(time.Second)
	if !def.Expires.IsZero() && def.Expires.Before(k.PayableUntil) {
		k.PayableUntil = def.Expires.Truncate(time.Second)
		if k.PayableUntil.Before(k.Expires) {
			k.Expires = k.PayableUntil
		}
	}
	k.DepositUntil = k.PayableUntil.Add(b.cfg.DepositGrace)
	s, priv, err := otp.GenerateBlindSigner(b.cfg.Issuer, k, def.Program)
	if err != nil {
		return storage.IssuerKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storage.IssuerKey{}, err
	}
	return storedKey(s, der, now)
}

// storedKey is the stored form of the new key s, with its private key
// (an Ed25519 seed, or a PKCS #8 RSA key).
func storedKey(s *otp.Signer, private []byte, now time.Time) (storage.IssuerKey, error) {
	entry, err := json.Marshal(s.Key)
	if err != nil {
		return storage.IssuerKey{}, err
	}
	return storage.IssuerKey{KeyID: s.Key.KeyID, Use: string(s.Key.Use), Seed: private, Entry: entry, Created: now}, nil
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
	if err := strictjson.Unmarshal(stored[0].Entry, &root); err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	if root.Issuer != b.cfg.Issuer {
		return nil, fmt.Errorf("the store belongs to issuer %q, not %q", root.Issuer, b.cfg.Issuer)
	}
	ring := &keyring{blind: map[string]*otp.Signer{}, newest: map[coinType]*otp.Signer{}}
	cat := &otp.Catalogue{Issuer: b.cfg.Issuer, Issued: stored[len(stored)-1].Created, Keys: []otp.IssuerKey{},
		MaxOfflineValue: b.cfg.MaxOfflineValue, MaxOfflineSeconds: int64(b.cfg.MaxOffline / time.Second),
		MaxHops: int64(b.cfg.MaxHops)}
	for _, sk := range stored[1:] {
		var k otp.IssuerKey
		if err := strictjson.Unmarshal(sk.Entry, &k); err != nil {
			return nil, fmt.Errorf("key %q: %w", sk.KeyID, err)
		}
		s, err := loadSigner(b.cfg.Issuer, k, sk.Seed)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", sk.KeyID, err)
		}
		switch {
		case k.Use == otp.UseCoin && k.Alg == otp.AlgBlindRSA:
			ring.blind[k.KeyID], ring.newest[coinType{k.Program, k.Value}] = s, s
		case k.Use == otp.UseCoin:
			// An Ed25519 coin key of before blind issuance: its coins
			// stay depositable, it signs no more.
		case k.Use == otp.UseExchange && k.Alg == otp.AlgBlindRSA:
			ring.anon = s
		case k.Use == otp.UseExchange:
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

// loadSigner makes the signer of the stored key k with private key
// private, by k's algorithm.
func loadSigner(issuer string, k otp.IssuerKey, private []byte) (*otp.Signer, error) {
	switch k.Alg {
	case otp.AlgEd25519:
		if len(private) != ed25519.SeedSize {
			return nil, fmt.Errorf("Ed25519 seed of %d bytes", len(private))
		}
		return otp.NewSigner(issuer, k, ed25519.NewKeyFromSeed(private))
	case otp.AlgBlindRSA:
		priv, err := x509.ParsePKCS8PrivateKey(private)
		if err != nil {
			return nil, err
		}
		rsaPriv, ok := priv.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("a %T, not an RSA key", priv)
		}
		return otp.NewBlindSigner(issuer, k, rsaPriv)
	}
	return nil, fmt.Errorf("%w %q", otp.ErrAlgorithm, k.Alg)
}
