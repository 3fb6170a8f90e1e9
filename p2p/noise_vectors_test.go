package p2p

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/flynn/noise"
)

// hexBytes is a byte string written in hex, as in the cacophony vectors.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	var err error
	*h, err = hex.DecodeString(s)
	return err
}

// TestCacophonyVectors runs the cacophony Noise test vectors
// (github.com/centromere/cacophony, vectors/cacophony.txt; see
// testdata/noise/README.md) of the cipher suite the channel uses through
// flynn/noise at the version go.mod pins: both sides' handshake messages,
// the handshake hash, and transport messages each way after the split.
func TestCacophonyVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "noise", "cacophony-XX_25519_ChaChaPoly_SHA256.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []struct {
			ProtocolName  string   `json:"protocol_name"`
			InitPrologue  hexBytes `json:"init_prologue"`
			InitStatic    hexBytes `json:"init_static"`
			InitEphemeral hexBytes `json:"init_ephemeral"`
			RespPrologue  hexBytes `json:"resp_prologue"`
			RespStatic    hexBytes `json:"resp_static"`
			RespEphemeral hexBytes `json:"resp_ephemeral"`
			Messages      []struct {
				Payload    hexBytes `json:"payload"`
				Ciphertext hexBytes `json:"ciphertext"`
			} `json:"messages"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range file.Vectors {
		t.Run(v.ProtocolName, func(t *testing.T) {
			// The suite and pattern the channel uses must be the vector's.
			if name := "Noise_" + noise.HandshakeXX.Name + "_" + string(suite.Name()); name != v.ProtocolName {
				t.Fatalf("channel uses %s, vector is %s", name, v.ProtocolName)
			}
			// flynn/noise derives a key pair from 32 bytes read from its
			// random source: the vector's private keys.
			key := func(priv []byte) noise.DHKey {
				k, err := suite.GenerateKeypair(bytes.NewReader(priv))
				if err != nil {
					t.Fatal(err)
				}
				return k
			}
			initiator, err := noise.NewHandshakeState(noise.Config{
				CipherSuite: suite, Pattern: noise.HandshakeXX, Initiator: true,
				Prologue: v.InitPrologue, StaticKeypair: key(v.InitStatic),
				Random: bytes.NewReader(v.InitEphemeral),
			})
			if err != nil {
				t.Fatal(err)
			}
			responder, err := noise.NewHandshakeState(noise.Config{
				CipherSuite: suite, Pattern: noise.HandshakeXX,
				Prologue: v.RespPrologue, StaticKeypair: key(v.RespStatic),
				Random: bytes.NewReader(v.RespEphemeral),
			})
			if err != nil {
				t.Fatal(err)
			}
			// XX has three handshake messages; the rest are transport
			// messages, alternating from the initiator.
			var send, recv [2]*noise.CipherState // [0] initiator to responder
			for i, m := range v.Messages {
				fromInitiator := i%2 == 0
				var ct, pt []byte
				switch {
				case i < len(noise.HandshakeXX.Messages):
					w, r := initiator, responder
					if !fromInitiator {
						w, r = responder, initiator
					}
					var cs0, cs1 *noise.CipherState
					ct, cs0, cs1, err = w.WriteMessage(nil, m.Payload)
					if err != nil {
						t.Fatalf("message %d: write: %v", i, err)
					}
					var rc0, rc1 *noise.CipherState
					pt, rc0, rc1, err = r.ReadMessage(nil, ct)
					if err != nil {
						t.Fatalf("message %d: read: %v", i, err)
					}
					if cs0 != nil {
						send, recv = [2]*noise.CipherState{cs0, cs1}, [2]*noise.CipherState{rc0, rc1}
					}
				default:
					d := 0
					if !fromInitiator {
						d = 1
					}
					if ct, err = send[d].Encrypt(nil, nil, m.Payload); err != nil {
						t.Fatalf("message %d: encrypt: %v", i, err)
					}
					if pt, err = recv[d].Decrypt(nil, nil, ct); err != nil {
						t.Fatalf("message %d: decrypt: %v", i, err)
					}
				}
				if !bytes.Equal(ct, m.Ciphertext) {
					t.Errorf("message %d: ciphertext\n got %x\nwant %x", i, ct, m.Ciphertext)
				}
				if !bytes.Equal(pt, m.Payload) {
					t.Errorf("message %d: payload %x, want %x", i, pt, m.Payload)
				}
			}
			// The handshake hash is the channel binding the SAS is made
			// from. It is checked against the Noise specification's
			// chain (section 5.2, MixHash) over the vector's prologue and
			// handshake messages: e, then payload; e, encrypted s,
			// encrypted payload; encrypted s, encrypted payload. The
			// vector's own handshake_hash field is not used: it is no
			// value of that chain (cacophony's consumers, such as snow's
			// vector test, do not read it either).
			h := []byte(v.ProtocolName)
			if len(h) <= sha256.Size {
				h = append(h, make([]byte, sha256.Size-len(h))...)
			} else {
				s := sha256.Sum256(h)
				h = s[:]
			}
			mix := func(data []byte) { s := sha256.Sum256(append(h, data...)); h = s[:] }
			mix(v.InitPrologue)
			m := v.Messages
			const dh, sealedKey = 32, 32 + 16
			for _, part := range [][]byte{
				m[0].Ciphertext[:dh], m[0].Ciphertext[dh:],
				m[1].Ciphertext[:dh], m[1].Ciphertext[dh : dh+sealedKey], m[1].Ciphertext[dh+sealedKey:],
				m[2].Ciphertext[:sealedKey], m[2].Ciphertext[sealedKey:],
			} {
				mix(part)
			}
			for name, hs := range map[string]*noise.HandshakeState{"initiator": initiator, "responder": responder} {
				if got := hs.ChannelBinding(); !bytes.Equal(got, h) {
					t.Errorf("%s handshake hash %x, want %x", name, got, h)
				}
			}
		})
	}
}
