package otp

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
)

// A payee skips the bank's signature on the certificate of its own
// exchange key only for a byte-for-byte copy of the certificate it holds. A
// coin sealed to one of its public keys under a forged certificate (other
// attributes, a made-up signature) is still refused.
func TestVerifyReceivedOwnKey(t *testing.T) {
	f := newFixture(t)
	own := func(k *ExchangeKey) bool { return f.exchange.Equal(k) }
	if err := f.v.VerifyReceived([]Sandbox{*f.sandbox}, own); err != nil {
		t.Fatalf("genuine coin to the payee's own key: %v", err)
	}
	forged := f.exchange
	forged.Attrs = map[string]string{"category": "jeweller"}
	forged.Sig = "A" + forged.Sig[1:]
	s := Sandbox{Coin: *f.coin}
	if err := s.Transfer(f.holder, forged); err != nil {
		t.Fatal(err)
	}
	if err := f.v.VerifyReceived([]Sandbox{s}, own); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged certificate of the payee's own key = %v; want %v", err, ErrSignature)
	}
	// A lax own that trusts every key is the only way to skip it: the
	// link's own signature is still checked.
	bad := *cloneSandbox(t, f.sandbox)
	bad.Chain[0].Sig = "A" + bad.Chain[0].Sig[1:]
	if err := f.v.VerifyReceived([]Sandbox{bad}, func(*ExchangeKey) bool { return true }); !errors.Is(err, ErrSignature) {
		t.Fatalf("bad link signature with a trusted certificate = %v; want %v", err, ErrSignature)
	}
}

// pipePeer is a fakePeer that can also post coins and hand the receipts
// back later, as p2p.Payer does.
type pipePeer struct {
	fakePeer
	queue  [][]Ack
	refuse int // refuse the chunk starting at this coin (-1: none)
	posted int
}

func (p *pipePeer) Post(ctx context.Context, sealed []Sandbox) error {
	p.calls = append(p.calls, "post")
	if p.refuse >= p.posted && p.refuse < p.posted+len(sealed) {
		p.queue = append(p.queue, nil)
		p.posted += len(sealed)
		return nil
	}
	acks := make([]Ack, len(sealed))
	for i := range sealed {
		a, err := sealed[i].Acknowledge(p.privs[p.posted+i])
		if err != nil {
			return err
		}
		acks[i] = a
	}
	p.posted += len(sealed)
	p.queue = append(p.queue, acks)
	return nil
}

func (p *pipePeer) Receipts(context.Context) ([]Ack, error) {
	p.calls = append(p.calls, "receipts")
	acks := p.queue[0]
	p.queue = p.queue[1:]
	if acks == nil {
		return nil, errors.New("payee refused the chunk")
	}
	return acks, nil
}

// TestPipeline runs a batch in chunks: every chunk sealed before it is
// posted, receipts of chunk k read after chunk k+1 is posted, and a refused
// chunk leaves the earlier chunks spent and the rest pending.
func TestPipeline(t *testing.T) {
	f := newFixture(t)
	const n = 5
	var coins []Sandbox
	var keys []ExchangeKey
	var privs []ed25519.PrivateKey
	for i := range n {
		var serial Serial
		copy(serial[:], fmt.Sprintf("serial of pipelined test coin %02d", i))
		c, err := f.coinKey.Issue(serial, f.holder.Public().(ed25519.PublicKey), t0.AddDate(1, 0, 0), GeneralProgram())
		if err != nil {
			t.Fatal(err)
		}
		coins = append(coins, Sandbox{Coin: *c})
		priv := seedKey(fmt.Sprint("payee ", i))
		k, err := f.exchKey.Certify(priv.Public().(ed25519.PublicKey), t0.AddDate(0, 3, 0), nil)
		if err != nil {
			t.Fatal(err)
		}
		keys, privs = append(keys, k), append(privs, priv)
	}
	for _, refuse := range []int{-1, 2} {
		peer := &pipePeer{fakePeer: fakePeer{keys: keys, privs: privs}, refuse: refuse}
		purse := &fakePurse{holder: f.holder, peer: &peer.fakePeer}
		r := &Run{Verifier: f.v, Now: f.now, Peer: peer, Purse: purse, Coins: coins, Pipeline: Pipeline{Chunk: 2}}
		err := Execute(context.Background(), r)
		got := fmt.Sprint(peer.calls)
		switch refuse {
		case -1:
			if err != nil || purse.spent != n || len(r.Acks) != n {
				t.Fatalf("pipelined run: %v, %d spent, %d acks", err, purse.spent, len(r.Acks))
			}
			want := "[setupConnection buildSandbox post buildSandbox post receipts destroyOTP buildSandbox post receipts destroyOTP receipts destroyOTP]"
			if got != want {
				t.Fatalf("calls %s\nwant  %s", got, want)
			}
		default:
			if err == nil || purse.spent != 2 || len(r.Acks) != 2 || len(r.Sealed) != n {
				t.Fatalf("refused chunk: %v, %d spent, %d acks, %d sealed; want an error, 2, 2, 5", err, purse.spent, len(r.Acks), len(r.Sealed))
			}
		}
	}
}
