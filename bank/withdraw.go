package bank

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/storage"
	"github.com/otpcash/otpcash/internal/amount"
	"github.com/otpcash/otpcash/internal/fault"
	"github.com/otpcash/otpcash/otp"
)

// withdraw issues one coin per holder key, debiting the account, and
// returns the response body. holders are req.Holders, decoded.
func (b *Bank) withdraw(ctx context.Context, req api.WithdrawRequest, holders []ed25519.PublicKey) ([]byte, error) {
	canon, err := otp.Canonical(req)
	if err != nil {
		return nil, fmt.Errorf("withdraw: %w", err)
	}
	hash := sha256.Sum256(canon)
	total := int64(len(holders)) * b.cfg.CoinValue

	// Answer a retry, or refuse what the balance cannot cover, before
	// signing anything.
	var resp []byte
	err = b.st.View(ctx, func(tx storage.Tx) error {
		if resp, err = storedWithdrawal(ctx, tx, req, hash[:]); resp != nil || err != nil {
			return err
		}
		a, err := tx.Account(ctx, req.Account)
		if err != nil {
			return err
		}
		if a.Balance < total {
			return storage.ErrInsufficientFunds
		}
		return nil
	})
	if err != nil || resp != nil {
		return resp, b.withdrawError(req, total, err)
	}

	now := b.now()
	// Looked up after the retry check: a retry gets its coins even if the
	// program has since left the configuration.
	prog, expires, err := b.program(req.Program, now)
	if err != nil {
		return nil, err
	}
	ring, err := b.keyring(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("withdraw: %w", err)
	}
	coins := make([]otp.Coin, len(holders))
	issued := make([]storage.IssuedCoin, len(holders))
	for i, h := range holders {
		c, err := ring.coin.Issue(otp.NewSerial(), h, expires, prog)
		if err != nil {
			return nil, fmt.Errorf("withdraw: %w", err)
		}
		coins[i] = *c
		issued[i] = storage.IssuedCoin{
			Serial: c.Data.Token, Account: req.Account, Withdrawal: req.ID,
			KeyID: c.Data.KeyID, Value: c.Data.Value, Checksum: c.Checksum, Issued: now,
		}
	}
	body, err := json.Marshal(api.WithdrawResponse{Coins: coins})
	if err != nil {
		return nil, fmt.Errorf("withdraw: %w", err)
	}

	fresh := false
	err = b.st.Update(ctx, func(tx storage.Tx) error {
		// A concurrent retry, maybe on another node, may have committed
		// since the check above. (The store may run this function again
		// after a serialization conflict: it sets resp and fresh afresh.)
		fresh = false
		if resp, err = storedWithdrawal(ctx, tx, req, hash[:]); resp != nil || err != nil {
			return err
		}
		if _, err := tx.Post(ctx, storage.Entry{Account: req.Account, Time: now, Kind: storage.KindWithdraw, Amount: -total, Reference: req.ID}); err != nil {
			return err
		}
		err := tx.InsertWithdrawal(ctx, storage.Withdrawal{Account: req.Account, ID: req.ID, RequestHash: hash[:], Response: body, Created: now})
		if err != nil {
			return err
		}
		if err := tx.InsertIssued(ctx, issued); err != nil {
			return err
		}
		resp, fresh = body, true
		return nil
	})
	if err != nil {
		return nil, b.withdrawError(req, total, err)
	}
	fault.Point(fault.BankWithdrawn)
	if !fresh {
		return resp, nil
	}
	b.metrics.issued.Add(float64(len(coins)))
	b.log.InfoContext(ctx, "withdrawal", "account", req.Account, "withdrawal", req.ID, "coins", len(coins), "amount", total)
	return resp, nil
}

// storedWithdrawal returns the stored response to a repeated request, nil
// for a new one, and a conflict error for a different request under the
// same id.
func storedWithdrawal(ctx context.Context, tx storage.Tx, req api.WithdrawRequest, hash []byte) ([]byte, error) {
	w, err := tx.Withdrawal(ctx, req.Account, req.ID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case !bytes.Equal(w.RequestHash, hash):
		return nil, api.Errorf(http.StatusConflict, api.CodeConflict,
			"withdrawal id %q was already used for a different request; use a fresh id", req.ID)
	}
	return w.Response, nil
}

func (b *Bank) withdrawError(req api.WithdrawRequest, total int64, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrInsufficientFunds):
		return api.Errorf(http.StatusPaymentRequired, api.CodeInsufficientFunds,
			"%d coins cost %s %s, more than the account's balance", len(req.Holders), amount.Format(total), b.cfg.Currency)
	case errors.Is(err, storage.ErrNotFound):
		return unknownAccount(req.Account)
	}
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		return err
	}
	return fmt.Errorf("withdraw %q: %w", req.ID, err)
}
