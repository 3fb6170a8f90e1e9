package otp

import (
	"crypto/rsa"
	"fmt"
	"sync"
	"time"

	"github.com/otpcash/otpcash/internal/parallel"
)

// Verifier checks coins, exchange keys and sandboxes against the key
// catalogues of the issuers it trusts. It is safe for concurrent use once
// made.
type Verifier struct {
	issuers map[string]*Catalogue
	revoked map[string]bool // one-time keys caught signing twice
	// rsaKeys caches parsed blind RSA keys by their text form: parsing
	// one costs about as much as a tenth of a verification.
	rsaKeys *sync.Map
}

// NewVerifier returns a verifier trusting the given catalogues, which the
// caller has already verified under their pinned roots.
func NewVerifier(cats ...*Catalogue) *Verifier {
	v := &Verifier{issuers: make(map[string]*Catalogue, len(cats)), rsaKeys: new(sync.Map)}
	for _, c := range cats {
		v.issuers[c.Issuer] = c
	}
	return v
}

func (v *Verifier) key(issuer, id string, use KeyUse) (*IssuerKey, error) {
	cat, ok := v.issuers[issuer]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownIssuer, issuer)
	}
	return cat.Key(id, use)
}

// VerifyCoin checks a coin's integrity, token format, program, issuer
// signature and that its public fields match its key in the catalogue. It
// does not look at the time: see CheckPayable and CheckDepositable.
func (v *Verifier) VerifyCoin(c *Coin) error {
	var b sigBatch
	if err := v.checkCoin(c, &b); err != nil {
		return err
	}
	return b.verify()
}

// checkCoin is VerifyCoin with the issuer's Ed25519 signature queued in b.
func (v *Verifier) checkCoin(c *Coin, b *sigBatch) error {
	if err := c.checkIntegrity(); err != nil {
		return fmt.Errorf("coin %.12s: %w", c.Data.Token, err)
	}
	if _, err := c.Serial(); err != nil {
		return fmt.Errorf("coin: %w", err)
	}
	if err := validateCoinProgram(c, false); err != nil {
		return fmt.Errorf("coin %.12s: %w", c.Data.Token, err)
	}
	if err := v.verifyIssuerSignature(c, b); err != nil {
		return fmt.Errorf("coin %.12s: %w", c.Data.Token, err)
	}
	return nil
}

// verifyIssuerSignature verifies a blind RSA signature now and queues an
// Ed25519 one in b.
func (v *Verifier) verifyIssuerSignature(c *Coin, b *sigBatch) error {
	k, err := v.issuerKey(c)
	if err != nil {
		return err
	}
	if k.Alg == AlgBlindRSA {
		pub, err := v.rsaKey(k.Public)
		if err != nil {
			return err
		}
		sum, err := c.checksumBytes()
		if err != nil {
			return err
		}
		return verifyBlind(pub, c.Signature.Value, signed(labelCoin, sum))
	}
	pub, err := DecodeKey(k.Public)
	if err != nil {
		return err
	}
	sum, err := c.checksumBytes()
	if err != nil {
		return err
	}
	return b.add(named("coin %.12s", c.Data.Token), pub, c.Signature.Value, labelCoin, sum)
}

// checkIssuerKey is verifyIssuerSignature without the signature: the coin's
// issuer key is in the catalogue and matches the coin's public fields. It is
// for coins whose signature was verified when they entered an authenticated
// store (see AuthenticatedPurse).
func (v *Verifier) checkIssuerKey(c *Coin) error {
	_, err := v.issuerKey(c)
	return err
}

// issuerKey returns the catalogue entry of the key that signed c, once the
// coin's public fields and algorithm are known to match it.
func (v *Verifier) issuerKey(c *Coin) (*IssuerKey, error) {
	k, err := v.key(c.Data.Issuer, c.Data.KeyID, UseCoin)
	if err != nil {
		return nil, err
	}
	if c.Data.Value != k.Value || c.Data.Currency != k.Currency {
		return nil, fmt.Errorf("%w: coin says %d %s, key %q signs %d %s", ErrKeyMismatch,
			c.Data.Value, c.Data.Currency, k.KeyID, k.Value, k.Currency)
	}
	if c.Data.Expires.After(k.DepositUntil) {
		return nil, fmt.Errorf("%w: coin expires after its key's deposit deadline", ErrKeyMismatch)
	}
	if c.Signature.Alg != k.Alg {
		return nil, fmt.Errorf("%w %q", ErrAlgorithm, c.Signature.Alg)
	}
	switch k.Alg {
	case AlgBlindRSA:
		if err := checkBlindFields(c, k); err != nil {
			return nil, err
		}
		return k, nil
	case AlgEd25519:
		return k, nil
	default:
		return nil, fmt.Errorf("%w %q", ErrAlgorithm, k.Alg)
	}
}

// CheckPayable reports whether a coin may still be paid on at now.
func CheckPayable(c *Coin, now time.Time) error {
	if !now.Before(c.Data.Expires) {
		return fmt.Errorf("coin %.12s: %w: payable until %s", c.Data.Token, ErrExpired, c.Data.Expires.Format(time.RFC3339))
	}
	return nil
}

// CheckDepositable reports whether a coin may still be deposited at now.
func (v *Verifier) CheckDepositable(c *Coin, now time.Time) error {
	k, err := v.key(c.Data.Issuer, c.Data.KeyID, UseCoin)
	if err != nil {
		return fmt.Errorf("coin %.12s: %w", c.Data.Token, err)
	}
	if !now.Before(k.DepositUntil) {
		return fmt.Errorf("coin %.12s: %w: deposit deadline %s", c.Data.Token, ErrExpired, k.DepositUntil.Format(time.RFC3339))
	}
	return nil
}

// VerifyExchangeKey checks an exchange key's certification and that it is
// still valid at now.
func (v *Verifier) VerifyExchangeKey(k *ExchangeKey, now time.Time) error {
	var b sigBatch
	if err := v.checkExchangeKey(k, now, &b); err != nil {
		return err
	}
	return b.verify()
}

// verifyExchangeKeys is VerifyExchangeKey for every key, with the bank's
// Ed25519 signatures verified as one batch.
func (v *Verifier) verifyExchangeKeys(ks []ExchangeKey, now time.Time) error {
	bs := make([]sigBatch, len(ks))
	err := parallel.ForEach(len(ks), func(i int) error {
		return v.checkExchangeKey(&ks[i], now, &bs[i])
	})
	if err != nil {
		return err
	}
	return verifyAll(bs)
}

func (v *Verifier) checkExchangeKey(k *ExchangeKey, now time.Time, b *sigBatch) error {
	if err := v.checkCertificate(k, true, b, nil); err != nil {
		return err
	}
	if !now.Before(k.Expires) {
		return fmt.Errorf("exchange key %.12s: %w at %s", k.Pub, ErrExpired, k.Expires.Format(time.RFC3339))
	}
	return nil
}

// rsaKey returns the parsed blind RSA key of text form s.
func (v *Verifier) rsaKey(s string) (*rsa.PublicKey, error) {
	if k, ok := v.rsaKeys.Load(s); ok {
		return k.(*rsa.PublicKey), nil
	}
	k, err := decodeRSAKey(s)
	if err != nil {
		return nil, err
	}
	v.rsaKeys.Store(s, k)
	return k, nil
}

// checkCertificate is certified, with the bank's signature checked only if
// sig: a caller that holds a byte-for-byte copy of a certificate it
// verified before may skip that one signature, but the certifying key must
// still be in the catalogue now.
//
// The bank's Ed25519 signature is queued in b, named by name (nil: by the
// key alone).
func (v *Verifier) checkCertificate(k *ExchangeKey, sig bool, b *sigBatch, name func(error) error) error {
	ik, err := v.key(k.Issuer, k.KeyID, UseExchange)
	if err != nil {
		return fmt.Errorf("exchange key %.12s: %w", k.Pub, err)
	}
	if _, err := k.PublicKey(); err != nil {
		return fmt.Errorf("exchange key: %w", err)
	}
	if k.Expires.After(ik.DepositUntil) {
		return fmt.Errorf("exchange key %.12s: %w: valid beyond its certifying key", k.Pub, ErrKeyMismatch)
	}
	if ik.Alg == AlgBlindRSA {
		// Certified blindly: the key fixes what the bank could not see.
		if len(k.Attrs) > 0 || !sameTime(k.Expires, ik.DepositUntil.UTC()) {
			return fmt.Errorf("exchange key %.12s: %w: a blind-certified key carries no attributes and expires at %s", k.Pub, ErrKeyMismatch, ik.DepositUntil.Format(time.RFC3339))
		}
		if !sig {
			return nil
		}
		pub, err := v.rsaKey(ik.Public)
		if err != nil {
			return err
		}
		msg, err := k.blindMessage()
		if err != nil {
			return fmt.Errorf("exchange key: %w", err)
		}
		if err := verifyBlind(pub, k.Sig, msg); err != nil {
			return fmt.Errorf("exchange key %.12s: %w", k.Pub, err)
		}
		return nil
	}
	if !sig {
		return nil
	}
	pub, err := DecodeKey(ik.Public)
	if err != nil {
		return err
	}
	p, err := k.payload()
	if err != nil {
		return fmt.Errorf("exchange key: %w", err)
	}
	keyName := named("exchange key %.12s", k.Pub)
	if name != nil {
		keyName = within(name, keyName)
	}
	if err := b.add(keyName, pub, k.Sig, labelExchangeKey, p); err != nil {
		return fmt.Errorf("exchange key %.12s: %w", k.Pub, err)
	}
	return nil
}

// VerifySandbox checks the coin and every link of its chain: each link
// signed by the previous holder and naming a bank-certified exchange key.
func (v *Verifier) VerifySandbox(s *Sandbox) error {
	var b sigBatch
	if err := v.checkCoin(&s.Coin, &b); err != nil {
		return err
	}
	if err := v.checkChain(s, false, &b); err != nil {
		return err
	}
	return b.verify()
}

// VerifyDeposits checks, for every i, the sandbox ss[i] as VerifySandbox
// does and proofs[i] as ss[i].VerifyDepositProof(proofs[i], account) does,
// and returns each one's error, nil where it holds; the proof of a sandbox
// that fails is not checked, and its proof error is nil. Every signature
// of every coin is verified in one batch, on the calling goroutine (a bank
// spreads a deposit's coins over its own workers), yet each coin gets the
// answer it would get alone: one bad coin refuses only itself.
func (v *Verifier) VerifyDeposits(ss []*Sandbox, proofs []string, account string) (sandboxErrs, proofErrs []error) {
	if len(proofs) != len(ss) {
		panic(fmt.Sprintf("otp: VerifyDeposits: %d proofs for %d sandboxes", len(proofs), len(ss)))
	}
	sandboxErrs, proofErrs = make([]error, len(ss)), make([]error, len(ss))
	// Batch 2i holds sandbox i's signatures, 2i+1 its proof's.
	bs := make([]sigBatch, 2*len(ss))
	for i, s := range ss {
		if sandboxErrs[i] = v.checkCoin(&s.Coin, &bs[2*i]); sandboxErrs[i] == nil {
			sandboxErrs[i] = v.checkChain(s, false, &bs[2*i])
		}
		if sandboxErrs[i] != nil {
			bs[2*i].checks = nil
			continue
		}
		proofErrs[i] = s.checkDepositProof(proofs[i], account, &bs[2*i+1])
	}
	for j, err := range verifyEach(bs) {
		if err == nil {
			continue
		}
		if i := j / 2; j%2 == 0 {
			sandboxErrs[i] = err
		} else if sandboxErrs[i] == nil && proofErrs[i] == nil {
			proofErrs[i] = err
		}
	}
	for i := range ss {
		if sandboxErrs[i] != nil {
			proofErrs[i] = nil
		}
	}
	return sandboxErrs, proofErrs
}

// verifySandboxes checks every sandbox as VerifySandbox does, on all CPUs,
// and returns the error of the first one that fails.
func (v *Verifier) verifySandboxes(ss []Sandbox) error {
	return v.VerifyReceived(ss, nil)
}

// VerifyReceived is verifySandboxes for a payee that knows some
// certificates already: own reports whether an exchange key is, byte for
// byte, a certificate the caller verified itself and still holds (its own
// exchange key, read from its vault). The certificate of the last link of
// such a coin is then not verified again: the bank's signature over those
// exact fields was checked when the key was certified, and the catalogue
// lookup is still made. Every other signature is verified. own may be nil.
func (v *Verifier) VerifyReceived(ss []Sandbox, own func(*ExchangeKey) bool) error {
	bs := make([]sigBatch, len(ss))
	err := parallel.ForEach(len(ss), func(i int) error {
		s := &ss[i]
		if err := v.checkCoin(&s.Coin, &bs[i]); err != nil {
			return err
		}
		last := len(s.Chain) - 1
		return v.checkChain(s, last >= 0 && own != nil && own(&s.Chain[last].To), &bs[i])
	})
	if err != nil {
		return err
	}
	return verifyAll(bs)
}

// verifyChain checks every link of s's chain (not its coin).
func (v *Verifier) verifyChain(s *Sandbox) error {
	var b sigBatch
	if err := v.checkChain(s, false, &b); err != nil {
		return err
	}
	return b.verify()
}

// checkChain is verifyChain with the signatures queued in b; ownLast skips
// the bank's signature on the last link's certificate (see VerifyReceived).
func (v *Verifier) checkChain(s *Sandbox, ownLast bool, b *sigBatch) error {
	if err := v.checkRevoked(s); err != nil {
		return err
	}
	sum, err := s.Coin.checksumBytes()
	if err != nil {
		return err
	}
	for i := range s.Chain {
		l := &s.Chain[i]
		linkName := named("coin %.12s link %d: %w", s.Coin.Data.Token, i, ErrChain)
		if err := v.checkCertificate(&l.To, !(ownLast && i == len(s.Chain)-1), b, linkName); err != nil {
			return fmt.Errorf("coin %.12s link %d: %w: %w", s.Coin.Data.Token, i, ErrChain, err)
		}
		signer, err := DecodeKey(s.HolderAt(i))
		if err != nil {
			return fmt.Errorf("coin %.12s link %d: %w: %w", s.Coin.Data.Token, i, ErrChain, err)
		}
		head, canon, err := linkPayload(sum, i, &l.To)
		if err != nil {
			return err
		}
		sigName := named("coin %.12s link %d: %w: not signed by the previous holder", s.Coin.Data.Token, i, ErrChain)
		if err := b.add(sigName, signer, l.Sig, labelTransfer, head, canon); err != nil {
			return sigName(err)
		}
	}
	return nil
}
