package wallet

import (
	"context"
	"net"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// countingListener counts the bytes each accepted connection moves, so a
// benchmark can report bytes on the wire per coin.
type countingListener struct {
	net.Listener
	in, out atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.l.out.Add(int64(n))
	return n, err
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// supply gives the payer n fresh coins of 1.00 and the payee n exchange
// keys, outside the timed part of a benchmark.
func supply(b *testing.B, bk *testBank, payer, payee *holder, n int64) {
	ctx := context.Background()
	if _, err := bk.Credit(ctx, payer.account, n*100); err != nil {
		b.Fatal(err)
	}
	if _, err := payer.w.Withdraw(ctx, payer.acct(), n*100); err != nil {
		b.Fatal(err)
	}
	if _, err := payee.w.RefillKeys(ctx, int(n)); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPay5, BenchmarkPay50 and BenchmarkPay500 pay 5, 50 and 500
// coins between two wallets over loopback TCP with durable vault writes on
// both sides: the whole protocol, both sides in this process. Coins and
// exchange keys are supplied outside the timed part. Time per coin should
// be flat from 50 to 500 coins (docs/PERFORMANCE.md).
func BenchmarkPay5(b *testing.B)   { benchPay(b, 5, 0) }
func BenchmarkPay50(b *testing.B)  { benchPay(b, 50, 0) }
func BenchmarkPay500(b *testing.B) { benchPay(b, 500, 0) }

// BenchmarkPay5Holding2000 is BenchmarkPay5 from a payer that also holds
// 2,000 other coins, as a wallet that is used does: what a payment costs
// should not grow with the coins it does not pay.
func BenchmarkPay5Holding2000(b *testing.B) { benchPay(b, 5, 2000) }

// withdrawAll credits h with n coins of 1.00 and withdraws them.
func withdrawAll(b *testing.B, bk *testBank, h *holder, n int64) {
	ctx := context.Background()
	for ; n > 0; n -= 500 { // the bank signs at most 1,000 a request
		if _, err := bk.Credit(ctx, h.account, min(n, 500)*100); err != nil {
			b.Fatal(err)
		}
		if _, err := h.w.Withdraw(ctx, h.acct(), min(n, 500)*100); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBalance sums the balance of a wallet that holds 500 coins and
// has deposited 2,000: what a wallet app's screen asks at every refresh
// should not grow with the coins the wallet no longer has.
func BenchmarkBalance(b *testing.B) {
	ctx := context.Background()
	bk := newTestBank(b)
	h := bk.newHolder(b, 0)
	withdrawAll(b, bk, h, 2000)
	if _, err := h.w.Deposit(ctx, h.acct()); err != nil {
		b.Fatal(err)
	}
	withdrawAll(b, bk, h, 500)
	for b.Loop() {
		bal, err := h.w.Balance(ctx)
		if err != nil || bal.Coins != 500 {
			b.Fatal(bal.Coins, err)
		}
	}
}

// benchPay pays coins fresh coins at each round, from a payer that holds
// another holding coins throughout.
func benchPay(b *testing.B, coins, holding int64) {
	ctx := context.Background()
	bk := newTestBank(b)
	alice, bob := bk.newHolder(b, 0), bk.newHolder(b, 0)
	withdrawAll(b, bk, alice, holding)
	var cpu time.Duration
	var wire int64
	for b.Loop() {
		b.StopTimer()
		supply(b, bk, alice, bob, coins)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		cl := &countingListener{Listener: ln}
		c0 := cpuTime()
		b.StartTimer()

		// The label marks the payment's samples in a CPU profile
		// (pprof -tagfocus phase=pay), apart from the bank's signing in
		// supply; goroutines started inside inherit it.
		var wg sync.WaitGroup
		var payErr, recvErr error
		pprof.Do(ctx, pprof.Labels("phase", "pay"), func(ctx context.Context) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, recvErr = bob.w.Receive(ctx, cl)
			}()
			if _, payErr = alice.w.Pay(ctx, ln.Addr().String(), coins*100, ""); payErr != nil {
				ln.Close() // the payee may still be waiting for a connection
			}
			wg.Wait()
		})
		if payErr != nil {
			b.Fatal(payErr)
		}

		b.StopTimer()
		cpu += cpuTime() - c0
		wire += cl.in.Load() + cl.out.Load()
		ln.Close()
		if recvErr != nil {
			b.Fatal(recvErr)
		}
		if _, err := bob.w.Deposit(ctx, bob.acct()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	n := float64(b.N) * float64(coins)
	b.ReportMetric(float64(b.Elapsed().Microseconds())/n, "wall-us/coin")
	b.ReportMetric(cpu.Seconds()*1e6/n, "cpu-us/coin")
	b.ReportMetric(float64(wire)/n, "wire-B/coin")
}

// BenchmarkDeposit500 deposits 500 coins, each moved once, from a wallet
// through the HTTP API into the SQLite bank.
func BenchmarkDeposit500(b *testing.B) {
	const coins = 500
	ctx := context.Background()
	bk := newTestBank(b)
	alice, bob := bk.newHolder(b, 0), bk.newHolder(b, 0)
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		supply(b, bk, alice, bob, coins)
		if _, payErr, _, recvErr := pay(b, alice, bob, coins*100, nil); payErr != nil || recvErr != nil {
			b.Fatal(payErr, recvErr)
		}
		start := time.Now()
		b.StartTimer()
		res, err := bob.w.Deposit(ctx, bob.acct())
		b.StopTimer()
		elapsed += time.Since(start)
		if err != nil || res.Coins != coins {
			b.Fatalf("deposit = %+v, %v", res, err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*coins)/elapsed.Seconds(), "coins/s")
}
