package p2p

// The wallet-level tampering tests (tamper_test.go, package p2p_test) play a
// peer that runs the protocol but lies: they need the plaintext of each
// message, which only this package can see.

// ReadPlain reads the next message's plaintext from c, without decoding it.
// It touches only c's reading half, so it may run concurrently with
// WritePlain on the same Conn.
func ReadPlain(c *Conn) ([]byte, error) { return c.readRecords() }

// WritePlain encrypts msg, any bytes, as the next message on c.
func WritePlain(c *Conn, msg []byte) error { return c.writeRecords(msg) }

// DecodeMessage decodes msg as the peer's side would.
func DecodeMessage(msg []byte) (any, error) { return decodeMessage(msg) }
