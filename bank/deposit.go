package bank

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/storage"
	"github.com/otpcash/otpcash/internal/fault"
	"github.com/otpcash/otpcash/otp"
)

// checkedCoin is a deposited coin after the checks that need no database.
type checkedCoin struct {
	sandbox *otp.Sandbox
	result  api.DepositResult // final when refused
	spent   storage.SpentCoin
}

// deposit credits the coins of req to req.Account. The coins are verified
// in parallel, outside any transaction, then entered into the spent set
// and credited in one transaction with a few batched statements. Each
// coin gets its own result; refused coins change nothing (except that a
// double deposit is recorded as evidence). A retry of the same request
// credits nothing twice: its coins come back already_credited.
func (b *Bank) deposit(ctx context.Context, req api.DepositRequest) (api.DepositResponse, error) {
	now := b.now()
	ring, err := b.keyring(ctx, now)
	if err != nil {
		return api.DepositResponse{}, fmt.Errorf("deposit: %w", err)
	}
	checked, err := b.checkCoins(ctx, ring.verifier, req, now)
	if err != nil {
		return api.DepositResponse{}, fmt.Errorf("deposit: %w", err)
	}
	return b.credit(ctx, req.Account, checked, "deposit", now)
}

// referencePrefix names, at the head of a credit's ledger reference, what
// credited it, so that an account's history tells a reclaim from a
// recovery (both were "rec-" before).
var referencePrefix = map[string]string{"deposit": "dep-", "reclaim": "rcl-", "recovery": "rcv-"}

// credit enters the coins that passed their checks into the spent set and
// credits their value to account; what is logged and counted is named op
// (a key of referencePrefix). Concurrent credits share write
// transactions (creditGroup), each with the effect it would have alone.
func (b *Bank) credit(ctx context.Context, account string, checked []checkedCoin, op string, now time.Time) (api.DepositResponse, error) {
	prefix, ok := referencePrefix[op]
	if !ok {
		panic("bank: credit by unknown operation " + op) // only a bug gets here
	}
	c := &creditCall{account: account, checked: checked, reference: prefix + randomText(12), now: now, done: make(chan bool, 1)}
	b.credits.do(c, func(batch []*creditCall) { b.commitCredits(ctx, batch) })
	if errors.Is(c.err, storage.ErrNotFound) {
		return api.DepositResponse{}, unknownAccount(account)
	}
	if c.err != nil {
		return api.DepositResponse{}, fmt.Errorf("%s to %s: %w", op, account, c.err)
	}
	fault.Point(fault.BankDeposited)
	resp := c.resp
	for _, r := range resp.Results {
		if r.Conflict != nil {
			b.log.WarnContext(ctx, "double deposit refused", "account", account, "token", short(r.Token),
				"key", short(r.Conflict.Key), "index", r.Conflict.Index)
		}
	}
	counts := map[string]int{}
	for _, r := range resp.Results {
		counts[r.Status]++
	}
	b.metrics.deposited(resp.Results)
	b.log.InfoContext(ctx, op, "account", account, "reference", c.reference, "credited", counts[api.StatusCredited],
		"alreadyCredited", counts[api.StatusAlreadyCredited], "refused", counts[api.StatusRefused])
	return resp, nil
}

// creditCall is one credit: its coins and, once committed, its outcome.
type creditCall struct {
	account   string
	checked   []checkedCoin
	reference string
	now       time.Time

	resp api.DepositResponse
	err  error
	// done receives true when another call's transaction has committed
	// this one (resp and err are set), false when this call is to lead.
	done chan bool
}

// creditTimeout bounds the write transaction of a group of credits. It
// does not end with the request that leads the group, whose client may
// be gone while the others wait.
const creditTimeout = time.Minute

// commitCredits commits every call of batch, setting its resp or err.
// The calls share one transaction: one commit (one fsync, one turn of
// SQLite's single writer, one PostgreSQL transaction instead of many
// rivals that abort one another) for many requests. The calls run in
// order, each seeing the spends of those before it, exactly as one
// transaction each would. If the shared transaction fails, nothing of it
// is committed, and each call runs alone to get its own outcome (an
// unknown account fails only its call; had a failed commit in fact
// succeeded, each call finds its coins already credited, as a retry does).
func (b *Bank) commitCredits(ctx context.Context, batch []*creditCall) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), creditTimeout)
	defer cancel()
	if len(batch) > 1 {
		err := b.st.Update(ctx, func(tx storage.Tx) error {
			for _, c := range batch {
				if err := b.creditTx(ctx, tx, c); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			return
		}
	}
	for _, c := range batch {
		c.err = b.st.Update(ctx, func(tx storage.Tx) error { return b.creditTx(ctx, tx, c) })
	}
}

// creditTx spends c's coins and credits their value in tx, setting
// c.resp afresh: the store may run a transaction again.
func (b *Bank) creditTx(ctx context.Context, tx storage.Tx, c *creditCall) error {
	c.resp = api.DepositResponse{Results: make([]api.DepositResult, len(c.checked))}
	if err := b.spendAll(ctx, tx, c.checked, c.resp.Results, c.reference, c.now); err != nil {
		return err
	}
	var total int64
	for i, r := range c.resp.Results {
		if r.Status == api.StatusCredited {
			total += c.checked[i].spent.Value
		}
	}
	if total == 0 {
		a, err := tx.Account(ctx, c.account)
		c.resp.Balance = a.Balance
		return err
	}
	var err error
	c.resp.Balance, err = tx.Post(ctx, storage.Entry{Account: c.account, Time: c.now, Kind: storage.KindDeposit, Amount: total, Reference: c.reference})
	return err
}

// maxGroupCoins bounds the coins of one group of credits, so that a
// transaction stays of the size of a few requests.
const maxGroupCoins = storage.MaxBatch

// creditGroup lets concurrent credits share write transactions. A call
// that finds no group committing leads: it commits every call queued so
// far, its own first, then hands the lead to the first call queued during
// its commit. So one transaction is in progress at a time, and the calls
// that arrive meanwhile wait for the next one instead of queuing, one
// transaction each, for the store's write lock.
type creditGroup struct {
	mu      sync.Mutex
	queue   []*creditCall
	leading bool // a call is committing; false only with an empty queue
}

// do returns when c has been committed, by commit run on this goroutine
// or on another's.
func (g *creditGroup) do(c *creditCall, commit func(batch []*creditCall)) {
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if g.leading {
		g.mu.Unlock()
		if committed := <-c.done; committed {
			return
		}
		g.mu.Lock() // c leads, first in the queue
	}
	g.leading = true
	n, coins := 1, len(g.queue[0].checked)
	for ; n < len(g.queue) && coins+len(g.queue[n].checked) <= maxGroupCoins; n++ {
		coins += len(g.queue[n].checked)
	}
	batch := g.queue[:n:n]
	g.queue = slices.Clone(g.queue[n:])
	g.mu.Unlock()

	commit(batch)

	g.mu.Lock()
	if len(g.queue) > 0 {
		g.queue[0].done <- false
	} else {
		g.leading = false
	}
	g.mu.Unlock()
	for _, m := range batch[1:] {
		m.done <- true
	}
}

// CheckDeposit runs the checks of a deposit that need no database (every
// signature, the chains, the deadlines and the holders' proofs, in
// parallel on all cores, as a deposit does) and returns how many coins
// pass. It changes nothing; `otpcash-bench bank` measures with it the
// verification bound of deposits.
func (b *Bank) CheckDeposit(ctx context.Context, req api.DepositRequest) (int, error) {
	now := b.now()
	ring, err := b.keyring(ctx, now)
	if err != nil {
		return 0, fmt.Errorf("check deposit: %w", err)
	}
	checked, err := b.checkCoins(ctx, ring.verifier, req, now)
	if err != nil {
		return 0, fmt.Errorf("check deposit: %w", err)
	}
	n := 0
	for _, c := range checked {
		if c.result.Status == "" {
			n++
		}
	}
	return n, nil
}

// checkCoins verifies every coin of the request on its own: signatures,
// chain, deposit deadline and the holder's proof for this account. The
// signature checks dominate the cost of a deposit, so they run in
// parallel, a chunk of coins at a time as one batch (checkChunk), outside
// any transaction, each worker holding one of the
// bank's verifySlots until the request's coins are done. However many
// requests arrive at once, no more coins are verified at a time than
// there are cores, and the requests are verified about one after another
// rather than all together: each request reaches its commit as soon as
// it can, while the next ones are verified, and the goroutine committing
// deposits competes with that many workers, not with every request's.
// A request whose context ends (its client left, or the server's
// deadline passed) stops waiting for slots and verifying: it returns the
// context's error, and nothing of it is credited.
func (b *Bank) checkCoins(ctx context.Context, v *otp.Verifier, req api.DepositRequest, now time.Time) ([]checkedCoin, error) {
	out := make([]checkedCoin, len(req.Coins))
	workers := min(cap(b.verifySlots), len(req.Coins))
	size := 1
	if workers > 0 {
		size = min(verifyChunk, (len(req.Coins)+workers-1)/workers)
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			select {
			case b.verifySlots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-b.verifySlots }()
			for lo := range next {
				checkChunk(v, req.Coins[lo:min(lo+size, len(req.Coins))], out[lo:], req.Account, now)
			}
		})
	}
feed:
	for lo := 0; lo < len(req.Coins); lo += size {
		select {
		case next <- lo:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// verifyChunk is the most coins a worker verifies as one batch of
// signatures (four or so a coin): enough for a batch to cost about half
// of single checks (BenchmarkEd25519), few enough that a request's coins
// still spread over every verifySlot.
const verifyChunk = 64

// checkChunk judges the coins dcs into out[i] for each dcs[i], each on its
// own, with the signatures of all of them verified as one batch.
func checkChunk(v *otp.Verifier, dcs []api.DepositCoin, out []checkedCoin, account string, now time.Time) {
	ss, proofs := make([]*otp.Sandbox, len(dcs)), make([]string, len(dcs))
	for i := range dcs {
		ss[i], proofs[i] = &dcs[i].Sandbox, dcs[i].Proof
	}
	sandboxErrs, proofErrs := v.VerifyDeposits(ss, proofs, account)
	for i := range dcs {
		out[i] = checkCoin(v, ss[i], sandboxErrs[i], proofErrs[i], account, now)
	}
}

// checkCoin judges one coin whose sandbox and deposit proof were verified
// with the errors sandboxErr and proofErr, in the order a holder is told
// what is wrong: the coin and its chain, its deadline, its conditions,
// then the proof.
func checkCoin(v *otp.Verifier, sb *otp.Sandbox, sandboxErr, proofErr error, account string, now time.Time) checkedCoin {
	c := checkedCoin{sandbox: sb, result: api.DepositResult{Token: sb.Coin.Data.Token}}
	if sandboxErr != nil {
		return c.refuse(refusalCode(sandboxErr), sandboxErr)
	}
	if err := v.CheckDepositable(&sb.Coin, now); err != nil {
		return c.refuse(api.CodeExpired, err)
	}
	// The bank judges the transfer that brought the coin to the depositor:
	// the attributes of the last exchange key and the hop count. It does
	// not know the payment, so payment.amount is 0 and payment.memo "".
	if err := sb.CheckConditions(otp.Payment{}, now); err != nil {
		return c.refuse(api.CodeCondition, err)
	}
	if proofErr != nil {
		return c.refuse(api.CodeInvalidProof, proofErr)
	}
	return c.accept(account)
}

// chainHash identifies a verified sandbox: its coin by the checksum, and
// each link by its signature, which covers the link's checksum, index and
// exchange key.
func chainHash(sb *otp.Sandbox) []byte {
	h := sha256.New()
	h.Write([]byte(sb.Coin.Checksum))
	for _, l := range sb.Chain {
		h.Write([]byte{0})
		h.Write([]byte(l.Sig))
	}
	return h.Sum(nil)
}

// accept records the checked coin's entry in the spent set, keeping its
// sandbox as evidence, to be credited to account.
func (c checkedCoin) accept(account string) checkedCoin {
	sb := c.sandbox
	evidence, err := json.Marshal(sb)
	if err != nil {
		return c.refuse(api.CodeInvalidCoin, err)
	}
	c.spent = storage.SpentCoin{
		Serial: sb.Coin.Data.Token, KeyID: sb.Coin.Data.KeyID, Value: sb.Coin.Data.Value,
		Account: account, ChainHash: chainHash(sb), Sandbox: evidence,
	}
	return c
}

func (c checkedCoin) refuse(code string, err error) checkedCoin {
	c.result.Status, c.result.Code, c.result.Message = api.StatusRefused, code, err.Error()
	return c
}

func refusalCode(err error) string {
	switch {
	case errors.Is(err, otp.ErrChain):
		return api.CodeInvalidChain
	case errors.Is(err, otp.ErrUnknownIssuer), errors.Is(err, otp.ErrUnknownKey):
		return api.CodeUnknownIssuer
	case errors.Is(err, otp.ErrExpired):
		return api.CodeExpired
	}
	return api.CodeInvalidCoin
}

// spendAll enters the coins that passed the checks into the spent set, in
// one batch, and writes each coin's result into results. The spent set's
// uniqueness decides: a coin seen before with the same chain and account
// is a retry; any other earlier deposit makes this one a double deposit.
func (b *Bank) spendAll(ctx context.Context, tx storage.Tx, checked []checkedCoin, results []api.DepositResult, reference string, now time.Time) error {
	// A coin signed in the clear is also matched against the bank's record
	// of it. A blind-signed coin cannot be: the bank never saw it, and its
	// valid signature under a coin key is the proof it was issued; the
	// audit compares the coins of each key issued and spent.
	var serials []string
	for i := range checked {
		if results[i] = checked[i].result; results[i].Status == "" && !blindSigned(&checked[i]) {
			serials = append(serials, checked[i].spent.Serial)
		}
	}
	issued, err := tx.Issued(ctx, serials)
	if err != nil {
		return err
	}
	var pending []int
	var coins []storage.SpentCoin
	for i := range checked {
		c := &checked[i]
		if results[i].Status != "" {
			continue
		}
		if is, ok := issued[c.spent.Serial]; !blindSigned(c) && (!ok || is.Checksum != c.sandbox.Coin.Checksum) {
			// Validly signed yet not what the bank issued: only a leaked
			// key or a tampered database can do that.
			b.log.ErrorContext(ctx, "validly signed coin that was never issued", "token", short(c.spent.Serial), "keyId", c.spent.KeyID)
			results[i] = c.refuse(api.CodeUnknownCoin, errors.New("this bank never issued this coin")).result
			continue
		}
		s := c.spent
		s.Reference, s.Deposited = reference, now
		pending, coins = append(pending, i), append(coins, s)
	}
	if len(coins) == 0 {
		return nil
	}
	spent, err := tx.InsertSpent(ctx, coins)
	if err != nil {
		return err
	}
	for j, sr := range spent {
		i := pending[j]
		switch s, first := coins[j], sr.Stored; {
		case sr.Inserted:
			results[i].Status = api.StatusCredited
		case first.Account == s.Account && bytes.Equal(first.ChainHash, s.ChainHash):
			results[i].Status = api.StatusAlreadyCredited
		default:
			if results[i], err = b.doubleDeposit(ctx, tx, &checked[i], s, first, now); err != nil {
				return err
			}
		}
	}
	return nil
}

func blindSigned(c *checkedCoin) bool { return c.sandbox.Coin.Signature.Alg == otp.AlgBlindRSA }

// doubleDeposit refuses s, a deposit of a coin already spent as first,
// and records both chains as evidence.
func (b *Bank) doubleDeposit(ctx context.Context, tx storage.Tx, c *checkedCoin, s, first storage.SpentCoin, now time.Time) (api.DepositResult, error) {
	r := c.result
	firstSandbox, err := otp.ParseSandbox(first.Sandbox)
	if err != nil {
		return r, fmt.Errorf("stored sandbox of %s: %w", short(s.Serial), err)
	}
	// Both sandboxes carry the coin the bank issued (checked above), so
	// Divergence always finds the key.
	key, index, _ := otp.Divergence(firstSandbox, c.sandbox)
	err = tx.InsertConflict(ctx, storage.Conflict{
		Serial: s.Serial, Key: key, Index: index, Account: s.Account,
		ChainHash: s.ChainHash, Sandbox: s.Sandbox, Detected: now,
	})
	if err != nil && !errors.Is(err, storage.ErrDuplicate) {
		return r, err
	}
	r.Status, r.Code = api.StatusRefused, api.CodeDoubleDeposit
	r.Message = fmt.Sprintf("coin already deposited with another chain or to another account; key %s signed for it twice, as holder %d", key, index)
	r.Conflict = &api.ConflictKey{Key: key, Index: index}
	return r, nil
}

// conflicts returns the evidence of every refused double deposit.
func (b *Bank) conflicts(ctx context.Context) (api.Conflicts, error) {
	var stored []storage.Conflict
	err := b.st.View(ctx, func(tx storage.Tx) (err error) {
		stored, err = tx.Conflicts(ctx)
		return err
	})
	if err != nil {
		return api.Conflicts{}, fmt.Errorf("conflicts: %w", err)
	}
	out := api.Conflicts{Conflicts: make([]api.Conflict, len(stored))}
	for i, c := range stored {
		first, err := otp.ParseSandbox(c.First.Sandbox)
		if err != nil {
			return api.Conflicts{}, fmt.Errorf("conflict on %s: first sandbox: %w", short(c.Serial), err)
		}
		second, err := otp.ParseSandbox(c.Sandbox)
		if err != nil {
			return api.Conflicts{}, fmt.Errorf("conflict on %s: second sandbox: %w", short(c.Serial), err)
		}
		out.Conflicts[i] = api.Conflict{
			Token: c.Serial, Key: c.Key, Index: c.Index,
			FirstAccount: c.First.Account, SecondAccount: c.Account, Detected: c.Detected,
			First: *first, Second: *second,
		}
	}
	return out, nil
}
