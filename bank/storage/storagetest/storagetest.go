// Package storagetest is the conformance suite every bank storage engine
// must pass: the guarantees documented in package storage, including that
// the spent set admits a serial exactly once under concurrency.
//
// It is the one suite for every engine: bank/storage/sqlite and
// bank/storage/postgres both run it, so any difference in behaviour between
// them is a failing test. An engine's tests call Run with a function that
// returns a new, empty store for each subtest.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank/storage"
)

// Run runs the suite. open must return a new, empty store; Run closes it.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, storage.Store)
	}{
		{"Accounts", testAccounts},
		{"AccountAttrs", testAccountAttrs},
		{"Post", testPost},
		{"Rollback", testRollback},
		{"ViewIsReadOnly", testViewIsReadOnly},
		{"CancelledContext", testCancelledContext},
		{"Withdrawals", testWithdrawals},
		{"Issued", testIssued},
		{"Spent", testSpent},
		{"SpentBatch", testSpentBatch},
		{"SpentConcurrent", testSpentConcurrent},
		{"UsableAfterRefusal", testUsableAfterRefusal},
		{"PostConcurrent", testPostConcurrent},
		{"Conflicts", testConflicts},
		{"IssuerKeys", testIssuerKeys},
		{"Backups", testBackups},
		{"AuditSums", testAuditSums},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := open(t)
			t.Cleanup(func() {
				if err := st.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tc.fn(t, st)
		})
	}
}

// now is a fixed time with sub-second precision, to check that engines
// keep it.
var now = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

func update(t *testing.T, st storage.Store, fn func(storage.Tx) error) {
	t.Helper()
	if err := st.Update(context.Background(), fn); err != nil {
		t.Fatalf("update: %v", err)
	}
}

func view(t *testing.T, st storage.Store, fn func(storage.Tx) error) {
	t.Helper()
	if err := st.View(context.Background(), fn); err != nil {
		t.Fatalf("view: %v", err)
	}
}

func createAccount(t *testing.T, st storage.Store, id string, balance int64) {
	t.Helper()
	update(t, st, func(tx storage.Tx) error {
		ctx := context.Background()
		if err := tx.CreateAccount(ctx, storage.Account{ID: id, TokenHash: []byte("hash-" + id), Created: now}); err != nil {
			return err
		}
		if balance == 0 {
			return nil
		}
		_, err := tx.Post(ctx, storage.Entry{Account: id, Time: now, Kind: storage.KindCredit, Amount: balance, Reference: "setup"})
		return err
	})
}

func balance(t *testing.T, st storage.Store, id string) int64 {
	t.Helper()
	var a storage.Account
	view(t, st, func(tx storage.Tx) (err error) {
		a, err = tx.Account(context.Background(), id)
		return err
	})
	return a.Balance
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func testAccounts(t *testing.T, st storage.Store) {
	ctx := context.Background()
	createAccount(t, st, "a1", 0)
	view(t, st, func(tx storage.Tx) error {
		a, err := tx.Account(ctx, "a1")
		if err != nil {
			return err
		}
		if a.ID != "a1" || !bytes.Equal(a.TokenHash, []byte("hash-a1")) || a.Balance != 0 || !a.Created.Equal(now) || a.Created.Location() != time.UTC {
			t.Errorf("account = %+v", a)
		}
		_, err = tx.Account(ctx, "nobody")
		wantErr(t, "unknown account", err, storage.ErrNotFound)
		if a, err := tx.AccountByToken(ctx, []byte("hash-a1")); err != nil || a.ID != "a1" || a.Balance != 0 {
			t.Errorf("account by token = %+v, %v", a, err)
		}
		_, err = tx.AccountByToken(ctx, []byte("hash-nobody"))
		wantErr(t, "unknown token", err, storage.ErrNotFound)
		return nil
	})
	err := st.Update(ctx, func(tx storage.Tx) error {
		return tx.CreateAccount(ctx, storage.Account{ID: "a1", TokenHash: []byte("other"), Created: now})
	})
	wantErr(t, "duplicate account", err, storage.ErrDuplicate)
}

// testAccountAttrs checks that certified attributes survive a round trip
// and that an account created without them reads back with none.
func testAccountAttrs(t *testing.T, st storage.Store) {
	ctx := context.Background()
	tests := []struct {
		id    string
		attrs map[string]string
	}{
		{"plain", nil},
		{"shop", map[string]string{"category": "grocery", "name": "Bob's \"Fresh\" Market", "region": "日本"}},
	}
	for _, tc := range tests {
		update(t, st, func(tx storage.Tx) error {
			return tx.CreateAccount(ctx, storage.Account{ID: tc.id, TokenHash: []byte("h"), Created: now, Attrs: tc.attrs})
		})
		view(t, st, func(tx storage.Tx) error {
			a, err := tx.Account(ctx, tc.id)
			if err != nil {
				return err
			}
			if len(a.Attrs) != len(tc.attrs) {
				t.Errorf("%s: attrs = %v, want %v", tc.id, a.Attrs, tc.attrs)
			}
			for k, v := range tc.attrs {
				if a.Attrs[k] != v {
					t.Errorf("%s: attrs[%q] = %q, want %q", tc.id, k, a.Attrs[k], v)
				}
			}
			return nil
		})
	}
}

func testPost(t *testing.T, st storage.Store) {
	ctx := context.Background()
	createAccount(t, st, "a1", 0)
	update(t, st, func(tx storage.Tx) error {
		for i, amount := range []int64{500, -200, 50} {
			kind := storage.KindCredit
			if amount < 0 {
				kind = storage.KindWithdraw
			}
			bal, err := tx.Post(ctx, storage.Entry{Account: "a1", Time: now.Add(time.Duration(i) * time.Second), Kind: kind, Amount: amount, Reference: fmt.Sprint("r", i)})
			if err != nil {
				return err
			}
			if want := []int64{500, 300, 350}[i]; bal != want {
				t.Errorf("post %d: balance %d, want %d", amount, bal, want)
			}
		}
		return nil
	})
	err := st.Update(ctx, func(tx storage.Tx) error {
		_, err := tx.Post(ctx, storage.Entry{Account: "a1", Time: now, Kind: storage.KindWithdraw, Amount: -351, Reference: "too much"})
		return err
	})
	wantErr(t, "overdraft", err, storage.ErrInsufficientFunds)
	err = st.Update(ctx, func(tx storage.Tx) error {
		_, err := tx.Post(ctx, storage.Entry{Account: "nobody", Time: now, Kind: storage.KindCredit, Amount: 1, Reference: "x"})
		return err
	})
	wantErr(t, "unknown account", err, storage.ErrNotFound)
	if got := balance(t, st, "a1"); got != 350 {
		t.Fatalf("balance %d, want 350", got)
	}
	view(t, st, func(tx storage.Tx) error {
		es, err := tx.Entries(ctx, "a1", 2)
		if err != nil {
			return err
		}
		if len(es) != 2 || es[0].Reference != "r2" || es[1].Reference != "r1" || es[0].ID <= es[1].ID {
			t.Fatalf("entries = %+v, want r2, r1", es)
		}
		e := es[1]
		if e.Account != "a1" || e.Kind != storage.KindWithdraw || e.Amount != -200 || !e.Time.Equal(now.Add(time.Second)) || e.Time.Location() != time.UTC {
			t.Errorf("entry = %+v", e)
		}
		es, err = tx.Entries(ctx, "nobody", 10)
		if err != nil || len(es) != 0 {
			t.Errorf("entries of unknown account = %v, %v; want none", es, err)
		}
		return nil
	})
}

func testRollback(t *testing.T, st storage.Store) {
	ctx := context.Background()
	createAccount(t, st, "a1", 100)
	boom := errors.New("boom")
	err := st.Update(ctx, func(tx storage.Tx) error {
		if _, err := tx.Post(ctx, storage.Entry{Account: "a1", Time: now, Kind: storage.KindCredit, Amount: 1, Reference: "x"}); err != nil {
			return err
		}
		if err := tx.CreateAccount(ctx, storage.Account{ID: "a2", TokenHash: []byte("h"), Created: now}); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", boom)
	})
	wantErr(t, "update", err, boom)
	if got := balance(t, st, "a1"); got != 100 {
		t.Errorf("balance after rollback %d, want 100", got)
	}
	err = st.View(ctx, func(tx storage.Tx) error {
		_, err := tx.Account(ctx, "a2")
		return err
	})
	wantErr(t, "account created in a rolled back transaction", err, storage.ErrNotFound)
}

func testViewIsReadOnly(t *testing.T, st storage.Store) {
	ctx := context.Background()
	err := st.View(ctx, func(tx storage.Tx) error {
		return tx.CreateAccount(ctx, storage.Account{ID: "a1", TokenHash: []byte("h"), Created: now})
	})
	if err == nil {
		t.Fatal("write in View succeeded")
	}
	err = st.View(ctx, func(tx storage.Tx) error {
		_, err := tx.Account(ctx, "a1")
		return err
	})
	wantErr(t, "account written in View", err, storage.ErrNotFound)
}

func testCancelledContext(t *testing.T, st storage.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := st.Update(ctx, func(tx storage.Tx) error {
		ran = true
		return tx.CreateAccount(ctx, storage.Account{ID: "a1", TokenHash: []byte("h"), Created: now})
	})
	if err == nil {
		t.Fatalf("update with a cancelled context succeeded (fn ran: %v)", ran)
	}
	err = st.View(context.Background(), func(tx storage.Tx) error {
		_, err := tx.Account(context.Background(), "a1")
		return err
	})
	wantErr(t, "account written with a cancelled context", err, storage.ErrNotFound)
}

func testWithdrawals(t *testing.T, st storage.Store) {
	ctx := context.Background()
	createAccount(t, st, "a1", 0)
	createAccount(t, st, "a2", 0)
	w := storage.Withdrawal{Account: "a1", ID: "w1", RequestHash: []byte{1, 2}, Response: []byte(`{"coins":[]}`), Created: now}
	update(t, st, func(tx storage.Tx) error { return tx.InsertWithdrawal(ctx, w) })
	err := st.Update(ctx, func(tx storage.Tx) error { return tx.InsertWithdrawal(ctx, w) })
	wantErr(t, "duplicate withdrawal", err, storage.ErrDuplicate)
	// Ids are per account.
	update(t, st, func(tx storage.Tx) error {
		return tx.InsertWithdrawal(ctx, storage.Withdrawal{Account: "a2", ID: "w1", RequestHash: []byte{3}, Response: []byte("{}"), Created: now})
	})
	view(t, st, func(tx storage.Tx) error {
		got, err := tx.Withdrawal(ctx, "a1", "w1")
		if err != nil {
			return err
		}
		if got.Account != w.Account || got.ID != w.ID || !bytes.Equal(got.RequestHash, w.RequestHash) || !bytes.Equal(got.Response, w.Response) || !got.Created.Equal(now) {
			t.Errorf("withdrawal = %+v, want %+v", got, w)
		}
		_, err = tx.Withdrawal(ctx, "a1", "w2")
		wantErr(t, "unknown withdrawal", err, storage.ErrNotFound)
		return nil
	})
}

// issue records a withdrawal of account for the given serials, each of
// value 100.
func issue(t *testing.T, st storage.Store, account, withdrawal string, serials ...string) {
	t.Helper()
	update(t, st, func(tx storage.Tx) error {
		ctx := context.Background()
		if err := tx.InsertWithdrawal(ctx, storage.Withdrawal{Account: account, ID: withdrawal, RequestHash: []byte{1}, Response: []byte("{}"), Created: now}); err != nil {
			return err
		}
		coins := make([]storage.IssuedCoin, len(serials))
		for i, s := range serials {
			coins[i] = storage.IssuedCoin{Serial: s, Account: account, Withdrawal: withdrawal, KeyID: "coin-1", Value: 100, Checksum: "sum-" + s, Issued: now}
		}
		return tx.InsertIssued(ctx, coins)
	})
}

func testIssued(t *testing.T, st storage.Store) {
	ctx := context.Background()
	createAccount(t, st, "a1", 0)
	issue(t, st, "a1", "w1", "s1", "s2")
	view(t, st, func(tx storage.Tx) error {
		got, err := tx.Issued(ctx, []string{"s2", "s3", "s2"})
		if err != nil {
			return err
		}
		want := storage.IssuedCoin{Serial: "s2", Account: "a1", Withdrawal: "w1", KeyID: "coin-1", Value: 100, Checksum: "sum-s2", Issued: now}
		if len(got) != 1 || got["s2"] != want {
			t.Errorf("issued = %+v, want only %+v", got, want)
		}
		if got, err := tx.Issued(ctx, nil); err != nil || len(got) != 0 {
			t.Errorf("issued of no serials = %v, %v; want none", got, err)
		}
		return nil
	})
	err := st.Update(ctx, func(tx storage.Tx) error {
		return tx.InsertIssued(ctx, []storage.IssuedCoin{
			{Serial: "s3", Account: "a1", Withdrawal: "w1", KeyID: "coin-1", Value: 100, Checksum: "x", Issued: now},
			{Serial: "s1", Account: "a1", Withdrawal: "w1", KeyID: "coin-1", Value: 100, Checksum: "x", Issued: now},
		})
	})
	wantErr(t, "reissued serial", err, storage.ErrDuplicate)
	view(t, st, func(tx storage.Tx) error {
		if got, err := tx.Issued(ctx, []string{"s3"}); err != nil || len(got) != 0 {
			t.Errorf("coin of a rolled back batch: %v, %v; want none", got, err)
		}
		return nil
	})
}

func spentCoin(serial, account string, chain byte) storage.SpentCoin {
	return storage.SpentCoin{
		Serial: serial, KeyID: "coin-1", Value: 100, Account: account, Reference: "d-" + serial,
		ChainHash: []byte{chain}, Sandbox: []byte(fmt.Sprintf(`{"chain":%d}`, chain)), Deposited: now,
	}
}

func testSpent(t *testing.T, st storage.Store) {
	ctx := context.Background()
	createAccount(t, st, "a1", 0)
	createAccount(t, st, "a2", 0)
	first := spentCoin("s1", "a1", 1)
	update(t, st, func(tx storage.Tx) error {
		got, err := tx.InsertSpent(ctx, []storage.SpentCoin{first})
		if err != nil {
			return err
		}
		if len(got) != 1 || !got[0].Inserted || !equalSpent(got[0].Stored, first) {
			t.Errorf("inserted = %+v, want %+v", got, first)
		}
		return nil
	})
	update(t, st, func(tx storage.Tx) error {
		got, err := tx.InsertSpent(ctx, []storage.SpentCoin{spentCoin("s1", "a2", 2)})
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0].Inserted || !equalSpent(got[0].Stored, first) {
			t.Errorf("second deposit = %+v, want not inserted, stored %+v", got, first)
		}
		return nil
	})
}

// testSpentBatch spends a batch mixing new serials, a spent one and a
// serial given twice, and checks one result per coin, in order.
func testSpentBatch(t *testing.T, st storage.Store) {
	ctx := context.Background()
	createAccount(t, st, "a1", 0)
	createAccount(t, st, "a2", 0)
	old := spentCoin("old", "a1", 1)
	update(t, st, func(tx storage.Tx) error {
		_, err := tx.InsertSpent(ctx, []storage.SpentCoin{old})
		return err
	})
	batch := []storage.SpentCoin{
		spentCoin("n1", "a2", 1), spentCoin("old", "a2", 2), spentCoin("n2", "a2", 3), spentCoin("n1", "a2", 4),
	}
	tests := []struct {
		inserted bool
		stored   storage.SpentCoin
	}{
		{true, batch[0]}, {false, old}, {true, batch[2]}, {false, batch[0]},
	}
	update(t, st, func(tx storage.Tx) error {
		got, err := tx.InsertSpent(ctx, batch)
		if err != nil {
			return err
		}
		if len(got) != len(tests) {
			t.Fatalf("%d results for %d coins", len(got), len(tests))
		}
		for i, tc := range tests {
			if got[i].Inserted != tc.inserted || !equalSpent(got[i].Stored, tc.stored) {
				t.Errorf("coin %d: got %+v, want inserted %v, stored %+v", i, got[i], tc.inserted, tc.stored)
			}
		}
		return nil
	})
	view(t, st, func(tx storage.Tx) error {
		sums, err := tx.AuditSums(ctx)
		if err != nil {
			return err
		}
		if sums.Spent.Count != 3 {
			t.Errorf("spent set holds %d serials, want 3", sums.Spent.Count)
		}
		return nil
	})
	err := st.Update(ctx, func(tx storage.Tx) error {
		_, err := tx.InsertSpent(ctx, make([]storage.SpentCoin, storage.MaxBatch+1))
		return err
	})
	wantErr(t, "oversized batch", err, storage.ErrBatchTooLarge)
}

// testUsableAfterRefusal checks that a refused operation leaves the
// transaction usable, as bank code relies on.
func testUsableAfterRefusal(t *testing.T, st storage.Store) {
	ctx := context.Background()
	createAccount(t, st, "a1", 10)
	update(t, st, func(tx storage.Tx) error {
		err := tx.CreateAccount(ctx, storage.Account{ID: "a1", TokenHash: []byte("h"), Created: now})
		wantErr(t, "duplicate account", err, storage.ErrDuplicate)
		_, err = tx.Post(ctx, storage.Entry{Account: "a1", Time: now, Kind: storage.KindWithdraw, Amount: -11, Reference: "x"})
		wantErr(t, "overdraft", err, storage.ErrInsufficientFunds)
		_, err = tx.Post(ctx, storage.Entry{Account: "nobody", Time: now, Kind: storage.KindCredit, Amount: 1, Reference: "x"})
		wantErr(t, "unknown account", err, storage.ErrNotFound)
		_, err = tx.Account(ctx, "nobody")
		wantErr(t, "unknown account", err, storage.ErrNotFound)
		_, err = tx.Withdrawal(ctx, "a1", "none")
		wantErr(t, "unknown withdrawal", err, storage.ErrNotFound)
		c := storage.Conflict{Serial: "s1", Key: "k", Account: "a1", ChainHash: []byte{2}, Sandbox: []byte("{}"), Detected: now}
		if _, err := tx.InsertSpent(ctx, []storage.SpentCoin{spentCoin("s1", "a1", 1)}); err != nil {
			return err
		}
		if err := tx.InsertConflict(ctx, c); err != nil {
			return err
		}
		wantErr(t, "same conflict", tx.InsertConflict(ctx, c), storage.ErrDuplicate)
		k := storage.IssuerKey{KeyID: "k", Use: "coin", Seed: []byte{1}, Entry: []byte("{}"), Created: now}
		if err := tx.InsertIssuerKey(ctx, k); err != nil {
			return err
		}
		wantErr(t, "same key", tx.InsertIssuerKey(ctx, k), storage.ErrDuplicate)
		_, err = tx.Post(ctx, storage.Entry{Account: "a1", Time: now, Kind: storage.KindCredit, Amount: 5, Reference: "after"})
		return err
	})
	if got := balance(t, st, "a1"); got != 15 {
		t.Fatalf("balance %d, want 15: the transaction did not go on after its refusals", got)
	}
}

func equalSpent(a, b storage.SpentCoin) bool {
	return a.Serial == b.Serial && a.KeyID == b.KeyID && a.Value == b.Value && a.Account == b.Account &&
		a.Reference == b.Reference && bytes.Equal(a.ChainHash, b.ChainHash) && bytes.Equal(a.Sandbox, b.Sandbox) &&
		a.Deposited.Equal(b.Deposited)
}

// testSpentConcurrent races many transactions depositing one serial: the
// spent set must admit exactly one.
func testSpentConcurrent(t *testing.T, st storage.Store) {
	const n = 64
	createAccount(t, st, "a1", 0)
	var wins, spent atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			var won bool
			err := st.Update(context.Background(), func(tx storage.Tx) error {
				r, err := tx.InsertSpent(context.Background(), []storage.SpentCoin{spentCoin("s1", "a1", byte(i))})
				if err == nil {
					won = r[0].Inserted
				}
				return err
			})
			switch {
			case err != nil:
				errs <- err
			case won:
				wins.Add(1)
			default:
				spent.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	if wins.Load() != 1 || spent.Load() != n-1 {
		t.Fatalf("%d inserts won and %d found the serial spent; want 1 and %d", wins.Load(), spent.Load(), n-1)
	}
}

// testPostConcurrent races debits against one balance: serializable
// transactions let exactly as many through as the balance covers.
func testPostConcurrent(t *testing.T, st storage.Store) {
	const n, covered = 32, 10
	createAccount(t, st, "a1", covered)
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := st.Update(context.Background(), func(tx storage.Tx) error {
				_, err := tx.Post(context.Background(), storage.Entry{Account: "a1", Time: now, Kind: storage.KindWithdraw, Amount: -1, Reference: fmt.Sprint(i)})
				return err
			})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, storage.ErrInsufficientFunds):
				refused.Add(1)
			default:
				t.Errorf("debit: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != covered || refused.Load() != n-covered {
		t.Fatalf("%d debits passed, %d refused; want %d and %d", ok.Load(), refused.Load(), covered, n-covered)
	}
	if got := balance(t, st, "a1"); got != 0 {
		t.Fatalf("balance %d, want 0", got)
	}
}

func testConflicts(t *testing.T, st storage.Store) {
	ctx := context.Background()
	createAccount(t, st, "a1", 0)
	createAccount(t, st, "a2", 0)
	first := spentCoin("s1", "a1", 1)
	c := storage.Conflict{Serial: "s1", Key: "key", Index: 1, Account: "a2", ChainHash: []byte{2}, Sandbox: []byte(`{"chain":2}`), Detected: now}
	update(t, st, func(tx storage.Tx) error {
		if _, err := tx.InsertSpent(ctx, []storage.SpentCoin{first}); err != nil {
			return err
		}
		return tx.InsertConflict(ctx, c)
	})
	err := st.Update(ctx, func(tx storage.Tx) error { return tx.InsertConflict(ctx, c) })
	wantErr(t, "same conflict again", err, storage.ErrDuplicate)
	view(t, st, func(tx storage.Tx) error {
		got, err := tx.Conflicts(ctx)
		if err != nil {
			return err
		}
		if len(got) != 1 {
			t.Fatalf("%d conflicts, want 1", len(got))
		}
		g := got[0]
		if g.Serial != c.Serial || g.Key != c.Key || g.Index != c.Index || g.Account != c.Account ||
			!bytes.Equal(g.ChainHash, c.ChainHash) || !bytes.Equal(g.Sandbox, c.Sandbox) || !g.Detected.Equal(now) || !equalSpent(g.First, first) {
			t.Errorf("conflict = %+v, want %+v with first %+v", g, c, first)
		}
		return nil
	})
}

func testIssuerKeys(t *testing.T, st storage.Store) {
	ctx := context.Background()
	keys := []storage.IssuerKey{
		{KeyID: "root", Use: "root", Seed: []byte{1}, Entry: []byte{}, Created: now},
		{KeyID: "coin-b", Use: "coin", Seed: []byte{2}, Entry: []byte(`{"k":1}`), Created: now},
		{KeyID: "coin-a", Use: "coin", Seed: []byte{3}, Entry: []byte(`{"k":2}`), Created: now.Add(time.Hour)},
	}
	for _, k := range keys {
		update(t, st, func(tx storage.Tx) error { return tx.InsertIssuerKey(ctx, k) })
	}
	err := st.Update(ctx, func(tx storage.Tx) error { return tx.InsertIssuerKey(ctx, keys[1]) })
	wantErr(t, "duplicate key", err, storage.ErrDuplicate)
	view(t, st, func(tx storage.Tx) error {
		got, err := tx.IssuerKeys(ctx)
		if err != nil {
			return err
		}
		if len(got) != len(keys) {
			t.Fatalf("%d keys, want %d", len(got), len(keys))
		}
		for i := range keys {
			g, k := got[i], keys[i]
			if g.KeyID != k.KeyID || g.Use != k.Use || !bytes.Equal(g.Seed, k.Seed) || !bytes.Equal(g.Entry, k.Entry) || !g.Created.Equal(k.Created) {
				t.Errorf("key %d = %+v, want %+v (in insertion order)", i, g, k)
			}
		}
		return nil
	})
}

// testBackups: a backup is stored, read back exactly, replaced in place
// (keeping its creation time), and ids do not share a row.
func testBackups(t *testing.T, st storage.Store) {
	ctx := context.Background()
	err := st.View(ctx, func(tx storage.Tx) error { _, err := tx.Backup(ctx, "b1"); return err })
	wantErr(t, "no backup", err, storage.ErrNotFound)
	hasBackup := func(id string, want bool) {
		t.Helper()
		view(t, st, func(tx storage.Tx) error {
			if got, err := tx.HasBackup(ctx, id); err != nil || got != want {
				t.Errorf("HasBackup(%s) = %v, %v; want %v", id, got, err, want)
			}
			return nil
		})
	}
	hasBackup("b1", false)
	first := storage.Backup{ID: "b1", Version: 1, Data: []byte{0, 1, 2}, Created: now, Updated: now}
	other := storage.Backup{ID: "b2", Version: 7, Data: []byte("other"), Created: now, Updated: now}
	update(t, st, func(tx storage.Tx) error { return tx.PutBackup(ctx, first) })
	update(t, st, func(tx storage.Tx) error { return tx.PutBackup(ctx, other) })
	hasBackup("b1", true)
	hasBackup("b3", false)
	later := now.Add(time.Minute)
	second := storage.Backup{ID: "b1", Version: 2, Data: bytes.Repeat([]byte{0xff}, 1<<16), Created: later, Updated: later}
	update(t, st, func(tx storage.Tx) error { return tx.PutBackup(ctx, second) })
	view(t, st, func(tx storage.Tx) error {
		for _, want := range []storage.Backup{{ID: "b1", Version: 2, Data: second.Data, Created: now, Updated: later}, other} {
			got, err := tx.Backup(ctx, want.ID)
			if err != nil {
				return err
			}
			if got.Version != want.Version || !bytes.Equal(got.Data, want.Data) || !got.Created.Equal(want.Created) || !got.Updated.Equal(want.Updated) {
				t.Errorf("backup %s = v%d, %d bytes, %v, %v; want v%d, %d bytes, %v, %v", want.ID,
					got.Version, len(got.Data), got.Created, got.Updated, want.Version, len(want.Data), want.Created, want.Updated)
			}
		}
		return nil
	})
}

func testAuditSums(t *testing.T, st storage.Store) {
	ctx := context.Background()
	createAccount(t, st, "a1", 1000)
	createAccount(t, st, "a2", 0)
	issue(t, st, "a1", "w1", "s1", "s2", "s3")
	update(t, st, func(tx storage.Tx) error {
		if _, err := tx.Post(ctx, storage.Entry{Account: "a1", Time: now, Kind: storage.KindWithdraw, Amount: -300, Reference: "w1"}); err != nil {
			return err
		}
		// s9 is of a key that issued nothing: the audit compares per key.
		s9 := spentCoin("s9", "a2", 1)
		s9.KeyID = "coin-2"
		if _, err := tx.InsertSpent(ctx, []storage.SpentCoin{spentCoin("s1", "a2", 1), s9}); err != nil {
			return err
		}
		_, err := tx.Post(ctx, storage.Entry{Account: "a2", Time: now, Kind: storage.KindDeposit, Amount: 200, Reference: "d"})
		return err
	})
	view(t, st, func(tx storage.Tx) error {
		got, err := tx.AuditSums(ctx)
		if err != nil {
			return err
		}
		want := storage.AuditSums{
			Issued:      storage.Figure{Count: 3, Value: 300},
			Spent:       storage.Figure{Count: 2, Value: 200},
			Outstanding: storage.Figure{Count: 2, Value: 200},
			Unissued:    storage.Figure{Count: 1, Value: 100},
			Credits:     1000, Withdrawals: -300, Deposits: 200,
			Accounts: 2, Balances: 900,
		}
		if got != want {
			t.Errorf("audit sums =\n%+v, want\n%+v", got, want)
		}
		m, err := tx.LedgerMismatches(ctx)
		if err != nil {
			return err
		}
		if len(m) != 0 {
			t.Errorf("ledger mismatches %+v, want none", m)
		}
		return nil
	})
}
