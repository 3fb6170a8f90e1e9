package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/otpcash/otpcash/bank/storage"
	"github.com/otpcash/otpcash/internal/strictjson"
)

type tx struct{ t *sql.Tx }

// Times are stored as Unix nanoseconds: exact, ordered, zone-free.
func unix(t time.Time) int64 { return t.UnixNano() }

func fromUnix(n int64) time.Time { return time.Unix(0, n).UTC() }

// isUnique reports whether err is a uniqueness (primary key or UNIQUE)
// violation.
func isUnique(err error) bool {
	var e *msqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// insert runs an INSERT, mapping a uniqueness violation to ErrDuplicate.
func (x *tx) insert(ctx context.Context, what, query string, args ...any) error {
	if _, err := x.t.ExecContext(ctx, query, args...); err != nil {
		if isUnique(err) {
			return fmt.Errorf("%s: %w", what, storage.ErrDuplicate)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// one maps a single-row lookup's error.
func one(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", what, storage.ErrNotFound)
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}

func (x *tx) CreateAccount(ctx context.Context, a storage.Account) error {
	attrs := []byte("{}")
	if len(a.Attrs) > 0 {
		var err error
		if attrs, err = json.Marshal(a.Attrs); err != nil {
			return fmt.Errorf("create account %s: attrs: %w", a.ID, err)
		}
	}
	return x.insert(ctx, "create account "+a.ID,
		`INSERT INTO accounts (id, token_hash, balance, created, attrs) VALUES (?, ?, 0, ?, ?)`,
		a.ID, a.TokenHash, unix(a.Created), string(attrs))
}

func (x *tx) AccountByToken(ctx context.Context, tokenHash []byte) (storage.Account, error) {
	rows, err := x.t.QueryContext(ctx, `SELECT id FROM accounts WHERE token_hash = ? LIMIT 2`, tokenHash)
	if err != nil {
		return storage.Account{}, fmt.Errorf("account by token: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return storage.Account{}, fmt.Errorf("account by token: %w", err)
		}
		ids = append(ids, id)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return storage.Account{}, fmt.Errorf("account by token: %w", err)
	}
	if len(ids) != 1 {
		return storage.Account{}, fmt.Errorf("account by token: %d accounts: %w", len(ids), storage.ErrNotFound)
	}
	return x.Account(ctx, ids[0])
}

func (x *tx) Account(ctx context.Context, id string) (storage.Account, error) {
	a := storage.Account{ID: id}
	var created int64
	var attrs string
	err := x.t.QueryRowContext(ctx, `SELECT token_hash, balance, created, attrs FROM accounts WHERE id = ?`, id).
		Scan(&a.TokenHash, &a.Balance, &created, &attrs)
	if err != nil {
		return a, one("account "+id, err)
	}
	a.Created = fromUnix(created)
	if attrs != "{}" {
		if err := strictjson.Unmarshal([]byte(attrs), &a.Attrs); err != nil {
			return a, fmt.Errorf("account %s: attrs: %w", id, err)
		}
	}
	return a, nil
}

func (x *tx) Post(ctx context.Context, e storage.Entry) (int64, error) {
	what := fmt.Sprintf("post %s of %d to %s", e.Kind, e.Amount, e.Account)
	var balance int64
	if err := x.t.QueryRowContext(ctx, `SELECT balance FROM accounts WHERE id = ?`, e.Account).Scan(&balance); err != nil {
		return 0, one(what, err)
	}
	// The arithmetic is done here rather than in SQL because SQLite turns
	// an overflowing integer sum into a float.
	next := balance + e.Amount
	if (e.Amount > 0 && next < balance) || (e.Amount < 0 && next > balance) {
		return 0, fmt.Errorf("%s: balance overflow", what)
	}
	if next < 0 {
		return 0, fmt.Errorf("%s: balance %d: %w", what, balance, storage.ErrInsufficientFunds)
	}
	if _, err := x.t.ExecContext(ctx, `UPDATE accounts SET balance = ? WHERE id = ?`, next, e.Account); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if _, err := x.t.ExecContext(ctx,
		`INSERT INTO ledger (account, time, kind, amount, reference) VALUES (?, ?, ?, ?, ?)`,
		e.Account, unix(e.Time), e.Kind, e.Amount, e.Reference); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return next, nil
}

func (x *tx) Entries(ctx context.Context, account string, limit int) ([]storage.Entry, error) {
	rows, err := x.t.QueryContext(ctx,
		`SELECT id, time, kind, amount, reference FROM ledger WHERE account = ? ORDER BY id DESC LIMIT ?`,
		account, limit)
	if err != nil {
		return nil, fmt.Errorf("entries of %s: %w", account, err)
	}
	defer rows.Close()
	var out []storage.Entry
	for rows.Next() {
		e := storage.Entry{Account: account}
		var t int64
		if err := rows.Scan(&e.ID, &t, &e.Kind, &e.Amount, &e.Reference); err != nil {
			return nil, fmt.Errorf("entries of %s: %w", account, err)
		}
		e.Time = fromUnix(t)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("entries of %s: %w", account, err)
	}
	return out, nil
}

func (x *tx) Withdrawal(ctx context.Context, account, id string) (storage.Withdrawal, error) {
	w := storage.Withdrawal{Account: account, ID: id}
	var created int64
	err := x.t.QueryRowContext(ctx,
		`SELECT request_hash, response, created FROM withdrawals WHERE account = ? AND id = ?`, account, id).
		Scan(&w.RequestHash, &w.Response, &created)
	w.Created = fromUnix(created)
	return w, one(fmt.Sprintf("withdrawal %q of %s", id, account), err)
}

func (x *tx) InsertWithdrawal(ctx context.Context, w storage.Withdrawal) error {
	return x.insert(ctx, fmt.Sprintf("insert withdrawal %q of %s", w.ID, w.Account),
		`INSERT INTO withdrawals (account, id, request_hash, response, created) VALUES (?, ?, ?, ?, ?)`,
		w.Account, w.ID, w.RequestHash, w.Response, unix(w.Created))
}

func (x *tx) InsertIssued(ctx context.Context, coins []storage.IssuedCoin) error {
	st, err := x.t.PrepareContext(ctx,
		`INSERT INTO issued (serial, account, withdrawal, key_id, value, checksum, issued) VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("insert issued coins: %w", err)
	}
	defer st.Close()
	for _, c := range coins {
		if _, err := st.ExecContext(ctx, c.Serial, c.Account, c.Withdrawal, c.KeyID, c.Value, c.Checksum, unix(c.Issued)); err != nil {
			if isUnique(err) {
				err = storage.ErrDuplicate
			}
			return fmt.Errorf("insert issued coin %.8s: %w", c.Serial, err)
		}
	}
	return nil
}

func (x *tx) Issued(ctx context.Context, serials []string) (map[string]storage.IssuedCoin, error) {
	if err := storage.CheckBatch("issued coins", len(serials)); err != nil {
		return nil, err
	}
	st, err := x.t.PrepareContext(ctx,
		`SELECT account, withdrawal, key_id, value, checksum, issued FROM issued WHERE serial = ?`)
	if err != nil {
		return nil, fmt.Errorf("issued coins: %w", err)
	}
	defer st.Close()
	out := make(map[string]storage.IssuedCoin, len(serials))
	for _, serial := range serials {
		c := storage.IssuedCoin{Serial: serial}
		var issued int64
		err := st.QueryRowContext(ctx, serial).Scan(&c.Account, &c.Withdrawal, &c.KeyID, &c.Value, &c.Checksum, &issued)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue
		case err != nil:
			return nil, fmt.Errorf("issued coin %.8s: %w", serial, err)
		}
		c.Issued = fromUnix(issued)
		out[serial] = c
	}
	return out, nil
}

const spentColumns = `serial, key_id, value, account, reference, chain_hash, sandbox, deposited`

func scanSpent(row interface{ Scan(...any) error }, extra ...any) (storage.SpentCoin, error) {
	var s storage.SpentCoin
	var deposited int64
	err := row.Scan(append([]any{&s.Serial, &s.KeyID, &s.Value, &s.Account, &s.Reference, &s.ChainHash, &s.Sandbox, &deposited}, extra...)...)
	s.Deposited = fromUnix(deposited)
	return s, err
}

// InsertSpent inserts row by row: SQLite runs in process, so a batch
// saves no round trips, and the one writer connection serializes it.
func (x *tx) InsertSpent(ctx context.Context, coins []storage.SpentCoin) ([]storage.SpentResult, error) {
	if err := storage.CheckBatch("spend", len(coins)); err != nil {
		return nil, err
	}
	ins, err := x.t.PrepareContext(ctx,
		`INSERT INTO spent (`+spentColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (serial) DO NOTHING`)
	if err != nil {
		return nil, fmt.Errorf("spend: %w", err)
	}
	defer ins.Close()
	sel, err := x.t.PrepareContext(ctx, `SELECT `+spentColumns+` FROM spent WHERE serial = ?`)
	if err != nil {
		return nil, fmt.Errorf("spend: %w", err)
	}
	defer sel.Close()
	inserted := map[string]bool{}
	stored := map[string]storage.SpentCoin{}
	for _, s := range storage.FirstBySerial(coins) {
		what := fmt.Sprintf("spend %.8s", s.Serial)
		res, err := ins.ExecContext(ctx, s.Serial, s.KeyID, s.Value, s.Account, s.Reference, s.ChainHash, s.Sandbox, unix(s.Deposited))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if n == 1 {
			inserted[s.Serial] = true
			continue
		}
		if stored[s.Serial], err = scanSpent(sel.QueryRowContext(ctx, s.Serial)); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	return storage.SpentResults(coins, inserted, stored)
}

func (x *tx) InsertConflict(ctx context.Context, c storage.Conflict) error {
	return x.insert(ctx, fmt.Sprintf("insert conflict on %.8s", c.Serial),
		`INSERT INTO conflicts (serial, chain_hash, key, idx, account, sandbox, detected) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		c.Serial, c.ChainHash, c.Key, c.Index, c.Account, c.Sandbox, unix(c.Detected))
}

func (x *tx) Conflicts(ctx context.Context) ([]storage.Conflict, error) {
	rows, err := x.t.QueryContext(ctx, `
		SELECT s.serial, s.key_id, s.value, s.account, s.reference, s.chain_hash, s.sandbox, s.deposited,
		       c.chain_hash, c.key, c.idx, c.account, c.sandbox, c.detected
		FROM conflicts c JOIN spent s ON s.serial = c.serial
		ORDER BY c.seq`)
	if err != nil {
		return nil, fmt.Errorf("conflicts: %w", err)
	}
	defer rows.Close()
	var out []storage.Conflict
	for rows.Next() {
		var c storage.Conflict
		var detected int64
		first, err := scanSpent(rows, &c.ChainHash, &c.Key, &c.Index, &c.Account, &c.Sandbox, &detected)
		if err != nil {
			return nil, fmt.Errorf("conflicts: %w", err)
		}
		c.Serial, c.First, c.Detected = first.Serial, first, fromUnix(detected)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("conflicts: %w", err)
	}
	return out, nil
}

func (x *tx) InsertIssuerKey(ctx context.Context, k storage.IssuerKey) error {
	return x.insert(ctx, "insert issuer key "+k.KeyID,
		`INSERT INTO issuer_keys (key_id, use, seed, entry, created) VALUES (?, ?, ?, ?, ?)`,
		k.KeyID, k.Use, k.Seed, k.Entry, unix(k.Created))
}

func (x *tx) IssuerKeys(ctx context.Context) ([]storage.IssuerKey, error) {
	rows, err := x.t.QueryContext(ctx, `SELECT key_id, use, seed, entry, created FROM issuer_keys ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("issuer keys: %w", err)
	}
	defer rows.Close()
	var out []storage.IssuerKey
	for rows.Next() {
		var k storage.IssuerKey
		var created int64
		if err := rows.Scan(&k.KeyID, &k.Use, &k.Seed, &k.Entry, &created); err != nil {
			return nil, fmt.Errorf("issuer keys: %w", err)
		}
		k.Created = fromUnix(created)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("issuer keys: %w", err)
	}
	return out, nil
}

func (x *tx) Backup(ctx context.Context, id string) (storage.Backup, error) {
	b := storage.Backup{ID: id}
	var created, updated int64
	err := x.t.QueryRowContext(ctx, `SELECT version, data, created, updated FROM backups WHERE id = ?`, id).
		Scan(&b.Version, &b.Data, &created, &updated)
	b.Created, b.Updated = fromUnix(created), fromUnix(updated)
	return b, one("backup "+id, err)
}

func (x *tx) HasBackup(ctx context.Context, id string) (bool, error) {
	var ok bool
	if err := x.t.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM backups WHERE id = ?)`, id).Scan(&ok); err != nil {
		return false, fmt.Errorf("backup %s: %w", id, err)
	}
	return ok, nil
}

func (x *tx) PutBackup(ctx context.Context, b storage.Backup) error {
	_, err := x.t.ExecContext(ctx, `INSERT INTO backups (id, version, data, created, updated) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET version = excluded.version, data = excluded.data, updated = excluded.updated`,
		b.ID, b.Version, b.Data, unix(b.Created), unix(b.Updated))
	if err != nil {
		return fmt.Errorf("put backup %s: %w", b.ID, err)
	}
	return nil
}

func (x *tx) AuditSums(ctx context.Context) (storage.AuditSums, error) {
	var a storage.AuditSums
	err := x.t.QueryRowContext(ctx, `
		WITH perkey AS (
			SELECT key_id, sum(n) AS n, sum(v) AS v FROM (
				SELECT key_id, count(*) AS n, sum(value) AS v FROM issued GROUP BY key_id
				UNION ALL
				SELECT key_id, -count(*), -sum(value) FROM spent GROUP BY key_id
			) GROUP BY key_id)
		SELECT
			(SELECT count(*) FROM issued), (SELECT coalesce(sum(value), 0) FROM issued),
			(SELECT count(*) FROM spent), (SELECT coalesce(sum(value), 0) FROM spent),
			(SELECT coalesce(sum(n), 0) FROM perkey WHERE n > 0), (SELECT coalesce(sum(v), 0) FROM perkey WHERE n > 0),
			(SELECT coalesce(-sum(n), 0) FROM perkey WHERE n < 0), (SELECT coalesce(-sum(v), 0) FROM perkey WHERE n < 0),
			(SELECT coalesce(sum(amount), 0) FROM ledger WHERE kind = 'credit'),
			(SELECT coalesce(sum(amount), 0) FROM ledger WHERE kind = 'withdraw'),
			(SELECT coalesce(sum(amount), 0) FROM ledger WHERE kind = 'deposit'),
			(SELECT count(*) FROM accounts), (SELECT coalesce(sum(balance), 0) FROM accounts)`).
		Scan(&a.Issued.Count, &a.Issued.Value, &a.Spent.Count, &a.Spent.Value,
			&a.Outstanding.Count, &a.Outstanding.Value, &a.Unissued.Count, &a.Unissued.Value,
			&a.Credits, &a.Withdrawals, &a.Deposits, &a.Accounts, &a.Balances)
	if err != nil {
		return a, fmt.Errorf("audit sums: %w", err)
	}
	return a, nil
}

func (x *tx) LedgerMismatches(ctx context.Context) ([]storage.LedgerMismatch, error) {
	rows, err := x.t.QueryContext(ctx, `
		SELECT a.id, a.balance, coalesce(l.total, 0)
		FROM accounts a LEFT JOIN (SELECT account, sum(amount) AS total FROM ledger GROUP BY account) l ON l.account = a.id
		WHERE a.balance != coalesce(l.total, 0)
		ORDER BY a.id`)
	if err != nil {
		return nil, fmt.Errorf("ledger mismatches: %w", err)
	}
	defer rows.Close()
	var out []storage.LedgerMismatch
	for rows.Next() {
		var m storage.LedgerMismatch
		if err := rows.Scan(&m.Account, &m.Balance, &m.LedgerSum); err != nil {
			return nil, fmt.Errorf("ledger mismatches: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger mismatches: %w", err)
	}
	return out, nil
}
