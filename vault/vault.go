package vault

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/oasisprotocol/curve25519-voi/primitives/x25519"

	"github.com/otpcash/otpcash/internal/parallel"
	"github.com/otpcash/otpcash/otp"
)

// Errors callers can test with errors.Is. Returned errors wrap them with
// what was wrong.
var (
	ErrWrongPIN       = errors.New("wrong PIN or passphrase")
	ErrExists         = errors.New("already exists")
	ErrNotFound       = errors.New("not found")
	ErrNoExchangeKeys = errors.New("not enough certified exchange keys")
	ErrInsufficient   = errors.New("insufficient funds")
	ErrState          = errors.New("wrong state")
	// ErrNotAgreed refuses a coin that arrived on an exchange key promised
	// for a payment with change but is not the coin the payer proposed
	// for it (value, currency or program).
	ErrNotAgreed = errors.New("coin differs from the agreed payment")
)

var errClosed = errors.New("vault is closed")

// State is where a coin is in its life in this vault.
type State string

const (
	Held       State = "held"        // spendable: the vault holds its key
	PendingOut State = "pending-out" // sealed to a payee, receipt not yet back
	Spent      State = "spent"       // paid; kept with the payee's receipt
	Deposited  State = "deposited"   // credited by the bank
	Reclaimed  State = "reclaimed"   // sealed, never delivered, credited back by the bank
	Refused    State = "refused"     // its deposit refused by the bank for good; kept with the bank's reason
)

// Vault is an open vault. It is safe for concurrent use, and SQLite's
// locking keeps it consistent if two processes open the same directory.
type Vault struct {
	mu    sync.Mutex
	db    *sql.DB
	stmts map[string]*sql.Stmt
	s     *sealer
	now   func() time.Time
	mem   memo // guarded by mu
	// g is the TPM vault's protector, nil for a software vault. After a
	// write it could not advance, failed is set and the vault refuses
	// further work: reopening finishes that write.
	g      guard
	failed error
}

// memo remembers, by record version (see versions), what was decrypted
// of records read at every session, so that each is decrypted once per
// process while it stays unchanged.
type memo struct {
	// certs holds the certificates of the exchange keys that can be
	// offered: public data, never the keys' seeds.
	certs map[string]versioned[otp.ExchangeKey] // by row key
	// offer is certs' keys, soonest expiry first (then by key).
	offer []otp.ExchangeKey
	// certsWhole says that certs is every offerable key as committed, read
	// when the database's data_version was certsAt and kept up to date
	// with this vault's own committed key writes (rememberKeyWrites):
	// until another connection commits (data_version moves), offerable
	// needs no scan of the keys, whose number grows with what the wallet
	// can receive.
	certsWhole bool
	certsAt    int64
	// held holds the coins held, which every payment lists (tx.held), by
	// row key; heldOrder is them in Payable's order. heldWhole says that
	// held is every coin held as committed when the data_version was
	// heldAt, but for the records in heldStale, written by this vault's
	// transactions since.
	held      map[string]versioned[*Coin]
	heldOrder []*Coin
	heldWhole bool
	heldAt    int64
	heldStale [][]byte
}

// wroteCoins takes note of the coin records ids a transaction wrote, once
// it has ended: they are read again at the next listing of the held coins,
// as they then are, whether it committed or not. When more were written
// than are held, reading every version costs less.
func (m *memo) wroteCoins(ids [][]byte) {
	if len(ids) == 0 || !m.heldWhole {
		return
	}
	if len(m.heldStale)+len(ids) > len(m.held) {
		m.heldWhole, m.heldStale = false, nil
		return
	}
	m.heldStale = append(m.heldStale, ids...)
}

// Create makes a new vault in dir, protected by pin, with a fresh data key
// and a fresh identity key. It fails with ErrExists if dir already holds a
// vault, and with ErrWeakPIN if pin does not meet CheckPIN. opts may be
// nil: a software vault.
func Create(ctx context.Context, dir string, pin []byte, opts *Options) (*Vault, error) {
	if err := CheckPIN(pin); err != nil {
		return nil, fmt.Errorf("create vault: %w", err)
	}
	params, err := opts.params()
	if err != nil {
		return nil, fmt.Errorf("create vault: %w", err)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	kind, err := storedName(o.Protector)
	if err != nil {
		return nil, fmt.Errorf("create vault: %w", err)
	}
	var p keyProtector = &argon2Protector{pin: pin, params: params}
	if kind == protectorTPM {
		p = newTPMProtector(o.TPM, pin)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create vault: %w", err)
	}
	path := filepath.Join(dir, dbName)
	// SQLite creates files with the process umask; creating the file here
	// makes it, and the -wal and -shm files SQLite copies the mode of,
	// readable by the owner only.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create vault: %w", err)
	}
	f.Close()
	db, err := openDB(path)
	if err != nil {
		return nil, fmt.Errorf("create vault in %s: %w", dir, err)
	}
	v := &Vault{db: db, now: time.Now}
	v.g, _ = p.(guard)
	if err := v.create(ctx, dir, p); err != nil {
		v.Close()
		return nil, fmt.Errorf("create vault: %w", err)
	}
	return v, nil
}

func (v *Vault) create(ctx context.Context, dir string, p keyProtector) error {
	// The secret: the data key, and in the TPM vault the state key too.
	dataKey := make([]byte, dataKeySize)
	if v.g != nil {
		dataKey = make([]byte, 2*dataKeySize)
	}
	rand.Read(dataKey)
	var err error
	if v.s, err = newSealer(dataKey); err != nil {
		return err
	}
	identity, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if _, err := v.db.ExecContext(ctx, schema); err != nil {
		return err
	}
	if v.stmts, err = prepare(ctx, v.db); err != nil {
		return err
	}
	err = v.update(ctx, func(t *tx) error {
		meta, err := t.meta()
		if err != nil {
			return err
		}
		if len(meta) > 0 {
			return fmt.Errorf("%w: a vault is already in %s", ErrExists, dir)
		}
		wrapped, err := p.wrap(dataKey)
		if err != nil {
			return err
		}
		rows := map[string][]byte{
			metaFormat:     []byte(formatVersion),
			metaProtector:  []byte(p.name()),
			metaWrappedKey: wrapped,
		}
		if tp, ok := p.(*tpmProtector); ok {
			rows[metaTPM] = []byte(tp.dev)
		}
		for name, value := range rows {
			if _, err := t.sql.ExecContext(ctx, `INSERT INTO meta (name, value) VALUES (?, ?)`, name, value); err != nil {
				return err
			}
		}
		return t.put(kindIdentity, t.s.id(kindIdentity), "", nil, identity.Bytes())
	})
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes the new database file's directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Open unlocks the vault in dir with pin: ErrNotFound if there is none,
// ErrWrongPIN if pin does not open it, ErrLocked after too many wrong
// PINs. A TPM vault opens on the TPM it was created with.
func Open(ctx context.Context, dir string, pin []byte) (*Vault, error) {
	return OpenWith(ctx, dir, pin, nil)
}

// OpenWith is Open with options: a non-empty opts.Protector must be the
// vault's (ErrProtector otherwise), and opts.TPM names the TPM of a TPM
// vault when it is not the one recorded at Create. A TPM vault fails with
// ErrOtherTPM on another TPM, and with ErrRollback when it is an older
// copy than the TPM's record. opts may be nil.
func OpenWith(ctx context.Context, dir string, pin []byte, opts *Options) (*Vault, error) {
	return openWith(ctx, dir, pin, opts, time.Now)
}

func openWith(ctx context.Context, dir string, pin []byte, opts *Options, now func() time.Time) (*Vault, error) {
	path := filepath.Join(dir, dbName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open vault: %w: no vault in %s", ErrNotFound, dir)
	}
	db, err := openDB(path)
	if err != nil {
		return nil, fmt.Errorf("open vault in %s: %w", dir, err)
	}
	v := &Vault{db: db, now: now}
	var o Options
	if opts != nil {
		o = *opts
	}
	if err := v.unlock(ctx, dir, pin, o); err != nil {
		v.Close()
		return nil, fmt.Errorf("open vault: %w", err)
	}
	return v, nil
}

func (v *Vault) unlock(ctx context.Context, dir string, pin []byte, o Options) error {
	meta, err := v.meta(ctx)
	if err != nil {
		return err
	}
	if meta[metaWrappedKey] == nil {
		return fmt.Errorf("%w: no vault in %s (an earlier Create may have been interrupted)", ErrNotFound, dir)
	}
	if f := string(meta[metaFormat]); f != formatVersion {
		return fmt.Errorf("vault format %q is not supported", f)
	}
	kind := string(meta[metaProtector])
	if o.Protector != "" {
		want, err := storedName(o.Protector)
		if err != nil {
			return err
		}
		if kind != want {
			return fmt.Errorf("%w: the vault in %s was made with protector %q, not %q", ErrProtector, dir, kind, want)
		}
	}
	dev := o.TPM
	if dev == "" {
		dev = string(meta[metaTPM])
	}
	p, err := protectorFor(kind, pin, dev)
	if err != nil {
		return err
	}
	v.g, _ = p.(guard)
	// The software vault counts wrong PINs; the TPM counts them for the
	// TPM vault, under its dictionary-attack lockout.
	if v.g == nil {
		if err := v.countTry(ctx, meta); err != nil {
			return err
		}
	}
	dataKey, err := p.unwrap(meta[metaWrappedKey])
	if err != nil {
		return err
	}
	if v.g == nil {
		if err := v.clearTries(ctx); err != nil {
			return err
		}
	}
	if v.s, err = newSealer(dataKey); err != nil {
		return err
	}
	v.stmts, err = prepare(ctx, v.db)
	return err
}

// meta returns the plaintext meta rows; none when the vault was never
// created.
func (t *tx) meta() (map[string][]byte, error) {
	var n int
	if err := t.sql.QueryRowContext(t.ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'`).Scan(&n); err != nil || n == 0 {
		return nil, err
	}
	rs, err := t.sql.QueryContext(t.ctx, `SELECT name, value FROM meta`)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	m := map[string][]byte{}
	for rs.Next() {
		var name string
		var value []byte
		if err := rs.Scan(&name, &value); err != nil {
			return nil, err
		}
		m[name] = value
	}
	return m, rs.Err()
}

// Close closes the database. The vault cannot be used afterwards.
func (v *Vault) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.db == nil {
		return errClosed
	}
	err := v.db.Close()
	if v.g != nil {
		err = errors.Join(err, v.g.close())
	}
	v.db, v.stmts, v.s = nil, nil, nil
	return err
}

// update runs fn in one transaction, committed only if fn succeeds. All
// access to the vault goes through it or view, one call at a time.
//
// In a TPM vault, a transaction that destroys a key also stores the data
// key sealed for the TPM's next chain value, and the chain is extended
// after the commit: once per transaction, whatever its number of coins.
// update returns only after that, so nothing a payment seals leaves the
// vault before an older copy of it is dead.
func (v *Vault) update(ctx context.Context, fn func(*tx) error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	t, err := v.begin(ctx, nil)
	if err != nil {
		return err
	}
	sqlTx := t.sql
	// A transaction that wrote a key record leaves the remembered keys to
	// be read again, unless it committed and they were brought up to date.
	keysKept := false
	defer func() {
		v.mem.certsWhole = v.mem.certsWhole && (len(t.keyWrites) == 0 || keysKept)
		v.mem.wroteCoins(t.coinWrites)
	}()
	if err := fn(t); err != nil {
		sqlTx.Rollback()
		return err
	}
	advance := t.destroys && v.g != nil
	var next *sealer
	if advance {
		if next, err = v.reseal(t); err != nil {
			sqlTx.Rollback()
			return err
		}
	}
	if err := sqlTx.Commit(); err != nil {
		if advance {
			v.g.abandon()
		}
		return fmt.Errorf("commit: %w", err)
	}
	// A new state key re-encrypted every key record: they are read again.
	keysKept = !advance && t.rememberKeyWrites()
	if advance {
		v.s = next
		if err := v.g.advance(); err != nil {
			// Committed but not extended: the next Open extends it.
			v.failed = fmt.Errorf("vault needs reopening: the write was stored but the TPM was not advanced: %w", err)
			return v.failed
		}
	}
	return nil
}

// usable refuses work on a closed vault, or one whose last write failed
// half-way; v.mu is held.
func (v *Vault) usable() error {
	if v.db == nil {
		return errClosed
	}
	return v.failed
}

// meta reads the vault's metadata: what unlocking it needs.
func (v *Vault) meta(ctx context.Context) (map[string][]byte, error) {
	var meta map[string][]byte
	err := v.update(ctx, func(t *tx) error {
		var err error
		meta, err = t.meta()
		return err
	})
	return meta, err
}

// view runs fn in a read transaction: fn sees one state of the vault,
// and the transaction is rolled back whatever fn did, so a read neither
// writes nor, in a TPM vault, advances the chain.
func (v *Vault) view(ctx context.Context, fn func(*tx) error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	t, err := v.begin(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer t.sql.Rollback()
	return fn(t)
}

// begin opens a transaction; the caller holds v.mu.
func (v *Vault) begin(ctx context.Context, opts *sql.TxOptions) (*tx, error) {
	sqlTx, err := v.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &tx{ctx: ctx, sql: sqlTx, stmts: v.stmts, s: v.s, now: v.now(), mem: &v.mem}, nil
}

// reseal draws a new state key, re-encrypts the private-key records
// under it and stores the secret sealed for the next chain value, all
// with t; it returns the sealer of the new secret, for after the commit.
// An older copy's keys stay under a state key sealed only to chain values
// that are about to pass.
func (v *Vault) reseal(t *tx) (*sealer, error) {
	wrapped, secret, err := v.g.prepare()
	if err != nil {
		return nil, err
	}
	next, err := newSealer(secret)
	if err == nil {
		err = rekey(t, next)
	}
	if err == nil {
		err = t.setWrapped(wrapped)
	}
	if err != nil {
		v.g.abandon()
		return nil, err
	}
	return next, nil
}

// setWrapped stores the wrapped (or sealed) data key.
func (t *tx) setWrapped(wrapped []byte) error {
	_, err := t.sql.ExecContext(t.ctx, `UPDATE meta SET value = ? WHERE name = ?`, wrapped, metaWrappedKey)
	return err
}

// rekey re-encrypts every private-key record from t's sealer to next.
func rekey(t *tx, next *sealer) error {
	raws, err := scanRecords(t, kindKey, allRecords, nil)
	if err != nil {
		return err
	}
	blobs := make([][]byte, len(raws))
	err = parallel.ForEach(len(raws), func(i int) error {
		r := &raws[i]
		// The plaintext moves as it is, in whichever record form.
		plain, err := t.s.openPlain(kindKey, r.id, r.state, r.ref, r.blob)
		if err != nil {
			return err
		}
		blobs[i] = next.sealPlain(kindKey, r.id, r.state, r.ref, plain)
		return nil
	})
	if err != nil {
		return fmt.Errorf("re-encrypt the keys: %w", err)
	}
	for i, r := range raws {
		if err := t.putSealed(kindKey, r.id, r.state, r.ref, blobs[i]); err != nil {
			return err
		}
	}
	return nil
}

// Setting returns the value stored under name; ErrNotFound if none is.
func (v *Vault) Setting(ctx context.Context, name string) ([]byte, error) {
	var value []byte
	err := v.update(ctx, func(t *tx) error {
		_, err := t.get(kindSetting, t.s.id(kindSetting, []byte(name)), &value)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("setting %q: %w", name, err)
	}
	return value, nil
}

// SetSetting stores value under name, encrypted like everything else.
func (v *Vault) SetSetting(ctx context.Context, name string, value []byte) error {
	if name == "" {
		return errors.New("set setting: empty name")
	}
	err := v.update(ctx, func(t *tx) error {
		return t.put(kindSetting, t.s.id(kindSetting, []byte(name)), "", nil, value)
	})
	if err != nil {
		return fmt.Errorf("set setting %q: %w", name, err)
	}
	return nil
}

// Identity returns the wallet's long-term X25519 key pair, made at Create,
// which authenticates it in the Noise handshake.
func (v *Vault) Identity(ctx context.Context) (priv, pub []byte, err error) {
	err = v.update(ctx, func(t *tx) error {
		_, err := t.get(kindIdentity, t.s.id(kindIdentity), &priv)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("identity: %w", err)
	}
	// curve25519-voi's fixed-base multiplication, as the p2p channel's:
	// 9 us where crypto/ecdh takes some 40, once a session.
	pub, err = x25519.X25519(priv, x25519.Basepoint)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: %w", err)
	}
	return priv, pub, nil
}
