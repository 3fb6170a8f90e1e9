package wallet

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/internal/fault"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/vault"
	"github.com/otpcash/otpcash/wallet/recovery"
)

// ErrNoPhrase reports a wallet made without a recovery phrase (Init): it
// has nothing to back up or recover with.
var ErrNoPhrase = errors.New("wallet has no recovery phrase")

const settingRecovery = "recovery"

// recoverySetting is what the vault keeps of the phrase's secrets: the
// wallet's id, the public recovery key, and the backup key, so that
// backups need no phrase. The phrase and the private recovery key are
// never stored.
type recoverySetting struct {
	ID        []byte `json:"id"`
	Key       string `json:"key"`
	BackupKey []byte `json:"backupKey"`
	// BankKey is the seed of the key that signs the backups uploaded to
	// the bank (BackupToBank): absent in a vault made before them, which
	// takes it from the phrase once.
	BankKey []byte `json:"bankKey,omitempty"`
}

func newRecoverySetting(k *recovery.Keys) recoverySetting {
	return recoverySetting{ID: k.ID[:], Key: otp.EncodeKey(k.RecoveryKey()), BackupKey: k.Backup[:], BankKey: k.BankBackup.Seed()}
}

// Create creates a wallet as Init does, from a fresh recovery phrase, and
// returns the phrase: the only time anyone sees it. The phrase recovers
// the wallet's coins through the bank after their deadline, with a backup
// (Backup); it cannot pay anything.
func Create(ctx context.Context, dir, bankURL string, pin []byte, opts Options) (*Wallet, recovery.Phrase, error) {
	p, err := recovery.NewPhrase()
	if err != nil {
		return nil, recovery.Phrase{}, fmt.Errorf("init: %w", err)
	}
	w, err := InitFromPhrase(ctx, dir, bankURL, pin, p, opts)
	if err != nil {
		return nil, recovery.Phrase{}, err
	}
	return w, p, nil
}

// InitFromPhrase creates a wallet as Init does, with the recovery secrets
// of an existing phrase: on a new device, to recover a lost wallet's
// coins (Recover). Its holder and exchange keys are new and random, as
// every wallet's: the lost wallet's coins never become payable here.
func InitFromPhrase(ctx context.Context, dir, bankURL string, pin []byte, p recovery.Phrase, opts Options) (*Wallet, error) {
	k, err := p.Derive()
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	return initWallet(ctx, dir, bankURL, pin, &k, opts)
}

// recoverySecrets returns the recovery secrets kept in the vault.
func (w *Wallet) recoverySecrets(ctx context.Context) (recoverySetting, error) {
	var s recoverySetting
	raw, err := w.v.Setting(ctx, settingRecovery)
	if errors.Is(err, vault.ErrNotFound) {
		return s, ErrNoPhrase
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("recovery setting: %w", err)
	}
	if _, err := otp.DecodeKey(s.Key); err != nil || len(s.ID) != recovery.IDSize || len(s.BackupKey) != 32 ||
		(s.BankKey != nil && len(s.BankKey) != ed25519.SeedSize) {
		return s, fmt.Errorf("recovery setting: malformed")
	}
	return s, nil
}

// recoveryKey decodes the stored public recovery key.
func (s *recoverySetting) recoveryKey() ed25519.PublicKey {
	k, _ := otp.DecodeKey(s.Key) // checked by recoverySecrets
	return k
}

// Backup returns an encrypted, authenticated backup of what the phrase
// cannot re-derive: every held coin with its holder key's authorisation
// of the wallet's recovery key, the claims of a recovery still pending,
// and the history. Only the phrase opens
// it. Nothing changes: the coins stay held and payable here; a coin paid
// after the backup is recovered only if nobody else deposited or claimed
// it first (docs/PROTOCOL.md).
func (w *Wallet) Backup(ctx context.Context) ([]byte, error) {
	s, err := w.recoverySecrets(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	items, err := w.v.RecoveryItems(ctx, s.recoveryKey())
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	history, err := w.v.Events(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	// The claims of a recovery still pending go in too: a device that
	// recovered and is lost in turn still recovers them.
	cl, err := w.v.RecoveryClaims(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	b := recovery.Backup{Version: recovery.BackupVersion, Created: w.now(), Coins: make([]recovery.Coin, 0, len(items)+len(cl.Coins)), History: history}
	for _, it := range items {
		b.Coins = append(b.Coins, recovery.Coin{Sandbox: it.Sandbox, Authorization: it.Proof})
	}
	for _, c := range cl.Coins {
		b.Coins = append(b.Coins, recovery.Coin{Sandbox: c.Sandbox, Authorization: c.Auth})
	}
	id, key := s.secrets()
	sealed, err := recovery.SealBackup(id, &key, &b)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return sealed, nil
}

func (s *recoverySetting) secrets() (id [recovery.IDSize]byte, key [32]byte) {
	copy(id[:], s.ID)
	copy(key[:], s.BackupKey)
	return id, key
}

// ErrWrongPhrase reports a phrase that is not this wallet's.
var ErrWrongPhrase = errors.New("recovery phrase of another wallet")

// RecoverResult says what a recovery did.
type RecoverResult struct {
	Imported int   // coins taken from the backup this time
	Credited int64 // value the bank credited this time (or had credited)
	Coins    int   // coins credited
	Spent    int   // coins someone else deposited or claimed: spent
	Pending  int   // coins before their deposit deadline, kept to claim later
	Refused  []Refusal
	Balance  int64 // account balance after the recovery
}

// Recover claims at the bank, for account, the coins of a lost wallet
// this wallet was made from the phrase of (InitFromPhrase). With a
// backup, it first opens it with phrase p (refusing a backup of another
// wallet, a tampered one or a wrong phrase, with nothing changed), checks
// every coin's authorisation and keeps the claims, signed for account, in
// the vault. Then it sends every claim whose coin's deposit deadline has
// passed; the others stay pending for a later call, which needs no phrase.
// A claim leaves the list once the bank credited it or says it was spent.
// Run again after a crash, it credits nothing twice.
func (w *Wallet) Recover(ctx context.Context, p *recovery.Phrase, backup []byte, acct Account) (RecoverResult, error) {
	account := acct.ID
	var res RecoverResult
	cl, err := w.v.RecoveryClaims(ctx)
	if err != nil {
		return res, fmt.Errorf("recover: %w", err)
	}
	if cl.Account != "" && cl.Account != account {
		return res, fmt.Errorf("recover: the recovered coins are claimed for account %s, not %s", cl.Account, account)
	}
	cl.Account = account
	if backup != nil {
		if p == nil {
			return res, fmt.Errorf("recover: opening a backup needs the recovery phrase")
		}
		added, err := w.importBackup(ctx, p, backup, account, cl.Coins)
		if err != nil {
			return res, fmt.Errorf("recover: %w", err)
		}
		cl.Coins = append(cl.Coins, added...)
		res.Imported = len(added)
		if err := w.v.SetRecoveryClaims(ctx, cl); err != nil {
			return res, fmt.Errorf("recover: %w", err)
		}
		if err := w.recoveredFrom(ctx, backup); err != nil {
			return res, fmt.Errorf("recover: %w", err)
		}
	}
	fault.Point(fault.WalletRecoveryClaims)
	now := w.now()
	var due, pending []vault.ReclaimItem
	for _, c := range cl.Coins {
		if !w.lapsed(&c.Sandbox.Coin, now) {
			// Not sent before its time: until then the bank need not learn
			// that the coin was this account's.
			pending = append(pending, c)
			continue
		}
		due = append(due, c)
	}
	res.Pending = len(pending)
	if len(due) == 0 {
		return res, nil
	}
	resp, err := w.bank.Recover(ctx, acct.Token, recoveryRequest(account, due))
	if err != nil {
		return res, fmt.Errorf("recover: %w", err)
	}
	fault.Point(fault.WalletRecovered)
	for i, r := range resp.Results {
		switch {
		case r.Status == api.StatusCredited || r.Status == api.StatusAlreadyCredited:
			res.Credited += due[i].Sandbox.Coin.Data.Value
			res.Coins++
		case r.Code == api.CodeDoubleDeposit:
			res.Spent++
		case r.Code == api.CodeNotYet:
			// The bank's clock is behind ours: ask again later.
			pending = append(pending, due[i])
			res.Pending++
		default:
			res.Refused = append(res.Refused, Refusal{Token: r.Token, Code: r.Code, Message: r.Message})
		}
	}
	cl.Coins = pending
	if err := w.v.SetRecoveryClaims(ctx, cl); err != nil {
		return res, fmt.Errorf("recover: %w", err)
	}
	fault.Point(fault.WalletRecoveryKept)
	res.Balance = resp.Balance
	w.record(ctx, HistoryEntry{Kind: HistoryRecovered, Amount: res.Credited,
		Detail: fmt.Sprintf("%d coins of a lost wallet credited to account %s, %d spent elsewhere, %d pending, %d refused", res.Coins, account, res.Spent, res.Pending, len(res.Refused))})
	return res, nil
}

// recoveryRequest is the claims due as the bank's API takes them: the one
// place where the vault's claims and the wire meet.
// lapsed reports whether c's deposit deadline has passed at now (or its
// coin key is unknown to the catalogue): the bank takes it only as a
// claim.
func (w *Wallet) lapsed(c *otp.Coin, now time.Time) bool {
	k, err := w.cat().Key(c.Data.KeyID, otp.UseCoin)
	return err != nil || !now.Before(k.DepositUntil)
}

func recoveryRequest(account string, due []vault.ReclaimItem) api.RecoveryRequest {
	req := api.RecoveryRequest{Account: account, Coins: make([]api.ReclaimCoin, len(due))}
	for i, c := range due {
		req.Coins[i] = api.ReclaimCoin{Sandbox: c.Sandbox, Authorization: c.Auth, Key: c.Key, Proof: c.Proof}
	}
	return req
}

// importBackup opens backup with p, which must be this wallet's phrase,
// and returns a claim for account of each of its coins not among have,
// nor among the coins this vault has a record of, unless it holds one
// past its deposit deadline (a claim is then the only way to its value):
// a wallet that recovers from its own backup (its device was not lost
// after all) can still pay, deposit or reclaim those, or paid them, and
// claiming them would count them twice.
// Every coin and authorisation is checked before any is returned: a
// backup is taken whole or not at all.
func (w *Wallet) importBackup(ctx context.Context, p *recovery.Phrase, backup []byte, account string, have []vault.ReclaimItem) ([]vault.ReclaimItem, error) {
	s, err := w.recoverySecrets(ctx)
	if err != nil {
		return nil, err
	}
	k, err := p.Derive()
	if err != nil {
		return nil, err
	}
	if id, _ := s.secrets(); id != k.ID {
		return nil, fmt.Errorf("%w: this wallet was made from another phrase", ErrWrongPhrase)
	}
	b, err := recovery.OpenBackup(&k, backup)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, c := range have {
		known[c.Sandbox.Coin.Data.Token] = true
	}
	mine, err := w.v.Coins(ctx)
	if err != nil {
		return nil, err
	}
	now := w.now()
	for _, c := range mine {
		if c.State == vault.Held && w.lapsed(&c.Sandbox.Coin, now) {
			continue
		}
		known[c.Sandbox.Coin.Data.Token] = true
	}
	key := otp.EncodeKey(k.RecoveryKey())
	var out []vault.ReclaimItem
	for _, c := range b.Coins {
		sb := c.Sandbox
		if known[sb.Coin.Data.Token] {
			continue
		}
		known[sb.Coin.Data.Token] = true
		if err := w.ver().VerifySandbox(&sb); err != nil {
			return nil, fmt.Errorf("backed-up coin %.12s: %w", sb.Coin.Data.Token, err)
		}
		proof, err := sb.RecoveryProof(k.Recovery, account)
		if err != nil {
			return nil, err
		}
		// The authorisation came out of the backup: check it names this
		// phrase's key for this coin as it stands, or the claim is void.
		if err := sb.VerifyRecovery(c.Authorization, key, proof, account); err != nil {
			return nil, fmt.Errorf("backed-up coin %.12s: %w", sb.Coin.Data.Token, err)
		}
		out = append(out, vault.ReclaimItem{Sandbox: sb, Auth: c.Authorization, Key: key, Proof: proof})
	}
	return out, nil
}
