package bank

import (
	"context"

	"github.com/otpcash/otpcash/bank/api"
)

// HoldCertifyWorkers takes every certification worker until release is
// called: a stand-in for certification requests keeping them all busy.
func (b *Bank) HoldCertifyWorkers() (release func()) { return holdAll(b.certifySlots) }

// HoldVerifySlots takes every verification slot until release is called:
// a stand-in for deposits keeping every core busy.
func (b *Bank) HoldVerifySlots() (release func()) { return holdAll(b.verifySlots) }

func holdAll(slots chan struct{}) (release func()) {
	for range cap(slots) {
		slots <- struct{}{}
	}
	return func() {
		for range cap(slots) {
			<-slots
		}
	}
}

// DepositDirect is a deposit as the HTTP handler makes it, with the
// caller's context.
func (b *Bank) DepositDirect(ctx context.Context, req api.DepositRequest) (api.DepositResponse, error) {
	return b.deposit(ctx, req)
}

// Routes lists what the bank serves, as "METHOD /path" mux patterns.
func (b *Bank) Routes() []string {
	var out []string
	for _, rt := range b.routes() {
		out = append(out, rt.method+" "+rt.path)
	}
	return out
}

// DepositTogether checks the coins of each request as a deposit does and
// commits them all as one group of concurrent deposits would be: each
// request gets its own response or error.
func (b *Bank) DepositTogether(ctx context.Context, reqs []api.DepositRequest) ([]api.DepositResponse, []error) {
	now := b.now()
	ring, err := b.keyring(ctx, now)
	if err != nil {
		panic(err)
	}
	batch := make([]*creditCall, len(reqs))
	for i, req := range reqs {
		checked, err := b.checkCoins(ctx, ring.verifier, req, now)
		if err != nil {
			panic(err)
		}
		batch[i] = &creditCall{account: req.Account, checked: checked, reference: "dep-" + randomText(12), now: now}
	}
	b.commitCredits(ctx, batch)
	resps, errs := make([]api.DepositResponse, len(reqs)), make([]error, len(reqs))
	for i, c := range batch {
		resps[i], errs[i] = c.resp, c.err
	}
	return resps, errs
}

// VerifySlotsInUse is how many of the bank's verification slots are held.
func (b *Bank) VerifySlotsInUse() int { return len(b.verifySlots) }
