package otp

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"math"
	"time"
)

// KeyUse says what an issuer key signs.
type KeyUse string

const (
	UseCoin     KeyUse = "coin"     // signs coins of one value and currency
	UseExchange KeyUse = "exchange" // certifies payees' exchange keys
)

// IssuerKey is one entry of the key catalogue.
type IssuerKey struct {
	KeyID    string `json:"keyId"`
	Alg      string `json:"alg"`
	Public   string `json:"public"`
	Use      KeyUse `json:"use"`
	Value    int64  `json:"value,omitempty"`    // coin keys: the value of every coin signed
	Currency string `json:"currency,omitempty"` // coin keys: the currency of every coin signed
	// Blind coin keys (AlgBlindRSA) sign one coin type: besides value and
	// currency, the program (name, steps and conditions), which every coin
	// signed carries, and the time until which every coin signed is
	// payable. The bank cannot see these fields when it signs, so the key
	// binds them.
	Program      string    `json:"program,omitempty"`
	CallMethod   []Step    `json:"callMethod,omitempty"`
	Conditions   []string  `json:"conditions,omitempty"`
	PayableUntil time.Time `json:"payableUntil,omitzero"`
	NotBefore    time.Time `json:"notBefore"`
	Expires      time.Time `json:"expires"`      // signs until then
	DepositUntil time.Time `json:"depositUntil"` // coin keys: its coins are accepted for deposit until then
}

// Catalogue is an issuer's signed list of keys. Wallets pin the root key
// when they are set up and accept later catalogues only under it.
//
// It may also carry the issuer's offline limits, which wallets enforce.
// They are omitted when zero (no limit), so catalogues signed before the
// limits existed keep their signed form.
type Catalogue struct {
	SchemaVersion int         `json:"schemaVersion"`
	Issuer        string      `json:"issuer"`
	Root          string      `json:"root"`
	Issued        time.Time   `json:"issued"`
	Keys          []IssuerKey `json:"keys"`
	// MaxOfflineValue is the most value, in minor units, a wallet may
	// hold: a payee refuses a payment that would take it beyond.
	MaxOfflineValue int64 `json:"maxOfflineValue,omitempty"`
	// MaxOfflineSeconds is the longest a wallet may go without fetching
	// a fresh revocation list from the issuer: beyond it the wallet stops
	// paying and only receives, and payees refuse its coins.
	MaxOfflineSeconds int64 `json:"maxOfflineSeconds,omitempty"`
	// MaxHops is the most transfers a coin may have made, counting the
	// one to the payee, for a wallet to take it offline: a longer chain
	// is longer to verify and more likely hides a copied coin, so a
	// payee refuses it and its holder deposits or re-denominates it
	// instead.
	MaxHops   int64     `json:"maxHops,omitempty"`
	Signature Signature `json:"signature"`
}

type unsignedCatalogue struct {
	SchemaVersion     int         `json:"schemaVersion"`
	Issuer            string      `json:"issuer"`
	Root              string      `json:"root"`
	Issued            time.Time   `json:"issued"`
	Keys              []IssuerKey `json:"keys"`
	MaxOfflineValue   int64       `json:"maxOfflineValue,omitempty"`
	MaxOfflineSeconds int64       `json:"maxOfflineSeconds,omitempty"`
	MaxHops           int64       `json:"maxHops,omitempty"`
}

func (c *Catalogue) payload() ([]byte, error) {
	return Canonical(unsignedCatalogue{c.SchemaVersion, c.Issuer, c.Root, c.Issued, c.Keys, c.MaxOfflineValue, c.MaxOfflineSeconds, c.MaxHops})
}

// MaxOffline is MaxOfflineSeconds as a duration; zero: no limit.
func (c *Catalogue) MaxOffline() time.Duration {
	return time.Duration(c.MaxOfflineSeconds) * time.Second
}

// Sign signs the catalogue with the issuer's root key, setting Root.
func (c *Catalogue) Sign(root ed25519.PrivateKey) error {
	c.SchemaVersion = SchemaVersion
	c.Root = EncodeKey(root.Public().(ed25519.PublicKey))
	p, err := c.payload()
	if err != nil {
		return fmt.Errorf("sign catalogue: %w", err)
	}
	c.Signature = Signature{Alg: AlgEd25519, Value: sign(root, labelCatalogue, p)}
	return nil
}

// Verify checks the catalogue's signature under the pinned root key. An
// empty pinned key means trust on first use: the catalogue's own root.
func (c *Catalogue) Verify(pinnedRoot string) error {
	if c.SchemaVersion != SchemaVersion {
		return fmt.Errorf("catalogue: %w: %d", ErrVersion, c.SchemaVersion)
	}
	if pinnedRoot != "" && !equalText(pinnedRoot, c.Root) {
		return fmt.Errorf("catalogue of %q: %w: root key differs from the pinned one", c.Issuer, ErrUnknownIssuer)
	}
	// A limit a wallet would read as none (negative) or as something
	// else (a duration that overflows) is the issuer's mistake: refuse it.
	if c.MaxOfflineValue < 0 || c.MaxOfflineSeconds < 0 || c.MaxOfflineSeconds > int64(math.MaxInt64/time.Second) || c.MaxHops < 0 {
		return fmt.Errorf("catalogue of %q: %w: maxOfflineValue %d, maxOfflineSeconds %d, maxHops %d", c.Issuer, ErrLimits, c.MaxOfflineValue, c.MaxOfflineSeconds, c.MaxHops)
	}
	if c.Signature.Alg != AlgEd25519 {
		return fmt.Errorf("catalogue: %w %q", ErrAlgorithm, c.Signature.Alg)
	}
	root, err := DecodeKey(c.Root)
	if err != nil {
		return fmt.Errorf("catalogue root: %w", err)
	}
	p, err := c.payload()
	if err != nil {
		return fmt.Errorf("catalogue: %w", err)
	}
	if err := verify(root, c.Signature.Value, labelCatalogue, p); err != nil {
		return fmt.Errorf("catalogue of %q: %w", c.Issuer, err)
	}
	for i := range c.Keys {
		k := &c.Keys[i]
		switch k.Alg {
		case AlgEd25519:
			if k.Program != "" || k.CallMethod != nil || k.Conditions != nil || !k.PayableUntil.IsZero() {
				return fmt.Errorf("catalogue key %q: %w: coin type fields on an %s key", k.KeyID, ErrKeyMismatch, k.Alg)
			}
		case AlgBlindRSA:
			if err := checkBlindKey(k); err != nil {
				return fmt.Errorf("catalogue key %q: %w", k.KeyID, err)
			}
		default:
			return fmt.Errorf("catalogue key %q: %w %q", k.KeyID, ErrAlgorithm, k.Alg)
		}
	}
	return nil
}

// Key returns the catalogue entry with the given id and use.
func (c *Catalogue) Key(id string, use KeyUse) (*IssuerKey, error) {
	for i := range c.Keys {
		if c.Keys[i].KeyID == id {
			if c.Keys[i].Use != use {
				return nil, fmt.Errorf("%w: %q is a %s key, not a %s key", ErrUnknownKey, id, c.Keys[i].Use, use)
			}
			return &c.Keys[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownKey, id)
}

// ParseCatalogue decodes a catalogue strictly.
func ParseCatalogue(data []byte) (*Catalogue, error) {
	var c Catalogue
	if err := decodeExact(data, &c); err != nil {
		return nil, fmt.Errorf("parse catalogue: %w", err)
	}
	if c.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("parse catalogue: %w: %d", ErrVersion, c.SchemaVersion)
	}
	return &c, nil
}

// Signer is an issuer key with its private half: it lives only in the bank.
// An Ed25519 key signs (Issue, Certify); a blind coin key signs blindly
// (BlindSign).
type Signer struct {
	Issuer string
	Key    IssuerKey
	priv   ed25519.PrivateKey
	blind  *blindKey
}

// NewSigner wraps an existing private key (for example one loaded from the
// bank's database) as a Signer for the catalogue entry k.
func NewSigner(issuer string, k IssuerKey, priv ed25519.PrivateKey) (*Signer, error) {
	if k.Alg != AlgEd25519 {
		return nil, fmt.Errorf("signer %q: %w %q", k.KeyID, ErrAlgorithm, k.Alg)
	}
	if k.Public != EncodeKey(priv.Public().(ed25519.PublicKey)) {
		return nil, fmt.Errorf("signer %q: private key does not match public key", k.KeyID)
	}
	return &Signer{Issuer: issuer, Key: k, priv: priv}, nil
}

// GenerateSigner makes a fresh issuer key for the catalogue entry k, filling
// in its algorithm, public key and key id.
func GenerateSigner(issuer string, k IssuerKey) (*Signer, ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	return signerFor(issuer, k, priv), priv, nil
}

// signerFor completes k for the key priv: the key id is derived from the
// public key, so it cannot name two different keys.
func signerFor(issuer string, k IssuerKey, priv ed25519.PrivateKey) *Signer {
	pub := priv.Public().(ed25519.PublicKey)
	k.Alg = AlgEd25519
	k.Public = EncodeKey(pub)
	sum := sha256.Sum256(pub)
	k.KeyID = string(k.Use) + "-" + b64.EncodeToString(sum[:12])
	return &Signer{Issuer: issuer, Key: k, priv: priv}
}

// Issue makes a coin of the signer's value and currency for the first holder
// key holder, of program p, payable until expires.
func (s *Signer) Issue(serial Serial, holder ed25519.PublicKey, expires time.Time, p Program) (*Coin, error) {
	if s.Key.Use != UseCoin || s.priv == nil {
		return nil, fmt.Errorf("issue: key %q is not an %s coin key", s.Key.KeyID, AlgEd25519)
	}
	if expires.After(s.Key.DepositUntil) {
		return nil, fmt.Errorf("issue: expiry %s after the key's deposit deadline", expires.Format(time.RFC3339))
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("issue: program %q: %w", p.Name, err)
	}
	conditions := p.Conditions
	if conditions == nil {
		conditions = []string{}
	}
	c := &Coin{
		SchemaVersion: SchemaVersion,
		Data: Data{
			Token:      serial.String(),
			Value:      s.Key.Value,
			Currency:   s.Key.Currency,
			Issuer:     s.Issuer,
			KeyID:      s.Key.KeyID,
			Holder:     EncodeKey(holder),
			Expires:    expires.UTC().Truncate(time.Second),
			Program:    p.Name,
			Conditions: conditions,
		},
		CallMethod: p.Steps,
	}
	sum, err := c.ComputeChecksum()
	if err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	c.Checksum = b64.EncodeToString(sum[:])
	c.Signature = Signature{Alg: AlgEd25519, Value: sign(s.priv, labelCoin, sum[:])}
	return c, nil
}

// Certify makes an exchange key for the payee's one-time public key pub,
// valid until expires, with bank-certified attributes attrs (may be nil).
func (s *Signer) Certify(pub ed25519.PublicKey, expires time.Time, attrs map[string]string) (ExchangeKey, error) {
	if s.Key.Use != UseExchange || s.priv == nil {
		return ExchangeKey{}, fmt.Errorf("certify: key %q is not an exchange-certification key", s.Key.KeyID)
	}
	if err := CheckAttrs(attrs); err != nil {
		return ExchangeKey{}, fmt.Errorf("certify: %w", err)
	}
	k := ExchangeKey{
		Pub:     EncodeKey(pub),
		Issuer:  s.Issuer,
		KeyID:   s.Key.KeyID,
		Expires: expires.UTC().Truncate(time.Second),
		Attrs:   attrs,
	}
	p, err := k.payload()
	if err != nil {
		return ExchangeKey{}, fmt.Errorf("certify: %w", err)
	}
	k.Sig = sign(s.priv, labelExchangeKey, p)
	return k, nil
}
