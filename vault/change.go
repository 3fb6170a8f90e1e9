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
//
// The change is given for the coins the payer proposed, and for no others:
// each key handed out is bound to the value the payer proposed to seal to
// it (Send, in the keys' order), in the agreement's currency and program,
// and Receive refuses any other coin on it (ErrNotAgreed). Without that, a
// payer could propose 3.00 for 2.00 of change and seal a 1.00 coin.
type ChangeAgreement struct {
	Peer   string            `json:"peer" cbor:"1,keyasint"`   // the payer's identity
	Change []string          `json:"change" cbor:"2,keyasint"` // tokens of held coins to give
	To     []otp.ExchangeKey `json:"to" cbor:"3,keyasint"`     // the payer's keys, one per change coin
	// Send is the value of the coin to arrive on each key handed out for
	// the payment, in order; Currency and Program are every such coin's.
	Send     []int64 `json:"send" cbor:"4,keyasint"`
	Currency string  `json:"currency" cbor:"5,keyasint"`
	Program  string  `json:"program" cbor:"6,keyasint"`
	// Keys are the public halves of the exchange keys handed out for the
	// payment, filled in by PromiseExchangeKeys.
	Keys []string `json:"keys" cbor:"7,keyasint"`
}

// due is the coin a key promised under a change agreement must receive.
type due struct {
	Value    int64  `json:"value" cbor:"1,keyasint"`
	Currency string `json:"currency" cbor:"2,keyasint"`
	Program  string `json:"program" cbor:"3,keyasint"`
}

// admits reports why c is not the coin due, if it is not. A key promised
// under an agreement but without a due coin (written before the values
// were bound) admits nothing: its payer reclaims after the deadline.
func (d *due) admits(c *otp.Coin) error {
	switch {
	case d == nil:
		return fmt.Errorf("%w: the key's change agreement names no coin", ErrNotAgreed)
	case c.Data.Value != d.Value || c.Data.Currency != d.Currency || c.Data.Program != d.Program:
		return fmt.Errorf("%w: a %d %s coin of program %q arrived on a key agreed for %d %s of program %q",
			ErrNotAgreed, c.Data.Value, c.Data.Currency, c.Data.Program, d.Value, d.Currency, d.Program)
	}
	return nil
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
	if a != nil && len(a.Send) != n {
		return nil, fmt.Errorf("promise exchange keys: %d coins agreed for %d keys", len(a.Send), n)
	}
	var keys []otp.ExchangeKey
	err := v.update(ctx, func(t *tx) error {
		var err error
		keys, err = t.firstKeys(n)
		if err != nil {
			return err
		}
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
		return t.promise(keys, agreement, a)
	})
	if err != nil {
		return nil, fmt.Errorf("promise exchange keys: %w", err)
	}
	return keys, nil
}

// PromiseKeys records as promised exactly the given exchange keys, which
// OfferExchangeKeys listed: a payer lists keys for the change it asks
// for, and promises those the payee agreed to seal change to, before it
// seals anything. A key no longer certified and unused is refused, and
// then none is promised.
func (v *Vault) PromiseKeys(ctx context.Context, keys []otp.ExchangeKey) error {
	err := v.update(ctx, func(t *tx) error {
		for i := range keys {
			if _, _, state, err := t.key(keys[i].Pub); err != nil {
				return err
			} else if state != keyCertified {
				return fmt.Errorf("key %.12s: %w: %s, not certified", keys[i].Pub, ErrState, state)
			}
		}
		return t.promise(keys, nil, nil)
	})
	if err != nil {
		return fmt.Errorf("promise exchange keys: %w", err)
	}
	return nil
}

// promise records keys as promised, under the agreement with id agreement
// when a is not nil, each bound to the coin a proposes for it.
func (t *tx) promise(keys []otp.ExchangeKey, agreement []byte, a *ChangeAgreement) error {
	for i := range keys {
		id, k, _, err := t.key(keys[i].Pub)
		if err != nil {
			return err
		}
		k.Agreement = agreement
		if a != nil {
			k.Due = &due{Value: a.Send[i], Currency: a.Currency, Program: a.Program}
		}
		if err := t.put(kindKey, id, keyPromised, nil, k); err != nil {
			return err
		}
	}
	return nil
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
