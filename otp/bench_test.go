package otp

import (
	"crypto/ed25519"
	"testing"
)

func BenchmarkVerifySandbox(b *testing.B) {
	f := newFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := f.v.VerifySandbox(f.sandbox); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIssue(b *testing.B) {
	f := newFixture(b)
	holder := f.holder.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.coinKey.Issue(NewSerial(), holder, t0.AddDate(1, 0, 0), GeneralProgram()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTransfer(b *testing.B) {
	f := newFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		s := Sandbox{Coin: *f.coin}
		if err := s.Transfer(f.holder, f.exchange); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyExchangeKey is the payer's check of one exchange key, per
// certificate: Ed25519 (a merchant's, in the clear) and blind RSA (an
// anonymous key).
func BenchmarkVerifyExchangeKey(b *testing.B) {
	f := newFixture(b)
	for name, k := range map[string]*ExchangeKey{"ed25519": &f.exchange, "blind-rsa": &f.anon} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := f.v.VerifyExchangeKey(k, f.now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
