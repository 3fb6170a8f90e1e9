package vault

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// claimsV0 are recovery claims as the release before versioned records
// stored them (wallet.Recover from a backup, before the coins' deadline):
// the bank's request type, as JSON.
var claimsV0 = filepath.Join("testdata", "recovery-claims-v0.json")

// TestClaimsGolden: the previous release's claims are read; stored again
// they are version 1, pinned by its golden file, which reads back the same;
// in a vault, the old form is read in place.
func TestClaimsGolden(t *testing.T) {
	old, err := os.ReadFile(claimsV0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeClaims(old)
	if err != nil {
		t.Fatalf("version 0: %v", err)
	}
	if c.Account != "acct-7tcQzNbLPuuoX1InBRM3kQ" || len(c.Coins) != 2 || c.Coins[0].Auth == "" || c.Coins[0].Key == "" || c.Coins[0].Proof == "" {
		t.Fatalf("version 0 read as %+v", c)
	}
	v1, err := c.encode()
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "recovery-claims-v1.json")
	if *update {
		if err := os.WriteFile(golden, v1, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v1, want) {
		t.Fatalf("version 1 of the claims differs from %s (run with -update if the change is meant):\n%s", golden, v1)
	}
	if back, err := decodeClaims(want); err != nil || !reflect.DeepEqual(back, c) {
		t.Fatalf("version 1 read back as %+v, %v", back, err)
	}

	ctx := context.Background()
	v, _ := newVault(t)
	if got, err := v.RecoveryClaims(ctx); err != nil || got.Account != "" || len(got.Coins) != 0 {
		t.Fatalf("claims of a new vault: %+v, %v; want none", got, err)
	}
	if err := v.SetSetting(ctx, claimsSetting, old); err != nil {
		t.Fatal(err)
	}
	if got, err := v.RecoveryClaims(ctx); err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("the previous release's claims in a vault: %+v, %v", got, err)
	}
	c.Coins = c.Coins[1:]
	if err := v.SetRecoveryClaims(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got, err := v.RecoveryClaims(ctx); err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("claims stored and read: %+v, %v; want %+v", got, err, c)
	}
}

// TestClaimsDecodeRefuses: claims that cannot be sent to the bank, or
// from a newer release, are refused, naming what is wrong.
func TestClaimsDecodeRefuses(t *testing.T) {
	old, err := os.ReadFile(claimsV0)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(from, to string) []byte {
		if !bytes.Contains(old, []byte(from)) {
			t.Fatalf("no %q to edit", from)
		}
		return bytes.Replace(old, []byte(from), []byte(to), 1)
	}
	c, err := decodeClaims(old)
	if err != nil {
		t.Fatal(err)
	}
	c.Coins[1].Proof = ""
	noProof, err := c.encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, want string
		b          []byte
	}{
		{"unknown field", "unknown field", edit(`"account"`, `"extra":1,"account"`)},
		{"newer version", "written by a newer release", edit(`{"account"`, `{"v":2,"account"`)},
		{"no proof", "no authorisation, key or proof", noProof},
		{"no account", "claims for no account", edit(`"account":"acct-7tcQzNbLPuuoX1InBRM3kQ"`, `"account":""`)},
		{"data after the claims", "data after the record", append(append([]byte{}, old...), " {}"...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := decodeClaims(c.b); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("decode: %v; want an error mentioning %q", err, c.want)
			}
		})
	}
}

// FuzzDecodeClaims: whatever a vault holds, reading it as claims does not
// panic, and claims read are stored and read again unchanged.
func FuzzDecodeClaims(f *testing.F) {
	for _, name := range []string{claimsV0, filepath.Join("testdata", "recovery-claims-v1.json")} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeClaims(b)
		if err != nil {
			return
		}
		enc, err := c.encode()
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeClaims(enc)
		if err != nil {
			t.Fatalf("version 1 of accepted claims refused: %v", err)
		}
		again, err := back.encode()
		if err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("claims changed on a round trip: %v\n%s\n%s", err, enc, again)
		}
	})
}
