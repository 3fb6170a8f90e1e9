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
