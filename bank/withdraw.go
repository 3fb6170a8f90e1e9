package bank

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/otpcash/otpcash/amount"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/storage"
	"github.com/otpcash/otpcash/internal/fault"
	"github.com/otpcash/otpcash/otp"
)

// withdraw signs each blinded coin of req (blinded, decoded) under the
// blind coin key req.KeyID, debiting the account, and returns the response
// body. It never sees the coins themselves.
func (b *Bank) withdraw(ctx context.Context, req api.WithdrawRequest, blinded [][]byte) ([]byte, error) {
	canon, err := otp.Canonical(req)
	if err != nil {
		return nil, fmt.Errorf("withdraw: %w", err)
	}
	hash := sha256.Sum256(canon)
	now := b.now()
	ring, err := b.keyring(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("withdraw: %w", err)
	}
	// An unknown key costs nothing here, and is refused below after the
	// retry check.
	var total int64
	if s, ok := ring.blind[req.KeyID]; ok {
		if s.Key.Value > math.MaxInt64/int64(max(len(blinded), 1)) {
			return nil, api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "%d coins of %s overflow", len(blinded), amount.Format(s.Key.Value))
		}
		total = int64(len(blinded)) * s.Key.Value
	}

	// Answer a retry, or refuse what the balance cannot cover, before
	// signing anything.
	var resp []byte
	err = b.st.View(ctx, func(tx storage.Tx) error {
		if resp, err = storedAnswer(ctx, tx, req.Account, req.ID, hash[:]); resp != nil || err != nil {
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

	// Checked after the retry check: a retry gets its signatures even if
	// the key has stopped signing since.
	signer, err := b.coinSigner(ctx, req.KeyID, now)
	if err != nil {
		return nil, err
	}
	sigs, issued, err := signBlinded(signer, "blinded", blinded, req.Account, req.ID, now)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(api.WithdrawResponse{BlindSignatures: sigs})
	if err != nil {
		return nil, fmt.Errorf("withdraw: %w", err)
	}

	fresh := false
	err = b.st.Update(ctx, func(tx storage.Tx) error {
		// A concurrent retry, maybe on another node, may have committed
		// since the check above. (The store may run this function again
		// after a serialization conflict: it sets resp and fresh afresh.)
		fresh = false
		if resp, err = storedAnswer(ctx, tx, req.Account, req.ID, hash[:]); resp != nil || err != nil {
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
	b.metrics.issued.Add(float64(len(blinded)))
	b.log.InfoContext(ctx, "withdrawal", "account", req.Account, "withdrawal", req.ID, "keyId", req.KeyID, "coins", len(blinded), "amount", total)
	return resp, nil
}

// signBlinded signs each blinded message with signer, on all cores, and
// returns the signatures and the records of the coins issued, for
// withdrawal id of account. field names the messages in errors.
func signBlinded(signer *otp.Signer, field string, blinded [][]byte, account, id string, now time.Time) ([]string, []storage.IssuedCoin, error) {
	sigs := make([]string, len(blinded))
	issued := make([]storage.IssuedCoin, len(blinded))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, m := range blinded {
		g.Go(func() error {
			sig, err := signer.BlindSign(m)
			if err != nil {
				return blindSignError(fmt.Sprintf("%s[%d]", field, i), err)
			}
			sigs[i] = otp.EncodeBlinded(sig)
			// The bank cannot know the coin's serial: it records the
			// blinded message's hash, and audits coins per key.
			sum := sha256.Sum256(m)
			issued[i] = storage.IssuedCoin{
				Serial: otp.EncodeBlinded(sum[:]), Account: account, Withdrawal: id,
				KeyID: signer.Key.KeyID, Value: signer.Key.Value, Issued: now,
			}
			return nil
		})
	}
	return sigs, issued, g.Wait()
}

// CheckWithdraw signs the blinded messages under the blind coin key keyID
// as a withdrawal does (on all cores, each signature checked before
// release) and discards the signatures. It changes nothing; `otpcash-bench
// bank` measures with it the signing bound, against which it holds the
// withdrawal rate.
func (b *Bank) CheckWithdraw(ctx context.Context, keyID string, blinded [][]byte) error {
	now := b.now()
	signer, err := b.coinSigner(ctx, keyID, now)
	if err != nil {
		return fmt.Errorf("check withdraw: %w", err)
	}
	if _, _, err := signBlinded(signer, "blinded", blinded, "", "", now); err != nil {
		return fmt.Errorf("check withdraw: %w", err)
	}
	return nil
}

// blindSignError is the answer to a blind signature of the message named
// name that failed: the client's bad request, or a signature that failed
// its check before release, which is the bank's own failure (logged, and
// answered as an internal error).
func blindSignError(name string, err error) error {
	if errors.Is(err, otp.ErrBlindFault) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "%s: %v", name, err)
}

// coinSigner returns the blind coin key keyID if it signs at now: it must
// be the newest key of a program the bank still runs.
func (b *Bank) coinSigner(ctx context.Context, keyID string, now time.Time) (*otp.Signer, error) {
	ring, err := b.keyring(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("withdraw: %w", err)
	}
	s, ok := ring.blind[keyID]
	if !ok {
		return nil, api.Errorf(http.StatusBadRequest, api.CodeUnknownKey,
			"no blind coin key %q in this bank's catalogue; fetch GET /v1/catalogue", keyID)
	}
	if _, err := b.program(s.Key.Program, now); err != nil {
		return nil, err
	}
	if ring.newest[coinType{s.Key.Program, s.Key.Value}] != s || !signs(s, now) || !b.cfg.Denominations.Contains(s.Key.Value) {
		return nil, api.Errorf(http.StatusBadRequest, api.CodeUnknownKey,
			"coin key %q no longer signs (its coins stay depositable until %s); withdraw under the newest key of program %q in GET /v1/catalogue",
			keyID, s.Key.DepositUntil.Format(time.RFC3339), s.Key.Program)
	}
	return s, nil
}

// storedAnswer returns the stored answer to a repeated withdrawal or
// exchange (both are stored under the account and the request's id), nil
// for a new request, and a conflict error for a different request under
// the same id.
func storedAnswer(ctx context.Context, tx storage.Tx, account, id string, hash []byte) ([]byte, error) {
	w, err := tx.Withdrawal(ctx, account, id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case !bytes.Equal(w.RequestHash, hash):
		return nil, api.Errorf(http.StatusConflict, api.CodeConflict,
			"id %q was already used for a different request; use a fresh id", id)
	}
	return w.Response, nil
}

func (b *Bank) withdrawError(req api.WithdrawRequest, total int64, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrInsufficientFunds):
		return api.Errorf(http.StatusPaymentRequired, api.CodeInsufficientFunds,
			"%d coins cost %s %s, more than the account's balance", len(req.Blinded), amount.Format(total), b.cfg.Currency)
	case errors.Is(err, storage.ErrNotFound):
		return unknownAccount(req.Account)
	case errors.Is(err, storage.ErrDuplicate):
		return api.Errorf(http.StatusConflict, api.CodeConflict,
			"a blinded message of withdrawal %q was signed before; blind every coin afresh", req.ID)
	}
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		return err
	}
	return fmt.Errorf("withdraw %q: %w", req.ID, err)
}
