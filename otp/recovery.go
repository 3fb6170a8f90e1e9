package otp

import (
	"crypto/ed25519"
	"fmt"
)

// A wallet whose device is lost claims its coins at the bank after their
// deposit deadline with a recovery key derived from its recovery phrase.
// The phrase must not be able to move a coin offline, so the recovery key
// is never a holder key: the holder key of each coin signs, while the
// wallet still has it, an authorisation naming the recovery key for the
// coin as held, and the recovery key signs the claim. Unlike a reclaim,
// the authorisation covers a coin the wallet holds: the chain as it
// stands, and no payee.

// RecoveryAuthorization signs, with holder, the current holder key of s,
// an authorisation for the recovery key r to claim s with its chain as it
// is: it covers the checksum, the chain length and r.
func (s *Sandbox) RecoveryAuthorization(holder ed25519.PrivateKey, r ed25519.PublicKey) (string, error) {
	if !equalText(EncodeKey(holder.Public().(ed25519.PublicKey)), s.Holder()) {
		return "", fmt.Errorf("recovery authorisation %s: %w: key is not the current holder", s.Coin.Data.Token, ErrChain)
	}
	payload, err := s.recoveryKeyPayload(EncodeKey(r))
	if err != nil {
		return "", err
	}
	return sign(holder, labelRecoveryKey, payload), nil
}

func (s *Sandbox) recoveryKeyPayload(r string) ([]byte, error) {
	sum, err := s.Coin.checksumBytes()
	if err != nil {
		return nil, err
	}
	return indexPayload(sum, len(s.Chain), r), nil
}

// RecoveryProof signs, with the recovery key r, the claim to credit s to
// account.
func (s *Sandbox) RecoveryProof(r ed25519.PrivateKey, account string) (string, error) {
	sum, err := s.Coin.checksumBytes()
	if err != nil {
		return "", err
	}
	return sign(r, labelRecover, indexPayload(sum, len(s.Chain), account)), nil
}

// VerifyRecovery checks that the current holder key of s authorised the
// recovery key r (auth), and that r signed the claim to credit account
// (proof). It does not verify the coin or the chain (see VerifySandbox).
func (s *Sandbox) VerifyRecovery(auth, r, proof, account string) error {
	payload, err := s.recoveryKeyPayload(r)
	if err != nil {
		return err
	}
	return s.verifyClaim("recovery", s.Holder(), labelRecoveryKey, payload, auth, r, labelRecover, proof, account)
}
