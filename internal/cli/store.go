package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/otpcash/otpcash/bank/storage"
	"github.com/otpcash/otpcash/bank/storage/postgres"
	"github.com/otpcash/otpcash/bank/storage/sqlite"
)

// OpenStore opens the storage named by a --db value, applying its
// schema migrations. With mustExist, it changes nothing: a missing SQLite
// file, or a PostgreSQL database without a current bank schema, is an
// error rather than a new, empty bank.
func OpenStore(ctx context.Context, dsn string, mustExist bool) (storage.Store, error) {
	scheme, path, _ := strings.Cut(dsn, ":")
	switch scheme {
	case "sqlite":
		if path == "" {
			return nil, errors.New("--db sqlite:PATH: the path is missing")
		}
		if mustExist {
			if _, err := os.Stat(path); err != nil {
				return nil, fmt.Errorf("--db %s: no bank database there: %w", dsn, err)
			}
		}
		return sqlite.Open(ctx, path)
	case "postgres", "postgresql":
		// The DSN may hold a password: errors never quote it.
		if mustExist {
			return postgres.OpenExisting(ctx, dsn)
		}
		return postgres.Open(ctx, dsn)
	}
	return nil, fmt.Errorf("--db: unknown storage %q; use sqlite:PATH or postgres://...", scheme)
}
