package wallet

import (
	"context"
	"encoding/json"
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
// The re-denomination is recorded in the vault (the coins given, and
// holder keys and a secret for the new coins) before the bank is asked,
// under an id the bank honours once: a crash or lost reply is finished,
// with nothing done twice, by the next Redenominate. A refusal changes
// nothing. The coins given stay held until the bank's answer is stored; like a deposit, they
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
	pe := pendingRedenomination{Account: account.ID, ID: newID()}
	for _, c := range pick(held, give) {
		pe.Tokens = append(pe.Tokens, c.Coin.Data.Token)
	}
	for _, v := range slices.Sorted(maps.Keys(get)) {
		if get[v] == 0 {
			continue
		}
		part := redenominationPart{ID: pe.ID + "/" + strconv.FormatInt(v, 10), KeyID: byValue[v].KeyID, N: get[v]}
		if _, err := w.v.HolderKeys(ctx, part.ID, part.N); err != nil {
			return res, fmt.Errorf("redenominate: %w", err)
		}
		pe.Parts = append(pe.Parts, part)
	}
	if pe.Request, err = w.redenominationRequest(ctx, pe); err != nil {
		w.forgetRedenomination(ctx, pe)
		return res, err
	}
	if err := w.setJSON(ctx, exchangeSetting(pe.ID), pe); err != nil {
		return res, fmt.Errorf("redenominate: %w", err)
	}
	if err := w.finishRedenomination(ctx, account.Token, pe, &res); err != nil {
		return res, err
	}
	return res, nil
}

// pendingRedenomination is what a re-denomination needs to be asked again
// after a crash: the same coins and the same new coins under the same id.
type pendingRedenomination struct {
	Account string               `json:"account"`
	ID      string               `json:"id"`
	Tokens  []string             `json:"tokens"`
	Parts   []redenominationPart `json:"parts"`
	// Request is asked again as it is: the coins given may have been
	// taken by the bank, which answers the same request with its stored
	// answer.
	Request api.RedenominationRequest `json:"request"`
}

// redenominationPart is the new coins of one coin key: a withdrawal in
// the vault's terms, whose holder keys and secret the coins derive from.
type redenominationPart struct {
	ID    string `json:"id"`
	KeyID string `json:"keyId"`
	N     int    `json:"n"`
}

// exchangeSetting names the record of a re-denomination: its name from
// before the rename, which vaults hold, kept.
func exchangeSetting(id string) string { return "exchange/" + id }

// resumeRedenominations finishes the interrupted re-denominations of
// account.
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
		raw, err := w.v.Setting(ctx, exchangeSetting(parent))
		if err != nil {
			continue // never recorded whole: nothing was asked
		}
		var pe pendingRedenomination
		if err := json.Unmarshal(raw, &pe); err != nil {
			return fmt.Errorf("redenominate: resume %s: %w", parent, err)
		}
		if pe.Account != account.ID {
			continue
		}
		if err := w.finishRedenomination(ctx, account.Token, pe, res); err != nil {
			return fmt.Errorf("resume: %w", err)
		}
	}
	return nil
}

// redenominationRequest builds the request of pe: the coins given with deposit
// proofs for the account, and the new coins blinded, derived from the
// vault's secrets.
func (w *Wallet) redenominationRequest(ctx context.Context, pe pendingRedenomination) (api.RedenominationRequest, error) {
	items, err := w.v.DepositItems(ctx, pe.Account)
	if err != nil {
		return api.RedenominationRequest{}, fmt.Errorf("redenominate: %w", err)
	}
	byToken := make(map[string]vault.DepositItem, len(items))
	for _, it := range items {
		byToken[it.Sandbox.Coin.Data.Token] = it
	}
	req := api.RedenominationRequest{ID: pe.ID, Account: pe.Account}
	for _, tok := range pe.Tokens {
		it, ok := byToken[tok]
		if !ok {
			return req, fmt.Errorf("redenominate: coin %.12s is no longer held", tok)
		}
		req.Coins = append(req.Coins, api.DepositCoin{Sandbox: it.Sandbox, Proof: it.Proof})
	}
	blind, err := w.newCoins(ctx, pe)
	if err != nil {
		return req, err
	}
	for i, part := range pe.Parts {
		batch := api.WithdrawBatch{KeyID: part.KeyID, Blinded: make([]string, len(blind[i]))}
		for j, b := range blind[i] {
			batch.Blinded[j] = otp.EncodeBlinded(b.Blinded())
		}
		req.Withdraw = append(req.Withdraw, batch)
	}
	return req, nil
}

// newCoins rebuilds the new coins of pe, blinded, from the vault.
func (w *Wallet) newCoins(ctx context.Context, pe pendingRedenomination) ([][]*otp.BlindCoin, error) {
	blind := make([][]*otp.BlindCoin, len(pe.Parts))
	for i, part := range pe.Parts {
		k, err := w.cat().Key(part.KeyID, otp.UseCoin)
		if err != nil {
			return nil, fmt.Errorf("redenominate: %w", err)
		}
		pubs, err := w.v.HolderKeys(ctx, part.ID, part.N)
		if err != nil {
			return nil, fmt.Errorf("redenominate: %w", err)
		}
		secret, err := w.v.WithdrawalSecret(ctx, part.ID)
		if err != nil {
			return nil, fmt.Errorf("redenominate: %w", err)
		}
		blind[i] = make([]*otp.BlindCoin, len(pubs))
		for j, pub := range pubs {
			if blind[i][j], err = otp.NewBlindCoin(w.cat().Issuer, k, pub, otp.WithdrawalRand(secret, part.ID, j)); err != nil {
				return nil, fmt.Errorf("redenominate: %w", err)
			}
		}
	}
	return blind, nil
}

// finishRedenomination asks the bank for the recorded re-denomination pe,
// stores the new coins and marks the old ones deposited. A refusal forgets
// it.
func (w *Wallet) finishRedenomination(ctx context.Context, token string, pe pendingRedenomination, res *RedenominateResult) error {
	blind, err := w.newCoins(ctx, pe)
	if err != nil {
		return err
	}
	sigs, err := w.bank.Redenominate(ctx, token, pe.Request)
	if err != nil {
		if refused(err) {
			w.forgetRedenomination(ctx, pe)
		}
		return fmt.Errorf("redenominate: %w", err)
	}
	out := 0
	for i, part := range pe.Parts {
		if len(sigs[i]) != len(blind[i]) {
			return fmt.Errorf("redenominate: %d blind signatures for %d coins", len(sigs[i]), len(blind[i]))
		}
		coins := make([]otp.Coin, len(sigs[i]))
		for j := range sigs[i] {
			coin, err := blind[i][j].Finish(sigs[i][j])
			if err != nil {
				return fmt.Errorf("redenominate: the bank's blind signature does not fit: %w", err)
			}
			coins[j] = *coin
		}
		if err := w.v.AddWithdrawn(ctx, part.ID, coins); err != nil {
			return fmt.Errorf("redenominate: %w", err)
		}
		out += len(coins)
	}
	if err := w.v.MarkDeposited(ctx, pe.Tokens); err != nil {
		return fmt.Errorf("redenominate: %w", err)
	}
	var value int64
	for _, c := range pe.Request.Coins {
		value += c.Sandbox.Coin.Data.Value
	}
	res.Value += value
	res.In += len(pe.Tokens)
	res.Out += out
	w.emit(Event{Kind: EventRedenominated, Amount: value, Coins: out})
	w.record(ctx, HistoryEntry{Kind: HistoryRedenominate, Amount: value, Detail: fmt.Sprintf("%d coins for %d at the bank", len(pe.Tokens), out)})
	return nil
}

// forgetRedenomination drops a re-denomination the bank did not carry out.
func (w *Wallet) forgetRedenomination(ctx context.Context, pe pendingRedenomination) {
	for _, part := range pe.Parts {
		if err := w.v.ForgetWithdrawal(ctx, part.ID); err != nil {
			w.log.Warn("re-denomination not forgotten", "err", err)
		}
	}
}
