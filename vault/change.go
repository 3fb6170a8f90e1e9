package vault

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/otpcash/otpcash/otp"
)

// ChangeAgreement is a payee's promise, made before it hands out the
// exchange keys of a payment that needs change: once coins have arrived on
// every one of those keys, the vault seals the change coins to the payer's
// exchange keys, in the same transaction that stores the last of them. The
// promise is durable, so change is given however the payment arrives: in
// the session, or re-sent at a later meeting after a broken one.
type ChangeAgreement struct {
	Peer   string            `json:"peer"`   // the payer's identity
	Change []string          `json:"change"` // tokens of held coins to give
	To     []otp.ExchangeKey `json:"to"`     // the payer's keys, one per change coin
	// Keys are the public halves of the exchange keys handed out for the
	// payment, filled in by PromiseExchangeKeys.
	Keys []string `json:"keys"`
}

// PromiseExchangeKeys returns n certified, unused, unexpired exchange keys
// for the payer peer, as OfferExchangeKeys does, but records the offer:
// the keys are never offered again, so no other payer's coin can take a
// key the peer may still seal to. With an agreement, the keys are bound to
// it and the vault gives the agreed change when the payment is complete
// (see Receive); without, they are keys the peer seals this vault's change
// to.
func (v *Vault) PromiseExchangeKeys(ctx context.Context, n int, a *ChangeAgreement) ([]otp.ExchangeKey, error) {
	if n < 1 {
		return nil, fmt.Errorf("promise exchange keys: asked for %d", n)
	}
	if a != nil && len(a.Change) != len(a.To) {
		return nil, fmt.Errorf("promise exchange keys: %d change coins for %d keys", len(a.Change), len(a.To))
	}
	var keys []otp.ExchangeKey
	err := v.update(ctx, func(t *tx) error {
		all, err := t.offerable()
		if err != nil {
			return err
		}
		if len(all) < n {
			return fmt.Errorf("%w: have %d, want %d", ErrNoExchangeKeys, len(all), n)
		}
		keys = all[:n]
		var agreement []byte
		if a != nil {
			for _, tok := range a.Change {
				if _, err := t.heldCoin(tok); err != nil {
					return err
				}
			}
			agreement = make([]byte, 16)
			rand.Read(agreement)
			rec := *a
			rec.Keys = make([]string, n)
			for i := range keys {
				rec.Keys[i] = keys[i].Pub
			}
			if err := t.put(kindAgreement, agreement, agreementOpen, nil, rec); err != nil {
				return err
			}
		}
		for i := range keys {
			id, k, _, err := t.key(keys[i].Pub)
			if err != nil {
				return err
			}
			k.Agreement = agreement
			if err := t.put(kindKey, id, keyPromised, nil, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("promise exchange keys: %w", err)
	}
	return keys, nil
}

// heldCoin returns the sandbox of the coin with token tok, which the vault
// must hold.
func (t *tx) heldCoin(tok string) (otp.Sandbox, error) {
	last, err := t.latest(tok)
	if err != nil {
		return otp.Sandbox{}, fmt.Errorf("change coin %.12s: %w", tok, err)
	}
	if State(last.state) != Held {
		return otp.Sandbox{}, fmt.Errorf("change coin %.12s: %w: %s, not held", tok, ErrState, last.state)
	}
	return last.val.Sandbox, nil
}

const (
	kindAgreement = "agreement"
	agreementOpen = "open"
)

// giveChange seals the change of each agreement whose payment is complete
// once the coins of this transaction are stored, and returns the sealed
// change, pending-out to the payer. An agreement it cannot honour (a
// change coin no longer held) fails the whole transaction: the payment is
// refused, stays pending-out at the payer, and is re-sent.
func (t *tx) giveChange(agreements [][]byte) ([]otp.Sandbox, error) {
	var change []otp.Sandbox
	for _, id := range agreements {
		var a ChangeAgreement
		state, err := t.get(kindAgreement, id, &a)
		if errors.Is(err, ErrNotFound) {
			continue // honoured by an earlier coin of this transaction
		}
		if err != nil {
			return nil, err
		}
		if state != agreementOpen {
			return nil, fmt.Errorf("change agreement: %w: %s", ErrState, state)
		}
		complete := true
		for _, pub := range a.Keys {
			_, _, ks, err := t.key(pub)
			if err != nil {
				return nil, err
			}
			complete = complete && ks == keyHolder
		}
		if !complete {
			continue
		}
		coins := make([]otp.Sandbox, len(a.Change))
		for i, tok := range a.Change {
			if coins[i], err = t.heldCoin(tok); err != nil {
				return nil, fmt.Errorf("give the agreed change: %w", err)
			}
		}
		sealed, err := t.sealAll(a.Peer, coins, a.To)
		if err != nil {
			return nil, fmt.Errorf("give the agreed change: %w", err)
		}
		change = append(change, sealed...)
		if err := t.delete(kindAgreement, id); err != nil {
			return nil, err
		}
	}
	return change, nil
}
