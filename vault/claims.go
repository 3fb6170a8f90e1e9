package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/otpcash/otpcash/otp"
)

// Claims are the coins of a lost wallet recovered from its backup, waiting
// to be claimed at the bank for Account after their deposit deadline
// (wallet.Recover): claims, never coins, so nothing can select, pay, offer
// or deposit them offline.
type Claims struct {
	Account string
	// Coins are the claims: each coin as backed up, its holder's
	// authorisation of the recovery key, that key, and the key's proof
	// for Account.
	Coins []ReclaimItem
}

// claimsSetting is where the claims are stored: their name from before
// records were typed, which vaults hold, kept.
const claimsSetting = "recovery/claims"

// claimsVersion is the version of the stored claims: 1, the first with a
// version. Claims without one (0) are the previous release's, the bank's
// request type stored as it was; the fields are the same.
const claimsVersion = 1

// claimsRecord is Claims as stored; version 0 lacks V.
type claimsRecord struct {
	V       int           `json:"v,omitempty"`
	Account string        `json:"account"`
	Coins   []claimRecord `json:"coins"`
}

type claimRecord struct {
	Sandbox       otp.Sandbox `json:"sandbox"`
	Authorization string      `json:"authorization"`
	Key           string      `json:"key"`
	Proof         string      `json:"proof"`
}

func decodeClaims(b []byte) (Claims, error) {
	var rec claimsRecord
	if err := strictJSON(b, &rec); err != nil {
		return Claims{}, err
	}
	if rec.V > claimsVersion || rec.V < 0 {
		return Claims{}, fmt.Errorf("version %d: written by a newer release", rec.V)
	}
	c := Claims{Account: rec.Account, Coins: make([]ReclaimItem, len(rec.Coins))}
	for i, r := range rec.Coins {
		if r.Authorization == "" || r.Key == "" || r.Proof == "" {
			return Claims{}, fmt.Errorf("claim %d (coin %.12s): no authorisation, key or proof", i, r.Sandbox.Coin.Data.Token)
		}
		c.Coins[i] = ReclaimItem{Sandbox: r.Sandbox, Auth: r.Authorization, Key: r.Key, Proof: r.Proof}
	}
	if c.Account == "" && len(c.Coins) > 0 {
		return Claims{}, errors.New("claims for no account")
	}
	return c, nil
}

func (c *Claims) encode() ([]byte, error) {
	rec := claimsRecord{V: claimsVersion, Account: c.Account, Coins: make([]claimRecord, len(c.Coins))}
	for i, it := range c.Coins {
		rec.Coins[i] = claimRecord{Sandbox: it.Sandbox, Authorization: it.Auth, Key: it.Key, Proof: it.Proof}
	}
	return json.Marshal(rec)
}

// RecoveryClaims returns the claims waiting for the bank, in whichever
// version they were stored; none (and no error) if there are none.
func (v *Vault) RecoveryClaims(ctx context.Context) (Claims, error) {
	var b []byte
	err := v.update(ctx, func(t *tx) error {
		_, err := t.get(kindSetting, t.s.id(kindSetting, []byte(claimsSetting)), &b)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return Claims{}, nil
	}
	if err != nil {
		return Claims{}, fmt.Errorf("recovery claims: %w", err)
	}
	c, err := decodeClaims(b)
	if err != nil {
		return Claims{}, fmt.Errorf("recovery claims: %w", err)
	}
	return c, nil
}

// SetRecoveryClaims replaces the claims waiting for the bank with c.
func (v *Vault) SetRecoveryClaims(ctx context.Context, c Claims) error {
	b, err := c.encode()
	if err != nil {
		return fmt.Errorf("set recovery claims: %w", err)
	}
	err = v.update(ctx, func(t *tx) error {
		return t.put(kindSetting, t.s.id(kindSetting, []byte(claimsSetting)), "", nil, b)
	})
	if err != nil {
		return fmt.Errorf("set recovery claims: %w", err)
	}
	return nil
}
