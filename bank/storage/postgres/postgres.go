// Package postgres is the bank's scale-out storage engine: one PostgreSQL
// database (through github.com/jackc/pgx/v5) shared by any number of
// stateless bank nodes.
//
// Guarantees, beyond those of package storage (checked by the same
// conformance suite as the SQLite engine):
//   - Update runs at SERIALIZABLE isolation and commits synchronously, as
//     the server is configured (synchronous_commit on by default). A
//     serialization failure or deadlock, which PostgreSQL reports before
//     anything is committed, is retried up to maxAttempts times with
//     jittered backoff, re-running the function; so concurrent nodes
//     depositing one coin, or withdrawing under one id, see one another's
//     commits and never apply an operation twice;
//   - View runs on a REPEATABLE READ, READ ONLY snapshot;
//   - uniqueness (spent serials, issued serials, account, withdrawal and
//     key ids) is enforced by primary keys and inserts use ON CONFLICT DO
//     NOTHING, so a refused insert leaves the transaction usable;
//   - batches (issued lookups, spends, issued coins) travel as arrays in
//     one statement each (unnest), not one round trip per coin;
//   - a lost connection, a server restart or shutdown, and a commit whose
//     outcome is unknown are reported as storage.ErrUnavailable and never
//     retried here: the caller retries with the same ids.
//
// The schema lives in the connection's search_path (set it in the DSN,
// e.g. ?search_path=bank, to keep several banks in one database) and is
// versioned in schema_version. Open applies the migrations compiled into
// the binary under a transaction-scoped advisory lock, so nodes starting
// together migrate once. Times are timestamptz: microsecond precision.
//
// The database holds the bank's private issuer keys: restrict who can
// connect and who can read its backups.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/otpcash/otpcash/bank/storage"
)

// maxAttempts bounds the runs of one Update that hit serialization
// failures.
const maxAttempts = 20

// connectTimeout bounds establishing one connection.
const connectTimeout = 10 * time.Second

// Store is a storage.Store on a PostgreSQL database.
type Store struct {
	pool     *pgxpool.Pool
	from, to int // schema versions before and after Open
}

var _ storage.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or
// key=value string; pool_max_conns and the other pgxpool settings apply)
// and brings its schema up to date.
func Open(ctx context.Context, dsn string) (*Store, error) {
	return open(ctx, dsn, true)
}

// OpenExisting connects without changing the schema, for tools that must
// not write (the audit): it fails with storage.ErrNotFound when the
// database holds no bank, and with storage.ErrSchemaTooNew or an error
// naming the version when the schema is not this program's.
func OpenExisting(ctx context.Context, dsn string) (*Store, error) {
	return open(ctx, dsn, false)
}

func open(ctx context.Context, dsn string, migrate bool) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error can quote the DSN, password included.
		return nil, errors.New("postgres: invalid connection string (see the pgx documentation for its forms)")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", classify(err))
	}
	s := &Store{pool: pool}
	if migrate {
		err = s.migrate(ctx)
	} else {
		err = s.checkSchema(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s@%s/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	return s, nil
}

// Close closes the connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Schema returns the schema versions before and after Open migrated it.
func (s *Store) Schema() (from, to int) { return s.from, s.to }

var (
	serializable = pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadWrite}
	snapshot     = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
)

// Update implements storage.Store.
func (s *Store) Update(ctx context.Context, fn func(storage.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.run(ctx, serializable, fn)
		if !errors.Is(err, errConflict) {
			return err
		}
		if attempt == maxAttempts {
			return fmt.Errorf("postgres: %d serialization conflicts in a row: %w: %w", attempt, storage.ErrUnavailable, err)
		}
		// Up to 1, 2, 4 ... 64 ms, at random, so the rivals spread out.
		backoff := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// View implements storage.Store.
func (s *Store) View(ctx context.Context, fn func(storage.Tx) error) error {
	return s.run(ctx, snapshot, fn)
}

func (s *Store) run(ctx context.Context, opts pgx.TxOptions, fn func(storage.Tx) error) error {
	t, err := s.pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", classify(err))
	}
	if err := fn(&tx{t}); err != nil {
		// A failed rollback only means the connection is gone, which
		// discards the transaction as well.
		_ = t.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := t.Commit(ctx); err != nil {
		if errors.Is(err, pgx.ErrTxCommitRollback) {
			// The transaction had failed: fn swallowed an error.
			return fmt.Errorf("postgres: commit: transaction had failed and was rolled back")
		}
		return fmt.Errorf("postgres: commit: %w", classify(err))
	}
	return nil
}

// errConflict marks a serialization failure or deadlock: the transaction
// was rolled back and can be run again.
var errConflict = errors.New("serialization conflict")

// classify marks err as a conflict (retried by Update) or as
// storage.ErrUnavailable (retried by the caller), or returns it as is.
func classify(err error) error {
	var pg *pgconn.PgError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.As(err, &pg):
		switch pg.Code {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return fmt.Errorf("%w: %w", errConflict, err)
		case "57P01", "57P02", "57P03", "53300": // shutdown, crash, cannot connect now, too many connections
			return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
		}
		if pg.Code[:2] == "08" { // connection exceptions
			return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
		}
		return err
	case pgconn.Timeout(err):
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	}
	// Whatever else pgx reports (refused or reset connections, EOF, a
	// closed pool) is the connection's failure, not the query's.
	return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
}

// migrations[i] takes the schema from version i to version i+1. The
// versions match the SQLite engine's.
var migrations = []string{`
CREATE TABLE accounts (
	id         text PRIMARY KEY,
	token_hash bytea NOT NULL,
	balance    bigint NOT NULL CHECK (balance >= 0),
	created    timestamptz NOT NULL
);

CREATE TABLE ledger (
	id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account   text NOT NULL REFERENCES accounts(id),
	time      timestamptz NOT NULL,
	kind      text NOT NULL CHECK (kind IN ('credit', 'withdraw', 'deposit')),
	amount    bigint NOT NULL,
	reference text NOT NULL
);
CREATE INDEX ledger_account ON ledger (account, id);

CREATE TABLE withdrawals (
	account      text NOT NULL REFERENCES accounts(id),
	id           text NOT NULL,
	request_hash bytea NOT NULL,
	response     bytea NOT NULL,
	created      timestamptz NOT NULL,
	PRIMARY KEY (account, id)
);

CREATE TABLE issued (
	serial     text PRIMARY KEY,
	account    text NOT NULL,
	withdrawal text NOT NULL,
	key_id     text NOT NULL,
	value      bigint NOT NULL,
	checksum   text NOT NULL,
	issued     timestamptz NOT NULL,
	FOREIGN KEY (account, withdrawal) REFERENCES withdrawals (account, id)
);

CREATE TABLE spent (
	serial     text PRIMARY KEY,
	key_id     text NOT NULL,
	value      bigint NOT NULL,
	account    text NOT NULL REFERENCES accounts(id),
	reference  text NOT NULL,
	chain_hash bytea NOT NULL,
	sandbox    bytea NOT NULL,
	deposited  timestamptz NOT NULL
);

CREATE TABLE conflicts (
	seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	serial     text NOT NULL REFERENCES spent(serial),
	chain_hash bytea NOT NULL,
	key        text NOT NULL,
	idx        integer NOT NULL,
	account    text NOT NULL REFERENCES accounts(id),
	sandbox    bytea NOT NULL,
	detected   timestamptz NOT NULL,
	UNIQUE (serial, chain_hash)
);

CREATE TABLE issuer_keys (
	seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	key_id  text NOT NULL UNIQUE,
	use     text NOT NULL,
	seed    bytea NOT NULL,
	entry   bytea NOT NULL,
	created timestamptz NOT NULL
);
`, `
-- Version 2: certified attributes of an account, a JSON object of strings.
ALTER TABLE accounts ADD COLUMN attrs jsonb NOT NULL DEFAULT '{}';
`, `
-- Version 3: accounts found by token, so a request is authenticated before
-- its body is read.
CREATE INDEX accounts_token ON accounts (token_hash);
`, `
-- Version 4: wallets' opaque backups, one per id (PUT /v1/backups/{id}).
CREATE TABLE backups (
	id      text PRIMARY KEY,
	version bigint NOT NULL CHECK (version > 0),
	data    bytea NOT NULL,
	created timestamptz NOT NULL,
	updated timestamptz NOT NULL
);
`}

// lockSchema takes the migration lock of the schema in the search_path
// for the rest of the transaction.
const lockSchema = `SELECT pg_advisory_xact_lock(hashtext('otpcash schema ' || current_schema()))`

// migrate brings the schema to the newest version.
func (s *Store) migrate(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.pool, func(t pgx.Tx) error {
		if _, err := t.Exec(ctx, lockSchema); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)`); err != nil {
			return err
		}
		var err error
		s.from, s.to, err = storage.Migrate(ctx, schemaTx{t}, migrations)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", classify(err))
	}
	return nil
}

// checkSchema checks, changing nothing, that the schema is this program's.
func (s *Store) checkSchema(ctx context.Context) error {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v)
	var pg *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pg) && pg.Code == "42P01": // undefined_table
		return fmt.Errorf("no bank schema in this database: %w", storage.ErrNotFound)
	case err != nil:
		return fmt.Errorf("schema version: %w", classify(err))
	case v > len(migrations):
		return fmt.Errorf("version %d, this program knows %d: %w", v, len(migrations), storage.ErrSchemaTooNew)
	case v < len(migrations):
		return fmt.Errorf("schema version %d is older than this program's %d; run otpcash bank migrate", v, len(migrations))
	}
	s.from, s.to = v, v
	return nil
}

// schemaTx is a migration transaction, for storage.Migrate.
type schemaTx struct{ t pgx.Tx }

func (m schemaTx) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := m.t.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		_, err = m.t.Exec(ctx, `INSERT INTO schema_version (version) VALUES (0)`)
	}
	return v, err
}

func (m schemaTx) SetSchemaVersion(ctx context.Context, v int) error {
	_, err := m.t.Exec(ctx, `UPDATE schema_version SET version = $1`, v)
	return err
}

func (m schemaTx) Exec(ctx context.Context, script string) error {
	// No arguments: the simple protocol, which runs several statements.
	_, err := m.t.Exec(ctx, script, pgx.QueryExecModeSimpleProtocol)
	return err
}
