package otp

import (
	"crypto/ed25519"
	"fmt"
)

// A payer whose sealed coin never reached its payee (the payee vanished)
// can reclaim it at the bank once the coin's deposit deadline has passed,
// if nobody deposited it. The sandbox alone cannot show who asks: the
// payee holds it too. So when the payer's vault seals a coin, the holder
// key that signs the transfer also signs a reclaim authorisation naming a
// fresh reclaim key that only the payer keeps (it is never sent); to
// reclaim, the payer signs the request with that key. Coins sealed
// together may share a reclaim key: the authorisation and the request
// both cover the coin's checksum.

// ReclaimAuthorization signs, with holder, the key that signed the last
// link of the sealed sandbox s, an authorisation for the reclaim key r to
// reclaim s as sealed: it covers the checksum, the link's index and the
// exchange key it went to.
func (s *Sandbox) ReclaimAuthorization(holder ed25519.PrivateKey, r ed25519.PublicKey) (string, error) {
	last := len(s.Chain) - 1
	if last < 0 {
		return "", fmt.Errorf("reclaim authorisation %s: %w: the coin was never sealed", s.Coin.Data.Token, ErrChain)
	}
	if !equalText(EncodeKey(holder.Public().(ed25519.PublicKey)), s.HolderAt(last)) {
		return "", fmt.Errorf("reclaim authorisation %s: %w: key did not sign the last transfer", s.Coin.Data.Token, ErrChain)
	}
	payload, err := s.reclaimKeyPayload(EncodeKey(r))
	if err != nil {
		return "", err
	}
	return sign(holder, labelReclaimKey, payload), nil
}

func (s *Sandbox) reclaimKeyPayload(r string) ([]byte, error) {
	sum, err := s.Coin.checksumBytes()
	if err != nil {
		return nil, err
	}
	last := len(s.Chain) - 1
	return indexPayload(sum, last, r+"\x00"+s.Chain[last].To.Pub), nil
}

// ReclaimProof signs, with the reclaim key r, the request to credit the
// sealed sandbox s to account.
func (s *Sandbox) ReclaimProof(r ed25519.PrivateKey, account string) (string, error) {
	sum, err := s.Coin.checksumBytes()
	if err != nil {
		return "", err
	}
	return sign(r, labelReclaim, indexPayload(sum, len(s.Chain), account)), nil
}

// VerifyReclaim checks that the signer of s's last link authorised the
// reclaim key r (auth), and that r signed the request to credit account
// (proof). It does not verify the coin or the chain (see VerifySandbox).
func (s *Sandbox) VerifyReclaim(auth, r, proof, account string) error {
	last := len(s.Chain) - 1
	if last < 0 {
		return fmt.Errorf("reclaim %s: %w: the coin was never sealed", s.Coin.Data.Token, ErrChain)
	}
	payload, err := s.reclaimKeyPayload(r)
	if err != nil {
		return err
	}
	return s.verifyClaim("reclaim", s.HolderAt(last), labelReclaimKey, payload, auth, r, labelReclaim, proof, account)
}

// verifyClaim checks a claim made by a key r that the holder key signer
// authorised: auth, signer's signature under authLabel of authPayload, and
// proof, r's signature under proofLabel of the checksum, the chain length
// and account.
func (s *Sandbox) verifyClaim(what, signer, authLabel string, authPayload []byte, auth, r, proofLabel, proof, account string) error {
	holder, err := DecodeKey(signer)
	if err != nil {
		return err
	}
	rk, err := DecodeKey(r)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, s.Coin.Data.Token, err)
	}
	if err := verify(holder, auth, authLabel, authPayload); err != nil {
		return fmt.Errorf("%s %s: authorisation: %w", what, s.Coin.Data.Token, err)
	}
	sum, err := s.Coin.checksumBytes()
	if err != nil {
		return err
	}
	if err := verify(rk, proof, proofLabel, indexPayload(sum, len(s.Chain), account)); err != nil {
		return fmt.Errorf("%s %s: request: %w", what, s.Coin.Data.Token, err)
	}
	return nil
}
