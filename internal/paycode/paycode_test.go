package paycode

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/vault"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in testdata/")

// fixture is a deterministic world: an Ed25519 issuer (coin and exchange
// keys from fixed seeds), n exchange keys, n coins sealed to them and
// their receipts.
type fixture struct {
	req Request
	tok Token
	rcp Receipt
}

func key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func newFixture(t testing.TB, n int) fixture {
	t.Helper()
	at := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	signer := func(seed byte, k otp.IssuerKey) *otp.Signer {
		priv := key(seed)
		k.Alg, k.Public = otp.AlgEd25519, otp.EncodeKey(priv.Public().(ed25519.PublicKey))
		k.NotBefore, k.Expires, k.DepositUntil = at, at.AddDate(0, 3, 0), at.AddDate(0, 6, 0)
		s, err := otp.NewSigner("bank.test", k, priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	coins := signer(1, otp.IssuerKey{KeyID: "coin-1", Use: otp.UseCoin, Value: 100, Currency: "EUR"})
	certs := signer(2, otp.IssuerKey{KeyID: "exchange-1", Use: otp.UseExchange})
	f := fixture{req: Request{Amount: int64(100 * n), Currency: "EUR", Program: otp.GeneralProgramName,
		Memo: "coffee", Expires: at.Add(15 * time.Minute)}}
	f.req.ID[0], f.tok.Request[0], f.rcp.Request[0] = 7, 7, 7
	for i := range n {
		payee := key(byte(100 + i))
		k, err := certs.Certify(payee.Public().(ed25519.PublicKey), at.AddDate(0, 3, 0), map[string]string{"name": "Erin's shop"})
		if err != nil {
			t.Fatal(err)
		}
		f.req.Keys = append(f.req.Keys, k)
		holder := key(byte(10 + i))
		var serial otp.Serial
		serial[0] = byte(i)
		c, err := coins.Issue(serial, holder.Public().(ed25519.PublicKey), at.AddDate(0, 3, 0), otp.GeneralProgram())
		if err != nil {
			t.Fatal(err)
		}
		s := otp.Sandbox{Coin: *c, Chain: []otp.Link{}}
		if err := s.Transfer(holder, k); err != nil {
			t.Fatal(err)
		}
		f.tok.Coins = append(f.tok.Coins, s)
		a, err := s.Acknowledge(payee)
		if err != nil {
			t.Fatal(err)
		}
		f.rcp.Acks = append(f.rcp.Acks, a)
	}
	vr := vault.Request{ID: hex.EncodeToString(f.req.ID[:]), Amount: f.req.Amount, Currency: f.req.Currency,
		Program: f.req.Program, Memo: f.req.Memo, Expires: f.req.Expires, Keys: f.req.Keys}
	msg, err := vr.SignedMessage()
	if err != nil {
		t.Fatal(err)
	}
	f.req.Sig = ed25519.Sign(key(100), msg)
	return f
}

// forms encodes the three forms of f.
func (f fixture) forms(t testing.TB) map[Kind]string {
	t.Helper()
	req, err := EncodeRequest(&f.req)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := EncodeToken(&f.tok)
	if err != nil {
		t.Fatal(err)
	}
	rcp, err := EncodeReceipt(&f.rcp)
	if err != nil {
		t.Fatal(err)
	}
	return map[Kind]string{KindRequest: req, KindToken: tok, KindReceipt: rcp}
}

func parse(k Kind, text string) (any, error) {
	switch k {
	case KindRequest:
		return ParseRequest(text)
	case KindToken:
		return ParseToken(text)
	}
	return ParseReceipt(text)
}

// TestGolden pins the three forms: the vectors in testdata/ decode to the
// fixture's objects, and the fixture encodes to them byte for byte.
func TestGolden(t *testing.T) {
	f := newFixture(t, 2)
	want := map[Kind]any{KindRequest: &f.req, KindToken: &f.tok, KindReceipt: &f.rcp}
	for k, text := range f.forms(t) {
		path := filepath.Join("testdata", strings.ToLower(string(k))+".txt")
		if *update {
			if err := os.WriteFile(path, []byte(text+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		golden, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		g := strings.TrimSpace(string(golden))
		if g != text {
			t.Errorf("%s: the encoding changed:\n got %s\nwant %s", k, text, g)
		}
		got, err := parse(k, g)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if !reflect.DeepEqual(got, want[k]) {
			t.Errorf("%s: golden vector decodes to\n%+v\nwant\n%+v", k, got, want[k])
		}
		// The URI and lower case are the same code.
		if _, err := parse(k, strings.ToLower(scheme+g)); err != nil {
			t.Errorf("%s as a lower-case URI: %v", k, err)
		}
		if strings.Trim(g, "OTPCASHEQRKPB0123456789/: ABCDEFGIJLMNUVWXYZ") != "" {
			t.Errorf("%s: characters outside the QR alphanumeric set", k)
		}
	}
}

// TestKindMismatch: a form given for another is refused by its prefix.
func TestKindMismatch(t *testing.T) {
	forms := newFixture(t, 1).forms(t)
	if _, err := ParseToken(forms[KindRequest]); !errors.Is(err, ErrKind) {
		t.Fatalf("a request parsed as a token: %v", err)
	}
	if _, err := ParseRequest(forms[KindReceipt]); !errors.Is(err, ErrKind) {
		t.Fatalf("a receipt parsed as a request: %v", err)
	}
}

// TestFlipEveryCharacter: every character of each form changed is refused
// (the checksum); every byte of its CBOR changed, with the checksum made
// to match, is refused or decodes to something else, never to the same
// record (the encoding is the only one).
func TestFlipEveryCharacter(t *testing.T) {
	f := newFixture(t, 2)
	for k, text := range f.forms(t) {
		p := k.prefix()
		for i := len(p); i < len(text); i++ {
			c := byte('A')
			if text[i] == 'A' {
				c = 'B'
			}
			if _, err := parse(k, text[:i]+string(c)+text[i+1:]); err == nil {
				t.Fatalf("%s: character %d changed: accepted", k, i)
			}
		}
		raw, err := b32.DecodeString(text[len(p):])
		if err != nil {
			t.Fatal(err)
		}
		body := raw[:len(raw)-checksumLen]
		orig, _ := parse(k, text)
		for i := range body {
			b := bytes.Clone(body)
			b[i] ^= 0x01
			got, err := parse(k, p+b32.EncodeToString(append(b, sum(k, b)...)))
			if err == nil && reflect.DeepEqual(got, orig) {
				t.Fatalf("%s: byte %d flipped: decodes to the same record", k, i)
			}
		}
	}
}

// TestStrictCBOR: encodings the deterministic form does not produce are
// refused: a duplicate key, an indefinite length, an unknown field,
// trailing bytes, a non-minimal integer, a signed object re-encoded.
func TestStrictCBOR(t *testing.T) {
	f := newFixture(t, 1)
	good, _ := encMode.Marshal(wireReceipt{Request: f.rcp.Request[:], Acks: []wireAck{wireAck(f.rcp.Acks[0])}})
	key := append([]byte{0x50}, f.rcp.Request[:]...) // bytes(16)
	acks := good[2+len(key):]                        // after the map header, key 1 and its value
	for _, tc := range []struct {
		name string
		cbor []byte
	}{
		{"duplicate key", append(append([]byte{0xa3, 0x01}, key...), append([]byte{0x01}, append(key, 0x02)...)...)},
		{"indefinite map", append(append([]byte{0xbf, 0x01}, key...), append(append([]byte{0x02}, acks[1:]...), 0xff)...)},
		{"unknown field", append(append([]byte{0xa3, 0x01}, key...), append(append([]byte{0x02}, acks[1:]...), 0x03, 0x00)...)},
		{"trailing byte", append(bytes.Clone(good), 0x00)},
		{"non-minimal key", append(append([]byte{0xa2, 0x18, 0x01}, key...), acks...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := KindReceipt.prefix() + b32.EncodeToString(append(tc.cbor, sum(KindReceipt, tc.cbor)...))
			if _, err := ParseReceipt(text); !errors.Is(err, ErrFormat) {
				t.Fatalf("%x: %v, want ErrFormat", tc.cbor, err)
			}
		})
	}
	if _, err := ParseReceipt(KindReceipt.prefix() + b32.EncodeToString(append(good, sum(KindReceipt, good)...))); err != nil {
		t.Fatalf("the well-formed receipt the cases are made from: %v", err)
	}

	// A certificate in JSON that is not its canonical form (a space).
	w := wireRequest{ID: f.req.ID[:], Amount: 100, Currency: "EUR", Program: "general", Memo: "", Expires: 1, Sig: f.req.Sig}
	k, _ := otp.Canonical(&f.req.Keys[0])
	w.Keys = [][]byte{append([]byte{' '}, k...)}
	b, _ := encMode.Marshal(w)
	if _, err := ParseRequest(KindRequest.prefix() + b32.EncodeToString(append(b, sum(KindRequest, b)...))); !errors.Is(err, ErrFormat) {
		t.Fatalf("a certificate not in canonical JSON: %v", err)
	}
}

// TestSizes reports the size of each form with Ed25519 coins (a bank's
// blind RSA coins are larger: wallet.TestPaycodeSizes measures those).
func TestSizes(t *testing.T) {
	for _, n := range []int{1, 5, 10} {
		forms := newFixture(t, n).forms(t)
		t.Logf("%2d: request %d, token %d, receipt %d characters", n, len(forms[KindRequest]), len(forms[KindToken]), len(forms[KindReceipt]))
	}
}

func FuzzParseRequest(f *testing.F) { fuzzParse(f, KindRequest) }
func FuzzParseToken(f *testing.F)   { fuzzParse(f, KindToken) }
func FuzzParseReceipt(f *testing.F) { fuzzParse(f, KindReceipt) }

// fuzzParse: no input panics, and whatever parses encodes back to the
// same text (one record, one text).
func fuzzParse(f *testing.F, k Kind) {
	fx := newFixture(f, 1)
	f.Add(fx.forms(f)[k])
	f.Add(k.prefix())
	f.Add(k.prefix() + "AAAAAAAA")
	f.Fuzz(func(t *testing.T, text string) {
		got, err := parse(k, text)
		if err != nil {
			return
		}
		var again string
		switch v := got.(type) {
		case *Request:
			again, err = EncodeRequest(v)
		case *Token:
			again, err = EncodeToken(v)
		case *Receipt:
			again, err = EncodeReceipt(v)
		}
		if err != nil || again != normalize(text) {
			t.Fatalf("parsed %q, encodes back to %q (%v)", text, again, err)
		}
	})
}
