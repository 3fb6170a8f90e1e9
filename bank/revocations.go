package bank

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/otpcash/otpcash/bank/storage"
	"github.com/otpcash/otpcash/otp"
)

// Revocations returns the signed list of one-time keys caught signing a
// coin away twice: the key each recorded double deposit names. Wallets
// fetch it when online and then refuse such coins offline.
func (b *Bank) Revocations(ctx context.Context) (*otp.Revocations, error) {
	ring, err := b.keyring(ctx, b.now())
	if err != nil {
		return nil, err
	}
	var stored []storage.Conflict
	err = b.st.View(ctx, func(tx storage.Tx) (err error) {
		stored, err = tx.Conflicts(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("revocations: %w", err)
	}
	r := &otp.Revocations{Issuer: b.cfg.Issuer, Issued: b.now().Truncate(time.Second), Keys: make([]string, len(stored))}
	for i, c := range stored {
		r.Keys[i] = c.Key
	}
	if err := r.Sign(ring.root); err != nil {
		return nil, fmt.Errorf("revocations: %w", err)
	}
	return r, nil
}

func (b *Bank) handleRevocations(w http.ResponseWriter, r *http.Request) error {
	list, err := b.Revocations(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}
