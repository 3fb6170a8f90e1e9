package bank

import (
	"context"
	"fmt"
	"time"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/otp"
)

// reclaim credits back to req.Account the sealed coins of req whose payee
// never deposited them, once their deposit deadline has passed: from then
// on nobody else can deposit them. Each coin's payer proves it is the
// payer with the reclaim key its holder key authorised when it sealed the
// coin. A reclaimed coin enters the spent set like a deposited one, with
// its sealed chain, so a later deposit by the payee (to another account)
// is refused as a double deposit, and a reclaim of a coin the payee
// deposited in time is refused the same way.
func (b *Bank) reclaim(ctx context.Context, req api.ReclaimRequest) (api.DepositResponse, error) {
	now := b.now()
	ring, err := b.keyring(ctx, now)
	if err != nil {
		return api.DepositResponse{}, fmt.Errorf("reclaim: %w", err)
	}
	checked := make([]checkedCoin, len(req.Coins))
	for i := range req.Coins {
		checked[i] = checkReclaim(ring.verifier, &req.Coins[i], req.Account, now)
	}
	return b.credit(ctx, req.Account, checked, "reclaim", now)
}

func checkReclaim(v *otp.Verifier, rc *api.ReclaimCoin, account string, now time.Time) checkedCoin {
	sb := &rc.Sandbox
	c := checkedCoin{sandbox: sb, result: api.DepositResult{Token: sb.Coin.Data.Token}}
	if err := v.VerifySandbox(sb); err != nil {
		return c.refuse(refusalCode(err), err)
	}
	if err := v.CheckDepositable(&sb.Coin, now); err == nil {
		return c.refuse(api.CodeNotYet, fmt.Errorf("coin %s can still be deposited by its payee: reclaim it after its deposit deadline", sb.Coin.Data.Token))
	}
	if err := sb.VerifyReclaim(rc.Authorization, rc.Key, rc.Proof, account); err != nil {
		return c.refuse(api.CodeInvalidProof, err)
	}
	return c.accept(account)
}

// recover credits to req.Account the coins of a lost wallet that nobody
// deposited, reclaimed or recovered, once their deposit deadline has
// passed, as reclaim does for sealed coins. The claimant proves the coin
// was its own with the recovery key the coin's holder key authorised for
// the coin with the chain it claims. The coin enters the spent set with
// that chain: the same claim again is already_credited; any other claim or
// deposit of the coin is refused as a double deposit, and the conflict
// names the key that signed for the coin twice: the claimant's holder key,
// if it had paid the coin on (docs/PROTOCOL.md).
func (b *Bank) recover(ctx context.Context, req api.RecoveryRequest) (api.DepositResponse, error) {
	now := b.now()
	ring, err := b.keyring(ctx, now)
	if err != nil {
		return api.DepositResponse{}, fmt.Errorf("recovery: %w", err)
	}
	checked := make([]checkedCoin, len(req.Coins))
	for i := range req.Coins {
		checked[i] = checkRecovery(ring.verifier, &req.Coins[i], req.Account, now)
	}
	return b.credit(ctx, req.Account, checked, "recovery", now)
}

func checkRecovery(v *otp.Verifier, rc *api.ReclaimCoin, account string, now time.Time) checkedCoin {
	sb := &rc.Sandbox
	c := checkedCoin{sandbox: sb, result: api.DepositResult{Token: sb.Coin.Data.Token}}
	if err := v.VerifySandbox(sb); err != nil {
		return c.refuse(refusalCode(err), err)
	}
	if err := v.CheckDepositable(&sb.Coin, now); err == nil {
		return c.refuse(api.CodeNotYet, fmt.Errorf("coin %s can still be deposited by whoever holds it: recover it after its deposit deadline", sb.Coin.Data.Token))
	}
	if err := sb.VerifyRecovery(rc.Authorization, rc.Key, rc.Proof, account); err != nil {
		return c.refuse(api.CodeInvalidProof, err)
	}
	return c.accept(account)
}
