package otp

import (
	"bytes"
	"encoding/json"
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
