package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/otpcash/otpcash/amount"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/internal/fault"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/vault"
)

// WithdrawResult says what a withdrawal brought into the wallet.
type WithdrawResult struct {
	Amount  int64 // value of the coins stored, including resumed withdrawals
	Coins   int
	Resumed int // coins of earlier, interrupted withdrawals finished now
}

// Option adjusts one Withdraw or Pay.
type Option func(*callOptions)

type callOptions struct {
	program string
}

// WithProgram names the coin program to withdraw, or whose coins to pay
// with; without it both use "general". The bank lists its programs in the
// error for an unknown name.
func WithProgram(name string) Option { return func(o *callOptions) { o.program = name } }

func applyOptions(opts []Option) callOptions {
	o := callOptions{program: otp.GeneralProgramName}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Withdraw debits value from the bank account and stores the coins, in
// the mix of denominations denom.Set.Withdrawal makes (enough small coins
// to make change). The wallet builds the coins itself, of the program's
// newest coin keys in the catalogue, and has the bank sign them blindly
// (RFC 9474): the bank never sees their serials or holder keys, so it
// cannot link them to this withdrawal when they are deposited.
//
// Each denomination is one withdrawal at the bank, with its own id; all
// are recorded in the vault (holder keys, and a secret the serials and
// blinding are derived from) before the bank is asked for any, and the
// bank honours an id only once. A withdrawal interrupted by a crash or a
// lost reply is finished, without a second debit, by the next Withdraw on
// the same account, whole. When the bank refuses one (say for want of
// funds), the ones not yet asked are forgotten and the error says what was
// withdrawn.
func (w *Wallet) Withdraw(ctx context.Context, account Account, value int64, opts ...Option) (WithdrawResult, error) {
	o := applyOptions(opts)
	keys, err := w.cat().CoinKeys(o.program, w.now())
	if err != nil {
		return WithdrawResult{}, fmt.Errorf("withdraw: %w", err)
	}
	set := make(denom.Set, len(keys))
	byValue := make(map[int64]*otp.IssuerKey, len(keys))
	for i, k := range keys {
		set[i], byValue[k.Value] = k.Value, k
	}
	if value <= 0 {
		return WithdrawResult{}, fmt.Errorf("withdraw %d: %w: the amount must be positive", value, ErrAmount)
	}
	mix, err := set.Withdrawal(value)
	if err != nil {
		return WithdrawResult{}, fmt.Errorf("withdraw %s: %w in coins of %s %s", amount.Format(value), ErrAmount, set, keys[0].Currency)
	}
	var res WithdrawResult
	if err := w.resumeWithdrawals(ctx, account, &res); err != nil {
		return res, err
	}
	type part struct {
		id  string
		key *otp.IssuerKey
		n   int
	}
	var parts []part
	for _, v := range slices.Backward(slices.Sorted(maps.Keys(mix))) {
		p := part{id: newID(), key: byValue[v], n: mix[v]}
		pw, err := json.Marshal(pendingWithdrawal{Account: account.ID, KeyID: p.key.KeyID})
		if err != nil {
			return res, fmt.Errorf("withdraw: %w", err)
		}
		if err := w.v.SetSetting(ctx, withdrawalSetting(p.id), pw); err != nil {
			return res, fmt.Errorf("withdraw: %w", err)
		}
		if _, err := w.v.HolderKeys(ctx, p.id, p.n); err != nil {
			return res, fmt.Errorf("withdraw: %w", err)
		}
		parts = append(parts, p)
	}
	for i, p := range parts {
		if err := w.finishWithdrawal(ctx, p.id, account, p.key.KeyID, p.n, &res); err != nil {
			// A refusal ends the withdrawal: the parts after it were
			// never asked for. Any other failure leaves them, with it,
			// to be finished by the next Withdraw.
			if refused(err) {
				for _, q := range parts[i+1:] {
					if ferr := w.v.ForgetWithdrawal(ctx, q.id); ferr != nil {
						w.log.Warn("withdrawal not asked for not forgotten", "err", ferr)
					}
				}
			}
			if res.Amount > 0 {
				err = fmt.Errorf("%w (withdrew %s of %s)", err, amount.Format(res.Amount), amount.Format(value))
			}
			return res, err
		}
	}
	w.emit(Event{Kind: EventWithdrawn, Amount: res.Amount, Coins: res.Coins})
	w.record(ctx, HistoryEntry{Kind: HistoryWithdraw, Amount: res.Amount, Detail: fmt.Sprintf("%d coins (%s) from account %s", res.Coins, mix, account)})
	return res, nil
}

func withdrawalSetting(id string) string { return "withdrawal/" + id }

// pendingWithdrawal is what a withdrawal needs to be asked again after a
// crash: the same account and coin key under the same id.
type pendingWithdrawal struct {
	Account string `json:"account"`
	KeyID   string `json:"keyId"`
}

// resumeWithdrawals finishes the interrupted withdrawals of account.
func (w *Wallet) resumeWithdrawals(ctx context.Context, account Account, res *WithdrawResult) error {
	ids, err := w.v.PendingWithdrawals(ctx)
	if err != nil {
		return fmt.Errorf("withdraw: %w", err)
	}
	for _, id := range ids {
		raw, err := w.v.Setting(ctx, withdrawalSetting(id))
		if err != nil {
			continue
		}
		var pw pendingWithdrawal
		if json.Unmarshal(raw, &pw) != nil || pw.KeyID == "" {
			// Asked for in the clear, before blind withdrawals: the bank
			// answers it in a form this wallet no longer reads.
			w.log.Warn("withdrawal from before blind issuance left pending", "withdrawal", id)
			continue
		}
		if pw.Account != account.ID {
			continue
		}
		keys, err := w.v.HolderKeys(ctx, id, 0)
		if err != nil {
			return fmt.Errorf("withdraw: resume %s: %w", id, err)
		}
		before := res.Coins
		if err := w.finishWithdrawal(ctx, id, account, pw.KeyID, len(keys), res); err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		res.Resumed += res.Coins - before
	}
	return nil
}

// finishWithdrawal builds and blinds the n coins of withdrawal id under the
// coin key keyID, asks the bank to sign them, unblinds and stores them. The
// coins are derived from the withdrawal's holder keys and secret, so
// asking again builds the same blinded coins, which the bank answers with
// the same signatures. A refusal by the bank means nothing was debited, so
// the withdrawal is forgotten; any other failure leaves it to be resumed.
func (w *Wallet) finishWithdrawal(ctx context.Context, id string, account Account, keyID string, n int, res *WithdrawResult) error {
	k, err := w.cat().Key(keyID, otp.UseCoin)
	if err != nil {
		return fmt.Errorf("withdraw: %w", err)
	}
	pubs, err := w.v.HolderKeys(ctx, id, n)
	if err != nil {
		return fmt.Errorf("withdraw: %w", err)
	}
	secret, err := w.v.WithdrawalSecret(ctx, id)
	if err != nil {
		return fmt.Errorf("withdraw: %w", err)
	}
	// Asking again is safe: the same id, the same blinded coins.
	var coins []otp.Coin
	err = w.retryOnce(ctx, func() (err error) {
		coins, err = w.bank.WithdrawCoins(ctx, account, id, w.cat().Issuer, k, pubs,
			func(i int) io.Reader { return otp.WithdrawalRand(secret, id, i) })
		return err
	})
	if err != nil {
		if refused(err) {
			if ferr := w.v.ForgetWithdrawal(ctx, id); ferr != nil {
				w.log.Warn("refused withdrawal not forgotten", "err", ferr)
			}
		}
		return fmt.Errorf("withdraw: %w", err)
	}
	fault.Point(fault.WalletWithdrawn)
	for i := range coins {
		res.Amount += coins[i].Data.Value
	}
	if err := w.v.AddWithdrawn(ctx, id, coins); err != nil {
		return fmt.Errorf("withdraw: %w", err)
	}
	res.Coins += len(coins)
	return nil
}

// refused reports whether the bank refused a request, so that nothing
// was done.
func refused(err error) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500
}

// DepositResult says what a deposit did.
type DepositResult struct {
	Credited int64 // value credited now or by an earlier interrupted deposit
	Coins    int
	Refused  []Refusal
	Balance  int64 // account balance after the deposit
}

// Refusal is a coin the bank would not credit, with its reason. A double
// deposit names the one-time key that signed twice.
type Refusal struct {
	Token   string `json:"token"` // the coin's serial
	Code    string `json:"code"`  // the bank's error code, like "double_deposit"
	Message string `json:"message"`
	Key     string `json:"key,omitempty"` // the one-time key that signed the coin twice
}

// maxDepositBatch keeps each request well under the bank's body limit.
const maxDepositBatch = 500

// finalRefusals are the bank's refusals that are about the coin itself,
// whatever the account: such a coin can never be credited, so it leaves
// the held coins (vault.Refused) rather than be paid on to someone who
// would be refused in turn. A coin refused for its account (a program
// condition, say) stays held, to be paid or deposited elsewhere.
var finalRefusals = map[string]bool{
	api.CodeDoubleDeposit: true,
	api.CodeInvalidCoin:   true,
	api.CodeInvalidChain:  true,
	api.CodeUnknownCoin:   true,
	api.CodeExpired:       true,
}

// Deposit sends every held coin to the bank for credit to account. Coins are
// marked deposited only after the bank answers; a deposit interrupted before
// that is repeated by the next Deposit and the bank, recognising the same
// coins from the same holder, credits them once. A coin the bank refuses
// for good (finalRefusals) is recorded as refused, with the bank's reason,
// in the same transaction as the credited coins and the history entries.
func (w *Wallet) Deposit(ctx context.Context, account Account) (DepositResult, error) {
	items, err := w.v.DepositItems(ctx, account.ID)
	if err != nil {
		return DepositResult{}, fmt.Errorf("deposit: %w", err)
	}
	var res DepositResult
	for len(items) > 0 {
		batch := items[:min(len(items), maxDepositBatch)]
		items = items[len(batch):]
		req := api.DepositRequest{Account: account.ID, Coins: make([]api.DepositCoin, len(batch))}
		for i, it := range batch {
			req.Coins[i] = api.DepositCoin{Sandbox: it.Sandbox, Proof: it.Proof}
		}
		resp, err := w.bank.Deposit(ctx, account.Token, req)
		if err != nil {
			return res, fmt.Errorf("deposit: %w", err)
		}
		// The client checked one result per coin, in order.
		var done []string
		var refs, final []Refusal
		var credited, lost int64
		var coins int
		for i, r := range resp.Results {
			d := &batch[i].Sandbox.Coin.Data
			switch r.Status {
			case api.StatusCredited, api.StatusAlreadyCredited:
				done = append(done, r.Token)
				credited += d.Value
				coins++
				continue
			}
			ref := Refusal{Token: r.Token, Code: r.Code, Message: r.Message}
			if r.Conflict != nil {
				ref.Key = r.Conflict.Key
			}
			refs = append(refs, ref)
			if finalRefusals[r.Code] {
				final = append(final, ref)
				lost += d.Value
			}
		}
		res.Credited, res.Coins = res.Credited+credited, res.Coins+coins
		res.Refused = append(res.Refused, refs...)
		fault.Point(fault.WalletDeposited)
		var ev vault.Event // none when no coin is refused for good
		if len(final) > 0 {
			ev = HistoryEntry{Time: w.now(), Kind: HistoryRefused, Amount: lost, Currency: w.Currency(), Detail: refusalDetail(final)}.vaultEvent()
		}
		evidence := make([]vault.Refusal, len(final))
		for i, r := range final {
			evidence[i] = vault.Refusal(r)
		}
		if err := w.v.SettleDeposit(ctx, done, evidence, ev); err != nil {
			return res, fmt.Errorf("deposit: %w", err)
		}
		res.Balance = resp.Balance
	}
	if res.Coins > 0 || len(res.Refused) > 0 {
		w.emit(Event{Kind: EventDeposited, Amount: res.Credited, Coins: res.Coins})
		w.record(ctx, HistoryEntry{Kind: HistoryDeposit, Amount: res.Credited,
			Detail: fmt.Sprintf("%d coins credited to account %s, %d refused", res.Coins, account, len(res.Refused))})
	}
	return res, nil
}

// refusalDetail says, for the history, which coins the bank refused and
// why, with the key that signed twice for a double deposit.
func refusalDetail(refused []Refusal) string {
	parts := make([]string, len(refused))
	for i, r := range refused {
		parts[i] = fmt.Sprintf("coin %.12s refused by the bank: %s: %s", r.Token, r.Code, r.Message)
		if r.Key != "" {
			parts[i] += fmt.Sprintf(" (key %s signed it twice)", r.Key)
		}
	}
	return strings.Join(parts, "; ")
}
