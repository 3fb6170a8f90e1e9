package p2p

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/otpcash/otpcash/internal/showable"
	"github.com/otpcash/otpcash/internal/strictjson"
	"github.com/otpcash/otpcash/otp"
)

// Version is the session protocol version this package speaks. Version 2
// stopped the payee listing its coins with its acceptance: the payer asks
// for an amount of change and the payee says which coins it gives, or no.
// Version 3 made the offer say the coins' hop count (Offer.MaxHops), which
// a version 2 peer would refuse as an unknown member mid-session. Version
// 4 sends every message after the hellos in deterministic CBOR (wire.go);
// the hellos, and an error answering one, stay JSON, so that a peer of any
// version reads which versions the other speaks. A peer that speaks
// another version is refused with ErrVersion, naming both.
const Version = 4

// MaxBatch is the most coins, exchange keys or receipts one message carries,
// and so the most coins one round of a payment moves.
const MaxBatch = 10000

// Limits on the small fields, so that a hostile peer cannot fill a screen or
// a log.
const (
	maxVersions = 16
	maxIssuers  = 64
	maxText     = 1024 // memo and error message, in bytes
	maxCode     = 64
)

// message is the body of one protocol message.
type message interface {
	kind() string // the envelope's type
	check() error // bounds and well-formedness, before any use
}

// Hello opens a session in both directions. Versions is filled in by the
// package; Issuers names the coin issuers the sender accepts.
type Hello struct {
	Versions []int    `json:"versions"`
	Issuers  []string `json:"issuers"`
}

// Offer is what the payer proposes to pay, shown to the payee for
// confirmation.
type Offer struct {
	Amount   int64  `json:"amount"`   // minor units
	Currency string `json:"currency"` // ISO 4217
	Memo     string `json:"memo"`
	Program  string `json:"program"` // the coin program paid with
	// RevocationsIssued is when the bank issued the payer's revocation
	// list, that is when the payer last met the bank: the payee may
	// refuse a payer offline longer than the bank allows. The payer says
	// it; nothing proves it (a payee refuses a time in its future).
	RevocationsIssued time.Time `json:"revocationsIssued,omitzero"`
	// MaxHops is the most transfers any coin of the payment will have
	// made when it arrives, the transfer to the payee included: the
	// payee may refuse by the bank's policy before it hands out a key,
	// and refuses coins that arrive with more. One figure, not one per
	// coin: it is what a policy compares, the coins are not all chosen
	// when the offer is made, and a list would fingerprint the purse.
	MaxHops int `json:"maxHops"`
}

// acceptMsg accepts an offer. It tells the payer nothing of the payee's
// coins: change is asked for with a ChangeProposal.
type acceptMsg struct{}

// ChangeProposal is how the payer proposes to pay an amount it cannot pay
// exactly: it sends coins of the values Send, whose total exceeds the
// amount offered, and asks for the difference in change, sealed to its
// exchange keys Keys. The payee chooses the change coins, at most one per
// key, and answers with their values (agreedMsg), or refuses; so the payer
// learns of the payee's purse only whether it can give that change.
type ChangeProposal struct {
	Send []int64           `json:"send"`
	Keys []otp.ExchangeKey `json:"keys"`
}

// agreedMsg agrees to a change proposal: the values of the change coins the
// payee will seal to the first len(Change) keys of the proposal, largest
// first.
type agreedMsg struct {
	Change []int64 `json:"change"`
}

type collectMsg struct{}

type receiptsMsg struct {
	Acks []otp.Ack `json:"acks"`
}

type settledMsg struct{}

type keysRequestMsg struct {
	N int `json:"n"`
}

type keysMsg struct {
	Keys []otp.ExchangeKey `json:"keys"`
}

type coinsMsg struct {
	Coins  []otp.Sandbox `json:"coins"`
	Resend bool          `json:"resend"`
}

// acksMsg carries the payee's receipts and, when the coins completed a
// payment with change, or answer a collect, the change sealed to the
// payer's keys.
type acksMsg struct {
	Acks   []otp.Ack     `json:"acks"`
	Change []otp.Sandbox `json:"change,omitempty"`
}

type doneMsg struct{}

func (*Hello) kind() string          { return "hello" }
func (*Offer) kind() string          { return "offer" }
func (*acceptMsg) kind() string      { return "accept" }
func (*keysRequestMsg) kind() string { return "keysRequest" }
func (*keysMsg) kind() string        { return "keys" }
func (*coinsMsg) kind() string       { return "coins" }
func (*acksMsg) kind() string        { return "acks" }
func (*doneMsg) kind() string        { return "done" }
func (*ChangeProposal) kind() string { return "change" }
func (*agreedMsg) kind() string      { return "agreed" }
func (*collectMsg) kind() string     { return "collect" }
func (*receiptsMsg) kind() string    { return "receipts" }
func (*settledMsg) kind() string     { return "settled" }
func (*RemoteError) kind() string    { return "error" }

func (h *Hello) check() error {
	if len(h.Versions) > maxVersions {
		return violation("hello lists %d versions, limit %d", len(h.Versions), maxVersions)
	}
	if len(h.Issuers) > maxIssuers {
		return violation("hello lists %d issuers, limit %d", len(h.Issuers), maxIssuers)
	}
	return nil
}

func (o *Offer) check() error {
	if o.Amount <= 0 {
		return violation("offer of %d: amount must be positive", o.Amount)
	}
	if !isCurrencyCode(o.Currency) {
		return violation("offer currency %q is not an ISO 4217 code", o.Currency)
	}
	if o.MaxHops < 1 {
		// A coin arrives by a transfer: it has made at least one.
		return violation("offer of coins of %d hops: a coin paid has made at least one", o.MaxHops)
	}
	if err := checkText("offer program", o.Program, maxCode); err != nil {
		return err
	}
	return checkText("offer memo", o.Memo, maxText)
}

func (*acceptMsg) check() error { return nil }

func (p *ChangeProposal) check() error {
	if err := checkCount("change send", len(p.Send), 1); err != nil {
		return err
	}
	if err := checkCount("change keys", len(p.Keys), 1); err != nil {
		return err
	}
	if _, ok := Total(p.Send); !ok {
		return violation("change: the coins sent are not positive values of a representable total")
	}
	return nil
}

func (a *agreedMsg) check() error {
	if err := checkCount("agreed change", len(a.Change), 1); err != nil {
		return err
	}
	if _, ok := Total(a.Change); !ok {
		return violation("agreed change: the coins are not positive values of a representable total")
	}
	if !slices.IsSortedFunc(a.Change, func(x, y int64) int { return cmp.Compare(y, x) }) {
		return violation("agreed change: the values are not listed largest first")
	}
	return nil
}

// Total adds up coin values, reporting false for a value that is not
// positive or a total that overflows.
func Total(values []int64) (int64, bool) {
	var sum int64
	for _, v := range values {
		if v <= 0 || sum > math.MaxInt64-v {
			return 0, false
		}
		sum += v
	}
	return sum, true
}

func isCurrencyCode(s string) bool {
	for i := range len(s) {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return len(s) == 3
}

func (*doneMsg) check() error    { return nil }
func (*collectMsg) check() error { return nil }
func (*settledMsg) check() error { return nil }

func (k *keysRequestMsg) check() error { return checkCount("keysRequest n", k.N, 1) }
func (k *keysMsg) check() error        { return checkCount("keys", len(k.Keys), 0) }
func (c *coinsMsg) check() error       { return checkCount("coins", len(c.Coins), 1) }
func (a *acksMsg) check() error {
	if err := checkCount("acks", len(a.Acks), 0); err != nil {
		return err
	}
	return checkCount("change", len(a.Change), 0)
}
func (r *receiptsMsg) check() error { return checkCount("receipts", len(r.Acks), 1) }

func (e *RemoteError) check() error {
	if e.Code == "" {
		return violation("error without a code")
	}
	if err := checkText("error code", e.Code, maxCode); err != nil {
		return err
	}
	return checkText("error message", e.Message, maxText)
}

func checkCount(what string, n, least int) error {
	if n < least || n > MaxBatch {
		return violation("%s: %d, want %d to %d", what, n, least, MaxBatch)
	}
	return nil
}

func checkLen(what, s string, limit int) error {
	if len(s) > limit {
		return violation("%s of %d bytes, limit %d", what, len(s), limit)
	}
	return nil
}

// checkText bounds text a peer's user will see, and refuses what would
// let the sender rewrite the screen or log it is shown on rather than be
// shown (internal/showable).
func checkText(what, s string, limit int) error {
	if err := checkLen(what, s, limit); err != nil {
		return err
	}
	if err := showable.Check(s); err != nil {
		return violation("%s: %v", what, err)
	}
	return nil
}

// kinds maps each envelope type to a constructor for its body.
var kinds = byKind(
	func() message { return new(Hello) },
	func() message { return new(Offer) },
	func() message { return new(acceptMsg) },
	func() message { return new(keysRequestMsg) },
	func() message { return new(keysMsg) },
	func() message { return new(coinsMsg) },
	func() message { return new(acksMsg) },
	func() message { return new(doneMsg) },
	func() message { return new(RemoteError) },
	func() message { return new(ChangeProposal) },
	func() message { return new(agreedMsg) },
	func() message { return new(collectMsg) },
	func() message { return new(receiptsMsg) },
	func() message { return new(settledMsg) },
)

func byKind(makers ...func() message) map[string]func() message {
	m := make(map[string]func() message, len(makers))
	for _, mk := range makers {
		m[mk().kind()] = mk
	}
	return m
}

// envelope is the JSON shape of a message, which version 4 writes only
// for the hellos and an error refusing one (and versions 1 to 3 for every
// message): {"type": ..., "body": ...}, in that order, so that a receiver
// knows the body's type before it reads the body.
type envelope[B any] struct {
	Type string `json:"type"`
	Body B      `json:"body"`
}

// encodeMessage checks m by the rules its receiver will apply, then encodes
// it in JSON (codec.encode chooses the encoding): a message the peer would
// refuse is never sent.
func encodeMessage(m message) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.kind(), err)
	}
	b, err := json.Marshal(envelope[message]{Type: m.kind(), Body: m})
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.kind(), err)
	}
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("encode %s: %w: %d bytes, limit %d", m.kind(), ErrMessageTooLarge, len(b), MaxMessageSize)
	}
	return b, nil
}

// decodeMessage decodes one message strictly: an envelope other than
// {"type": ..., "body": ...} in that order, an unknown type, trailing data
// or a body out of bounds is an error naming it, and so, in the body as in
// the envelope, is a member repeated, unknown or spelt in another letter
// case (internal/strictjson).
//
// It reads the type first and then decodes the body straight into its
// message type, in one pass. Before the hellos (codec.decode) only a hello
// or an error is acted on.
func decodeMessage(b []byte) (message, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(b))
	if err := expectToken(dec, '{', "", "a JSON object"); err != nil {
		return nil, violation("message envelope: %v", err)
	}
	if err := expectToken(dec, '"', "type", `the member "type" first`); err != nil {
		return nil, violation("message envelope: %v", err)
	}
	tok, err := dec.ReadToken()
	if err != nil || tok.Kind() != '"' {
		return nil, violation("message envelope: the type is not a string: %v", tokenError(tok, err))
	}
	typ := tok.String()
	mk, ok := kinds[typ]
	if !ok {
		return nil, violation("unknown message type %q", typ)
	}
	// A body that is absent or null would decode to a zero message.
	if err := expectToken(dec, '"', "body", `the member "body"`); err != nil {
		return nil, violation("%s message without a body: %v", typ, err)
	}
	if dec.PeekKind() == 'n' {
		return nil, violation("%s message without a body: null", typ)
	}
	m := mk()
	if err := strictjson.UnmarshalDecode(dec, m); err != nil {
		return nil, violation("%s body: %v", typ, err)
	}
	if err := expectToken(dec, '}', "", "the end of the message"); err != nil {
		return nil, violation("message envelope: %v", err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, violation("message envelope: trailing data after the JSON value")
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// expectToken reads the next token of dec and refuses any but one of kind
// (and, for a string, of text str), which what describes.
func expectToken(dec *jsontext.Decoder, kind jsontext.Kind, str, what string) error {
	tok, err := dec.ReadToken()
	if err == nil && tok.Kind() == kind && (kind != '"' || tok.String() == str) {
		return nil
	}
	return fmt.Errorf("want %s: %w", what, tokenError(tok, err))
}

// tokenError names what was found where a token was expected.
func tokenError(tok jsontext.Token, err error) error {
	switch {
	case err != nil:
		return err
	case tok.Kind() == '"':
		return fmt.Errorf("found %q", tok.String())
	}
	return fmt.Errorf("found %s", tok)
}

// checkVersions finds Version among the versions the peer speaks.
func checkVersions(theirs []int) error {
	if !slices.Contains(theirs, Version) {
		return fmt.Errorf("%w: peer speaks %v, this side %d", ErrVersion, theirs, Version)
	}
	return nil
}
