package otp

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrRevoked is returned for a coin whose chain was signed by a key the
// issuer has revoked.
var ErrRevoked = errors.New("revoked key")

// Revocations is an issuer's signed list of one-time holder keys caught
// signing twice (a double spend found at deposit). A wallet that has
// fetched it refuses, offline, every coin whose chain such a key signed:
// the coin's value is already claimed by someone else.
type Revocations struct {
	SchemaVersion int       `json:"schemaVersion"`
	Issuer        string    `json:"issuer"`
	Issued        time.Time `json:"issued"`
	Keys          []string  `json:"keys"`
	Signature     Signature `json:"signature"`
}

type unsignedRevocations struct {
	SchemaVersion int       `json:"schemaVersion"`
	Issuer        string    `json:"issuer"`
	Issued        time.Time `json:"issued"`
	Keys          []string  `json:"keys"`
}

func (r *Revocations) payload() ([]byte, error) {
	return Canonical(unsignedRevocations{r.SchemaVersion, r.Issuer, r.Issued, r.Keys})
}

// Sign signs the list with the issuer's root key, sorting the keys so that
// one set of keys has one encoding.
func (r *Revocations) Sign(root ed25519.PrivateKey) error {
	r.SchemaVersion = SchemaVersion
	if r.Keys == nil {
		r.Keys = []string{}
	}
	slices.Sort(r.Keys)
	r.Keys = slices.Compact(r.Keys)
	p, err := r.payload()
	if err != nil {
		return fmt.Errorf("sign revocations: %w", err)
	}
	r.Signature = Signature{Alg: AlgEd25519, Value: sign(root, labelRevocations, p)}
	return nil
}

// Verify checks the list's signature under the issuer's root key, taken
// from its pinned catalogue.
func (r *Revocations) Verify(cat *Catalogue) error {
	if r.SchemaVersion != SchemaVersion {
		return fmt.Errorf("revocations: %w: %d", ErrVersion, r.SchemaVersion)
	}
	if r.Issuer != cat.Issuer {
		return fmt.Errorf("revocations of %q: %w: not from %q", r.Issuer, ErrUnknownIssuer, cat.Issuer)
	}
	if r.Signature.Alg != AlgEd25519 {
		return fmt.Errorf("revocations: %w %q", ErrAlgorithm, r.Signature.Alg)
	}
	root, err := DecodeKey(cat.Root)
	if err != nil {
		return fmt.Errorf("revocations: root: %w", err)
	}
	p, err := r.payload()
	if err != nil {
		return fmt.Errorf("revocations: %w", err)
	}
	if err := verify(root, r.Signature.Value, labelRevocations, p); err != nil {
		return fmt.Errorf("revocations of %q: %w", r.Issuer, err)
	}
	return nil
}

// ParseRevocations decodes a revocation list strictly.
func ParseRevocations(data []byte) (*Revocations, error) {
	var r Revocations
	if err := decodeExact(data, &r); err != nil {
		return nil, fmt.Errorf("parse revocations: %w", err)
	}
	if r.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("parse revocations: %w: %d", ErrVersion, r.SchemaVersion)
	}
	return &r, nil
}

// WithRevocations returns a verifier that also refuses every coin whose
// chain was signed by a key on one of the lists, which the caller has
// already verified.
func (v *Verifier) WithRevocations(lists ...*Revocations) *Verifier {
	w := &Verifier{issuers: v.issuers, revoked: make(map[string]bool, len(v.revoked)), rsaKeys: v.rsaKeys}
	for k := range v.revoked {
		w.revoked[k] = true
	}
	for _, r := range lists {
		for _, k := range r.Keys {
			w.revoked[k] = true
		}
	}
	return w
}

// checkRevoked refuses a sandbox any of whose signers is revoked.
func (v *Verifier) checkRevoked(s *Sandbox) error {
	if len(v.revoked) == 0 {
		return nil
	}
	for i := 0; i <= len(s.Chain); i++ {
		if k := s.HolderAt(i); v.revoked[k] {
			return fmt.Errorf("coin %.12s: %w: the key that held it after %d transfers signed it away twice", s.Coin.Data.Token, ErrRevoked, i)
		}
	}
	return nil
}
