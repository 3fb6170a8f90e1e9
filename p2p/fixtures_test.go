package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/otpcash/otpcash/otp"
)

// Test data is deterministic, so that golden vectors stay stable: every key
// comes from a labelled seed and every coin expires at a fixed time.
var (
	keysFrom  = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	expiry    = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	keysUntil = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

const issuer = "bank.test"

func seedKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("otpcash/p2p/test/" + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

func publicKey(priv ed25519.PrivateKey) ed25519.PublicKey {
	return priv.Public().(ed25519.PublicKey)
}

// bank issues coins and certifies exchange keys for the tests.
type bank struct {
	coin, exchange *otp.Signer
	verifier       *otp.Verifier
}

func newBank(t testing.TB) *bank {
	t.Helper()
	signer := func(label string, use otp.KeyUse) *otp.Signer {
		priv := seedKey(label)
		k := otp.IssuerKey{
			KeyID: label, Alg: otp.AlgEd25519, Public: otp.EncodeKey(publicKey(priv)), Use: use,
			NotBefore: keysFrom, Expires: keysUntil, DepositUntil: keysUntil,
		}
		if use == otp.UseCoin {
			k.Value, k.Currency = 100, "EUR"
		}
		s, err := otp.NewSigner(issuer, k, priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	b := &bank{coin: signer("coin-1", otp.UseCoin), exchange: signer("exchange-1", otp.UseExchange)}
	b.verifier = otp.NewVerifier(&otp.Catalogue{
		SchemaVersion: otp.SchemaVersion,
		Issuer:        issuer,
		Keys:          []otp.IssuerKey{b.coin.Key, b.exchange.Key},
	})
	return b
}

// issue makes a coin held by a key derived from label.
func (b *bank) issue(t testing.TB, label string) (otp.Sandbox, ed25519.PrivateKey) {
	t.Helper()
	holder := seedKey("holder/" + label)
	coin, err := b.coin.Issue(otp.Serial(sha256.Sum256([]byte("serial/"+label))), publicKey(holder), expiry, otp.GeneralProgram())
	if err != nil {
		t.Fatal(err)
	}
	return otp.Sandbox{Coin: *coin}, holder
}

func (b *bank) certify(t testing.TB, priv ed25519.PrivateKey) otp.ExchangeKey {
	t.Helper()
	k, err := b.exchange.Certify(publicKey(priv), expiry, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// paid is a coin sealed to a payee's exchange key, with the payee's receipt.
type paid struct {
	key     otp.ExchangeKey
	sandbox otp.Sandbox
	ack     otp.Ack
}

// pay makes n coins already sealed to exchange keys, and their receipts.
func (b *bank) pay(t testing.TB, label string, n int) []paid {
	t.Helper()
	out := make([]paid, n)
	for i := range out {
		name := fmt.Sprintf("%s/%d", label, i)
		s, holder := b.issue(t, name)
		exPriv := seedKey("exchange/" + name)
		k := b.certify(t, exPriv)
		if err := s.Transfer(holder, k); err != nil {
			t.Fatal(err)
		}
		ack, err := s.Acknowledge(exPriv)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = paid{k, s, ack}
	}
	return out
}

// payee is a Handler backed by an in-memory wallet that checks everything
// it receives, as a real one would.
type payee struct {
	NoChange
	bank    *bank
	decline error // returned by Offer when set
	keys    map[string]ed25519.PrivateKey
	held    map[string]otp.Sandbox
	offers  []Offer
	batches []int // sizes of the Receive and Resend calls
}

func newPayee(b *bank) *payee {
	return &payee{bank: b, keys: map[string]ed25519.PrivateKey{}, held: map[string]otp.Sandbox{}}
}

func (p *payee) Hello(_ context.Context, h Hello) (Hello, error) {
	return Hello{Issuers: []string{issuer}}, nil
}

func (p *payee) Offer(_ context.Context, o Offer) error {
	p.offers = append(p.offers, o)
	return p.decline
}

func (p *payee) ExchangeKeys(_ context.Context, n int) ([]otp.ExchangeKey, error) {
	keys := make([]otp.ExchangeKey, n)
	for i := range keys {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			return nil, err
		}
		keys[i], err = p.bank.exchange.Certify(publicKey(priv), expiry, nil)
		if err != nil {
			return nil, err
		}
		p.keys[keys[i].Pub] = priv
	}
	return keys, nil
}

func (p *payee) Receive(_ context.Context, coins []otp.Sandbox) ([]otp.Ack, []otp.Sandbox, error) {
	p.batches = append(p.batches, len(coins))
	acks := make([]otp.Ack, len(coins))
	for i := range coins {
		s := &coins[i]
		if err := p.bank.verifier.VerifySandbox(s); err != nil {
			return nil, nil, &RemoteError{Code: "invalid-coin", Message: err.Error()}
		}
		priv, ok := p.keys[s.Holder()]
		if !ok {
			return nil, nil, &RemoteError{Code: "unknown-key", Message: "coin sealed to a key this payee never issued"}
		}
		ack, err := s.Acknowledge(priv)
		if err != nil {
			return nil, nil, err
		}
		p.held[s.Coin.Data.Token] = *s
		acks[i] = ack
	}
	return acks, nil, nil
}

// Resend is Receive: the payee recognises a duplicate by serial and simply
// acknowledges it again.
func (p *payee) Resend(ctx context.Context, coins []otp.Sandbox) ([]otp.Ack, []otp.Sandbox, error) {
	return p.Receive(ctx, coins)
}

// purse is the payer's vault for otp.Execute.
type purse struct {
	keys    map[string]ed25519.PrivateKey // holder keys, by public key
	pending []otp.Sandbox
	spent   int
}

func (p *purse) Seal(_ context.Context, coins []otp.Sandbox, to []otp.ExchangeKey) ([]otp.Sandbox, error) {
	sealed := make([]otp.Sandbox, len(coins))
	for i, s := range coins {
		s.Chain = slices.Clone(s.Chain)
		holder := s.Holder()
		priv, ok := p.keys[holder]
		if !ok {
			return nil, errors.New("no holder key")
		}
		if err := s.Transfer(priv, to[i]); err != nil {
			return nil, err
		}
		delete(p.keys, holder)
		sealed[i] = s
	}
	p.pending = append(p.pending, sealed...)
	return sealed, nil
}

func (p *purse) Destroy(_ context.Context, sealed []otp.Sandbox, acks []otp.Ack) error {
	p.spent += len(sealed)
	p.pending = p.pending[:len(p.pending)-len(sealed)]
	return nil
}

func newKeypair(t testing.TB) Keypair {
	t.Helper()
	k, err := GenerateKeypair()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connect returns both ends of a channel over loopback TCP.
func connect(t testing.TB, payerKey, payeeKey Keypair) (payer, payee *Conn) {
	t.Helper()
	ctx := testContext(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := Accept(ctx, ln, payeeKey)
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	payer, err = Dial(ctx, ln.Addr().String(), payerKey)
	if err != nil {
		t.Fatal(err)
	}
	payee = <-accepted
	if payee == nil {
		t.FailNow()
	}
	t.Cleanup(func() { payer.Close(); payee.Close() })
	return payer, payee
}

// serve runs Serve in the background; the channel yields its result.
func serve(ctx context.Context, c *Conn, h Handler) <-chan error {
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, c, h) }()
	return done
}
