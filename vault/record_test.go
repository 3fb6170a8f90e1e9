package vault

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/otpcash/otpcash/otp"
)

var updateRecords = flag.Bool("update-records", false, "rewrite testdata/records-v2")

// seeded is the Ed25519 key of name, the same at every run.
func seeded(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("record-test/" + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// fixedSandbox is a coin issued to a fixed key with a fixed serial and
// paid on twice, the second time to a key whose certificate carries
// attributes: the same bytes at every run.
func fixedSandbox(t testing.TB, is *issuer) otp.Sandbox {
	t.Helper()
	s := is.coins[5]
	var serial otp.Serial
	copy(serial[:], "record-test serial, 32 bytes....")
	c, err := s.Issue(serial, seeded("h0").Public().(ed25519.PublicKey), s.Key.Expires, otp.GeneralProgram())
	if err != nil {
		t.Fatal(err)
	}
	sb := otp.Sandbox{Coin: *c}
	// An expiry with nanoseconds and an offset: the record keeps both.
	exp := time.Date(2090, 6, 1, 12, 0, 0, 987654321, time.FixedZone("", 2*3600))
	for i, attrs := range []map[string]string{nil, {"age": "18+", "kyc": "basic"}} {
		name := []string{"h1", "h2"}[i]
		to, err := is.exch.Certify(seeded(name).Public().(ed25519.PublicKey), exp, attrs)
		if err != nil {
			t.Fatal(err)
		}
		if err := sb.Transfer(seeded([]string{"h0", "h1"}[i]), to); err != nil {
			t.Fatal(err)
		}
	}
	if err := is.ver.VerifySandbox(&sb); err != nil {
		t.Fatal(err)
	}
	return sb
}

// recordExamples are one record of each kind, with every field set.
func recordExamples(t testing.TB) map[string]any {
	is := newIssuer(t)
	sb := fixedSandbox(t, is)
	ack, err := sb.Acknowledge(seeded("h2"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 5, 10, 0, 0, 123456789, time.UTC)
	cert := sb.Chain[1].To
	return map[string]any{
		"coin": &holding{Sandbox: sb, Hop: 2, Received: &ack, Peer: "alice", Ack: &ack, Updated: at,
			Reclaim: &reclaimRecord{Auth: "auth", Seed: seeded("r").Seed()},
			Refusal: &Refusal{Token: sb.Coin.Data.Token, Code: "double_deposit", Message: "twice", Key: sb.Holder()}},
		"key": &keyRecord{Seed: seeded("h2").Seed(), Cert: &cert, Agreement: []byte("agreement id"),
			Due: &due{Value: 5, Currency: "EUR", Program: "general"}, Request: "request id"},
		"withdrawal": &withdrawal{ID: "w1", Keys: []string{sb.Coin.Data.Holder}, Secret: bytes.Repeat([]byte{7}, 32)},
		"event":      &Event{Time: at, Kind: "payment", Amount: -5, Currency: "EUR", Peer: "bob", Detail: "coffee"},
		"agreement": &ChangeAgreement{Peer: "bob", Change: []string{sb.Coin.Data.Token}, To: []otp.ExchangeKey{cert},
			Send: []int64{2, 1}, Currency: "EUR", Program: "general", Keys: []string{cert.Pub}},
		"request": &Request{ID: "r1", Amount: 300, Currency: "EUR", Program: "general", Memo: "lunch",
			Expires: at.Add(time.Hour), Keys: []otp.ExchangeKey{cert}, Sig: []byte("signature"), Paid: []string{sb.Coin.Data.Token}},
		"setting":  &[]byte{'v', 'a', 'l', 'u', 'e'},
		"identity": &[]byte{1, 2, 3, 4},
	}
}

// TestRecordGolden checks the record form 2 of each kind of record
// against testdata/records-v2: the bytes written, and what they read.
func TestRecordGolden(t *testing.T) {
	for kind, v := range recordExamples(t) {
		t.Run(kind, func(t *testing.T) {
			path := filepath.Join("testdata", "records-v2", kind+".hex")
			got, err := marshalRecord(v)
			if err != nil {
				t.Fatal(err)
			}
			if *updateRecords {
				if err := os.WriteFile(path, []byte(hex.EncodeToString(got)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			h, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want, err := hex.DecodeString(strings.TrimSpace(string(h)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("record form changed:\n got %x\nwant %x", got, want)
			}
			back := reflect.New(reflect.TypeOf(v).Elem())
			if err := unmarshalRecord(want, back.Interface()); err != nil {
				t.Fatal(err)
			}
			checkSameRecord(t, back.Interface(), v)
		})
	}
}

// checkSameRecord checks that got reads as want, the signed forms inside
// byte for byte in their JSON and still valid.
func checkSameRecord(t *testing.T, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("record reads\n%+v\nwant\n%+v", got, want)
	}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Fatalf("record reads as JSON\n%s\nwant\n%s", g, w)
	}
	if h, ok := got.(*holding); ok {
		if err := newIssuer(t).ver.VerifySandbox(&h.Sandbox); err != nil {
			t.Fatalf("sandbox after a round trip: %v", err)
		}
		if err := h.Sandbox.VerifyAck(*h.Ack); err != nil {
			t.Fatalf("receipt after a round trip: %v", err)
		}
	}
}

// TestRecordFormsAgree reads every example from its form 1 (JSON) and its
// form 2 to the same value: the upgrade loses nothing.
func TestRecordFormsAgree(t *testing.T) {
	for kind, v := range recordExamples(t) {
		t.Run(kind, func(t *testing.T) {
			old, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			back := reflect.New(reflect.TypeOf(v).Elem())
			if err := unmarshalRecord(old, back.Interface()); err != nil {
				t.Fatal(err)
			}
			checkSameRecord(t, back.Interface(), v)
			// Step arguments, which no program takes today, decode as
			// from JSON, and so keep their canonical form.
			if h, ok := v.(*holding); ok {
				c := *h
				c.Sandbox.Coin.CallMethod = append([]otp.Step{{Method: "x", Args: map[string]any{
					"n": 2.5, "m": map[string]any{"a": []any{"s", true, nil, 3.0}}}}}, c.Sandbox.Coin.CallMethod...)
				b, err := marshalRecord(&c)
				if err != nil {
					t.Fatal(err)
				}
				var back holding
				if err := unmarshalRecord(b, &back); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(back.Sandbox.Coin.CallMethod, c.Sandbox.Coin.CallMethod) {
					t.Fatalf("steps read %#v, want %#v", back.Sandbox.Coin.CallMethod, c.Sandbox.Coin.CallMethod)
				}
			}
		})
	}
}

// TestRecordBadInput refuses, with an error naming why, what form 2 never
// writes, and a form 1 record with a field no release wrote.
func TestRecordBadInput(t *testing.T) {
	ev, err := marshalRecord(&Event{Kind: "k"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		plain []byte
		want  string
	}{
		{"empty", nil, "unknown record form: empty"},
		{"unknown version", append([]byte{0x03}, ev[1:]...), "version byte 0x03"},
		{"form 1 in a binary", []byte{0x01, 0xa0}, "version byte 0x01"},
		{"trailing bytes", append(append([]byte{}, ev...), 0x00), "extraneous data"},
		{"unknown key", []byte{recordCBOR, 0xa1, 0x09, 0x01}, "unknown field"},
		{"duplicate key", []byte{recordCBOR, 0xa2, 0x02, 0x61, 'a', 0x02, 0x61, 'b'}, "duplicate map key"},
		{"indefinite map", []byte{recordCBOR, 0xbf, 0x02, 0x61, 'a', 0xff}, "indefinite-length"},
		{"wrong type", []byte{recordCBOR, 0xa1, 0x03, 0x61, 'a'}, "cannot unmarshal"},
		{"json unknown field", []byte(`{"Kind":"k","Extra":1}`), "unknown"},
		{"json trailing", []byte(`{"Kind":"k"} {}`), "after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e Event
			err := unmarshalRecord(tc.plain, &e)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if strings.HasPrefix(tc.name, "unknown version") || tc.name == "empty" || tc.name == "form 1 in a binary" {
				if !errors.Is(err, ErrRecordForm) {
					t.Fatalf("%v is not ErrRecordForm", err)
				}
			}
		})
	}
}

// FuzzRecord feeds the record decoder anything: it never panics, and what
// it accepts in form 2 is written back as it was read.
func FuzzRecord(f *testing.F) {
	for _, v := range recordExamples(f) {
		b, err := marshalRecord(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		j, _ := json.Marshal(v)
		f.Add(j)
	}
	f.Fuzz(func(t *testing.T, plain []byte) {
		var h holding
		if err := unmarshalRecord(plain, &h); err != nil {
			return
		}
		b, err := marshalRecord(&h)
		if err != nil {
			t.Fatal(err)
		}
		var again holding
		if err := unmarshalRecord(b, &again); err != nil {
			t.Fatalf("a record read does not read once written: %v", err)
		}
		if !reflect.DeepEqual(h, again) {
			t.Fatalf("record changed when written again:\n%+v\n%+v", h, again)
		}
	})
}

// TestGoldenVaultUpgrade opens the vault of release ebc9f3a, in record
// form 1, pays and deposits from it, and finds what it wrote in form 2 and
// everything readable, before and after reopening.
func TestGoldenVaultUpgrade(t *testing.T) {
	ctx := context.Background()
	v, dir, want := openGoldenVault(t)
	if got := recordForms(t, v); got[recordCBOR] != 0 || got['{'] == 0 {
		t.Fatalf("golden vault has records of forms %v, want only JSON objects", got)
	}
	is := newIssuer(t)
	coins := held(t, v)
	if len(coins) != 2 {
		t.Fatalf("%d coins held, want 2", len(coins))
	}
	bob, _ := newVaultOn(t, "")
	is.pay(t, v, bob, coins[:1])
	if err := v.MarkDeposited(ctx, []string{coins[1].Coin.Data.Token}); err != nil {
		t.Fatal(err)
	}
	if got := held(t, bob); len(got) != 1 || got[0].Coin.Data.Token != coins[0].Coin.Data.Token {
		t.Fatalf("bob holds %d coins, want the one paid", len(got))
	}
	st := states(t, v)
	if got := st[coins[0].Coin.Data.Token]; got[len(got)-1] != Spent {
		t.Fatalf("paid coin is %v", got)
	}
	if got := st[coins[1].Coin.Data.Token]; got[len(got)-1] != Deposited {
		t.Fatalf("deposited coin is %v", got)
	}
	// The latest holdings of the two coins, just written, are in form 2;
	// the records nobody wrote since stay in form 1 until they are.
	latest := map[string]int{}
	forms := map[string]byte{}
	eachPlaintext(t, v, []string{kindCoin}, func(plain []byte) error {
		var h holding
		if err := unmarshalRecord(plain, &h); err != nil {
			return err
		}
		tok := h.Sandbox.Coin.Data.Token
		if hop, ok := latest[tok]; !ok || h.Hop >= hop {
			latest[tok], forms[tok] = h.Hop, plain[0]
		}
		return nil
	})
	for _, c := range coins {
		if f := forms[c.Coin.Data.Token]; f != recordCBOR {
			t.Errorf("coin %.12s written in form %#02x", c.Coin.Data.Token, f)
		}
	}
	if got := recordForms(t, v); got['{'] == 0 || got[recordCBOR] == 0 {
		t.Fatalf("vault has records of forms %v, want both", got)
	}
	// Reopened, the vault reads what it read before, but the two coins.
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	v2, err := Open(ctx, dir, testPIN)
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	got := readGolden(t, v2)
	if len(got.Coins) != len(want.Coins) || len(got.Events) != len(want.Events) || got.Exchange != want.Exchange {
		t.Fatalf("reopened vault reads %d coins, %d events, %d keys; want %d, %d, %d",
			len(got.Coins), len(got.Events), got.Exchange, len(want.Coins), len(want.Events), want.Exchange)
	}
	paid := map[string]bool{coins[0].Coin.Data.Token: true, coins[1].Coin.Data.Token: true}
	byTime := map[string]goldenCoin{}
	for _, g := range got.Coins {
		byTime[g.Token+g.Updated.String()] = g
	}
	for _, w := range want.Coins {
		if paid[w.Token] {
			continue
		}
		g, ok := byTime[w.Token+w.Updated.String()]
		var sb bytes.Buffer
		if err := json.Compact(&sb, w.Sandbox); err != nil {
			t.Fatal(err)
		}
		if !ok || !bytes.Equal(g.Sandbox, sb.Bytes()) || g.State != w.State {
			t.Fatalf("coin %.12s reads %+v, want %+v", w.Token, g, w)
		}
	}
}

// recordForms counts v's records by the first byte of their plaintext.
func recordForms(t *testing.T, v *Vault) map[byte]int {
	t.Helper()
	forms := map[byte]int{}
	kinds := []string{kindSetting, kindIdentity, kindWithdrawal, kindKey, kindCoin, kindEvent}
	eachPlaintext(t, v, kinds, func(plain []byte) error {
		forms[plain[0]]++
		return nil
	})
	return forms
}

// eachPlaintext calls fn with the plaintext of every record of the kinds
// in v, in one transaction.
func eachPlaintext(t *testing.T, v *Vault, kinds []string, fn func(plain []byte) error) {
	t.Helper()
	err := v.update(context.Background(), func(t2 *tx) error {
		for _, kind := range kinds {
			raws, err := scanRecords(t2, kind, allRecords, nil)
			if err != nil {
				return err
			}
			for _, r := range raws {
				plain, err := t2.s.openPlain(kind, r.id, r.state, r.ref, r.blob)
				if err != nil {
					return err
				}
				if err := fn(plain); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
