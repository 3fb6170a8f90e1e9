package p2p

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/otpcash/otpcash/otp"
)

// Version is the session protocol version this package speaks; it is the
// only one there is.
const Version = 1

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
}

type acceptMsg struct{}

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

type acksMsg struct {
	Acks []otp.Ack `json:"acks"`
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
	return checkLen("offer memo", o.Memo, maxText)
}

func isCurrencyCode(s string) bool {
	for i := range len(s) {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return len(s) == 3
}

func (*acceptMsg) check() error { return nil }
func (*doneMsg) check() error   { return nil }

func (k *keysRequestMsg) check() error { return checkCount("keysRequest n", k.N, 1) }
func (k *keysMsg) check() error        { return checkCount("keys", len(k.Keys), 0) }
func (c *coinsMsg) check() error       { return checkCount("coins", len(c.Coins), 1) }
func (a *acksMsg) check() error        { return checkCount("acks", len(a.Acks), 0) }

func (e *RemoteError) check() error {
	if e.Code == "" {
		return violation("error without a code")
	}
	if err := checkLen("error code", e.Code, maxCode); err != nil {
		return err
	}
	return checkLen("error message", e.Message, maxText)
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
)

func byKind(makers ...func() message) map[string]func() message {
	m := make(map[string]func() message, len(makers))
	for _, mk := range makers {
		m[mk().kind()] = mk
	}
	return m
}

// envelope is the one shape of every message: {"type": ..., "body": ...}.
type envelope[B any] struct {
	Type string `json:"type"`
	Body B      `json:"body"`
}

// encodeMessage checks m by the rules its receiver will apply, then encodes
// it: a message the peer would refuse is never sent.
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

// decodeMessage decodes one message strictly: an unknown type, an unknown
// field, trailing data or a body out of bounds is an error naming it.
func decodeMessage(b []byte) (message, error) {
	var env envelope[json.RawMessage]
	if err := decodeStrict(b, &env); err != nil {
		return nil, violation("message envelope: %v", err)
	}
	mk, ok := kinds[env.Type]
	if !ok {
		return nil, violation("unknown message type %q", env.Type)
	}
	if len(env.Body) == 0 || string(env.Body) == "null" {
		return nil, violation("%s message without a body", env.Type)
	}
	m := mk()
	if err := decodeStrict(env.Body, m); err != nil {
		return nil, violation("%s body: %v", env.Type, err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}

// checkVersions finds Version among the versions the peer speaks.
func checkVersions(theirs []int) error {
	if !slices.Contains(theirs, Version) {
		return fmt.Errorf("%w: peer speaks %v, this side %d", ErrVersion, theirs, Version)
	}
	return nil
}
