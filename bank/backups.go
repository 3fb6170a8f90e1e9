package bank

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/storage"
)

// maxBackupBody bounds an upload's body: its data in base64 and room for
// the key, version and signature.
var maxBackupBody = int64(base64.RawURLEncoding.EncodedLen(api.MaxBackupData) + 1024)

// backupIDLen is the length of an id: 32 bytes in unpadded base64url.
var backupIDLen = base64.RawURLEncoding.EncodedLen(32)

func checkBackupID(id string) error {
	if raw, err := base64.RawURLEncoding.Strict().DecodeString(id); err != nil || len(id) != backupIDLen || len(raw) != 32 {
		return badRequest("backup id: want 32 bytes in unpadded base64url")
	}
	return nil
}

func forbidden(err error) error {
	return api.Errorf(http.StatusForbidden, api.CodeForbidden, "%v", err)
}

// handlePutBackup stores a wallet's opaque backup under its id. The bank
// holds it for whoever has the key the id is the hash of, and learns
// nothing of it but its size and the times of its uploads.
func (b *Bank) handlePutBackup(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := checkBackupID(id); err != nil {
		return err
	}
	// Refused by its announced size, before any of it is read; a body
	// without one is cut off at the bound (decode).
	if r.ContentLength > maxBackupBody {
		return api.Errorf(http.StatusRequestEntityTooLarge, api.CodeTooLarge,
			"backup upload of %d bytes: the bank holds backups of at most %d bytes (%d in the request)", r.ContentLength, api.MaxBackupData, maxBackupBody)
	}
	if err := b.chargeNewBackup(w, r, id); err != nil {
		return err
	}
	data, version, err := parseBackupUpload(http.MaxBytesReader(w, r.Body, maxBackupBody), id)
	if err != nil {
		return err
	}
	stored, err := b.putBackup(r.Context(), id, version, data)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, stored)
	return nil
}

// chargeNewBackup takes one from the request address's budget of new
// backups if nothing is stored under id yet, or refuses with 429 before
// the body is read. Replacing a stored backup costs nothing: it does not
// grow the bank's storage.
func (b *Bank) chargeNewBackup(w http.ResponseWriter, r *http.Request, id string) error {
	var stored bool
	err := b.st.View(r.Context(), func(tx storage.Tx) (err error) {
		stored, err = tx.HasBackup(r.Context(), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("put backup: %w", err)
	}
	if stored {
		return nil
	}
	if res, wait := b.backups.reserve(r.RemoteAddr, b.now(), 1); res == nil {
		if wait == 0 {
			return refuseForNow(w, time.Second, "the bank takes new backups from too many addresses at once")
		}
		return refuseForNow(w, wait, "your address has created its budget of new backups (%d at once, one more every %s)",
			b.cfg.BackupBurst, time.Duration(float64(time.Second)/float64(b.cfg.BackupRate)).Round(time.Second))
	}
	return nil
}

// parseBackupUpload decodes and checks an upload for backup id, strictly,
// and returns its data and version.
func parseBackupUpload(r io.Reader, id string) ([]byte, int64, error) {
	var up api.BackupUpload
	if err := decode(r, &up); err != nil {
		return nil, 0, err
	}
	data, err := up.Open(id)
	switch {
	case errors.Is(err, api.ErrBackupKey), errors.Is(err, api.ErrBackupSignature):
		return nil, 0, forbidden(err)
	case errors.Is(err, api.ErrBackupTooLarge):
		return nil, 0, api.Errorf(http.StatusRequestEntityTooLarge, api.CodeTooLarge, "%v", err)
	case err != nil:
		return nil, 0, badRequest("%v", err)
	}
	return data, up.Version, nil
}

// putBackup stores data as version of backup id, unless the stored copy's
// version is as high: an older upload replayed never replaces a newer
// one. The same upload again (same version, same data) is answered as
// the first was, so a client may retry.
func (b *Bank) putBackup(ctx context.Context, id string, version int64, data []byte) (api.BackupStored, error) {
	now := b.now()
	var out api.BackupStored
	err := b.st.Update(ctx, func(tx storage.Tx) error {
		old, err := tx.Backup(ctx, id)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			old = storage.Backup{ID: id, Created: now}
		case err != nil:
			return err
		case old.Version == version && bytes.Equal(old.Data, data):
			out = api.BackupStored{Version: old.Version, Size: len(old.Data), Updated: old.Updated}
			return nil
		case old.Version >= version:
			return api.Errorf(http.StatusConflict, api.CodeStaleVersion,
				"backup version %d is not above the stored version %d", version, old.Version)
		}
		nb := storage.Backup{ID: id, Version: version, Data: data, Created: old.Created, Updated: now}
		if err := tx.PutBackup(ctx, nb); err != nil {
			return err
		}
		out = api.BackupStored{Version: version, Size: len(data), Updated: now}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("put backup: %w", err)
	}
	return out, nil
}

// handleGetBackup returns the backup stored under id to a request that
// shows the key whose hash the id is.
func (b *Bank) handleGetBackup(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := checkBackupID(id); err != nil {
		return err
	}
	key := r.Header.Get(api.BackupKeyHeader)
	if key == "" {
		return badRequest("missing %s header: the public key the backup id is the hash of", api.BackupKeyHeader)
	}
	if _, err := api.CheckBackupKey(id, key); err != nil {
		return forbidden(err)
	}
	var bk storage.Backup
	err := b.st.View(r.Context(), func(tx storage.Tx) (err error) {
		bk, err = tx.Backup(r.Context(), id)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return api.Errorf(http.StatusNotFound, api.CodeNotFound, "no backup is stored under this id")
	}
	if err != nil {
		return fmt.Errorf("get backup: %w", err)
	}
	writeJSON(w, http.StatusOK, api.Backup{Version: bk.Version, Data: base64.RawURLEncoding.EncodeToString(bk.Data), Updated: bk.Updated})
	return nil
}
