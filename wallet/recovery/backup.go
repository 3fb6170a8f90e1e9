package recovery

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/otpcash/otpcash/internal/strictjson"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/vault"
)

// A backup file is the magic, the wallet's id and a nonce, in the clear,
// then the XChaCha20-Poly1305 sealing, under the phrase's backup key with
// all of the header as associated data, of the JSON document Backup. The
// id in the clear lets a wallet refuse another wallet's backup by name
// rather than as a failed decryption.
const (
	backupMagic   = "otpcash/v1/backup\x00"
	backupHeader  = len(backupMagic) + IDSize + chacha20poly1305.NonceSizeX
	BackupVersion = 1
	// MaxBackup bounds a backup file: a wallet of a hundred thousand coins
	// fits; a file beyond it is refused before it is read whole.
	MaxBackup = 64 << 20
)

var (
	// ErrBackupFormat reports a file that is not a backup this version
	// reads.
	ErrBackupFormat = errors.New("not an otpcash backup")
	// ErrOtherWallet reports a backup of another wallet than the phrase's.
	ErrOtherWallet = errors.New("backup of another wallet")
	// ErrBackupAuth reports a backup that fails authentication: tampered,
	// truncated, or sealed under another key.
	ErrBackupAuth = errors.New("backup fails authentication")
)

// Backup is what a wallet keeps that its phrase cannot re-derive.
type Backup struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	// Coins are the held coins, each with its holder key's authorisation
	// of the wallet's recovery key.
	Coins   []Coin        `json:"coins"`
	History []vault.Event `json:"history"`
}

// Coin is a held coin as backed up.
type Coin struct {
	Sandbox       otp.Sandbox `json:"sandbox"`
	Authorization string      `json:"authorization"`
}

// SealBackup encrypts b for the wallet id under key.
func SealBackup(id [IDSize]byte, key *[32]byte, b *Backup) ([]byte, error) {
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return sealBackup(id, key, b, nonce)
}

func sealBackup(id [IDSize]byte, key *[32]byte, b *Backup, nonce []byte) ([]byte, error) {
	plain, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("seal backup: %w", err)
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return nil, err
	}
	header := append(append([]byte(backupMagic), id[:]...), nonce...)
	return aead.Seal(header, nonce, plain, header), nil
}

// BackupID returns the id of the wallet a backup file is of, checking only
// its header.
func BackupID(data []byte) ([IDSize]byte, error) {
	var id [IDSize]byte
	if len(data) < backupHeader || !bytes.HasPrefix(data, []byte(backupMagic)) {
		return id, fmt.Errorf("%w: no backup header", ErrBackupFormat)
	}
	copy(id[:], data[len(backupMagic):])
	return id, nil
}

// OpenBackup decrypts and parses a backup file of the wallet whose
// secrets are k.
func OpenBackup(k *Keys, data []byte) (*Backup, error) {
	if len(data) > MaxBackup {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBackupFormat, len(data), MaxBackup)
	}
	id, err := BackupID(data)
	if err != nil {
		return nil, err
	}
	if id != k.ID {
		return nil, fmt.Errorf("%w: the backup is of wallet %x, the phrase's is %x", ErrOtherWallet, id, k.ID)
	}
	aead, err := chacha20poly1305.NewX(k.Backup[:])
	if err != nil {
		return nil, err
	}
	header := data[:backupHeader]
	plain, err := aead.Open(nil, header[len(backupMagic)+IDSize:], data[backupHeader:], header)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackupAuth, err)
	}
	var b Backup
	if err := strictjson.Unmarshal(plain, &b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackupFormat, err)
	}
	if b.Version != BackupVersion {
		return nil, fmt.Errorf("%w: version %d, this wallet reads %d", ErrBackupFormat, b.Version, BackupVersion)
	}
	return &b, nil
}

// ReadBackup reads a backup file from r, refusing one beyond MaxBackup
// without reading it whole.
func ReadBackup(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBackup+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxBackup {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBackupFormat, MaxBackup)
	}
	return data, nil
}
