package wallet

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpcash/otpcash/p2p"
)

// logged collects the wallet's log records, each as its message and
// attributes.
type logged chan string

func (l logged) Enabled(context.Context, slog.Level) bool { return true }
func (l logged) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l logged) WithGroup(string) slog.Handler            { return l }
func (l logged) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	l <- b.String()
	return nil
}

// await returns the next record that starts with msg, and fails if Serve
// returns first.
func (l logged) await(t *testing.T, msg string) string {
	t.Helper()
	for r := range l {
		if strings.HasPrefix(r, msg) {
			return r
		}
		if strings.HasPrefix(r, serveReturned) {
			t.Fatalf("%s before logging %q", r, msg)
		}
	}
	panic("unreachable")
}

const serveReturned = "Serve returned"

// serving runs Serve on a fresh listener of payee's, through wrap; the
// channel yields its result.
func serving(t *testing.T, ctx context.Context, payee *holder, opts ServeOptions, wrap func(net.Listener) net.Listener) (string, logged, <-chan Payment) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	log := make(logged, 100)
	payee.w.log = slog.New(log)
	served := make(chan Payment, 1)
	go func() {
		p, err := payee.w.Serve(ctx, wrap(ln), opts)
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		log <- fmt.Sprintf("%s %+v, %v", serveReturned, p, err)
		served <- p
	}()
	return ln.Addr().String(), log, served
}

func noWrap(ln net.Listener) net.Listener { return ln }

// payIn pays value from payer to addr in the background.
func payIn(t *testing.T, ctx context.Context, payer *holder, addr string, value int64) <-chan error {
	paid := make(chan error, 1)
	go func() {
		_, err := payer.w.Pay(ctx, addr, value, "after the others")
		paid <- err
	}()
	return paid
}

// A port probe, a scanner and a wrong client fail their handshakes; the
// terminal logs and drops each, and serves the payer that comes next.
func TestServeDropsFailedHandshakes(t *testing.T) {
	bk := newTestBank(t)
	payer, payee := bk.newHolder(t, 100), bk.newHolder(t, 0)
	ctx := t.Context()
	if _, err := payer.w.Withdraw(ctx, payer.acct(), 100); err != nil {
		t.Fatal(err)
	}
	addr, log, served := serving(t, ctx, payee, ServeOptions{}, noWrap)
	for _, probe := range []string{"", "GET / HTTP/1.0\r\n\r\n", "\x00\x20" + strings.Repeat("x", 32)} {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write([]byte(probe))
		nc.Close()
		if r := log.await(t, "handshake dropped"); !strings.Contains(r, "remote="+nc.LocalAddr().String()) {
			t.Errorf("log %q does not name the probe's address", r)
		}
	}
	if err := <-payIn(t, ctx, payer, addr, 100); err != nil {
		t.Fatal(err)
	}
	if p := <-served; p.Amount != 100 {
		t.Fatalf("Serve = %+v, want the payment of 100", p)
	}
}

// expiring is a listener whose connections from the addresses in stalled
// have every deadline the wallet set end at once, after expire: the test,
// not the machine's speed, decides when the deadline passes, and only one
// the wallet set can pass.
type expiring struct {
	net.Listener
	mu      sync.Mutex
	stalled map[string]bool
	expired bool
	conns   []*expiringConn
}

type expiringConn struct {
	net.Conn
	l    *expiring
	last time.Time // the deadline the wallet set last
}

func (l *expiring) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &expiringConn{Conn: nc, l: l}
	l.mu.Lock()
	l.conns = append(l.conns, c)
	l.mu.Unlock()
	return c, nil
}

// SetDeadline lets Serve end its wait on the listener.
func (l *expiring) SetDeadline(t time.Time) error {
	return l.Listener.(*net.TCPListener).SetDeadline(t)
}

func (l *expiring) stall(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stalled[addr] = true
}

// expire ends now every deadline set on a stalled connection, and every
// one set later.
func (l *expiring) expire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expired = true
	for _, c := range l.conns {
		c.apply()
	}
}

func (c *expiringConn) SetDeadline(t time.Time) error {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	c.last = t
	return c.apply()
}

func (c *expiringConn) apply() error {
	t := c.last
	if !t.IsZero() && c.l.expired && c.l.stalled[c.RemoteAddr().String()] {
		t = time.Unix(1, 0)
	}
	return c.Conn.SetDeadline(t)
}

// A payer that completes its handshake, sends two bytes of a message and
// then nothing is dropped when its message's deadline passes, and the
// payer waiting behind it is then served.
func TestServeDropsStalledPeer(t *testing.T) {
	bk := newTestBank(t)
	payer, payee := bk.newHolder(t, 100), bk.newHolder(t, 0)
	// No deadline: one would pass for the staller too, and hide whether
	// Serve set one of its own.
	ctx := t.Context()
	if _, err := payer.w.Withdraw(ctx, payer.acct(), 100); err != nil {
		t.Fatal(err)
	}
	l := &expiring{stalled: map[string]bool{}}
	sessions := make(chan string, 10)
	payee.w.opts.ConfirmSAS = func(_ context.Context, sas string) bool { sessions <- sas; return true }
	addr, log, served := serving(t, ctx, payee, ServeOptions{}, func(ln net.Listener) net.Listener { l.Listener = ln; return l })

	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	l.stall(nc.LocalAddr().String())
	kp, err := p2p.GenerateKeypair()
	if err != nil {
		t.Fatal(err)
	}
	staller, err := p2p.Client(ctx, nc, kp)
	if err != nil {
		t.Fatal(err)
	}
	if sas := <-sessions; sas != staller.SAS() {
		t.Fatalf("first session has SAS %s, the staller's is %s", sas, staller.SAS())
	}
	nc.Write([]byte{0, 64})
	paid := payIn(t, ctx, payer, addr, 100)
	l.expire()
	if r := log.await(t, "payment session dropped"); !strings.Contains(r, p2p.ErrTimeout.Error()) || !strings.Contains(r, "remote="+nc.LocalAddr().String()) {
		t.Errorf("log %q: want the staller's address and %q", r, p2p.ErrTimeout)
	}
	if err := <-paid; err != nil {
		t.Fatal(err)
	}
	if p := <-served; p.Amount != 100 {
		t.Fatalf("Serve = %+v, want the payment of 100", p)
	}
}

// counting is a listener that reports each connection it accepts.
type counting struct {
	net.Listener
	accepted chan net.Addr
}

func (l counting) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err == nil {
		l.accepted <- nc.RemoteAddr()
	}
	return nc, err
}

func (l counting) SetDeadline(t time.Time) error { return l.Listener.(*net.TCPListener).SetDeadline(t) }

// Silent peers hold at most MaxHandshakes handshakes: the terminal stops
// accepting until one ends, and then serves the payer that waited.
func TestServeBoundsHandshakes(t *testing.T) {
	bk := newTestBank(t)
	payer, payee := bk.newHolder(t, 100), bk.newHolder(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // against a hang only
	defer cancel()
	if _, err := payer.w.Withdraw(ctx, payer.acct(), 100); err != nil {
		t.Fatal(err)
	}
	l := counting{accepted: make(chan net.Addr, 10)}
	addr, log, served := serving(t, ctx, payee, ServeOptions{MaxHandshakes: 2}, func(ln net.Listener) net.Listener { l.Listener = ln; return l })
	var silent []net.Conn
	for range 2 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		silent = append(silent, nc)
		<-l.accepted
	}
	paid := payIn(t, ctx, payer, addr, 100)
	// Nothing the machine's speed could make fail: a third accept would
	// show up here; its absence after a while proves nothing by itself.
	select {
	case a := <-l.accepted:
		t.Fatalf("accepted %v while %d handshakes were running, limit 2", a, len(silent))
	case <-time.After(100 * time.Millisecond):
	}
	silent[0].Close()
	log.await(t, "handshake dropped")
	<-l.accepted
	if err := <-paid; err != nil {
		t.Fatal(err)
	}
	if p := <-served; p.Amount != 100 {
		t.Fatalf("Serve = %+v, want the payment of 100", p)
	}
}
