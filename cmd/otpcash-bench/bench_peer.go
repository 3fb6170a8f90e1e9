package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/p2p"
	"github.com/otpcash/otpcash/wallet"
)

func newBenchRampPeerCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "ramp-peer",
		Short:  "One wallet process of the ramp test, driven over stdin and stdout by otpcash-bench ramp",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return servePeer(cmd.Context(), os.Stdin, os.Stdout)
		},
	}
}

// rampPeer is one side of the ramp: a wallet, and for the payee a listener
// that counts, and may throttle, the traffic of every session.
type rampPeer struct {
	w        *wallet.Wallet
	account  wallet.Account
	ln       *countingListener
	identity p2p.Keypair // for transport-only sessions
}

// servePeer answers requests, one JSON line each, until in is closed.
func servePeer(ctx context.Context, in io.Reader, out io.Writer) error {
	p := &rampPeer{}
	defer func() {
		if p.w != nil {
			p.w.Close()
		}
	}()
	enc := json.NewEncoder(out)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		var req peerRequest
		var rep peerReply
		err := json.Unmarshal(sc.Bytes(), &req)
		if err == nil {
			rep, err = p.do(ctx, req)
		}
		if err != nil {
			rep.Err = err.Error()
		}
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
	return sc.Err()
}

func (p *rampPeer) do(ctx context.Context, req peerRequest) (peerReply, error) {
	switch req.Op {
	case "init":
		return p.init(ctx, req)
	case "withdraw":
		_, err := p.w.Withdraw(ctx, p.account, int64(req.N)*coinValue)
		return peerReply{}, err
	case "restock": // the payee, between runs
		if _, err := p.w.Deposit(ctx, p.account); err != nil {
			return peerReply{}, err
		}
		_, err := p.w.RefillKeys(ctx, req.N)
		return peerReply{}, err
	case "receive":
		return p.receive(ctx, req.Bare)
	case "pay":
		return p.pay(ctx, req)
	}
	return peerReply{}, fmt.Errorf("unknown op %q", req.Op)
}

func (p *rampPeer) init(ctx context.Context, req peerRequest) (peerReply, error) {
	var err error
	p.account = wallet.Account{ID: req.Account, Token: req.Token}
	opts := wallet.Options{ConfirmSAS: func(context.Context, string) bool { return true }, Protector: req.Vault, TPM: req.TPM}
	if req.Merchant {
		opts.Merchant = &p.account
	}
	if p.w, err = wallet.Init(ctx, req.Dir, req.Bank, []byte("ramp-peer-pin"), opts); err != nil {
		return peerReply{}, err
	}
	if p.identity, err = p2p.GenerateKeypair(); err != nil {
		return peerReply{}, err
	}
	if !req.Listen {
		return peerReply{}, nil // the payer: it listens for nothing
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return peerReply{}, err
	}
	p.ln = &countingListener{Listener: ln}
	if req.Link != "" {
		lk, err := parseLink(req.Link)
		if err != nil {
			return peerReply{}, err
		}
		p.ln.link = &lk
	}
	return peerReply{Addr: ln.Addr().String()}, nil
}

// receive serves one session and reports this process's CPU time for it
// and the bytes it moved, both ways.
func (p *rampPeer) receive(ctx context.Context, bare bool) (peerReply, error) {
	cpu0, bytes0 := cpuUsage(), p.ln.bytes.Load()
	var coins int
	if bare {
		conn, err := p2p.Accept(ctx, p.ln, p.identity)
		if err != nil {
			return peerReply{}, err
		}
		h := &bareHandler{}
		err = p2p.Serve(ctx, conn, h)
		conn.Close()
		if err != nil {
			return peerReply{}, err
		}
		coins = h.coins
	} else {
		got, err := p.w.Receive(ctx, p.ln)
		if err != nil {
			return peerReply{}, err
		}
		coins = got.Coins
	}
	return peerReply{CPU: cpuUsage().since(cpu0), Bytes: p.ln.bytes.Load() - bytes0, Coins: coins}, nil
}

// pay pays req.N coins and reports the wall and CPU time of the payment.
func (p *rampPeer) pay(ctx context.Context, req peerRequest) (peerReply, error) {
	if req.Bare {
		return p.payBare(ctx, req)
	}
	start, cpu0 := time.Now(), cpuUsage()
	paid, err := p.w.Pay(ctx, req.Addr, int64(req.N)*coinValue, "")
	wall, cpu := time.Since(start), cpuUsage().since(cpu0)
	if err != nil {
		return peerReply{}, err
	}
	bal, err := p.w.Balance(ctx)
	if err != nil {
		return peerReply{}, err
	}
	return peerReply{Wall: wall, CPU: cpu, Coins: paid.Coins, Held: bal.Coins}, nil
}

// payBare runs the session of a payment with nothing signed, verified or
// stored: the same messages, of the same sizes, over the same channel.
func (p *rampPeer) payBare(ctx context.Context, req peerRequest) (peerReply, error) {
	coins := make([]otp.Sandbox, req.N)
	for i := range coins {
		coins[i] = fakeSandbox()
	}
	start, cpu0 := time.Now(), cpuUsage()
	conn, err := p2p.Dial(ctx, req.Addr, p.identity)
	if err != nil {
		return peerReply{}, err
	}
	defer conn.Close()
	payer := p2p.NewPayer(conn)
	if _, err := payer.Hello(ctx, p2p.Hello{Issuers: []string{"otpcash-bank"}}); err != nil {
		return peerReply{}, err
	}
	if err := payer.Offer(ctx, p2p.Offer{Amount: int64(req.N) * coinValue, Currency: "EUR", MaxHops: 1}); err != nil {
		return peerReply{}, err
	}
	keys, err := payer.ExchangeKeys(ctx, req.N)
	if err != nil {
		return peerReply{}, err
	}
	for i := range coins {
		coins[i].Chain[0].To = keys[i]
	}
	acks, err := payer.Send(ctx, coins)
	if err != nil {
		return peerReply{}, err
	}
	if err := payer.Done(ctx); err != nil {
		return peerReply{}, err
	}
	return peerReply{Wall: time.Since(start), CPU: cpuUsage().since(cpu0), Coins: len(acks)}, nil
}

// bareHandler is a payee that checks and stores nothing.
type bareHandler struct {
	p2p.NoChange
	coins int
}

func (*bareHandler) Hello(context.Context, p2p.Hello) (p2p.Hello, error) {
	return p2p.Hello{Issuers: []string{"otpcash-bank"}}, nil
}
func (*bareHandler) Resend(context.Context, []otp.Sandbox) ([]otp.Ack, []otp.Sandbox, error) {
	return nil, nil, nil
}
func (*bareHandler) Offer(context.Context, p2p.Offer) error { return nil }

func (*bareHandler) ExchangeKeys(_ context.Context, n int) ([]otp.ExchangeKey, error) {
	keys := make([]otp.ExchangeKey, n)
	for i := range keys {
		keys[i] = fakeExchangeKey()
	}
	return keys, nil
}

func (h *bareHandler) Receive(_ context.Context, coins []otp.Sandbox) ([]otp.Ack, []otp.Sandbox, error) {
	acks := make([]otp.Ack, len(coins))
	for i := range coins {
		acks[i] = otp.Ack{Token: coins[i].Coin.Data.Token, Link: 0, Sig: fakeB64(64)}
	}
	h.coins += len(coins)
	return acks, nil, nil
}

// fakeB64 is n random bytes in the formats' text form: the size of a key,
// checksum or signature, without the work of making one.
func fakeB64(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// The bank's key ids and expiries, which the coins and exchange keys of a
// real payment share: the wire sends what they share once.
var (
	fakeCoinKeyID     = "coin-" + fakeB64(12)
	fakeExchangeKeyID = "exchange-" + fakeB64(12)
	fakeCoinExpiry    = time.Now().Add(365 * 24 * time.Hour).UTC().Truncate(time.Second)
	fakeKeyExpiry     = time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Second)
)

// fakeSandbox is shaped like a coin fresh from withdrawal and sealed once,
// as the ramp's full runs send: the same fields and sizes, nothing signed
// but its checksum, which the wire leaves to the receiver to compute.
func fakeSandbox() otp.Sandbox {
	s := otp.Sandbox{
		Coin: otp.Coin{
			SchemaVersion: otp.SchemaVersion,
			Data: otp.Data{
				Token: fakeB64(otp.SerialSize), Value: coinValue, Currency: "EUR",
				Issuer: "otpcash-bank", KeyID: fakeCoinKeyID, Holder: fakeB64(32),
				Expires: fakeCoinExpiry, Conditions: []string{},
			},
			CallMethod: otp.DefaultProgram(),
			Signature:  otp.Signature{Alg: otp.AlgEd25519, Value: fakeB64(64)},
		},
		Chain: []otp.Link{{Sig: fakeB64(64)}}, // To: the payee's key
	}
	sum, err := s.Coin.ComputeChecksum()
	if err != nil {
		panic("bench: checksum of a fake coin: " + err.Error())
	}
	s.Coin.Checksum = base64.RawURLEncoding.EncodeToString(sum[:])
	return s
}

func fakeExchangeKey() otp.ExchangeKey {
	return otp.ExchangeKey{
		Pub: fakeB64(32), Issuer: "otpcash-bank", KeyID: fakeExchangeKeyID,
		Expires: fakeKeyExpiry, Sig: fakeB64(64),
	}
}
