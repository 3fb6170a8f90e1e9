package wallet

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sync"
	"testing"

	"github.com/otpcash/otpcash/otp"
)

// tamperer sits between a wallet and its bank and answers GET requests
// for the paths it was set with its own bodies instead of the bank's.
type tamperer struct {
	mu     sync.Mutex
	bodies map[string][]byte
}

func (tp *tamperer) set(bodies map[string][]byte) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.bodies = bodies
}

func (tp *tamperer) server(t testing.TB, bankURL string) *httptest.Server {
	return bankProxy(t, bankURL, func(w http.ResponseWriter, r *http.Request) bool {
		tp.mu.Lock()
		body, ok := tp.bodies[r.URL.Path]
		tp.mu.Unlock()
		if r.Method != http.MethodGet || !ok {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
		return true
	})
}

// bankProxy is a test server in front of the bank at bankURL: answer
// answers a request itself, or returns false to let the bank answer it.
func bankProxy(t testing.TB, bankURL string, answer func(http.ResponseWriter, *http.Request) bool) *httptest.Server {
	t.Helper()
	u, err := url.Parse(bankURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !answer(w, r) {
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// get returns the body of GET path at a bank.
func get(t testing.TB, bankURL, path string) []byte {
	t.Helper()
	res, err := http.Get(bankURL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %v", path, res.StatusCode, err)
	}
	return b
}

// TestRefillKeysRefusesUntrusted: a network attacker (or a bank whose
// root key is not the one pinned) answers RefillKeys with a catalogue
// under another root, or a revocation list whose signature does not
// verify under the pinned root. RefillKeys refuses, and stores nothing:
// the same catalogue and revocation list, in the vault and in use, and no
// new exchange key.
func TestRefillKeysRefusesUntrusted(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	impostor := newTestBank(t) // same issuer name, its own root key
	flipSig := func(t *testing.T, raw []byte) []byte {
		var rev otp.Revocations
		if err := json.Unmarshal(raw, &rev); err != nil {
			t.Fatal(err)
		}
		sig, err := base64.RawURLEncoding.DecodeString(rev.Signature.Value)
		if err != nil {
			t.Fatal(err)
		}
		sig[len(sig)/2] ^= 1
		rev.Signature.Value = base64.RawURLEncoding.EncodeToString(sig)
		out, err := json.Marshal(rev)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	tests := []struct {
		name   string
		bodies func(t *testing.T) map[string][]byte
		want   error
	}{
		// The impostor's own revocation list goes with its catalogue, so
		// that only the pinned root can tell them from the bank's.
		{"catalogue under another root", func(*testing.T) map[string][]byte {
			return map[string][]byte{"/v1/catalogue": get(t, impostor.url, "/v1/catalogue"), "/v1/revocations": get(t, impostor.url, "/v1/revocations")}
		}, otp.ErrUnknownIssuer},
		{"revocation list with a bad signature", func(t *testing.T) map[string][]byte {
			return map[string][]byte{"/v1/revocations": flipSig(t, get(t, b.url, "/v1/revocations"))}
		}, otp.ErrSignature},
		{"revocation list signed under another root", func(*testing.T) map[string][]byte {
			return map[string][]byte{"/v1/revocations": get(t, impostor.url, "/v1/revocations")}
		}, otp.ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := &tamperer{}
			srv := tp.server(t, b.url)
			w, err := Init(ctx, filepath.Join(t.TempDir(), "wallet"), srv.URL, []byte("123456"), Options{PINHashing: cheap})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			settings := func() [2][]byte {
				var s [2][]byte
				for i, name := range []string{settingCatalogue, settingRevocations} {
					if s[i], err = w.v.Setting(ctx, name); err != nil {
						t.Fatal(err)
					}
				}
				return s
			}
			keysBefore, err := w.ExchangeKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			settingsBefore, cat, ver := settings(), w.cat(), w.ver()

			tp.set(tt.bodies(t))
			if n, err := w.RefillKeys(ctx, keysBefore+5); !errors.Is(err, tt.want) {
				t.Errorf("RefillKeys = %d, %v; want %v", n, err, tt.want)
			}
			if keys, err := w.ExchangeKeys(ctx); err != nil || keys != keysBefore {
				t.Errorf("exchange keys %d, %v; want %d", keys, err, keysBefore)
			}
			after := settings()
			for i, name := range []string{settingCatalogue, settingRevocations} {
				if !bytes.Equal(after[i], settingsBefore[i]) {
					t.Errorf("stored %s changed", name)
				}
			}
			if w.cat() != cat || w.ver() != ver {
				t.Error("the wallet uses another catalogue or verifier")
			}
			// The bank's own answers are still taken.
			tp.set(nil)
			if n, err := w.RefillKeys(ctx, keysBefore+5); err != nil || n != 5 {
				t.Fatalf("RefillKeys untampered = %d, %v; want 5 keys", n, err)
			}
		})
	}
}
