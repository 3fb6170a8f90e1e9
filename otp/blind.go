package otp

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cloudflare/circl/blindsign/blindrsa"
	"golang.org/x/crypto/hkdf"
)

// AlgBlindRSA names an RFC 9474 blind RSA signature, variant
// RSABSSA-SHA384-PSS-Randomized, with an RSA-2048 key. The issuer signs
// the coin blindly: it never sees the serial, the holder key or the
// checksum. A coin key of this algorithm signs one coin type only (value,
// currency, program and payable-until time, all in its catalogue entry),
// so the signature still binds every public field of the coin.
//
// The signed message is the label otpcash/v1/coin, a zero byte and the
// 32-byte checksum. The signature field's value is the unpadded base64url
// of the RFC's 32-byte message randomizer (msg_prefix) followed by the
// 256-byte RSA signature over msg_prefix || message.
const AlgBlindRSA = "RSABSSA-SHA384-PSS-Randomized"

const (
	// blindRSABits is the modulus size of blind coin keys.
	blindRSABits = 2048
	// BlindMessageSize is the size of a blinded message and of a blind
	// signature, in bytes.
	BlindMessageSize = blindRSABits / 8
	blindPrefixSize  = 32 // RFC 9474 msg_prefix of the randomized variants
	blindRSAExponent = 65537
)

// ErrBlind is the error of a blind signing request that cannot be signed:
// a blinded message of the wrong size, or a key that does not sign blindly.
var ErrBlind = errors.New("invalid blind signing request")

const blindVariant = blindrsa.SHA384PSSRandomized

// encodeRSAKey returns the text form of a blind coin key: the unpadded
// base64url of its DER SubjectPublicKeyInfo.
func encodeRSAKey(pub *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("rsa public key: %w", err)
	}
	return b64.EncodeToString(der), nil
}

// decodeRSAKey parses the text form of a blind coin key. Only the one
// encoding of an RSA-2048 key with exponent 65537 is accepted.
func decodeRSAKey(s string) (*rsa.PublicKey, error) {
	der, err := b64.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("rsa public key: not unpadded base64url: %w", err)
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("rsa public key: %w", err)
	}
	pub, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("rsa public key: a %T", k)
	}
	if pub.N.BitLen() != blindRSABits || pub.E != blindRSAExponent {
		return nil, fmt.Errorf("rsa public key: %d bits, exponent %d; want %d bits, exponent %d", pub.N.BitLen(), pub.E, blindRSABits, blindRSAExponent)
	}
	again, err := encodeRSAKey(pub)
	if err != nil || again != s {
		return nil, errors.New("rsa public key: not in its only encoding")
	}
	return pub, nil
}

// CoinProgram returns the program every coin of the blind coin key k
// carries.
func (k *IssuerKey) CoinProgram() Program {
	return Program{Name: k.Program, Steps: k.CallMethod, Conditions: k.Conditions}
}

// checkBlindKey checks the fields a blind key's catalogue entry must
// carry: a coin key, its coin type; an exchange-certification key, the
// expiry (depositUntil) of every key it certifies, and no coin type.
func checkBlindKey(k *IssuerKey) error {
	if _, err := decodeRSAKey(k.Public); err != nil {
		return err
	}
	switch k.Use {
	case UseCoin:
	case UseExchange:
		if k.Value != 0 || k.Currency != "" || k.Program != "" || k.CallMethod != nil || k.Conditions != nil || !k.PayableUntil.IsZero() {
			return fmt.Errorf("%w: coin type fields on an exchange-certification key", ErrKeyMismatch)
		}
		if k.DepositUntil.IsZero() || !k.DepositUntil.Truncate(time.Second).Equal(k.DepositUntil) {
			return errors.New("depositUntil missing or not in whole seconds")
		}
		return nil
	default:
		return fmt.Errorf("%w: a %s key cannot be %s", ErrAlgorithm, k.Use, AlgBlindRSA)
	}
	if err := k.CoinProgram().Validate(); err != nil {
		return fmt.Errorf("program %q: %w", k.Program, err)
	}
	if k.PayableUntil.IsZero() || k.PayableUntil.After(k.DepositUntil) || !k.PayableUntil.Truncate(time.Second).Equal(k.PayableUntil) {
		return errors.New("payableUntil missing, after depositUntil or not in whole seconds")
	}
	return nil
}

// GenerateBlindSigner makes a fresh blind coin key for the catalogue entry
// k (value, currency, validity and payable-until time) and program p,
// filling in the algorithm, public key, key id and program. It takes an
// RSA-2048 key generation: about a second of CPU.
func GenerateBlindSigner(issuer string, k IssuerKey, p Program) (*Signer, *rsa.PrivateKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, blindRSABits)
	if err != nil {
		return nil, nil, fmt.Errorf("blind coin key: %w", err)
	}
	k.Alg = AlgBlindRSA
	if k.Use == UseCoin {
		k.Program, k.CallMethod, k.Conditions = p.Name, p.Steps, p.Conditions
		if len(k.Conditions) == 0 {
			k.Conditions = nil // one spelling in the catalogue
		}
	}
	if k.Public, err = encodeRSAKey(&priv.PublicKey); err != nil {
		return nil, nil, err
	}
	der, _ := b64.DecodeString(k.Public)
	sum := sha256.Sum256(der)
	k.KeyID = string(k.Use) + "-" + b64.EncodeToString(sum[:12])
	s, err := NewBlindSigner(issuer, k, priv)
	if err != nil {
		return nil, nil, err
	}
	return s, priv, nil
}

// NewBlindSigner wraps an existing RSA private key (for example one loaded
// from the bank's database) as the Signer of the blind coin key k.
func NewBlindSigner(issuer string, k IssuerKey, priv *rsa.PrivateKey) (*Signer, error) {
	if k.Alg != AlgBlindRSA {
		return nil, fmt.Errorf("blind signer %q: %w %q", k.KeyID, ErrAlgorithm, k.Alg)
	}
	if err := checkBlindKey(&k); err != nil {
		return nil, fmt.Errorf("blind signer %q: %w", k.KeyID, err)
	}
	pub, err := encodeRSAKey(&priv.PublicKey)
	if err != nil || pub != k.Public {
		return nil, fmt.Errorf("blind signer %q: private key does not match public key", k.KeyID)
	}
	bk, err := newBlindKey(priv)
	if err != nil {
		return nil, fmt.Errorf("blind signer %q: %w", k.KeyID, err)
	}
	return &Signer{Issuer: issuer, Key: k, blind: bk}, nil
}

// DecodeBlinded parses the text form of a blinded message (or of a blind
// signature): the unpadded base64url of BlindMessageSize bytes.
func DecodeBlinded(s string) ([]byte, error) {
	b, err := decodeFixed(s, BlindMessageSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBlind, err)
	}
	return b, nil
}

// EncodeBlinded returns the text form of a blinded message or blind
// signature.
func EncodeBlinded(b []byte) string { return b64.EncodeToString(b) }

// BlindSign signs a blinded coin checksum (the bank's half of a blind
// withdrawal, RFC 9474 BlindSign). It learns nothing about the coin. A
// request that cannot be signed is refused with ErrBlind; a signature that
// fails its check before release, with ErrBlindFault.
func (s *Signer) BlindSign(blinded []byte) ([]byte, error) {
	if s.blind == nil {
		return nil, fmt.Errorf("blind sign: %w: key %q is %s", ErrBlind, s.Key.KeyID, s.Key.Alg)
	}
	if len(blinded) != s.blind.n.Size() {
		return nil, fmt.Errorf("blind sign: %w: blinded message of %d bytes, want %d", ErrBlind, len(blinded), s.blind.n.Size())
	}
	sig, err := s.blind.sign(blinded)
	if err != nil {
		return nil, fmt.Errorf("blind sign: %w", err)
	}
	return sig, nil
}

// WithdrawalRand returns the deterministic randomness of coin index of a
// withdrawal: HKDF-SHA256 of a secret the wallet's vault keeps, with the
// withdrawal id and the index. The same inputs give the same serial and
// blinding, so a wallet that crashed before storing its coins can ask the
// bank again under the same id and finish them.
func WithdrawalRand(secret []byte, withdrawalID string, index int) io.Reader {
	info := fmt.Appendf(nil, "otpcash/v1/withdrawal\x00%s\x00%d", withdrawalID, index)
	return hkdf.New(sha256.New, secret, nil, info)
}

// BlindCoin is a coin the wallet has built and blinded, waiting for the
// issuer's blind signature.
type BlindCoin struct {
	coin Coin
	m    blindMessage
}

// blindMessage is a message blinded for an issuer's blind RSA key.
type blindMessage struct {
	client  blindrsa.Client
	prefix  []byte
	blinded []byte
	state   blindrsa.State
}

// blind prepares and blinds msg for the key k (text form), with the
// randomizer and blinding read from rnd.
func blind(k string, msg []byte, rnd io.Reader) (blindMessage, error) {
	var m blindMessage
	pub, err := decodeRSAKey(k)
	if err != nil {
		return m, err
	}
	if m.client, err = blindrsa.NewClient(blindVariant, pub); err != nil {
		return m, err
	}
	prepared, err := m.client.Prepare(rnd, msg)
	if err != nil {
		return m, fmt.Errorf("prepare: %w", err)
	}
	m.prefix = prepared[:blindPrefixSize]
	if m.blinded, m.state, err = m.client.Blind(rnd, prepared); err != nil {
		return m, fmt.Errorf("blind: %w", err)
	}
	return m, nil
}

// finish unblinds the blind signature, checking it, and returns the
// signature's text form: randomizer followed by signature.
func (m *blindMessage) finish(blindSig []byte) (string, error) {
	if len(blindSig) != BlindMessageSize {
		return "", fmt.Errorf("%w: blind signature of %d bytes, want %d", ErrSignature, len(blindSig), BlindMessageSize)
	}
	sig, err := m.client.Finalize(m.state, blindSig)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrSignature, err)
	}
	return b64.EncodeToString(append(append([]byte{}, m.prefix...), sig...)), nil
}

// NewBlindCoin builds a coin of the blind coin key k of issuer (taken from
// its verified catalogue) for the first holder key holder, and blinds it.
// The coin's value, currency, program and expiry are the key's. The
// serial, the message randomizer and the blinding are read from rnd
// (WithdrawalRand, or crypto/rand).
func NewBlindCoin(issuer string, k *IssuerKey, holder ed25519.PublicKey, rnd io.Reader) (*BlindCoin, error) {
	if k.Alg != AlgBlindRSA {
		return nil, fmt.Errorf("blind coin: key %q: %w %q", k.KeyID, ErrAlgorithm, k.Alg)
	}
	if err := checkBlindKey(k); err != nil {
		return nil, fmt.Errorf("blind coin: key %q: %w", k.KeyID, err)
	}
	p := k.CoinProgram()
	var serial Serial
	if _, err := io.ReadFull(rnd, serial[:]); err != nil {
		return nil, fmt.Errorf("blind coin: serial: %w", err)
	}
	conditions := p.Conditions
	if conditions == nil {
		conditions = []string{}
	}
	b := &BlindCoin{coin: Coin{
		SchemaVersion: SchemaVersion,
		Data: Data{
			Token: serial.String(), Value: k.Value, Currency: k.Currency, Issuer: issuer,
			KeyID: k.KeyID, Holder: EncodeKey(holder), Expires: k.PayableUntil.UTC(),
			Program: p.Name, Conditions: conditions,
		},
		CallMethod: p.Steps,
	}}
	sum, err := b.coin.ComputeChecksum()
	if err != nil {
		return nil, fmt.Errorf("blind coin: %w", err)
	}
	b.coin.Checksum = b64.EncodeToString(sum[:])
	if b.m, err = blind(k.Public, signed(labelCoin, sum[:]), rnd); err != nil {
		return nil, fmt.Errorf("blind coin: %w", err)
	}
	return b, nil
}

// Blinded returns the blinded message to send to the issuer.
func (b *BlindCoin) Blinded() []byte { return b.m.blinded }

// Serial returns the coin's serial.
func (b *BlindCoin) Serial() string { return b.coin.Data.Token }

// Finish unblinds the issuer's blind signature and returns the signed coin.
// The signature is checked as it is unblinded (circl's Finalize).
func (b *BlindCoin) Finish(blindSig []byte) (*Coin, error) {
	sig, err := b.m.finish(blindSig)
	if err != nil {
		return nil, fmt.Errorf("coin %.12s: %w", b.coin.Data.Token, err)
	}
	c := b.coin
	c.Data.Conditions = append([]string{}, b.coin.Data.Conditions...)
	c.Signature = Signature{Alg: AlgBlindRSA, Value: sig}
	return &c, nil
}

// BlindExchangeKey is an anonymous exchange key the wallet has built and
// blinded, waiting for the issuer's blind certification: the bank never
// sees the public key it certifies, so it cannot tell at deposit which
// wallet a coin was paid to.
type BlindExchangeKey struct {
	key ExchangeKey
	m   blindMessage
}

// NewBlindExchangeKey builds the certificate of the one-time key pub under
// the blind exchange-certification key k of issuer (from its verified
// catalogue), expiring when every key k certifies does (k.DepositUntil),
// and blinds it.
func NewBlindExchangeKey(issuer string, k *IssuerKey, pub ed25519.PublicKey, rnd io.Reader) (*BlindExchangeKey, error) {
	if k.Alg != AlgBlindRSA || k.Use != UseExchange {
		return nil, fmt.Errorf("blind exchange key: key %q: %w: a %s %s key", k.KeyID, ErrAlgorithm, k.Alg, k.Use)
	}
	if err := checkBlindKey(k); err != nil {
		return nil, fmt.Errorf("blind exchange key: key %q: %w", k.KeyID, err)
	}
	b := &BlindExchangeKey{key: ExchangeKey{Pub: EncodeKey(pub), Issuer: issuer, KeyID: k.KeyID, Expires: k.DepositUntil.UTC()}}
	msg, err := b.key.blindMessage()
	if err != nil {
		return nil, fmt.Errorf("blind exchange key: %w", err)
	}
	if b.m, err = blind(k.Public, msg, rnd); err != nil {
		return nil, fmt.Errorf("blind exchange key: %w", err)
	}
	return b, nil
}

// Blinded returns the blinded message to send to the issuer.
func (b *BlindExchangeKey) Blinded() []byte { return b.m.blinded }

// Finish unblinds the issuer's blind signature and returns the certified
// exchange key, checking the signature as it unblinds it.
func (b *BlindExchangeKey) Finish(blindSig []byte) (ExchangeKey, error) {
	sig, err := b.m.finish(blindSig)
	if err != nil {
		return ExchangeKey{}, fmt.Errorf("exchange key %.12s: %w", b.key.Pub, err)
	}
	k := b.key
	k.Sig = sig
	return k, nil
}

// blindMessage is what the issuer signs blindly for an exchange key: the
// label, a zero byte and the SHA-256 of the key's canonical form without
// its signature, a fixed-size message as for coins.
func (k *ExchangeKey) blindMessage() ([]byte, error) {
	p, err := k.payload()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(p)
	return signed(labelExchangeKey, sum[:]), nil
}

// CertificationKey returns the blind exchange-certification key that
// certifies anonymous exchange keys: the newest of the catalogue (a bank
// signs with no other).
func (c *Catalogue) CertificationKey() (*IssuerKey, error) {
	var best *IssuerKey
	for i := range c.Keys {
		k := &c.Keys[i]
		if k.Use == UseExchange && k.Alg == AlgBlindRSA && (best == nil || k.NotBefore.After(best.NotBefore)) {
			best = k
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: the catalogue of %q has no blind exchange-certification key", ErrUnknownKey, c.Issuer)
	}
	return best, nil
}

// checkBlindFields checks the public fields of c that the blind coin key k
// fixes beyond value and currency: the expiry and the program.
func checkBlindFields(c *Coin, k *IssuerKey) error {
	if !c.Data.Expires.Equal(k.PayableUntil) {
		return fmt.Errorf("%w: coin payable until %s, key %q signs coins payable until %s", ErrKeyMismatch,
			c.Data.Expires.Format(time.RFC3339), k.KeyID, k.PayableUntil.Format(time.RFC3339))
	}
	if !(Program{c.Data.Program, c.CallMethod, c.Data.Conditions}).Equal(k.CoinProgram()) {
		return fmt.Errorf("%w: coin of program %q, key %q signs program %q", ErrKeyMismatch, c.Data.Program, k.KeyID, k.Program)
	}
	return nil
}

// verifyBlind checks sig, the text form of a randomizer and a blind RSA
// signature, over msg under pub. An RFC 9474 signature is an RSASSA-PSS
// signature over msg_prefix || msg (Section 4.5), so the standard
// library's PSS verification checks it: a quarter faster than circl's,
// which the bank feels on every deposit. The signature is as long as the
// modulus: decodeRSAKey admits only blindRSABits, and the RFC's test
// vectors (4096 bits) run through here unchanged.
func verifyBlind(pub *rsa.PublicKey, sig string, msg []byte) error {
	raw, err := decodeFixed(sig, blindPrefixSize+pub.Size())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	h := sha512.New384()
	h.Write(raw[:blindPrefixSize])
	h.Write(msg)
	if err := rsa.VerifyPSS(pub, crypto.SHA384, h.Sum(nil), raw[blindPrefixSize:], &blindPSS); err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	return nil
}

// blindPSS are the PSS parameters of RSABSSA-SHA384-PSS-Randomized: a salt
// as long as the SHA-384 hash (RFC 9474, Section 5).
var blindPSS = rsa.PSSOptions{SaltLength: sha512.Size384, Hash: crypto.SHA384}

// CoinKeys returns the blind coin keys to withdraw coins of program under
// at now, one per value, smallest value first: for each value, the newest
// key of the catalogue that signs at now.
func (c *Catalogue) CoinKeys(program string, now time.Time) ([]*IssuerKey, error) {
	newest := map[int64]*IssuerKey{}
	var programs []string
	for i := range c.Keys {
		k := &c.Keys[i]
		if k.Use != UseCoin || k.Alg != AlgBlindRSA || now.Before(k.NotBefore) || !now.Before(k.Expires) {
			continue
		}
		programs = append(programs, k.Program)
		if best := newest[k.Value]; k.Program == program && (best == nil || k.NotBefore.After(best.NotBefore)) {
			newest[k.Value] = k
		}
	}
	if len(newest) == 0 {
		slices.Sort(programs)
		return nil, fmt.Errorf("%w: no coin key of program %q signs at %s; the catalogue of %q has %s", ErrUnknownKey,
			program, now.Format(time.RFC3339), c.Issuer, strings.Join(slices.Compact(programs), ", "))
	}
	keys := make([]*IssuerKey, 0, len(newest))
	for _, v := range slices.Sorted(maps.Keys(newest)) {
		keys = append(keys, newest[v])
	}
	return keys, nil
}

// CoinKey returns the blind coin key to withdraw coins of program and value
// under at now (see CoinKeys).
func (c *Catalogue) CoinKey(program string, value int64, now time.Time) (*IssuerKey, error) {
	keys, err := c.CoinKeys(program, now)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.Value == value {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: program %q has no coins of %d at %s", ErrUnknownKey, program, value, now.Format(time.RFC3339))
}
