package storage

import (
	"context"
	"errors"
	"fmt"
)

// MaxBatch bounds the coins of one batched call (Issued, InsertSpent,
// InsertIssued): the bank's largest request.
const MaxBatch = 10_000

// ErrBatchTooLarge is returned for a batch over MaxBatch.
var ErrBatchTooLarge = errors.New("batch larger than storage.MaxBatch")

// CheckBatch returns ErrBatchTooLarge, wrapped with what, for n > MaxBatch.
func CheckBatch(what string, n int) error {
	if n > MaxBatch {
		return fmt.Errorf("%s: %d items: %w", what, n, ErrBatchTooLarge)
	}
	return nil
}

// SchemaTx is what Migrate needs of an engine: a transaction that holds
// the database's migration lock, so two processes starting at once migrate
// one after the other.
type SchemaTx interface {
	// SchemaVersion returns the schema's version, 0 for a new database.
	SchemaVersion(ctx context.Context) (int, error)
	// SetSchemaVersion records the schema's version.
	SetSchemaVersion(ctx context.Context, v int) error
	// Exec runs one migration script.
	Exec(ctx context.Context, script string) error
}

// Migrate brings a schema to the newest version: migrations[i] takes it
// from version i to i+1. It returns the versions before and after;
// ErrSchemaTooNew if the database is ahead of migrations. The caller
// commits tx.
func Migrate(ctx context.Context, tx SchemaTx, migrations []string) (from, to int, err error) {
	from, err = tx.SchemaVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("migrate: read schema version: %w", err)
	}
	if from > len(migrations) {
		return from, from, fmt.Errorf("migrate: version %d, this program knows %d: %w", from, len(migrations), ErrSchemaTooNew)
	}
	for v := from; v < len(migrations); v++ {
		if err := tx.Exec(ctx, migrations[v]); err != nil {
			return from, v, fmt.Errorf("migrate to version %d: %w", v+1, err)
		}
	}
	if from != len(migrations) {
		if err := tx.SetSchemaVersion(ctx, len(migrations)); err != nil {
			return from, from, fmt.Errorf("migrate: record version %d: %w", len(migrations), err)
		}
	}
	return from, len(migrations), nil
}

// FirstBySerial returns the coins whose serial does not occur earlier in
// coins: the ones a batched spend may try to insert.
func FirstBySerial(coins []SpentCoin) []SpentCoin {
	seen := make(map[string]bool, len(coins))
	out := make([]SpentCoin, 0, len(coins))
	for _, c := range coins {
		if !seen[c.Serial] {
			seen[c.Serial] = true
			out = append(out, c)
		}
	}
	return out
}

// SpentResults assembles InsertSpent's answer from what an engine did with
// FirstBySerial(coins): inserted names the serials it inserted, stored
// holds the records of the serials that were already spent.
func SpentResults(coins []SpentCoin, inserted map[string]bool, stored map[string]SpentCoin) ([]SpentResult, error) {
	out := make([]SpentResult, len(coins))
	first := make(map[string]SpentCoin, len(inserted))
	for i, c := range coins {
		switch f, seen := first[c.Serial]; {
		case seen:
			out[i] = SpentResult{Stored: f}
		case inserted[c.Serial]:
			first[c.Serial] = c
			out[i] = SpentResult{Inserted: true, Stored: c}
		default:
			s, ok := stored[c.Serial]
			if !ok {
				return nil, fmt.Errorf("spend %.8s: neither inserted nor found in the spent set", c.Serial)
			}
			out[i] = SpentResult{Stored: s}
		}
	}
	return out, nil
}
