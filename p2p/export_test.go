package p2p

import "github.com/otpcash/otpcash/otp"

// The wallet-level tampering tests (tamper_test.go, package p2p_test) play a
// peer that runs the protocol but lies: they need the plaintext of each
// message, which only this package can see.

// ReadPlain reads the next message's plaintext from c, without decoding it.
// It touches only c's reading half, so it may run concurrently with
// WritePlain on the same Conn.
func ReadPlain(c *Conn) ([]byte, error) { return c.readRecords() }

// WritePlain encrypts msg, any bytes, as the next message on c.
func WritePlain(c *Conn, msg []byte) error { return c.writeRecords(msg) }

// DecodeMessage decodes msg as the peer's side would, had it last handed
// out the exchange keys own: as JSON if it is (the hellos), else as
// version 4's CBOR.
func DecodeMessage(msg []byte, own []otp.ExchangeKey) (any, error) {
	k := &codec{binary: len(msg) == 0 || msg[0] != '{', own: own}
	return k.decode(msg)
}

// MessageKind names the type of a message, "" if it has none.
func MessageKind(msg []byte) string {
	m, err := DecodeMessage(msg, nil)
	if err == nil {
		return m.(message).kind()
	}
	var env wireEnvelope
	if wireDec.Unmarshal(msg, &env) == nil && env.Type < uint(len(wireTypes)) {
		return wireTypes[env.Type] // a message that refers to keys it was not given
	}
	return ""
}

// ExchangeKeysOf returns the keys of a keys message.
func ExchangeKeysOf(m any) []otp.ExchangeKey { return m.(*keysMsg).Keys }

// Codec plays one side's encoding past the hellos, for a test that
// answers by hand.
type Codec struct{ k codec }

func NewCodec() *Codec { return &Codec{codec{binary: true}} }

// Coins decodes a coins message.
func (c *Codec) Coins(msg []byte) ([]otp.Sandbox, error) {
	m, err := c.k.decode(msg)
	if err != nil {
		return nil, err
	}
	return m.(*coinsMsg).Coins, nil
}

func (c *Codec) Keys(keys []otp.ExchangeKey) ([]byte, error) { return c.k.encode(&keysMsg{keys}) }
func (c *Codec) Acks(acks []otp.Ack) ([]byte, error)         { return c.k.encode(&acksMsg{Acks: acks}) }
func (c *Codec) Done() ([]byte, error)                       { return c.k.encode(&doneMsg{}) }
