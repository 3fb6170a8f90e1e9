package bank

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/otp"
)

const fuzzMax = 8

// seed adds the golden file and a few near misses to the corpus.
func seed(f *testing.F, golden string) {
	data, err := os.ReadFile(filepath.Join("testdata", golden))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add(bytes.Replace(data, []byte(`"`), []byte(`'`), 1))
	for _, s := range []string{"", "null", "{}", "[]", `{"x":1}`, "{} {}", "\x00"} {
		f.Add([]byte(s))
	}
}

// clientError fails unless err is nil or an *api.Error with a 4xx status:
// no input may make a decoder fail as the server's own fault.
func clientError(t *testing.T, err error) bool {
	if err == nil {
		return false
	}
	var e *api.Error
	if !errors.As(err, &e) || e.Status/100 != 4 || e.Code == "" || e.Message == "" {
		t.Fatalf("decoder error %#v is not a client error", err)
	}
	return true
}

// checkKeys checks what parseKeys promises of the keys it accepts.
func checkKeys(t *testing.T, text []string, keys [][]byte) {
	if len(keys) != len(text) || len(keys) == 0 || len(keys) > fuzzMax {
		t.Fatalf("%d keys accepted for %d given", len(keys), len(text))
	}
	seen := map[string]bool{}
	for i, k := range keys {
		if otp.EncodeKey(k) != text[i] || seen[text[i]] {
			t.Fatalf("key %d: %q accepted as %x (duplicate: %v)", i, text[i], k, seen[text[i]])
		}
		seen[text[i]] = true
	}
}

func FuzzWithdrawRequest(f *testing.F) {
	seed(f, "withdraw_request.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		req, blinded, err := parseWithdrawRequest(bytes.NewReader(data), fuzzMax)
		if clientError(t, err) {
			return
		}
		if checkID("id", req.ID) != nil || checkID("account", req.Account) != nil || checkID("keyId", req.KeyID) != nil {
			t.Fatalf("bad ids accepted: %+v", req)
		}
		for i, m := range blinded {
			if len(m) != otp.BlindMessageSize {
				t.Fatalf("blinded[%d]: %d bytes accepted", i, len(m))
			}
		}
		checkKeys(t, req.Blinded, blinded)
	})
}

func FuzzExchangeKeysRequest(f *testing.F) {
	seed(f, "exchange_keys_request.json")
	seed(f, "blind_exchange_keys_request.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, pubs, blinded, err := parseExchangeKeysRequest(bytes.NewReader(data), fuzzMax)
		if clientError(t, err) {
			return
		}
		var req api.ExchangeKeysRequest
		if err := decode(bytes.NewReader(data), &req); err != nil {
			t.Fatal(err)
		}
		if blinded != nil {
			if req.Account != "" || req.Pubs != nil || checkID("keyId", req.KeyID) != nil {
				t.Fatalf("blinded keys accepted with %+v", req)
			}
			for i, m := range blinded {
				if len(m) != otp.BlindMessageSize {
					t.Fatalf("blinded[%d]: %d bytes accepted", i, len(m))
				}
			}
			checkKeys(t, req.Blinded, blinded)
			return
		}
		if checkID("account", req.Account) != nil {
			t.Fatalf("keys in the clear accepted without an account: %+v", req)
		}
		keys := make([][]byte, len(pubs))
		for i, p := range pubs {
			keys[i] = p
		}
		checkKeys(t, req.Pubs, keys)
	})
}

func FuzzCreditRequest(f *testing.F) {
	seed(f, "credit_request.json")
	f.Add([]byte(`{"amount": 1e3}`))
	f.Add([]byte(`{"amount": 99999999999999999999}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := parseCreditRequest(bytes.NewReader(data))
		clientError(t, err)
	})
}

// FuzzDepositRequest decodes deposit bodies and runs every accepted coin
// through the checks a deposit makes before touching the database: no
// input may panic them or pass them without being the golden coin.
func FuzzDepositRequest(f *testing.F) {
	seed(f, "deposit_request.json")
	fx := newFixture(f)
	v := otp.NewVerifier(fx.cat)
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := parseDepositRequest(bytes.NewReader(data), fuzzMax)
		if clientError(t, err) {
			return
		}
		if checkID("account", req.Account) != nil || len(req.Coins) == 0 || len(req.Coins) > fuzzMax {
			t.Fatalf("bad request accepted: account %q, %d coins", req.Account, len(req.Coins))
		}
		checked := make([]checkedCoin, len(req.Coins))
		checkChunk(v, req.Coins, checked, req.Account, fx.cat.Issued)
		for i, c := range checked {
			switch c.result.Status {
			case "":
				if c.spent.Serial != fx.coin.Data.Token || len(c.spent.ChainHash) == 0 {
					t.Fatalf("coin %d passed the checks: %+v", i, c.spent)
				}
			case api.StatusRefused:
				if c.result.Code == "" || c.result.Message == "" {
					t.Fatalf("coin %d refused without a reason: %+v", i, c.result)
				}
			default:
				t.Fatalf("coin %d: status %q before the database", i, c.result.Status)
			}
		}
	})
}

func FuzzRedenominationRequest(f *testing.F) {
	seed(f, "redenomination_request.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		req, blinded, err := parseRedenominationRequest(bytes.NewReader(data), fuzzMax)
		if clientError(t, err) {
			return
		}
		if checkID("id", req.ID) != nil || checkID("account", req.Account) != nil || len(req.Coins) == 0 || len(req.Coins) > fuzzMax {
			t.Fatalf("bad request accepted: %+v", req)
		}
		n := 0
		for i, w := range req.Withdraw {
			if checkID("keyId", w.KeyID) != nil || len(w.Blinded) == 0 {
				t.Fatalf("withdraw[%d] accepted: %+v", i, w)
			}
			for j, m := range blinded[i] {
				if len(m) != otp.BlindMessageSize {
					t.Fatalf("withdraw[%d].blinded[%d]: %d bytes accepted", i, j, len(m))
				}
			}
			checkKeys(t, w.Blinded, blinded[i])
			n += len(w.Blinded)
		}
		if n > fuzzMax {
			t.Fatalf("%d blinded coins accepted, limit %d", n, fuzzMax)
		}
	})
}

func FuzzReclaimRequest(f *testing.F) {
	seed(f, "reclaim_request.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := parseReclaimRequest(bytes.NewReader(data), fuzzMax)
		if clientError(t, err) {
			return
		}
		if checkID("account", req.Account) != nil || len(req.Coins) == 0 || len(req.Coins) > fuzzMax {
			t.Fatalf("bad request accepted: %d coins for %q", len(req.Coins), req.Account)
		}
	})
}

// FuzzBackupUpload: an upload is accepted only with a valid signature of
// the key its id names, over exactly the data returned; anything else is
// the client's error.
func FuzzBackupUpload(f *testing.F) {
	seed(f, "backup_upload.json")
	id := api.BackupID(seedKey(5).Public().(ed25519.PublicKey))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, version, err := parseBackupUpload(bytes.NewReader(data), id)
		if clientError(t, err) {
			return
		}
		var u api.BackupUpload
		if err := json.Unmarshal(data, &u); err != nil {
			t.Fatalf("accepted an upload that does not decode: %v", err)
		}
		if _, again := api.SignBackup(seedKey(5), version, got); again.Signature != u.Signature || again.Key != u.Key {
			t.Fatalf("accepted an upload the key did not sign as returned: %s", data)
		}
	})
}
