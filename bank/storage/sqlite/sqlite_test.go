package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/otpcash/otpcash/bank/storage"
	"github.com/otpcash/otpcash/bank/storage/sqlite"
	"github.com/otpcash/otpcash/bank/storage/storagetest"
)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return open(t, filepath.Join(t.TempDir(), "bank.db"))
	})
}

func TestFileModeAndPragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bank.db")
	st := open(t, path)
	defer st.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database file mode %v, want 0600: it holds private keys", fi.Mode().Perm())
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestReopenKeepsDataAndSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bank.db")
	ctx := context.Background()
	st := open(t, path)
	err := st.Update(ctx, func(tx storage.Tx) error {
		return tx.CreateAccount(ctx, storage.Account{ID: "a1", TokenHash: []byte("h")})
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	st = open(t, path)
	defer st.Close()
	err = st.View(ctx, func(tx storage.Tx) error {
		_, err := tx.Account(ctx, "a1")
		return err
	})
	if err != nil {
		t.Fatalf("account lost on reopen: %v", err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil || v != 4 {
		t.Errorf("schema version = %d, %v; want 4", v, err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bank.db")
	open(t, path).Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if st, err := sqlite.Open(context.Background(), path); err == nil {
		st.Close()
		t.Fatal("opened a database with a newer schema")
	}
}

func TestLedgerMismatchAfterTampering(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bank.db")
	ctx := context.Background()
	st := open(t, path)
	defer st.Close()
	err := st.Update(ctx, func(tx storage.Tx) error {
		return tx.CreateAccount(ctx, storage.Account{ID: "a1", TokenHash: []byte("h")})
	})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE accounts SET balance = 5 WHERE id = 'a1'`); err != nil {
		t.Fatal(err)
	}
	err = st.View(ctx, func(tx storage.Tx) error {
		m, err := tx.LedgerMismatches(ctx)
		if err != nil {
			return err
		}
		if len(m) != 1 || m[0] != (storage.LedgerMismatch{Account: "a1", Balance: 5, LedgerSum: 0}) {
			t.Errorf("mismatches = %+v", m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeAddsBackups opens a database of schema version 3, from
// before bank-held backups: the upgrade adds their table and keeps the
// accounts.
func TestUpgradeAddsBackups(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bank.db")
	ctx := context.Background()
	st := open(t, path)
	if err := st.Update(ctx, func(tx storage.Tx) error {
		return tx.CreateAccount(ctx, storage.Account{ID: "a1", TokenHash: []byte("h")})
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP TABLE backups; UPDATE schema_version SET version = 3`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	st = open(t, path)
	defer st.Close()
	err = st.Update(ctx, func(tx storage.Tx) error {
		if _, err := tx.Account(ctx, "a1"); err != nil {
			return err
		}
		return tx.PutBackup(ctx, storage.Backup{ID: "b", Version: 1, Data: []byte{1}})
	})
	if err != nil {
		t.Fatalf("after the upgrade: %v", err)
	}
}
