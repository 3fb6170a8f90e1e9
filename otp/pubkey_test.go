package otp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/edwards25519"
)

// smallOrderKey is one entry of testdata/ed25519-small-order.json.
type smallOrderKey struct {
	Hex       string `json:"hex"`
	Order     int    `json:"order"`
	Canonical bool   `json:"canonical"`
	Point     string `json:"point"`
}

// smallOrderKeys reads the eight small-order points of edwards25519 and
// their six other encodings, from the lists of libsodium
// (ge25519_has_small_order) and C2SP CCTV (ed25519/README.md), and checks
// each entry against the curve so that a mistyped vector cannot pass
// unnoticed.
func smallOrderKeys(t *testing.T) []smallOrderKey {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "ed25519-small-order.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Source string          `json:"source"`
		Keys   []smallOrderKey `json:"keys"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	points, canonical := map[string]bool{}, 0
	for _, k := range file.Keys {
		b, err := hex.DecodeString(k.Hex)
		if err != nil || len(b) != ed25519.PublicKeySize {
			t.Fatalf("%s: not 32 bytes of hex", k.Hex)
		}
		p, err := new(edwards25519.Point).SetBytes(b)
		if err != nil {
			t.Fatalf("%s (%s): not a curve point: %v", k.Hex, k.Point, err)
		}
		if got := string(p.Bytes()) == string(b); got != k.Canonical {
			t.Fatalf("%s (%s): canonical %v, vector says %v", k.Hex, k.Point, got, k.Canonical)
		}
		if order := pointOrder(p); order != k.Order {
			t.Fatalf("%s (%s): order %d, vector says %d", k.Hex, k.Point, order, k.Order)
		}
		points[string(p.Bytes())] = true
		if k.Canonical {
			canonical++
		}
	}
	if len(points) != 8 || canonical != 8 || len(file.Keys) != 14 {
		t.Fatalf("%d distinct points, %d canonical encodings, %d entries; want 8, 8, 14", len(points), canonical, len(file.Keys))
	}
	return file.Keys
}

// pointOrder returns the order of p if it is at most 8, else 0.
func pointOrder(p *edwards25519.Point) int {
	q := edwards25519.NewIdentityPoint()
	for n := 1; n <= 8; n++ {
		q.Add(q, p)
		if q.Equal(edwards25519.NewIdentityPoint()) == 1 {
			return n
		}
	}
	return 0
}

func TestDecodeKeyRefusesSmallOrder(t *testing.T) {
	for _, k := range smallOrderKeys(t) {
		t.Run(k.Point, func(t *testing.T) {
			b, _ := hex.DecodeString(k.Hex)
			if _, err := DecodeKey(b64.EncodeToString(b)); !errors.Is(err, ErrPublicKey) {
				t.Fatalf("DecodeKey(%s) = %v; want %v", k.Hex, err, ErrPublicKey)
			}
		})
	}
}

// Every encoding whose y is not reduced mod p, or that sets the sign bit of
// x = 0, is a second spelling of a point that has a canonical one: refused
// whatever the point's order.
func TestDecodeKeyRefusesNonCanonical(t *testing.T) {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	tried := 0
	for k := int64(0); k < 19; k++ { // y = p + k < 2^255
		y := new(big.Int).Add(p, big.NewInt(k))
		for _, sign := range []byte{0, 0x80} {
			b := make([]byte, 32)
			y.FillBytes(b)
			for i := range 16 { // big-endian to little-endian
				b[i], b[31-i] = b[31-i], b[i]
			}
			b[31] |= sign
			if _, err := new(edwards25519.Point).SetBytes(b); err != nil {
				continue // not a point at all
			}
			tried++
			if _, err := DecodeKey(b64.EncodeToString(b)); !errors.Is(err, ErrPublicKey) {
				t.Errorf("DecodeKey(%x) (y = p + %d) = %v; want %v", b, k, err, ErrPublicKey)
			}
		}
	}
	if tried < 6 { // at least y = p and y = p + 1, both signs, and others
		t.Fatalf("only %d non-canonical encodings are points", tried)
	}
	// An honest key, and the base point, still decode.
	for _, pub := range [][]byte{seedKey("holder").Public().(ed25519.PublicKey), edwards25519.NewGeneratorPoint().Bytes()} {
		if _, err := DecodeKey(b64.EncodeToString(pub)); err != nil {
			t.Errorf("DecodeKey(%x) = %v", pub, err)
		}
	}
	// 32 bytes that are no point of the curve.
	notPoint := []byte{2, 31: 0}
	if _, err := new(edwards25519.Point).SetBytes(notPoint); err == nil {
		t.Fatal("test vector is a point")
	}
	if _, err := DecodeKey(b64.EncodeToString(notPoint)); !errors.Is(err, ErrPublicKey) {
		t.Errorf("DecodeKey(not a point) = %v; want %v", err, ErrPublicKey)
	}
}

// With the identity point as public key, the signature R = identity, S = 0
// verifies every message under crypto/ed25519. Each place a key signs for
// a coin (transfer, receipt, deposit, reclaim) must refuse such a key, in
// both of its spellings, before it looks at the signature.
func TestIdentityKeySignsNothing(t *testing.T) {
	f := newFixture(t)
	forged := b64.EncodeToString(append([]byte{1, 31: 0}, make([]byte, 32)...))
	for _, spelling := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000080",
	} {
		raw, _ := hex.DecodeString(spelling)
		weak := ed25519.PublicKey(raw)
		// The premise: crypto/ed25519 alone accepts the forgery.
		if sig, _ := b64.DecodeString(forged); !ed25519.Verify(weak, []byte("any message"), sig) {
			t.Fatalf("%s: crypto/ed25519 refuses the forgery; the test's premise is gone", spelling)
		}

		// Transfer: a coin first held by the weak key, "transferred" with
		// the forged signature.
		coin, err := f.coinKey.Issue(NewSerial(), weak, t0.AddDate(1, 0, 0), GeneralProgram())
		if err != nil {
			t.Fatal(err)
		}
		held := &Sandbox{Coin: *coin, Chain: []Link{{To: f.exchange, Sig: forged}}}
		if err := f.v.VerifySandbox(held); !errors.Is(err, ErrPublicKey) {
			t.Errorf("%s: transfer: VerifySandbox = %v; want %v", spelling, err, ErrPublicKey)
		}

		// Deposit: the weak key holds the coin and "signs" the request.
		if err := (&Sandbox{Coin: *coin}).VerifyDepositProof(forged, "acct"); !errors.Is(err, ErrPublicKey) {
			t.Errorf("%s: deposit: VerifyDepositProof = %v; want %v", spelling, err, ErrPublicKey)
		}

		// Receipt: a payee whose exchange key is the weak one, certified
		// (a blind-certified key is never seen by the bank), "acknowledges".
		toWeak, err := f.exchKey.Certify(weak, t0.AddDate(0, 3, 0), nil)
		if err != nil {
			t.Fatal(err)
		}
		paid := &Sandbox{Coin: *f.coin}
		if err := paid.Transfer(f.holder, toWeak); err != nil {
			t.Fatal(err)
		}
		if err := f.v.VerifyExchangeKey(&toWeak, f.now); !errors.Is(err, ErrPublicKey) {
			t.Errorf("%s: exchange key: VerifyExchangeKey = %v; want %v", spelling, err, ErrPublicKey)
		}
		if err := f.v.VerifySandbox(paid); !errors.Is(err, ErrPublicKey) {
			t.Errorf("%s: transfer to it: VerifySandbox = %v; want %v", spelling, err, ErrPublicKey)
		}
		ack := Ack{Token: paid.Coin.Data.Token, Link: 0, Sig: forged}
		if err := paid.VerifyAck(ack); !errors.Is(err, ErrPublicKey) {
			t.Errorf("%s: receipt: VerifyAck = %v; want %v", spelling, err, ErrPublicKey)
		}

		// Reclaim: the payer authorises the weak key as reclaim key, and
		// the request is "signed" with it.
		auth, err := paid.ReclaimAuthorization(f.holder, weak)
		if err != nil {
			t.Fatal(err)
		}
		if err := paid.VerifyReclaim(auth, b64.EncodeToString(raw), forged, "acct"); !errors.Is(err, ErrPublicKey) {
			t.Errorf("%s: reclaim: VerifyReclaim = %v; want %v", spelling, err, ErrPublicKey)
		}
	}
}

// The payer's executor refuses a payee's exchange key of small order
// (certified blindly, the bank never saw it) before it seals anything; the
// payee refuses a coin whose chain runs through such a key even when it
// trusts its own certificates.
func TestPayerAndPayeeRefuseWeakKeys(t *testing.T) {
	f := newFixture(t)
	for _, spelling := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000080",
	} {
		raw, _ := hex.DecodeString(spelling)
		weak, err := f.exchKey.Certify(ed25519.PublicKey(raw), t0.AddDate(0, 3, 0), nil)
		if err != nil {
			t.Fatal(err)
		}
		peer := &fakePeer{keys: []ExchangeKey{weak}, privs: []ed25519.PrivateKey{f.payee}}
		r := &Run{Verifier: f.v, Now: f.now, Peer: peer, Purse: &fakePurse{holder: f.holder, peer: peer}, Coins: []Sandbox{{Coin: *f.coin}}}
		if err := Execute(context.Background(), r); !errors.Is(err, ErrPublicKey) {
			t.Errorf("%s: Execute = %v; want %v", spelling, err, ErrPublicKey)
		}
		if len(peer.calls) != 1 || peer.calls[0] != StepSetupConnection {
			t.Errorf("%s: the payer went on after the keys: %v", spelling, peer.calls)
		}

		// Payee: the coin came through the weak key, then to the payee.
		coin, err := f.coinKey.Issue(NewSerial(), ed25519.PublicKey(raw), t0.AddDate(1, 0, 0), GeneralProgram())
		if err != nil {
			t.Fatal(err)
		}
		forged := b64.EncodeToString(append([]byte{1, 31: 0}, make([]byte, 32)...))
		in := []Sandbox{{Coin: *coin, Chain: []Link{{To: f.exchange, Sig: forged}}}}
		for _, own := range []func(*ExchangeKey) bool{nil, func(*ExchangeKey) bool { return true }} {
			if err := f.v.VerifyReceived(in, own); !errors.Is(err, ErrPublicKey) {
				t.Errorf("%s: VerifyReceived = %v; want %v", spelling, err, ErrPublicKey)
			}
		}
	}
}

// checkPoint tests a point's encoding on its coordinates, not by encoding
// the point again: it must give exactly what the plain rule (the encoding
// is Point.Bytes of the point, and the point is not of small order)
// gives, the same reason for each refusal, on random encodings and on
// every y that is not reduced.
func TestCheckPointIsTheEncodingRule(t *testing.T) {
	rule := func(b []byte) string {
		p, err := new(edwards25519.Point).SetBytes(b)
		switch {
		case err != nil:
			return "not a point of the curve"
		case !bytes.Equal(p.Bytes(), b):
			return "not in its only encoding"
		case new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1:
			return "a point of small order"
		}
		return ""
	}
	var cases [][]byte
	r := mathrand.New(mathrand.NewPCG(1, 2))
	for range 4000 {
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		cases = append(cases, b)
	}
	for k := range 19 { // y = p + k, both signs
		for _, sign := range []byte{0, 0x80} {
			b := bytes.Repeat([]byte{0xff}, 32)
			b[0] = byte(0xed + k)
			b[31] = 0x7f | sign
			cases = append(cases, b)
		}
	}
	for _, k := range smallOrderKeys(t) {
		b, _ := hex.DecodeString(k.Hex)
		cases = append(cases, b)
	}
	accepted := 0
	for _, b := range cases {
		want, got := rule(b), ""
		if err := checkPoint(b); err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("checkPoint(%x) = %q; the rule: %q", b, got, want)
		}
		if want == "" {
			accepted++
		}
	}
	if accepted < 1000 {
		t.Fatalf("only %d of %d encodings are good keys", accepted, len(cases))
	}
}
