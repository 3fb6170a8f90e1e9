package p2p

import (
	"context"
	"errors"
	"fmt"

	"github.com/otpcash/otpcash/otp"
)

// Handler is the payee's wallet as a session sees it. Serve calls it only
// for messages that are well formed and in order.
//
// An error a Handler returns ends the session. The payer is told the Code
// and Message of a *RemoteError in the error's chain; for any other error
// only a code (CodeDeclined for Offer, CodeRefused otherwise), so that no
// detail of the payee's vault ever reaches the payer.
type Handler interface {
	// Hello sees the payer's hello and returns the payee's. The Versions
	// field of either is the package's business.
	Hello(ctx context.Context, h Hello) (Hello, error)
	// Resend receives coins sealed to this payee in an earlier session;
	// coins it already holds (by serial) are acknowledged again. It
	// persists the coins before it returns one receipt per coin, in order,
	// and the change sealed to the payer if they complete a payment with
	// change.
	Resend(ctx context.Context, coins []otp.Sandbox) ([]otp.Ack, []otp.Sandbox, error)
	// Collect returns the coins sealed to the payer in earlier sessions
	// whose receipts never came back (change, mostly), to deliver again.
	Collect(ctx context.Context) ([]otp.Sandbox, error)
	// Offer asks the user to confirm the payment.
	Offer(ctx context.Context, o Offer) error
	// Change checks the payer's proposal to pay the offer with change
	// (the coins sent exceed the offer, the payee can give the difference
	// in at most one coin per key, the payer's keys are good) and returns
	// the values of the change coins it will give, largest first: they
	// must make up exactly what the coins sent exceed the offer by, or
	// Serve refuses the proposal. The next ExchangeKeys is for the payment
	// it agreed to.
	Change(ctx context.Context, p ChangeProposal) ([]int64, error)
	// ExchangeKeys returns n fresh certified exchange keys.
	ExchangeKeys(ctx context.Context, n int) ([]otp.ExchangeKey, error)
	// Receive checks coins sealed to keys of the current round, persists
	// them, and returns one receipt per coin, in order, and the change
	// sealed to the payer if they complete a payment with change.
	Receive(ctx context.Context, coins []otp.Sandbox) ([]otp.Ack, []otp.Sandbox, error)
	// Settle records the payer's receipts for change it was sent.
	Settle(ctx context.Context, change []otp.Sandbox, acks []otp.Ack) error
}

// Serve runs one session as the payee until the payer's done, which it
// answers with done and returns nil, or until an error, which it tells the
// payer about and returns. A *RemoteError in the returned chain is the
// payer's reason for ending the session.
//
// The payer must send hello first; then any number of resends and
// collects; then an offer; then, for a payment with change, one change
// proposal; then rounds of a keysRequest followed by coins, at most as many
// as the keys of the round, possibly over several messages; and done last,
// when no round is waiting for its first coins. Whenever the payee has sent
// change (with receipts, or in answer to a collect), the payer's next
// message must be its receipts for it. Anything else is refused with
// CodeProtocol.
//
// Every read waits until ctx is done or the Conn's message timeout passes
// (ErrTimeout): a payer that vanishes, or stalls in the middle of a
// message, is dropped then.
func Serve(ctx context.Context, c *Conn, h Handler) error {
	s := session{c: c, h: h}
	for {
		m, err := c.recv(ctx)
		if err != nil {
			return fmt.Errorf("p2p: serve: %w", err)
		}
		finished, err := s.handle(ctx, m)
		if err != nil {
			return fmt.Errorf("p2p: serve %s: %w", m.kind(), err)
		}
		if finished {
			return nil
		}
	}
}

// session is where a payee's session stands, which decides what the payer
// may send next.
type session struct {
	c *Conn
	h Handler

	greeted  bool  // hellos exchanged
	accepted bool  // the offer was accepted
	proposed bool  // a change proposal was agreed
	rounds   int   // keysRequests answered
	keysLeft int   // exchange keys of the current round not yet paid with
	awaiting bool  // keys were handed out and no coins have come for them yet
	send     int   // coins of the agreed change proposal
	offered  int64 // the amount of the accepted offer
	// owed is the change sent whose receipts the payer owes next.
	owed []otp.Sandbox
}

// handle acts on one message from the payer and reports whether the session
// is over.
func (s *session) handle(ctx context.Context, m message) (finished bool, err error) {
	if !s.greeted {
		if h, ok := m.(*Hello); ok {
			return false, s.hello(ctx, h)
		}
		return false, s.refuse(ctx, "%s before hello", m.kind())
	}
	if s.owed != nil {
		if r, ok := m.(*receiptsMsg); ok {
			return false, s.settle(ctx, r.Acks)
		}
		return false, s.refuse(ctx, "%s while %d change coins await receipts", m.kind(), len(s.owed))
	}
	switch m := m.(type) {
	case *Hello:
		return false, s.refuse(ctx, "second hello")
	case *collectMsg:
		return false, s.collect(ctx)
	case *ChangeProposal:
		return false, s.change(ctx, m)
	case *receiptsMsg:
		return false, s.refuse(ctx, "receipts for change that was not sent")
	case *coinsMsg:
		if m.Resend {
			return false, s.resend(ctx, m.Coins)
		}
		return false, s.receive(ctx, m.Coins)
	case *Offer:
		return false, s.offer(ctx, m)
	case *keysRequestMsg:
		return false, s.keys(ctx, m.N)
	case *doneMsg:
		if s.awaiting {
			return false, s.refuse(ctx, "done while %d exchange keys await coins", s.keysLeft)
		}
		return true, s.c.send(ctx, &doneMsg{})
	default:
		return false, s.refuse(ctx, "%s comes only from the payee", m.kind())
	}
}

func (s *session) hello(ctx context.Context, h *Hello) error {
	if err := checkVersions(h.Versions); err != nil {
		return s.c.reject(ctx, err, CodeVersion)
	}
	reply, err := s.h.Hello(ctx, *h)
	if err != nil {
		return s.c.abort(ctx, err, refusal(err, CodeRefused, "hello refused"))
	}
	reply.Versions = []int{Version}
	s.greeted = true
	return s.c.send(ctx, &reply)
}

func (s *session) resend(ctx context.Context, coins []otp.Sandbox) error {
	if s.accepted {
		return s.refuse(ctx, "resend after the offer")
	}
	acks, change, err := s.h.Resend(ctx, coins)
	return s.acknowledge(ctx, coins, acks, change, err)
}

func (s *session) collect(ctx context.Context) error {
	if s.accepted {
		return s.refuse(ctx, "collect after the offer")
	}
	change, err := s.h.Collect(ctx)
	return s.acknowledge(ctx, nil, nil, change, err)
}

func (s *session) change(ctx context.Context, p *ChangeProposal) error {
	switch {
	case !s.accepted:
		return s.refuse(ctx, "change before an accepted offer")
	case s.proposed || s.rounds > 0:
		return s.refuse(ctx, "change proposal after the payment began")
	}
	change, err := s.h.Change(ctx, *p)
	agreed := &agreedMsg{Change: change}
	if err == nil {
		err = agreed.check()
	}
	if err == nil && len(change) > len(p.Keys) {
		err = fmt.Errorf("handler agreed %d change coins for %d keys", len(change), len(p.Keys))
	}
	// The payment net of change must be the offer the user accepted, as
	// the payer checks too (Payer.ProposeChange): a handler that agreed
	// to other change would pay, or be paid, a sum nobody confirmed.
	if err == nil {
		send, _ := Total(p.Send)
		back, _ := Total(change)
		if send-back != s.offered {
			err = fmt.Errorf("handler agreed %d in change for %d sent, which pays %d, not the %d offered", back, send, send-back, s.offered)
		}
	}
	if err != nil {
		return s.c.abort(ctx, err, refusal(err, CodeRefused, "change refused"))
	}
	s.proposed, s.send = true, len(p.Send)
	return s.c.send(ctx, agreed)
}

func (s *session) settle(ctx context.Context, acks []otp.Ack) error {
	if len(acks) != len(s.owed) {
		return s.refuse(ctx, "%d receipts for %d change coins", len(acks), len(s.owed))
	}
	fillAcks(acks, s.owed)
	if err := s.h.Settle(ctx, s.owed, acks); err != nil {
		return s.c.abort(ctx, err, refusal(err, CodeRefused, "receipts refused"))
	}
	s.owed = nil
	return s.c.send(ctx, &settledMsg{})
}

func (s *session) offer(ctx context.Context, o *Offer) error {
	if s.accepted {
		return s.refuse(ctx, "second offer")
	}
	if err := s.h.Offer(ctx, *o); err != nil {
		return s.c.abort(ctx, err, refusal(err, CodeDeclined, "offer declined"))
	}
	s.accepted, s.offered = true, o.Amount
	return s.c.send(ctx, &acceptMsg{})
}

func (s *session) keys(ctx context.Context, n int) error {
	switch {
	case !s.accepted:
		return s.refuse(ctx, "keysRequest before an accepted offer")
	case s.awaiting:
		return s.refuse(ctx, "keysRequest while %d exchange keys await coins", s.keysLeft)
	case s.proposed && (s.rounds > 0 || n != s.send):
		// The change was agreed for exactly these coins, in one round.
		return s.refuse(ctx, "keysRequest for %d coins in round %d of a payment with change agreed for %d coins in one round", n, s.rounds+1, s.send)
	}
	keys, err := s.h.ExchangeKeys(ctx, n)
	if err == nil && len(keys) != n {
		err = fmt.Errorf("handler made %d exchange keys for a request of %d", len(keys), n)
	}
	if err != nil {
		return s.c.abort(ctx, err, refusal(err, CodeRefused, "no exchange keys"))
	}
	// Keys left over from the previous round are forgotten: coins sealed to
	// them now would be out of order.
	s.keysLeft, s.awaiting = n, true
	s.rounds++
	return s.c.send(ctx, &keysMsg{Keys: keys})
}

func (s *session) receive(ctx context.Context, coins []otp.Sandbox) error {
	if len(coins) > s.keysLeft {
		return s.refuse(ctx, "%d coins for %d exchange keys", len(coins), s.keysLeft)
	}
	s.keysLeft -= len(coins)
	s.awaiting = false
	acks, change, err := s.h.Receive(ctx, coins)
	return s.acknowledge(ctx, coins, acks, change, err)
}

// acknowledge sends the handler's receipts for coins, with the change the
// handler sealed to the payer, whose receipts the payer owes next.
func (s *session) acknowledge(ctx context.Context, coins []otp.Sandbox, acks []otp.Ack, change []otp.Sandbox, err error) error {
	if err == nil {
		if err = matchAcks(acks, coins); err != nil {
			err = fmt.Errorf("handler: %w", err)
		}
	}
	if err != nil {
		return s.c.abort(ctx, err, refusal(err, CodeRefused, "coins refused"))
	}
	if acks == nil {
		acks = []otp.Ack{}
	}
	if err := s.c.send(ctx, &acksMsg{Acks: acks, Change: change}); err != nil {
		return err
	}
	if len(change) > 0 {
		s.owed = change
	}
	return nil
}

// refuse ends the session over a message out of order.
func (s *session) refuse(ctx context.Context, format string, args ...any) error {
	return s.c.reject(ctx, violation(format, args...), CodeProtocol)
}

// NoChange completes a Handler that never gives change: it has none to
// collect, refuses every change proposal, and so is never sent receipts.
type NoChange struct{}

func (NoChange) Collect(context.Context) ([]otp.Sandbox, error) { return nil, nil }

func (NoChange) Change(context.Context, ChangeProposal) ([]int64, error) {
	return nil, &RemoteError{Code: CodeRefused, Message: "this payee gives no change"}
}

func (NoChange) Settle(context.Context, []otp.Sandbox, []otp.Ack) error {
	return errors.New("receipts for change that was never sent")
}
