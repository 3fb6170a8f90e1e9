package otp

import (
	"crypto/ed25519"
	"fmt"
	"testing"
)

// BenchmarkEd25519 is the cost of one signature, made with crypto/ed25519
// (before issue 16) and with SignEd25519, and of one signature check:
// crypto/ed25519 as before issue 16, the one rule's single path, and the
// batch path at the sizes of a payment (ns/op is per signature).
func BenchmarkEd25519(b *testing.B) {
	checks := make([]sigCheck, 500)
	privs := make([]ed25519.PrivateKey, len(checks))
	for i := range checks {
		pub, priv, _ := ed25519.GenerateKey(nil)
		msg := signed(labelTransfer, fmt.Appendf(nil, "link %d", i))
		checks[i] = sigCheck{pub: pub, msg: msg, sig: ed25519.Sign(priv, msg), name: named("link %d", i)}
		privs[i] = priv
	}
	for _, s := range []struct {
		name string
		sign func(ed25519.PrivateKey, []byte) []byte
	}{{"sign/crypto-ed25519", ed25519.Sign}, {"sign/voi", SignEd25519}} {
		b.Run(s.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				s.sign(privs[i%len(privs)], checks[i%len(checks)].msg)
			}
		})
	}
	b.Run("single/crypto-ed25519", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			c := &checks[i%len(checks)]
			if !ed25519.Verify(c.pub, c.msg, c.sig) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("single/voi-zip215", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			c := &checks[i%len(checks)]
			if !verifyOne(c.pub, c.msg, c.sig) {
				b.Fatal("refused")
			}
		}
	})
	for _, n := range []int{2, 4, 64, 128, 500} {
		b.Run(fmt.Sprintf("batch/%d", n), func(b *testing.B) {
			for b.Loop() {
				if ok, _ := verifyBatch(checks[:n]); !ok {
					b.Fatal("refused")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sig")
		})
	}
}
