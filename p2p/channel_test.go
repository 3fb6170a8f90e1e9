package p2p

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flynn/noise"
)

// handshakePair runs both handshakes over the two ends of a stream.
func handshakePair(ctx context.Context, a, b net.Conn, ka, kb Keypair) (ca, cb *Conn, errA, errB error) {
	type result struct {
		c   *Conn
		err error
	}
	server := make(chan result, 1)
	go func() {
		c, err := Server(ctx, b, kb)
		server <- result{c, err}
	}()
	ca, errA = Client(ctx, a, ka)
	r := <-server
	return ca, r.c, errA, r.err
}

func TestHandshake(t *testing.T) {
	ctx := testContext(t)
	ka, kb := newKeypair(t), newKeypair(t)
	a, b := net.Pipe()
	ca, cb, errA, errB := handshakePair(ctx, a, b, ka, kb)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	defer ca.Close()
	defer cb.Close()
	if !regexp.MustCompile(`^[0-9]{6}$`).MatchString(ca.SAS()) || ca.SAS() != cb.SAS() {
		t.Errorf("SAS %q and %q, want six equal digits", ca.SAS(), cb.SAS())
	}
	if ca.PeerID() != base64.RawURLEncoding.EncodeToString(kb.Public) || cb.PeerID() != base64.RawURLEncoding.EncodeToString(ka.Public) {
		t.Errorf("PeerIDs %s and %s do not name the other side's static keys", ca.PeerID(), cb.PeerID())
	}
	if ca.BytesSent() != cb.BytesReceived() || ca.BytesSent() != 2+64+2+96 {
		t.Errorf("initiator sent %d bytes, responder received %d", ca.BytesSent(), cb.BytesReceived())
	}
}

// The derivation of the SAS is part of the protocol: two wallets must show
// the same digits for the same handshake. The vector was computed
// independently: HKDF-SHA256 with no salt, info "otpcash/v1/p2p/sas", 8
// bytes, big-endian, mod 10^6.
func TestShortAuthString(t *testing.T) {
	if got := shortAuthString(make([]byte, 32)); got != "783144" {
		t.Errorf("SAS of a zero hash = %s", got)
	}
}

// TestSASDetectsRelay puts a relay in the middle that runs its own
// handshake with each side and forwards messages between them: the channel
// works, and only the SAS and PeerID give the relay away.
func TestSASDetectsRelay(t *testing.T) {
	ctx := testContext(t)
	alice, bob, mallory := newKeypair(t), newKeypair(t), newKeypair(t)
	a, m1 := net.Pipe()
	m2, b := net.Pipe()
	type result struct {
		c   [2]*Conn
		err [2]error
	}
	toBob := make(chan result, 1)
	go func() {
		var r result
		r.c[0], r.c[1], r.err[0], r.err[1] = handshakePair(ctx, m2, b, mallory, bob)
		toBob <- r
	}()
	ca, cm1, errA, errM := handshakePair(ctx, a, m1, alice, mallory)
	r := <-toBob
	if err := errors.Join(errA, errM, r.err[0], r.err[1]); err != nil {
		t.Fatal(err)
	}
	cm2, cb := r.c[0], r.c[1]

	go func() {
		msg, err := cm1.readMessage(ctx)
		if err == nil {
			err = cm2.writeMessage(ctx, msg)
		}
		if err != nil {
			t.Error(err)
		}
	}()
	if err := ca.send(ctx, &Hello{Versions: []int{Version}}); err != nil {
		t.Fatal(err)
	}
	if m, err := cb.recv(ctx); err != nil || m.kind() != "hello" {
		t.Fatalf("relayed message: %v, %v", m, err)
	}

	if ca.SAS() != cm1.SAS() || cb.SAS() != cm2.SAS() {
		t.Fatal("the relay's own handshakes disagree on their SAS")
	}
	// The commitment makes a match a one-in-a-million accident.
	if ca.SAS() == cb.SAS() {
		t.Errorf("Alice and Bob both see SAS %s through the relay", ca.SAS())
	}
	if ca.PeerID() == cm2.PeerID() {
		t.Error("Alice sees Bob's key through the relay")
	}
}

// flipper relays bytes between two streams, flipping one byte of the
// initiator's (toServer) or the responder's (!toServer) stream at offset.
func flipper(t *testing.T, client, server net.Conn, toServer bool, offset int) {
	copyFlip := func(dst, src net.Conn, flip bool) {
		defer dst.Close()
		defer src.Close()
		buf := make([]byte, 1)
		for n := 0; ; n++ {
			if _, err := src.Read(buf); err != nil {
				return
			}
			if flip && n == offset {
				buf[0] ^= 0x20
			}
			if _, err := dst.Write(buf); err != nil {
				return
			}
		}
	}
	go copyFlip(server, client, toServer)
	go copyFlip(client, server, !toServer)
}

// Offsets in the streams: message 1 is a 66-byte frame (e, commitment),
// message 2 a 98-byte frame, message 3 a 98-byte frame after message 1.
func TestHandshakeRefusesTampering(t *testing.T) {
	tests := []struct {
		name              string
		toServer          bool
		offset            int
		clientErr, srvErr error
	}{
		{"ephemeral of message 1", true, 2 + 3, ErrHandshake, nil},
		{"commitment in message 1", true, 2 + 32 + 3, ErrHandshake, nil},
		{"static key in message 2", false, 2 + 32 + 3, ErrHandshake, nil},
		{"tag of message 2", false, 97, ErrHandshake, nil},
		{"static key in message 3", true, 66 + 2 + 3, nil, ErrHandshake},
		{"nonce in message 3", true, 66 + 2 + 48 + 3, nil, ErrHandshake},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			a, relayA := net.Pipe()
			relayB, b := net.Pipe()
			flipper(t, relayA, relayB, tt.toServer, tt.offset)
			_, _, errA, errB := handshakePair(ctx, a, b, newKeypair(t), newKeypair(t))
			if errA == nil && errB == nil {
				t.Fatal("both sides completed a tampered handshake")
			}
			if tt.clientErr != nil && !errors.Is(errA, tt.clientErr) {
				t.Errorf("initiator: %v, want %v", errA, tt.clientErr)
			}
			if tt.srvErr != nil && !errors.Is(errB, tt.srvErr) {
				t.Errorf("responder: %v, want %v", errB, tt.srvErr)
			}
		})
	}
}

// TestRecordTampering flips a byte of the first record after the handshake:
// the reader refuses it, and the Conn stays unusable.
func TestRecordTampering(t *testing.T) {
	ctx := testContext(t)
	a, relayA := net.Pipe()
	relayB, b := net.Pipe()
	flipper(t, relayA, relayB, true, 66+98+2+5)
	ca, cb, errA, errB := handshakePair(ctx, a, b, newKeypair(t), newKeypair(t))
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	defer ca.Close()
	defer cb.Close()
	go ca.send(ctx, &doneMsg{})
	if _, err := cb.recv(ctx); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered record: %v, want %v", err, ErrDecrypt)
	}
	if _, err := cb.recv(ctx); !errors.Is(err, ErrDecrypt) {
		t.Errorf("read after failure: %v, want the first failure again", err)
	}
	if err := cb.send(ctx, &doneMsg{}); !errors.Is(err, ErrDecrypt) {
		t.Errorf("write after failure: %v, want the first failure again", err)
	}
}

// TestCommitmentChecked plays initiators that reveal something other than
// what they committed to, as a relay searching for a matching SAS would.
func TestCommitmentChecked(t *testing.T) {
	honest, other := newKeypair(t), newKeypair(t)
	nonce := make([]byte, nonceSize)
	tests := []struct {
		name   string
		commit []byte
		reveal []byte
	}{
		{"other nonce", commitment(make([]byte, nonceSize), honest.Public), append([]byte{1}, nonce[1:]...)},
		{"other static key", commitment(nonce, other.Public), nonce},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			a, b := net.Pipe()
			defer a.Close()
			go func() {
				hs, err := noise.NewHandshakeState(noise.Config{
					CipherSuite: suite, Pattern: noise.HandshakeXX, Initiator: true, Prologue: []byte(prologue),
					StaticKeypair: noise.DHKey{Private: honest.Private, Public: honest.Public},
				})
				if err != nil {
					t.Error(err)
					return
				}
				x := exchanger{c: newConn(a), hs: hs, buf: make([]byte, maxHandshakeFrame)}
				if _, err := x.write(tt.commit); err != nil {
					return
				}
				if _, _, err := x.read(0); err != nil {
					return
				}
				x.write(tt.reveal)
			}()
			if _, err := Server(ctx, b, newKeypair(t)); !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "commitment") {
				t.Errorf("Server = %v, want %v over the commitment", err, ErrHandshake)
			}
		})
	}
}

func TestHandshakeRefusesFrames(t *testing.T) {
	tests := []struct {
		name string
		sent []byte
		want error
	}{
		{"oversized", append([]byte{0x03, 0xe8}, make([]byte, 1000)...), ErrFrameTooLarge},
		{"one byte over", append([]byte{0, maxHandshakeFrame + 1}, make([]byte, maxHandshakeFrame+1)...), ErrFrameTooLarge},
		{"truncated body", append([]byte{0, 64}, make([]byte, 10)...), io.ErrUnexpectedEOF},
		{"truncated length", []byte{0}, io.ErrUnexpectedEOF},
		{"nothing", nil, io.EOF},
		{"short message", append([]byte{0, 16}, make([]byte, 16)...), ErrHandshake},
		{"no commitment", append([]byte{0, 32}, make([]byte, 32)...), ErrHandshake},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			a, b := net.Pipe()
			go func() {
				a.Write(tt.sent)
				a.Close()
			}()
			if _, err := Server(ctx, b, newKeypair(t)); !errors.Is(err, tt.want) {
				t.Errorf("Server = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestKeypairChecked(t *testing.T) {
	good := newKeypair(t)
	other := newKeypair(t)
	tests := []struct {
		name string
		k    Keypair
	}{
		{"mismatched", Keypair{Private: good.Private, Public: other.Public}},
		{"short private key", Keypair{Private: good.Private[:31], Public: good.Public}},
		{"empty", Keypair{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer b.Close()
			if _, err := Client(testContext(t), a, tt.k); !errors.Is(err, ErrKeypair) {
				t.Fatalf("handshake with a bad keypair: %v, want ErrKeypair", err)
			}
			if _, err := a.Write([]byte{0}); !errors.Is(err, io.ErrClosedPipe) {
				t.Errorf("connection left open after a failed handshake: %v", err)
			}
		})
	}
}

func TestHandshakeHonoursContext(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(testContext(t), 30*time.Millisecond)
		defer cancel()
		a, b := net.Pipe()
		defer a.Close()
		if _, err := Server(ctx, b, newKeypair(t)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Server with a silent client = %v, want %v", err, context.DeadlineExceeded)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testContext(t))
		time.AfterFunc(30*time.Millisecond, cancel)
		a, b := net.Pipe()
		defer b.Close()
		if _, err := Client(ctx, a, newKeypair(t)); !errors.Is(err, context.Canceled) {
			t.Errorf("Client with a silent server = %v, want %v", err, context.Canceled)
		}
	})
	t.Run("accept", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(testContext(t), 30*time.Millisecond)
		defer cancel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if _, err := Accept(ctx, ln, newKeypair(t)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Accept with no client = %v, want %v", err, context.DeadlineExceeded)
		}
	})
}

// TestDHRefusesSmallOrder: a peer's ephemeral or static key of small
// order makes every Diffie-Hellman product zero, whatever our key, so a
// handshake with it would be keyed by the peer alone. The suite's DH must
// refuse it, as flynn/noise's own does.
func TestDHRefusesSmallOrder(t *testing.T) {
	k, err := suite.GenerateKeypair(nil)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := suite.GenerateKeypair(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := suite.DH(k.Private, peer.Public); err != nil {
		t.Fatalf("DH with a good key: %v", err)
	}
	for _, u := range []byte{0, 1} { // the points of order 2 and 4
		pub := make([]byte, 32)
		pub[0] = u
		if out, err := suite.DH(k.Private, pub); err == nil {
			t.Errorf("DH with the small-order key u=%d gave %x, want an error", u, out)
		}
	}
}
