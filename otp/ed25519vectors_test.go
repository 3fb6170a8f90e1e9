package otp

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// edVector is one Ed25519 edge case: a key, message and signature, and
// whether ZIP-215 accepts it.
type edVector struct {
	name          string
	pub, msg, sig []byte
	zip215        bool
}

// edVectors reads the edge cases of testdata (see testdata/README.md for
// their sources): the twelve of "Taming the many EdDSAs" (speccheck) with
// the ZIP-215 answers of its paper's table, and the 768 of ed25519vectors,
// every one of which ZIP-215 accepts (their flags only name what other
// rules refuse).
func edVectors(t *testing.T) []edVector {
	t.Helper()
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var vs []edVector

	var spec []struct {
		Message   string `json:"message"`
		PublicKey string `json:"pub_key"`
		Signature string `json:"signature"`
	}
	readJSON(t, "testdata/ed25519-speccheck-cases.json", &spec)
	// ZIP-215 column of the speccheck table: refused only for a
	// non-canonical S (6, 7) and a non-canonical R reduced before hashing (8).
	specZIP215 := []bool{true, true, true, true, true, true, false, false, false, true, true, true}
	if len(spec) != len(specZIP215) {
		t.Fatalf("%d speccheck cases, want %d", len(spec), len(specZIP215))
	}
	for i, c := range spec {
		vs = append(vs, edVector{fmt.Sprintf("speccheck/%d", i), unhex(c.PublicKey), unhex(c.Message), unhex(c.Signature), specZIP215[i]})
	}

	var ev []struct{ A, R, S, M string }
	readJSON(t, "testdata/ed25519vectors.json", &ev)
	if len(ev) != 768 {
		t.Fatalf("%d ed25519vectors, want 768", len(ev))
	}
	for i, v := range ev {
		vs = append(vs, edVector{fmt.Sprintf("ed25519vectors/%d", i), unhex(v.A), []byte(v.M), append(unhex(v.R), unhex(v.S)...), true})
	}
	return vs
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

var errVector = errors.New("the vector's signature")

// TestEd25519Vectors runs every edge case through the one acceptance rule
// of otpcash: DecodeKey on the key, then the single path and the batch
// path, alone and inside a batch of valid signatures. Both paths must give
// the same answer, and it must be ZIP-215's, except for the keys DecodeKey
// refuses (small order, second encodings).
func TestEd25519Vectors(t *testing.T) {
	var good []sigCheck
	for i := range 63 {
		pub, priv, _ := ed25519.GenerateKey(nil)
		msg := fmt.Appendf(nil, "valid %d", i)
		good = append(good, sigCheck{pub: pub, msg: msg, sig: ed25519.Sign(priv, msg), name: named("valid %d", i)})
	}
	if err := verifyChecks(good); err != nil {
		t.Fatalf("valid batch: %v", err)
	}
	var keyRefused, zipAccepted, accepted, stdRefused int
	for _, v := range edVectors(t) {
		_, keyErr := DecodeKey(b64.EncodeToString(v.pub))
		want := v.zip215 && keyErr == nil
		if v.zip215 {
			zipAccepted++
		}
		if keyErr != nil {
			keyRefused++
			if !errors.Is(keyErr, ErrPublicKey) {
				t.Errorf("%s: DecodeKey: %v, want ErrPublicKey", v.name, keyErr)
			}
		}
		if want {
			accepted++
			if !ed25519.Verify(v.pub, v.msg, v.sig) {
				stdRefused++
			}
		}
		// Below DecodeKey the paths are checked on every vector, with
		// ZIP-215's answer, so they agree even where DecodeKey stops first.
		c := sigCheck{pub: v.pub, msg: v.msg, sig: v.sig, name: func(err error) error { return fmt.Errorf("%w: %w", errVector, err) }}
		single := verifyOne(c.pub, c.msg, c.sig)
		alone, _ := verifyBatch([]sigCheck{c})
		mixed := slices.Insert(slices.Clone(good), len(good)/2, c)
		mixedErr := verifyChecks(mixed)
		if single != v.zip215 || alone != v.zip215 || (mixedErr == nil) != v.zip215 {
			t.Errorf("%s: single %v, batch %v, in a batch %v; ZIP-215 says %v", v.name, single, alone, mixedErr, v.zip215)
		}
		if mixedErr != nil && (!errors.Is(mixedErr, errVector) || !errors.Is(mixedErr, ErrSignature)) {
			t.Errorf("%s: a failed batch names %v, want the vector's signature", v.name, mixedErr)
		}
	}
	t.Logf("%d vectors accepted by ZIP-215, %d keys refused by DecodeKey, %d accepted by otpcash, of which crypto/ed25519 refuses %d",
		zipAccepted, keyRefused, accepted, stdRefused)
	if keyRefused == 0 || accepted == 0 {
		t.Errorf("vectors exercise nothing: %d keys refused, %d accepted", keyRefused, accepted)
	}
}

// TestEd25519Sign runs published signing vectors (testdata/README.md: the
// first three are RFC 8032's TEST 1 to 3) through SignEd25519, the signer
// of every otpcash signature, and the one verifier: Ed25519 is
// deterministic, so any other signature of the key and message is a wrong
// one.
func TestEd25519Sign(t *testing.T) {
	f, err := os.Open("testdata/ed25519-sign.input.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(z)
	n := 0
	for lines.Scan() {
		n++
		var v [4][]byte
		parts := strings.Split(lines.Text(), ":")
		if len(parts) != 5 {
			t.Fatalf("line %d: %d fields, want 5", n, len(parts))
		}
		for i := range v {
			if v[i], err = hex.DecodeString(parts[i]); err != nil {
				t.Fatalf("line %d: %v", n, err)
			}
		}
		priv, pub, msg, sig := ed25519.PrivateKey(v[0]), v[1], v[2], v[3][:ed25519.SignatureSize]
		if got := ed25519.NewKeyFromSeed(priv.Seed()); !got.Equal(priv) {
			t.Fatalf("line %d: the seed does not give the vector's key", n)
		}
		if got := SignEd25519(priv, msg); !bytes.Equal(got, sig) {
			t.Errorf("line %d: signature %x, want %x", n, got, sig)
		}
		if _, err := DecodeKey(b64.EncodeToString(pub)); err != nil {
			t.Errorf("line %d: DecodeKey: %v", n, err)
		}
		if !VerifyEd25519(pub, msg, sig) {
			t.Errorf("line %d: the vector's signature does not verify", n)
		}
		if VerifyEd25519(pub, append(slices.Clone(msg), 0), sig) {
			t.Errorf("line %d: the signature verifies for another message", n)
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 128 {
		t.Fatalf("%d vectors, want 128", n)
	}
}
