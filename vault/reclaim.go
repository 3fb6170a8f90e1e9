package vault

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"github.com/otpcash/otpcash/otp"
)

// reclaimKey is the reclaim key of one sealing transaction: every coin
// sealed together is reclaimed with it, each under its own authorisation.
// A key per coin would cost a scalar base multiplication per coin and hide
// nothing: a reclaim credits the coins back to the payer's own account,
// which the bank sees anyway (docs/PRIVACY.md).
type reclaimKey struct {
	pub  ed25519.PublicKey
	seed []byte
}

func newReclaimKey() (reclaimKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return reclaimKey{}, err
	}
	return reclaimKey{pub: pub, seed: priv.Seed()}, nil
}

// authorize has the holder key that sealed sb authorise r to reclaim it,
// before that key is destroyed. The authorisation covers sb's checksum,
// so it cannot serve for another coin sealed with the same key.
func (r reclaimKey) authorize(sb *otp.Sandbox, holder ed25519.PrivateKey) (*reclaimRecord, error) {
	auth, err := sb.ReclaimAuthorization(holder, r.pub)
	if err != nil {
		return nil, err
	}
	return &reclaimRecord{Auth: auth, Seed: r.seed}, nil
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
		keys := make(map[string]ed25519.PrivateKey) // coins sealed together share a key
		for _, r := range rows {
			h := r.val
			if h.Reclaim == nil || !reclaimable(&h.Sandbox.Coin) {
				continue
			}
			priv, ok := keys[string(h.Reclaim.Seed)]
			if !ok {
				priv = ed25519.NewKeyFromSeed(h.Reclaim.Seed)
				keys[string(h.Reclaim.Seed)] = priv
			}
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
