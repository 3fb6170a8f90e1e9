package wallet

import (
	"context"
	"fmt"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/otp"
)

// ReclaimResult says what a reclaim did.
type ReclaimResult struct {
	Credited int64 // value credited back to the account
	Coins    int   // coins credited back
	Spent    int   // coins the bank says their payee deposited: spent, as paid
	Refused  []Refusal
	Balance  int64 // account balance after the reclaim
}

// Reclaim asks the bank, online, to credit back to account the coins this
// wallet sealed to a payee that never acknowledged them (the payee
// vanished), once their deposit deadline has passed: from then on the
// payee cannot deposit them. The wallet proves it sealed them with a
// reclaim key the sealing holder key authorised (otp/reclaim.go). A coin
// the payee did deposit in time is not lost either: the bank refuses its
// reclaim as a double deposit, and the wallet records it spent, as paid.
func (w *Wallet) Reclaim(ctx context.Context, account Account) (ReclaimResult, error) {
	now := w.now()
	items, err := w.v.ReclaimItems(ctx, account.ID, func(c *otp.Coin) bool {
		k, err := w.cat().Key(c.Data.KeyID, otp.UseCoin)
		return err == nil && !now.Before(k.DepositUntil)
	})
	if err != nil {
		return ReclaimResult{}, fmt.Errorf("reclaim: %w", err)
	}
	var res ReclaimResult
	if len(items) == 0 {
		return res, nil
	}
	req := api.ReclaimRequest{Account: account.ID, Coins: make([]api.ReclaimCoin, len(items))}
	for i, it := range items {
		req.Coins[i] = api.ReclaimCoin{Sandbox: it.Sandbox, Authorization: it.Auth, Key: it.Key, Proof: it.Proof}
	}
	resp, err := w.bank.Reclaim(ctx, account.Token, req)
	if err != nil {
		return res, fmt.Errorf("reclaim: %w", err)
	}
	var credited, spent []string
	for i, r := range resp.Results {
		switch {
		case r.Status == api.StatusCredited || r.Status == api.StatusAlreadyCredited:
			credited = append(credited, r.Token)
			res.Credited += items[i].Sandbox.Coin.Data.Value
			res.Coins++
		case r.Code == api.CodeDoubleDeposit:
			spent = append(spent, r.Token)
			res.Spent++
		default:
			res.Refused = append(res.Refused, Refusal{Token: r.Token, Code: r.Code, Message: r.Message})
		}
	}
	if err := w.v.SettleReclaim(ctx, credited, true); err != nil {
		return res, fmt.Errorf("reclaim: %w", err)
	}
	if err := w.v.SettleReclaim(ctx, spent, false); err != nil {
		return res, fmt.Errorf("reclaim: %w", err)
	}
	res.Balance = resp.Balance
	w.record(ctx, HistoryEntry{Kind: HistoryReclaim, Amount: res.Credited,
		Detail: fmt.Sprintf("%d coins credited back to account %s, %d deposited by their payee, %d refused", res.Coins, account, res.Spent, len(res.Refused))})
	return res, nil
}
