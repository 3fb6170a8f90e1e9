// Package sqlite is the embedded storage engine of the bank, on the pure-Go
// SQLite driver modernc.org/sqlite: nothing to install, one file.
//
// Durability and isolation: the database runs in WAL mode with
// synchronous=FULL, so a committed transaction survives a power cut. Writes
// go through a single connection that begins with BEGIN IMMEDIATE, so
// read-write transactions are serialized in the process without busy
// retries, and other processes (an audit) wait on the busy timeout instead
// of failing. Reads use a separate pool of query-only connections and see a
// consistent snapshot. Uniqueness (spent serials, issued serials, account
// and withdrawal ids) is enforced by primary keys, so the database is the
// final arbiter of a double deposit.
//
// The schema is versioned in schema_version and brought up to date on open
// by the migrations list compiled into the binary (storage.Migrate); a
// database of a newer program is refused (storage.ErrSchemaTooNew).
//
// The file holds the bank's private issuer keys: it is created with mode
// 0600 and must be protected like a key file.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/otpcash/otpcash/bank/storage"
)

// busyTimeout bounds how long a statement waits for another process's lock.
const busyTimeout = 10 * time.Second

// Store is a storage.Store on one SQLite database file.
type Store struct {
	w *sql.DB // one connection: all read-write transactions
	r *sql.DB // query-only connections: snapshots for View

	from, to int // schema versions before and after Open
}

var _ storage.Store = (*Store)(nil)

// Open opens the database at path, creating it (mode 0600) and its schema
// when missing.
func Open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// SQLite would create the file with the umask's mode; the WAL and
	// shared-memory files it makes later copy this file's mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	f.Close()

	base := (&url.URL{Scheme: "file", Path: abs}).String()
	params := fmt.Sprintf("_busy_timeout=%d&_foreign_keys=1&_synchronous=FULL", busyTimeout.Milliseconds())
	w, err := sql.Open("sqlite", base+"?"+params+"&_journal_mode=WAL&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w}
	// The schema must exist (and WAL be on) before readers open.
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", abs, err)
	}
	s.r, err = sql.Open("sqlite", base+"?"+params+"&_query_only=1")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	s.r.SetMaxOpenConns(8)
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// Update implements storage.Store.
func (s *Store) Update(ctx context.Context, fn func(storage.Tx) error) error {
	return run(ctx, s.w, nil, fn)
}

// View implements storage.Store.
func (s *Store) View(ctx context.Context, fn func(storage.Tx) error) error {
	return run(ctx, s.r, &sql.TxOptions{ReadOnly: true}, fn)
}

func run(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(storage.Tx) error) error {
	sqlTx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	if err := fn(&tx{sqlTx}); err != nil {
		// Rollback fails only when the transaction is already gone (the
		// context ended), which is no news to the caller.
		_ = sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// migrations[i] takes the schema from version i to version i+1.
var migrations = []string{`
CREATE TABLE accounts (
	id         TEXT PRIMARY KEY,
	token_hash BLOB NOT NULL,
	balance    INTEGER NOT NULL CHECK (balance >= 0),
	created    INTEGER NOT NULL
) STRICT;

CREATE TABLE ledger (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	account   TEXT NOT NULL REFERENCES accounts(id),
	time      INTEGER NOT NULL,
	kind      TEXT NOT NULL CHECK (kind IN ('credit', 'withdraw', 'deposit')),
	amount    INTEGER NOT NULL,
	reference TEXT NOT NULL
) STRICT;
CREATE INDEX ledger_account ON ledger (account, id);

CREATE TABLE withdrawals (
	account      TEXT NOT NULL REFERENCES accounts(id),
	id           TEXT NOT NULL,
	request_hash BLOB NOT NULL,
	response     BLOB NOT NULL,
	created      INTEGER NOT NULL,
	PRIMARY KEY (account, id)
) STRICT;

CREATE TABLE issued (
	serial     TEXT PRIMARY KEY,
	account    TEXT NOT NULL,
	withdrawal TEXT NOT NULL,
	key_id     TEXT NOT NULL,
	value      INTEGER NOT NULL,
	checksum   TEXT NOT NULL,
	issued     INTEGER NOT NULL,
	FOREIGN KEY (account, withdrawal) REFERENCES withdrawals (account, id)
) STRICT;

CREATE TABLE spent (
	serial     TEXT PRIMARY KEY,
	key_id     TEXT NOT NULL,
	value      INTEGER NOT NULL,
	account    TEXT NOT NULL REFERENCES accounts(id),
	reference  TEXT NOT NULL,
	chain_hash BLOB NOT NULL,
	sandbox    BLOB NOT NULL,
	deposited  INTEGER NOT NULL
) STRICT;

CREATE TABLE conflicts (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	serial     TEXT NOT NULL REFERENCES spent(serial),
	chain_hash BLOB NOT NULL,
	key        TEXT NOT NULL,
	idx        INTEGER NOT NULL,
	account    TEXT NOT NULL REFERENCES accounts(id),
	sandbox    BLOB NOT NULL,
	detected   INTEGER NOT NULL,
	UNIQUE (serial, chain_hash)
) STRICT;

CREATE TABLE issuer_keys (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	key_id  TEXT NOT NULL UNIQUE,
	use     TEXT NOT NULL,
	seed    BLOB NOT NULL,
	entry   BLOB NOT NULL,
	created INTEGER NOT NULL
) STRICT;
`, `
-- Version 2: certified attributes of an account, a JSON object of strings.
ALTER TABLE accounts ADD COLUMN attrs TEXT NOT NULL DEFAULT '{}';
`, `
-- Version 3: accounts found by token, so a request is authenticated before
-- its body is read.
CREATE INDEX accounts_token ON accounts (token_hash);
`, `
-- Version 4: wallets' opaque backups, one per id (PUT /v1/backups/{id}).
CREATE TABLE backups (
	id      TEXT PRIMARY KEY,
	version INTEGER NOT NULL CHECK (version > 0),
	data    BLOB NOT NULL,
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL
) STRICT;
`}

// migrate brings the schema to the newest version. It runs in one
// IMMEDIATE transaction, so two processes opening a new file at once
// migrate it one after the other.
func (s *Store) migrate(ctx context.Context) error {
	t, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer t.Rollback()
	if _, err := t.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if s.from, s.to, err = storage.Migrate(ctx, schemaTx{t}, migrations); err != nil {
		return err
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Schema returns the schema versions before and after Open migrated it.
func (s *Store) Schema() (from, to int) { return s.from, s.to }

// schemaTx is a migration transaction, for storage.Migrate.
type schemaTx struct{ t *sql.Tx }

func (m schemaTx) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := m.t.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		_, err = m.t.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`)
	}
	return v, err
}

func (m schemaTx) SetSchemaVersion(ctx context.Context, v int) error {
	_, err := m.t.ExecContext(ctx, `UPDATE schema_version SET version = ?`, v)
	return err
}

func (m schemaTx) Exec(ctx context.Context, script string) error {
	_, err := m.t.ExecContext(ctx, script)
	return err
}
