package vault

import (
	"context"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	_ "modernc.org/sqlite"

	"github.com/otpcash/otpcash/internal/parallel"
)

// dbName is the vault's database inside the wallet directory. SQLite adds
// dbName-wal and dbName-shm next to it, with the same permissions.
const dbName = "vault.db"

// Record kinds. The kind is part of every row key and of every record's
// associated data.
const (
	kindSetting    = "setting"
	kindIdentity   = "identity"
	kindWithdrawal = "withdrawal"
	kindKey        = "key"
	kindCoin       = "coin"
	kindEvent      = "event"

	// refSerial is not a kind but the MAC domain of the index that finds
	// every holding of one coin.
	refSerial = "serial"
)

// The plaintext meta table holds what is needed before the data key is
// known. Nothing in it is secret.
const (
	metaFormat     = "format"
	metaProtector  = "protector"
	metaWrappedKey = "wrapped-key"
	metaTPM        = "tpm" // the TPM a TPM vault was made on
	formatVersion  = "1"
)

// schema holds no vault until the meta rows are written, in one
// transaction, so a crash during Create leaves either no vault or a
// complete one.
const schema = `
CREATE TABLE IF NOT EXISTS meta (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS record (
	kind  TEXT NOT NULL,
	id    BLOB NOT NULL,
	state TEXT NOT NULL,
	ref   BLOB,
	blob  BLOB NOT NULL,
	UNIQUE (kind, id)
);
CREATE INDEX IF NOT EXISTS record_state ON record (kind, state);
CREATE INDEX IF NOT EXISTS record_ref ON record (kind, ref) WHERE ref IS NOT NULL;
`

// openDB opens the database at path, which must exist. Every write is a
// durable transaction: WAL with synchronous=FULL fsyncs the log on commit.
// Transactions begin IMMEDIATE so that a read-check-write sequence holds
// the write lock from its first read, also against another process.
// secure_delete overwrites deleted records, so a destroyed holder key does
// not linger, even encrypted, in the database's free pages.
func openDB(path string) (*sql.DB, error) {
	q := url.Values{}
	q.Set("mode", "rw")
	q.Set("_txlock", "immediate")
	q.Set("_busy_timeout", "10000")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Add("_pragma", "secure_delete(ON)")
	// A file: URI names a file by an absolute path: a relative one would
	// read as the URI's authority ("file://alice/vault.db"). url.URL then
	// escapes what would end the path early, such as '?' and '#'.
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	abs = filepath.ToSlash(abs)
	if !strings.HasPrefix(abs, "/") {
		abs = "/" + abs // a Windows drive letter: file:///C:/...
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, err
	}
	// One connection: the vault serialises its work anyway, and every
	// statement then sees the pragmas above.
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// sealer encrypts records and computes row keys, each under its own key
// derived from the data key.
type sealer struct {
	aead cipher.AEAD
	mac  []byte
	// keys encrypts the private-key records. In the TPM vault it comes
	// from a state key drawn afresh at every write that destroys a key,
	// and the live keys are re-encrypted under it (Vault.reseal): the
	// current state's secret does not open an older copy's keys. In the
	// software vault it is aead.
	keys cipher.AEAD
}

// newSealer makes the sealer of secret: the data key, followed in the TPM
// vault by the state key.
func newSealer(secret []byte) (*sealer, error) {
	if len(secret) != dataKeySize && len(secret) != 2*dataKeySize {
		return nil, fmt.Errorf("vault secret of %d bytes", len(secret))
	}
	dataKey, stateKey := secret[:dataKeySize], secret[dataKeySize:]
	enc, err := hkdf.Key(sha256.New, dataKey, nil, "otpcash/v1/vault/record-key", chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	mac, err := hkdf.Key(sha256.New, dataKey, nil, "otpcash/v1/vault/row-key", sha256.Size)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(enc)
	if err != nil {
		return nil, err
	}
	s := &sealer{aead: aead, mac: mac, keys: aead}
	if len(stateKey) > 0 {
		k, err := hkdf.Key(sha256.New, stateKey, nil, "otpcash/v1/vault/key-record-key", chacha20poly1305.KeySize)
		if err != nil {
			return nil, err
		}
		if s.keys, err = chacha20poly1305.NewX(k); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// aeadFor returns the AEAD of records of kind.
func (s *sealer) aeadFor(kind string) cipher.AEAD {
	if kind == kindKey {
		return s.keys
	}
	return s.aead
}

// frame joins fields with length prefixes, so that no two different field
// lists give the same bytes.
func frame(fields ...[]byte) []byte {
	var b []byte
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// id is the row key of the record of kind named by parts: a MAC, so that
// serials and public keys can be looked up without being stored.
func (s *sealer) id(kind string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, s.mac)
	m.Write(frame(append([][]byte{[]byte(kind)}, parts...)...))
	return m.Sum(nil)
}

func associated(kind string, id []byte, state string, ref []byte) []byte {
	return frame([]byte("otpcash/v1/vault/record"), []byte(kind), id, []byte(state), ref)
}

// seal encrypts v, in the current record form (record.go), as the record
// kind/id.
func (s *sealer) seal(kind string, id []byte, state string, ref []byte, v any) ([]byte, error) {
	plain, err := marshalRecord(v)
	if err != nil {
		return nil, fmt.Errorf("%s record: %w", kind, err)
	}
	return s.sealPlain(kind, id, state, ref, plain), nil
}

// sealPlain encrypts the record plaintext plain as the record kind/id.
func (s *sealer) sealPlain(kind string, id []byte, state string, ref, plain []byte) []byte {
	aead := s.aeadFor(kind)
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, plain, associated(kind, id, state, ref))
}

// open decrypts the record kind/id into v, from either record form.
func (s *sealer) open(kind string, id []byte, state string, ref, blob []byte, v any) error {
	plain, err := s.openPlain(kind, id, state, ref, blob)
	if err != nil {
		return err
	}
	if err := unmarshalRecord(plain, v); err != nil {
		return fmt.Errorf("%s record: %w", kind, err)
	}
	return nil
}

// openPlain decrypts the record kind/id and returns its plaintext.
func (s *sealer) openPlain(kind string, id []byte, state string, ref, blob []byte) ([]byte, error) {
	aead := s.aeadFor(kind)
	n := aead.NonceSize()
	if len(blob) < n {
		return nil, fmt.Errorf("%s record is truncated", kind)
	}
	plain, err := aead.Open(nil, blob[:n], blob[n:], associated(kind, id, state, ref))
	if err != nil {
		return nil, fmt.Errorf("%s record is corrupt or was tampered with", kind)
	}
	return plain, nil
}

// The statements on records, prepared once per vault: preparing a
// statement costs more than running it, and a batch runs several per coin.
const (
	getRecord  = `SELECT state, ref, blob FROM record WHERE kind = ? AND id = ?`
	getRecords = `SELECT id, state, ref, blob FROM record WHERE kind = ? AND id IN (?` // scanIn adds a ", ?" an id more, and ")"
	// getRecordsByRef is getRecords by ref, which the partial index
	// record_ref serves: a ref IN (...) is never NULL.
	getRecordsByRef = `SELECT id, state, ref, blob FROM record WHERE kind = ? AND ref IN (?`
	putRecord       = `INSERT INTO record (kind, id, state, ref, blob) VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, id) DO UPDATE SET state = excluded.state, ref = excluded.ref, blob = excluded.blob`
	deleteRecord    = `DELETE FROM record WHERE kind = ? AND id = ?`
	lastRecord      = `SELECT id FROM record WHERE kind = ? ORDER BY id DESC LIMIT 1`
	listRecords     = `SELECT id, state, ref, blob FROM record WHERE kind = ?`
	// dataVersion moves when another connection commits (never for this
	// one's own commits): the vault's connection learns that a process
	// sharing the database changed it. Its count is per connection, so it
	// comes with whether this connection holds the temporary table
	// memoConnection, made when the vault prepares its statements (and by
	// a transaction that finds it missing, if it commits): a new
	// connection (database/sql replaces one it finds broken) starts its
	// own count, which must not be compared with the old one's.
	dataVersion    = `SELECT data_version, (SELECT count(*) FROM temp.sqlite_master WHERE name = 'memo_connection') FROM pragma_data_version`
	memoConnection = `CREATE TEMP TABLE IF NOT EXISTS memo_connection (x)`
	// A blob opens with its nonce, chacha20poly1305.NonceSizeX (24) bytes.
	listVersions = `SELECT id, substr(blob, 1, 24) FROM record WHERE kind = ? AND state = ?`
)

// prepare prepares the statements on records, and marks the database's
// one connection for dataVersion outside any transaction: a read
// transaction, which is rolled back, could not.
func prepare(ctx context.Context, db *sql.DB) (map[string]*sql.Stmt, error) {
	if _, err := db.ExecContext(ctx, memoConnection); err != nil {
		return nil, err
	}
	stmts := map[string]*sql.Stmt{}
	for _, q := range []string{getRecord, putRecord, deleteRecord, lastRecord, listVersions, dataVersion,
		listRecords + string(allRecords), listRecords + string(byState)} {
		s, err := db.PrepareContext(ctx, q)
		if err != nil {
			return nil, err
		}
		stmts[q] = s
	}
	return stmts, nil
}

// tx is one transaction over encrypted records.
type tx struct {
	ctx   context.Context
	sql   *sql.Tx
	stmts map[string]*sql.Stmt // prepared statements by query text
	s     *sealer
	now   time.Time            // one clock reading for the whole transaction
	mem   *memo                // the vault's, guarded by its lock
	bound map[string]*sql.Stmt // statements bound to this transaction, made once
	// destroys is set once the transaction deletes a private key: it
	// moves the TPM vault's chain (Vault.update).
	destroys bool
	// keyWrites holds the key records it writes (by row key; a deleted
	// one has no blob): Vault.update brings the remembered offerable keys
	// (memo) up to date with them once they are committed.
	keyWrites map[string]sealedRecord
	// coinWrites holds the row keys of the coin records it writes or
	// deletes, for the remembered held coins (memo.wroteCoins).
	coinWrites [][]byte
}

// noteKey records a write of the key record id, for keyWrites.
func (t *tx) noteKey(id []byte, state string, ref, blob []byte) {
	if t.keyWrites == nil {
		t.keyWrites = make(map[string]sealedRecord)
	}
	t.keyWrites[string(id)] = sealedRecord{kind: kindKey, state: state, id: id, ref: ref, blob: blob}
}

// stmt returns the prepared statement q, bound to this transaction. A batch
// runs a few statements per coin: binding each once per transaction, not
// once per use, saves an allocation and a lookup every time.
func (t *tx) stmt(q string) *sql.Stmt {
	if s, ok := t.bound[q]; ok {
		return s
	}
	if t.bound == nil {
		t.bound = make(map[string]*sql.Stmt, 4)
	}
	s := t.sql.StmtContext(t.ctx, t.stmts[q])
	t.bound[q] = s
	return s
}

// get decrypts the record kind/id into v and returns its state; ErrNotFound
// when there is none.
func (t *tx) get(kind string, id []byte, v any) (string, error) {
	var state string
	var ref, blob []byte
	err := t.stmt(getRecord).QueryRowContext(t.ctx, kind, id).Scan(&state, &ref, &blob)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", err
	}
	return state, t.s.open(kind, id, state, ref, blob, v)
}

// put stores v as the record kind/id, replacing any record there.
func (t *tx) put(kind string, id []byte, state string, ref []byte, v any) error {
	blob, err := t.s.seal(kind, id, state, ref, v)
	if err != nil {
		return err
	}
	return t.putSealed(kind, id, state, ref, blob)
}

func (t *tx) putSealed(kind string, id []byte, state string, ref, blob []byte) error {
	switch kind {
	case kindKey:
		t.noteKey(id, state, ref, blob)
	case kindCoin:
		t.coinWrites = append(t.coinWrites, id)
	}
	_, err := t.stmt(putRecord).ExecContext(t.ctx, kind, id, state, ref, blob)
	return err
}

// The batch forms of get and put: a batch of coins reads and writes a few
// records per coin. The database has one connection, so the statements run
// in turn, but decrypting, decoding, encoding and encrypting records, most
// of their cost, runs on all CPUs (parallel.ForEach).

// getAll decrypts the records kind/ids[i] into vals[i] and returns their
// states; the state of a record that is not there is "".
func getAll[T any](t *tx, kind string, ids [][]byte) (states []string, vals []T, err error) {
	raws, err := fetch(t, kind, ids)
	if err != nil {
		return nil, nil, err
	}
	if vals, err = openRaws[T](t, kind, raws, isThere); err != nil {
		return nil, nil, err
	}
	states = make([]string, len(ids))
	for i := range raws {
		states[i] = raws[i].state
	}
	return states, vals, nil
}

// openRaws decrypts raws[i] into vals[i] on all CPUs, each of them or, if
// want is not nil, those it wants; the others' vals stay zero.
func openRaws[T any](t *tx, kind string, raws []rawRecord, want func(*rawRecord) bool) ([]T, error) {
	vals := make([]T, len(raws))
	err := parallel.ForEach(len(raws), func(i int) error {
		r := &raws[i]
		if want != nil && !want(r) {
			return nil
		}
		return t.s.open(kind, r.id, r.state, r.ref, r.blob, &vals[i])
	})
	if err != nil {
		return nil, err
	}
	return vals, nil
}

// getStates returns the states of the records kind/ids[i], "" where there
// is none, without decrypting them: for a batch that only checks states.
func getStates(t *tx, kind string, ids [][]byte) ([]string, error) {
	raws, err := fetch(t, kind, ids)
	if err != nil {
		return nil, err
	}
	states := make([]string, len(raws))
	for i := range raws {
		states[i] = raws[i].state
	}
	return states, nil
}

// fetch reads the records kind/ids[i] as stored; the state of one that is
// not there is "".
func fetch(t *tx, kind string, ids [][]byte) ([]rawRecord, error) {
	raws := make([]rawRecord, len(ids))
	at := make(map[string][]int, len(ids)) // a batch may name a record twice
	for i, id := range ids {
		raws[i].id = id
		at[string(id)] = append(at[string(id)], i)
	}
	err := scanIn(t, getRecords, kind, ids, func(r rawRecord) {
		for _, i := range at[string(r.id)] {
			raws[i] = r
		}
	})
	if err != nil {
		return nil, err
	}
	return raws, nil
}

// scanIn runs q, a query on the records of kind that ends in "IN (?", for
// keys, fetchChunk of them a query, and calls each with every record
// found: a statement per key cost more in database/sql and the driver than
// in SQLite, on the one connection, while the other CPUs waited.
func scanIn(t *tx, q, kind string, keys [][]byte, each func(rawRecord)) error {
	args := make([]any, 0, 1+min(len(keys), fetchChunk))
	for lo := 0; lo < len(keys); lo += fetchChunk {
		chunk := keys[lo:min(lo+fetchChunk, len(keys))]
		args = append(args[:0], kind)
		for _, k := range chunk {
			args = append(args, k)
		}
		rs, err := t.sql.QueryContext(t.ctx, q+strings.Repeat(", ?", len(chunk)-1)+")", args...)
		if err != nil {
			return err
		}
		for rs.Next() {
			var r rawRecord
			if err := rs.Scan(&r.id, &r.state, &r.ref, &r.blob); err != nil {
				rs.Close()
				return err
			}
			each(r)
		}
		if err := errors.Join(rs.Err(), rs.Close()); err != nil {
			return err
		}
	}
	return nil
}

// fetchChunk is the most keys scanIn asks for in one query, well under
// SQLite's limit on a statement's parameters (32,766).
const fetchChunk = 500

// sealedRecord is a record encrypted for a later putSealed.
type sealedRecord struct {
	kind, state string
	id, ref     []byte
	blob        []byte
}

// sealRecord encrypts v as the record kind/id; it touches no database, so
// a batch can seal its records on all CPUs.
func (t *tx) sealRecord(kind string, id []byte, state string, ref []byte, v any) (sealedRecord, error) {
	blob, err := t.s.seal(kind, id, state, ref, v)
	return sealedRecord{kind: kind, state: state, id: id, ref: ref, blob: blob}, err
}

// putAll stores records sealed by sealRecord, in order. A zero record,
// one a batch left unsealed because that item had nothing to write, is
// skipped.
func (t *tx) putAll(recs ...sealedRecord) error {
	for _, r := range recs {
		if r.blob == nil {
			continue
		}
		if err := t.putSealed(r.kind, r.id, r.state, r.ref, r.blob); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) delete(kind string, id []byte) error {
	switch kind {
	case kindKey:
		t.destroys = true
		t.noteKey(id, "", nil, nil)
	case kindCoin:
		t.coinWrites = append(t.coinWrites, id)
	}
	_, err := t.stmt(deleteRecord).ExecContext(t.ctx, kind, id)
	return err
}

// A filter picks records of one kind by a plaintext column. Only the
// unfiltered list is ordered (by row key): ordering the others would make
// SQLite scan every record of the kind instead of using the column's index.
type filter string

const (
	allRecords filter = " ORDER BY id"
	byState    filter = " AND state = ?"
)

type row[T any] struct {
	id    []byte
	state string
	val   T
}

// list decrypts the records of kind that match f and arg.
func list[T any](t *tx, kind string, f filter, arg any) ([]row[T], error) {
	raws, err := scanRecords(t, kind, f, arg)
	if err != nil {
		return nil, err
	}
	vals, err := openRaws[T](t, kind, raws, nil)
	if err != nil {
		return nil, err
	}
	out := make([]row[T], len(raws))
	for i := range raws {
		out[i] = row[T]{id: raws[i].id, state: raws[i].state, val: vals[i]}
	}
	return out, nil
}

// isThere says whether fetch found r: the state of one not there is "".
func isThere(r *rawRecord) bool { return r.state != "" }

// rawRecord is a record as stored, still encrypted.
type rawRecord struct {
	id, ref, blob []byte
	state         string
}

// versions returns, for every record of kind in state, its row key and
// its version: the row key, the state and the nonce, which every write of
// a record draws afresh. It reads only the nonce of each record.
func versions(t *tx, kind, state string) (ids [][]byte, vers []string, err error) {
	rs, err := t.stmt(listVersions).QueryContext(t.ctx, kind, state)
	if err != nil {
		return nil, nil, err
	}
	defer rs.Close()
	for rs.Next() {
		var id, nonce []byte
		if err := rs.Scan(&id, &nonce); err != nil {
			return nil, nil, err
		}
		ids, vers = append(ids, id), append(vers, version(id, state, nonce))
	}
	return ids, vers, rs.Err()
}

// version is the version of a record: its row key, state and nonce.
func version(id []byte, state string, nonce []byte) string {
	return string(id) + "\x00" + state + "\x00" + string(nonce)
}

// version is the version r has once stored.
func (r *sealedRecord) version() string {
	return version(r.id, r.state, r.blob[:chacha20poly1305.NonceSizeX])
}

// versioned is what was made of a record, and the record's version.
type versioned[V any] struct {
	ver string
	val V
}

// remembered returns what derive makes of every record of kind in state,
// by row key, decrypting only the records whose version is not the one in
// memo. The map it returns is the memo to keep: it forgets records since
// changed or gone, and changed says whether it differs from memo. derive
// must copy what it keeps of the record.
func remembered[R, V any](t *tx, kind, state string, memo map[string]versioned[V], derive func(*R) V) (_ map[string]versioned[V], changed bool, _ error) {
	ids, vers, err := versions(t, kind, state)
	if err != nil {
		return nil, false, err
	}
	next := make(map[string]versioned[V], len(ids))
	var fresh [][]byte
	for i, ver := range vers {
		if v, ok := memo[string(ids[i])]; ok && v.ver == ver {
			next[string(ids[i])] = v
		} else {
			fresh = append(fresh, ids[i])
		}
	}
	if err := reread(t, kind, state, next, fresh, derive); err != nil {
		return nil, false, err
	}
	// Every record kept was in memo: they are the same if as many.
	return next, len(fresh) > 0 || len(next) != len(memo), nil
}

// reread brings memo up to date with the records kind/ids, as remembered
// keeps it: what derive makes of those in state, under their versions; the
// others leave it. On error memo is as it was.
func reread[R, V any](t *tx, kind, state string, memo map[string]versioned[V], ids [][]byte, derive func(*R) V) error {
	raws, err := fetch(t, kind, ids)
	if err != nil {
		return err
	}
	recs, err := openRaws[R](t, kind, raws, func(r *rawRecord) bool { return r.state == state })
	if err != nil {
		return err
	}
	for i := range raws {
		r := &raws[i]
		delete(memo, string(r.id))
		if r.state == state { // opened above, so the blob holds a nonce
			memo[string(r.id)] = versioned[V]{version(r.id, r.state, r.blob[:chacha20poly1305.NonceSizeX]), derive(&recs[i])}
		}
	}
	return nil
}

// dataVersion returns the database's data_version, which moves when
// another connection commits, and whether it counts on the connection of
// the previous call (see the query dataVersion): until it moves, what a
// memo read from the database stays as this vault's own writes leave it.
// A new connection is marked here, which lasts if t commits.
func (t *tx) dataVersion() (at int64, sameConn bool, err error) {
	var n int64
	if err := t.stmt(dataVersion).QueryRowContext(t.ctx).Scan(&at, &n); err != nil {
		return 0, false, err
	}
	if n == 0 {
		if _, err := t.sql.ExecContext(t.ctx, memoConnection); err != nil {
			return 0, false, err
		}
	}
	return at, n != 0, nil
}

// scanRecords reads the records of kind that match f and arg, without
// decrypting them.
func scanRecords(t *tx, kind string, f filter, arg any) ([]rawRecord, error) {
	args := []any{kind}
	if f != allRecords {
		args = append(args, arg)
	}
	rs, err := t.stmt(listRecords+string(f)).QueryContext(t.ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []rawRecord
	for rs.Next() {
		var r rawRecord
		if err := rs.Scan(&r.id, &r.state, &r.ref, &r.blob); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rs.Err()
}
