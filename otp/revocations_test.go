package otp

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestRevocations(t *testing.T) {
	f := newFixture(t)
	r := &Revocations{Issuer: "test-bank", Issued: t0, Keys: []string{f.exchange.Pub, f.coin.Data.Holder, f.coin.Data.Holder}}
	if err := r.Sign(seedKey("root")); err != nil {
		t.Fatal(err)
	}
	b := golden(t, "revocations.json", r)
	parsed, err := ParseRevocations(b[:len(b)-1])
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.Verify(f.cat); err != nil {
		t.Fatalf("golden revocations do not verify: %v", err)
	}
	if len(parsed.Keys) != 2 {
		t.Errorf("signed list keeps %d keys; want the 2 distinct ones", len(parsed.Keys))
	}
	for i := range b[:len(b)-1] {
		m := append([]byte(nil), b[:len(b)-1]...)
		m[i] ^= 0x01
		if r, err := ParseRevocations(m); err == nil && r.Verify(f.cat) == nil {
			t.Errorf("byte %d flipped: accepted", i)
		}
	}
	forged := *r
	if err := forged.Sign(seedKey("not the root")); err != nil {
		t.Fatal(err)
	}
	if err := forged.Verify(f.cat); !errors.Is(err, ErrSignature) {
		t.Errorf("list signed by another key: %v; want ErrSignature", err)
	}

	tests := []struct {
		name string
		keys []string
		want error
	}{
		{"nothing revoked", nil, nil},
		{"unrelated key", []string{EncodeKey(seedKey("stranger").Public().(ed25519.PublicKey))}, nil},
		{"first holder signed twice", []string{f.coin.Data.Holder}, ErrRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := f.v.WithRevocations(&Revocations{Keys: tt.keys})
			if err := v.VerifySandbox(f.sandbox); !errors.Is(err, tt.want) {
				t.Fatalf("VerifySandbox = %v; want %v", err, tt.want)
			}
		})
	}
	if err := f.v.VerifySandbox(f.sandbox); err != nil {
		t.Fatalf("WithRevocations changed the original verifier: %v", err)
	}
}

func FuzzParseRevocations(f *testing.F) {
	fx := newFixture(f)
	if b, err := os.ReadFile(filepath.Join("testdata", "revocations.json")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRevocations(b)
		if err != nil {
			return
		}
		if r.Verify(fx.cat) == nil && len(r.Keys) != 2 {
			t.Fatalf("a different list verified: %v", r.Keys)
		}
	})
}
