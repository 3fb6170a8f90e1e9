package bank

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/otpcash/otpcash/amount"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/storage"
	"github.com/otpcash/otpcash/otp"
)

// redenominate deposits req.Coins to req.Account and withdraws the
// blinded coins of req.Withdraw from it, in one transaction, so that the
// account ends where it began. The coins in and out must be of equal value
// and of one coin program (a voucher is not swapped for general money),
// and every coin in must be creditable: one that is not refuses the whole
// re-denomination, and nothing changes. The answer is stored under
// (account, id) like a withdrawal's, and a repeated request gets it again.
func (b *Bank) redenominate(ctx context.Context, req api.RedenominationRequest, blinded [][][]byte) ([]byte, error) {
	canon, err := otp.Canonical(req)
	if err != nil {
		return nil, fmt.Errorf("redenominate: %w", err)
	}
	hash := sha256.Sum256(canon)
	now := b.now()
	var resp []byte
	err = b.st.View(ctx, func(tx storage.Tx) error {
		resp, err = storedAnswer(ctx, tx, req.Account, req.ID, hash[:])
		return err
	})
	if err != nil || resp != nil {
		return resp, b.redenominationError(req, err)
	}

	ring, err := b.keyring(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("redenominate: %w", err)
	}
	checked, err := b.checkCoins(ctx, ring.verifier, api.DepositRequest{Account: req.Account, Coins: req.Coins}, now)
	if err != nil {
		return nil, fmt.Errorf("redenominate: %w", err)
	}
	var in int64
	program := req.Coins[0].Sandbox.Coin.Data.Program
	for i, c := range checked {
		if c.result.Status != "" {
			return nil, api.Errorf(http.StatusUnprocessableEntity, c.result.Code, "coins[%d]: %s; nothing re-denominated", i, c.result.Message)
		}
		if p := c.sandbox.Coin.Data.Program; p != program {
			return nil, badRequest("coins[%d] is of program %q, coins[0] of %q: re-denominate one program at a time", i, p, program)
		}
		in += c.spent.Value
	}
	var out int64
	sigs := make([][]string, len(req.Withdraw))
	var issued []storage.IssuedCoin
	for i, w := range req.Withdraw {
		signer, err := b.coinSigner(ctx, w.KeyID, now)
		if err != nil {
			return nil, err
		}
		if signer.Key.Program != program {
			return nil, badRequest("withdraw[%d]: key %q signs coins of program %q, not %q", i, w.KeyID, signer.Key.Program, program)
		}
		out += int64(len(blinded[i])) * signer.Key.Value
		var batch []storage.IssuedCoin
		if sigs[i], batch, err = signBlinded(signer, fmt.Sprintf("withdraw[%d].blinded", i), blinded[i], req.Account, req.ID, now); err != nil {
			return nil, err
		}
		issued = append(issued, batch...)
	}
	if in != out {
		return nil, badRequest("coins of %s for coins of %s: a re-denomination must be of equal value", amount.Format(in), amount.Format(out))
	}
	body, err := json.Marshal(api.RedenominationResponse{BlindSignatures: sigs})
	if err != nil {
		return nil, fmt.Errorf("redenominate: %w", err)
	}

	// The prefix is from when re-denominations were called exchanges;
	// ledgers already hold it, and one operation keeps one spelling.
	reference := "exc-" + randomText(12)
	fresh := false
	err = b.st.Update(ctx, func(tx storage.Tx) error {
		fresh = false
		if resp, err = storedAnswer(ctx, tx, req.Account, req.ID, hash[:]); resp != nil || err != nil {
			return err
		}
		results := make([]api.DepositResult, len(checked))
		if err := b.spendAll(ctx, tx, checked, results, reference, now); err != nil {
			return err
		}
		for i, r := range results {
			if r.Status != api.StatusCredited {
				return api.Errorf(http.StatusConflict, api.CodeConflict, "coins[%d]: %s: %s; nothing re-denominated", i, r.Status, r.Message)
			}
		}
		if _, err := tx.Post(ctx, storage.Entry{Account: req.Account, Time: now, Kind: storage.KindDeposit, Amount: in, Reference: reference}); err != nil {
			return err
		}
		if _, err := tx.Post(ctx, storage.Entry{Account: req.Account, Time: now, Kind: storage.KindWithdraw, Amount: -out, Reference: req.ID}); err != nil {
			return err
		}
		if err := tx.InsertWithdrawal(ctx, storage.Withdrawal{Account: req.Account, ID: req.ID, RequestHash: hash[:], Response: body, Created: now}); err != nil {
			return err
		}
		if err := tx.InsertIssued(ctx, issued); err != nil {
			return err
		}
		resp, fresh = body, true
		return nil
	})
	if err != nil {
		return nil, b.redenominationError(req, err)
	}
	if fresh {
		b.metrics.issued.Add(float64(len(issued)))
		b.log.InfoContext(ctx, "redenominate", "account", req.Account, "redenomination", req.ID, "coinsIn", len(req.Coins), "coinsOut", len(issued), "amount", in)
	}
	return resp, nil
}

func (b *Bank) redenominationError(req api.RedenominationRequest, err error) error {
	var apiErr *api.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &apiErr):
		return err
	case errors.Is(err, storage.ErrNotFound):
		return unknownAccount(req.Account)
	case errors.Is(err, storage.ErrDuplicate):
		return api.Errorf(http.StatusConflict, api.CodeConflict,
			"a blinded message of re-denomination %q was signed before; blind every coin afresh", req.ID)
	}
	return fmt.Errorf("redenominate %q: %w", req.ID, err)
}
