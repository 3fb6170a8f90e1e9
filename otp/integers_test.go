package otp

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gowebpki/jcs"

	"github.com/otpcash/otpcash/internal/strictjson"
)

// testdata/coin-value-2p53.json and coin-value-2p53+1.json are one coin
// with values 2^53 and 2^53+1 and the checksum the RFC 8785 form gave
// them both before integers were bounded: JCS reads numbers as IEEE
// doubles, and 2^53+1 is the double 2^53. Both must be refused, wherever
// a coin is parsed or its checksum computed.
func TestUnsafeIntegerCoins(t *testing.T) {
	var coins [2]Coin
	var sums [2][]byte
	for i, name := range []string{"coin-value-2p53.json", "coin-value-2p53+1.json"} {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		raw = bytes.TrimSpace(raw)
		if _, err := parseCoin(raw); !errors.Is(err, strictjson.ErrUnsafeInteger) {
			t.Errorf("parseCoin(%s) = %v; want %v", name, err, strictjson.ErrUnsafeInteger)
		}
		// A lax decoder (encoding/json reads int64 exactly) lets the coin
		// through; its checksum must still not be computed.
		if err := json.Unmarshal(raw, &coins[i]); err != nil {
			t.Fatal(err)
		}
		c := &coins[i]
		if _, err := c.ComputeChecksum(); !errors.Is(err, strictjson.ErrUnsafeInteger) {
			t.Errorf("%s: ComputeChecksum = %v; want %v", name, err, strictjson.ErrUnsafeInteger)
		}
		if err := newFixture(t).v.VerifyCoin(c); !errors.Is(err, strictjson.ErrUnsafeInteger) {
			t.Errorf("%s: VerifyCoin = %v; want %v", name, err, strictjson.ErrUnsafeInteger)
		}
		// The vector's premise: RFC 8785 as such gives both one form.
		m, _ := json.Marshal(checksummed{c.SchemaVersion, c.Data, c.CallMethod})
		canon, err := jcs.Transform(m)
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(canon)
		sums[i] = s[:]
		if b64.EncodeToString(sums[i]) != c.Checksum {
			t.Errorf("%s: checksum field is not the SHA-256 of the RFC 8785 form", name)
		}
	}
	if coins[0].Data.Value != 1<<53 || coins[1].Data.Value != 1<<53+1 || !bytes.Equal(sums[0], sums[1]) {
		t.Fatalf("vectors: values %d and %d, checksums equal %v; want 2^53, 2^53+1, true",
			coins[0].Data.Value, coins[1].Data.Value, bytes.Equal(sums[0], sums[1]))
	}
}

// Nothing is signed over an ambiguous number, whatever carries it: the
// encoder refuses, and so does the parser of every signed document.
func TestCanonicalRefusesUnsafeIntegers(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		v    any
	}{
		{"coin value", checksummed{1, Data{Value: -(1 << 53)}, nil}},
		{"catalogue key value", unsignedCatalogue{Keys: []IssuerKey{{Value: 1<<53 + 1}}}},
		{"ack link", Ack{Link: 1 << 60}},
		{"step argument", Step{Method: "pay", Args: map[string]any{"n": float64(1 << 53)}}},
	} {
		if _, err := Canonical(tc.v); !errors.Is(err, strictjson.ErrUnsafeInteger) {
			t.Errorf("%s: Canonical = %v; want %v", tc.name, err, strictjson.ErrUnsafeInteger)
		}
	}
	// At the edge, and for what is not an integer, it writes as before.
	for _, v := range []any{checksummed{1, Data{Value: 1<<53 - 1}, nil}, Step{Method: "pay", Args: map[string]any{"x": 1.5, "y": 1e300}}} {
		if _, err := Canonical(v); err != nil {
			t.Errorf("Canonical(%+v) = %v", v, err)
		}
	}

	cat := *f.cat
	cat.Keys = append([]IssuerKey{}, cat.Keys...)
	cat.Keys[0].Value = 1 << 53
	if err := cat.Sign(seedKey("root")); !errors.Is(err, strictjson.ErrUnsafeInteger) {
		t.Errorf("Catalogue.Sign with a key of value 2^53 = %v; want %v", err, strictjson.ErrUnsafeInteger)
	}

	// A step argument read as a double: 2^53+1 arrives as 2^53, which the
	// RFC 8785 form of the input shares with 2^53 itself.
	golden, err := os.ReadFile(filepath.Join("testdata", "coin.json"))
	if err != nil {
		t.Fatal(err)
	}
	withArg := strings.Replace(string(golden), `"sendOTP"`, `{"method":"sendOTP","args":{"n":9007199254740993}}`, 1)
	if _, err := parseCoin([]byte(withArg)); !errors.Is(err, strictjson.ErrUnsafeInteger) {
		t.Errorf("parseCoin with a step argument of 2^53+1 = %v; want %v", err, strictjson.ErrUnsafeInteger)
	}
	for _, doc := range []struct {
		name  string
		parse func([]byte) error
		in    string
	}{
		{"sandbox", func(b []byte) error { _, err := ParseSandbox(b); return err },
			`{"chain":[],"coin":` + strings.Replace(string(bytes.TrimSpace(golden)), `"schemaVersion":1`, `"schemaVersion":9007199254740993`, 1) + `}`},
		{"catalogue", func(b []byte) error { _, err := ParseCatalogue(b); return err },
			`{"issued":"2026-01-01T00:00:00Z","issuer":"b","keys":[],"root":"","schemaVersion":9007199254740992,"signature":{"alg":"","value":""}}`},
	} {
		if err := doc.parse([]byte(doc.in)); !errors.Is(err, strictjson.ErrUnsafeInteger) {
			t.Errorf("%s: parse = %v; want %v", doc.name, err, strictjson.ErrUnsafeInteger)
		}
	}
}

// Step.UnmarshalJSON is called by whatever decoder reads a coin, the lax
// encoding/json included: it must be strict on its own.
func TestStepUnmarshalStrict(t *testing.T) {
	for _, in := range []string{
		`{"method":"a","args":{"n":1},"method":"b"}`, // repeated name
		`{"Method":"a","args":{"n":1}}`,              // mis-cased name
		`{"method":"a","args":{"n":1,"n":2}}`,        // repeated argument
		`{"method":"a","args":{"n":1},"extra":0}`,    // unknown name
		"\"a\xffb\"", // not UTF-8
	} {
		var s Step
		if err := json.Unmarshal([]byte(`[`+in+`]`), &[]Step{s}); err == nil {
			t.Errorf("encoding/json accepted step %s", in)
		}
		if err := s.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("Step.UnmarshalJSON(%s) = %+v, nil; want an error", in, s)
		}
	}
}
