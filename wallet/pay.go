package wallet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"

	"github.com/otpcash/otpcash/amount"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/internal/fault"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/p2p"
	"github.com/otpcash/otpcash/vault"
)

// Payment is the outcome of one offline session.
type Payment struct {
	Amount int64 // value paid or received in this session, net of change
	Coins  int   // coins paid or received
	Change int64 // change received (payer) or given (payee) in this session
	Resent int   // coins of an earlier broken session delivered first
	// Collected is the value the payer received, before paying, that an
	// earlier broken session left in flight towards it (change).
	Collected int64
	SAS       string // the short authentication string both screens showed
	Peer      string // the other wallet's identity key
}

// Pay pays value to the wallet listening at addr, offline: the only traffic
// is the encrypted session between the two wallets. Coins left in flight by
// an earlier broken session with the same payee are delivered first, in
// both directions.
//
// When the wallet cannot pay value exactly, the payee gives change in the
// same session: the payer plans the coins moved in both directions from
// its own coins and those the payee lists (denom.Best, fewest coins in
// all), proposes the plan with exchange keys of its own for the change,
// and seals exactly the agreed coins. A plan that neither side's coins can
// make is refused before anything is sealed, saying what is missing. A
// payee that keeps the payment without the agreed change, or gives other
// change, is reported (ErrChange, with the amounts) and recorded in the
// history; change it gave is kept.
//
// When Pay fails after coins were sealed, those coins stay pending-out and
// are re-sent on the next meeting; the error says so.
//
// Pay spends coins of one program: "general" unless WithProgram names
// another; change comes in coins of the same program. A coin whose
// program's conditions refuse this payee is refused before anything is
// sealed, with the condition and the values it saw (otp.ErrCondition), and
// stays held.
func (w *Wallet) Pay(ctx context.Context, addr string, value int64, memo string, opts ...Option) (Payment, error) {
	program := applyOptions(opts).program
	if value <= 0 {
		return Payment{}, fmt.Errorf("pay %d: %w: the amount must be positive", value, ErrAmount)
	}
	revIssued := w.trust.Load().revIssued
	if err := w.offlineTooLong("this wallet's", revIssued); err != nil {
		return Payment{}, fmt.Errorf("pay %s: %w", amount.Format(value), err)
	}
	held, err := w.payable(ctx, program)
	if err != nil {
		return Payment{}, fmt.Errorf("pay %s: %w", amount.Format(value), err)
	}
	if have := countsOf(held).Total(); have < value {
		return Payment{}, fmt.Errorf("pay %s: %w: have %s %s of program %q payable offline", amount.Format(value), ErrInsufficient, amount.Format(have), w.Currency(), program)
	}
	conn, payer, p, err := w.meet(ctx, addr)
	if err != nil {
		return p, fmt.Errorf("pay %s: %w", amount.Format(value), err)
	}
	defer conn.Close()
	// The coins this wallet holds change when resent or collected ones
	// settle: only then are they listed again.
	if p.Resent > 0 || p.Collected > 0 {
		if held, err = w.payable(ctx, program); err != nil {
			return p, fmt.Errorf("pay: %w", err)
		}
	}
	// The coins are chosen before the offer, which says the most
	// transfers any of them will have made.
	plan, err := denom.Best(value, countsOf(held), w.anyChange(program))
	if ue := (*denom.UnpayableError)(nil); errors.As(err, &ue) && ue.Nearest > value {
		err = fmt.Errorf("%w: cannot pay %s exactly: this wallet's coins reach %s at the nearest, and no coins of program %q make %s in change",
			denom.ErrUnpayable, amount.Format(value), amount.Format(ue.Nearest), program, amount.Format(ue.Nearest-value))
	}
	if err != nil {
		return p, fmt.Errorf("pay: %w: %w", ErrInsufficient, err)
	}
	coins := pick(held, plan.Send)
	offer := p2p.Offer{Amount: value, Currency: w.Currency(), Memo: memo, Program: program,
		RevocationsIssued: revIssued, MaxHops: maxHops(coins)}
	if err := payer.Offer(ctx, offer); err != nil {
		var re *p2p.RemoteError
		if errors.As(err, &re) {
			return p, fmt.Errorf("pay: %w: %s", ErrDeclined, re.Message)
		}
		return p, fmt.Errorf("pay: %w", err)
	}
	if plan.Change.Len() > 0 {
		if plan.Change, err = w.proposeChange(ctx, payer, coins, plan.Change); err != nil {
			return p, fmt.Errorf("pay %s with %s change: %w", amount.Format(value), amount.Format(plan.Change.Total()), err)
		}
	}
	purse := w.v.Purse(p.Peer)
	for _, batch := range byProgram(coins) {
		run := &otp.Run{Verifier: w.ver(), Now: w.now(), Peer: payer, Purse: purse, Coins: batch, Pipeline: w.pipeline,
			Payment: otp.Payment{Amount: value, Memo: memo}}
		err := otp.Execute(ctx, run)
		if run.Sealed != nil {
			w.emit(Event{Kind: EventSealed, Coins: len(run.Sealed), Peer: p.Peer})
		}
		if err != nil {
			if n := len(run.Sealed) - len(run.Acks); run.Sealed != nil && (run.Acks == nil || n > 0) {
				if run.Acks == nil {
					n = len(run.Sealed)
				}
				err = fmt.Errorf("%w (%d coins sealed to this payee stay pending-out and are re-sent when you meet again)", err, n)
			}
			return p, fmt.Errorf("pay: %w", err)
		}
		for _, s := range batch {
			p.Amount += s.Coin.Data.Value
		}
		p.Coins += len(batch)
		w.emit(Event{Kind: EventAcked, Coins: len(batch), Peer: p.Peer})
	}
	var changeErr error
	if plan.Change.Len() > 0 {
		p.Change, changeErr = w.takeChange(ctx, payer, p.Peer, plan.Change)
		p.Amount -= p.Change
	}
	w.record(ctx, HistoryEntry{Kind: HistoryPay, Amount: p.Amount, Peer: p.Peer, Detail: memo})
	if changeErr != nil {
		return p, fmt.Errorf("pay: %w", changeErr)
	}
	if err := payer.Done(ctx); err != nil {
		return p, fmt.Errorf("pay: coins delivered and acknowledged, closing the session: %w", err)
	}
	return p, nil
}

// Settle meets the wallet at addr only to deliver what earlier broken
// sessions with it left in flight, in both directions: this wallet's coins
// sealed to it are re-sent, and coins it sealed to this wallet (change,
// mostly) are collected. No payment is made; it needs no coins, so a
// wallet whose every coin is in flight can still get its change.
func (w *Wallet) Settle(ctx context.Context, addr string) (Payment, error) {
	conn, payer, p, err := w.meet(ctx, addr)
	if err != nil {
		return p, fmt.Errorf("settle: %w", err)
	}
	defer conn.Close()
	if err := payer.Done(ctx); err != nil {
		return p, fmt.Errorf("settle: %w", err)
	}
	return p, nil
}

// meet opens a session with the wallet at addr as the payer, once the
// user has confirmed the short authentication string, and delivers what
// earlier broken sessions with it left in flight: this wallet's coins,
// re-sent (which may complete a payment with change, and bring the
// change), then the peer's, collected. The caller closes the connection.
func (w *Wallet) meet(ctx context.Context, addr string) (*p2p.Conn, *p2p.Payer, Payment, error) {
	conn, err := w.dial(ctx, addr)
	if err != nil {
		return nil, nil, Payment{}, err
	}
	p := Payment{SAS: conn.SAS(), Peer: conn.PeerID()}
	payer, err := w.settleEarlier(ctx, conn, &p)
	if err != nil {
		conn.Close()
		return nil, nil, p, err
	}
	return conn, payer, p, nil
}

func (w *Wallet) settleEarlier(ctx context.Context, conn *p2p.Conn, p *Payment) (*p2p.Payer, error) {
	if err := w.confirmSAS(ctx, *p); err != nil {
		return nil, err
	}
	payer := p2p.NewPayer(conn)
	if _, err := payer.Hello(ctx, w.hello()); err != nil {
		return nil, err
	}
	var err error
	if p.Resent, err = w.resend(ctx, payer, p.Peer); err != nil {
		return nil, fmt.Errorf("re-send coins of an earlier session: %w", err)
	}
	change, err := w.takeChange(ctx, payer, p.Peer, nil)
	if err != nil {
		return nil, fmt.Errorf("change of an earlier session: %w", err)
	}
	if _, err := payer.Collect(ctx); err != nil {
		return nil, fmt.Errorf("collect coins of an earlier session: %w", err)
	}
	collected, err := w.takeChange(ctx, payer, p.Peer, nil)
	if err != nil {
		return nil, fmt.Errorf("collect coins of an earlier session: %w", err)
	}
	p.Collected = change + collected
	return payer, nil
}

// changeSlack is how many more change coins than the fewest the payer
// lets a payee give, one exchange key each: a payee short of the larger
// values can give the change in smaller coins.
const changeSlack = 8

// payable returns the coins of program this wallet may pay offline: held,
// payable, and within the bank's maxHops once paid, which a payee enforces.
func (w *Wallet) payable(ctx context.Context, program string) ([]otp.Sandbox, error) {
	held, err := w.v.Payable(ctx, w.Currency(), program)
	return w.offlinePayable(held), err
}

// anyChange is the change the payer plans with, knowing nothing of the
// payee's coins: any number of each value of the program, up to what the
// planner needs (bounded so that its tables stay small).
func (w *Wallet) anyChange(program string) denom.Counts {
	keys, err := w.cat().CoinKeys(program, w.now())
	if err != nil {
		return nil // no coin of the program is issued now; only exact payments
	}
	largest := keys[len(keys)-1].Value
	c := denom.Counts{}
	for _, k := range keys {
		c[k.Value] = int(min(max(2*largest/k.Value, 1), p2p.MaxBatch))
	}
	return c
}

// proposeChange asks the payee for the change of a plan that sends coins,
// offering exchange keys of this wallet for up to changeSlack more change
// coins than the plan's, and returns the change the payee agreed to give.
// The keys it agreed to are promised, before anything is sealed; the
// others stay this wallet's to offer. A payee that cannot give the change
// says only that: it never shows the payer its coins.
func (w *Wallet) proposeChange(ctx context.Context, payer *p2p.Payer, coins []otp.Sandbox, change denom.Counts) (denom.Counts, error) {
	have, err := w.v.ExchangeKeyCount(ctx)
	if err != nil {
		return nil, err
	}
	if have < change.Len() {
		return nil, fmt.Errorf("%w: receiving change takes %d of this wallet's exchange keys, it has %d; refill while online", ErrNoExchangeKeys, change.Len(), have)
	}
	keys, err := w.v.OfferExchangeKeys(ctx, min(have, change.Len()+changeSlack))
	if err != nil {
		return nil, err
	}
	send := make([]int64, len(coins))
	for i := range coins {
		send[i] = coins[i].Coin.Data.Value
	}
	agreed, err := payer.ProposeChange(ctx, p2p.ChangeProposal{Send: send, Keys: keys})
	if re := (*p2p.RemoteError)(nil); errors.As(err, &re) && re.Code == p2p.CodeRefused {
		return nil, fmt.Errorf("%w: %s", ErrDeclined, re.Message)
	}
	if err != nil {
		return nil, err
	}
	if err := w.v.PromiseKeys(ctx, keys[:len(agreed)]); err != nil {
		return nil, err
	}
	return denom.CountsOf(agreed), nil
}

// takeChange verifies and stores the coins the payee sealed to this
// wallet (the change agreed, want, or coins left from an earlier session
// when want is nil), sends the receipts, and returns their value. Change
// that is missing or other than agreed is reported with the amounts and
// recorded in the history; valid coins are kept whatever they are.
func (w *Wallet) takeChange(ctx context.Context, payer *p2p.Payer, peer string, want denom.Counts) (int64, error) {
	coins := payer.Change()
	if len(coins) == 0 {
		if want == nil {
			return 0, nil
		}
		err := fmt.Errorf("%w: the payee acknowledged the payment and sent no change; it owes %s (%s)", ErrChange, amount.Format(want.Total()), want)
		w.record(ctx, HistoryEntry{Kind: HistoryChangeMissing, Amount: want.Total(), Peer: peer, Detail: err.Error()})
		return 0, err
	}
	fault.Point(fault.PayerChange)
	now := w.now()
	if err := w.ver().VerifyReceived(coins, nil); err != nil {
		w.record(ctx, HistoryEntry{Kind: HistoryChangeRefused, Peer: peer, Detail: err.Error()})
		return 0, fmt.Errorf("%w: the payee's change is invalid: %w", ErrChange, err)
	}
	for i := range coins {
		err := coins[i].CheckConditions(otp.Payment{}, now)
		if err == nil {
			err = w.tooManyHops(fmt.Sprintf("change coin %.12s", coins[i].Coin.Data.Token), coins[i].Hops())
		}
		if err != nil {
			w.record(ctx, HistoryEntry{Kind: HistoryChangeRefused, Peer: peer, Detail: err.Error()})
			return 0, fmt.Errorf("%w: the payee's change is refused: %w", ErrChange, err)
		}
	}
	acks, _, err := w.v.Receive(ctx, peer, coins)
	if err != nil {
		return 0, fmt.Errorf("store change: %w", err)
	}
	fault.Point(fault.PayerChangeKept)
	if err := payer.SettleChange(ctx, acks); err != nil {
		return 0, err
	}
	got := countsOf(coins)
	w.emit(Event{Kind: EventChange, Amount: got.Total(), Coins: len(coins), Peer: peer})
	w.record(ctx, HistoryEntry{Kind: HistoryChange, Amount: got.Total(), Peer: peer})
	if want != nil && !maps.Equal(got, want) {
		err := fmt.Errorf("%w: the payee sent %s (%s) in change, not the %s (%s) agreed", ErrChange,
			amount.Format(got.Total()), got, amount.Format(want.Total()), want)
		w.record(ctx, HistoryEntry{Kind: HistoryChangeMismatch, Amount: want.Total() - got.Total(), Peer: peer, Detail: err.Error()})
		return got.Total(), err
	}
	return got.Total(), nil
}

// countsOf counts coins by value.
func countsOf(coins []otp.Sandbox) denom.Counts {
	c := denom.Counts{}
	for i := range coins {
		c[coins[i].Coin.Data.Value]++
	}
	return c
}

// pick takes from held, which is in Payable's order, the coins of each
// value want asks for: those expiring first.
func pick(held []otp.Sandbox, want denom.Counts) []otp.Sandbox {
	left := maps.Clone(want)
	var out []otp.Sandbox
	for _, c := range held {
		if v := c.Coin.Data.Value; left[v] > 0 {
			left[v]--
			out = append(out, c)
		}
	}
	return out
}

func (w *Wallet) dial(ctx context.Context, addr string) (*p2p.Conn, error) {
	kp, err := w.identity(ctx)
	if err != nil {
		return nil, err
	}
	return p2p.Dial(ctx, addr, kp)
}

func (w *Wallet) identity(ctx context.Context) (p2p.Keypair, error) {
	priv, pub, err := w.v.Identity(ctx)
	if err != nil {
		return p2p.Keypair{}, err
	}
	return p2p.Keypair{Private: priv, Public: pub}, nil
}

func (w *Wallet) hello() p2p.Hello {
	return p2p.Hello{Versions: []int{otp.SchemaVersion}, Issuers: []string{w.cat().Issuer}}
}

// confirmSAS shows the short authentication string and lets the user reject
// a session whose string differs from the other screen's: a man in the
// middle runs two handshakes and cannot make both strings equal.
func (w *Wallet) confirmSAS(ctx context.Context, p Payment) error {
	w.emit(Event{Kind: EventSAS, SAS: p.SAS, Peer: p.Peer})
	if w.opts.ConfirmSAS == nil || !w.opts.ConfirmSAS(ctx, p.SAS) {
		return fmt.Errorf("short authentication string %s not confirmed", p.SAS)
	}
	return nil
}

// resend delivers the coins sealed to peer in an earlier session whose
// receipts never arrived, and records them spent once acknowledged.
func (w *Wallet) resend(ctx context.Context, payer *p2p.Payer, peer string) (int, error) {
	pending, err := w.v.PendingOut(ctx, peer)
	if err != nil || len(pending) == 0 {
		return 0, err
	}
	acks, err := payer.Resend(ctx, pending)
	if err != nil {
		return 0, err
	}
	if len(acks) != len(pending) {
		return 0, fmt.Errorf("payee acknowledged %d of %d re-sent coins", len(acks), len(pending))
	}
	if err := w.v.Purse(peer).Destroy(ctx, pending, acks); err != nil {
		return 0, err
	}
	w.emit(Event{Kind: EventResent, Coins: len(pending), Peer: peer})
	return len(pending), nil
}

// byProgram splits coins into batches that carry the same program, since
// the executor runs one program over a batch.
func byProgram(coins []otp.Sandbox) [][]otp.Sandbox {
	var keys []string
	groups := map[string][]otp.Sandbox{}
	for _, c := range coins {
		k, err := otp.Canonical(c.Coin.CallMethod)
		if err != nil {
			k = nil // the executor refuses it with the reason
		}
		if _, ok := groups[string(k)]; !ok {
			keys = append(keys, string(k))
		}
		groups[string(k)] = append(groups[string(k)], c)
	}
	out := make([][]otp.Sandbox, len(keys))
	for i, k := range keys {
		out[i] = groups[k]
	}
	return out
}

// Receive serves one payment session on ln: it accepts one payer, checks
// every coin offline against the pinned catalogue, stores it and returns a
// signed receipt for it.
func (w *Wallet) Receive(ctx context.Context, ln net.Listener) (Payment, error) {
	return w.receive(ctx, ln, func(h *payee) p2p.Handler { return h })
}

// receive is Receive with the session served by as(payee): tests play a
// dishonest payee through it.
func (w *Wallet) receive(ctx context.Context, ln net.Listener, as func(*payee) p2p.Handler) (Payment, error) {
	kp, err := w.payeeIdentity(ctx)
	if err != nil {
		return Payment{}, fmt.Errorf("receive: %w", err)
	}
	conn, err := p2p.Accept(ctx, ln, kp)
	if err != nil {
		return Payment{}, fmt.Errorf("receive: %w", err)
	}
	return w.session(ctx, conn, as)
}

// payeeIdentity is the key a payee's handshakes run with, once it is known
// that the wallet can be paid: it holds exchange keys.
func (w *Wallet) payeeIdentity(ctx context.Context) (p2p.Keypair, error) {
	if n, err := w.v.ExchangeKeyCount(ctx); err != nil {
		return p2p.Keypair{}, err
	} else if n == 0 {
		return p2p.Keypair{}, fmt.Errorf("%w: run refill while online", ErrNoExchangeKeys)
	}
	return w.identity(ctx)
}

// session serves one payment session as the payee on conn, which it
// closes.
func (w *Wallet) session(ctx context.Context, conn *p2p.Conn, as func(*payee) p2p.Handler) (Payment, error) {
	defer conn.Close()
	h := &payee{w: w, p: Payment{SAS: conn.SAS(), Peer: conn.PeerID()}}
	if err := w.confirmSAS(ctx, h.p); err != nil {
		return h.p, fmt.Errorf("receive: %w", err)
	}
	if err := p2p.Serve(ctx, conn, as(h)); err != nil {
		return h.p, fmt.Errorf("receive: %w", err)
	}
	h.p.Amount -= h.p.Change
	w.record(ctx, HistoryEntry{Kind: HistoryReceive, Amount: h.p.Amount, Peer: h.p.Peer, Detail: h.offer.Memo})
	// A session that only delivered coins of earlier ones has no offer.
	if h.offer.Amount != 0 && h.p.Amount != h.offer.Amount {
		return h.p, fmt.Errorf("receive: %w: received %s of the %s offered", ErrNotAsOffered,
			amount.Format(h.p.Amount), amount.Format(h.offer.Amount))
	}
	return h.p, nil
}

// payee is the receiving side of a session, as p2p.Serve drives it.
type payee struct {
	w     *Wallet
	p     Payment
	offer p2p.Offer
	// offered holds the exchange keys handed out in the current round, by
	// public key: certificates read from this wallet's vault, verified
	// when the bank issued them (RefillKeys).
	offered map[string]otp.ExchangeKey
	// agreement is the change agreed for the payment, which the next
	// exchange keys are promised under.
	agreement *vault.ChangeAgreement
}

func (h *payee) Hello(_ context.Context, _ p2p.Hello) (p2p.Hello, error) { return h.w.hello(), nil }

func (h *payee) Resend(ctx context.Context, coins []otp.Sandbox) ([]otp.Ack, []otp.Sandbox, error) {
	// A re-sent coin was payable when it was sealed; it may have expired
	// while in flight and is still the payee's to deposit.
	acks, change, err := h.accept(ctx, coins, false)
	if err == nil {
		h.p.Resent += len(coins)
	}
	return acks, change, err
}

// Collect returns what this wallet sealed to the payer and never got
// receipts for: change of an earlier broken session, or a payment to it.
func (h *payee) Collect(ctx context.Context) ([]otp.Sandbox, error) {
	return h.w.v.PendingOut(ctx, h.p.Peer)
}

// Offer asks the user to confirm the offer. Nothing of this wallet's
// coins goes with the acceptance: the payer asks for change (Change).
func (h *payee) Offer(ctx context.Context, o p2p.Offer) error {
	if o.Currency != h.w.Currency() {
		return fmt.Errorf("%w: this wallet takes %s, not %s", ErrCurrency, h.w.Currency(), o.Currency)
	}
	// The bank's limits are checked before the user is asked and before
	// any exchange key is handed out: a refused payment leaves nothing
	// sealed to this wallet.
	if err := h.w.offlineTooLong("the payer's", o.RevocationsIssued); err != nil {
		return err
	}
	if err := h.w.tooManyHops("the payer offers coins", o.MaxHops); err != nil {
		return err
	}
	if err := h.w.mayHold(ctx, o.Amount); err != nil {
		return err
	}
	h.w.emit(Event{Kind: EventOffer, Amount: o.Amount, Peer: h.p.Peer, Detail: o.Memo})
	if h.w.opts.ConfirmOffer != nil && !h.w.opts.ConfirmOffer(ctx, Offer{Amount: o.Amount, Currency: o.Currency, Program: o.Program, Memo: o.Memo, Peer: h.p.Peer,
		RevocationsIssued: o.RevocationsIssued, MaxHops: o.MaxHops}) {
		return ErrDeclined
	}
	h.offer = o
	fault.Point(fault.PayeeOffered)
	return nil
}

// mayHold refuses to receive value when the wallet would then hold more
// than the bank's catalogue allows offline.
func (w *Wallet) mayHold(ctx context.Context, value int64) error {
	limit := w.cat().MaxOfflineValue
	if limit == 0 {
		return nil
	}
	b, err := w.Balance(ctx)
	if err != nil {
		return err
	}
	if value > limit-b.Held {
		return fmt.Errorf("%w: receiving %s would make %s held, the bank allows %s offline",
			ErrOfflineLimit, amount.Format(value), amount.Format(b.Held+value), amount.Format(limit))
	}
	return nil
}

// Change agrees to give what the coins proposed exceed the offer by, in
// the fewest of this wallet's coins of the offer's program, if it can in
// no more coins than the payer sent keys, and the payer's keys are good
// and acceptable to the change coins' conditions; it returns the change
// coins' values, largest first. A refusal says only which change it
// cannot give, never what this wallet holds. The change is promised, and
// given, only when the payment arrives (vault.ChangeAgreement).
func (h *payee) Change(ctx context.Context, p p2p.ChangeProposal) ([]int64, error) {
	send, _ := p2p.Total(p.Send)
	back := send - h.offer.Amount
	if back <= 0 {
		return nil, &p2p.RemoteError{Code: p2p.CodeRefused, Message: fmt.Sprintf("%s sent does not exceed the %s offered: no change is due",
			amount.Format(send), amount.Format(h.offer.Amount))}
	}
	// Change is a payment to the payer: only coins it will take by the
	// bank's maxHops.
	held, err := h.w.v.Payable(ctx, h.offer.Currency, h.offer.Program)
	if err != nil {
		return nil, err
	}
	held = h.w.offlinePayable(held)
	plan, err := denom.Best(back, countsOf(held), nil)
	if err != nil || plan.Send.Len() > len(p.Keys) {
		return nil, &p2p.RemoteError{Code: p2p.CodeRefused, Message: fmt.Sprintf("the payee cannot give %s in change in at most %d coins",
			amount.Format(back), len(p.Keys))}
	}
	coins := pick(held, plan.Send)
	if !maps.Equal(countsOf(coins), plan.Send) {
		return nil, fmt.Errorf("change of %s: the coins counted (%s) are no longer held", amount.Format(back), plan.Send)
	}
	// Largest first, each coin to the key in the same place.
	slices.SortStableFunc(coins, func(a, b otp.Sandbox) int { return cmp.Compare(b.Coin.Data.Value, a.Coin.Data.Value) })
	now := h.w.now()
	seen := make(map[string]bool, len(p.Keys))
	// Each key handed out for the payment is bound to the coin proposed
	// for it, so that the change is given only for the coins agreed.
	a := &vault.ChangeAgreement{Peer: h.p.Peer, To: p.Keys[:len(coins)], Send: p.Send, Currency: h.offer.Currency, Program: h.offer.Program}
	change := make([]int64, len(coins))
	for i := range p.Keys {
		k := &p.Keys[i]
		if seen[k.Pub] {
			return nil, &p2p.RemoteError{Code: p2p.CodeRefused, Message: "the same exchange key twice for change"}
		}
		seen[k.Pub] = true
		if err := h.w.ver().VerifyExchangeKey(k, now); err != nil {
			return nil, &p2p.RemoteError{Code: p2p.CodeRefused, Message: "exchange key for change: " + err.Error()}
		}
		if i >= len(coins) {
			continue
		}
		j := otp.Judgement{Coin: &coins[i].Coin, Hops: len(coins[i].Chain) + 1, Payee: k.Attrs,
			Payment: otp.Payment{Amount: h.offer.Amount, Memo: h.offer.Memo}, Now: now}
		if err := j.Check(); err != nil {
			return nil, &p2p.RemoteError{Code: p2p.CodeRefused, Message: "change coin: " + err.Error()}
		}
		a.Change = append(a.Change, coins[i].Coin.Data.Token)
		change[i] = coins[i].Coin.Data.Value
	}
	h.agreement = a
	return change, nil
}

func (h *payee) ExchangeKeys(ctx context.Context, n int) ([]otp.ExchangeKey, error) {
	var (
		keys []otp.ExchangeKey
		err  error
	)
	if h.agreement != nil {
		keys, err = h.w.v.PromiseExchangeKeys(ctx, n, h.agreement)
		h.agreement = nil
	} else {
		keys, err = h.w.v.OfferExchangeKeys(ctx, n)
	}
	if errors.Is(err, vault.ErrNoExchangeKeys) {
		return nil, fmt.Errorf("%w: the payee must refill while online", err)
	}
	h.offered = make(map[string]otp.ExchangeKey, len(keys))
	for _, k := range keys {
		h.offered[k.Pub] = k
	}
	return keys, err
}

func (h *payee) Receive(ctx context.Context, coins []otp.Sandbox) ([]otp.Ack, []otp.Sandbox, error) {
	acks, change, err := h.accept(ctx, coins, true)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range coins {
		h.p.Amount += c.Coin.Data.Value
	}
	h.p.Coins += len(coins)
	h.w.emit(Event{Kind: EventReceived, Amount: h.p.Amount, Coins: len(coins), Peer: h.p.Peer})
	return acks, change, nil
}

// Settle records the payer's receipts for coins this wallet sealed to it:
// they are spent.
func (h *payee) Settle(ctx context.Context, change []otp.Sandbox, acks []otp.Ack) error {
	if err := h.w.v.Purse(h.p.Peer).Destroy(ctx, change, acks); err != nil {
		return err
	}
	h.w.emit(Event{Kind: EventSettled, Amount: countsOf(change).Total(), Coins: len(change), Peer: h.p.Peer})
	return nil
}

// asOffered refuses a coin of another currency or program than the offer
// the user confirmed: a payer may not announce general money and pay with
// coins bound to some purpose.
func (h *payee) asOffered(c *otp.Coin) error {
	if c.Data.Currency != h.offer.Currency || c.Data.Program != h.offer.Program {
		return &p2p.RemoteError{Code: p2p.CodeRefused, Message: fmt.Sprintf("coin %.12s is %s of program %q; the offer was %s of program %q",
			c.Data.Token, c.Data.Currency, c.Data.Program, h.offer.Currency, h.offer.Program)}
	}
	return nil
}

// hopsAsOffered refuses a coin that has made more transfers than the
// bank allows offline (a re-sent coin and a token's too: they skip no
// policy), or than the offer of this session said: the payer's word on
// hops is checked against each chain that arrived.
func (h *payee) hopsAsOffered(s *otp.Sandbox) error {
	if err := h.w.tooManyHops(fmt.Sprintf("coin %.12s", s.Coin.Data.Token), s.Hops()); err != nil {
		return err
	}
	if h.offer.MaxHops > 0 && s.Hops() > h.offer.MaxHops {
		return fmt.Errorf("%w: coin %.12s has made %d transfers, the offer said at most %d",
			ErrNotAsOffered, s.Coin.Data.Token, s.Hops(), h.offer.MaxHops)
	}
	return nil
}

// accept verifies every coin before any is stored, so a bad coin in a batch
// changes nothing. It returns the change the coins completed, if any,
// sealed to the payer.
func (h *payee) accept(ctx context.Context, coins []otp.Sandbox, payable bool) ([]otp.Ack, []otp.Sandbox, error) {
	if err := h.verify(coins, payable); err != nil {
		return nil, nil, err
	}
	acks, change, err := h.w.v.Receive(ctx, h.p.Peer, coins)
	if err != nil {
		return nil, nil, err
	}
	fault.Point(fault.PayeeStored)
	if len(change) > 0 {
		h.p.Change += countsOf(change).Total()
		h.w.emit(Event{Kind: EventChange, Amount: countsOf(change).Total(), Coins: len(change), Peer: h.p.Peer})
	}
	return acks, change, nil
}

// verify checks coins offline as the payee of the offer, before any is
// stored: signatures, the offer's currency and program, payability (when
// payable) and conditions. A payment token goes through it too.
func (h *payee) verify(coins []otp.Sandbox, payable bool) error {
	now := h.w.now()
	// The signatures first, all of the batch on all CPUs: they are most of
	// the payee's work. The bank's certificate of the last link is not
	// verified again when it is, field for field, one of the keys this
	// wallet handed out in this round: it verified that very certificate
	// when the bank issued it, and reads it back from its authenticated
	// vault. A certificate differing in any field (a forged one for one of
	// this wallet's public keys, say) is verified, and refused.
	own := func(k *otp.ExchangeKey) bool {
		mine, ok := h.offered[k.Pub]
		return ok && mine.Equal(k)
	}
	if err := h.w.ver().VerifyReceived(coins, own); err != nil {
		return err
	}
	for i := range coins {
		if err := h.hopsAsOffered(&coins[i]); err != nil {
			return err
		}
		if payable {
			if err := h.asOffered(&coins[i].Coin); err != nil {
				return err
			}
			if err := otp.CheckPayable(&coins[i].Coin, now); err != nil {
				return err
			}
		}
		// Judge the transfer to this wallet's key as the bank will at
		// deposit, with the payment offered (none for a re-sent coin).
		if err := coins[i].CheckConditions(otp.Payment{Amount: h.offer.Amount, Memo: h.offer.Memo}, now); err != nil {
			return err
		}
	}
	fault.Point(fault.PayeeVerified)
	return nil
}
