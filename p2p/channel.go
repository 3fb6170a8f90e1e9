package p2p

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"

	"github.com/flynn/noise"
	"github.com/oasisprotocol/curve25519-voi/primitives/x25519"
)

const (
	prologue    = "otpcash/v1/p2p"
	commitLabel = "otpcash/v1/p2p/commit"
	sasLabel    = "otpcash/v1/p2p/sas"
	nonceSize   = 32

	// maxHandshakeFrame is the largest XX message this handshake sends:
	// message 2 (e, encrypted s, empty payload) and message 3 (encrypted s,
	// encrypted nonce) are both 96 bytes.
	maxHandshakeFrame = 96
)

// suite is the channel's cipher suite, Noise's 25519_ChaChaPoly_SHA256
// (TestCacophonyVectors runs its published vectors through it).
var suite = noise.NewCipherSuite(dh25519{}, noise.CipherChaChaPoly, noise.HashSHA256)

// dh25519 is flynn/noise's DH25519 computed by curve25519-voi. flynn/noise
// calls x/crypto's X25519, which derives the scalar's public key before
// each multiplication, so that each costs two (78 us here): voi makes a key
// pair from a precomputed table of the base point (9 us) and multiplies a
// peer's key once (39 us). Every handshake makes a key pair and three
// Diffie-Hellman products on each side. Both multiplications are
// documented constant-time (voi's curve.EdwardsPoint.MulBasepoint and
// curve.MontgomeryPoint.Mul), and voi, like x/crypto, refuses a product
// that is all zeros (a peer's key of small order).
type dh25519 struct{}

func (dh25519) GenerateKeypair(rng io.Reader) (noise.DHKey, error) {
	if rng == nil {
		rng = rand.Reader
	}
	priv := make([]byte, 32)
	if _, err := io.ReadFull(rng, priv); err != nil {
		return noise.DHKey{}, err
	}
	pub, err := x25519.X25519(priv, x25519.Basepoint)
	if err != nil {
		return noise.DHKey{}, err
	}
	return noise.DHKey{Private: priv, Public: pub}, nil
}

func (dh25519) DH(priv, pub []byte) ([]byte, error) { return x25519.X25519(priv, pub) }
func (dh25519) DHLen() int                          { return noise.DH25519.DHLen() }
func (dh25519) DHName() string                      { return noise.DH25519.DHName() }

// Keypair is a static X25519 key pair. The wallet's vault keeps it, so that a
// payee recognises the same payer, by PeerID, across sessions.
type Keypair struct {
	Private, Public []byte
}

// GenerateKeypair makes a fresh static key pair.
func GenerateKeypair() (Keypair, error) {
	k, err := suite.GenerateKeypair(nil)
	if err != nil {
		return Keypair{}, fmt.Errorf("p2p: generate keypair: %w", err)
	}
	return Keypair{Private: k.Private, Public: k.Public}, nil
}

// check fails early on a pair that does not belong together: the handshake
// would otherwise fail on the peer's side, with nothing to say why.
func (k Keypair) check() error {
	pub, err := x25519.X25519(k.Private, x25519.Basepoint)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrKeypair, err)
	}
	if !bytes.Equal(pub, k.Public) {
		return fmt.Errorf("%w: public key does not match private key", ErrKeypair)
	}
	return nil
}

// Dial connects to a payee at addr over TCP and runs the handshake as the
// initiator (the payer's side).
func Dial(ctx context.Context, addr string, static Keypair) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("p2p: dial: %w", err)
	}
	return Client(ctx, nc, static)
}

// Accept waits for a payer on ln and runs the handshake as the responder.
// ctx bounds the wait only on listeners with a SetDeadline method (TCP and
// Unix listeners), by setting and then clearing ln's deadline, so only one
// goroutine may call Accept on such a listener; on other listeners ctx
// bounds the handshake alone.
func Accept(ctx context.Context, ln net.Listener, static Keypair) (*Conn, error) {
	nc, err := AcceptConn(ctx, ln)
	if err != nil {
		return nil, err
	}
	return Server(ctx, nc, static)
}

// AcceptConn is Accept's wait for a connection, bounded by ctx as Accept's
// is, without the handshake: for a payee that runs the handshakes of
// several connections at once, each with Server.
func AcceptConn(ctx context.Context, ln net.Listener) (net.Conn, error) {
	nc, err := accept(ctx, ln)
	if err != nil {
		return nil, fmt.Errorf("p2p: accept: %w", err)
	}
	return nc, nil
}

func accept(ctx context.Context, ln net.Listener) (net.Conn, error) {
	d, ok := ln.(deadliner)
	if !ok {
		return ln.Accept()
	}
	release, err := bound(ctx, d, 0)
	if err != nil {
		return nil, err
	}
	defer release()
	nc, err := ln.Accept()
	if err != nil {
		return nil, ioErr(ctx, err)
	}
	return nc, nil
}

// Client runs the handshake over nc as the initiator. It ends when ctx is
// done or after DefaultHandshakeTimeout (ErrTimeout), whichever comes
// first. On error nc is closed.
func Client(ctx context.Context, nc net.Conn, static Keypair) (*Conn, error) {
	return handshake(ctx, nc, static, true)
}

// Server runs the handshake over nc as the responder, bounded as Client's
// is. On error nc is closed.
func Server(ctx context.Context, nc net.Conn, static Keypair) (*Conn, error) {
	return handshake(ctx, nc, static, false)
}

// The XX pattern lets whoever sends a handshake message choose its keys after
// seeing the other side's: a relay could try a million keys until the
// six-digit SAS of its two handshakes agreed. So the initiator commits, in
// message 1, to a random nonce and to the static key it will reveal in
// message 3, and sends the nonce in message 3, where it enters the handshake
// hash. The responder's choices in message 2 then cannot predict the final
// hash, and the initiator has no choice left after seeing message 2.
func commitment(nonce, static []byte) []byte {
	h := sha256.New()
	h.Write([]byte(commitLabel))
	h.Write(nonce)
	h.Write(static)
	return h.Sum(nil)
}

func handshake(ctx context.Context, nc net.Conn, static Keypair, initiator bool) (c *Conn, err error) {
	defer func() {
		if err != nil {
			nc.Close()
			err = fmt.Errorf("p2p: handshake: %w", ioErr(ctx, err))
		}
	}()
	if err := static.check(); err != nil {
		return nil, err
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   suite,
		Pattern:       noise.HandshakeXX,
		Initiator:     initiator,
		Prologue:      []byte(prologue),
		StaticKeypair: noise.DHKey{Private: static.Private, Public: static.Public},
	})
	if err != nil {
		return nil, err
	}
	release, err := bound(ctx, nc, handshakeTimeout)
	if err != nil {
		return nil, err
	}
	defer release()

	c = newConn(nc)
	x := exchanger{c: c, hs: hs, buf: make([]byte, maxHandshakeFrame)}
	var keys split
	if initiator {
		keys, err = x.initiate(static.Public)
		c.enc, c.dec = keys[0], keys[1]
	} else {
		keys, err = x.respond()
		c.enc, c.dec = keys[1], keys[0]
	}
	if err != nil {
		return nil, err
	}
	c.peer = bytes.Clone(hs.PeerStatic())
	c.sas = shortAuthString(hs.ChannelBinding())
	return c, nil
}

// split holds the cipher states the handshake ends with: [0] encrypts from
// initiator to responder, [1] from responder to initiator. Both are nil
// until the last handshake message.
type split [2]*noise.CipherState

// exchanger moves handshake messages, each in one frame.
type exchanger struct {
	c   *Conn
	hs  *noise.HandshakeState
	buf []byte
}

// initiate sends the commitment, reads the responder's keys, and reveals
// the static key and the nonce.
func (x *exchanger) initiate(static []byte) (split, error) {
	nonce := make([]byte, nonceSize)
	rand.Read(nonce) // never fails: crypto/rand crashes the program instead
	if _, err := x.write(commitment(nonce, static)); err != nil {
		return split{}, err
	}
	if _, _, err := x.read(0); err != nil {
		return split{}, err
	}
	return x.write(nonce)
}

// respond reads the commitment, sends its keys, and holds the initiator to
// what it committed to.
func (x *exchanger) respond() (split, error) {
	commit, _, err := x.read(sha256.Size)
	if err != nil {
		return split{}, err
	}
	if _, err := x.write(nil); err != nil {
		return split{}, err
	}
	nonce, keys, err := x.read(nonceSize)
	if err != nil {
		return split{}, err
	}
	if !bytes.Equal(commitment(nonce, x.hs.PeerStatic()), commit) {
		return split{}, fmt.Errorf("%w: initiator's static key or nonce differs from its commitment", ErrHandshake)
	}
	return keys, nil
}

func (x *exchanger) write(payload []byte) (split, error) {
	out, cs1, cs2, err := x.hs.WriteMessage(make([]byte, 2, 2+maxHandshakeFrame), payload)
	if err != nil {
		return split{}, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	binary.BigEndian.PutUint16(out, uint16(len(out)-2))
	if _, err := x.c.w.Write(out); err != nil {
		return split{}, err
	}
	return split{cs1, cs2}, nil
}

// read receives the next handshake message, whose payload must be exactly
// size bytes.
func (x *exchanger) read(size int) ([]byte, split, error) {
	frame, err := readFrame(x.c.r, x.buf)
	if err != nil {
		return nil, split{}, err
	}
	payload, cs1, cs2, err := x.hs.ReadMessage(nil, frame)
	if err != nil {
		return nil, split{}, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if len(payload) != size {
		return nil, split{}, fmt.Errorf("%w: payload of %d bytes, want %d", ErrHandshake, len(payload), size)
	}
	return payload, split{cs1, cs2}, nil
}

// shortAuthString reduces the handshake hash to six digits. The reduction of
// 64 bits mod 10^6 is uniform to within 10^-13.
func shortAuthString(binding []byte) string {
	k, err := hkdf.Key(sha256.New, binding, nil, sasLabel, 8)
	if err != nil {
		// Unreachable: SHA-256, a 32-byte secret and 8 bytes of output are
		// within every limit of hkdf.Key.
		panic("p2p: hkdf: " + err.Error())
	}
	return fmt.Sprintf("%06d", binary.BigEndian.Uint64(k)%1_000_000)
}

// SAS returns the short authentication string: six digits, equal on both
// sides exactly when no one is in the middle. Show it on both screens.
func (c *Conn) SAS() string { return c.sas }

// PeerID returns the peer's static public key as unpadded base64url.
func (c *Conn) PeerID() string { return base64.RawURLEncoding.EncodeToString(c.peer) }
