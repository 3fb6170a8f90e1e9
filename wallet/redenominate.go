package wallet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/otpcash/otpcash/amount"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/vault"
)

// RedenominateResult says what a re-denomination did.
type RedenominateResult struct {
	Value   int64 // value swapped
	In, Out int   // coins given to the bank, coins received
}

// Redenominate swaps, online, the wallet's coins of a program ("general"
// unless WithProgram names another) for a better mix: the one
// denom.Set.Withdrawal makes of their total, with enough small coins to
// give change. Only the coins that differ from that mix move: the bank
// deposits them to account and withdraws the new ones from it in one
// transaction (POST /v1/redenominations), so the account does not change.
//
// The re-denomination is recorded in the vault (the coins given, and holder keys
// and a secret for the new coins) before the bank is asked, under an id
// the bank honours once: a crash or lost reply is finished, with nothing
// done twice, by the next Redenominate. A refusal changes nothing. The coins
// given stay held until the bank's answer is stored; like a deposit, they
// must not be paid meanwhile (the bank would catch it as a double spend).
func (w *Wallet) Redenominate(ctx context.Context, account Account, opts ...Option) (RedenominateResult, error) {
	var res RedenominateResult
	if err := w.resumeRedenominations(ctx, account, &res); err != nil {
		return res, err
	}
	program := applyOptions(opts).program
	keys, err := w.cat().CoinKeys(program, w.now())
	if err != nil {
		return res, fmt.Errorf("redenominate: %w", err)
	}
	set := make(denom.Set, len(keys))
	byValue := make(map[int64]*otp.IssuerKey, len(keys))
	for i, k := range keys {
		set[i], byValue[k.Value] = k.Value, k
	}
	held, err := w.v.Payable(ctx, w.Currency(), program)
	if err != nil {
		return res, fmt.Errorf("redenominate: %w", err)
	}
	have := countsOf(held)
	if have.Len() == 0 {
		return res, nil
	}
	want, err := set.Withdrawal(have.Total())
	if err != nil {
		return res, fmt.Errorf("redenominate %s: %w in coins of %s", amount.Format(have.Total()), ErrAmount, set)
	}
	give, get := denom.Counts{}, denom.Counts{}
	for v := range maps.Keys(have) {
		give[v] = max(have[v]-want[v], 0)
	}
	for v := range maps.Keys(want) {
		get[v] = max(want[v]-have[v], 0)
	}
	if give.Len() == 0 {
		return res, nil
	}
	rd := vault.Redenomination{ID: newID(), Account: account.ID}
	if rd.Coins, err = w.depositItems(ctx, account.ID, pick(held, give)); err != nil {
		return res, err
	}
	for _, v := range slices.Sorted(maps.Keys(get)) {
		if get[v] == 0 {
			continue
		}
		part := vault.RedenominationPart{WithdrawalID: rd.ID + "/" + strconv.FormatInt(v, 10), KeyID: byValue[v].KeyID, N: get[v]}
		if _, err := w.v.HolderKeys(ctx, part.WithdrawalID, part.N); err != nil {
			w.forgetParts(ctx, rd.Parts)
			return res, fmt.Errorf("redenominate: %w", err)
		}
		rd.Parts = append(rd.Parts, part)
	}
	if err := w.v.RecordRedenomination(ctx, rd); err != nil {
		w.forgetParts(ctx, rd.Parts)
		return res, fmt.Errorf("redenominate: %w", err)
	}
	if err := w.finishRedenomination(ctx, account.Token, rd, &res); err != nil {
		return res, err
	}
	return res, nil
}

// depositItems returns the coins with their deposit proofs for account.
func (w *Wallet) depositItems(ctx context.Context, account string, coins []otp.Sandbox) ([]vault.DepositItem, error) {
	items, err := w.v.DepositItems(ctx, account)
	if err != nil {
		return nil, fmt.Errorf("redenominate: %w", err)
	}
	byToken := make(map[string]vault.DepositItem, len(items))
	for _, it := range items {
		byToken[it.Sandbox.Coin.Data.Token] = it
	}
	out := make([]vault.DepositItem, len(coins))
	for i, c := range coins {
		it, ok := byToken[c.Coin.Data.Token]
		if !ok {
			return nil, fmt.Errorf("redenominate: coin %.12s is no longer held", c.Coin.Data.Token)
		}
		out[i] = it
	}
	return out, nil
}

// forgetParts forgets the withdrawals of a re-denomination never
// recorded, so never asked for.
func (w *Wallet) forgetParts(ctx context.Context, parts []vault.RedenominationPart) {
	for _, p := range parts {
		if err := w.v.ForgetWithdrawal(ctx, p.WithdrawalID); err != nil {
			w.log.Warn("withdrawal of a re-denomination not asked for not forgotten", "err", err)
		}
	}
}

// resumeRedenominations finishes the interrupted re-denominations of
// account: those whose new coins are pending withdrawals of the vault.
func (w *Wallet) resumeRedenominations(ctx context.Context, account Account, res *RedenominateResult) error {
	ids, err := w.v.PendingWithdrawals(ctx)
	if err != nil {
		return fmt.Errorf("redenominate: %w", err)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		parent, _, ok := strings.Cut(id, "/")
		if !ok || seen[parent] {
			continue
		}
		seen[parent] = true
		rd, err := w.v.PendingRedenomination(ctx, parent)
		if errors.Is(err, vault.ErrNotFound) {
			continue // never recorded whole: nothing was asked
		}
		if err != nil {
			return fmt.Errorf("redenominate: resume: %w", err)
		}
		if rd.Account != account.ID {
			continue
		}
		if err := w.finishRedenomination(ctx, account.Token, rd, res); err != nil {
			return fmt.Errorf("resume: %w", err)
		}
	}
	return nil
}

// redenominationRequest is rd as the bank's API takes it, with blind, its
// new coins blinded (newCoins): the one place where the vault's record
// and the wire meet.
func redenominationRequest(rd vault.Redenomination, blind [][]*otp.BlindCoin) api.RedenominationRequest {
	req := api.RedenominationRequest{ID: rd.ID, Account: rd.Account,
		Coins: make([]api.DepositCoin, len(rd.Coins)), Withdraw: make([]api.WithdrawBatch, len(rd.Parts))}
	for i, c := range rd.Coins {
		req.Coins[i] = api.DepositCoin{Sandbox: c.Sandbox, Proof: c.Proof}
	}
	for i, part := range rd.Parts {
		batch := api.WithdrawBatch{KeyID: part.KeyID, Blinded: make([]string, len(blind[i]))}
		for j, b := range blind[i] {
			batch.Blinded[j] = otp.EncodeBlinded(b.Blinded())
		}
		req.Withdraw[i] = batch
	}
	return req
}

// newCoins rebuilds the new coins of rd, blinded, from the vault: the
// same bytes every time, derived from each part's holder keys and secret.
func (w *Wallet) newCoins(ctx context.Context, rd vault.Redenomination) ([][]*otp.BlindCoin, error) {
	blind := make([][]*otp.BlindCoin, len(rd.Parts))
	for i, part := range rd.Parts {
		k, err := w.cat().Key(part.KeyID, otp.UseCoin)
		if err != nil {
			return nil, fmt.Errorf("redenominate: %w", err)
		}
		pubs, err := w.v.HolderKeys(ctx, part.WithdrawalID, part.N)
		if err != nil {
			return nil, fmt.Errorf("redenominate: %w", err)
		}
		secret, err := w.v.WithdrawalSecret(ctx, part.WithdrawalID)
		if err != nil {
			return nil, fmt.Errorf("redenominate: %w", err)
		}
		blind[i] = make([]*otp.BlindCoin, len(pubs))
		for j, pub := range pubs {
			if blind[i][j], err = otp.NewBlindCoin(w.cat().Issuer, k, pub, otp.WithdrawalRand(secret, part.WithdrawalID, j)); err != nil {
				return nil, fmt.Errorf("redenominate: %w", err)
			}
		}
	}
	return blind, nil
}

// finishRedenomination asks the bank for the recorded re-denomination rd
// and stores its answer (vault.FinishRedenomination). A refusal forgets
// it; any other failure leaves it for the next Redenominate.
func (w *Wallet) finishRedenomination(ctx context.Context, token string, rd vault.Redenomination, res *RedenominateResult) error {
	blind, err := w.newCoins(ctx, rd)
	if err != nil {
		return err
	}
	sigs, err := w.bank.Redenominate(ctx, token, redenominationRequest(rd, blind))
	if err != nil {
		if refused(err) {
			if ferr := w.v.ForgetRedenomination(ctx, rd.ID); ferr != nil {
				w.log.Warn("refused re-denomination not forgotten", "err", ferr)
			}
		}
		return fmt.Errorf("redenominate: %w", err)
	}
	coins := make([][]otp.Coin, len(rd.Parts))
	out := 0
	for i := range rd.Parts {
		// The client checked one batch per part and one signature per coin.
		coins[i] = make([]otp.Coin, len(sigs[i]))
		for j := range sigs[i] {
			coin, err := blind[i][j].Finish(sigs[i][j])
			if err != nil {
				return fmt.Errorf("redenominate: the bank's blind signature does not fit: %w", err)
			}
			coins[i][j] = *coin
		}
		out += len(coins[i])
	}
	var value int64
	for _, c := range rd.Coins {
		value += c.Sandbox.Coin.Data.Value
	}
	entry := HistoryEntry{Time: w.now(), Kind: HistoryRedenominate, Amount: value, Currency: w.Currency(),
		Detail: fmt.Sprintf("%d coins for %d at the bank", len(rd.Coins), out)}
	if err := w.v.FinishRedenomination(ctx, rd.ID, coins, entry.vaultEvent()); err != nil {
		return fmt.Errorf("redenominate: %w", err)
	}
	res.Value += value
	res.In += len(rd.Coins)
	res.Out += out
	w.emit(Event{Kind: EventRedenominated, Amount: value, Coins: out})
	return nil
}
