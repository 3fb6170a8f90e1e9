package vault

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"github.com/otpcash/otpcash/otp"
)

// newReclaim makes a reclaim key for the sealed coin sb and has the holder
// key that sealed it authorise it, before that key is destroyed.
func newReclaim(sb *otp.Sandbox, holder ed25519.PrivateKey) (*reclaimRecord, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	auth, err := sb.ReclaimAuthorization(holder, pub)
	if err != nil {
		return nil, err
	}
	return &reclaimRecord{Auth: auth, Seed: priv.Seed()}, nil
}

// ReclaimItem is a coin pending-out with what the bank needs to credit it
// back to the payer's account: the authorisation, the reclaim key and its
// signature of the request.
type ReclaimItem struct {
	Sandbox otp.Sandbox
	Auth    string
	Key     string
	Proof   string
}

// ReclaimItems returns, for every coin sealed by this vault whose receipt
// never came back and that deadline reports reclaimable, the request to
// credit it to account.
func (v *Vault) ReclaimItems(ctx context.Context, account string, reclaimable func(*otp.Coin) bool) ([]ReclaimItem, error) {
	var items []ReclaimItem
	err := v.update(ctx, func(t *tx) error {
		rows, err := list[holding](t, kindCoin, byState, string(PendingOut))
		if err != nil {
			return err
		}
		for _, r := range rows {
			h := r.val
			if h.Reclaim == nil || !reclaimable(&h.Sandbox.Coin) {
				continue
			}
			priv := ed25519.NewKeyFromSeed(h.Reclaim.Seed)
			proof, err := h.Sandbox.ReclaimProof(priv, account)
			if err != nil {
				return err
			}
			items = append(items, ReclaimItem{Sandbox: h.Sandbox, Auth: h.Reclaim.Auth,
				Key: otp.EncodeKey(priv.Public().(ed25519.PublicKey)), Proof: proof})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reclaim items: %w", err)
	}
	return items, nil
}

// SettleReclaim records the outcome of a reclaim for the coins with the
// given tokens, which must be pending-out: reclaimed (the bank credited
// them back), or spent (the bank says the payee deposited them).
func (v *Vault) SettleReclaim(ctx context.Context, tokens []string, reclaimed bool) error {
	state := Spent
	if reclaimed {
		state = Reclaimed
	}
	err := v.update(ctx, func(t *tx) error {
		for _, tok := range tokens {
			last, err := t.latest(tok)
			if err != nil {
				return err
			}
			if State(last.state) == state {
				continue
			}
			if State(last.state) != PendingOut {
				return fmt.Errorf("coin %.12s: %w: %s, not pending-out", tok, ErrState, last.state)
			}
			h := last.val
			h.Reclaim = nil // the key can sign nothing more of use
			if err := t.putHolding(last.id, state, &h); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("settle reclaim: %w", err)
	}
	return nil
}
