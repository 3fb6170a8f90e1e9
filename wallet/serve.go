package wallet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/otpcash/otpcash/p2p"
)

// ServeOptions bound what the payers of Serve can hold. Zero fields take
// their defaults.
type ServeOptions struct {
	// MaxHandshakes is how many handshakes run at once (default 16):
	// further connections wait in the listener's backlog.
	MaxHandshakes int
	// HandshakeTimeout bounds each handshake (default, and at most, 30 s:
	// p2p.DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// MessageTimeout bounds the wait for each message of a session, and a
	// payer's wait, its handshake done, for the session before its own to
	// end: the payer gives up then, waiting for the answer to its hello
	// (default 60 s: p2p.DefaultMessageTimeout).
	MessageTimeout time.Duration
}

const defaultMaxHandshakes = 16

// Serve is a shop's terminal: it receives on ln until one payment session
// completes, and returns that payment, or until ctx is done. A connection
// that fails its handshake (a port probe, a scanner, a wrong client) or a
// session that fails (a payer that stalls, lies, or whose short
// authentication string is not confirmed) is logged and dropped, and Serve
// goes on serving: it returns an error only when ctx is done, the listener
// fails, or the wallet holds no exchange keys.
//
// Handshakes run concurrently, at most opts.MaxHandshakes at a time, each
// within opts.HandshakeTimeout, so that a slow or silent peer holds no
// more than one of them for no longer than that; sessions run one at a
// time, each message within opts.MessageTimeout. ctx bounds the wait on
// ln as in p2p.Accept, so only one goroutine may wait on ln; on a listener
// without a SetDeadline method Serve returns only once ln is closed.
//
// Coins a dropped session received before it failed are kept, as Receive
// keeps them; the log says how much.
func (w *Wallet) Serve(ctx context.Context, ln net.Listener, opts ServeOptions) (Payment, error) {
	kp, err := w.payeeIdentity(ctx)
	if err != nil {
		return Payment{}, fmt.Errorf("serve: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, which ends every handshake and the wait on ln
	defer cancel()

	ready := make(chan arrival)
	failed := make(chan error, 1)
	wg.Go(func() { failed <- w.handshakes(ctx, &wg, ln, kp, opts, ready) })
	as := func(h *payee) p2p.Handler { return h }
	for {
		select {
		case a := <-ready:
			a.conn.SetMessageTimeout(opts.MessageTimeout)
			p, err := w.session(ctx, a.conn, as)
			// A payer that paid other than it offered completed a session
			// all the same: the shop must see what it got.
			if err == nil || errors.Is(err, ErrNotAsOffered) {
				return p, err
			}
			if ctx.Err() != nil {
				return p, fmt.Errorf("serve: %w", err)
			}
			w.log.Warn("payment session dropped", "remote", a.remote, "received", p.Amount, "coins", p.Coins, "err", err)
		case err := <-failed:
			return Payment{}, fmt.Errorf("serve: %w", err)
		}
	}
}

// arrival is a connection whose handshake is done, waiting for its session.
type arrival struct {
	conn   *p2p.Conn
	remote string
}

// handshakes accepts connections on ln and runs their handshakes, at most
// opts.MaxHandshakes at once, handing each that succeeds to ready. It
// returns why it stopped accepting. A handshake holds its slot until its
// connection is handed over, so connections waiting for a session count
// against the bound too.
func (w *Wallet) handshakes(ctx context.Context, wg *sync.WaitGroup, ln net.Listener, kp p2p.Keypair, opts ServeOptions, ready chan<- arrival) error {
	slots := make(chan struct{}, positiveOr(opts.MaxHandshakes, defaultMaxHandshakes))
	timeout := positiveOr(opts.HandshakeTimeout, p2p.DefaultHandshakeTimeout)
	queued := positiveOr(opts.MessageTimeout, p2p.DefaultMessageTimeout)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		nc, err := p2p.AcceptConn(ctx, ln)
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer func() { <-slots }()
			remote := nc.RemoteAddr().String()
			hctx, cancel := context.WithTimeout(ctx, timeout)
			conn, err := p2p.Server(hctx, nc, kp)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					w.log.Warn("handshake dropped", "remote", remote, "err", err)
				}
				return
			}
			wait := time.NewTimer(queued)
			defer wait.Stop()
			select {
			case ready <- arrival{conn, remote}:
			case <-ctx.Done():
				conn.Close()
			case <-wait.C:
				// The payer has given up waiting for the answer to its
				// hello by now.
				conn.Close()
				w.log.Warn("payer dropped", "remote", remote, "err", "waited too long for the session before it")
			}
		})
	}
}

// positiveOr is v, or def when v is not positive.
func positiveOr[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}
