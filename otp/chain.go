package otp

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/otpcash/otpcash/internal/parallel"
)

// ExchangeKey is a payee's one-time Ed25519 public key, made inside the
// payee's vault and certified by a bank. Attrs are bank-certified facts
// about the payee (for example a merchant category).
type ExchangeKey struct {
	Pub     string            `json:"pub"`
	Issuer  string            `json:"issuer"`
	KeyID   string            `json:"keyId"`
	Expires time.Time         `json:"expires"`
	Attrs   map[string]string `json:"attrs,omitempty"`
	Sig     string            `json:"sig"`
}

type unsignedExchangeKey struct {
	Pub     string            `json:"pub"`
	Issuer  string            `json:"issuer"`
	KeyID   string            `json:"keyId"`
	Expires time.Time         `json:"expires"`
	Attrs   map[string]string `json:"attrs,omitempty"`
}

func (k *ExchangeKey) payload() ([]byte, error) {
	if b, ok := k.canonical(false); ok {
		return b, nil
	}
	return Canonical(unsignedExchangeKey{k.Pub, k.Issuer, k.KeyID, k.Expires, k.Attrs})
}

// canonical writes the JCS form of k (without its signature unless
// withSig) directly, for the common case where every text field is plain
// (see plainText): JCS then writes each string as is between quotes, and
// the members in the order of their names, attrs, expires, issuer, keyId,
// pub, sig. It saves an encoding/json pass and a JCS parse per use, and
// several exchange keys are encoded per coin. ok is false when a field is
// not plain; callers then use Canonical, which TestExchangeKeyCanonical
// checks this against.
func (k *ExchangeKey) canonical(withSig bool) ([]byte, bool) {
	if !exchangeKeyFieldsKnown || !plainText(k.Pub) || !plainText(k.Issuer) || !plainText(k.KeyID) || (withSig && !plainText(k.Sig)) {
		return nil, false
	}
	exp, err := k.Expires.MarshalJSON()
	if err != nil || !plainText(string(exp[1:len(exp)-1])) {
		return nil, false
	}
	b := make([]byte, 0, 160+len(k.Sig)+32*len(k.Attrs))
	b = append(b, '{')
	if len(k.Attrs) > 0 {
		names := make([]string, 0, len(k.Attrs))
		for n, v := range k.Attrs {
			if !plainText(n) || !plainText(v) {
				return nil, false
			}
			names = append(names, n)
		}
		slices.Sort(names) // byte order is UTF-16 order for ASCII
		b = append(b, `"attrs":{`...)
		for i, n := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(append(append(append(append(b, '"'), n...), `":"`...), k.Attrs[n]...), '"')
		}
		b = append(b, "},"...)
	}
	b = append(append(b, `"expires":`...), exp...)
	b = append(append(append(b, `,"issuer":"`...), k.Issuer...), '"')
	b = append(append(append(b, `,"keyId":"`...), k.KeyID...), '"')
	b = append(append(append(b, `,"pub":"`...), k.Pub...), '"')
	if withSig {
		b = append(append(append(b, `,"sig":"`...), k.Sig...), '"')
	}
	return append(b, '}'), true
}

// PublicKey returns the decoded one-time public key.
func (k *ExchangeKey) PublicKey() (ed25519.PublicKey, error) { return DecodeKey(k.Pub) }

// ParseExchangeKey decodes an exchange key strictly.
func ParseExchangeKey(data []byte) (*ExchangeKey, error) {
	var k ExchangeKey
	if err := decodeExact(data, &k); err != nil {
		return nil, fmt.Errorf("parse exchange key: %w", err)
	}
	return &k, nil
}

// Link is one transfer of a coin: to the exchange key To, signed by the
// previous holder.
type Link struct {
	To  ExchangeKey `json:"to"`
	Sig string      `json:"sig"`
}

// Sandbox is a held coin: the OTP and its chain of transfers. The current
// holder is the last link's key, or the coin's first holder.
type Sandbox struct {
	Coin  Coin   `json:"coin"`
	Chain []Link `json:"chain"`
}

// ParseSandbox decodes a sandbox strictly.
func ParseSandbox(data []byte) (*Sandbox, error) {
	var s Sandbox
	if err := decodeExact(data, &s); err != nil {
		return nil, fmt.Errorf("parse sandbox: %w", err)
	}
	if s.Coin.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("parse sandbox: %w: %d", ErrVersion, s.Coin.SchemaVersion)
	}
	return &s, nil
}

// Hops is the number of transfers the coin has made.
func (s *Sandbox) Hops() int { return len(s.Chain) }

// HolderAt returns the text form of the key that held the coin after i
// transfers (0 is the first holder).
func (s *Sandbox) HolderAt(i int) string {
	if i == 0 {
		return s.Coin.Data.Holder
	}
	return s.Chain[i-1].To.Pub
}

// Holder returns the text form of the current holder's public key.
func (s *Sandbox) Holder() string { return s.HolderAt(len(s.Chain)) }

func linkPayload(checksum []byte, index int, to *ExchangeKey) ([]byte, []byte, error) {
	canon, ok := to.canonical(true)
	if !ok {
		var err error
		if canon, err = Canonical(to); err != nil {
			return nil, nil, err
		}
	}
	return binary.BigEndian.AppendUint32(append([]byte(nil), checksum...), uint32(index)), canon, nil
}

// Transfer appends a link to to s, signed with the current holder's private
// key priv (the paper's buildSandbox). It does not verify to; the caller
// does that first.
func (s *Sandbox) Transfer(priv ed25519.PrivateKey, to ExchangeKey) error {
	if !equalText(EncodeKey(priv.Public().(ed25519.PublicKey)), s.Holder()) {
		return fmt.Errorf("transfer %s: %w: key is not the current holder", s.Coin.Data.Token, ErrChain)
	}
	sum, err := s.Coin.checksumBytes()
	if err != nil {
		return err
	}
	head, canon, err := linkPayload(sum, len(s.Chain), &to)
	if err != nil {
		return fmt.Errorf("transfer %s: %w", s.Coin.Data.Token, err)
	}
	s.Chain = append(s.Chain, Link{To: to, Sig: sign(priv, labelTransfer, head, canon)})
	return nil
}

// Ack is a payee's receipt for a coin: signed by the exchange key the coin
// was transferred to, so the payer can prove the payee received it.
type Ack struct {
	Token string `json:"token"`
	Link  int    `json:"link"`
	Sig   string `json:"sig"`
}

func indexPayload(checksum []byte, index int, extra string) []byte {
	b := binary.BigEndian.AppendUint32(append([]byte(nil), checksum...), uint32(index))
	return append(b, extra...)
}

// Acknowledge signs a receipt for s with the current holder's key priv.
func (s *Sandbox) Acknowledge(priv ed25519.PrivateKey) (Ack, error) {
	if len(s.Chain) == 0 {
		return Ack{}, fmt.Errorf("ack %s: %w: coin was never transferred", s.Coin.Data.Token, ErrChain)
	}
	sum, err := s.Coin.checksumBytes()
	if err != nil {
		return Ack{}, err
	}
	last := len(s.Chain) - 1
	return Ack{Token: s.Coin.Data.Token, Link: last, Sig: sign(priv, labelAck, indexPayload(sum, last, ""))}, nil
}

// VerifyAck checks that a is the receipt, by the holder of the last link's
// key, for the last transfer of s.
func (s *Sandbox) VerifyAck(a Ack) error {
	var b sigBatch
	if err := s.checkAck(a, &b); err != nil {
		return err
	}
	return b.verify()
}

// checkAck is VerifyAck with the receipt's signature queued in b.
func (s *Sandbox) checkAck(a Ack, b *sigBatch) error {
	last := len(s.Chain) - 1
	if last < 0 || a.Link != last || a.Token != s.Coin.Data.Token {
		return fmt.Errorf("ack %s: %w: not for the last transfer of this coin", a.Token, ErrChain)
	}
	sum, err := s.Coin.checksumBytes()
	if err != nil {
		return err
	}
	pub, err := DecodeKey(s.Chain[last].To.Pub)
	if err != nil {
		return err
	}
	if err := b.add(named("ack %s", a.Token), pub, a.Sig, labelAck, indexPayload(sum, last, "")); err != nil {
		return fmt.Errorf("ack %s: %w", a.Token, err)
	}
	return nil
}

// VerifyAcks checks that acks[i] is the receipt for the last transfer of
// *sealed[i], for every i, as VerifyAck does, with the signatures verified
// as one batch.
func VerifyAcks(sealed []*Sandbox, acks []Ack) error {
	if len(acks) != len(sealed) {
		return fmt.Errorf("%d receipts for %d coins", len(acks), len(sealed))
	}
	bs := make([]sigBatch, len(acks))
	err := parallel.ForEach(len(acks), func(i int) error { return sealed[i].checkAck(acks[i], &bs[i]) })
	if err != nil {
		return err
	}
	return verifyAll(bs)
}

// verifyAcks is VerifyAcks for a slice of sandboxes.
func verifyAcks(sealed []Sandbox, acks []Ack) error {
	ps := make([]*Sandbox, len(sealed))
	for i := range sealed {
		ps[i] = &sealed[i]
	}
	return VerifyAcks(ps, acks)
}

// DepositProof signs, with the current holder's key priv, the request to
// credit s to the bank account account.
func (s *Sandbox) DepositProof(priv ed25519.PrivateKey, account string) (string, error) {
	if !equalText(EncodeKey(priv.Public().(ed25519.PublicKey)), s.Holder()) {
		return "", fmt.Errorf("deposit proof %s: %w: key is not the current holder", s.Coin.Data.Token, ErrChain)
	}
	sum, err := s.Coin.checksumBytes()
	if err != nil {
		return "", err
	}
	return sign(priv, labelDeposit, indexPayload(sum, len(s.Chain), account)), nil
}

// VerifyDepositProof checks a deposit proof made by DepositProof.
func (s *Sandbox) VerifyDepositProof(proof, account string) error {
	var b sigBatch
	if err := s.checkDepositProof(proof, account, &b); err != nil {
		return err
	}
	return b.verify()
}

// checkDepositProof is VerifyDepositProof with the proof's signature
// queued in b.
func (s *Sandbox) checkDepositProof(proof, account string, b *sigBatch) error {
	sum, err := s.Coin.checksumBytes()
	if err != nil {
		return err
	}
	pub, err := DecodeKey(s.Holder())
	if err != nil {
		return err
	}
	tok := s.Coin.Data.Token
	if err := b.add(named("deposit proof %s", tok), pub, proof, labelDeposit, indexPayload(sum, len(s.Chain), account)); err != nil {
		return fmt.Errorf("deposit proof %s: %w", tok, err)
	}
	return nil
}

// Divergence compares two chains of one coin and returns the text form of
// the one-time key that signed for both: the holder at the first index where
// they differ. A key that signed two different links, or a link and a
// deposit, is evidence of a double spend. ok is false when the sandboxes
// hold different coins.
func Divergence(a, b *Sandbox) (key string, index int, ok bool) {
	if a.Coin.Checksum != b.Coin.Checksum {
		return "", 0, false
	}
	i := 0
	for i < len(a.Chain) && i < len(b.Chain) && a.Chain[i].Sig == b.Chain[i].Sig {
		i++
	}
	return a.HolderAt(i), i, true
}
