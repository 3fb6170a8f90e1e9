package wallet

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/vault"
	"github.com/otpcash/otpcash/wallet/recovery"
)

// ErrNoPhrase reports a wallet made without a recovery phrase (Init): it
// has nothing to back up or recover with.
var ErrNoPhrase = errors.New("wallet has no recovery phrase")

const settingRecovery = "recovery"

// recoverySetting is what the vault keeps of the phrase's secrets: the
// wallet's id, the public recovery key, and the backup key, so that
// backups need no phrase. The phrase and the private recovery key are
// never stored.
type recoverySetting struct {
	ID        []byte `json:"id"`
	Key       string `json:"key"`
	BackupKey []byte `json:"backupKey"`
}

func newRecoverySetting(k *recovery.Keys) recoverySetting {
	return recoverySetting{ID: k.ID[:], Key: otp.EncodeKey(k.RecoveryKey()), BackupKey: k.Backup[:]}
}

// Create creates a wallet as Init does, from a fresh recovery phrase, and
// returns the phrase: the only time anyone sees it. The phrase recovers
// the wallet's coins through the bank after their deadline, with a backup
// (Backup); it cannot pay anything.
func Create(ctx context.Context, dir, bankURL string, pin []byte, opts Options) (*Wallet, recovery.Phrase, error) {
	p, err := recovery.NewPhrase()
	if err != nil {
		return nil, recovery.Phrase{}, fmt.Errorf("init: %w", err)
	}
	w, err := InitFromPhrase(ctx, dir, bankURL, pin, p, opts)
	if err != nil {
		return nil, recovery.Phrase{}, err
	}
	return w, p, nil
}

// InitFromPhrase creates a wallet as Init does, with the recovery secrets
// of an existing phrase: on a new device, to recover a lost wallet's
// coins (Recover). Its holder and exchange keys are new and random, as
// every wallet's: the lost wallet's coins never become payable here.
func InitFromPhrase(ctx context.Context, dir, bankURL string, pin []byte, p recovery.Phrase, opts Options) (*Wallet, error) {
	k, err := p.Derive()
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	return initWallet(ctx, dir, bankURL, pin, &k, opts)
}

// recoverySecrets returns the recovery secrets kept in the vault.
func (w *Wallet) recoverySecrets(ctx context.Context) (recoverySetting, error) {
	var s recoverySetting
	raw, err := w.v.Setting(ctx, settingRecovery)
	if errors.Is(err, vault.ErrNotFound) {
		return s, ErrNoPhrase
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("recovery setting: %w", err)
	}
	if _, err := otp.DecodeKey(s.Key); err != nil || len(s.ID) != recovery.IDSize || len(s.BackupKey) != 32 {
		return s, fmt.Errorf("recovery setting: malformed")
	}
	return s, nil
}

// recoveryKey decodes the stored public recovery key.
func (s *recoverySetting) recoveryKey() ed25519.PublicKey {
	k, _ := otp.DecodeKey(s.Key) // checked by recoverySecrets
	return k
}
