// Package recovery turns a wallet's recovery phrase into the secrets that
// recovering a lost wallet needs, and nothing else: the wallet's id, the
// recovery key that claims its coins at the bank after their deadline,
// and the key of its backups. No key that can sign a transfer comes from
// the phrase, so knowing the phrase never lets anyone pay a coin offline
// (docs/PROTOCOL.md, "Recovery phrase, backups and recovery through the
// bank").
package recovery

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/tyler-smith/go-bip39"
)

// Words is the length of a phrase: 24 BIP-39 words carry 256 bits of
// entropy.
const Words = 24

// IDSize is the size of a wallet id in bytes.
const IDSize = 16

// ErrPhrase reports a phrase that is not 24 words of the BIP-39 English
// list with a valid checksum.
var ErrPhrase = errors.New("not a valid recovery phrase")

// Phrase is a recovery phrase: 24 words of the BIP-39 English list.
type Phrase struct{ words string }

// NewPhrase makes a fresh phrase from 256 random bits.
func NewPhrase() (Phrase, error) {
	entropy := make([]byte, 32)
	if _, err := rand.Read(entropy); err != nil {
		return Phrase{}, err
	}
	m, err := bip39.NewMnemonic(entropy)
	if err != nil {
		return Phrase{}, err
	}
	return Phrase{m}, nil
}

// ParsePhrase reads a phrase typed by a person: words separated by any
// white space, in any case. It refuses a word not on the list, a wrong
// count and a wrong checksum, so a mistyped phrase is caught here rather
// than turning into the keys of a wallet that never existed.
func ParsePhrase(s string) (Phrase, error) {
	words := strings.Fields(strings.ToLower(s))
	if len(words) != Words {
		return Phrase{}, fmt.Errorf("%w: %d words, want %d", ErrPhrase, len(words), Words)
	}
	for i, w := range words {
		if _, ok := bip39.GetWordIndex(w); !ok {
			return Phrase{}, fmt.Errorf("%w: word %d is not on the list", ErrPhrase, i+1)
		}
	}
	m := strings.Join(words, " ")
	if _, err := bip39.EntropyFromMnemonic(m); err != nil {
		return Phrase{}, fmt.Errorf("%w: %v", ErrPhrase, err)
	}
	return Phrase{m}, nil
}

// String returns the phrase's words separated by single spaces.
func (p Phrase) String() string { return p.words }

// Keys are the secrets derived from a phrase.
type Keys struct {
	// ID names the wallet, in the clear in its backups.
	ID [IDSize]byte
	// Recovery signs the claims of the wallet's coins at the bank; the
	// vault keeps only its public half, which the coins' holder keys
	// authorise.
	Recovery ed25519.PrivateKey
	// Backup is the XChaCha20-Poly1305 key of the wallet's backups.
	Backup [32]byte
	// BankBackup signs the uploads of the wallet's backups to its bank
	// (PUT /v1/backups/{id}); its public key names the bank's copy
	// (api.BackupID). It signs nothing else.
	BankBackup ed25519.PrivateKey
}

const infoPrefix = "otpcash/v1/recovery/"

// Derive derives the wallet's recovery secrets from p: HKDF-SHA256 of
// its BIP-39 seed (empty passphrase), one distinct info per secret.
func (p Phrase) Derive() (Keys, error) {
	if p.words == "" {
		return Keys{}, fmt.Errorf("%w: empty", ErrPhrase)
	}
	seed := bip39.NewSeed(p.words, "")
	var k Keys
	if err := expand(seed, "wallet-id", k.ID[:]); err != nil {
		return Keys{}, err
	}
	rs := make([]byte, ed25519.SeedSize)
	if err := expand(seed, "recovery-key", rs); err != nil {
		return Keys{}, err
	}
	k.Recovery = ed25519.NewKeyFromSeed(rs)
	if err := expand(seed, "backup-key", k.Backup[:]); err != nil {
		return Keys{}, err
	}
	bs := make([]byte, ed25519.SeedSize)
	if err := expand(seed, "bank-backup-key", bs); err != nil {
		return Keys{}, err
	}
	k.BankBackup = ed25519.NewKeyFromSeed(bs)
	return k, nil
}

func expand(seed []byte, name string, out []byte) error {
	b, err := hkdf.Key(sha256.New, seed, nil, infoPrefix+name, len(out))
	if err != nil {
		return fmt.Errorf("derive %s: %w", name, err)
	}
	copy(out, b)
	return nil
}

// RecoveryKey returns the public recovery key.
func (k *Keys) RecoveryKey() ed25519.PublicKey { return k.Recovery.Public().(ed25519.PublicKey) }
