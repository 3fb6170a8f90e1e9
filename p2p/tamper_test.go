package p2p_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/storage/sqlite"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/p2p"
	"github.com/otpcash/otpcash/vault"
	"github.com/otpcash/otpcash/wallet"
)

// These tests play attacks on a whole payment between two real wallets,
// with a real bank, over loopback TCP. They live here rather than in package
// wallet because a peer that lies about the plaintext of a message needs
// this package's ReadPlain and WritePlain (export_test.go).

const pin = "123456"

// party is a bank customer with a wallet, and a second handle on its vault
// through which the tests read the wallet's state without going through it.
type party struct {
	w              *wallet.Wallet
	v              *vault.Vault
	account, token string
	id             string       // identity key, as the other side's PeerID
	withdrawn      int64        // value withdrawn into the wallet so far
	offer          wallet.Offer // the last offer its user was shown
}

type testBank struct {
	*bank.Bank
	url string
}

func newTestBank(t testing.TB) *testBank {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "bank.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b, err := bank.New(ctx, st, bank.Config{Logger: slog.New(slog.DiscardHandler), ExchangeKeyRate: rate.Inf, Denominations: denom.Set{100}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)
	return &testBank{Bank: b, url: srv.URL}
}

// newParty opens an account credited with coins of 1.00 withdrawn into a
// new wallet whose user accepts every SAS and every offer.
func (b *testBank) newParty(t testing.TB, coins int64) *party {
	t.Helper()
	ctx := context.Background()
	id, token, err := b.CreateAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "wallet")
	p := &party{account: id, token: token}
	w, err := wallet.Init(ctx, dir, b.url, []byte(pin), wallet.Options{
		PINHashing: wallet.PINHashing{Time: 1, MemoryKiB: 64, Threads: 1},
		ConfirmSAS: func(context.Context, string) bool { return true },
		ConfirmOffer: func(_ context.Context, o wallet.Offer) bool {
			p.offer = o
			return true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	v, err := vault.Open(ctx, dir, []byte(pin))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	p.w, p.v = w, v
	_, pub, err := v.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.id = base64.RawURLEncoding.EncodeToString(pub)
	p.withdraw(t, b, coins)
	return p
}

func (p *party) withdraw(t testing.TB, b *testBank, coins int64) {
	t.Helper()
	if coins == 0 {
		return
	}
	ctx := context.Background()
	if _, err := b.Credit(ctx, p.account, coins*100); err != nil {
		t.Fatal(err)
	}
	if _, err := p.w.Withdraw(ctx, wallet.Account{ID: p.account, Token: p.token}, coins*100); err != nil {
		t.Fatal(err)
	}
	p.withdrawn += coins * 100
}

func (p *party) identity(t testing.TB) p2p.Keypair {
	t.Helper()
	priv, pub, err := p.v.Identity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p2p.Keypair{Private: priv, Public: pub}
}

// holding is one line of a vault's coin list.
type holding struct {
	Token string
	Value int64
	Hops  int
	State vault.State
	Peer  string
	Acked bool
}

// snapshot is everything a session could change in a wallet: every holding
// of every coin with its state, the exchange keys it can offer, its balance
// and its history.
type snapshot struct {
	Coins   []holding
	Keys    []string
	Balance wallet.Balance
	Events  int
}

func (p *party) snapshot(t testing.TB) snapshot {
	t.Helper()
	ctx := context.Background()
	coins, err := p.v.Coins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var s snapshot
	for _, c := range coins {
		s.Coins = append(s.Coins, holding{c.Sandbox.Coin.Data.Token, c.Sandbox.Coin.Data.Value, len(c.Sandbox.Chain), c.State, c.Peer, c.Ack != nil})
	}
	slices.SortFunc(s.Coins, func(a, b holding) int { return cmp.Or(strings.Compare(a.Token, b.Token), a.Hops-b.Hops) })
	n, err := p.v.ExchangeKeyCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n > 0 {
		keys, err := p.v.OfferExchangeKeys(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			s.Keys = append(s.Keys, k.Pub)
		}
		slices.Sort(s.Keys)
	}
	if s.Balance, err = p.w.Balance(ctx); err != nil {
		t.Fatal(err)
	}
	events, err := p.w.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Events = len(events)
	return s
}

// flip names one byte to alter: byte at of message nth (0 for the first)
// of kind that side from sends, XORed with mask.
type flip struct {
	from, kind string
	nth, at    int
	mask       byte
}

// liar stands between a payer and a payee holding both their identity
// keys, so that each takes it for the other: it plays either side running
// the protocol faithfully but for one byte of one message, which it alters
// before encrypting it.
type liar struct {
	flip flip
	done chan struct{}
	mu   sync.Mutex
	orig []byte // the message flip altered, before; nil if none was
	// handedOut are the exchange keys the receiver of orig had last
	// handed out, which its links name by place.
	handedOut []otp.ExchangeKey
	// keys are the exchange keys each side last handed out.
	keys map[string][]otp.ExchangeKey
}

// lie accepts one payer on ln and relays its session to the payee at
// target.
func lie(t testing.TB, ln net.Listener, target string, payer, payee p2p.Keypair, f flip) *liar {
	l := &liar{flip: f, done: make(chan struct{}), keys: map[string][]otp.ExchangeKey{}}
	go func() {
		defer close(l.done)
		ctx, cancel := context.WithTimeout(context.Background(), sessionDeadline)
		defer cancel()
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		a, err := p2p.Server(ctx, nc, payee)
		if err != nil {
			return
		}
		defer a.Close()
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", target)
		if err != nil {
			return
		}
		b, err := p2p.Client(ctx, nc, payer)
		if err != nil {
			return
		}
		defer b.Close()
		var wg sync.WaitGroup
		wg.Go(func() { l.pump("payer", a, b) })
		wg.Go(func() { l.pump("payee", b, a) })
		wg.Wait()
	}()
	return l
}

// pump relays messages from src, sent by side from, to dst until either
// fails, then closes both.
func (l *liar) pump(from string, src, dst *p2p.Conn) {
	defer dst.Close()
	defer src.Close()
	seen := map[string]int{}
	for {
		msg, err := p2p.ReadPlain(src)
		if err != nil {
			return
		}
		kind := p2p.MessageKind(msg)
		l.mu.Lock()
		if f := l.flip; from == f.from && kind == f.kind && seen[kind] == f.nth && f.at < len(msg) {
			l.orig = msg
			l.handedOut = l.keys[map[string]string{"payer": "payee", "payee": "payer"}[from]]
			msg = slices.Clone(msg)
			msg[f.at] ^= f.mask
		}
		if kind == "keys" {
			if m, err := p2p.DecodeMessage(msg, nil); err == nil {
				l.keys[from] = p2p.ExchangeKeysOf(m)
			}
		}
		l.mu.Unlock()
		seen[kind]++
		if err := p2p.WritePlain(dst, msg); err != nil {
			return
		}
	}
}

// outcome is what one session returned on both sides.
type outcome struct {
	paid, got       wallet.Payment
	payErr, recvErr error
}

// sessionDeadline bounds a session of these tests only against a bug that
// hangs it: every session ends by itself, whether it succeeds or fails, so
// the deadline is generous rather than a guess at the machine's speed.
const sessionDeadline = 2 * time.Minute

// pay runs one session of value from payer to payee, through the relay via
// starts when it is not nil.
func pay(t testing.TB, payer, payee *party, value int64, via func(ln net.Listener, target string)) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sessionDeadline)
	defer cancel()
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	ln := listen()
	defer ln.Close()
	addr := ln.Addr().String()
	if via != nil {
		rl := listen()
		defer rl.Close()
		via(rl, addr)
		addr = rl.Addr().String()
	}
	var o outcome
	var wg sync.WaitGroup
	wg.Go(func() { o.got, o.recvErr = payee.w.Receive(ctx, ln) })
	o.paid, o.payErr = payer.w.Pay(ctx, addr, value, "tamper test")
	if o.payErr != nil {
		// A payer that fails before it dials leaves the payee waiting.
		ln.Close()
	}
	wg.Wait()
	return o
}

// Where a session left the coin it was paying.
type state int

const (
	untouched state = iota // both wallets as before the session
	inFlight               // sealed and pending-out; the payee may hold it
	paid                   // spent with the payee's receipt; the payee holds it
)

func (s state) String() string { return [...]string{"untouched", "in flight", "paid"}[s] }

// settle compares the wallets after a session of one coin with before, and
// returns where the session left that coin. Any change other than the
// states the protocol defines for that one coin is an error.
func settle(before [2]snapshot, payer, payee *party, t testing.TB) (state, error) {
	t.Helper()
	after := [2]snapshot{payer.snapshot(t), payee.snapshot(t)}
	if reflect.DeepEqual(before, after) {
		return untouched, nil
	}
	out, err := settleCoin(before, after, payer, payee)
	if err != nil {
		return 0, fmt.Errorf("%w\nbefore: %+v\nafter:  %+v", err, before, after)
	}
	return out, nil
}

func settleCoin(before, after [2]snapshot, payer, payee *party) (state, error) {
	if !reflect.DeepEqual(before[0].Keys, after[0].Keys) {
		return 0, fmt.Errorf("the payer's exchange keys changed")
	}
	gone, added := diff(before[0].Coins, after[0].Coins)
	if len(gone) != 1 || len(added) != 1 || gone[0].Token != added[0].Token {
		return 0, fmt.Errorf("the payer's coins changed by %+v -> %+v; want one coin sealed", gone, added)
	}
	from, to := gone[0], added[0]
	if from.State != vault.Held || to.Hops != from.Hops+1 || to.Peer != payee.id {
		return 0, fmt.Errorf("the payer's coin went from %+v to %+v; want a held coin sealed to the payee", from, to)
	}
	var out state
	switch {
	case to.State == vault.PendingOut && !to.Acked:
		out = inFlight
	case to.State == vault.Spent && to.Acked:
		out = paid
	default:
		return 0, fmt.Errorf("the payer's coin is %+v; want pending-out or spent with a receipt", to)
	}
	gone, added = diff(before[1].Coins, after[1].Coins)
	switch {
	case len(gone) == 0 && len(added) == 0:
		if out == paid {
			return 0, fmt.Errorf("the payer holds a receipt for a coin the payee does not hold")
		}
		if !reflect.DeepEqual(before[1].Keys, after[1].Keys) {
			return 0, fmt.Errorf("the payee's exchange keys changed without a coin")
		}
	case len(gone) == 0 && len(added) == 1:
		if c := added[0]; c.Token != to.Token || c.Hops != to.Hops || c.State != vault.Held || c.Peer != payer.id {
			return 0, fmt.Errorf("the payee's new coin is %+v; want the payer's coin, held", c)
		}
		if used, fresh := diff(before[1].Keys, after[1].Keys); len(used) != 1 || len(fresh) != 0 {
			return 0, fmt.Errorf("the payee's exchange keys changed by -%d +%d for one coin", len(used), len(fresh))
		}
	default:
		return 0, fmt.Errorf("the payee's coins changed by %+v -> %+v", gone, added)
	}
	return out, nil
}

// diff returns the elements only in before and only in after.
func diff[T comparable](before, after []T) (gone, added []T) {
	for _, h := range before {
		if !slices.Contains(after, h) {
			gone = append(gone, h)
		}
	}
	for _, h := range after {
		if !slices.Contains(before, h) {
			added = append(added, h)
		}
	}
	return gone, added
}

// conserved checks that no value was lost or duplicated between the two
// wallets: the payee deposits nothing in these tests, so every coin the
// payer withdrew is held by it, in flight, or held by the payee, and never
// spendable in both.
func conserved(payer, payee snapshot, withdrawn int64) error {
	atPayee := map[string]bool{}
	var sum int64
	for _, h := range payee.Coins {
		if h.State != vault.Held {
			return fmt.Errorf("the payee's coin %.12s is %s", h.Token, h.State)
		}
		atPayee[h.Token] = true
		sum += h.Value
	}
	for _, h := range payer.Coins {
		switch h.State {
		case vault.Held:
			if atPayee[h.Token] {
				return fmt.Errorf("coin %.12s is spendable in both wallets", h.Token)
			}
			sum += h.Value
		case vault.PendingOut:
			if !atPayee[h.Token] {
				sum += h.Value
			}
		case vault.Spent:
			if !atPayee[h.Token] {
				return fmt.Errorf("coin %.12s was paid and the payee does not hold it", h.Token)
			}
		}
	}
	if sum != withdrawn {
		return fmt.Errorf("the wallets hold %d of the %d withdrawn", sum, withdrawn)
	}
	return nil
}

// meetAgain runs a clean session after one that left a coin in flight: the
// coin is delivered first, once, and nothing is lost or duplicated.
func meetAgain(t testing.TB, payer, payee *party) error {
	t.Helper()
	o := pay(t, payer, payee, 100, nil)
	if o.payErr != nil || o.recvErr != nil {
		return fmt.Errorf("the next clean meeting failed: pay %v, receive %v", o.payErr, o.recvErr)
	}
	if o.paid.Resent != 1 || o.got.Resent != 1 {
		return fmt.Errorf("the next meeting re-sent %d (payee: %d) coins; want the one in flight", o.paid.Resent, o.got.Resent)
	}
	s := payer.snapshot(t)
	if s.Balance.PendingOut != 0 {
		return fmt.Errorf("%d still pending-out after the next meeting", s.Balance.PendingOut)
	}
	return conserved(s, payee.snapshot(t), payer.withdrawn)
}

// supply tops the payer up with coins and the payee with exchange keys, so
// that a case and the clean meeting after it have what they need.
func supply(t testing.TB, b *testBank, payer, payee *party) {
	t.Helper()
	const need, batch = 2, 50
	if bal, err := payer.w.Balance(context.Background()); err != nil {
		t.Fatal(err)
	} else if bal.Coins < need {
		payer.withdraw(t, b, batch)
	}
	if n, err := payee.w.ExchangeKeys(context.Background()); err != nil {
		t.Fatal(err)
	} else if n < need {
		if _, err := payee.w.RefillKeys(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
}

// harmless says why a flip a session survived changed nothing it should
// have refused, or returns "" if it did.
func harmless(orig, flipped []byte, handedOut []otp.ExchangeKey) (string, error) {
	was, err := p2p.DecodeMessage(orig, handedOut)
	if err != nil {
		return "", err
	}
	is, err := p2p.DecodeMessage(flipped, handedOut)
	if err != nil {
		return "", fmt.Errorf("a message the decoder refuses was acted on: %w", err)
	}
	if reflect.DeepEqual(was, is) {
		// encoding/json matches field names case-insensitively.
		return "the same message, spelled differently", nil
	}
	if p2p.MessageKind(orig) == "accept" {
		return "the change the payee lists: advice for the payer's plan, which the payee checks against what it holds", nil
	}
	switch was := was.(type) {
	case *p2p.Hello:
		is := is.(*p2p.Hello)
		if slices.Equal(was.Versions, is.Versions) {
			return "the hello's issuers, which neither wallet acts on", nil
		}
	case *p2p.Offer:
		if is := is.(*p2p.Offer); was.Currency == is.Currency {
			return "the offer's amount, memo or revocation list time: what the payer proposes is its own to say", nil
		}
	}
	return "", nil
}

// messages are the messages of a payment of one coin, in the order they
// are sent, with the stride at which their bytes are flipped; nth picks
// one of a side's messages of a kind: the payee's first acks answers the
// payer's collect, its second carries the receipt.
var messages = []struct {
	from, kind  string
	nth, stride int
}{
	{"payer", "hello", 0, 1},
	{"payee", "hello", 0, 1},
	{"payee", "acks", 0, 1},
	{"payer", "offer", 0, 1},
	{"payee", "accept", 0, 1},
	{"payer", "keysRequest", 0, 1},
	{"payee", "keys", 0, 3},
	{"payer", "coins", 0, 7},
	{"payee", "acks", 1, 1},
	{"payer", "done", 0, 1},
	{"payee", "done", 0, 1},
}

// TestTamperEveryMessage pays one coin between two wallets through a liar
// that flips one byte of the plaintext of one message before encrypting
// it, for every message of the payment and every byte of it in turn (a
// stride for the keys and coins), with two masks: 0x01 turns most
// characters into other valid ones (a digit into another digit), 0x20
// changes the case of letters. Every session must fail, unless the flip
// changed nothing the protocol lets a peer lie about; either way the
// wallets must be as before, or in the state the protocol defines for a
// broken session, from which the next clean meeting recovers with nothing
// lost or duplicated.
func TestTamperEveryMessage(t *testing.T) {
	b := newTestBank(t)
	var mu sync.Mutex
	counts := map[string]map[string]int{}
	t.Run("messages", func(t *testing.T) {
		for _, m := range messages {
			name := fmt.Sprintf("%s %s %d", m.from, m.kind, m.nth)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				n := tamperMessage(t, b, flip{from: m.from, kind: m.kind, nth: m.nth}, m.stride)
				mu.Lock()
				counts[name] = n
				mu.Unlock()
			})
		}
	})
	total := 0
	for m, byOutcome := range counts {
		for outcome, n := range byOutcome {
			t.Logf("%s: %d %s", m, n, outcome)
			total += n
		}
	}
	t.Logf("%d sessions with a flipped byte", total)
}

// tamperMessage flips the bytes of one message in turn and returns the
// number of sessions played, by outcome.
func tamperMessage(t *testing.T, b *testBank, which flip, stride int) map[string]int {
	from, kind := which.from, which.kind
	payer, payee := b.newParty(t, 2), b.newParty(t, 0)
	cases := map[string]int{}
	for at := 0; ; at += stride {
		for _, mask := range []byte{0x01, 0x20} {
			supply(t, b, payer, payee)
			before := [2]snapshot{payer.snapshot(t), payee.snapshot(t)}
			f := flip{from: from, kind: kind, nth: which.nth, at: at, mask: mask}
			var l *liar
			o := pay(t, payer, payee, 100, func(ln net.Listener, target string) {
				l = lie(t, ln, target, payer.identity(t), payee.identity(t), f)
			})
			<-l.done
			if l.orig == nil {
				if at == 0 {
					t.Fatalf("no %s from the %s in the session", kind, from)
				}
				return cases
			}
			name := fmt.Sprintf("%s's %s byte %d (%q) ^ %#x", from, kind, at, l.orig[at], mask)
			outcome, err := judge(t, f, l.orig, l.handedOut, o, before, payer, payee)
			if err != nil {
				t.Fatalf("%s: %v\npay: %v\nreceive: %v", name, err, o.payErr, o.recvErr)
			}
			cases[outcome]++
		}
	}
}

// judge checks one session with a flipped byte (see TestTamperEveryMessage)
// and names its outcome.
func judge(t testing.TB, f flip, orig []byte, handedOut []otp.ExchangeKey, o outcome, before [2]snapshot, payer, payee *party) (string, error) {
	flipped := slices.Clone(orig)
	flipped[f.at] ^= f.mask
	st, err := settle(before, payer, payee, t)
	if err != nil {
		return "", err
	}
	if o.payErr == nil && o.recvErr == nil {
		why, err := harmless(orig, flipped, handedOut)
		if err != nil || why == "" {
			return "", fmt.Errorf("accepted %s as %s (%v)", flipped, orig, err)
		}
		// The payment went through as the payer meant it; the payee was
		// shown what the payer sent and reports what it received.
		if st != paid || o.paid.Amount != 100 || o.got.Amount != 100 {
			return "", fmt.Errorf("%s: paid %+v, received %+v, coin %s", why, o.paid, o.got, st)
		}
		if f.kind == "offer" {
			is, _ := p2p.DecodeMessage(flipped, nil)
			if o := is.(*p2p.Offer); payee.offer.Amount != o.Amount || payee.offer.Memo != o.Memo {
				return "", fmt.Errorf("the payee was shown %+v, not the offer sent %+v", payee.offer, o)
			}
		}
		return "paid, harmless: " + why, nil
	}
	// An offer whose amount changed on the way: the payer paid what it
	// meant, and the payee, shown another amount, says so (ErrNotAsOffered)
	// and keeps the valid coin.
	if f.kind == "offer" && o.payErr == nil && errors.Is(o.recvErr, wallet.ErrNotAsOffered) {
		if st != paid || o.paid.Amount != 100 || o.got.Amount != 100 || payee.offer.Amount == 100 {
			return "", fmt.Errorf("an offer of %d shown: paid %+v, received %+v, coin %s", payee.offer.Amount, o.paid, o.got, st)
		}
		return "paid, the payee reports the amount it was shown was not paid", conserved(payer.snapshot(t), payee.snapshot(t), payer.withdrawn)
	}
	return afterFailure(t, st, f.kind == "done", o, payer, payee)
}

// afterFailure checks where a failed session left the coin: untouched, or
// in flight and delivered at the next meeting, or paid when the failure
// came from the closing done, which follows the receipts.
func afterFailure(t testing.TB, st state, closing bool, o outcome, payer, payee *party) (string, error) {
	switch st {
	case untouched:
		return "refused, nothing changed", nil
	case inFlight:
		return "refused, coin in flight, delivered at the next meeting", meetAgain(t, payer, payee)
	default:
		if !closing {
			return "", fmt.Errorf("the session failed and the coin was paid")
		}
		if o.payErr == nil || !strings.Contains(o.payErr.Error(), "coins delivered and acknowledged") {
			return "", fmt.Errorf("a broken closing done: pay %v; want the payer told the coins were delivered", o.payErr)
		}
		return "refused after the coin was paid", conserved(payer.snapshot(t), payee.snapshot(t), payer.withdrawn)
	}
}

// tap relays the bytes of one session frame by frame, flipping byte at of
// the stream side from sends (the handshake included) with mask, or none
// when at is negative. It records the length of every frame it relays.
type tap struct {
	from   string
	frame  int // index of the frame to flip, in from's stream
	at     int // byte of that frame, its length prefix included
	mask   byte
	done   chan struct{}
	mu     sync.Mutex
	frames map[string][]int // frame lengths, prefix included, by sender
	hit    string           // what the flip hit; "" if the stream was shorter
}

func tapWire(ln net.Listener, target, from string, frame, at int, mask byte) *tap {
	tp := &tap{from: from, frame: frame, at: at, mask: mask, done: make(chan struct{}), frames: map[string][]int{}}
	go func() {
		defer close(tp.done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		s, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer s.Close()
		var wg sync.WaitGroup
		wg.Go(func() { tp.relay("payer", c, s) })
		wg.Go(func() { tp.relay("payee", s, c) })
		wg.Wait()
	}()
	return tp
}

// relay copies frames from src to dst until either fails, then closes
// both, as a link that drops does.
func (tp *tap) relay(from string, src, dst net.Conn) {
	defer src.Close()
	defer dst.Close()
	for {
		frame := make([]byte, 2, 2+65535)
		if _, err := io.ReadFull(src, frame); err != nil {
			return
		}
		frame = frame[:2+int(binary.BigEndian.Uint16(frame))]
		if _, err := io.ReadFull(src, frame[2:]); err != nil {
			return
		}
		tp.mu.Lock()
		n := len(tp.frames[from])
		tp.frames[from] = append(tp.frames[from], len(frame))
		// Frames are counted, not stream offsets: a frame's length can
		// differ from one session to the next (the change a payee lists
		// grows with what it holds).
		grown := false
		if from == tp.from && n == tp.frame && tp.at < len(frame) {
			frame[tp.at] ^= tp.mask
			tp.hit = fmt.Sprintf("frame %d byte %d of %d", n, tp.at, len(frame))
			grown = 2+int(binary.BigEndian.Uint16(frame)) > len(frame)
		}
		tp.mu.Unlock()
		if _, err := dst.Write(frame); err != nil {
			return
		}
		// A frame whose length grew leaves its reader waiting for bytes
		// that may never come: the link drops, rather than have the test
		// wait for a deadline, which would make it depend on the machine's
		// speed.
		if grown {
			return
		}
	}
}

// TestTamperWire flips bytes of the encrypted stream of a payment of one
// coin between two wallets: every byte of the three handshake messages,
// and of every record both length bytes, with two masks, 16 bytes spread
// over its ciphertext and the 16 bytes of its tag. Every session must fail,
// the reader naming the handshake or the record's authentication, or, for
// a length that grew, at the link that drops after it; and the wallets must be
// as TestTamperEveryMessage requires.
func TestTamperWire(t *testing.T) {
	b := newTestBank(t)
	payer, payee := b.newParty(t, 2), b.newParty(t, 0)
	var learn *tap
	o := pay(t, payer, payee, 100, func(ln net.Listener, target string) { learn = tapWire(ln, target, "", -1, -1, 0) })
	<-learn.done
	if o.payErr != nil || o.recvErr != nil {
		t.Fatalf("a clean session through the tap: %v, %v", o.payErr, o.recvErr)
	}
	var mu sync.Mutex
	counts := map[string]int{}
	t.Run("frames", func(t *testing.T) {
		for _, from := range []string{"payer", "payee"} {
			for i, n := range learn.frames[from] {
				handshake := i < 2 && from == "payer" || i < 1 && from == "payee"
				last := i == len(learn.frames[from])-1
				t.Run(fmt.Sprintf("%s-%d", from, i), func(t *testing.T) {
					t.Parallel()
					payer, payee := b.newParty(t, 2), b.newParty(t, 0)
					for _, at := range wireOffsets(n, handshake) {
						for _, mask := range wireMasks(at) {
							supply(t, b, payer, payee)
							before := [2]snapshot{payer.snapshot(t), payee.snapshot(t)}
							var tp *tap
							o := pay(t, payer, payee, 100, func(ln net.Listener, target string) {
								tp = tapWire(ln, target, from, i, at, mask)
							})
							<-tp.done
							name := fmt.Sprintf("%s's stream, %s ^ %#x", from, tp.hit, mask)
							outcome, err := judgeWire(t, handshake, last, at, from, o, before, payer, payee)
							if err != nil {
								t.Fatalf("%s: %v\npay: %v\nreceive: %v", name, err, o.payErr, o.recvErr)
							}
							mu.Lock()
							counts[outcome]++
							mu.Unlock()
						}
					}
				})
			}
		}
	})
	total := 0
	for outcome, n := range counts {
		t.Logf("%d %s", n, outcome)
		total += n
	}
	t.Logf("%d sessions with a flipped byte on the wire", total)
}

// wireOffsets are the positions flipped in a frame of n bytes.
func wireOffsets(n int, handshake bool) []int {
	if handshake {
		offsets := make([]int, n)
		for i := range offsets {
			offsets[i] = i
		}
		return offsets
	}
	offsets := []int{0, 1}
	body := n - 2 - 16
	for k := range 16 {
		offsets = append(offsets, 2+k*body/16)
	}
	for i := n - 16; i < n; i++ {
		offsets = append(offsets, i)
	}
	return offsets
}

// wireMasks: a length byte is flipped both ways, to make the frame shorter
// and longer; any flip of an authenticated byte is as good as another.
func wireMasks(at int) []byte {
	if at < 2 {
		return []byte{0x01, 0x20}
	}
	return []byte{0x01}
}

func judgeWire(t testing.TB, handshake, closing bool, at int, from string, o outcome, before [2]snapshot, payer, payee *party) (string, error) {
	if o.payErr == nil && o.recvErr == nil {
		return "", fmt.Errorf("a session with a flipped byte on the wire succeeded")
	}
	reader := o.recvErr
	if from == "payee" {
		reader = o.payErr
	}
	switch {
	case at < 2:
		// A shorter frame fails authentication, a longer one is cut
		// short by the tap, or is too long for the handshake.
	case handshake:
		if !errors.Is(o.payErr, p2p.ErrHandshake) && !errors.Is(o.recvErr, p2p.ErrHandshake) {
			return "", fmt.Errorf("a flipped handshake byte: want %v on either side", p2p.ErrHandshake)
		}
	case !errors.Is(reader, p2p.ErrDecrypt):
		return "", fmt.Errorf("the %s's reader: %v; want %v", from, reader, p2p.ErrDecrypt)
	}
	st, err := settle(before, payer, payee, t)
	if err != nil {
		return "", err
	}
	return afterFailure(t, st, closing, o, payer, payee)
}

// TestRelayWithOwnKeys puts Mallory, a relay with a wallet of her own, in
// the middle: she runs her own handshakes with the payer and the payee,
// forwards their messages, but answers the payer's request for exchange
// keys with her own, which the bank certified for her wallet, and keeps
// the coins. What the test shows is what the design does: the two short
// authentication strings differ, and that is the protection. Once both
// users accept them anyway, the payer seals its coin to Mallory's keys (a
// certificate does not name the payee, so nothing else can tell), believes
// it paid, and Mallory deposits the coin. Besides the strings, the payer's
// wallet names the peer it paid by Mallory's identity key, not the
// payee's; the payee is paid nothing and holds nothing.
func TestRelayWithOwnKeys(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	payer, payee, mallory := b.newParty(t, 1), b.newParty(t, 0), b.newParty(t, 0)
	before := [2]snapshot{payer.snapshot(t), payee.snapshot(t)}
	var sas [2]string
	relayed := make(chan error, 1)
	o := pay(t, payer, payee, 100, func(ln net.Listener, target string) {
		go func() {
			relayed <- func() error {
				a, bc, err := mallory.middle(ctx, t, ln, target)
				if err != nil {
					return err
				}
				defer a.Close()
				defer bc.Close()
				sas = [2]string{a.SAS(), bc.SAS()}
				return mallory.substitute(ctx, a, bc)
			}()
		}()
	})
	if err := <-relayed; err != nil {
		t.Fatalf("Mallory: %v", err)
	}

	if o.paid.SAS != sas[0] || o.got.SAS != sas[1] {
		t.Fatalf("screens show %s and %s, Mallory's handshakes have %v", o.paid.SAS, o.got.SAS, sas)
	}
	if o.paid.SAS == o.got.SAS {
		t.Fatalf("both screens show %s through the relay", o.paid.SAS)
	}
	if o.payErr != nil || o.paid.Amount != 100 {
		t.Fatalf("the payer, having accepted SAS %s: %+v, %v; want it to believe it paid", o.paid.SAS, o.paid, o.payErr)
	}
	if o.paid.Peer != mallory.id || o.paid.Peer == payee.id {
		t.Errorf("the payer paid peer %s; want Mallory's identity key %s", o.paid.Peer, mallory.id)
	}
	if o.recvErr == nil {
		t.Errorf("the payee's session succeeded: %+v", o.got)
	}
	if after := payee.snapshot(t); !reflect.DeepEqual(after, before[1]) {
		t.Errorf("the payee's wallet changed:\nbefore: %+v\nafter:  %+v", before[1], after)
	}
	coins := payer.snapshot(t).Coins
	if len(coins) != 1 || coins[0].State != vault.Spent || coins[0].Peer != mallory.id {
		t.Errorf("the payer's coin: %+v; want spent to Mallory", coins)
	}
	res, err := mallory.w.Deposit(ctx, wallet.Account{ID: mallory.account, Token: mallory.token})
	if err != nil || res.Credited != 100 {
		t.Fatalf("Mallory's deposit: %+v, %v; want the coin credited", res, err)
	}
}

// middle accepts the payer on ln and dials the payee at target, running a
// handshake with each under the relay's own identity key.
func (p *party) middle(ctx context.Context, t testing.TB, ln net.Listener, target string) (toPayer, toPayee *p2p.Conn, err error) {
	nc, err := ln.Accept()
	if err != nil {
		return nil, nil, err
	}
	if toPayer, err = p2p.Server(ctx, nc, p.identity(t)); err != nil {
		return nil, nil, err
	}
	var d net.Dialer
	if nc, err = d.DialContext(ctx, "tcp", target); err == nil {
		toPayee, err = p2p.Client(ctx, nc, p.identity(t))
	}
	if err != nil {
		toPayer.Close()
		return nil, nil, err
	}
	return toPayer, toPayee, nil
}

// substitute relays the payer's requests to the payee and the answers
// back, but for the payee's exchange keys, which it replaces with its own,
// and the payer's coins, which it stores in its own vault and acknowledges.
// It answers the payer's done itself and leaves the payee waiting.
func (p *party) substitute(ctx context.Context, payer, payee *p2p.Conn) error {
	toPayer := p2p.NewCodec() // past the hellos, which it relays as they are
	send := func(msg []byte, err error) error {
		if err != nil {
			return err
		}
		return p2p.WritePlain(payer, msg)
	}
	for {
		msg, err := p2p.ReadPlain(payer)
		if err != nil {
			return err
		}
		switch p2p.MessageKind(msg) {
		case "coins":
			coins, err := toPayer.Coins(msg)
			if err != nil {
				return err
			}
			acks, _, err := p.v.Receive(ctx, payer.PeerID(), coins)
			if err != nil {
				return fmt.Errorf("keep the coins: %w", err)
			}
			if err := send(toPayer.Acks(acks)); err != nil {
				return err
			}
			continue
		case "done":
			return send(toPayer.Done())
		}
		if err := p2p.WritePlain(payee, msg); err != nil {
			return err
		}
		reply, err := p2p.ReadPlain(payee)
		if err != nil {
			return err
		}
		if p2p.MessageKind(reply) == "keys" {
			theirs, err := p2p.DecodeMessage(reply, nil)
			if err != nil {
				return err
			}
			mine, err := p.v.OfferExchangeKeys(ctx, len(p2p.ExchangeKeysOf(theirs)))
			if err != nil {
				return err
			}
			if err := send(toPayer.Keys(mine)); err != nil {
				return err
			}
			continue
		}
		if err := p2p.WritePlain(payer, reply); err != nil {
			return err
		}
	}
}
