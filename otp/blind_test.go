package otp

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testRSAKey loads a fixed RSA key from testdata (RSA key generation is
// not reproducible), so the golden vectors are.
func testRSAKey(t testing.TB, file string) *rsa.PrivateKey {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	der, err := b64.DecodeString(strings.TrimSpace(string(text)))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	return priv.(*rsa.PrivateKey)
}

// testBlindSigner makes the blind signer of the fixed RSA key of file.
func testBlindSigner(t testing.TB, file string, k IssuerKey) *Signer {
	t.Helper()
	priv := testRSAKey(t, file)
	k.Alg = AlgBlindRSA
	if k.Use == UseCoin {
		p := GeneralProgram()
		k.Program, k.CallMethod = p.Name, p.Steps
	}
	var err error
	if k.Public, err = encodeRSAKey(&priv.PublicKey); err != nil {
		t.Fatal(err)
	}
	k.KeyID = string(k.Use) + "-" + strings.TrimSuffix(file, ".pk8.txt")
	s, err := NewBlindSigner("test-bank", k, priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// blindWithdraw runs both halves of a blind withdrawal of one coin.
func blindWithdraw(t testing.TB, s *Signer, holder ed25519.PublicKey, rnd io.Reader) *Coin {
	t.Helper()
	b, err := NewBlindCoin(s.Issuer, &s.Key, holder, rnd)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.BlindSign(b.Blinded())
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.Finish(sig)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBlindWithdrawal(t *testing.T) {
	f := newFixture(t)
	holder := f.holder.Public().(ed25519.PublicKey)
	secret := []byte("wallet secret")
	blinded := func(id string, i int) []byte {
		b, err := NewBlindCoin("test-bank", &f.blindKey.Key, holder, WithdrawalRand(secret, id, i))
		if err != nil {
			t.Fatal(err)
		}
		return b.Blinded()
	}
	t.Run("verifies", func(t *testing.T) {
		c := blindWithdraw(t, f.blindKey, holder, rand.Reader)
		if err := f.v.VerifyCoin(c); err != nil {
			t.Fatal(err)
		}
		if err := CheckPayable(c, f.now); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("deterministic per withdrawal and index", func(t *testing.T) {
		if !bytes.Equal(blinded("w-1", 0), blinded("w-1", 0)) {
			t.Error("same withdrawal id and index: different blinded messages")
		}
		if bytes.Equal(blinded("w-1", 0), blinded("w-1", 1)) || bytes.Equal(blinded("w-1", 0), blinded("w-2", 0)) {
			t.Error("different withdrawal id or index: same blinded message")
		}
	})
	t.Run("bank sees neither serial nor holder nor checksum", func(t *testing.T) {
		b, err := NewBlindCoin("test-bank", &f.blindKey.Key, holder, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := f.blindKey.BlindSign(b.Blinded())
		if err != nil {
			t.Fatal(err)
		}
		c, err := b.Finish(sig)
		if err != nil {
			t.Fatal(err)
		}
		serial, _ := c.Serial()
		sum, _ := c.checksumBytes()
		raw, _ := b64.DecodeString(c.Signature.Value)
		for name, secret := range map[string][]byte{"serial": serial[:], "holder": holder, "checksum": sum, "signature": raw[blindPrefixSize:], "prefix": raw[:blindPrefixSize]} {
			if bytes.Contains(b.Blinded(), secret) || bytes.Contains(sig, secret) {
				t.Errorf("the bank's view contains the coin's %s", name)
			}
		}
	})
}

func TestBlindRefuses(t *testing.T) {
	f := newFixture(t)
	holder := f.holder.Public().(ed25519.PublicKey)
	good, err := NewBlindCoin("test-bank", &f.blindKey.Key, holder, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := f.blindKey.BlindSign(good.Blinded())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"empty blinded message", func() error { _, err := f.blindKey.BlindSign(nil); return err }, ErrBlind},
		{"short blinded message", func() error { _, err := f.blindKey.BlindSign(good.Blinded()[1:]); return err }, ErrBlind},
		{"long blinded message", func() error { _, err := f.blindKey.BlindSign(append(good.Blinded(), 0)); return err }, ErrBlind},
		{"blinded message above the modulus", func() error {
			_, err := f.blindKey.BlindSign(bytes.Repeat([]byte{0xff}, BlindMessageSize))
			return err
		}, ErrBlind},
		{"Ed25519 key asked to sign blindly", func() error { _, err := f.coinKey.BlindSign(good.Blinded()); return err }, ErrBlind},
		{"blind key asked to issue in the clear", func() error {
			_, err := f.blindKey.Issue(NewSerial(), holder, f.blindKey.Key.PayableUntil, GeneralProgram())
			return err
		}, nil},
		{"Ed25519 key to blind for", func() error {
			_, err := NewBlindCoin("test-bank", &f.coinKey.Key, holder, rand.Reader)
			return err
		}, ErrAlgorithm},
		{"short blind signature", func() error { _, err := good.Finish(sig[1:]); return err }, ErrSignature},
		{"wrong blind signature", func() error {
			bad := bytes.Clone(sig)
			bad[10] ^= 1
			_, err := good.Finish(bad)
			return err
		}, ErrSignature},
		{"blind signature of another coin", func() error {
			other, err := NewBlindCoin("test-bank", &f.blindKey.Key, holder, rand.Reader)
			if err != nil {
				return err
			}
			_, err = other.Finish(sig)
			return err
		}, ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestVerifyRefusesBlindCoin: a blind coin whose public fields disagree
// with its key is refused even with a fresh checksum, as the bank cannot
// see them when it signs.
func TestVerifyRefusesBlindCoin(t *testing.T) {
	f := newFixture(t)
	rogue := testBlindSigner(t, "rogue-blind-key.pk8.txt", f.blindKey.Key)
	rogue.Key.KeyID = f.blindKey.Key.KeyID
	forged := blindWithdraw(t, rogue, f.holder.Public().(ed25519.PublicKey), rand.Reader)
	tests := []struct {
		name   string
		mutate func(c *Coin)
		want   error
	}{
		{"value", func(c *Coin) { c.Data.Value = 10000 }, ErrKeyMismatch},
		{"currency", func(c *Coin) { c.Data.Currency = "USD" }, ErrKeyMismatch},
		{"later expiry", func(c *Coin) { c.Data.Expires = c.Data.Expires.Add(time.Second) }, ErrKeyMismatch},
		{"earlier expiry", func(c *Coin) { c.Data.Expires = c.Data.Expires.Add(-time.Hour) }, ErrKeyMismatch},
		{"program name", func(c *Coin) { c.Data.Program = "voucher" }, ErrKeyMismatch},
		{"condition added", func(c *Coin) {
			c.Data.Conditions = voucher().Conditions
			c.CallMethod = voucher().Steps
		}, ErrKeyMismatch},
		{"step list", func(c *Coin) { c.CallMethod = voucher().Steps }, ErrKeyMismatch},
		{"serial", func(c *Coin) { c.Data.Token = NewSerial().String() }, ErrSignature},
		{"holder", func(c *Coin) { c.Data.Holder = EncodeKey(f.payee.Public().(ed25519.PublicKey)) }, ErrSignature},
		{"message randomizer", func(c *Coin) {
			raw, _ := b64.DecodeString(c.Signature.Value)
			raw[0] ^= 1
			c.Signature.Value = b64.EncodeToString(raw)
		}, ErrSignature},
		{"signature truncated", func(c *Coin) { c.Signature.Value = c.Signature.Value[:len(c.Signature.Value)-4] }, ErrSignature},
		{"Ed25519 alg on a blind key", func(c *Coin) { c.Signature.Alg = AlgEd25519 }, ErrAlgorithm},
		{"unknown alg", func(c *Coin) { c.Signature.Alg = "RSABSSA-SHA384-PSSZERO-Deterministic" }, ErrAlgorithm},
		{"signed by another key under the same id", func(c *Coin) { *c = *forged }, ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *f.blind
			c.Data.Conditions = append([]string{}, c.Data.Conditions...)
			tt.mutate(&c)
			rehashCoin(&c)
			if err := f.v.VerifyCoin(&c); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestCatalogueRefusesBadBlindKeys(t *testing.T) {
	f := newFixture(t)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakPub, err := encodeRSAKey(&weak.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(k *IssuerKey)
		want   error
	}{
		{"exchange key with a coin type", func(k *IssuerKey) { k.Use = UseExchange }, ErrKeyMismatch},
		{"key of an unknown use", func(k *IssuerKey) { k.Use = "vote" }, ErrAlgorithm},
		{"1024-bit key", func(k *IssuerKey) { k.Public = weakPub }, nil},
		{"not a key", func(k *IssuerKey) { k.Public = k.Public[:100] }, nil},
		{"no program", func(k *IssuerKey) { k.Program = "" }, nil},
		{"unknown step", func(k *IssuerKey) { k.CallMethod = append(k.CallMethod, Step{Method: "mine"}) }, ErrUnknownStep},
		{"conditions without their step", func(k *IssuerKey) { k.Conditions = voucher().Conditions }, nil},
		{"no payable-until", func(k *IssuerKey) { k.PayableUntil = time.Time{} }, nil},
		{"payable after the deposit deadline", func(k *IssuerKey) { k.PayableUntil = k.DepositUntil.Add(time.Second) }, nil},
		{"unknown alg", func(k *IssuerKey) { k.Alg = "RSABSSA-SHA384-PSS-Deterministic" }, ErrAlgorithm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cat := *f.cat
			cat.Keys = append([]IssuerKey{}, f.cat.Keys...)
			tt.mutate(&cat.Keys[2])
			if err := cat.Sign(seedKey("root")); err != nil {
				t.Fatal(err)
			}
			err := cat.Verify(cat.Root)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("program fields on an Ed25519 key", func(t *testing.T) {
		cat := *f.cat
		cat.Keys = append([]IssuerKey{}, f.cat.Keys...)
		cat.Keys[0].Program = "general"
		if err := cat.Sign(seedKey("root")); err != nil {
			t.Fatal(err)
		}
		if err := cat.Verify(cat.Root); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("got %v, want %v", err, ErrKeyMismatch)
		}
	})
}

func FuzzDecodeRSAKey(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.blindKey.Key.Public)
	f.Add(fx.blindKey.Key.Public + "A")
	f.Fuzz(func(t *testing.T, s string) {
		pub, err := decodeRSAKey(s)
		if err != nil {
			return
		}
		again, err := encodeRSAKey(pub)
		if err != nil || again != s {
			t.Fatalf("accepted a second spelling of a key: %q", s)
		}
	})
}

// BenchmarkVerifyCoin is the offline verification of one coin, per
// signature algorithm.
func BenchmarkVerifyCoin(b *testing.B) {
	f := newFixture(b)
	for _, c := range []*Coin{f.coin, f.blind} {
		b.Run(c.Signature.Alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := f.v.VerifyCoin(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBlindSign is the bank's cost per blind-issued coin.
func BenchmarkBlindSign(b *testing.B) {
	f := newFixture(b)
	bc, err := NewBlindCoin("test-bank", &f.blindKey.Key, f.holder.Public().(ed25519.PublicKey), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.blindKey.BlindSign(bc.Blinded()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBlindCoinWallet is the wallet's cost per coin: build, blind
// and unblind.
func BenchmarkBlindCoinWallet(b *testing.B) {
	f := newFixture(b)
	holder := f.holder.Public().(ed25519.PublicKey)
	build := func() *BlindCoin {
		bc, err := NewBlindCoin("test-bank", &f.blindKey.Key, holder, WithdrawalRand([]byte("secret"), "w", 0))
		if err != nil {
			b.Fatal(err)
		}
		return bc
	}
	// The same coin every round, so one blind signature fits them all.
	sig, err := f.blindKey.BlindSign(build().Blinded())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := build().Finish(sig); err != nil {
			b.Fatal(err)
		}
	}
}

func TestProgramEqual(t *testing.T) {
	withArgs := func(v any) Program {
		p := GeneralProgram()
		p.Steps = append([]Step{}, p.Steps...)
		p.Steps[0].Args = map[string]any{"n": v}
		return p
	}
	noConditions := GeneralProgram()
	noConditions.Conditions = []string{}
	renamed := GeneralProgram()
	renamed.Name = "other"
	tests := []struct {
		name string
		a, b Program
		want bool
	}{
		{"same", GeneralProgram(), GeneralProgram(), true},
		{"nil and empty conditions", GeneralProgram(), noConditions, true},
		{"name", GeneralProgram(), renamed, false},
		{"steps", GeneralProgram(), voucher(), false},
		{"conditions", voucher(), func() Program { p := voucher(); p.Conditions = p.Conditions[:1]; return p }(), false},
		{"same args", withArgs(1.0), withArgs(1.0), true},
		{"other args", withArgs(1.0), withArgs(2.0), false},
		{"args on one side", withArgs(1.0), GeneralProgram(), false},
		{"args that do not encode", withArgs(func() {}), withArgs(func() {}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Equal(tt.b); got != tt.want {
				t.Fatalf("Equal = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestBlindExchangeKeyFields: a blind-certified exchange key carries
// exactly what its certification key fixes (no attributes, its expiry),
// since the bank could not see what it signed.
func TestBlindExchangeKeyFields(t *testing.T) {
	f := newFixture(t)
	if err := f.v.VerifyExchangeKey(&f.anon, f.now); err != nil {
		t.Fatalf("blind-certified key: %v", err)
	}
	for name, mutate := range map[string]func(k *ExchangeKey){
		"attributes":     func(k *ExchangeKey) { k.Attrs = map[string]string{"category": "grocery"} },
		"another expiry": func(k *ExchangeKey) { k.Expires = k.Expires.Add(-time.Hour) },
	} {
		k := f.anon
		mutate(&k)
		if err := f.v.VerifyExchangeKey(&k, f.now); !errors.Is(err, ErrKeyMismatch) {
			t.Errorf("%s: %v, want %v", name, err, ErrKeyMismatch)
		}
	}
	if err := f.v.VerifyExchangeKey(&f.anon, f.anon.Expires); !errors.Is(err, ErrExpired) {
		t.Errorf("at its expiry: %v, want %v", err, ErrExpired)
	}
}
