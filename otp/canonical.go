package otp

import (
	"bytes"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
	"github.com/gowebpki/jcs"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"

	"github.com/otpcash/otpcash/internal/strictjson"
)

// Domain-separation labels: each signature covers one of these, a zero byte
// and the signed payload, so a signature made for one purpose never verifies
// for another.
const (
	labelCoin        = "otpcash/v1/coin"
	labelCatalogue   = "otpcash/v1/catalogue"
	labelExchangeKey = "otpcash/v1/exchange-key"
	labelTransfer    = "otpcash/v1/transfer"
	labelAck         = "otpcash/v1/ack"
	labelDeposit     = "otpcash/v1/deposit"
	labelRevocations = "otpcash/v1/revocations"
	labelReclaimKey  = "otpcash/v1/reclaim-key"
	labelReclaim     = "otpcash/v1/reclaim"
	labelRecoveryKey = "otpcash/v1/recovery-key"
	labelRecover     = "otpcash/v1/recover"
)

// Canonical returns the RFC 8785 (JCS) form of v's JSON encoding. It
// refuses an integer beyond ±(2^53-1): JCS reads numbers as IEEE doubles
// and would write it rounded, so that two documents (coins of values 2^53
// and 2^53+1) shared one form, one checksum and one signature.
func Canonical(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if err := strictjson.CheckIntegers(raw); err != nil {
		return nil, err
	}
	return jcs.Transform(raw)
}

// b64 is the one binary-to-text encoding of the formats: unpadded base64url.
var b64 = base64.RawURLEncoding

// EncodeKey returns the text form of an Ed25519 public key.
func EncodeKey(pub ed25519.PublicKey) string { return b64.EncodeToString(pub) }

// ErrPublicKey reports an Ed25519 public key that no honest key pair has:
// not a point of the curve, a point not in its one encoding, or a point
// of small order.
var ErrPublicKey = errors.New("invalid Ed25519 public key")

// DecodeKey parses the text form of an Ed25519 public key. It is the one
// place a public key from anyone else becomes an ed25519.PublicKey, and it
// refuses what crypto/ed25519 would accept and must not be:
//
//   - a point of small order (the identity and 7 others): for the identity
//     the signature R = identity, S = 0 verifies every message, so a coin
//     held by, or transferred to, such a key could be signed for by anyone;
//   - a second encoding of a point (y not reduced mod p, or x = 0 with the
//     sign bit set): one key would have two texts, and "equal keys are
//     equal strings", which revocation and double-spend evidence rely on,
//     would fail.
func DecodeKey(s string) (ed25519.PublicKey, error) {
	b, err := decodeFixed(s, ed25519.PublicKeySize)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	if err := checkPoint(b); err != nil {
		return nil, fmt.Errorf("public key %.12s: %w: %v", s, ErrPublicKey, err)
	}
	return ed25519.PublicKey(b), nil
}

// KeyBytes returns the 32 bytes of the text form of an Ed25519 public
// key, in its one spelling, without DecodeKey's check that they are a key
// anyone could hold: it is for finding a key among one's own (a vault's
// row keys), which were checked when they were made or received. Nothing
// that verifies a signature may use it.
func KeyBytes(s string) ([]byte, error) {
	b, err := decodeFixed(s, ed25519.PublicKeySize)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return b, nil
}

// checkPoint checks that b is the canonical encoding of a curve point
// whose order is not small.
func checkPoint(b []byte) error {
	p, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		return errors.New("not a point of the curve")
	}
	// SetBytes accepts every spelling of a point. A point has a second
	// one when its y is not reduced mod p, or when x = 0 and the sign bit
	// is set. Both are checked on the coordinates, with no inversion, as
	// encoding the point again (Point.Bytes) would cost: every coin's keys
	// are decoded a few times on each side of a payment.
	y := [32]byte(b)
	y[31] &= 0x7f
	fy, err := new(field.Element).SetBytes(y[:])
	if err != nil || !bytes.Equal(fy.Bytes(), y[:]) {
		return errors.New("not in its only encoding")
	}
	if x, _, _, _ := p.ExtendedCoordinates(); b[31]&0x80 != 0 && x.Equal(new(field.Element).Zero()) == 1 {
		return errors.New("not in its only encoding")
	}
	// The small-order points are exactly those the cofactor 8 sends to
	// the identity.
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return errors.New("a point of small order")
	}
	return nil
}

// decodeFixed decodes s, which must be the canonical encoding of exactly n
// bytes: a second spelling of the same bytes would let two different
// documents carry one value.
func decodeFixed(s string, n int) ([]byte, error) {
	if len(s) != b64.EncodedLen(n) {
		return nil, fmt.Errorf("want %d base64url characters for %d bytes, got %d", b64.EncodedLen(n), n, len(s))
	}
	b, err := b64.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not unpadded base64url: %w", err)
	}
	return b, nil
}

func signed(label string, payload ...[]byte) []byte {
	n := len(label) + 1
	for _, p := range payload {
		n += len(p)
	}
	msg := make([]byte, 0, n)
	msg = append(msg, label...)
	msg = append(msg, 0)
	for _, p := range payload {
		msg = append(msg, p...)
	}
	return msg
}

func sign(priv ed25519.PrivateKey, label string, payload ...[]byte) string {
	return b64.EncodeToString(SignEd25519(priv, signed(label, payload...)))
}

// SignEd25519 is every Ed25519 signature otpcash makes: the coin formats'
// (sign) and those outside them (a payment request, a backup). It signs
// with curve25519-voi, whose verifier is already the one rule of verify:
// Ed25519 (RFC 8032) is deterministic, so its signature is crypto/ed25519's
// byte for byte (TestEd25519Sign runs published vectors through it), and
// it takes some 11 us where crypto/ed25519 takes 19 on this project's
// machines, on a path that signs three times a coin. The secret nonce's
// base-point multiplication is documented constant-time (voi's
// curve.EdwardsPoint.MulBasepoint), and the scalar arithmetic with the
// secret key is curve25519-dalek's fixed-width limbs, ported.
func SignEd25519(priv ed25519.PrivateKey, msg []byte) []byte {
	return voi.Sign(voi.PrivateKey(priv), msg)
}

// verify checks one signature under the acceptance rule of every
// verification in otpcash, single or batched (see sigBatch), by a wallet or
// by the bank: DecodeKey has refused pub if it is small-order or not in
// its one encoding; S must be below the group order; then the cofactored
// equation [8][S]B = [8]R + [8][k]A of ZIP-215. ZIP-215 is the rule under
// which curve25519-voi's single and batch verifiers agree on every input
// (see its README and ed25519vectors/zip215 tests, and our
// TestEd25519Vectors): with crypto/ed25519's cofactorless equation a batch
// could accept a crafted signature the single check refuses, and a coin one
// wallet accepted could be one another, or the bank, refuses.
func verify(pub ed25519.PublicKey, sig, label string, payload ...[]byte) error {
	s, err := decodeFixed(sig, ed25519.SignatureSize)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	if !verifyOne(pub, signed(label, payload...), s) {
		return ErrSignature
	}
	return nil
}

// VerifyEd25519 reports whether sig is pub's signature of msg under the
// one acceptance rule of verify, for a signature outside the coin formats
// (a payment request, a backup) that must not be a second rule. pub must
// come from DecodeKey.
func VerifyEd25519(pub ed25519.PublicKey, msg, sig []byte) bool { return verifyOne(pub, msg, sig) }

// verifyOne is the single verification of verify and of a batch of one.
func verifyOne(pub ed25519.PublicKey, msg, sig []byte) bool {
	return voi.VerifyWithOptions(voi.PublicKey(pub), msg, sig, zip215)
}

// zip215 is the one set of options of every Ed25519 verification.
var zip215 = &voi.Options{Verify: voi.VerifyOptionsZIP_215}

func equalText(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// decodeExact decodes a signed document strictly (see strictjson: no
// repeated, mis-cased or unknown names, no integer beyond ±(2^53-1), no
// trailing data), and requires the input to mean exactly what v
// re-encodes to, so that no two byte strings parse as one document: a
// field null where a value is required, or a value in another spelling,
// is refused too.
func decodeExact(data []byte, v any) error {
	if err := strictjson.Unmarshal(data, v); err != nil {
		return err
	}
	in, err := jcs.Transform(data)
	if err != nil {
		return err
	}
	out, err := Canonical(v)
	if err != nil {
		return err
	}
	if !bytes.Equal(in, out) {
		return fmt.Errorf("non-canonical document: a field is misspelt, repeated, null where a value is required, or not in its only encoding")
	}
	return nil
}
