package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/otpcash/otpcash/bank/storage"
)

type tx struct{ t pgx.Tx }

// fail wraps a database error with what was being done.
func fail(what string, err error) error { return fmt.Errorf("%s: %w", what, classify(err)) }

// one maps a single-row lookup's error.
func one(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%s: %w", what, storage.ErrNotFound)
	default:
		return fail(what, err)
	}
}

// insert runs an INSERT ... ON CONFLICT DO NOTHING that must add one row:
// a row it skips is ErrDuplicate, and the transaction stays usable.
func (x *tx) insert(ctx context.Context, what, query string, args ...any) error {
	tag, err := x.t.Exec(ctx, query, args...)
	if err != nil {
		return fail(what, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("%s: %w", what, storage.ErrDuplicate)
	}
	return nil
}

func utc(t time.Time) time.Time { return t.UTC() }

func (x *tx) CreateAccount(ctx context.Context, a storage.Account) error {
	attrs := a.Attrs
	if attrs == nil {
		attrs = map[string]string{}
	}
	return x.insert(ctx, "create account "+a.ID,
		`INSERT INTO accounts (id, token_hash, balance, created, attrs) VALUES ($1, $2, 0, $3, $4) ON CONFLICT DO NOTHING`,
		a.ID, a.TokenHash, a.Created, attrs)
}

func (x *tx) AccountByToken(ctx context.Context, tokenHash []byte) (storage.Account, error) {
	rows, err := x.t.Query(ctx, `SELECT id FROM accounts WHERE token_hash = $1 LIMIT 2`, tokenHash)
	if err != nil {
		return storage.Account{}, fail("account by token", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return storage.Account{}, fail("account by token", err)
	}
	if len(ids) != 1 {
		return storage.Account{}, fmt.Errorf("account by token: %d accounts: %w", len(ids), storage.ErrNotFound)
	}
	return x.Account(ctx, ids[0])
}

func (x *tx) Account(ctx context.Context, id string) (storage.Account, error) {
	a := storage.Account{ID: id}
	err := x.t.QueryRow(ctx, `SELECT token_hash, balance, created, attrs FROM accounts WHERE id = $1`, id).
		Scan(&a.TokenHash, &a.Balance, &a.Created, &a.Attrs)
	a.Created = utc(a.Created)
	if len(a.Attrs) == 0 {
		a.Attrs = nil
	}
	return a, one("account "+id, err)
}

// postEntry adds the amount and appends the ledger entry in one round
// trip; no row means an unknown account or a balance that would go
// negative. Overflow fails the statement (bigint out of range).
const postEntry = `
WITH a AS (
	UPDATE accounts SET balance = balance + $2 WHERE id = $1 AND balance + $2 >= 0 RETURNING balance
), l AS (
	INSERT INTO ledger (account, time, kind, amount, reference) SELECT $1, $3, $4, $2, $5 FROM a
)
SELECT balance FROM a`

func (x *tx) Post(ctx context.Context, e storage.Entry) (int64, error) {
	what := fmt.Sprintf("post %s of %d to %s", e.Kind, e.Amount, e.Account)
	var balance int64
	err := x.t.QueryRow(ctx, postEntry, e.Account, e.Amount, e.Time, e.Kind, e.Reference).Scan(&balance)
	if !errors.Is(err, pgx.ErrNoRows) {
		return balance, one(what, err)
	}
	if err := x.t.QueryRow(ctx, `SELECT balance FROM accounts WHERE id = $1`, e.Account).Scan(&balance); err != nil {
		return 0, one(what, err)
	}
	return 0, fmt.Errorf("%s: balance %d: %w", what, balance, storage.ErrInsufficientFunds)
}

func (x *tx) Entries(ctx context.Context, account string, limit int) ([]storage.Entry, error) {
	what := "entries of " + account
	rows, err := x.t.Query(ctx,
		`SELECT id, time, kind, amount, reference FROM ledger WHERE account = $1 ORDER BY id DESC LIMIT $2`, account, limit)
	if err != nil {
		return nil, fail(what, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Entry, error) {
		e := storage.Entry{Account: account}
		err := r.Scan(&e.ID, &e.Time, &e.Kind, &e.Amount, &e.Reference)
		e.Time = utc(e.Time)
		return e, err
	})
	if err != nil {
		return nil, fail(what, err)
	}
	return out, nil
}

func (x *tx) Withdrawal(ctx context.Context, account, id string) (storage.Withdrawal, error) {
	w := storage.Withdrawal{Account: account, ID: id}
	err := x.t.QueryRow(ctx,
		`SELECT request_hash, response, created FROM withdrawals WHERE account = $1 AND id = $2`, account, id).
		Scan(&w.RequestHash, &w.Response, &w.Created)
	w.Created = utc(w.Created)
	return w, one(fmt.Sprintf("withdrawal %q of %s", id, account), err)
}

func (x *tx) InsertWithdrawal(ctx context.Context, w storage.Withdrawal) error {
	return x.insert(ctx, fmt.Sprintf("insert withdrawal %q of %s", w.ID, w.Account),
		`INSERT INTO withdrawals (account, id, request_hash, response, created) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
		w.Account, w.ID, w.RequestHash, w.Response, w.Created)
}

func (x *tx) InsertIssued(ctx context.Context, coins []storage.IssuedCoin) error {
	const what = "insert issued coins"
	if err := storage.CheckBatch(what, len(coins)); err != nil {
		return err
	}
	n := len(coins)
	serial, account, withdrawal, keyID, checksum := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	value, issued := make([]int64, n), make([]time.Time, n)
	for i, c := range coins {
		serial[i], account[i], withdrawal[i], keyID[i], checksum[i] = c.Serial, c.Account, c.Withdrawal, c.KeyID, c.Checksum
		value[i], issued[i] = c.Value, c.Issued
	}
	tag, err := x.t.Exec(ctx, `
		INSERT INTO issued (serial, account, withdrawal, key_id, value, checksum, issued)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::timestamptz[])
		ON CONFLICT DO NOTHING`,
		serial, account, withdrawal, keyID, value, checksum, issued)
	if err != nil {
		return fail(what, err)
	}
	if tag.RowsAffected() != int64(n) {
		return fmt.Errorf("%s: %d of %d serials issued before: %w", what, int64(n)-tag.RowsAffected(), n, storage.ErrDuplicate)
	}
	return nil
}

func (x *tx) Issued(ctx context.Context, serials []string) (map[string]storage.IssuedCoin, error) {
	const what = "issued coins"
	if err := storage.CheckBatch(what, len(serials)); err != nil {
		return nil, err
	}
	rows, err := x.t.Query(ctx,
		`SELECT serial, account, withdrawal, key_id, value, checksum, issued FROM issued WHERE serial = ANY($1::text[])`, serials)
	if err != nil {
		return nil, fail(what, err)
	}
	out := make(map[string]storage.IssuedCoin, len(serials))
	var c storage.IssuedCoin
	_, err = pgx.ForEachRow(rows, []any{&c.Serial, &c.Account, &c.Withdrawal, &c.KeyID, &c.Value, &c.Checksum, &c.Issued}, func() error {
		c.Issued = utc(c.Issued)
		out[c.Serial] = c
		return nil
	})
	if err != nil {
		return nil, fail(what, err)
	}
	return out, nil
}

const spentColumns = `serial, key_id, value, account, reference, chain_hash, sandbox, deposited`

func scanSpent(row pgx.Row, extra ...any) (storage.SpentCoin, error) {
	var s storage.SpentCoin
	err := row.Scan(append([]any{&s.Serial, &s.KeyID, &s.Value, &s.Account, &s.Reference, &s.ChainHash, &s.Sandbox, &s.Deposited}, extra...)...)
	s.Deposited = utc(s.Deposited)
	return s, err
}

// InsertSpent inserts the batch in one statement and reads the records
// of the serials it skipped in a second one.
func (x *tx) InsertSpent(ctx context.Context, coins []storage.SpentCoin) ([]storage.SpentResult, error) {
	const what = "spend"
	if err := storage.CheckBatch(what, len(coins)); err != nil {
		return nil, err
	}
	first := storage.FirstBySerial(coins)
	n := len(first)
	serial, keyID, account, reference := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	value, deposited := make([]int64, n), make([]time.Time, n)
	chainHash, sandbox := make([][]byte, n), make([][]byte, n)
	for i, c := range first {
		serial[i], keyID[i], account[i], reference[i] = c.Serial, c.KeyID, c.Account, c.Reference
		value[i], deposited[i], chainHash[i], sandbox[i] = c.Value, c.Deposited, c.ChainHash, c.Sandbox
	}
	rows, err := x.t.Query(ctx, `
		INSERT INTO spent (`+spentColumns+`)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bytea[], $7::bytea[], $8::timestamptz[])
		ON CONFLICT (serial) DO NOTHING
		RETURNING serial`,
		serial, keyID, value, account, reference, chainHash, sandbox, deposited)
	if err != nil {
		return nil, fail(what, err)
	}
	inserted := make(map[string]bool, n)
	var s string
	if _, err := pgx.ForEachRow(rows, []any{&s}, func() error { inserted[s] = true; return nil }); err != nil {
		return nil, fail(what, err)
	}
	stored := map[string]storage.SpentCoin{}
	if len(inserted) < n {
		var skipped []string
		for _, c := range first {
			if !inserted[c.Serial] {
				skipped = append(skipped, c.Serial)
			}
		}
		rows, err := x.t.Query(ctx, `SELECT `+spentColumns+` FROM spent WHERE serial = ANY($1::text[])`, skipped)
		if err != nil {
			return nil, fail(what, err)
		}
		for rows.Next() {
			r, err := scanSpent(rows)
			if err != nil {
				rows.Close()
				return nil, fail(what, err)
			}
			stored[r.Serial] = r
		}
		if err := rows.Err(); err != nil {
			return nil, fail(what, err)
		}
	}
	return storage.SpentResults(coins, inserted, stored)
}

func (x *tx) InsertConflict(ctx context.Context, c storage.Conflict) error {
	return x.insert(ctx, fmt.Sprintf("insert conflict on %.8s", c.Serial),
		`INSERT INTO conflicts (serial, chain_hash, key, idx, account, sandbox, detected) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
		c.Serial, c.ChainHash, c.Key, c.Index, c.Account, c.Sandbox, c.Detected)
}

func (x *tx) Conflicts(ctx context.Context) ([]storage.Conflict, error) {
	rows, err := x.t.Query(ctx, `
		SELECT s.serial, s.key_id, s.value, s.account, s.reference, s.chain_hash, s.sandbox, s.deposited,
		       c.chain_hash, c.key, c.idx, c.account, c.sandbox, c.detected
		FROM conflicts c JOIN spent s ON s.serial = c.serial
		ORDER BY c.seq`)
	if err != nil {
		return nil, fail("conflicts", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Conflict, error) {
		var c storage.Conflict
		first, err := scanSpent(r, &c.ChainHash, &c.Key, &c.Index, &c.Account, &c.Sandbox, &c.Detected)
		c.Serial, c.First, c.Detected = first.Serial, first, utc(c.Detected)
		return c, err
	})
	if err != nil {
		return nil, fail("conflicts", err)
	}
	return out, nil
}

func (x *tx) InsertIssuerKey(ctx context.Context, k storage.IssuerKey) error {
	return x.insert(ctx, "insert issuer key "+k.KeyID,
		`INSERT INTO issuer_keys (key_id, use, seed, entry, created) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
		k.KeyID, k.Use, k.Seed, k.Entry, k.Created)
}

func (x *tx) IssuerKeys(ctx context.Context) ([]storage.IssuerKey, error) {
	rows, err := x.t.Query(ctx, `SELECT key_id, use, seed, entry, created FROM issuer_keys ORDER BY seq`)
	if err != nil {
		return nil, fail("issuer keys", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.IssuerKey, error) {
		var k storage.IssuerKey
		err := r.Scan(&k.KeyID, &k.Use, &k.Seed, &k.Entry, &k.Created)
		k.Created = utc(k.Created)
		return k, err
	})
	if err != nil {
		return nil, fail("issuer keys", err)
	}
	return out, nil
}

func (x *tx) Backup(ctx context.Context, id string) (storage.Backup, error) {
	b := storage.Backup{ID: id}
	err := x.t.QueryRow(ctx, `SELECT version, data, created, updated FROM backups WHERE id = $1`, id).
		Scan(&b.Version, &b.Data, &b.Created, &b.Updated)
	b.Created, b.Updated = utc(b.Created), utc(b.Updated)
	return b, one("backup "+id, err)
}

func (x *tx) HasBackup(ctx context.Context, id string) (bool, error) {
	var ok bool
	if err := x.t.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM backups WHERE id = $1)`, id).Scan(&ok); err != nil {
		return false, fail("backup "+id, err)
	}
	return ok, nil
}

func (x *tx) PutBackup(ctx context.Context, b storage.Backup) error {
	_, err := x.t.Exec(ctx, `INSERT INTO backups (id, version, data, created, updated) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET version = excluded.version, data = excluded.data, updated = excluded.updated`,
		b.ID, b.Version, b.Data, b.Created, b.Updated)
	if err != nil {
		return fail("put backup "+b.ID, err)
	}
	return nil
}

func (x *tx) AuditSums(ctx context.Context) (storage.AuditSums, error) {
	var a storage.AuditSums
	err := x.t.QueryRow(ctx, `
		WITH perkey AS (
			SELECT key_id, sum(n) AS n, sum(v) AS v FROM (
				SELECT key_id, count(*) AS n, sum(value) AS v FROM issued GROUP BY key_id
				UNION ALL
				SELECT key_id, -count(*), -sum(value) FROM spent GROUP BY key_id
			) AS both_sets GROUP BY key_id)
		SELECT
			(SELECT count(*) FROM issued), (SELECT coalesce(sum(value), 0)::bigint FROM issued),
			(SELECT count(*) FROM spent), (SELECT coalesce(sum(value), 0)::bigint FROM spent),
			(SELECT coalesce(sum(n), 0)::bigint FROM perkey WHERE n > 0), (SELECT coalesce(sum(v), 0)::bigint FROM perkey WHERE n > 0),
			(SELECT coalesce(-sum(n), 0)::bigint FROM perkey WHERE n < 0), (SELECT coalesce(-sum(v), 0)::bigint FROM perkey WHERE n < 0),
			(SELECT coalesce(sum(amount), 0)::bigint FROM ledger WHERE kind = 'credit'),
			(SELECT coalesce(sum(amount), 0)::bigint FROM ledger WHERE kind = 'withdraw'),
			(SELECT coalesce(sum(amount), 0)::bigint FROM ledger WHERE kind = 'deposit'),
			(SELECT count(*) FROM accounts), (SELECT coalesce(sum(balance), 0)::bigint FROM accounts)`).
		Scan(&a.Issued.Count, &a.Issued.Value, &a.Spent.Count, &a.Spent.Value,
			&a.Outstanding.Count, &a.Outstanding.Value, &a.Unissued.Count, &a.Unissued.Value,
			&a.Credits, &a.Withdrawals, &a.Deposits, &a.Accounts, &a.Balances)
	if err != nil {
		return a, fail("audit sums", err)
	}
	return a, nil
}

func (x *tx) LedgerMismatches(ctx context.Context) ([]storage.LedgerMismatch, error) {
	rows, err := x.t.Query(ctx, `
		SELECT a.id, a.balance, coalesce(l.total, 0)::bigint
		FROM accounts a LEFT JOIN (SELECT account, sum(amount) AS total FROM ledger GROUP BY account) l ON l.account = a.id
		WHERE a.balance != coalesce(l.total, 0)
		ORDER BY a.id`)
	if err != nil {
		return nil, fail("ledger mismatches", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.LedgerMismatch, error) {
		var m storage.LedgerMismatch
		err := r.Scan(&m.Account, &m.Balance, &m.LedgerSum)
		return m, err
	})
	if err != nil {
		return nil, fail("ledger mismatches", err)
	}
	return out, nil
}
