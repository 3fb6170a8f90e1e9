package p2p

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/otpcash/otpcash/otp"
)

// benchPayee hands out keys made in advance and answers with receipts made
// in advance, so that the benchmark measures the session, not signatures.
type benchPayee struct {
	NoChange
	keys []otp.ExchangeKey
	acks map[string]otp.Ack
}

func (*benchPayee) Hello(context.Context, Hello) (Hello, error) { return Hello{}, nil }
func (*benchPayee) Offer(context.Context, Offer) error          { return nil }

func (h *benchPayee) ExchangeKeys(_ context.Context, n int) ([]otp.ExchangeKey, error) {
	return h.keys[:n], nil
}

func (h *benchPayee) Receive(_ context.Context, coins []otp.Sandbox) ([]otp.Ack, []otp.Sandbox, error) {
	acks := make([]otp.Ack, len(coins))
	for i := range coins {
		acks[i] = h.acks[coins[i].Coin.Data.Token]
	}
	return acks, nil, nil
}

func (h *benchPayee) Resend(ctx context.Context, coins []otp.Sandbox) ([]otp.Ack, []otp.Sandbox, error) {
	return h.Receive(ctx, coins)
}

// BenchmarkSession runs whole payment sessions over loopback TCP: dial,
// handshake, hello, offer, one round of n coins, done. B/coin counts both
// directions on the wire, handshake included.
func BenchmarkSession(b *testing.B) {
	for _, n := range []int{1, 50, 500} {
		b.Run(fmt.Sprintf("coins=%d", n), func(b *testing.B) {
			benchmarkSession(b, n)
		})
	}
}

func benchmarkSession(b *testing.B, n int) {
	paid := newBank(b).pay(b, "bench", n)
	h := &benchPayee{acks: make(map[string]otp.Ack, n)}
	sealed := make([]otp.Sandbox, n)
	for i, p := range paid {
		h.keys = append(h.keys, p.key)
		h.acks[p.sandbox.Coin.Data.Token] = p.ack
		sealed[i] = p.sandbox
	}
	payerKey, payeeKey := newKeypair(b), newKeypair(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ctx := testContext(b)
	served := make(chan error, 1)
	go func() {
		for {
			c, err := Accept(ctx, ln, payeeKey)
			if err != nil {
				served <- err
				return
			}
			err = Serve(ctx, c, h)
			c.Close()
			served <- err
		}
	}()

	var wire int64
	for b.Loop() {
		c, err := Dial(ctx, ln.Addr().String(), payerKey)
		if err != nil {
			b.Fatal(err)
		}
		if err := payOnce(ctx, NewPayer(c), sealed); err != nil {
			b.Fatal(err)
		}
		if err := <-served; err != nil {
			b.Fatal(err)
		}
		wire += c.BytesSent() + c.BytesReceived()
		c.Close()
	}
	b.ReportMetric(float64(wire)/float64(b.N*n), "B/coin")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/coin")
}

func payOnce(ctx context.Context, p *Payer, sealed []otp.Sandbox) error {
	if _, err := p.Hello(ctx, Hello{}); err != nil {
		return err
	}
	if err := p.Offer(ctx, Offer{Amount: int64(100 * len(sealed)), Currency: "EUR", MaxHops: 1}); err != nil {
		return err
	}
	if _, err := p.ExchangeKeys(ctx, len(sealed)); err != nil {
		return err
	}
	if _, err := p.Send(ctx, sealed); err != nil {
		return err
	}
	return p.Done(ctx)
}

// BenchmarkDecodeCoins decodes one message of 500 sealed coins, most of a
// payee's decoding work in a session, sealed to keys it handed out.
func BenchmarkDecodeCoins(b *testing.B) {
	m, keys := benchCoins(b)
	enc := must((&codec{binary: true, theirs: keys}).encode(m))
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := (&codec{binary: true, own: keys}).decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeCoins encodes the same message, on the payer's side.
func BenchmarkEncodeCoins(b *testing.B) {
	m, keys := benchCoins(b)
	for b.Loop() {
		if _, err := (&codec{binary: true, theirs: keys}).encode(m); err != nil {
			b.Fatal(err)
		}
	}
}

func benchCoins(b *testing.B) (*coinsMsg, []otp.ExchangeKey) {
	paid := newBank(b).pay(b, "bench", 500)
	m := &coinsMsg{Coins: make([]otp.Sandbox, len(paid))}
	keys := make([]otp.ExchangeKey, len(paid))
	for i, p := range paid {
		m.Coins[i], keys[i] = p.sandbox, p.key
	}
	return m, keys
}
