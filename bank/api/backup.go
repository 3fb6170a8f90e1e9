package api

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/otpcash/otpcash/otp"
)

// A bank-held backup (PUT and GET /v1/backups/{id}) is a wallet's
// encrypted backup, opaque to the bank, stored under an id that is the
// hash of the wallet's bank-backup key (derived from its recovery phrase,
// package wallet/recovery). Every upload is signed by that key over the
// id, a version and the data's hash; the bank keeps one copy per id and
// takes only a version above the stored one, so an old upload replayed
// cannot roll the copy back, and no key can write under another key's id.
const (
	// MaxBackupData bounds the data of a bank-held backup: 4 MiB, a
	// wallet of about 2,000 coins (a coin with a short chain and its
	// authorisation is under 2 KB in a backup). A larger upload is refused
	// (413, too_large) from its Content-Length, before its body is read.
	MaxBackupData = 4 << 20
	// MaxBackupVersion is the largest version: the largest integer JSON
	// carries exactly.
	MaxBackupVersion = 1<<53 - 1
)

// BackupKeyHeader carries the public bank-backup key on GET
// /v1/backups/{id}: the bank serves the copy only to a request whose key
// hashes to the id, so the id alone (in a request log, say) fetches
// nothing.
const BackupKeyHeader = "Otpcash-Backup-Key"

// BackupUpload is the body of PUT /v1/backups/{id}. Binary values are
// unpadded base64url.
type BackupUpload struct {
	Key       string `json:"key"`       // the public bank-backup key; BackupID(Key) is the id
	Version   int64  `json:"version"`   // 1 to MaxBackupVersion, above the stored copy's
	Data      string `json:"data"`      // the backup, at most MaxBackupData bytes
	Signature string `json:"signature"` // Key's Ed25519 signature of backupMessage
}

// BackupStored answers PUT /v1/backups/{id}.
type BackupStored struct {
	Version int64     `json:"version"`
	Size    int       `json:"size"`
	Updated time.Time `json:"updated"`
}

// Backup answers GET /v1/backups/{id}: the stored copy.
type Backup struct {
	Version int64     `json:"version"`
	Data    string    `json:"data"`
	Updated time.Time `json:"updated"`
}

// BackupID is the id of the bank-held backup of the wallet whose
// bank-backup key is pub: the unpadded base64url SHA-256 of
// "otpcash/v1/backup-id", a zero byte and pub.
func BackupID(pub ed25519.PublicKey) string {
	h := sha256.New()
	h.Write([]byte("otpcash/v1/backup-id\x00"))
	h.Write(pub)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// backupMessage is what an upload's key signs: the label
// "otpcash/v1/backup-upload", a zero byte, the id, a zero byte, the
// version (8 bytes, big-endian) and the SHA-256 of the data.
func backupMessage(id string, version int64, data []byte) []byte {
	sum := sha256.Sum256(data)
	m := append([]byte("otpcash/v1/backup-upload\x00"), id...)
	m = append(m, 0)
	m = binary.BigEndian.AppendUint64(m, uint64(version))
	return append(m, sum[:]...)
}

// SignBackup returns the upload of data as version under key's id
// (BackupID of its public half).
func SignBackup(key ed25519.PrivateKey, version int64, data []byte) (id string, u BackupUpload) {
	pub := key.Public().(ed25519.PublicKey)
	id = BackupID(pub)
	return id, BackupUpload{
		Key:       otp.EncodeKey(pub),
		Version:   version,
		Data:      base64.RawURLEncoding.EncodeToString(data),
		Signature: base64.RawURLEncoding.EncodeToString(otp.SignEd25519(key, backupMessage(id, version, data))),
	}
}

// Errors of CheckBackupKey and BackupUpload.Open.
var (
	ErrBackupKey       = errors.New("backup key does not name this backup")
	ErrBackupSignature = errors.New("backup upload signature does not verify")
	ErrBackupTooLarge  = errors.New("backup larger than the bank holds")
)

// CheckBackupKey checks that the encoded public key key names id.
func CheckBackupKey(id, key string) (ed25519.PublicKey, error) {
	pub, err := otp.DecodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackupKey, err)
	}
	if BackupID(pub) != id {
		return nil, ErrBackupKey
	}
	return pub, nil
}

// Open checks an upload for id, strictly: its key names id, its version
// is in range, its data is at most MaxBackupData bytes and its signature
// verifies. It returns the data.
func (u *BackupUpload) Open(id string) ([]byte, error) {
	pub, err := CheckBackupKey(id, u.Key)
	if err != nil {
		return nil, err
	}
	if u.Version < 1 || u.Version > MaxBackupVersion {
		return nil, fmt.Errorf("backup version %d: want 1 to %d", u.Version, int64(MaxBackupVersion))
	}
	if base64.RawURLEncoding.DecodedLen(len(u.Data)) > MaxBackupData {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBackupTooLarge, MaxBackupData)
	}
	data, err := base64.RawURLEncoding.Strict().DecodeString(u.Data)
	if err != nil {
		return nil, fmt.Errorf("backup data: %v", err)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(u.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: malformed", ErrBackupSignature)
	}
	if !otp.VerifyEd25519(pub, backupMessage(id, u.Version, data), sig) {
		return nil, ErrBackupSignature
	}
	return data, nil
}
