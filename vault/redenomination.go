package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/otpcash/otpcash/otp"
)

// Redenomination is a re-denomination as the wallet records it before it
// asks the bank: enough to ask again, after a crash or a lost reply, for
// the same swap under the same id, which the bank carries out once.
//
// The new coins' blinded messages are not kept: each part is a withdrawal
// of this vault (HolderKeys, WithdrawalSecret), from whose holder keys and
// secret the wallet derives the same blinded coins again, as for a
// withdrawal.
type Redenomination struct {
	ID      string
	Account string
	// Coins are the coins given, with their deposit proofs for Account,
	// as first asked: the bank may have taken them already, and answers
	// the same request again with its stored answer.
	Coins []DepositItem
	// Parts are the new coins, one withdrawal per coin key.
	Parts []RedenominationPart
}

// RedenominationPart is the new coins of one coin key.
type RedenominationPart struct {
	WithdrawalID string // the withdrawal of this vault the coins derive from
	KeyID        string // the coin key
	N            int    // how many coins
}

// redenominationSetting is where a re-denomination is stored: its name
// from before records were typed, which vaults hold, kept.
func redenominationSetting(id string) string { return "exchange/" + id }

// redenominationVersion is the version of the stored record: 1, the
// first with a version. A record without one (0) is the form the release
// before wrote, with the bank's request inside; it is read and converted.
const redenominationVersion = 1

// redenominationRecord is a Redenomination as stored, version 1.
type redenominationRecord struct {
	V       int                        `json:"v"`
	ID      string                     `json:"id"`
	Account string                     `json:"account"`
	Coins   []redenominationCoinRecord `json:"coins"`
	Parts   []redenominationPartRecord `json:"parts"`
}

type redenominationCoinRecord struct {
	Sandbox otp.Sandbox `json:"sandbox"`
	Proof   string      `json:"proof"`
}

type redenominationPartRecord struct {
	WithdrawalID string `json:"withdrawalId"`
	KeyID        string `json:"keyId"`
	N            int    `json:"n"`
}

// redenominationV0 is the record the release before versioned records
// wrote (a wallet struct holding the bank's request, POST /v1/exchanges),
// frozen here to read vaults it left with a re-denomination pending.
type redenominationV0 struct {
	Account string   `json:"account"`
	ID      string   `json:"id"`
	Tokens  []string `json:"tokens"`
	Parts   []struct {
		ID    string `json:"id"`
		KeyID string `json:"keyId"`
		N     int    `json:"n"`
	} `json:"parts"`
	Request struct {
		ID       string                     `json:"id"`
		Account  string                     `json:"account"`
		Coins    []redenominationCoinRecord `json:"coins"`
		Withdraw []struct {
			KeyID   string   `json:"keyId"`
			Blinded []string `json:"blinded"`
		} `json:"withdraw"`
	} `json:"request"`
}

// check refuses a record the wallet could not ask the bank again with.
func (r *Redenomination) check() error {
	switch {
	case r.ID == "" || strings.Contains(r.ID, "/"):
		return fmt.Errorf("id %q: want a non-empty id without '/'", r.ID)
	case r.Account == "":
		return errors.New("no account")
	case len(r.Coins) == 0:
		return errors.New("no coins given")
	case len(r.Parts) == 0:
		return errors.New("no new coins")
	}
	for i, p := range r.Parts {
		if p.WithdrawalID == "" || p.KeyID == "" || p.N < 1 {
			return fmt.Errorf("part %d: %+v: want a withdrawal, a key and at least one coin", i, p)
		}
	}
	return nil
}

// encode returns r in the stored form, version 1.
func (r *Redenomination) encode() ([]byte, error) {
	rec := redenominationRecord{V: redenominationVersion, ID: r.ID, Account: r.Account,
		Coins: make([]redenominationCoinRecord, len(r.Coins)), Parts: make([]redenominationPartRecord, len(r.Parts))}
	for i, c := range r.Coins {
		rec.Coins[i] = redenominationCoinRecord(c)
	}
	for i, p := range r.Parts {
		rec.Parts[i] = redenominationPartRecord(p)
	}
	return json.Marshal(rec)
}

// decodeRedenomination reads a stored record of either version, strictly.
func decodeRedenomination(b []byte) (Redenomination, error) {
	var head struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return Redenomination{}, err
	}
	var r Redenomination
	switch head.V {
	case 0:
		var old redenominationV0
		if err := strictJSON(b, &old); err != nil {
			return r, fmt.Errorf("version 0: %w", err)
		}
		var err error
		if r, err = old.convert(); err != nil {
			return r, fmt.Errorf("version 0: %w", err)
		}
	case redenominationVersion:
		var rec redenominationRecord
		if err := strictJSON(b, &rec); err != nil {
			return r, fmt.Errorf("version 1: %w", err)
		}
		r = Redenomination{ID: rec.ID, Account: rec.Account,
			Coins: make([]DepositItem, len(rec.Coins)), Parts: make([]RedenominationPart, len(rec.Parts))}
		for i, c := range rec.Coins {
			r.Coins[i] = DepositItem(c)
		}
		for i, p := range rec.Parts {
			r.Parts[i] = RedenominationPart(p)
		}
	default:
		return r, fmt.Errorf("version %d: written by a newer release", head.V)
	}
	if err := r.check(); err != nil {
		return r, err
	}
	return r, nil
}

// convert upgrades a version 0 record, whose request repeats its own
// fields: they must agree, or the record is not trusted.
func (old *redenominationV0) convert() (Redenomination, error) {
	q := &old.Request
	if q.ID != old.ID || q.Account != old.Account {
		return Redenomination{}, fmt.Errorf("the request is of %s/%s, the record of %s/%s", q.Account, q.ID, old.Account, old.ID)
	}
	if len(old.Tokens) != len(q.Coins) {
		return Redenomination{}, fmt.Errorf("%d tokens for %d coins", len(old.Tokens), len(q.Coins))
	}
	if len(old.Parts) != len(q.Withdraw) {
		return Redenomination{}, fmt.Errorf("%d parts for %d batches", len(old.Parts), len(q.Withdraw))
	}
	r := Redenomination{ID: old.ID, Account: old.Account,
		Coins: make([]DepositItem, len(q.Coins)), Parts: make([]RedenominationPart, len(old.Parts))}
	for i, c := range q.Coins {
		if tok := c.Sandbox.Coin.Data.Token; tok != old.Tokens[i] {
			return Redenomination{}, fmt.Errorf("coin %d is %.12s, token %d %.12s", i, tok, i, old.Tokens[i])
		}
		r.Coins[i] = DepositItem(c)
	}
	for i, p := range old.Parts {
		if w := q.Withdraw[i]; w.KeyID != p.KeyID || len(w.Blinded) != p.N {
			return Redenomination{}, fmt.Errorf("part %d: %d coins of %s, batch %d: %d of %s", i, p.N, p.KeyID, i, len(w.Blinded), w.KeyID)
		}
		r.Parts[i] = RedenominationPart{WithdrawalID: p.ID, KeyID: p.KeyID, N: p.N}
	}
	return r, nil
}

// strictJSON decodes b into v, refusing unknown fields and data after it.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the record")
	}
	return nil
}

// RecordRedenomination stores r, before the bank is asked for it. Its
// parts' withdrawals must exist (HolderKeys). An id recorded before is
// refused (ErrExists): a record is never changed once the bank may have
// seen it.
func (v *Vault) RecordRedenomination(ctx context.Context, r Redenomination) error {
	if err := r.check(); err != nil {
		return fmt.Errorf("record re-denomination: %w", err)
	}
	b, err := r.encode()
	if err != nil {
		return fmt.Errorf("record re-denomination %s: %w", r.ID, err)
	}
	err = v.update(ctx, func(t *tx) error {
		id := t.s.id(kindSetting, []byte(redenominationSetting(r.ID)))
		if _, err := t.get(kindSetting, id, new([]byte)); err == nil {
			return ErrExists
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		for _, p := range r.Parts {
			if _, err := t.get(kindWithdrawal, t.s.id(kindWithdrawal, []byte(p.WithdrawalID)), &withdrawal{}); err != nil {
				return fmt.Errorf("withdrawal %q: %w", p.WithdrawalID, err)
			}
		}
		return t.put(kindSetting, id, "", nil, b)
	})
	if err != nil {
		return fmt.Errorf("record re-denomination %s: %w", r.ID, err)
	}
	return nil
}

// PendingRedenomination returns the re-denomination recorded under id, in
// whichever version it was stored; ErrNotFound if there is none.
func (v *Vault) PendingRedenomination(ctx context.Context, id string) (Redenomination, error) {
	var r Redenomination
	err := v.update(ctx, func(t *tx) (err error) {
		r, err = t.redenomination(id)
		return err
	})
	if err != nil {
		return Redenomination{}, fmt.Errorf("re-denomination %s: %w", id, err)
	}
	return r, nil
}

func (t *tx) redenomination(id string) (Redenomination, error) {
	var b []byte
	if _, err := t.get(kindSetting, t.s.id(kindSetting, []byte(redenominationSetting(id))), &b); err != nil {
		return Redenomination{}, err
	}
	return decodeRedenomination(b)
}

// ForgetRedenomination deletes the record of re-denomination id and the
// withdrawals of its parts still pending, with their keys, in one
// transaction: for when the bank refused it, and for when it is done (its
// parts hold coins then, and stay).
func (v *Vault) ForgetRedenomination(ctx context.Context, id string) error {
	err := v.update(ctx, func(t *tx) error {
		r, err := t.redenomination(id)
		if err != nil {
			return err
		}
		for _, p := range r.Parts {
			if err := t.forgetWithdrawal(p.WithdrawalID); err != nil && !errors.Is(err, ErrState) && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		return t.delete(kindSetting, t.s.id(kindSetting, []byte(redenominationSetting(id))))
	})
	if err != nil {
		return fmt.Errorf("forget re-denomination %s: %w", id, err)
	}
	return nil
}

// FinishRedenomination stores the bank's answer to re-denomination id in
// one transaction: coins[i], the new coins of part i, as held; the coins
// given as deposited, their holder keys destroyed; ev in the history (if
// its Kind is set); and the record gone. A crash leaves all of it or
// none, and the bank answers the same request again with the same
// signatures.
func (v *Vault) FinishRedenomination(ctx context.Context, id string, coins [][]otp.Coin, ev Event) error {
	err := v.update(ctx, func(t *tx) error {
		r, err := t.redenomination(id)
		if err != nil {
			return err
		}
		if len(coins) != len(r.Parts) {
			return fmt.Errorf("coins of %d parts for %d", len(coins), len(r.Parts))
		}
		for i, p := range r.Parts {
			if len(coins[i]) != p.N {
				return fmt.Errorf("part %d: %d coins for %d", i, len(coins[i]), p.N)
			}
			wid := t.s.id(kindWithdrawal, []byte(p.WithdrawalID))
			var w withdrawal
			if _, err := t.get(kindWithdrawal, wid, &w); err != nil {
				return fmt.Errorf("withdrawal %q: %w", p.WithdrawalID, err)
			}
			if err := t.addWithdrawn(w.Keys, coins[i]); err != nil {
				return fmt.Errorf("part %d: %w", i, err)
			}
			if err := t.put(kindWithdrawal, wid, withdrawalDone, nil, w); err != nil {
				return err
			}
		}
		tokens := make([]string, len(r.Coins))
		for i, c := range r.Coins {
			tokens[i] = c.Sandbox.Coin.Data.Token
		}
		if err := t.markDeposited(tokens); err != nil {
			return err
		}
		if ev.Kind != "" {
			if err := t.addEvent(ev); err != nil {
				return err
			}
		}
		return t.delete(kindSetting, t.s.id(kindSetting, []byte(redenominationSetting(id))))
	})
	if err != nil {
		return fmt.Errorf("finish re-denomination %s: %w", id, err)
	}
	return nil
}
