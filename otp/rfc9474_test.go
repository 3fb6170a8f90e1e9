package otp

import (
	"bytes"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
)

// rfc9474Vector is one test vector of RFC 9474, Appendix A, in the JSON
// form circl keeps (testdata/rfc9474-vectors.json; see README.md).
type rfc9474Vector struct {
	Name       string `json:"name"`
	P          string `json:"p"`
	Q          string `json:"q"`
	N          string `json:"n"`
	E          string `json:"e"`
	D          string `json:"d"`
	Msg        string `json:"msg"`
	MsgPrefix  string `json:"msg_prefix"`
	InputMsg   string `json:"input_msg"`
	SLen       string `json:"sLen"`
	Salt       string `json:"salt"`
	Randomized string `json:"is_randomized"`
	Inv        string `json:"inv"`
	BlindedMsg string `json:"blinded_msg"`
	BlindSig   string `json:"blind_sig"`
	Sig        string `json:"sig"`
}

func hexInt(t *testing.T, s string) *big.Int {
	t.Helper()
	n, ok := new(big.Int).SetString(s, 0)
	if !ok {
		t.Fatalf("not a number: %.20s", s)
	}
	return n
}

func hexBytes(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRFC9474Vectors runs the RFC 9474 Appendix A vector of the variant
// the project uses, RSABSSA-SHA384-PSS-Randomized, through the project's
// own code: the bank's BlindSign must give the RFC's blind signature, and
// verifyBlind (the standard library's PSS over msg_prefix || msg, which
// every coin and blind exchange key goes through) must accept the RFC's
// signature and refuse it altered. The RFC's key has 4096 bits; the
// project's have 2048, which decodeRSAKey enforces before verifyBlind is
// reached. The other three vectors are of variants the project does not
// accept (PSSZERO: no salt; Deterministic: no msg_prefix).
func TestRFC9474Vectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "rfc9474-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vectors []rfc9474Vector
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) != 1 || vectors[0].Name != AlgBlindRSA {
		t.Fatalf("want the one vector of %s", AlgBlindRSA)
	}
	v := vectors[0]
	if hexInt(t, v.SLen).Int64() != int64(blindPSS.SaltLength) || hexInt(t, v.Randomized).Int64() != 1 {
		t.Fatalf("vector's salt length %s, randomized %s; the project's %d, yes", v.SLen, v.Randomized, blindPSS.SaltLength)
	}
	priv := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: hexInt(t, v.N), E: int(hexInt(t, v.E).Int64())},
		D:         hexInt(t, v.D),
		Primes:    []*big.Int{hexInt(t, v.P), hexInt(t, v.Q)},
	}
	if err := priv.Validate(); err != nil {
		t.Fatal(err)
	}
	priv.Precompute()
	msg, prefix := hexBytes(t, v.Msg), hexBytes(t, v.MsgPrefix)
	if len(prefix) != blindPrefixSize || !bytes.Equal(hexBytes(t, v.InputMsg), append(append([]byte{}, prefix...), msg...)) {
		t.Fatal("vector's input_msg is not a 32-byte msg_prefix followed by msg")
	}

	// The bank's half.
	signer := &Signer{Issuer: "rfc9474", Key: IssuerKey{KeyID: "rfc9474", Alg: AlgBlindRSA}, blind: priv}
	blindSig, err := signer.BlindSign(hexBytes(t, v.BlindedMsg))
	if err != nil {
		t.Fatal(err)
	}
	if want := hexBytes(t, v.BlindSig); !bytes.Equal(blindSig, want) {
		t.Fatalf("BlindSign:\n got %x\nwant %x", blindSig, want)
	}

	// The verifier's: the signature field is msg_prefix || sig.
	sig := hexBytes(t, v.Sig)
	field := func(prefix, sig []byte) string {
		return b64.EncodeToString(append(append([]byte{}, prefix...), sig...))
	}
	if err := verifyBlind(&priv.PublicKey, field(prefix, sig), msg); err != nil {
		t.Fatalf("verifyBlind(RFC 9474 signature) = %v", err)
	}
	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 1; return c }
	for _, tc := range []struct {
		name             string
		sig, msg, prefix []byte
	}{
		{"signature altered", flip(sig, len(sig)-1), msg, prefix},
		{"message altered", sig, flip(msg, 0), prefix},
		{"msg_prefix altered", sig, msg, flip(prefix, 0)},
		{"signature cut", sig[:len(sig)-1], msg, prefix},
	} {
		err := verifyBlind(&priv.PublicKey, field(tc.prefix, tc.sig), tc.msg)
		if !errors.Is(err, ErrSignature) {
			t.Errorf("%s: verifyBlind = %v; want %v", tc.name, err, ErrSignature)
		}
	}
}
