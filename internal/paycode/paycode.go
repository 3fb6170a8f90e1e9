// Package paycode is the text form of the two-pass payment: a payment
// request, a payment token and a receipt token, each a versioned,
// deterministic CBOR record (RFC 8949 section 4.2.1) with a 4-byte
// checksum, in base32 after a prefix that names its kind and version
// (OTPCASHREQ1, OTPCASHTOK1, OTPCASHRCP1). Every character is in the QR
// alphanumeric set, so a code holds about 1.6 times as many as in byte mode,
// and the text survives copy and paste; the parser takes lower case too.
//
// The signed objects the records carry (exchange key certificates and
// coins with their chains) travel as their canonical JSON, byte for byte,
// because their signatures are over it: the CBOR only frames them. A
// decoded record is converted to the otp types here, at one edge, and is
// never stored as it is.
//
// Parsing is strict: a duplicate map key, an indefinite length, a tag, an
// unknown field, trailing bytes, any encoding other than the deterministic
// one, or a signed object that is not in its canonical form is refused
// (ErrFormat), as is a damaged text (ErrChecksum). The checksum catches
// damage, not forgery: what a record says is checked by its signatures
// and by the wallet.
package paycode

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/otpcash/otpcash/internal/strictcbor"
	"github.com/otpcash/otpcash/otp"
)

// Errors callers can test with errors.Is.
var (
	ErrFormat   = errors.New("malformed payment code")
	ErrChecksum = errors.New("damaged payment code: checksum mismatch")
	ErrKind     = errors.New("wrong kind of payment code")
)

// Kind names a form; its text starts with "OTPCASH", the kind and the
// version, "1".
type Kind string

const (
	KindRequest Kind = "REQ"
	KindToken   Kind = "TOK"
	KindReceipt Kind = "RCP"
)

const (
	version     = "1"
	scheme      = "OTPCASH:"
	checksumLen = 4
	idLen       = 16
	// MaxText bounds a text form: a token of 1000 coins is about 2.6 MB.
	MaxText = 4 << 20
	// MaxCoins bounds the coins of a token and the acks of a receipt.
	MaxCoins = 1000
	// MaxKeys bounds the exchange keys of a request.
	MaxKeys = 64
	maxText = 1 << 10 // currency, program, memo
)

func (k Kind) prefix() string { return "OTPCASH" + string(k) + version }

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Request is a payee's payment request.
type Request struct {
	ID       [idLen]byte
	Amount   int64
	Currency string
	Program  string
	Memo     string
	Expires  time.Time // to the second
	Keys     []otp.ExchangeKey
	Sig      []byte // the first key's Ed25519 signature over the request
}

// Token is a payer's coins, sealed to the keys of the request it names.
type Token struct {
	Request [idLen]byte
	Coins   []otp.Sandbox
}

// Receipt is the payee's receipts for the coins of a token.
type Receipt struct {
	Request [idLen]byte
	Acks    []otp.Ack
}

// The wire records. Integer keys keep them small; deterministic encoding
// sorts them.
type wireRequest struct {
	ID       []byte   `cbor:"1,keyasint"`
	Amount   int64    `cbor:"2,keyasint"`
	Currency string   `cbor:"3,keyasint"`
	Program  string   `cbor:"4,keyasint"`
	Memo     string   `cbor:"5,keyasint"`
	Expires  int64    `cbor:"6,keyasint"`
	Keys     [][]byte `cbor:"7,keyasint"` // canonical JSON certificates
	Sig      []byte   `cbor:"8,keyasint"`
}

type wireToken struct {
	Request []byte   `cbor:"1,keyasint"`
	Coins   [][]byte `cbor:"2,keyasint"` // canonical JSON sandboxes
}

type wireAck struct {
	Token string `cbor:"1,keyasint"`
	Link  int    `cbor:"2,keyasint"`
	Sig   string `cbor:"3,keyasint"`
}

type wireReceipt struct {
	Request []byte    `cbor:"1,keyasint"`
	Acks    []wireAck `cbor:"2,keyasint"`
}

var (
	encMode = strictcbor.Enc
	decMode = strictcbor.Dec(4, MaxCoins, 16)
)

// EncodeRequest returns the text form of r.
func EncodeRequest(r *Request) (string, error) {
	w := wireRequest{ID: r.ID[:], Amount: r.Amount, Currency: r.Currency, Program: r.Program,
		Memo: r.Memo, Expires: r.Expires.Unix(), Keys: make([][]byte, len(r.Keys)), Sig: r.Sig}
	for i := range r.Keys {
		var err error
		if w.Keys[i], err = otp.Canonical(&r.Keys[i]); err != nil {
			return "", fmt.Errorf("encode request: %w", err)
		}
	}
	if err := w.check(); err != nil {
		return "", fmt.Errorf("encode request: %w", err)
	}
	return encode(KindRequest, w)
}

// ParseRequest decodes the text form of a request (or its URI).
func ParseRequest(text string) (*Request, error) {
	var w wireRequest
	if err := decode(KindRequest, text, &w); err != nil {
		return nil, fmt.Errorf("parse request: %w", err)
	}
	if err := w.check(); err != nil {
		return nil, fmt.Errorf("parse request: %w", err)
	}
	r := &Request{Amount: w.Amount, Currency: w.Currency, Program: w.Program, Memo: w.Memo,
		Expires: time.Unix(w.Expires, 0).UTC(), Keys: make([]otp.ExchangeKey, len(w.Keys)), Sig: w.Sig}
	copy(r.ID[:], w.ID)
	for i, b := range w.Keys {
		k, err := otp.ParseExchangeKey(b)
		if err != nil {
			return nil, fmt.Errorf("parse request: key %d: %w: %w", i, ErrFormat, err)
		}
		if err := canonicalIs(k, b); err != nil {
			return nil, fmt.Errorf("parse request: key %d: %w", i, err)
		}
		r.Keys[i] = *k
	}
	return r, nil
}

func (w *wireRequest) check() error {
	switch {
	case len(w.ID) != idLen:
		return fmt.Errorf("%w: id of %d bytes, want %d", ErrFormat, len(w.ID), idLen)
	case w.Amount <= 0:
		return fmt.Errorf("%w: amount %d", ErrFormat, w.Amount)
	case w.Currency == "" || w.Program == "":
		return fmt.Errorf("%w: no currency or program", ErrFormat)
	case len(w.Currency) > maxText || len(w.Program) > maxText || len(w.Memo) > maxText:
		return fmt.Errorf("%w: currency, program or memo over %d bytes", ErrFormat, maxText)
	case w.Expires <= 0:
		return fmt.Errorf("%w: expiry %d", ErrFormat, w.Expires)
	case len(w.Keys) == 0 || len(w.Keys) > MaxKeys:
		return fmt.Errorf("%w: %d exchange keys, want 1..%d", ErrFormat, len(w.Keys), MaxKeys)
	case len(w.Sig) != ed25519.SignatureSize:
		return fmt.Errorf("%w: signature of %d bytes, want %d", ErrFormat, len(w.Sig), ed25519.SignatureSize)
	}
	return nil
}

// EncodeToken returns the text form of t.
func EncodeToken(t *Token) (string, error) {
	if len(t.Coins) == 0 || len(t.Coins) > MaxCoins {
		return "", fmt.Errorf("encode token: %w: %d coins, want 1..%d", ErrFormat, len(t.Coins), MaxCoins)
	}
	w := wireToken{Request: t.Request[:], Coins: make([][]byte, len(t.Coins))}
	for i := range t.Coins {
		var err error
		if w.Coins[i], err = otp.Canonical(&t.Coins[i]); err != nil {
			return "", fmt.Errorf("encode token: %w", err)
		}
	}
	return encode(KindToken, w)
}

// ParseToken decodes the text form of a payment token.
func ParseToken(text string) (*Token, error) {
	var w wireToken
	if err := decode(KindToken, text, &w); err != nil {
		return nil, fmt.Errorf("parse token: %w", err)
	}
	if len(w.Request) != idLen || len(w.Coins) == 0 {
		return nil, fmt.Errorf("parse token: %w: request id of %d bytes, %d coins", ErrFormat, len(w.Request), len(w.Coins))
	}
	t := &Token{Coins: make([]otp.Sandbox, len(w.Coins))}
	copy(t.Request[:], w.Request)
	for i, b := range w.Coins {
		s, err := otp.ParseSandbox(b)
		if err != nil {
			return nil, fmt.Errorf("parse token: coin %d: %w: %w", i, ErrFormat, err)
		}
		if err := canonicalIs(s, b); err != nil {
			return nil, fmt.Errorf("parse token: coin %d: %w", i, err)
		}
		t.Coins[i] = *s
	}
	return t, nil
}

// EncodeReceipt returns the text form of r.
func EncodeReceipt(r *Receipt) (string, error) {
	if len(r.Acks) == 0 || len(r.Acks) > MaxCoins {
		return "", fmt.Errorf("encode receipt: %w: %d receipts, want 1..%d", ErrFormat, len(r.Acks), MaxCoins)
	}
	w := wireReceipt{Request: r.Request[:], Acks: make([]wireAck, len(r.Acks))}
	for i, a := range r.Acks {
		w.Acks[i] = wireAck(a)
	}
	return encode(KindReceipt, w)
}

// ParseReceipt decodes the text form of a receipt token.
func ParseReceipt(text string) (*Receipt, error) {
	var w wireReceipt
	if err := decode(KindReceipt, text, &w); err != nil {
		return nil, fmt.Errorf("parse receipt: %w", err)
	}
	if len(w.Request) != idLen || len(w.Acks) == 0 {
		return nil, fmt.Errorf("parse receipt: %w: request id of %d bytes, %d receipts", ErrFormat, len(w.Request), len(w.Acks))
	}
	r := &Receipt{Acks: make([]otp.Ack, len(w.Acks))}
	copy(r.Request[:], w.Request)
	for i, a := range w.Acks {
		if a.Token == "" || a.Sig == "" || a.Link < 0 {
			return nil, fmt.Errorf("parse receipt: %w: receipt %d is incomplete", ErrFormat, i)
		}
		r.Acks[i] = otp.Ack(a)
	}
	return r, nil
}

// kindOf returns the kind of a normalized text form, from its prefix
// alone.
func kindOf(body string) (Kind, error) {
	for _, k := range []Kind{KindRequest, KindToken, KindReceipt} {
		if strings.HasPrefix(body, k.prefix()) {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w: no OTPCASHREQ1, OTPCASHTOK1 or OTPCASHRCP1 prefix", ErrFormat)
}

// normalize strips the URI scheme and surrounding space and upper-cases
// the text: base32 is case-insensitive and the checksum catches a
// character changed in transit.
func normalize(text string) string {
	s := strings.ToUpper(strings.TrimSpace(text))
	return strings.TrimPrefix(s, scheme)
}

func encode(k Kind, v any) (string, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", k, err)
	}
	return k.prefix() + b32.EncodeToString(append(b, sum(k, b)...)), nil
}

func sum(k Kind, b []byte) []byte {
	h := sha256.New()
	h.Write([]byte(k.prefix()))
	h.Write(b)
	return h.Sum(nil)[:checksumLen]
}

func decode(k Kind, text string, v any) error {
	if len(text) > MaxText {
		return fmt.Errorf("%w: %d characters, at most %d", ErrFormat, len(text), MaxText)
	}
	body := normalize(text)
	got, err := kindOf(body)
	if err != nil {
		return err
	}
	if got != k {
		return fmt.Errorf("%w: a %s, not a %s", ErrKind, got, k)
	}
	text = body[len(k.prefix()):]
	raw, err := b32.DecodeString(text)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFormat, err)
	}
	// The last character may carry bits no byte uses; set, they would
	// make a second text of the same code.
	if b32.EncodeToString(raw) != text {
		return fmt.Errorf("%w: stray bits in the last character", ErrFormat)
	}
	if len(raw) <= checksumLen {
		return fmt.Errorf("%w: %d bytes", ErrFormat, len(raw))
	}
	b, check := raw[:len(raw)-checksumLen], raw[len(raw)-checksumLen:]
	if !bytes.Equal(check, sum(k, b)) {
		return ErrChecksum
	}
	if err := decMode.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %w", ErrFormat, err)
	}
	// One record, one encoding: a decoder that accepts others lets two
	// texts mean the same payment.
	if again, err := encMode.Marshal(v); err != nil || !bytes.Equal(again, b) {
		return fmt.Errorf("%w: not in deterministic encoding", ErrFormat)
	}
	return nil
}

// canonicalIs checks that raw, which decoded to v, is v's canonical JSON:
// the form its signature is over, and the only one a code may carry.
func canonicalIs(v any, raw []byte) error {
	c, err := otp.Canonical(v)
	if err != nil || !bytes.Equal(c, raw) {
		return fmt.Errorf("%w: a signed object not in canonical JSON", ErrFormat)
	}
	return nil
}
