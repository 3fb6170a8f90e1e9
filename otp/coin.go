package otp

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/otpcash/otpcash/internal/strictjson"
)

// SchemaVersion is the only coin format version this package reads or writes.
const SchemaVersion = 1

// AlgEd25519 names an Ed25519 signature in a Signature's Alg field.
const AlgEd25519 = "Ed25519"

// Errors callers can test with errors.Is. Returned errors wrap them with the
// details of what was wrong.
var (
	ErrVersion       = errors.New("unsupported schema version")
	ErrChecksum      = errors.New("checksum mismatch")
	ErrSignature     = errors.New("invalid signature")
	ErrAlgorithm     = errors.New("unknown signature algorithm")
	ErrUnknownIssuer = errors.New("unknown issuer")
	ErrUnknownKey    = errors.New("unknown issuer key")
	ErrKeyMismatch   = errors.New("coin does not match its issuer key")
	ErrLimits        = errors.New("bad offline limits")
	ErrExpired       = errors.New("expired")
	ErrTokenFormat   = errors.New("malformed token")
	ErrChain         = errors.New("invalid transfer chain")
	ErrUnknownStep   = errors.New("unknown step")
	ErrMissingStep   = errors.New("missing step")
	ErrMisplacedStep = errors.New("misplaced step")
	ErrStepArgs      = errors.New("invalid step arguments")
)

// SerialSize is the length of a coin serial in bytes.
const SerialSize = 32

// Serial is a coin's unique 32-byte token. Its text form (String) is the
// token field of the coin: 43 characters of unpadded base64url.
type Serial [SerialSize]byte

// NewSerial returns a fresh random serial.
func NewSerial() Serial {
	var s Serial
	if _, err := rand.Read(s[:]); err != nil {
		panic("otp: crypto/rand failed: " + err.Error())
	}
	return s
}

func (s Serial) String() string { return b64.EncodeToString(s[:]) }

// parseSerial parses the text form of a serial. Only the canonical spelling
// is accepted, so one serial has exactly one token.
func parseSerial(token string) (Serial, error) {
	var s Serial
	b, err := decodeFixed(token, SerialSize)
	if err != nil {
		return s, fmt.Errorf("%w: %v", ErrTokenFormat, err)
	}
	copy(s[:], b)
	return s, nil
}

// Data is the static section of a coin (the paper's meta-level).
type Data struct {
	Token    string    `json:"token"`
	Value    int64     `json:"value"`    // minor units (cents)
	Currency string    `json:"currency"` // ISO 4217
	Issuer   string    `json:"issuer"`
	KeyID    string    `json:"keyId"`
	Holder   string    `json:"holder"`  // first holder's one-time Ed25519 public key
	Expires  time.Time `json:"expires"` // payable until then; depositable until the key's deposit deadline
	// Program names the bank's coin program the coin was issued under;
	// CallMethod and Conditions are that program's, fixed by the signature.
	Program    string   `json:"program"`
	Conditions []string `json:"conditions"` // CEL expressions, see conditions.go
}

// Signature is an issuer's signature, tagged with its algorithm so that the
// scheme can change without a format break.
type Signature struct {
	Alg   string `json:"alg"`
	Value string `json:"value"`
}

// Coin is the one-time program: the paper's Figure 3 plus the issuer's
// signature.
type Coin struct {
	SchemaVersion int       `json:"schemaVersion"`
	Data          Data      `json:"data"`
	CallMethod    []Step    `json:"callMethod"`
	Checksum      string    `json:"checksum"`
	Signature     Signature `json:"signature"`
}

// checksummed is the part of a coin the checksum covers.
type checksummed struct {
	SchemaVersion int    `json:"schemaVersion"`
	Data          Data   `json:"data"`
	CallMethod    []Step `json:"callMethod"`
}

// ComputeChecksum returns SHA-256 over the canonical
// {schemaVersion, data, callMethod} of c.
func (c *Coin) ComputeChecksum() ([sha256.Size]byte, error) {
	canon, ok := c.checksummedCanonical()
	if !ok {
		var err error
		if canon, err = Canonical(checksummed{c.SchemaVersion, c.Data, c.CallMethod}); err != nil {
			return [sha256.Size]byte{}, fmt.Errorf("checksum: %w", err)
		}
	}
	return sha256.Sum256(canon), nil
}

// checksummedCanonical writes the JCS form of the checksummed part of c
// directly, for the common case: every text field plain (see plainText),
// steps without arguments, integers within ±(2^53-1) (Canonical refuses
// the others). JCS then writes each string as is between quotes and the
// members in the order of their names. Every payer, payee and bank computes it for every coin, and this
// saves an encoding/json pass and a JCS parse each time. ok is false
// otherwise; ComputeChecksum then uses Canonical, which
// TestChecksummedCanonical checks this against.
func (c *Coin) checksummedCanonical() ([]byte, bool) {
	d := &c.Data
	if !coinFieldsKnown || d.Value > strictjson.MaxSafeInteger || d.Value < -strictjson.MaxSafeInteger ||
		c.SchemaVersion > strictjson.MaxSafeInteger || c.SchemaVersion < -strictjson.MaxSafeInteger {
		return nil, false
	}
	for _, f := range [...]string{d.Token, d.Currency, d.Issuer, d.KeyID, d.Holder, d.Program} {
		if !plainText(f) {
			return nil, false
		}
	}
	exp, err := d.Expires.MarshalJSON()
	if err != nil || !plainText(string(exp[1:len(exp)-1])) {
		return nil, false
	}
	b := make([]byte, 0, 512)
	b = append(b, `{"callMethod":`...)
	if c.CallMethod == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, st := range c.CallMethod {
			if len(st.Args) > 0 || !plainText(st.Method) {
				return nil, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = append(append(append(b, '"'), st.Method...), '"')
		}
		b = append(b, ']')
	}
	b = append(b, `,"data":{"conditions":`...)
	if d.Conditions == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, cond := range d.Conditions {
			if !plainText(cond) {
				return nil, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = append(append(append(b, '"'), cond...), '"')
		}
		b = append(b, ']')
	}
	b = append(append(append(b, `,"currency":"`...), d.Currency...), '"')
	b = append(append(b, `,"expires":`...), exp...)
	b = append(append(append(b, `,"holder":"`...), d.Holder...), '"')
	b = append(append(append(b, `,"issuer":"`...), d.Issuer...), '"')
	b = append(append(append(b, `,"keyId":"`...), d.KeyID...), '"')
	b = append(append(append(b, `,"program":"`...), d.Program...), '"')
	b = append(append(append(b, `,"token":"`...), d.Token...), '"')
	b = strconv.AppendInt(append(b, `,"value":`...), d.Value, 10)
	b = strconv.AppendInt(append(b, `},"schemaVersion":`...), int64(c.SchemaVersion), 10)
	return append(b, '}'), true
}

// checksumBytes returns the decoded checksum field.
func (c *Coin) checksumBytes() ([]byte, error) {
	b, err := decodeFixed(c.Checksum, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrChecksum, err)
	}
	return b, nil
}

// Serial returns the coin's serial, parsed from its token.
func (c *Coin) Serial() (Serial, error) { return parseSerial(c.Data.Token) }

// checkIntegrity recomputes the checksum and compares it with the checksum
// field (the paper's checkIntegrityOfOTP).
func (c *Coin) checkIntegrity() error {
	if c.SchemaVersion != SchemaVersion {
		return fmt.Errorf("%w: %d", ErrVersion, c.SchemaVersion)
	}
	sum, err := c.ComputeChecksum()
	if err != nil {
		return err
	}
	if !equalText(c.Checksum, b64.EncodeToString(sum[:])) {
		return ErrChecksum
	}
	return nil
}

// parseCoin decodes a coin strictly: unknown fields or a version other than
// SchemaVersion are errors. It checks the format only; use a Verifier to
// check the coin.
func parseCoin(data []byte) (*Coin, error) {
	var c Coin
	if err := decodeExact(data, &c); err != nil {
		return nil, fmt.Errorf("parse coin: %w", err)
	}
	if c.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("parse coin: %w: %d", ErrVersion, c.SchemaVersion)
	}
	return &c, nil
}

// Step is one entry of a coin's callMethod: a step name, with optional
// arguments. Without arguments it is written as a bare JSON string, as in
// the paper; with arguments as {"method": ..., "args": {...}}.
type Step struct {
	Method string
	Args   map[string]any
}

type stepObject struct {
	Method string         `json:"method"`
	Args   map[string]any `json:"args,omitempty"`
}

func (s Step) MarshalJSON() ([]byte, error) {
	if len(s.Args) == 0 {
		if plainText(s.Method) {
			// What json.Marshal writes for a string that needs no escape,
			// without its reflection: every coin carries several steps.
			return append(append(append(make([]byte, 0, len(s.Method)+2), '"'), s.Method...), '"'), nil
		}
		return json.Marshal(s.Method)
	}
	return json.Marshal(stepObject{s.Method, s.Args})
}

func (s *Step) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		*s = Step{}
		// encoding/json hands over a valid string token; one without
		// escapes or other than printable ASCII means exactly its bytes.
		if n := len(b); n >= 2 && b[n-1] == '"' && plainText(string(b[1:n-1])) {
			s.Method = string(b[1 : n-1])
			return nil
		}
		return strictjson.Unmarshal(b, &s.Method)
	}
	var o stepObject
	if err := strictjson.Unmarshal(b, &o); err != nil {
		return fmt.Errorf("step: %w", err)
	}
	if len(o.Args) == 0 {
		// A bare string is the only spelling of a step without arguments.
		return fmt.Errorf("step %q: %w: empty args must be written as a bare string", o.Method, ErrStepArgs)
	}
	*s = Step{Method: o.Method, Args: o.Args}
	return nil
}

// plainText reports whether s is printable ASCII that JSON, encoding/json
// and JCS all write as is between quotes: no quote, backslash, control
// character, or <, > and & (which encoding/json escapes).
func plainText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
