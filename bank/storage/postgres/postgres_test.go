package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/otpcash/otpcash/bank/storage"
	"github.com/otpcash/otpcash/bank/storage/postgres"
	"github.com/otpcash/otpcash/bank/storage/storagetest"
	"github.com/otpcash/otpcash/internal/testpg"
)

func open(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return open(t, testpg.Schema(t)) })
}

// exec runs one statement on its own connection.
func exec(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

func TestMigrations(t *testing.T) {
	dsn := testpg.Schema(t)
	ctx := context.Background()

	_, err := postgres.OpenExisting(ctx, dsn)
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("OpenExisting on an empty schema: %v, want ErrNotFound", err)
	}
	st := open(t, dsn)
	from, to := st.Schema()
	st.Close()
	if from != 0 || to < 2 {
		t.Fatalf("first open migrated %d -> %d, want 0 -> at least 2", from, to)
	}
	st = open(t, dsn)
	if f, v := st.Schema(); f != to || v != to {
		t.Errorf("second open migrated %d -> %d, want nothing (%d)", f, v, to)
	}
	st.Close()
	st, err = postgres.OpenExisting(ctx, dsn)
	if err != nil {
		t.Fatalf("OpenExisting on a current schema: %v", err)
	}
	st.Close()

	exec(t, dsn, `UPDATE schema_version SET version = 99`)
	for name, openFn := range map[string]func(context.Context, string) (*postgres.Store, error){
		"Open": postgres.Open, "OpenExisting": postgres.OpenExisting,
	} {
		if _, err := openFn(ctx, dsn); !errors.Is(err, storage.ErrSchemaTooNew) {
			t.Errorf("%s on a newer schema: %v, want ErrSchemaTooNew", name, err)
		}
	}
}

// TestConcurrentOpen starts several nodes on one new schema at once: the
// advisory lock makes them migrate one after the other.
func TestConcurrentOpen(t *testing.T) {
	dsn := testpg.Schema(t)
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			st, err := postgres.Open(context.Background(), dsn)
			if err == nil {
				st.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestBadDSNHidesPassword(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://u:s3cret@[bad/x")
	if err == nil || containsSecret(err.Error()) {
		t.Fatalf("error %v: want an error that does not quote the password", err)
	}
}

func containsSecret(s string) bool {
	for i := 0; i+6 <= len(s); i++ {
		if s[i:i+6] == "s3cret" {
			return true
		}
	}
	return false
}

func TestUnreachableIsUnavailable(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://nobody@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("open of a closed port: %v, want ErrUnavailable", err)
	}
}
