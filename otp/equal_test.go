package otp

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// Extends must agree with the JSON comparison it stands for, and so must
// sameCoin and sameLinks whenever they say they are sure.
func TestExtendsAgreesWithJSON(t *testing.T) {
	sealed := *newFixture(t).sandbox
	variants := map[string]func(s *Sandbox){
		"same":               func(s *Sandbox) {},
		"token":              func(s *Sandbox) { s.Coin.Data.Token += "x" },
		"value":              func(s *Sandbox) { s.Coin.Data.Value++ },
		"signature":          func(s *Sandbox) { s.Coin.Signature.Value += "x" },
		"checksum":           func(s *Sandbox) { s.Coin.Checksum += "x" },
		"null conditions":    func(s *Sandbox) { s.Coin.Data.Conditions = nil },
		"empty conditions":   func(s *Sandbox) { s.Coin.Data.Conditions = []string{} },
		"a condition":        func(s *Sandbox) { s.Coin.Data.Conditions = []string{"true"} },
		"step":               func(s *Sandbox) { s.Coin.CallMethod[0].Method += "x" },
		"step args":          func(s *Sandbox) { s.Coin.CallMethod[0].Args = map[string]any{"a": 1.0} },
		"expiry instant":     func(s *Sandbox) { s.Coin.Data.Expires = s.Coin.Data.Expires.Add(time.Nanosecond) },
		"expiry location":    func(s *Sandbox) { s.Coin.Data.Expires = s.Coin.Data.Expires.In(time.FixedZone("X", 3600)) },
		"expiry same offset": func(s *Sandbox) { s.Coin.Data.Expires = s.Coin.Data.Expires.In(time.FixedZone("", 0)) },
		"link sig":           func(s *Sandbox) { s.Chain[0].Sig += "x" },
		"link attrs":         func(s *Sandbox) { s.Chain[0].To.Attrs = map[string]string{"a": "b"} },
		"link empty attrs":   func(s *Sandbox) { s.Chain[0].To.Attrs = map[string]string{} },
		"link cert":          func(s *Sandbox) { s.Chain[0].To.Sig += "x" },
		"link key":           func(s *Sandbox) { s.Chain[0].To.Pub += "x" },
		"link expiry zone":   func(s *Sandbox) { s.Chain[0].To.Expires = s.Chain[0].To.Expires.In(time.FixedZone("", 0)) },
	}
	for name, mutate := range variants {
		t.Run(name, func(t *testing.T) {
			b := *cloneSandbox(t, &sealed)
			mutate(&b)
			a, err := json.Marshal(sealed)
			if err != nil {
				t.Fatal(err)
			}
			bj, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			want := bytes.Equal(a, bj)
			got, err := sealed.Extends(&b)
			if err != nil || got != want {
				t.Fatalf("extends = %v, %v; JSON says %v", got, err, want)
			}
			if c, sure := sameCoin(&sealed.Coin, &b.Coin); sure {
				l, lsure := sameLinks(sealed.Chain, b.Chain)
				if c && lsure && l != want {
					t.Fatalf("sameCoin/sameLinks sure and wrong: %v %v, JSON says %v", c, l, want)
				}
				if !c && want {
					t.Fatalf("sameCoin sure the coins differ; JSON says equal")
				}
			}
		})
	}
}
