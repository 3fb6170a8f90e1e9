package wallet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/vault"
	"github.com/otpcash/otpcash/wallet/recovery"
)

var (
	// ErrBackupStale reports that the bank holds a backup of this wallet
	// newer than any this device uploaded or fetched: another device of
	// the same phrase wrote it (a lost phone's, seen from the new one).
	// Uploading would replace it: recover from it first (FetchBackup,
	// Recover), which also lets this device upload.
	ErrBackupStale = errors.New("the bank holds a newer backup of this wallet than this device knows")
	// ErrNoBankBackup reports that the bank holds no backup of this
	// wallet.
	ErrNoBankBackup = errors.New("the bank holds no backup of this wallet")
	// ErrNeedPhrase reports a wallet made before bank-held backups: its
	// vault lacks the key that signs the uploads, which only the phrase
	// derives. Give the phrase once (BackupToBank).
	ErrNeedPhrase = errors.New("this wallet's vault predates bank-held backups: give the recovery phrase once")
)

// settingBankVersion is the version of the newest backup this wallet
// uploaded to its bank, or fetched from it and recovered from (JSON
// number).
const settingBankVersion = "recovery/bank-version"

// settingBankFetched is the backup last fetched from the bank, until a
// recovery takes it in (fetched).
const settingBankFetched = "recovery/bank-fetched"

// fetched names a backup fetched from the bank: its version and the
// SHA-256 of its data.
type fetched struct {
	Version int64  `json:"version"`
	Sum     []byte `json:"sum"`
}

// recoveredFrom lets the wallet upload above the bank's copy once a
// recovery imported exactly the copy FetchBackup fetched: a fetch alone,
// or a recovery refused (a wrong phrase, say), must not let this device
// replace the lost wallet's backup with its own.
func (w *Wallet) recoveredFrom(ctx context.Context, backup []byte) error {
	raw, err := w.v.Setting(ctx, settingBankFetched)
	if errors.Is(err, vault.ErrNotFound) {
		return nil
	}
	var f fetched
	if err == nil {
		err = json.Unmarshal(raw, &f)
	}
	if err != nil {
		return err
	}
	if sum := sha256.Sum256(backup); !bytes.Equal(sum[:], f.Sum) {
		return nil
	}
	last, err := w.bankVersion(ctx)
	if err != nil || last >= f.Version {
		return err
	}
	return w.setJSON(ctx, settingBankVersion, f.Version)
}

// BankBackup is what the bank holds of the wallet's backup.
type BankBackup struct {
	Version int64     `json:"version"`
	Size    int       `json:"size"`
	Updated time.Time `json:"updated"`
}

// bankKey returns the key that signs the wallet's uploads. A vault made
// before bank-held backups has none: p, which must be this wallet's
// phrase, supplies it, and the vault keeps it from then on.
func (w *Wallet) bankKey(ctx context.Context, p *recovery.Phrase) (ed25519.PrivateKey, error) {
	s, err := w.recoverySecrets(ctx)
	if err != nil {
		return nil, err
	}
	if len(s.BankKey) == ed25519.SeedSize {
		return ed25519.NewKeyFromSeed(s.BankKey), nil
	}
	if p == nil {
		return nil, ErrNeedPhrase
	}
	k, err := p.Derive()
	if err != nil {
		return nil, err
	}
	if id, _ := s.secrets(); id != k.ID {
		return nil, fmt.Errorf("%w: this wallet was made from another phrase", ErrWrongPhrase)
	}
	s.BankKey = k.BankBackup.Seed()
	if err := w.setJSON(ctx, settingRecovery, s); err != nil {
		return nil, err
	}
	return k.BankBackup, nil
}

func (w *Wallet) bankVersion(ctx context.Context) (int64, error) {
	var v int64
	raw, err := w.v.Setting(ctx, settingBankVersion)
	if errors.Is(err, vault.ErrNotFound) {
		return 0, nil
	}
	if err == nil {
		err = json.Unmarshal(raw, &v)
	}
	return v, err
}

// BackupToBank uploads the wallet's backup (Backup) to its bank, which
// keeps the newest copy for the phrase's bank-backup key and learns
// nothing but its size and the upload times. p is needed only once, by a
// wallet made before bank-held backups (ErrNeedPhrase); nil otherwise.
// It refuses (ErrBackupStale) to replace a copy that another device of
// the phrase wrote after this one's last upload or fetch.
func (w *Wallet) BackupToBank(ctx context.Context, p *recovery.Phrase) (BankBackup, error) {
	key, err := w.bankKey(ctx, p)
	if err != nil {
		return BankBackup{}, fmt.Errorf("backup to the bank: %w", err)
	}
	data, err := w.Backup(ctx)
	if err != nil {
		return BankBackup{}, err
	}
	if len(data) > api.MaxBackupData {
		return BankBackup{}, fmt.Errorf("backup to the bank: %d bytes, the bank holds at most %d: write it to a file", len(data), api.MaxBackupData)
	}
	last, err := w.bankVersion(ctx)
	if err != nil {
		return BankBackup{}, fmt.Errorf("backup to the bank: %w", err)
	}
	// The version is counted before the upload: a crash after the bank
	// stored it leaves the next upload a higher version, never the same
	// version with other data, which the bank would refuse as stale.
	version := last + 1
	if err := w.setJSON(ctx, settingBankVersion, version); err != nil {
		return BankBackup{}, fmt.Errorf("backup to the bank: %w", err)
	}
	id, up := api.SignBackup(key, version, data)
	st, err := w.bank.PutBackup(ctx, id, up)
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == api.CodeStaleVersion {
		// Nothing was stored: the count goes back, or every refused try
		// would bring it closer to the other device's copy until one
		// replaced it.
		if err := w.setJSON(ctx, settingBankVersion, last); err != nil {
			return BankBackup{}, fmt.Errorf("backup to the bank: %w", err)
		}
		return BankBackup{}, fmt.Errorf("backup to the bank: %w (%s)", ErrBackupStale, ae.Message)
	}
	if err != nil {
		return BankBackup{}, fmt.Errorf("backup to the bank: %w", err)
	}
	return BankBackup{Version: st.Version, Size: st.Size, Updated: st.Updated}, nil
}

// FetchBackup fetches the backup the bank holds for this wallet's phrase,
// for Recover on a new device made from the phrase (InitFromPhrase);
// ErrNoBankBackup if it holds none. Once Recover has taken in exactly
// this copy, this device may replace it with its own backups. The data
// is returned unchecked: Recover opens it with the phrase.
func (w *Wallet) FetchBackup(ctx context.Context) ([]byte, BankBackup, error) {
	key, err := w.bankKey(ctx, nil)
	if err != nil {
		return nil, BankBackup{}, fmt.Errorf("fetch backup: %w", err)
	}
	data, b, err := w.bank.GetBackup(ctx, key.Public().(ed25519.PublicKey))
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == api.CodeNotFound {
		return nil, BankBackup{}, fmt.Errorf("fetch backup: %w", ErrNoBankBackup)
	}
	if err != nil {
		return nil, BankBackup{}, fmt.Errorf("fetch backup: %w", err)
	}
	sum := sha256.Sum256(data)
	if err := w.setJSON(ctx, settingBankFetched, fetched{Version: b.Version, Sum: sum[:]}); err != nil {
		return nil, BankBackup{}, fmt.Errorf("fetch backup: %w", err)
	}
	return data, BankBackup{Version: b.Version, Size: len(data), Updated: b.Updated}, nil
}

// BackupToFile writes the wallet's backup (Backup) to the file name
// through a temporary file in the same directory, renamed over it once
// synced: a crash leaves the old backup or the new one, never half. It
// returns the backup's size.
func (w *Wallet) BackupToFile(ctx context.Context, name string) (int, error) {
	data, err := w.Backup(ctx)
	if err != nil {
		return 0, err
	}
	if err := writeFileAtomic(name, data); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	return len(data), nil
}

func writeFileAtomic(name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".backup-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return err
	}
	// The rename is durable once the directory is.
	if d, err := os.Open(filepath.Dir(name)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// backupFile is the name of the backup Options.BackupDir holds for the
// wallet: one file per wallet id, replaced by each new backup.
func (w *Wallet) backupFile(ctx context.Context) (string, error) {
	s, err := w.recoverySecrets(ctx)
	if err != nil {
		return "", err
	}
	return filepath.Join(w.opts.BackupDir, "otpcash-"+hex.EncodeToString(s.ID)+".backup"), nil
}

// autoBackup writes the backup to Options.BackupDir, if set, after a
// change of the wallet's coins. A failure is logged, never the change's:
// the payment happened either way.
func (w *Wallet) autoBackup(ctx context.Context) {
	if w.opts.BackupDir == "" {
		return
	}
	name, err := w.backupFile(ctx)
	if err == nil {
		_, err = w.BackupToFile(ctx, name)
	}
	if err != nil {
		w.log.Warn("backup to the backup directory failed", "dir", w.opts.BackupDir, "err", err)
	}
}
