package wallet

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/otpcash/otpcash/internal/amount"
	"github.com/otpcash/otpcash/internal/fault"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/p2p"
	"github.com/otpcash/otpcash/vault"
)

// Payment is the outcome of one offline session.
type Payment struct {
	Amount int64  // value paid or received in this session
	Coins  int    // coins paid or received
	Resent int    // coins of an earlier broken session delivered first
	SAS    string // the short authentication string both screens showed
	Peer   string // the other wallet's identity key
}

// Pay pays value to the wallet listening at addr, offline: the only traffic
// is the encrypted session between the two wallets. Coins left in flight by
// an earlier broken session with the same payee are delivered first.
//
// When Pay fails after coins were sealed, those coins stay pending-out and
// are re-sent on the next meeting; the error says so.
//
// Pay spends coins of one program: "general" unless WithProgram names
// another. A coin whose program's conditions refuse this payee is refused
// before anything is sealed, with the condition and the values it saw
// (otp.ErrCondition), and stays held.
func (w *Wallet) Pay(ctx context.Context, addr string, value int64, memo string, opts ...Option) (Payment, error) {
	coins, err := w.v.SelectProgram(ctx, value, w.Currency(), applyOptions(opts).program)
	if err != nil {
		return Payment{}, fmt.Errorf("pay %s: %w", amount.Format(value), err)
	}
	conn, err := w.dial(ctx, addr)
	if err != nil {
		return Payment{}, fmt.Errorf("pay %s: %w", amount.Format(value), err)
	}
	defer conn.Close()
	p := Payment{SAS: conn.SAS(), Peer: conn.PeerID()}
	if err := w.confirmSAS(ctx, p); err != nil {
		return p, fmt.Errorf("pay: %w", err)
	}
	payer := p2p.NewPayer(conn)
	if _, err := payer.Hello(ctx, w.hello()); err != nil {
		return p, fmt.Errorf("pay: %w", err)
	}
	if p.Resent, err = w.resend(ctx, payer, p.Peer); err != nil {
		return p, fmt.Errorf("pay: resend coins of an earlier session: %w", err)
	}
	if err := payer.Offer(ctx, p2p.Offer{Amount: value, Currency: w.Currency(), Memo: memo}); err != nil {
		var re *p2p.RemoteError
		if errors.As(err, &re) {
			return p, fmt.Errorf("pay: %w: %s", ErrDeclined, re.Message)
		}
		return p, fmt.Errorf("pay: %w", err)
	}
	purse := w.v.Purse(p.Peer)
	for _, batch := range byProgram(coins) {
		run := &otp.Run{Verifier: w.ver, Now: w.now(), Peer: payer, Purse: purse, Coins: batch,
			Payment: otp.Payment{Amount: value, Memo: memo}}
		err := otp.Execute(ctx, run)
		if run.Sealed != nil {
			w.emit(Event{Kind: "sealed", Coins: len(run.Sealed), Peer: p.Peer})
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
		w.emit(Event{Kind: "acked", Coins: len(batch), Peer: p.Peer})
	}
	if err := payer.Done(ctx); err != nil {
		return p, fmt.Errorf("pay: coins delivered and acknowledged, closing the session: %w", err)
	}
	w.record(ctx, vault.Event{Kind: "pay", Amount: p.Amount, Peer: p.Peer, Detail: memo})
	return p, nil
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
	return p2p.Hello{Versions: []int{otp.SchemaVersion}, Issuers: []string{w.cat.Issuer}}
}

// confirmSAS shows the short authentication string and lets the user reject
// a session whose string differs from the other screen's: a man in the
// middle runs two handshakes and cannot make both strings equal.
func (w *Wallet) confirmSAS(ctx context.Context, p Payment) error {
	w.emit(Event{Kind: "sas", SAS: p.SAS, Peer: p.Peer})
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
	w.emit(Event{Kind: "resent", Coins: len(pending), Peer: peer})
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
	if n, err := w.v.ExchangeKeyCount(ctx); err != nil {
		return Payment{}, fmt.Errorf("receive: %w", err)
	} else if n == 0 {
		return Payment{}, fmt.Errorf("receive: %w: run refill while online", ErrNoExchangeKeys)
	}
	kp, err := w.identity(ctx)
	if err != nil {
		return Payment{}, fmt.Errorf("receive: %w", err)
	}
	conn, err := p2p.Accept(ctx, ln, kp)
	if err != nil {
		return Payment{}, fmt.Errorf("receive: %w", err)
	}
	defer conn.Close()
	h := &payee{w: w, p: Payment{SAS: conn.SAS(), Peer: conn.PeerID()}}
	if err := w.confirmSAS(ctx, h.p); err != nil {
		return h.p, fmt.Errorf("receive: %w", err)
	}
	if err := p2p.Serve(ctx, conn, h); err != nil {
		return h.p, fmt.Errorf("receive: %w", err)
	}
	if h.p.Amount != h.offer.Amount {
		w.log.Warn("payment differs from offer", "offered", h.offer.Amount, "received", h.p.Amount)
	}
	w.record(ctx, vault.Event{Kind: "receive", Amount: h.p.Amount, Peer: h.p.Peer, Detail: h.offer.Memo})
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
}

func (h *payee) Hello(_ context.Context, _ p2p.Hello) (p2p.Hello, error) { return h.w.hello(), nil }

func (h *payee) Resend(ctx context.Context, coins []otp.Sandbox) ([]otp.Ack, error) {
	// A re-sent coin was payable when it was sealed; it may have expired
	// while in flight and is still the payee's to deposit.
	acks, err := h.accept(ctx, coins, false)
	if err == nil {
		h.p.Resent += len(coins)
	}
	return acks, err
}

func (h *payee) Offer(ctx context.Context, o p2p.Offer) error {
	if o.Currency != h.w.Currency() {
		return fmt.Errorf("this wallet takes %s, not %s", h.w.Currency(), o.Currency)
	}
	h.w.emit(Event{Kind: "offer", Amount: o.Amount, Peer: h.p.Peer, Detail: o.Memo})
	if h.w.opts.ConfirmOffer != nil && !h.w.opts.ConfirmOffer(ctx, Offer{Amount: o.Amount, Currency: o.Currency, Memo: o.Memo, Peer: h.p.Peer}) {
		return ErrDeclined
	}
	h.offer = o
	fault.Point(fault.PayeeOffered)
	return nil
}

func (h *payee) ExchangeKeys(ctx context.Context, n int) ([]otp.ExchangeKey, error) {
	keys, err := h.w.v.OfferExchangeKeys(ctx, n)
	if errors.Is(err, vault.ErrNoExchangeKeys) {
		return nil, fmt.Errorf("%w: the payee must refill while online", err)
	}
	h.offered = make(map[string]otp.ExchangeKey, len(keys))
	for _, k := range keys {
		h.offered[k.Pub] = k
	}
	return keys, err
}

func (h *payee) Receive(ctx context.Context, coins []otp.Sandbox) ([]otp.Ack, error) {
	acks, err := h.accept(ctx, coins, true)
	if err != nil {
		return nil, err
	}
	for _, c := range coins {
		h.p.Amount += c.Coin.Data.Value
	}
	h.p.Coins += len(coins)
	h.w.emit(Event{Kind: "received", Amount: h.p.Amount, Coins: len(coins), Peer: h.p.Peer})
	return acks, nil
}

// accept verifies every coin before any is stored, so a bad coin in a batch
// changes nothing.
func (h *payee) accept(ctx context.Context, coins []otp.Sandbox, payable bool) ([]otp.Ack, error) {
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
		return ok && otp.SameExchangeKey(&mine, k)
	}
	if err := h.w.ver.VerifyReceived(coins, own); err != nil {
		return nil, err
	}
	for i := range coins {
		if payable {
			if err := otp.CheckPayable(&coins[i].Coin, now); err != nil {
				return nil, err
			}
		}
		// Judge the transfer to this wallet's key as the bank will at
		// deposit, with the payment offered (none for a re-sent coin).
		if err := coins[i].CheckConditions(otp.Payment{Amount: h.offer.Amount, Memo: h.offer.Memo}, now); err != nil {
			return nil, err
		}
	}
	fault.Point(fault.PayeeVerified)
	acks, err := h.w.v.Receive(ctx, h.p.Peer, coins)
	if err == nil {
		fault.Point(fault.PayeeStored)
	}
	return acks, err
}
