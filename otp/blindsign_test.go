package otp

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"strings"
	"testing"

	"filippo.io/bigmod"
	"github.com/cloudflare/circl/blindsign/blindrsa"
)

// rfc9474Vector is one test vector of RFC 9474, Appendix A (the file is
// circl's copy of them): numbers in 0x-prefixed hex, byte strings in hex.
type rfc9474Vector struct {
	Name               string
	P, Q, N, E, D, Inv string
	InputMsg           string `json:"input_msg"`
	BlindedMsg         string `json:"blinded_msg"`
	BlindSig           string `json:"blind_sig"`
	Sig                string
	Msg                string
	MsgPrefix          string `json:"msg_prefix"`
	SLen               string
	IsRandomized       string `json:"is_randomized"`
	Salt, EncodedMsg   string // unused, present in the file
}

func hexInt(t *testing.T, s string) *big.Int {
	t.Helper()
	n, ok := new(big.Int).SetString(strings.TrimPrefix(s, "0x"), 16)
	if !ok {
		t.Fatalf("bad hex number %q", s)
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

// TestBlindSignRFC9474 checks the constant-time CRT signer against the
// RFC's vectors: the blind signature of the blinded message must match
// byte for byte, and, unblinded with the vector's inverse, must be the
// vector's signature, which circl's verifier of the variant accepts.
func TestBlindSignRFC9474(t *testing.T) {
	text, err := os.ReadFile("testdata/rfc9474-blindsign.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []rfc9474Vector
	if err := json.Unmarshal(text, &vectors); err != nil {
		t.Fatal(err)
	}
	variants := map[string]blindrsa.Variant{
		"RSABSSA-SHA384-PSS-Randomized":        blindrsa.SHA384PSSRandomized,
		"RSABSSA-SHA384-PSSZERO-Randomized":    blindrsa.SHA384PSSZeroRandomized,
		"RSABSSA-SHA384-PSS-Deterministic":     blindrsa.SHA384PSSDeterministic,
		"RSABSSA-SHA384-PSSZERO-Deterministic": blindrsa.SHA384PSSZeroDeterministic,
	}
	if len(vectors) != len(variants) {
		t.Fatalf("%d vectors, want %d", len(vectors), len(variants))
	}
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			priv := &rsa.PrivateKey{
				PublicKey: rsa.PublicKey{N: hexInt(t, v.N), E: int(hexInt(t, v.E).Int64())},
				D:         hexInt(t, v.D),
				Primes:    []*big.Int{hexInt(t, v.P), hexInt(t, v.Q)},
			}
			k, err := newBlindKey(priv)
			if err != nil {
				t.Fatal(err)
			}
			blindSig, err := k.sign(hexBytes(t, v.BlindedMsg))
			if err != nil {
				t.Fatal(err)
			}
			if want := hexBytes(t, v.BlindSig); !bytes.Equal(blindSig, want) {
				t.Fatalf("blind_sig\n got %x\nwant %x", blindSig, want)
			}
			sig := new(big.Int).SetBytes(blindSig)
			sig.Mul(sig, hexInt(t, v.Inv)).Mod(sig, priv.N)
			sigBytes := sig.FillBytes(make([]byte, priv.Size()))
			if want := hexBytes(t, v.Sig); !bytes.Equal(sigBytes, want) {
				t.Fatalf("sig\n got %x\nwant %x", sigBytes, want)
			}
			variant, ok := variants[v.Name]
			if !ok {
				t.Fatalf("unknown variant %q", v.Name)
			}
			verifier, err := blindrsa.NewVerifier(variant, &priv.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			if err := verifier.Verify(hexBytes(t, v.InputMsg), sigBytes); err != nil {
				t.Fatalf("circl refuses the unblinded signature: %v", err)
			}
		})
	}
}

// TestBlindSignCircl runs blind withdrawals with circl's client on one
// side and the CRT signer on the other: circl's Finalize (which verifies)
// accepts every signature, and each is the very one circl's own signer
// (full exponent, math/big) makes of the same blinded message.
func TestBlindSignCircl(t *testing.T) {
	priv := testRSAKey(t, "blind-coin-key.pk8.txt")
	s := newFixture(t).blindKey
	client, err := blindrsa.NewClient(blindVariant, &priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		prepared, err := client.Prepare(rand.Reader, []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		blinded, state, err := client.Blind(rand.Reader, prepared)
		if err != nil {
			t.Fatal(err)
		}
		blindSig, err := s.BlindSign(blinded)
		if err != nil {
			t.Fatal(err)
		}
		circlSig, err := blindrsa.NewSigner(priv).BlindSign(blinded)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(blindSig, circlSig) {
			t.Fatalf("blind signature %d differs from circl's", i)
		}
		sig, err := client.Finalize(state, blindSig)
		if err != nil {
			t.Fatalf("circl's Finalize refuses blind signature %d: %v", i, err)
		}
		if err := client.Verify(prepared, sig); err != nil {
			t.Fatalf("circl's Verify refuses signature %d: %v", i, err)
		}
	}
}

// TestBlindSignRefusesFault corrupts one half of the CRT computation (or
// the recombination) of an otherwise good key, as a hardware or memory
// fault would: the signer must not release the faulty signature, which
// would factor the modulus.
func TestBlindSignRefusesFault(t *testing.T) {
	flip := func(b []byte) []byte {
		b = bytes.Clone(b)
		b[len(b)-1] ^= 2
		return b
	}
	tests := []struct {
		name    string
		corrupt func(k *blindKey)
	}{
		{"dP", func(k *blindKey) { k.dP = flip(k.dP) }},
		{"dQ", func(k *blindKey) { k.dQ = flip(k.dQ) }},
		{"qInv", func(k *blindKey) {
			one, err := bigmod.NewNat().SetBytes([]byte{1}, k.p)
			if err != nil {
				t.Fatal(err)
			}
			k.qInv = bigmod.NewNat().Mod(k.qInv, k.p).Add(one, k.p)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFixture(t).blindKey
			blinded := bytes.Repeat([]byte{0x5a}, BlindMessageSize)
			if _, err := s.BlindSign(blinded); err != nil {
				t.Fatalf("good key: %v", err)
			}
			k := *s.blind
			tt.corrupt(&k)
			s.blind = &k
			sig, err := s.BlindSign(blinded)
			if !errors.Is(err, ErrBlindFault) || sig != nil {
				t.Fatalf("faulty %s: got %x, %v; want no signature and ErrBlindFault", tt.name, sig, err)
			}
			if errors.Is(err, ErrBlind) {
				t.Fatalf("a fault is the bank's failure, not a bad request: %v", err)
			}
		})
	}
}

// TestBlindSignRange checks RSASP1's input range: a blinded message is a
// number below the modulus, and one that is not is refused, not reduced.
func TestBlindSignRange(t *testing.T) {
	priv := testRSAKey(t, "blind-coin-key.pk8.txt")
	s := newFixture(t).blindKey
	n := priv.N.FillBytes(make([]byte, BlindMessageSize))
	plus := func(d int64) []byte {
		return new(big.Int).Add(priv.N, big.NewInt(d)).FillBytes(make([]byte, BlindMessageSize))
	}
	tests := []struct {
		name    string
		blinded []byte
		ok      bool
	}{
		{"zero", make([]byte, BlindMessageSize), true},
		{"n-1", plus(-1), true},
		{"n", n, false},
		{"n+1", plus(1), false},
		{"2^2048-1", bytes.Repeat([]byte{0xff}, BlindMessageSize), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := s.BlindSign(tt.blinded)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrBlind) || sig != nil {
				t.Fatalf("got %x, %v; want no signature and ErrBlind", sig, err)
			}
		})
	}
}
