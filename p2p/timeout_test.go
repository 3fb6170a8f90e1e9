package p2p

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// pipe returns both ends of a channel over net.Pipe, handshake done.
func pipe(t *testing.T) (payer, payee *Conn) {
	t.Helper()
	a, b := net.Pipe()
	ctx := testContext(t)
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := Server(ctx, b, newKeypair(t))
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	payer, err := Client(ctx, a, newKeypair(t))
	if err != nil {
		t.Fatal(err)
	}
	if payee = <-accepted; payee == nil {
		t.FailNow()
	}
	t.Cleanup(func() { payer.Close(); payee.Close() })
	return payer, payee
}

// A peer that stalls is dropped by the message timeout even when the
// context has no deadline at all; the timeouts are the test's, and expire
// only because the peer never sends (or reads) what it must.
func TestMessageTimeout(t *testing.T) {
	for _, tt := range []struct {
		name  string
		stall func(payer *Conn) // what the payer does, then nothing
	}{
		{"two bytes of a frame", func(payer *Conn) { payer.nc.Write([]byte{0, 64}) }},
		{"nothing", func(payer *Conn) {}},
		{"not reading the reply", func(payer *Conn) {
			payer.send(t.Context(), &Hello{Versions: []int{Version}})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			payer, payee := pipe(t)
			payee.SetMessageTimeout(10 * time.Millisecond)
			go tt.stall(payer)
			err := Serve(context.Background(), payee, &stub{})
			if !errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Serve with a stalled payer = %v, want %v", err, ErrTimeout)
			}
		})
	}
}

// The payee is served after a peer timed out: the timeout broke that
// session's Conn only.
func TestServedAfterTimeout(t *testing.T) {
	_, stalled := pipe(t)
	stalled.SetMessageTimeout(time.Millisecond)
	if err := Serve(context.Background(), stalled, &stub{}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Serve with a silent payer = %v, want %v", err, ErrTimeout)
	}
	payer, payee := pipe(t)
	ctx := testContext(t)
	served := serve(ctx, payee, &stub{})
	p := NewPayer(payer)
	if _, err := p.Hello(ctx, Hello{}); err != nil {
		t.Fatal(err)
	}
	if err := p.Done(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after a stalled session = %v", err)
	}
}

// A handshake that stalls ends after the handshake timeout, even with no
// deadline on the context.
func TestHandshakeTimeout(t *testing.T) {
	defer func(d time.Duration) { handshakeTimeout = d }(handshakeTimeout)
	handshakeTimeout = 10 * time.Millisecond
	for _, tt := range []struct {
		name  string
		stall func(nc net.Conn)
	}{
		{"silent", func(net.Conn) {}},
		{"two bytes", func(nc net.Conn) { nc.Write([]byte{0, 48}) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			go tt.stall(a)
			if _, err := Server(context.Background(), b, newKeypair(t)); !errors.Is(err, ErrTimeout) {
				t.Errorf("Server with a stalled client = %v, want %v", err, ErrTimeout)
			}
		})
	}
}
