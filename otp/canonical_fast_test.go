package otp

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// The direct encodings (ExchangeKey.canonical, Step's JSON methods) must
// give exactly what Canonical and encoding/json give.
func TestExchangeKeyCanonical(t *testing.T) {
	base := ExchangeKey{Pub: "pubkeypubkeypubkeypubkeypubkeypubkeypubke_-", Issuer: "test-bank", KeyID: "exchange-2026",
		Expires: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Sig: "c2lnbmF0dXJl"}
	variants := []func(k *ExchangeKey){
		func(k *ExchangeKey) {},
		func(k *ExchangeKey) {
			k.Attrs = map[string]string{"category": "grocery", "b": "x", "B": "y", "a_": "z"}
		},
		func(k *ExchangeKey) { k.Attrs = map[string]string{} },
		func(k *ExchangeKey) { k.Expires = k.Expires.Add(123456789 * time.Nanosecond) },
		func(k *ExchangeKey) { k.Expires = k.Expires.In(time.FixedZone("X", -5*3600-1800)) },
		func(k *ExchangeKey) { k.Issuer = "bank <&> \"quoted\" \\ é \u2028" },
		func(k *ExchangeKey) { k.Attrs = map[string]string{"é": "ü", "z": "\x01"} },
		func(k *ExchangeKey) { k.KeyID = ""; k.Sig = "" },
	}
	for i, mutate := range variants {
		k := base
		mutate(&k)
		for _, withSig := range []bool{false, true} {
			var want []byte
			var err error
			if withSig {
				want, err = Canonical(&k)
			} else {
				want, err = Canonical(unsignedExchangeKey{k.Pub, k.Issuer, k.KeyID, k.Expires, k.Attrs})
			}
			if err != nil {
				t.Fatal(err)
			}
			got, ok := k.canonical(withSig)
			if ok && !bytes.Equal(got, want) {
				t.Errorf("variant %d sig %v:\n got %s\nwant %s", i, withSig, got, want)
			}
			if i < 5 && !ok {
				t.Errorf("variant %d: no fast path for plain fields", i)
			}
			if p, err := k.payload(); !withSig && (err != nil || !bytes.Equal(p, want)) {
				t.Errorf("variant %d payload = %s, %v", i, p, err)
			}
		}
	}
}

func TestStepJSONFastPath(t *testing.T) {
	for _, m := range []string{"sendOTP", "", "a<b", "é", "q\"uote", "back\\slash", "\x7f"} {
		s := Step{Method: m}
		got, err := s.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := jsonMarshal(m)
		if !bytes.Equal(got, want) {
			t.Errorf("MarshalJSON(%q) = %s; want %s", m, got, want)
		}
		var back Step
		if err := back.UnmarshalJSON(want); err != nil || back.Method != m {
			t.Errorf("UnmarshalJSON(%s) = %q, %v", want, back.Method, err)
		}
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func TestChecksummedCanonical(t *testing.T) {
	base := Coin{SchemaVersion: SchemaVersion, CallMethod: DefaultProgram(), Data: Data{
		Token: "dG9rZW4", Value: 100, Currency: "EUR", Issuer: "test-bank", KeyID: "coin-1",
		Holder: "aG9sZGVy", Expires: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), Program: "general", Conditions: []string{},
	}}
	variants := []struct {
		name   string
		mutate func(c *Coin)
		fast   bool // whether the direct encoder handles it
	}{
		{"plain", func(c *Coin) {}, true},
		{"conditions", func(c *Coin) { c.Data.Conditions = []string{"coin.hops == 1", "coin.currency == 'EUR'"} }, true},
		{"nil conditions and steps", func(c *Coin) { c.Data.Conditions, c.CallMethod = nil, nil }, true},
		{"no steps", func(c *Coin) { c.CallMethod = []Step{} }, true},
		{"negative and zero values", func(c *Coin) { c.Data.Value, c.SchemaVersion = -7, 0 }, true},
		{"largest safe value", func(c *Coin) { c.Data.Value = 1<<53 - 1 }, true},
		{"smallest safe value", func(c *Coin) { c.Data.Value = -(1<<53 - 1) }, true},
		{"nanoseconds and a zone", func(c *Coin) {
			c.Data.Expires = c.Data.Expires.Add(123456789).In(time.FixedZone("X", -5*3600-1800))
		}, true},
		{"quoted condition", func(c *Coin) { c.Data.Conditions = []string{`payee.category in ["grocery"]`} }, false},
		{"html in a condition", func(c *Coin) { c.Data.Conditions = []string{"payment.amount < 5 && coin.hops > 1"} }, false},
		{"non-ASCII issuer", func(c *Coin) { c.Data.Issuer = "bänk \u2028" }, false},
		{"step with arguments", func(c *Coin) {
			c.CallMethod = append(slices.Clone(c.CallMethod), Step{Method: "x", Args: map[string]any{"n": 1.5}})
		}, false},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			c := base
			c.CallMethod = slices.Clone(base.CallMethod)
			v.mutate(&c)
			want, err := Canonical(checksummed{c.SchemaVersion, c.Data, c.CallMethod})
			if err != nil {
				t.Fatal(err)
			}
			got, ok := c.checksummedCanonical()
			if ok != v.fast {
				t.Fatalf("direct encoder handled it: %v, want %v", ok, v.fast)
			}
			if ok && !bytes.Equal(got, want) {
				t.Fatalf("direct encoding differs:\ngot  %s\nwant %s", got, want)
			}
			sum, err := c.ComputeChecksum()
			if err != nil || !bytes.Equal(sum[:], sha256Of(want)) {
				t.Fatalf("checksum differs from SHA-256 of the JCS form (%v)", err)
			}
		})
	}
}

func sha256Of(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func BenchmarkComputeChecksum(b *testing.B) {
	f := newFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.coin.ComputeChecksum(); err != nil {
			b.Fatal(err)
		}
	}
}
