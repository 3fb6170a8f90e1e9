package p2p

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/otpcash/otpcash/internal/strictcbor"
	"github.com/otpcash/otpcash/internal/strictjson"
	"github.com/otpcash/otpcash/otp"
)

// The encoding of session protocol version 4, after the hellos.
//
// Version 3 sent every message as JSON, and a coin as the JSON the vault
// and the bank read: every key and signature in base64url, every member
// named, the coin's program and issuer fields repeated in every coin, the
// checksum the payee recomputes anyway, the whole certificate of the
// exchange key the payee had just handed out, and in every receipt the
// token and index the payer already knows. That was 1,694 bytes a coin, of
// which a third was the signatures' base64 and the rest mostly repetition.
//
// Version 4 sends the same values in deterministic CBOR (RFC 8949 section
// 4.2, fxamacker/cbor's Core Deterministic options): keys and signatures
// as byte strings, integer map keys, and
//   - a coin's fields that every coin of one issuer key shares (schema
//     version, value, currency, issuer, key id, expiry, program,
//     conditions, callMethod, signature algorithm) once per message, as a
//     template the coins name by index;
//   - no checksum: the receiver computes it from the fields, as it must
//     to check the coin anyway, and the sender refuses a coin whose
//     checksum field is not that;
//   - a chain link to an exchange key the receiver handed out in its last
//     keys (or change) message by its place in that message, and other
//     keys once per message, sharing templates of their issuer, key id,
//     expiry and attributes;
//   - receipts as their signatures alone, in the order of the coins they
//     answer: the token and the link index are the coin's (Payer and the
//     session fill them in).
//
// Every signed form and checksum is what it was: the receiver rebuilds the
// otp values field for field, so each signature verifies over the same
// bytes. A text field the signatures cover in base64url (tokens, keys,
// signatures) is sent as its bytes, which rebuilds it exactly because the
// sender sends only the one canonical spelling (unpadded, strict).
//
// Decoding is strict: a duplicate map key, an unknown field, an
// indefinite length, a tag, invalid UTF-8, an array longer than MaxBatch,
// a key, token or signature of the wrong size, or a template or key index
// out of range ends the session.

// wireTypes are the message types of version 4, by their number on the
// wire.
var wireTypes = [...]string{
	1: "hello", 2: "offer", 3: "accept", 4: "keysRequest", 5: "keys", 6: "coins",
	7: "acks", 8: "done", 9: "error", 10: "change", 11: "agreed", 12: "collect",
	13: "receipts", 14: "settled",
}

var wireCodes = func() map[string]uint {
	m := make(map[string]uint, len(wireTypes))
	for code, kind := range wireTypes {
		if kind != "" {
			m[kind] = uint(code)
		}
	}
	return m
}()

// maxSig bounds an issuer's or a bank's signature: 288 bytes for blind
// RSA-2048 with its randomizer, 64 for Ed25519.
const maxSig = 1024

var (
	wireEnc = strictcbor.Enc
	wireDec = strictcbor.Dec(8, MaxBatch, 64)
)

type wireEnvelope struct {
	_    struct{} `cbor:",toarray"`
	Type uint
	Body cbor.RawMessage
}

type wireHello struct {
	Versions []int    `cbor:"1,keyasint"`
	Issuers  []string `cbor:"2,keyasint"`
}

type wireOffer struct {
	Amount            int64  `cbor:"1,keyasint"`
	Currency          string `cbor:"2,keyasint"`
	Memo              string `cbor:"3,keyasint,omitempty"`
	Program           string `cbor:"4,keyasint"`
	RevocationsIssued string `cbor:"5,keyasint,omitempty"` // RFC 3339, as in JSON
	MaxHops           int    `cbor:"6,keyasint"`
}

type wireEmpty struct{}

type wireKeysRequest struct {
	N int `cbor:"1,keyasint"`
}

type wireError struct {
	Code    string `cbor:"1,keyasint"`
	Message string `cbor:"2,keyasint"`
}

type wireAgreed struct {
	Change []int64 `cbor:"1,keyasint"`
}

type wireChange struct {
	Send []int64  `cbor:"1,keyasint"`
	Keys wireKeys `cbor:"2,keyasint"`
}

type wireCoins struct {
	Coins  wireSandboxes `cbor:"1,keyasint"`
	Resend bool          `cbor:"2,keyasint,omitempty"`
}

type wireAcks struct {
	Sigs   [][]byte       `cbor:"1,keyasint"`
	Change *wireSandboxes `cbor:"2,keyasint,omitempty"`
}

type wireReceipts struct {
	Sigs [][]byte `cbor:"1,keyasint"`
}

// wireKeys is a list of exchange key certificates.
type wireKeys struct {
	Templates []wireKeyTemplate `cbor:"1,keyasint"`
	Keys      []wireKey         `cbor:"2,keyasint"`
}

// wireKeyTemplate is what the certificates of one bank key share.
type wireKeyTemplate struct {
	_       struct{} `cbor:",toarray"`
	Issuer  string
	KeyID   string
	Expires wireTime
	Attrs   map[string]string
}

type wireKey struct {
	_        struct{} `cbor:",toarray"`
	Template uint
	Pub      []byte
	Sig      []byte
}

// wireSandboxes is a list of coins with their chains.
type wireSandboxes struct {
	Templates []wireCoinTemplate `cbor:"1,keyasint"`
	Keys      *wireKeys          `cbor:"2,keyasint,omitempty"` // of links the receiver did not hand out
	Coins     []wireSandbox      `cbor:"3,keyasint"`
}

// wireCoinTemplate is what the coins of one issuer key share.
type wireCoinTemplate struct {
	_             struct{} `cbor:",toarray"`
	SchemaVersion int
	Value         int64
	Currency      string
	Issuer        string
	KeyID         string
	Expires       wireTime
	Program       string
	Conditions    []string
	CallMethod    []wireStep
	Alg           wireName[algTable]
}

// The names every coin carries, by their place in these tables, which
// are part of the wire format: frozen, and appended to only with a new
// protocol version. Any other name goes as its text.
var (
	// stepNames are the paper's seven steps, every program's.
	stepNames = []string{"checkIntegrityOfOTP", "checkTokenFormat", "checkCallMethod",
		"setupConnection", "buildSandbox", "sendOTP", "destroyOTP"}
	algNames = []string{otp.AlgEd25519, otp.AlgBlindRSA}
)

type (
	stepTable struct{}
	algTable  struct{}
)

func (stepTable) names() []string { return stepNames }
func (algTable) names() []string  { return algNames }

// wireName is a name from table T: its place in the table if it is
// there, else its text.
type wireName[T interface{ names() []string }] string

func (n wireName[T]) MarshalCBOR() ([]byte, error) {
	var t T
	if i := slices.Index(t.names(), string(n)); i >= 0 {
		return wireEnc.Marshal(uint(i))
	}
	return wireEnc.Marshal(string(n))
}

func (n *wireName[T]) UnmarshalCBOR(b []byte) error {
	if len(b) > 0 && b[0]>>5 == 3 { // a text string, which unmarshalExact holds to a name not in the table
		return wireDec.Unmarshal(b, (*string)(n))
	}
	var i uint
	if err := wireDec.Unmarshal(b, &i); err != nil {
		return err
	}
	var t T
	if i >= uint(len(t.names())) {
		return fmt.Errorf("name %d of a table of %d", i, len(t.names()))
	}
	*n = wireName[T](t.names()[i])
	return nil
}

// wireTime is an expiry as version 4 sends it: a time in whole seconds
// in UTC, as the bank sets every expiry, as an integer (Unix time), 5
// bytes; any other as its RFC 3339 text, as JSON has it.
type wireTime struct{ time.Time }

func (t wireTime) MarshalCBOR() ([]byte, error) {
	if t.Location() == time.UTC && t.Nanosecond() == 0 && t.Year() >= 1 && t.Year() <= 9999 {
		return wireEnc.Marshal(t.Unix())
	}
	s, err := timeText(t.Time)
	if err != nil {
		return nil, err
	}
	return wireEnc.Marshal(s)
}

func (t *wireTime) UnmarshalCBOR(b []byte) error {
	if len(b) > 0 && b[0]>>5 == 3 { // a text string
		var s string
		if err := wireDec.Unmarshal(b, &s); err != nil {
			return err
		}
		var err error
		t.Time, err = parseTime(s)
		return err // and unmarshalExact refuses one the integer would give
	}
	var n int64
	if err := wireDec.Unmarshal(b, &n); err != nil {
		return err
	}
	t.Time = time.Unix(n, 0).UTC()
	return nil
}

// wireStep is a step of a coin's callMethod: its name (a wireName), or
// for a step with arguments, which are JSON values, its JSON as a byte
// string.
type wireStep struct{ otp.Step }

func (s wireStep) MarshalCBOR() ([]byte, error) {
	if len(s.Args) == 0 {
		return wireName[stepTable](s.Method).MarshalCBOR()
	}
	j, err := json.Marshal(s.Step)
	if err != nil {
		return nil, err
	}
	return wireEnc.Marshal(j)
}

func (s *wireStep) UnmarshalCBOR(b []byte) error {
	if len(b) > 0 && b[0]>>5 != 2 { // not a byte string: a name
		var n wireName[stepTable]
		err := n.UnmarshalCBOR(b)
		s.Step = otp.Step{Method: string(n)}
		return err
	}
	var j []byte
	if err := wireDec.Unmarshal(b, &j); err != nil {
		return err
	}
	// A step without arguments is a bare name, which unmarshalExact
	// holds the sender to.
	return strictjson.Unmarshal(j, &s.Step)
}

type wireSandbox struct {
	_        struct{} `cbor:",toarray"`
	Template uint
	Token    []byte
	Holder   []byte
	Sig      []byte
	Chain    []wireLink
}

// wireLink names its key by a place: n >= 0 is key n of the message's
// own keys, n < 0 key -1-n of the keys the receiver last handed out.
type wireLink struct {
	_   struct{} `cbor:",toarray"`
	Key int
	Sig []byte
}

// codec is a Conn's encoding state: whether the hellos are over (version
// 4's CBOR from then on, JSON before) and the exchange keys each side last
// handed out, which links refer to by place.
type codec struct {
	// binary is set once this side has sent a hello and received one,
	// both naming Version: until then, and so for an error that refuses a
	// hello, both sides write JSON, which every version reads.
	binary              bool
	sentHello, gotHello bool
	own                 []otp.ExchangeKey // this side's, which the peer's links refer to
	theirs              []otp.ExchangeKey // the peer's, which this side's links refer to
}

func (k *codec) encode(m message) ([]byte, error) {
	if !k.binary {
		b, err := encodeMessage(m)
		if h, ok := m.(*Hello); ok && err == nil {
			k.sentHello = slices.Contains(h.Versions, Version)
			k.binary = k.sentHello && k.gotHello
		}
		return b, err
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.kind(), err)
	}
	w, err := k.toWire(m)
	var body, b []byte
	if err == nil {
		body, err = wireEnc.Marshal(w)
	}
	if err == nil {
		b, err = wireEnc.Marshal(wireEnvelope{Type: wireCodes[m.kind()], Body: body})
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.kind(), err)
	}
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("encode %s: %w: %d bytes, limit %d", m.kind(), ErrMessageTooLarge, len(b), MaxMessageSize)
	}
	switch m := m.(type) {
	case *keysMsg:
		k.own = m.Keys
	case *ChangeProposal:
		k.own = m.Keys
	}
	return b, nil
}

func (k *codec) decode(b []byte) (message, error) {
	if !k.binary {
		m, err := decodeMessage(b)
		if err != nil {
			return nil, err
		}
		if kind := m.kind(); kind != "hello" && kind != "error" {
			return nil, violation("%s before hello", kind)
		}
		if h, ok := m.(*Hello); ok {
			k.gotHello = slices.Contains(h.Versions, Version)
			k.binary = k.gotHello && k.sentHello
		}
		return m, nil
	}
	var env wireEnvelope
	if err := unmarshalExact(b, &env); err != nil {
		return nil, violation("message envelope: %v", err)
	}
	if env.Type >= uint(len(wireTypes)) || wireTypes[env.Type] == "" {
		return nil, violation("unknown message type %d", env.Type)
	}
	kind := wireTypes[env.Type]
	m, err := k.fromWire(kind, env.Body)
	if err != nil {
		return nil, violation("%s body: %v", kind, err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	switch m := m.(type) {
	case *keysMsg:
		k.theirs = m.Keys
	case *ChangeProposal:
		k.theirs = m.Keys
	}
	return m, nil
}

func (k *codec) toWire(m message) (any, error) {
	switch m := m.(type) {
	case *Hello:
		return wireHello{m.Versions, m.Issuers}, nil
	case *Offer:
		w := wireOffer{Amount: m.Amount, Currency: m.Currency, Memo: m.Memo, Program: m.Program, MaxHops: m.MaxHops}
		if !m.RevocationsIssued.IsZero() {
			t, err := m.RevocationsIssued.MarshalText()
			if err != nil {
				return nil, err
			}
			w.RevocationsIssued = string(t)
		}
		return w, nil
	case *acceptMsg, *doneMsg, *collectMsg, *settledMsg:
		return wireEmpty{}, nil
	case *keysRequestMsg:
		return wireKeysRequest{m.N}, nil
	case *RemoteError:
		return wireError{m.Code, m.Message}, nil
	case *agreedMsg:
		return wireAgreed{m.Change}, nil
	case *ChangeProposal:
		keys, err := keysToWire(m.Keys)
		return wireChange{m.Send, keys}, err
	case *keysMsg:
		return keysToWire(m.Keys)
	case *coinsMsg:
		coins, err := k.sandboxesToWire(m.Coins)
		return wireCoins{coins, m.Resend}, err
	case *acksMsg:
		w := wireAcks{}
		var err error
		if w.Sigs, err = sigsToWire(m.Acks); err != nil || len(m.Change) == 0 {
			return w, err
		}
		change, err := k.sandboxesToWire(m.Change)
		w.Change = &change
		return w, err
	case *receiptsMsg:
		sigs, err := sigsToWire(m.Acks)
		return wireReceipts{sigs}, err
	}
	return nil, fmt.Errorf("no wire form for %T", m)
}

func (k *codec) fromWire(kind string, body []byte) (message, error) {
	switch kind {
	case "hello":
		var w wireHello
		err := unmarshalExact(body, &w)
		return &Hello{w.Versions, w.Issuers}, err
	case "offer":
		var w wireOffer
		if err := unmarshalExact(body, &w); err != nil {
			return nil, err
		}
		o := &Offer{Amount: w.Amount, Currency: w.Currency, Memo: w.Memo, Program: w.Program, MaxHops: w.MaxHops}
		if w.RevocationsIssued != "" {
			var err error
			if o.RevocationsIssued, err = parseTime(w.RevocationsIssued); err != nil {
				return nil, err
			}
		}
		return o, nil
	case "accept", "done", "collect", "settled":
		var w wireEmpty
		if err := unmarshalExact(body, &w); err != nil {
			return nil, err
		}
		return kinds[kind](), nil
	case "keysRequest":
		var w wireKeysRequest
		err := unmarshalExact(body, &w)
		return &keysRequestMsg{w.N}, err
	case "error":
		var w wireError
		err := unmarshalExact(body, &w)
		return &RemoteError{w.Code, w.Message}, err
	case "agreed":
		var w wireAgreed
		err := unmarshalExact(body, &w)
		return &agreedMsg{w.Change}, err
	case "change":
		var w wireChange
		if err := unmarshalExact(body, &w); err != nil {
			return nil, err
		}
		keys, err := keysFromWire(&w.Keys)
		return &ChangeProposal{Send: w.Send, Keys: keys}, err
	case "keys":
		var w wireKeys
		if err := unmarshalExact(body, &w); err != nil {
			return nil, err
		}
		keys, err := keysFromWire(&w)
		return &keysMsg{keys}, err
	case "coins":
		var w wireCoins
		if err := unmarshalExact(body, &w); err != nil {
			return nil, err
		}
		coins, err := k.sandboxesFromWire(&w.Coins)
		return &coinsMsg{Coins: coins, Resend: w.Resend}, err
	case "acks":
		var w wireAcks
		if err := unmarshalExact(body, &w); err != nil {
			return nil, err
		}
		m := &acksMsg{}
		var err error
		if m.Acks, err = sigsFromWire(w.Sigs); err != nil || w.Change == nil {
			return m, err
		}
		m.Change, err = k.sandboxesFromWire(w.Change)
		if err == nil && len(m.Change) == 0 {
			err = fmt.Errorf("an empty list of change coins")
		}
		return m, err
	case "receipts":
		var w wireReceipts
		if err := unmarshalExact(body, &w); err != nil {
			return nil, err
		}
		acks, err := sigsFromWire(w.Sigs)
		return &receiptsMsg{acks}, err
	}
	return nil, fmt.Errorf("no wire form for %s", kind)
}

var b64 = base64.RawURLEncoding

// unmarshalExact decodes b into v strictly (wireDec) and refuses any
// encoding but the deterministic one, so that a message has one encoding:
// a decoder that took others would let two peers read one message two
// ways, or a relay change bytes that mean nothing.
func unmarshalExact(b []byte, v any) error {
	if err := wireDec.Unmarshal(b, v); err != nil {
		return err
	}
	if again, err := wireEnc.Marshal(v); err != nil || !bytes.Equal(again, b) {
		return errors.New("not in the deterministic encoding")
	}
	return nil
}

// rawBytes returns the bytes of a field the signatures cover in its
// unpadded base64url form, refusing any other spelling, which the bytes
// could not rebuild: a value no valid coin or key has.
func rawBytes(what, s string, min, max int) ([]byte, error) {
	b, err := b64.Strict().DecodeString(s)
	if err != nil || b64.EncodeToString(b) != s {
		return nil, fmt.Errorf("%s %.16q is not unpadded base64url", what, s)
	}
	if len(b) < min || len(b) > max {
		return nil, fmt.Errorf("%s of %d bytes, want %d to %d", what, len(b), min, max)
	}
	return b, nil
}

// text is the inverse of rawBytes, for bytes from the peer.
func text(what string, b []byte, min, max int) (string, error) {
	if len(b) < min || len(b) > max {
		return "", fmt.Errorf("%s of %d bytes, want %d to %d", what, len(b), min, max)
	}
	return b64.EncodeToString(b), nil
}

func timeText(t time.Time) (string, error) {
	b, err := t.MarshalText()
	return string(b), err
}

// sameTime reports whether a and b are one instant in one location, so
// that they encode alike.
func sameTime(a, b time.Time) bool { return a.Equal(b) && a.Location() == b.Location() }

// parseTime parses a time in the one spelling timeText gives it.
func parseTime(s string) (time.Time, error) {
	var t time.Time
	if err := t.UnmarshalText([]byte(s)); err != nil {
		return t, err
	}
	if again, err := timeText(t); err != nil || again != s {
		return t, fmt.Errorf("time %q not in its one spelling %q", s, again)
	}
	return t, nil
}

// keysToWire encodes certificates, each template once, in order of first
// use.
func keysToWire(keys []otp.ExchangeKey) (wireKeys, error) {
	w := wireKeys{Templates: []wireKeyTemplate{}, Keys: make([]wireKey, len(keys))}
	for i := range keys {
		if err := w.add(&keys[i], &w.Keys[i]); err != nil {
			return w, fmt.Errorf("exchange key %d: %w", i, err)
		}
	}
	return w, nil
}

func (w *wireKeys) add(k *otp.ExchangeKey, out *wireKey) error {
	t := wireKeyTemplate{Issuer: k.Issuer, KeyID: k.KeyID, Expires: wireTime{k.Expires}, Attrs: k.Attrs}
	if len(t.Attrs) == 0 {
		t.Attrs = nil
	}
	at := slices.IndexFunc(w.Templates, func(u wireKeyTemplate) bool {
		return u.Issuer == t.Issuer && u.KeyID == t.KeyID && sameTime(u.Expires.Time, t.Expires.Time) && maps.Equal(u.Attrs, t.Attrs)
	})
	if at < 0 {
		at = len(w.Templates)
		w.Templates = append(w.Templates, t)
	}
	out.Template = uint(at)
	var err error
	if out.Pub, err = rawBytes("public key", k.Pub, ed25519.PublicKeySize, ed25519.PublicKeySize); err != nil {
		return err
	}
	out.Sig, err = rawBytes("certificate signature", k.Sig, 1, maxSig)
	return err
}

func keysFromWire(w *wireKeys) ([]otp.ExchangeKey, error) {
	if len(w.Templates) > len(w.Keys) {
		return nil, fmt.Errorf("%d key templates for %d keys", len(w.Templates), len(w.Keys))
	}
	for i, t := range w.Templates {
		if t.Attrs != nil && len(t.Attrs) == 0 {
			return nil, fmt.Errorf("key template %d: attributes that are empty, not absent", i)
		}
	}
	used := make([]bool, len(w.Templates))
	keys := make([]otp.ExchangeKey, len(w.Keys))
	for i, wk := range w.Keys {
		if wk.Template >= uint(len(w.Templates)) {
			return nil, fmt.Errorf("exchange key %d: template %d of %d", i, wk.Template, len(w.Templates))
		}
		used[wk.Template] = true
		t := &w.Templates[wk.Template]
		k := otp.ExchangeKey{Issuer: t.Issuer, KeyID: t.KeyID, Expires: t.Expires.Time}
		if len(t.Attrs) > 0 {
			k.Attrs = maps.Clone(t.Attrs) // each key its own: a certificate is a value
		}
		var err error
		if k.Pub, err = text("public key", wk.Pub, ed25519.PublicKeySize, ed25519.PublicKeySize); err != nil {
			return nil, fmt.Errorf("exchange key %d: %w", i, err)
		}
		if k.Sig, err = text("certificate signature", wk.Sig, 1, maxSig); err != nil {
			return nil, fmt.Errorf("exchange key %d: %w", i, err)
		}
		keys[i] = k
	}
	if err := allUsed("key template", used); err != nil {
		return nil, err
	}
	return keys, nil
}

// allUsed refuses a template or key that nothing names: the sender makes
// none, and one would be a second encoding of the message.
func allUsed(what string, used []bool) error {
	if i := slices.Index(used, false); i >= 0 {
		return fmt.Errorf("%s %d is not used", what, i)
	}
	return nil
}

// sandboxesToWire encodes coins with their chains: the fields of a coin
// its template holds once, a link to a key the peer handed out by its
// place.
func (k *codec) sandboxesToWire(coins []otp.Sandbox) (wireSandboxes, error) {
	w := wireSandboxes{Templates: []wireCoinTemplate{}, Coins: make([]wireSandbox, len(coins))}
	var theirs map[string]int
	if len(k.theirs) > 0 {
		theirs = make(map[string]int, len(k.theirs))
		for i := range k.theirs {
			theirs[k.theirs[i].Pub] = i
		}
	}
	var from []*otp.Coin // the coin each template was made from
	for i := range coins {
		s, out := &coins[i], &w.Coins[i]
		if err := w.add(s, out, &from); err != nil {
			return w, fmt.Errorf("coin %d: %w", i, err)
		}
		out.Chain = make([]wireLink, len(s.Chain))
		for j := range s.Chain {
			l := &s.Chain[j]
			var err error
			if out.Chain[j].Sig, err = rawBytes("link signature", l.Sig, ed25519.SignatureSize, ed25519.SignatureSize); err != nil {
				return w, fmt.Errorf("coin %d link %d: %w", i, j, err)
			}
			if n, ok := theirs[l.To.Pub]; ok && k.theirs[n].Equal(&l.To) {
				out.Chain[j].Key = -1 - n
				continue
			}
			if w.Keys == nil {
				w.Keys = &wireKeys{Templates: []wireKeyTemplate{}, Keys: []wireKey{}}
			}
			out.Chain[j].Key = len(w.Keys.Keys)
			w.Keys.Keys = append(w.Keys.Keys, wireKey{})
			if err := w.Keys.add(&l.To, &w.Keys.Keys[len(w.Keys.Keys)-1]); err != nil {
				return w, fmt.Errorf("coin %d link %d: %w", i, j, err)
			}
		}
	}
	return w, nil
}

func (w *wireSandboxes) add(s *otp.Sandbox, out *wireSandbox, from *[]*otp.Coin) error {
	c := &s.Coin
	sum, err := c.ComputeChecksum()
	if err != nil {
		return err
	}
	if c.Checksum != b64.EncodeToString(sum[:]) {
		// The receiver computes the checksum: a coin whose field says
		// otherwise would arrive as another coin.
		return fmt.Errorf("checksum field %.16q is not the coin's checksum", c.Checksum)
	}
	at := slices.IndexFunc(*from, func(u *otp.Coin) bool { return sameTemplate(u, c) })
	if at < 0 {
		var steps []wireStep
		if c.CallMethod != nil {
			steps = make([]wireStep, len(c.CallMethod))
			for i, st := range c.CallMethod {
				steps[i] = wireStep{st}
			}
		}
		at = len(w.Templates)
		w.Templates = append(w.Templates, wireCoinTemplate{
			SchemaVersion: c.SchemaVersion, Value: c.Data.Value, Currency: c.Data.Currency,
			Issuer: c.Data.Issuer, KeyID: c.Data.KeyID, Expires: wireTime{c.Data.Expires}, Program: c.Data.Program,
			Conditions: c.Data.Conditions, CallMethod: steps, Alg: wireName[algTable](c.Signature.Alg),
		})
		*from = append(*from, c)
	}
	out.Template = uint(at)
	if out.Token, err = rawBytes("token", c.Data.Token, otp.SerialSize, otp.SerialSize); err != nil {
		return err
	}
	if out.Holder, err = rawBytes("holder", c.Data.Holder, ed25519.PublicKeySize, ed25519.PublicKeySize); err != nil {
		return err
	}
	out.Sig, err = rawBytes("issuer signature", c.Signature.Value, 1, maxSig)
	return err
}

// sameTemplate reports whether a and b share every field of a template,
// encoded alike; false when unsure. It is stricter than otp's
// Program.Equal, which takes nil and empty conditions for the same: the
// checksum does not, and a coin must arrive with its own.
func sameTemplate(a, b *otp.Coin) bool {
	x, y := &a.Data, &b.Data
	return a.SchemaVersion == b.SchemaVersion && x.Value == y.Value && x.Currency == y.Currency &&
		x.Issuer == y.Issuer && x.KeyID == y.KeyID && x.Program == y.Program &&
		sameTime(x.Expires, y.Expires) &&
		(x.Conditions == nil) == (y.Conditions == nil) && slices.Equal(x.Conditions, y.Conditions) &&
		a.Signature.Alg == b.Signature.Alg &&
		(a.CallMethod == nil) == (b.CallMethod == nil) &&
		slices.EqualFunc(a.CallMethod, b.CallMethod, func(s, t otp.Step) bool {
			return s.Method == t.Method && len(s.Args) == len(t.Args) && (len(s.Args) == 0 || reflect.DeepEqual(s.Args, t.Args))
		})
}

func (k *codec) sandboxesFromWire(w *wireSandboxes) ([]otp.Sandbox, error) {
	if len(w.Templates) > len(w.Coins) {
		return nil, fmt.Errorf("%d coin templates for %d coins", len(w.Templates), len(w.Coins))
	}
	ts := make([]otp.Coin, len(w.Templates))
	for i, t := range w.Templates {
		c := &ts[i]
		c.Data.Expires = t.Expires.Time
		if t.CallMethod != nil {
			c.CallMethod = make([]otp.Step, len(t.CallMethod))
			for j, st := range t.CallMethod {
				c.CallMethod[j] = st.Step
			}
		}
		c.SchemaVersion, c.Signature.Alg = t.SchemaVersion, string(t.Alg)
		c.Data.Value, c.Data.Currency, c.Data.Issuer, c.Data.KeyID = t.Value, t.Currency, t.Issuer, t.KeyID
		c.Data.Program, c.Data.Conditions = t.Program, t.Conditions
	}
	var keys []otp.ExchangeKey
	if w.Keys != nil {
		var err error
		if keys, err = keysFromWire(w.Keys); err != nil {
			return nil, err
		}
		own := make(map[string]int, len(k.own))
		for i := range k.own {
			own[k.own[i].Pub] = i
		}
		for i := range keys {
			if n, ok := own[keys[i].Pub]; ok && k.own[n].Equal(&keys[i]) {
				return nil, fmt.Errorf("key %d is the one handed out in place %d, and goes by its place", i, n)
			}
		}
	}
	usedTemplates, usedKeys := make([]bool, len(ts)), make([]bool, len(keys))
	coins := make([]otp.Sandbox, len(w.Coins))
	for i, wc := range w.Coins {
		if wc.Template >= uint(len(ts)) {
			return nil, fmt.Errorf("coin %d: template %d of %d", i, wc.Template, len(ts))
		}
		usedTemplates[wc.Template] = true
		s := &coins[i]
		s.Coin = ts[wc.Template]
		// Each coin its own slices: a coin is a value.
		s.Coin.CallMethod = slices.Clone(s.Coin.CallMethod)
		s.Coin.Data.Conditions = slices.Clone(s.Coin.Data.Conditions)
		var err error
		if s.Coin.Data.Token, err = text("token", wc.Token, otp.SerialSize, otp.SerialSize); err != nil {
			return nil, fmt.Errorf("coin %d: %w", i, err)
		}
		if s.Coin.Data.Holder, err = text("holder", wc.Holder, ed25519.PublicKeySize, ed25519.PublicKeySize); err != nil {
			return nil, fmt.Errorf("coin %d: %w", i, err)
		}
		if s.Coin.Signature.Value, err = text("issuer signature", wc.Sig, 1, maxSig); err != nil {
			return nil, fmt.Errorf("coin %d: %w", i, err)
		}
		sum, err := s.Coin.ComputeChecksum()
		if err != nil {
			return nil, fmt.Errorf("coin %d: %w", i, err)
		}
		s.Coin.Checksum = b64.EncodeToString(sum[:])
		s.Chain = make([]otp.Link, len(wc.Chain))
		for j, wl := range wc.Chain {
			l := &s.Chain[j]
			if l.Sig, err = text("link signature", wl.Sig, ed25519.SignatureSize, ed25519.SignatureSize); err != nil {
				return nil, fmt.Errorf("coin %d link %d: %w", i, j, err)
			}
			switch n := wl.Key; {
			case n >= 0 && n < len(keys):
				l.To, usedKeys[n] = keys[n], true
			case n < 0 && -1-n < len(k.own):
				l.To = k.own[-1-n]
			default:
				return nil, fmt.Errorf("coin %d link %d: key %d of %d in the message and %d handed out", i, j, n, len(keys), len(k.own))
			}
			l.To.Attrs = maps.Clone(l.To.Attrs)
		}
	}
	if err := allUsed("coin template", usedTemplates); err != nil {
		return nil, err
	}
	if err := allUsed("key", usedKeys); err != nil {
		return nil, err
	}
	return coins, nil
}

// sigsToWire sends receipts as their signatures: their tokens and link
// indexes are those of the coins they answer, which the receiver has.
func sigsToWire(acks []otp.Ack) ([][]byte, error) {
	sigs := make([][]byte, len(acks))
	for i := range acks {
		var err error
		if sigs[i], err = rawBytes("receipt signature", acks[i].Sig, ed25519.SignatureSize, ed25519.SignatureSize); err != nil {
			return nil, fmt.Errorf("receipt %d: %w", i, err)
		}
	}
	return sigs, nil
}

// sigsFromWire returns receipts with their signatures only; fillAcks
// completes them.
func sigsFromWire(sigs [][]byte) ([]otp.Ack, error) {
	acks := make([]otp.Ack, len(sigs))
	for i, s := range sigs {
		var err error
		if acks[i].Sig, err = text("receipt signature", s, ed25519.SignatureSize, ed25519.SignatureSize); err != nil {
			return nil, fmt.Errorf("receipt %d: %w", i, err)
		}
	}
	return acks, nil
}

// fillAcks completes receipts received as signatures with what they
// answer: receipt i is for the last transfer of coins[i].
func fillAcks(acks []otp.Ack, coins []otp.Sandbox) {
	for i := range acks {
		acks[i].Token, acks[i].Link = coins[i].Coin.Data.Token, len(coins[i].Chain)-1
	}
}

// matchAcks checks that receipt i is for the last transfer of coins[i],
// which is all the wire form can say.
func matchAcks(acks []otp.Ack, coins []otp.Sandbox) error {
	if len(acks) != len(coins) {
		return fmt.Errorf("%d receipts for %d coins", len(acks), len(coins))
	}
	for i := range acks {
		if acks[i].Token != coins[i].Coin.Data.Token || acks[i].Link != len(coins[i].Chain)-1 {
			return fmt.Errorf("receipt %d is for %.12s link %d, not the last transfer of coin %.12s", i, acks[i].Token, acks[i].Link, coins[i].Coin.Data.Token)
		}
	}
	return nil
}
