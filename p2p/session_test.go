package p2p

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpcash/otpcash/otp"
)

// TestSession pays real coins through the otp executor, with the Payer as
// its Peer, to a payee that verifies every coin.
func TestSession(t *testing.T) {
	ctx := testContext(t)
	b := newBank(t)
	payerConn, payeeConn := connect(t, newKeypair(t), newKeypair(t))
	payeeWallet := newPayee(b)
	served := serve(ctx, payeeConn, payeeWallet)

	p := NewPayer(payerConn)
	hello, err := p.Hello(ctx, Hello{Issuers: []string{issuer}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hello.Issuers, []string{issuer}) || !slices.Equal(hello.Versions, []int{Version}) {
		t.Fatalf("payee hello = %+v", hello)
	}
	offer := Offer{Amount: 500, Currency: "EUR", MaxHops: 1, Memo: "groceries"}
	if err := p.Offer(ctx, offer); err != nil {
		t.Fatal(err)
	}
	// Two rounds, as a wallet paying coins of two programs runs them.
	payerWallet := &purse{keys: map[string]ed25519.PrivateKey{}}
	for round, n := range []int{3, 2} {
		coins := make([]otp.Sandbox, n)
		for i := range coins {
			var holder ed25519.PrivateKey
			coins[i], holder = b.issue(t, fmt.Sprintf("session/%d/%d", round, i))
			payerWallet.keys[coins[i].Holder()] = holder
		}
		run := &otp.Run{Verifier: b.verifier, Now: time.Now(), Peer: p, Purse: payerWallet, Coins: coins}
		if err := otp.Execute(ctx, run); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if err := p.Done(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if payerWallet.spent != 5 || len(payerWallet.pending) != 0 {
		t.Errorf("payer: %d spent, %d pending, want 5 and 0", payerWallet.spent, len(payerWallet.pending))
	}
	if len(payeeWallet.held) != 5 || !slices.Equal(payeeWallet.offers, []Offer{offer}) {
		t.Errorf("payee: holds %d coins, offers %+v", len(payeeWallet.held), payeeWallet.offers)
	}
	if payerConn.BytesSent() != payeeConn.BytesReceived() || payeeConn.BytesSent() != payerConn.BytesReceived() {
		t.Errorf("byte counters disagree: payer sent %d received %d, payee sent %d received %d",
			payerConn.BytesSent(), payerConn.BytesReceived(), payeeConn.BytesSent(), payeeConn.BytesReceived())
	}
}

// TestResend breaks a session after the payer sealed its coins and before
// it sent them, then delivers them in a second session with the same payee.
func TestResend(t *testing.T) {
	ctx := testContext(t)
	b := newBank(t)
	payerKey, payeeKey := newKeypair(t), newKeypair(t)
	payeeWallet := newPayee(b)

	payerConn, payeeConn := connect(t, payerKey, payeeKey)
	firstPayer := payeeConn.PeerID()
	served := serve(ctx, payeeConn, payeeWallet)
	p := NewPayer(payerConn)
	if _, err := p.Hello(ctx, Hello{}); err != nil {
		t.Fatal(err)
	}
	if err := p.Offer(ctx, Offer{Amount: 200, Currency: "EUR", MaxHops: 1}); err != nil {
		t.Fatal(err)
	}
	keys, err := p.ExchangeKeys(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	pending := make([]otp.Sandbox, len(keys))
	for i, k := range keys {
		s, holder := b.issue(t, fmt.Sprintf("resend/%d", i))
		if err := s.Transfer(holder, k); err != nil {
			t.Fatal(err)
		}
		pending[i] = s
	}
	payerConn.Close()
	if err := <-served; err == nil {
		t.Fatal("Serve returned nil for a session that broke off")
	}

	payerConn, payeeConn = connect(t, payerKey, payeeKey)
	if payeeConn.PeerID() != firstPayer {
		t.Fatalf("payer's PeerID changed from %s to %s", firstPayer, payeeConn.PeerID())
	}
	served = serve(ctx, payeeConn, payeeWallet)
	p = NewPayer(payerConn)
	if _, err := p.Hello(ctx, Hello{}); err != nil {
		t.Fatal(err)
	}
	// The second resend finds the coins already held: they are acknowledged
	// again, not lost and not counted twice.
	for range 2 {
		acks, err := p.Resend(ctx, pending)
		if err != nil {
			t.Fatal(err)
		}
		for i := range pending {
			if err := pending[i].VerifyAck(acks[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.Done(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if len(payeeWallet.held) != 2 {
		t.Errorf("payee holds %d coins, want 2", len(payeeWallet.held))
	}
}

// stub is a Handler that checks nothing, for tests of the session rules.
type stub struct {
	helloErr, offerErr, keysErr, receiveErr error
	keysShort                               bool    // hand out one key too few
	otherAcks                               bool    // receipts for other coins
	agree                                   []int64 // the change Change agrees to, if set
	batches                                 []int
	give                                    int // change coins Receive and Collect give
	settled                                 int // change coins settled
	offered                                 int64
}

// Change agrees to give what the coins sent exceed the offer by, in one
// coin.
func (s *stub) Change(_ context.Context, p ChangeProposal) ([]int64, error) {
	if s.agree != nil {
		return s.agree, nil
	}
	send, _ := Total(p.Send)
	return []int64{send - s.offered}, nil
}

func (s *stub) Collect(context.Context) ([]otp.Sandbox, error) {
	return stubCoins(s.give), nil
}

func (s *stub) Settle(_ context.Context, change []otp.Sandbox, _ []otp.Ack) error {
	s.settled += len(change)
	return nil
}

func (s *stub) Hello(context.Context, Hello) (Hello, error) { return Hello{}, s.helloErr }
func (s *stub) Offer(_ context.Context, o Offer) error {
	s.offered = o.Amount
	return s.offerErr
}

func (s *stub) ExchangeKeys(_ context.Context, n int) ([]otp.ExchangeKey, error) {
	if s.keysShort {
		n--
	}
	return stubKeys(n), s.keysErr
}

func (s *stub) Receive(_ context.Context, coins []otp.Sandbox) ([]otp.Ack, []otp.Sandbox, error) {
	s.batches = append(s.batches, len(coins))
	acks := make([]otp.Ack, len(coins))
	for i, c := range coins {
		acks[i] = otp.Ack{Token: c.Coin.Data.Token, Link: len(c.Chain) - 1, Sig: stubPaid().ack.Sig}
		if s.otherAcks {
			acks[i].Link++
		}
	}
	return acks, stubCoins(s.give), s.receiveErr
}

func (s *stub) Resend(ctx context.Context, coins []otp.Sandbox) ([]otp.Ack, []otp.Sandbox, error) {
	return s.Receive(ctx, coins)
}

// stubPaid is the one coin, key and receipt the stub's messages carry,
// over and over: the wire takes only well-formed ones, and the stub checks
// nothing.
var stubPaid = sync.OnceValue(func() paid { return newBank(fatalTB{}).pay(fatalTB{}, "stub", 1)[0] })

func stubCoins(n int) []otp.Sandbox    { return slices.Repeat([]otp.Sandbox{stubPaid().sandbox}, n) }
func stubKeys(n int) []otp.ExchangeKey { return slices.Repeat([]otp.ExchangeKey{stubPaid().key}, n) }
func stubAcks(n int) []otp.Ack         { return slices.Repeat([]otp.Ack{stubPaid().ack}, n) }

// fatalTB is a testing.TB for package-level fixtures, which have no test.
type fatalTB struct{ testing.TB }

func (fatalTB) Helper()           {}
func (fatalTB) Fatal(args ...any) { panic(fmt.Sprint(args...)) }

// Messages for driving a payee by hand.
var (
	helloMsg = func() message { return &Hello{Versions: []int{Version}} }
	offerMsg = func() message { return &Offer{Amount: 100, Currency: "EUR", MaxHops: 1} }
	keysReq  = func(n int) message { return &keysRequestMsg{N: n} }
	coinsOf  = func(n int, resend bool) message { return &coinsMsg{Coins: stubCoins(n), Resend: resend} }
	done     = func() message { return &doneMsg{} }
	propose  = func(n int) message {
		// Sent: 1.50 and n-1 coins of 1.00 for the 1.00 offered.
		return &ChangeProposal{Send: append([]int64{150}, slices.Repeat([]int64{100}, n-1)...), Keys: stubKeys(1)}
	}
	receipts = func(n int) message { return &receiptsMsg{Acks: stubAcks(n)} }
	collect  = func() message { return &collectMsg{} }
)

// exchange sends m and returns the payee's reply.
func exchange(ctx context.Context, c *Conn, m message) (message, error) {
	if err := c.send(ctx, m); err != nil {
		return nil, err
	}
	return c.recv(ctx)
}

func TestServeAcceptsOrder(t *testing.T) {
	tests := []struct {
		name    string
		give    int
		msgs    []message
		batches []int
	}{
		{"hello and done", 0, []message{helloMsg(), done()}, nil},
		{"resends only", 0, []message{helloMsg(), coinsOf(2, true), coinsOf(1, true), done()}, []int{2, 1}},
		{"offer without rounds", 0, []message{helloMsg(), offerMsg(), done()}, nil},
		{"resend then pay", 0, []message{helloMsg(), coinsOf(1, true), offerMsg(), keysReq(2), coinsOf(2, false), done()}, []int{1, 2}},
		{"round over two messages", 0, []message{helloMsg(), offerMsg(), keysReq(3), coinsOf(1, false), coinsOf(2, false), done()}, []int{1, 2}},
		{"round paid in part", 0, []message{helloMsg(), offerMsg(), keysReq(3), coinsOf(1, false), done()}, []int{1}},
		{"two rounds", 0, []message{helloMsg(), offerMsg(), keysReq(1), coinsOf(1, false), keysReq(2), coinsOf(2, false), done()}, []int{1, 2}},
		{"payment with change", 1, []message{helloMsg(), offerMsg(), propose(2), keysReq(2), coinsOf(2, false), receipts(1), done()}, []int{2}},
		{"change over two messages", 1, []message{helloMsg(), offerMsg(), propose(2), keysReq(2), coinsOf(1, false), receipts(1), done()}, []int{1}},
		{"collect then pay", 2, []message{helloMsg(), collect(), receipts(2), offerMsg(), done()}, nil},
		{"nothing to collect", 0, []message{helloMsg(), collect(), collect(), offerMsg(), done()}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			payerConn, payeeConn := connect(t, newKeypair(t), newKeypair(t))
			h := &stub{give: tt.give}
			served := serve(ctx, payeeConn, h)
			for _, m := range tt.msgs {
				if _, err := exchange(ctx, payerConn, m); err != nil {
					t.Fatalf("%s: %v", m.kind(), err)
				}
			}
			if err := <-served; err != nil {
				t.Fatalf("Serve: %v", err)
			}
			if !slices.Equal(h.batches, tt.batches) {
				t.Errorf("handler saw batches %v, want %v", h.batches, tt.batches)
			}
		})
	}
}

func TestServeRefusesOutOfOrder(t *testing.T) {
	tests := []struct {
		name string
		give int       // change coins the payee gives
		ok   []message // accepted first
		bad  message
		want string
	}{
		{"offer before hello", 0, nil, offerMsg(), "offer before hello"},
		{"resend before hello", 0, nil, coinsOf(1, true), "coins before hello"},
		{"done before hello", 0, nil, done(), "done before hello"},
		{"second hello", 0, []message{helloMsg()}, helloMsg(), "second hello"},
		{"keys before offer", 0, []message{helloMsg()}, keysReq(1), "keysRequest before an accepted offer"},
		{"coins before keys", 0, []message{helloMsg(), offerMsg()}, coinsOf(1, false), "1 coins for 0 exchange keys"},
		{"coins without offer", 0, []message{helloMsg()}, coinsOf(1, false), "1 coins for 0 exchange keys"},
		{"resend after offer", 0, []message{helloMsg(), offerMsg()}, coinsOf(1, true), "resend after the offer"},
		{"second offer", 0, []message{helloMsg(), offerMsg()}, offerMsg(), "second offer"},
		{"more coins than keys", 0, []message{helloMsg(), offerMsg(), keysReq(1)}, coinsOf(2, false), "2 coins for 1 exchange keys"},
		{"round overpaid over two messages", 0, []message{helloMsg(), offerMsg(), keysReq(2), coinsOf(1, false)}, coinsOf(2, false), "2 coins for 1 exchange keys"},
		{"keys while keys await coins", 0, []message{helloMsg(), offerMsg(), keysReq(1)}, keysReq(1), "while 1 exchange keys await coins"},
		{"done while keys await coins", 0, []message{helloMsg(), offerMsg(), keysReq(1)}, done(), "done while 1 exchange keys await coins"},
		{"accept from the payer", 0, []message{helloMsg()}, &acceptMsg{}, "accept comes only from the payee"},
		{"keys from the payer", 0, []message{helloMsg()}, &keysMsg{}, "keys comes only from the payee"},
		{"acks from the payer", 0, []message{helloMsg()}, &acksMsg{}, "acks comes only from the payee"},
		{"change before offer", 0, []message{helloMsg()}, propose(1), "change before an accepted offer"},
		{"change after keys", 0, []message{helloMsg(), offerMsg(), keysReq(1)}, propose(1), "change proposal after the payment began"},
		{"second proposal", 0, []message{helloMsg(), offerMsg(), propose(1)}, propose(1), "change proposal after the payment began"},
		{"keys for other coins than agreed", 0, []message{helloMsg(), offerMsg(), propose(2)}, keysReq(3), "keysRequest for 3 coins in round 1"},
		{"second round of a payment with change", 0, []message{helloMsg(), offerMsg(), propose(1), keysReq(1), coinsOf(1, false)}, keysReq(1), "round 2"},
		{"done while change awaits receipts", 1, []message{helloMsg(), offerMsg(), propose(1), keysReq(1), coinsOf(1, false)}, done(), "done while 1 change coins await receipts"},
		{"collect after offer", 0, []message{helloMsg(), offerMsg()}, collect(), "collect after the offer"},
		{"receipts for other change", 1, []message{helloMsg(), offerMsg(), propose(1), keysReq(1), coinsOf(1, false)}, receipts(2), "2 receipts for 1 change coins"},
		{"offer while change awaits receipts", 1, []message{helloMsg(), collect()}, offerMsg(), "offer while 1 change coins await receipts"},
		{"receipts without change", 0, []message{helloMsg()}, receipts(1), "receipts for change that was not sent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			payerConn, payeeConn := connect(t, newKeypair(t), newKeypair(t))
			served := serve(ctx, payeeConn, &stub{give: tt.give})
			for _, m := range tt.ok {
				if _, err := exchange(ctx, payerConn, m); err != nil {
					t.Fatalf("%s: %v", m.kind(), err)
				}
			}
			_, err := exchange(ctx, payerConn, tt.bad)
			wantRemote(t, err, CodeProtocol, tt.want)
			if err := <-served; !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Serve = %v, want %v naming %q", err, ErrProtocol, tt.want)
			}
		})
	}
}

func TestServeRefusesMalformed(t *testing.T) {
	tests := []struct {
		name, msg, want string
	}{
		{"unknown type", `{"type":"refund","body":{}}`, `unknown message type "refund"`},
		{"unknown field", `{"type":"hello","body":{"versions":[1],"issuers":[],"colour":"red"}}`, `unknown object member name "colour"`},
		{"trailing data", `{"type":"hello","body":{"versions":[1],"issuers":[]}} {}`, "trailing data"},
		{"not json", `hello`, "message envelope"},
		{"long complaint", `{"type":"hello","body":{"` + strings.Repeat("x", 5000) + `":1}}`, `unknown object member name "xxxx`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			payerConn, payeeConn := connect(t, newKeypair(t), newKeypair(t))
			served := serve(ctx, payeeConn, &stub{})
			if err := payerConn.writeMessage(ctx, []byte(tt.msg)); err != nil {
				t.Fatal(err)
			}
			_, err := payerConn.recv(ctx)
			wantRemote(t, err, CodeProtocol, tt.want)
			if err := <-served; !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Serve = %v, want %v naming %q", err, ErrProtocol, tt.want)
			}
		})
	}
}

func wantRemote(t *testing.T, err error, code, text string) {
	t.Helper()
	re, ok := errors.AsType[*RemoteError](err)
	if !ok {
		t.Fatalf("got %v, want a *RemoteError", err)
	}
	if re.Code != code || !strings.Contains(re.Message, text) {
		t.Errorf("got %s %q, want %s naming %q", re.Code, re.Message, code, text)
	}
}

// TestHandlerErrors checks what the payer is told when the payee's wallet
// fails: a *RemoteError's text, or only a code, never the error itself.
func TestHandlerErrors(t *testing.T) {
	secret := errors.New("vault /home/alice/wallet: PIN 4711 rejected")
	limit := &RemoteError{Code: "limit", Message: "amount above the daily limit"}
	tests := []struct {
		name      string
		h         *stub
		run       func(context.Context, *Payer) error
		code, msg string
		served    error
	}{
		{"hello", &stub{helloErr: secret}, hello, CodeRefused, "hello refused", secret},
		{"offer declined", &stub{offerErr: secret}, pay(0), CodeDeclined, "offer declined", secret},
		{"offer with reason", &stub{offerErr: fmt.Errorf("ui: %w", limit)}, pay(0), "limit", limit.Message, limit},
		{"keys", &stub{keysErr: secret}, pay(1), CodeRefused, "no exchange keys", secret},
		{"keys short", &stub{keysShort: true}, pay(2), CodeRefused, "no exchange keys", nil},
		{"coins", &stub{receiveErr: secret}, pay(2), CodeRefused, "coins refused", secret},
		{"coins with reason", &stub{receiveErr: limit}, pay(2), "limit", limit.Message, limit},
		// Receipts travel as signatures in the coins' order: the session
		// refuses ones its wallet made for anything else.
		{"receipts for other coins", &stub{otherAcks: true}, pay(2), CodeRefused, "coins refused", nil},
		// The payee's own handler, agreeing to change the session cannot
		// carry: more coins than the payer sent keys, or coins out of order.
		{"change in more coins than keys", &stub{agree: []int64{25, 25}}, proposeChange(1), CodeRefused, "change refused", nil},
		{"change out of order", &stub{agree: []int64{10, 40}}, proposeChange(2), CodeRefused, "change refused", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			payerConn, payeeConn := connect(t, newKeypair(t), newKeypair(t))
			served := serve(ctx, payeeConn, tt.h)
			err := tt.run(ctx, NewPayer(payerConn))
			wantRemote(t, err, tt.code, tt.msg)
			if strings.Contains(err.Error(), "4711") {
				t.Errorf("payer learnt the payee's secret: %v", err)
			}
			err = <-served
			if err == nil || tt.served != nil && !errors.Is(err, tt.served) {
				t.Errorf("Serve = %v, want %v", err, tt.served)
			}
		})
	}
}

// TestServeRefusesUnbalancedChange: whatever the handler agrees to, the
// session agrees only to change that leaves the payee paid the offer it
// accepted, sum(sent) - sum(change) = offered, as the payer checks on its
// side. A lying payer's proposal that a naive handler agrees to (a fixed
// change, say) is refused before any key is handed out, and the session
// ends naming the sums.
func TestServeRefusesUnbalancedChange(t *testing.T) {
	tests := []struct {
		name  string
		send  []int64
		agree []int64
	}{
		{"nothing beyond the offer sent", []int64{100}, []int64{50}},
		{"less sent than the offer and the change", []int64{120}, []int64{50}},
		{"more change than the coins exceed the offer by", []int64{150}, []int64{60}},
		{"less change than the coins exceed the offer by", []int64{150}, []int64{25, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			payerConn, payeeConn := connect(t, newKeypair(t), newKeypair(t))
			served := serve(ctx, payeeConn, &stub{agree: tt.agree})
			for _, m := range []message{helloMsg(), offerMsg()} {
				if _, err := exchange(ctx, payerConn, m); err != nil {
					t.Fatalf("%s: %v", m.kind(), err)
				}
			}
			_, err := exchange(ctx, payerConn, &ChangeProposal{Send: tt.send, Keys: stubKeys(2)})
			wantRemote(t, err, CodeRefused, "change refused")
			if err := <-served; err == nil || !strings.Contains(err.Error(), "not the 100 offered") {
				t.Errorf("Serve = %v, want the sums named", err)
			}
		})
	}
}

func hello(ctx context.Context, p *Payer) error {
	_, err := p.Hello(ctx, Hello{})
	return err
}

// pay runs a payment of n coins (none: only the offer) with stub data.
// proposeChange offers 1.00 and proposes to pay it with 1.50, with keys
// for k change coins.
func proposeChange(k int) func(context.Context, *Payer) error {
	return func(ctx context.Context, p *Payer) error {
		if err := hello(ctx, p); err != nil {
			return err
		}
		if err := p.Offer(ctx, Offer{Amount: 100, Currency: "EUR", MaxHops: 1}); err != nil {
			return err
		}
		_, err := p.ProposeChange(ctx, ChangeProposal{Send: []int64{150}, Keys: stubKeys(k)})
		return err
	}
}

func pay(n int) func(context.Context, *Payer) error {
	return func(ctx context.Context, p *Payer) error {
		if err := hello(ctx, p); err != nil {
			return err
		}
		if err := p.Offer(ctx, Offer{Amount: 100, Currency: "EUR", MaxHops: 1}); err != nil || n == 0 {
			return err
		}
		if _, err := p.ExchangeKeys(ctx, n); err != nil {
			return err
		}
		_, err := p.Send(ctx, stubCoins(n))
		return err
	}
}

func TestVersionMismatch(t *testing.T) {
	t.Run("payer", func(t *testing.T) {
		ctx := testContext(t)
		payerConn, payeeConn := connect(t, newKeypair(t), newKeypair(t))
		served := serve(ctx, payeeConn, &stub{})
		// Version 2 is a payer whose offer does not say the coins' hops.
		_, err := exchange(ctx, payerConn, &Hello{Versions: []int{1, 2}})
		wantRemote(t, err, CodeVersion, "peer speaks [1 2], this side 4")
		if err := <-served; !errors.Is(err, ErrVersion) {
			t.Errorf("Serve = %v, want %v", err, ErrVersion)
		}
	})
	t.Run("payee", func(t *testing.T) {
		ctx := testContext(t)
		payerConn, payeeConn := connect(t, newKeypair(t), newKeypair(t))
		// Version 2 is a payee that would refuse the offer's maxHops.
		told := script(ctx, payeeConn, &Hello{Versions: []int{2}})
		if _, err := NewPayer(payerConn).Hello(ctx, Hello{}); !errors.Is(err, ErrVersion) {
			t.Errorf("Hello = %v, want %v", err, ErrVersion)
		}
		wantRemote(t, <-told, CodeVersion, "peer speaks [2], this side 4")
	})
	// A version 3 wallet writes every message in JSON, and reads only
	// JSON: its hello, byte for byte as it writes it, is refused in JSON
	// it reads, naming both versions.
	t.Run("version 3 payer", func(t *testing.T) {
		ctx := testContext(t)
		payerConn, payeeConn := connect(t, newKeypair(t), newKeypair(t))
		served := serve(ctx, payeeConn, &stub{})
		if err := payerConn.writeMessage(ctx, []byte(`{"type":"hello","body":{"versions":[3],"issuers":["bank.test"]}}`)); err != nil {
			t.Fatal(err)
		}
		reply, err := payerConn.readMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m, err := decodeMessage(reply) // version 3's decoder, unchanged
		if err != nil {
			t.Fatalf("a version 3 wallet cannot read the refusal %q: %v", reply, err)
		}
		wantRemote(t, m.(*RemoteError), CodeVersion, "peer speaks [3], this side 4")
		if err := <-served; !errors.Is(err, ErrVersion) {
			t.Errorf("Serve = %v, want %v", err, ErrVersion)
		}
	})
	t.Run("version 3 payee", func(t *testing.T) {
		ctx := testContext(t)
		payerConn, payeeConn := connect(t, newKeypair(t), newKeypair(t))
		heard := make(chan []byte, 1)
		go func() {
			hello, _ := payeeConn.readMessage(ctx)
			heard <- hello
			// What a version 3 payee answers a hello without its version.
			payeeConn.writeMessage(ctx, []byte(`{"type":"error","body":{"code":"version","message":"no common protocol version: peer speaks [4], this side 3"}}`))
		}()
		_, err := NewPayer(payerConn).Hello(ctx, Hello{})
		wantRemote(t, err, CodeVersion, "peer speaks [4], this side 3")
		// and the hello it was sent is one a version 3 payee reads.
		if m, err := decodeMessage(<-heard); err != nil || !slices.Equal(m.(*Hello).Versions, []int{4}) {
			t.Errorf("the hello sent decodes in JSON as %+v, %v", m, err)
		}
	})
}

// script plays a payee that answers the first message with reply, then
// returns the error the payer sent next.
func script(ctx context.Context, c *Conn, reply message) <-chan error {
	told := make(chan error, 1)
	go func() {
		if _, err := c.recv(ctx); err != nil {
			told <- err
			return
		}
		if err := c.send(ctx, reply); err != nil {
			told <- err
			return
		}
		_, err := c.recv(ctx)
		told <- err
	}()
	return told
}

// TestPayerRefusesWrongReplies plays payees that answer out of turn.
func TestPayerRefusesWrongReplies(t *testing.T) {
	tests := []struct {
		name  string
		reply message
		run   func(context.Context, *Payer) error
		want  string
	}{
		{"keys for an offer", &keysMsg{}, func(ctx context.Context, p *Payer) error {
			return p.Offer(ctx, Offer{Amount: 1, Currency: "EUR", MaxHops: 1})
		}, "unexpected keys from the peer, wanted accept"},
		{"too few keys", &keysMsg{Keys: stubKeys(1)}, func(ctx context.Context, p *Payer) error {
			_, err := p.ExchangeKeys(ctx, 2)
			return err
		}, "1 exchange keys for a request of 2"},
		{"too few receipts", &acksMsg{Acks: stubAcks(1)}, func(ctx context.Context, p *Payer) error {
			_, err := p.Send(ctx, stubCoins(2))
			return err
		}, "1 receipts for 2 coins"},
		{"change worth other than asked", &agreedMsg{Change: []int64{100}}, func(ctx context.Context, p *Payer) error {
			p.offered = 100
			_, err := p.ProposeChange(ctx, ChangeProposal{Send: []int64{150}, Keys: stubKeys(2)})
			return err
		}, "agreed change of 1 coins worth 100 for 2 keys and 150 sent against 100 offered"},
		{"more change coins than keys", &agreedMsg{Change: []int64{25, 25}}, func(ctx context.Context, p *Payer) error {
			p.offered = 100
			_, err := p.ProposeChange(ctx, ChangeProposal{Send: []int64{150}, Keys: stubKeys(1)})
			return err
		}, "agreed change of 2 coins worth 50 for 1 keys"},
		{"done for coins", &doneMsg{}, func(ctx context.Context, p *Payer) error {
			_, err := p.Resend(ctx, stubCoins(1))
			return err
		}, "unexpected done"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			payerConn, payeeConn := connect(t, newKeypair(t), newKeypair(t))
			// Past the hellos, which these payees skip.
			payerConn.codec.binary, payeeConn.codec.binary = true, true
			told := script(ctx, payeeConn, tt.reply)
			err := tt.run(ctx, NewPayer(payerConn))
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %v naming %q", err, ErrProtocol, tt.want)
			}
			wantRemote(t, <-told, CodeProtocol, tt.want)
		})
	}
}

// TestPayerSplitsBatches sends more coins than one message may carry, by
// count and by size; the payee takes them as one round.
func TestPayerSplitsBatches(t *testing.T) {
	// A fresh coin takes a few hundred bytes on the wire, so that MaxBatch
	// of them fit in a message: this one carries an issuer signature of
	// the largest size, which the stub does not check.
	sandbox := newBank(t).pay(t, "split", 1)[0].sandbox
	sandbox.Coin.Signature.Value = base64.RawURLEncoding.EncodeToString(make([]byte, maxSig))
	k := codec{binary: true}
	one, err := k.encode(&coinsMsg{Coins: []otp.Sandbox{sandbox}})
	if err != nil {
		t.Fatal(err)
	}
	two, err := k.encode(&coinsMsg{Coins: []otp.Sandbox{sandbox, sandbox}})
	if err != nil {
		t.Fatal(err)
	}
	bySize := MaxMessageSize/(len(two)-len(one)) + 10
	if bySize > MaxBatch {
		t.Fatalf("a batch of %d coins is over MaxBatch", bySize)
	}
	tests := []struct {
		name    string
		n       int
		resend  bool
		batches []int
	}{
		{"by count", MaxBatch + 1, true, []int{MaxBatch / 2, MaxBatch/2 + 1}},
		{"by size", bySize, false, []int{bySize / 2, bySize - bySize/2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			payerConn, payeeConn := connect(t, newKeypair(t), newKeypair(t))
			h := &stub{}
			served := serve(ctx, payeeConn, h)
			p := NewPayer(payerConn)
			if err := hello(ctx, p); err != nil {
				t.Fatal(err)
			}
			coins := slices.Repeat([]otp.Sandbox{sandbox}, tt.n)
			deliver := p.Resend
			if !tt.resend {
				if err := p.Offer(ctx, Offer{Amount: 100, Currency: "EUR", MaxHops: 1}); err != nil {
					t.Fatal(err)
				}
				if _, err := p.ExchangeKeys(ctx, tt.n); err != nil {
					t.Fatal(err)
				}
				deliver = p.Send
			}
			acks, err := deliver(ctx, coins)
			if err != nil {
				t.Fatal(err)
			}
			if len(acks) != tt.n {
				t.Errorf("%d receipts for %d coins", len(acks), tt.n)
			}
			if err := p.Done(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-served; err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(h.batches, tt.batches) {
				t.Errorf("payee received batches %v, want %v", h.batches, tt.batches)
			}
		})
	}
}

func TestServeHonoursContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(testContext(t), 50*time.Millisecond)
	defer cancel()
	_, payeeConn := connect(t, newKeypair(t), newKeypair(t))
	if err := Serve(ctx, payeeConn, &stub{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Serve with a silent payer = %v, want %v", err, context.DeadlineExceeded)
	}
}

// TestPayerChange drives a payment with change and a collect through the
// Payer: change waits in Change, and nothing else can be asked until the
// payer settles it.
func TestPayerChange(t *testing.T) {
	ctx := testContext(t)
	payerConn, payeeConn := connect(t, newKeypair(t), newKeypair(t))
	h := &stub{give: 1}
	served := serve(ctx, payeeConn, h)
	p := NewPayer(payerConn)
	if _, err := p.Hello(ctx, Hello{}); err != nil {
		t.Fatal(err)
	}
	got, err := p.Collect(ctx)
	if err != nil || len(got) != 1 || len(p.Change()) != 1 {
		t.Fatalf("collect: %d coins, %v", len(got), err)
	}
	if err := p.Offer(ctx, Offer{Amount: 150, Currency: "EUR", MaxHops: 1}); !errors.Is(err, errUnsettled) {
		t.Fatalf("offer with change unsettled: %v, want errUnsettled", err)
	}
	if err := p.SettleChange(ctx, stubAcks(2)); err == nil {
		t.Fatal("two receipts for one change coin were sent")
	}
	if err := p.SettleChange(ctx, stubAcks(1)); err != nil {
		t.Fatal(err)
	}
	if err := p.Offer(ctx, Offer{Amount: 150, Currency: "EUR", MaxHops: 1}); err != nil {
		t.Fatal(err)
	}
	if change, err := p.ProposeChange(ctx, ChangeProposal{Send: []int64{100, 100}, Keys: stubKeys(2)}); err != nil || !slices.Equal(change, []int64{50}) {
		t.Fatalf("proposal agreed with change %v, %v; want 50", change, err)
	}
	if _, err := p.ExchangeKeys(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Send(ctx, stubCoins(2)); err != nil {
		t.Fatal(err)
	}
	if len(p.Change()) != 1 {
		t.Fatalf("change after the payment: %d coins, want 1", len(p.Change()))
	}
	if err := p.Done(ctx); !errors.Is(err, errUnsettled) {
		t.Fatalf("done with change unsettled: %v, want errUnsettled", err)
	}
	if err := p.SettleChange(ctx, stubAcks(1)); err != nil {
		t.Fatal(err)
	}
	if err := p.Done(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if h.settled != 2 {
		t.Errorf("payee settled %d change coins, want 2", h.settled)
	}
}
