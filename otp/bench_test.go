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
