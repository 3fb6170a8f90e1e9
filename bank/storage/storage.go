// Package storage is the bank's persistence boundary: one interface that
// every storage engine implements (embedded SQLite in bank/storage/sqlite,
// PostgreSQL for many bank nodes in bank/storage/postgres) and that package
// bank uses without writing SQL. It also holds the logic the engines share
// that needs no SQL: running versioned schema migrations (Migrate) and
// assembling the answer of a batched spend (SpentResults).
//
// An engine keeps records and enforces the data's integrity; it has no
// business rules. Its guarantees, checked by bank/storage/storagetest:
//   - Update runs a function in one serializable read-write transaction:
//     everything it wrote is committed durably when it returns nil, and
//     nothing is when it returns an error. An engine may run the function
//     again after a serialization conflict, so it must have no effect
//     outside the transaction except on variables it sets afresh;
//   - an operation that reports ErrDuplicate, ErrNotFound or
//     ErrInsufficientFunds leaves the transaction
//     usable: the function may go on and commit;
//   - a transient failure of the database (unreachable, restarted, a
//     commit whose outcome is unknown) is reported as ErrUnavailable: the
//     caller retries the whole operation with the same ids, and the
//     bank's idempotency makes that safe;
//   - View runs a function on a consistent read-only snapshot;
//   - a serial enters the spent set at most once, whatever the
//     concurrency and however many processes share the database: the
//     database is the arbiter (InsertSpent);
//   - an account's balance changes only together with a ledger entry (Post)
//     and never goes below zero.
//
// Money is int64 minor units (cents). Times are stored with microsecond
// precision or better and returned in UTC.
//
// Where to start: Store and Tx are the interface; bank/storage/sqlite and
// bank/storage/postgres implement it, and bank/storage/storagetest is the
// suite a new engine must pass.
package storage

import (
	"context"
	"errors"
	"time"
)

// Errors callers can test with errors.Is.
var (
	ErrNotFound          = errors.New("not found")
	ErrDuplicate         = errors.New("already exists")
	ErrInsufficientFunds = errors.New("insufficient funds")
	// ErrUnavailable marks a transient failure: the database could not be
	// reached, was restarted, or lost the connection during a commit.
	// Retrying the same operation (with the same ids) is safe.
	ErrUnavailable = errors.New("storage unavailable, retry")
	// ErrSchemaTooNew: the database was migrated by a newer program.
	ErrSchemaTooNew = errors.New("database schema is newer than this program")
)

// Store is a storage engine.
type Store interface {
	// Update runs fn in a read-write transaction, committing when fn
	// returns nil. fn's error is returned as is, so errors.Is works on it.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	Close() error
}

// Tx is the set of operations available inside a transaction. A Tx must
// not be used after the function it was given to returns.
type Tx interface {
	// CreateAccount adds an account with a zero balance; ErrDuplicate if
	// the id is taken.
	CreateAccount(ctx context.Context, a Account) error
	// Account returns an account; ErrNotFound if there is none.
	Account(ctx context.Context, id string) (Account, error)
	// AccountByToken returns the one account whose token hash is
	// tokenHash; ErrNotFound if there is none (or, since tokens are
	// random, the impossible case of two).
	AccountByToken(ctx context.Context, tokenHash []byte) (Account, error)
	// Post appends e to its account's ledger and adds e.Amount to the
	// balance, returning the new balance: ErrNotFound for an unknown
	// account, ErrInsufficientFunds (and nothing changed) if the balance
	// would go below zero.
	Post(ctx context.Context, e Entry) (balance int64, err error)
	// Entries returns up to limit ledger entries of an account, newest
	// first.
	Entries(ctx context.Context, account string, limit int) ([]Entry, error)

	// Withdrawal returns a withdrawal by account and id; ErrNotFound if
	// there is none.
	Withdrawal(ctx context.Context, account, id string) (Withdrawal, error)
	// InsertWithdrawal records a withdrawal; ErrDuplicate if the account
	// already has one with that id.
	InsertWithdrawal(ctx context.Context, w Withdrawal) error
	// InsertIssued records issued coins, which must belong to a recorded
	// withdrawal; ErrDuplicate if a serial was issued before.
	InsertIssued(ctx context.Context, coins []IssuedCoin) error
	// Issued returns the issued coins among serials (at most MaxBatch),
	// by serial; serials never issued are absent.
	Issued(ctx context.Context, serials []string) (map[string]IssuedCoin, error)

	// InsertSpent adds coins (at most MaxBatch) to the spent set, in as
	// few statements as the engine can. It returns one result per coin,
	// in order: the coin inserted, or, for a serial already in the set
	// (or earlier in coins), the stored record, which it leaves unchanged.
	InsertSpent(ctx context.Context, coins []SpentCoin) ([]SpentResult, error)
	// InsertConflict records a refused second deposit of a spent serial;
	// ErrDuplicate if the same chain was recorded for that serial before.
	InsertConflict(ctx context.Context, c Conflict) error
	// Conflicts returns all recorded conflicts, oldest first, each with the
	// spent record it conflicts with.
	Conflicts(ctx context.Context) ([]Conflict, error)

	// InsertIssuerKey stores an issuer key; ErrDuplicate if its id exists.
	InsertIssuerKey(ctx context.Context, k IssuerKey) error
	// IssuerKeys returns every stored issuer key, oldest first.
	IssuerKeys(ctx context.Context) ([]IssuerKey, error)

	// Backup returns the backup stored under id; ErrNotFound if there is
	// none.
	Backup(ctx context.Context, id string) (Backup, error)
	// HasBackup reports whether a backup is stored under id, without
	// reading its data (up to api.MaxBackupData bytes).
	HasBackup(ctx context.Context, id string) (bool, error)
	// PutBackup stores b under b.ID, replacing the data, version and
	// update time of a backup stored there (whose Created it keeps).
	PutBackup(ctx context.Context, b Backup) error

	// AuditSums totals the issued coins, the spent set and the ledger.
	AuditSums(ctx context.Context) (AuditSums, error)
	// LedgerMismatches returns the accounts whose stored balance differs
	// from the sum of their ledger entries.
	LedgerMismatches(ctx context.Context) ([]LedgerMismatch, error)
}

// Account is a bank account. Only a hash of its bearer token is stored.
type Account struct {
	ID        string
	TokenHash []byte
	Balance   int64
	Created   time.Time
	// Attrs are the attributes the bank certifies on the account's
	// exchange keys (e.g. a merchant's category), set when the account is
	// created. Empty (nil on read) for an account without attributes.
	Attrs map[string]string
}

// Kinds of ledger entries.
const (
	KindCredit   = "credit"
	KindWithdraw = "withdraw"
	KindDeposit  = "deposit"
)

// Entry is one ledger entry: a signed change of an account's balance.
type Entry struct {
	ID        int64 // assigned by Post, increasing
	Account   string
	Time      time.Time
	Kind      string // one of the Kind constants
	Amount    int64
	Reference string
}

// Withdrawal is a completed withdrawal: a hash of the request, to tell a
// retry from a different request with the same id, and the response, to
// answer a retry with the same coins.
type Withdrawal struct {
	Account     string
	ID          string
	RequestHash []byte
	Response    []byte
	Created     time.Time
}

// IssuedCoin records one coin the bank signed.
type IssuedCoin struct {
	// Serial is the coin's token; for a blind-signed coin, which the bank
	// never sees, the SHA-256 of its blinded message, in the same form.
	Serial     string
	Account    string
	Withdrawal string
	KeyID      string
	Value      int64
	Checksum   string // empty for a blind-signed coin
	Issued     time.Time
}

// SpentCoin is a member of the spent set: a deposited coin, with the chain
// it was deposited with as evidence.
type SpentCoin struct {
	Serial    string
	KeyID     string
	Value     int64
	Account   string // the account credited
	Reference string // the reference of the ledger entry that credited it
	ChainHash []byte // identifies the deposited chain
	Sandbox   []byte // the deposited sandbox, JSON
	Deposited time.Time
}

// SpentResult is InsertSpent's answer for one coin.
type SpentResult struct {
	Inserted bool      // this call entered the serial into the spent set
	Stored   SpentCoin // the spent set's record of the serial
}

// Conflict is a refused second deposit of a spent serial. First is filled
// in by Conflicts.
type Conflict struct {
	Serial    string
	Key       string // the one-time key that signed for the coin twice
	Index     int    // its position in the chains
	Account   string // the account the second deposit was for
	ChainHash []byte
	Sandbox   []byte // the second sandbox, JSON
	Detected  time.Time
	First     SpentCoin
}

// IssuerKey is one of the bank's signing keys: Seed is the private key (an
// Ed25519 seed, or a PKCS #8 RSA key for a blind coin key) and Entry the
// key's public description, as the bank encodes it.
type IssuerKey struct {
	KeyID   string
	Use     string
	Seed    []byte
	Entry   []byte
	Created time.Time
}

// Backup is a wallet's opaque backup, held for it under an id derived
// from its key (api.BackupID).
type Backup struct {
	ID      string
	Version int64
	Data    []byte
	Created time.Time // first stored
	Updated time.Time // last replaced
}

// Figure is a count of coins and their total value.
type Figure struct {
	Count int64
	Value int64
}

// AuditSums are the totals the audit compares.
type AuditSums struct {
	Issued Figure // every issued coin
	Spent  Figure // the spent set
	// Outstanding and Unissued compare, per coin key, the coins issued
	// with the coins spent: a blind coin key's coins cannot be matched by
	// serial, as the bank never sees the serials it signs.
	Outstanding Figure // per key, the issued coins beyond those spent
	Unissued    Figure // per key, the spent coins beyond those issued
	// Sums of ledger entries by kind (withdrawals are negative).
	Credits, Withdrawals, Deposits int64
	Accounts                       int64
	Balances                       int64 // sum of stored balances
}

// LedgerMismatch is an account whose balance disagrees with its ledger.
type LedgerMismatch struct {
	Account   string
	Balance   int64
	LedgerSum int64
}
