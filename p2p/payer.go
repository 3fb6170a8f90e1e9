package p2p

import (
	"context"
	"errors"
	"fmt"

	"github.com/otpcash/otpcash/otp"
)

// Payer drives a session from the payer's side: Hello, then Resend for coins
// left pending-out by an earlier broken session with the same payee and
// Collect for coins the payee left pending-out to this payer, then Offer,
// then ProposeChange if the payment needs change, then rounds of
// ExchangeKeys and Send (the otp executor's calls), then Done. Change the
// payee sends (with receipts, or in answer to Collect) waits in Change
// until SettleChange returns the payer's receipts for it; no other request
// can be made meanwhile. The payee enforces the order.
//
// Payer does not verify what it receives: the otp executor checks exchange
// keys and receipts for Send, and the caller checks the receipts Resend
// returns (otp.Sandbox.VerifyAck) before it records those coins as spent.
type Payer struct {
	c *Conn
	// posted holds, for every Post whose receipts Receipts has not read
	// yet, the coins of each message it wrote: receipts come as
	// signatures, in their order.
	posted [][][]otp.Sandbox
	// change is the change the payee sent and the payer has not settled.
	change []otp.Sandbox
	// offered is the amount of the accepted offer.
	offered int64
}

// errUnsettled refuses a request while change awaits the payer's receipts.
var errUnsettled = errors.New("change from the payee awaits receipts (SettleChange)")

var _ otp.PipelinedPeer = (*Payer)(nil)

// NewPayer returns a Payer for the established channel c.
func NewPayer(c *Conn) *Payer { return &Payer{c: c} }

func (p *Payer) settled() error {
	if len(p.change) > 0 {
		return errUnsettled
	}
	return nil
}

// Hello exchanges hellos, the payer speaking first, and returns the payee's.
// h.Versions is ignored: the package fills in the versions it speaks.
func (p *Payer) Hello(ctx context.Context, h Hello) (Hello, error) {
	h.Versions = []int{Version}
	reply, err := roundTrip[*Hello](ctx, p.c, &h)
	if err != nil {
		return Hello{}, fmt.Errorf("p2p: hello: %w", err)
	}
	if err := checkVersions(reply.Versions); err != nil {
		return Hello{}, fmt.Errorf("p2p: hello: %w", p.c.reject(ctx, err, CodeVersion))
	}
	return *reply, nil
}

// Resend delivers again coins sealed to this payee in an earlier session
// that broke before their receipts arrived, and returns one receipt per
// coin, in order. The payee recognises coins it already holds by serial.
// It is allowed only between Hello and Offer.
func (p *Payer) Resend(ctx context.Context, coins []otp.Sandbox) ([]otp.Ack, error) {
	acks, err := p.deliver(ctx, coins, true)
	if err == nil && len(acks) != len(coins) {
		err = violation("%d receipts for %d coins", len(acks), len(coins))
	}
	if err != nil {
		return nil, fmt.Errorf("p2p: resend: %w", err)
	}
	return acks, nil
}

// Collect asks the payee for coins it sealed to this payer in earlier
// sessions and never got receipts for (change, mostly), and returns them;
// they wait in Change until SettleChange. It is allowed only between Hello
// and Offer.
func (p *Payer) Collect(ctx context.Context) ([]otp.Sandbox, error) {
	if err := p.settled(); err != nil {
		return nil, fmt.Errorf("p2p: collect: %w", err)
	}
	reply, err := roundTrip[*acksMsg](ctx, p.c, &collectMsg{})
	if err == nil && len(reply.Acks) != 0 {
		err = p.c.reject(ctx, violation("%d receipts in answer to a collect", len(reply.Acks)), CodeProtocol)
	}
	if err != nil {
		return nil, fmt.Errorf("p2p: collect: %w", err)
	}
	p.change = reply.Change
	return reply.Change, nil
}

// Offer proposes a payment and waits for the payee to accept it. A payee
// that declines returns a *RemoteError with Code CodeDeclined.
func (p *Payer) Offer(ctx context.Context, o Offer) error {
	if err := p.settled(); err != nil {
		return fmt.Errorf("p2p: offer: %w", err)
	}
	if _, err := roundTrip[*acceptMsg](ctx, p.c, &o); err != nil {
		return fmt.Errorf("p2p: offer: %w", err)
	}
	p.offered = o.Amount
	return nil
}

// ProposeChange proposes to pay the accepted offer with change and waits
// for the payee to agree. It returns the values of the change coins the
// payee agreed to seal to the first keys of c, largest first, checked to
// make up exactly what c.Send exceeds the offer by, with no more coins
// than keys. The payment that follows must be one round of exactly
// len(c.Send) coins. A payee that cannot give the change returns a
// *RemoteError with Code CodeRefused.
func (p *Payer) ProposeChange(ctx context.Context, c ChangeProposal) ([]int64, error) {
	reply, err := roundTrip[*agreedMsg](ctx, p.c, &c)
	if err == nil {
		send, _ := Total(c.Send)
		back, _ := Total(reply.Change)
		if len(reply.Change) > len(c.Keys) || send-back != p.offered {
			err = p.c.reject(ctx, violation("agreed change of %d coins worth %d for %d keys and %d sent against %d offered",
				len(reply.Change), back, len(c.Keys), send, p.offered), CodeProtocol)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("p2p: change: %w", err)
	}
	return reply.Change, nil
}

// Change returns the change the payee has sent and the payer has not
// settled yet: coins sealed to the payer's exchange keys, not verified.
func (p *Payer) Change() []otp.Sandbox { return p.change }

// SettleChange sends the payer's receipts for the change it holds, one
// per coin of Change, in order, once the payer has stored those coins;
// then other requests can be made again.
func (p *Payer) SettleChange(ctx context.Context, acks []otp.Ack) error {
	if len(acks) != len(p.change) {
		return fmt.Errorf("p2p: settle change: %d receipts for %d coins", len(acks), len(p.change))
	}
	if err := matchAcks(acks, p.change); err != nil {
		return fmt.Errorf("p2p: settle change: %w", err)
	}
	if _, err := roundTrip[*settledMsg](ctx, p.c, &receiptsMsg{Acks: acks}); err != nil {
		return fmt.Errorf("p2p: settle change: %w", err)
	}
	p.change = nil
	return nil
}

// ExchangeKeys asks the payee for n exchange keys, 1 <= n <= MaxBatch,
// starting a round of the payment.
func (p *Payer) ExchangeKeys(ctx context.Context, n int) ([]otp.ExchangeKey, error) {
	if err := p.settled(); err != nil {
		return nil, fmt.Errorf("p2p: exchange keys: %w", err)
	}
	reply, err := roundTrip[*keysMsg](ctx, p.c, &keysRequestMsg{N: n})
	if err == nil && len(reply.Keys) != n {
		err = violation("%d exchange keys for a request of %d", len(reply.Keys), n)
		err = p.c.reject(ctx, err, CodeProtocol)
	}
	if err != nil {
		return nil, fmt.Errorf("p2p: exchange keys: %w", err)
	}
	return reply.Keys, nil
}

// Send delivers coins sealed to the keys of the current round and returns
// one receipt per coin, in order. The caller has recorded them as
// pending-out: if Send fails, they go to the same payee again with Resend.
func (p *Payer) Send(ctx context.Context, sealed []otp.Sandbox) ([]otp.Ack, error) {
	acks, err := p.deliver(ctx, sealed, false)
	if err != nil {
		return nil, fmt.Errorf("p2p: send: %w", err)
	}
	return acks, nil
}

// Post delivers coins sealed to the keys of the current round, as Send
// does, but returns once they are written, without waiting for the
// receipts: Receipts reads them. The payee handles messages in order, so
// the payer can seal the next chunk meanwhile (otp.PipelinedPeer).
func (p *Payer) Post(ctx context.Context, sealed []otp.Sandbox) error {
	msgs, err := p.post(ctx, sealed, false, nil)
	if err != nil {
		return fmt.Errorf("p2p: send: %w", err)
	}
	p.posted = append(p.posted, msgs)
	return nil
}

// Receipts returns the receipts for the oldest Post whose receipts have
// not been read, one per coin, in order.
func (p *Payer) Receipts(ctx context.Context) ([]otp.Ack, error) {
	if len(p.posted) == 0 {
		return nil, errors.New("p2p: receipts: nothing was posted")
	}
	msgs := p.posted[0]
	p.posted = p.posted[1:]
	acks, err := p.collect(ctx, msgs)
	if err != nil {
		return nil, fmt.Errorf("p2p: send: %w", err)
	}
	return acks, nil
}

// Done ends the session and waits for the payee to confirm.
func (p *Payer) Done(ctx context.Context) error {
	if err := p.settled(); err != nil {
		return fmt.Errorf("p2p: done: %w", err)
	}
	if _, err := roundTrip[*doneMsg](ctx, p.c, &doneMsg{}); err != nil {
		return fmt.Errorf("p2p: done: %w", err)
	}
	return nil
}

// deliver sends coins in as many messages as the limits on count and size
// require, halving a batch until it fits, and collects the receipts.
func (p *Payer) deliver(ctx context.Context, coins []otp.Sandbox, resend bool) ([]otp.Ack, error) {
	msgs, err := p.post(ctx, coins, resend, nil)
	if err != nil {
		return nil, err
	}
	return p.collect(ctx, msgs)
}

// post writes coins in as many messages as the limits on count and size
// require, halving a batch until it fits, and appends the coins of each
// message to msgs. It does not wait for receipts: the payee answers each
// message in turn, and collect reads the answers.
func (p *Payer) post(ctx context.Context, coins []otp.Sandbox, resend bool, msgs [][]otp.Sandbox) ([][]otp.Sandbox, error) {
	if len(coins) == 0 {
		return msgs, nil
	}
	if err := p.settled(); err != nil {
		return nil, err
	}
	if len(coins) <= MaxBatch {
		m := &coinsMsg{Coins: coins, Resend: resend}
		b, err := p.c.codec.encode(m)
		if err == nil {
			if err := p.c.writeMessage(ctx, b); err != nil {
				return nil, err
			}
			return append(msgs, coins), nil
		}
		if len(coins) == 1 || !errors.Is(err, ErrMessageTooLarge) {
			return nil, err
		}
	}
	half := len(coins) / 2
	msgs, err := p.post(ctx, coins[:half], resend, msgs)
	if err != nil {
		return nil, err
	}
	return p.post(ctx, coins[half:], resend, msgs)
}

// collect reads the payee's receipts for the coins of each message of
// msgs.
func (p *Payer) collect(ctx context.Context, msgs [][]otp.Sandbox) ([]otp.Ack, error) {
	var acks []otp.Ack
	for _, coins := range msgs {
		reply, err := expect[*acksMsg](ctx, p.c)
		if err != nil {
			return nil, err
		}
		if len(reply.Acks) != len(coins) {
			err := violation("%d receipts for %d coins", len(reply.Acks), len(coins))
			return nil, p.c.reject(ctx, err, CodeProtocol)
		}
		fillAcks(reply.Acks, coins)
		if len(reply.Change) > 0 {
			if len(p.change) > 0 {
				return nil, p.c.reject(ctx, violation("change sent twice"), CodeProtocol)
			}
			p.change = reply.Change
		}
		if acks == nil && len(msgs) == 1 {
			return reply.Acks, nil
		}
		acks = append(acks, reply.Acks...)
	}
	return acks, nil
}
