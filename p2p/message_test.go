package p2p

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otpcash/otpcash/otp"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in testdata")

type golden struct {
	name string
	m    message
	// json marks a message of the hellos, which every version writes in
	// JSON; the others are version 4's CBOR.
	json bool
	// handedOut are the exchange keys the receiver last handed out, which
	// the message's links name by place.
	handedOut []otp.ExchangeKey
}

// goldenMessages is one of each message type, from deterministic data.
func goldenMessages(t testing.TB) []golden {
	p := newBank(t).pay(t, "golden", 2)
	keys := []otp.ExchangeKey{p[0].key, p[1].key}
	return []golden{
		{name: "hello", m: &Hello{Versions: []int{Version}, Issuers: []string{issuer}}, json: true},
		{name: "error-version", m: &RemoteError{Code: CodeVersion, Message: "no common protocol version: peer speaks [3], this side 4"}, json: true},
		{name: "offer", m: &Offer{Amount: 1250, Currency: "EUR", MaxHops: 1, Memo: "2 coffees & a <croissant> ☕", Program: "general"}},
		{name: "offer-revocations", m: &Offer{Amount: 1250, Currency: "EUR", MaxHops: 1, Program: "general",
			RevocationsIssued: time.Date(2026, 12, 4, 9, 30, 0, 0, time.UTC)}},
		{name: "accept", m: &acceptMsg{}},
		{name: "change", m: &ChangeProposal{Send: []int64{1000, 500}, Keys: keys}},
		{name: "agreed", m: &agreedMsg{Change: []int64{200, 50}}},
		{name: "collect", m: &collectMsg{}},
		{name: "receipts", m: &receiptsMsg{Acks: []otp.Ack{p[0].ack}}},
		{name: "settled", m: &settledMsg{}},
		{name: "keysRequest", m: &keysRequestMsg{N: 2}},
		{name: "keys", m: &keysMsg{Keys: keys}},
		{name: "coins", m: &coinsMsg{Coins: []otp.Sandbox{p[0].sandbox, p[1].sandbox}}, handedOut: keys},
		{name: "coins-resend", m: &coinsMsg{Coins: []otp.Sandbox{p[0].sandbox}, Resend: true}},
		{name: "acks", m: &acksMsg{Acks: []otp.Ack{p[0].ack, p[1].ack}}},
		{name: "acks-change", m: &acksMsg{Acks: []otp.Ack{p[0].ack}, Change: []otp.Sandbox{p[1].sandbox}}, handedOut: keys[1:]},
		{name: "done", m: &doneMsg{}},
		{name: "error", m: &RemoteError{Code: CodeDeclined, Message: "offer declined"}},
	}
}

func goldenMessage(t testing.TB, name string) message {
	all := goldenMessages(t)
	return all[slices.IndexFunc(all, func(g golden) bool { return g.name == name })].m
}

// codecs returns the sender's and the receiver's codec for g.
func (g golden) codecs() (send, recv *codec) {
	return &codec{binary: !g.json, theirs: g.handedOut}, &codec{binary: !g.json, own: g.handedOut}
}

// TestGolden checks that the encoding of every message type, as bytes and
// as records on the wire, is what it was: a change would break the session
// between wallets of different releases. It checks that each decodes to
// the message encoded, receipts completed with the coins they answer. Run
// with -update after an intended change.
func TestGolden(t *testing.T) {
	for _, g := range goldenMessages(t) {
		t.Run(g.name, func(t *testing.T) {
			send, recv := g.codecs()
			enc, err := send.encode(g.m)
			if err != nil {
				t.Fatal(err)
			}
			ext := ".cbor"
			if g.json {
				ext = ".json"
			}
			enc = checkGolden(t, filepath.Join("messages", g.name+ext), enc)
			m, err := recv.decode(enc)
			if err != nil {
				t.Fatal(err)
			}
			switch m := m.(type) {
			case *acksMsg:
				fillAcks(m.Acks, goldenMessage(t, "coins").(*coinsMsg).Coins)
			case *receiptsMsg:
				fillAcks(m.Acks, goldenMessage(t, "coins").(*coinsMsg).Coins)
			}
			if !reflect.DeepEqual(m, g.m) {
				t.Errorf("golden %s decodes to\n%+v\nnot\n%+v", g.name, m, g.m)
			}
			wire := checkGolden(t, filepath.Join("frames", g.name+".bin"), seal(t, enc))
			if got, err := recordReader(bytes.NewReader(wire)).readRecords(); err != nil || !bytes.Equal(got, enc) {
				t.Errorf("golden frames of %s read back as %q, %v", g.name, got, err)
			}
		})
	}
}

// checkGolden compares got with testdata/name, or rewrites it under
// -update, and returns the stored vector.
func checkGolden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed (run go test -run TestGolden -update if that is intended):\ngot  %q\nwant %q", path, got, want)
	}
	return want
}

func TestDecodeRefuses(t *testing.T) {
	coin := string(must(encodeMessage(goldenMessage(t, "coins"))))
	tooMany := `{"type":"acks","body":{"acks":[` + strings.Repeat(`{},`, MaxBatch) + `{}]}}`
	tests := []struct {
		name, msg, want string
	}{
		{"empty", ``, "EOF"},
		{"unknown type", `{"type":"refund","body":{}}`, `unknown message type "refund"`},
		{"no type", `{"body":{}}`, `want the member "type" first: found "body"`},
		{"body first", `{"body":{},"type":"done"}`, `want the member "type" first: found "body"`},
		{"type of another case", `{"Type":"done","body":{}}`, `want the member "type" first: found "Type"`},
		{"type not a string", `{"type":3,"body":{}}`, "the type is not a string: found 3"},
		{"not an object", `["done",{}]`, "want a JSON object: found ["},
		{"unknown envelope field", `{"type":"done","body":{},"sig":""}`, `want the end of the message: found "sig"`},
		{"unknown field before the body", `{"type":"done","sig":"","body":{}}`, `without a body: want the member "body": found "sig"`},
		{"type twice", `{"type":"done","type":"coins","body":{}}`, `duplicate object member name "type"`},
		{"unknown body field", `{"type":"done","body":{"reason":"bye"}}`, `unknown object member name "reason"`},
		{"unknown field in a coin", strings.Replace(coin, `"conditions":[]`, `"conditions":[],"bonus":1`, 1), `unknown object member name "bonus" within "/body/coins/0/coin/data"`},
		{"trailing data", `{"type":"done","body":{}}{}`, "trailing data"},
		{"no body", `{"type":"done"}`, "without a body"},
		{"null body", `{"type":"done","body":null}`, "without a body"},
		{"body of the wrong shape", `{"type":"keysRequest","body":[2]}`, "keysRequest body"},
		{"field of the wrong type", `{"type":"keysRequest","body":{"n":"2"}}`, "keysRequest body"},
		{"too many versions", `{"type":"hello","body":{"versions":[` + strings.Repeat("1,", maxVersions) + `1],"issuers":[]}}`, "17 versions"},
		{"no keys asked for", `{"type":"keysRequest","body":{"n":0}}`, "keysRequest n: 0"},
		{"too many keys asked for", `{"type":"keysRequest","body":{"n":10001}}`, "keysRequest n: 10001"},
		{"too many receipts", tooMany, "acks: 10001"},
		{"no coins", `{"type":"coins","body":{"coins":[],"resend":false}}`, "coins: 0"},
		{"offer of nothing", `{"type":"offer","body":{"amount":0,"currency":"EUR","memo":""}}`, "amount must be positive"},
		{"currency not a code", `{"type":"offer","body":{"amount":1,"currency":"eur","memo":""}}`, `"eur" is not an ISO 4217 code`},
		{"memo too long", `{"type":"offer","body":{"amount":1,"currency":"EUR","maxHops":1,"memo":"` + strings.Repeat("m", maxText+1) + `"}}`, "offer memo of 1025 bytes"},
		{"offer without hops", `{"type":"offer","body":{"amount":1,"currency":"EUR","memo":""}}`, "offer of coins of 0 hops"},
		{"offer of negative hops", `{"type":"offer","body":{"amount":1,"currency":"EUR","maxHops":-2,"memo":""}}`, "offer of coins of -2 hops"},
		{"an accept listing the payee's coins (version 1)", `{"type":"accept","body":{"change":[{"value":5,"count":1}]}}`, "accept body"},
		{"proposal without keys", `{"type":"change","body":{"send":[500],"keys":[]}}`, "change keys: 0"},
		{"proposal that sends nothing", `{"type":"change","body":{"send":[],"keys":[{}]}}`, "change send: 0"},
		{"proposal of a negative coin", `{"type":"change","body":{"send":[-500],"keys":[{}]}}`, "coins sent are not positive"},
		{"proposal of a zero coin", `{"type":"change","body":{"send":[0,500],"keys":[{}]}}`, "coins sent are not positive"},
		{"proposal that overflows", `{"type":"change","body":{"send":[` + strings.Repeat("9007199254740991,", 1100) + `1],"keys":[{}]}}`, "representable total"},
		{"coin value beyond 2^53-1", `{"type":"change","body":{"send":[9007199254740992],"keys":[{}]}}`, "integer outside"},
		{"proposal naming the change (version 1)", `{"type":"change","body":{"send":[500],"change":[200],"keys":[{}]}}`, "change body"},
		{"agreed to no change", `{"type":"agreed","body":{"change":[]}}`, "agreed change: 0"},
		{"agreed to a negative coin", `{"type":"agreed","body":{"change":[200,-100]}}`, "not positive"},
		{"agreed change out of order", `{"type":"agreed","body":{"change":[50,200]}}`, "largest first"},
		// {"amount":-1,"amount":7} must not be read as 7, nor "Amount" as
		// amount: a lenient decoder lets two peers read one message two ways.
		{"member twice in the body", `{"type":"offer","body":{"amount":-1,"amount":7,"currency":"EUR","memo":""}}`, `duplicate object member name "amount"`},
		{"member of another case in the body", `{"type":"offer","body":{"Amount":7,"currency":"EUR","memo":""}}`, `unknown object member name "Amount"`},
		{"member twice in a coin", strings.Replace(coin, `"conditions":[]`, `"conditions":[],"conditions":[]`, 1), `duplicate object member name "conditions"`},
		{"member of another case in a coin", strings.Replace(coin, `"conditions":[]`, `"Conditions":[]`, 1), `unknown object member name "Conditions"`},
		{"no receipts", `{"type":"receipts","body":{"acks":[]}}`, "receipts: 0"},
		{"error without code", `{"type":"error","body":{"code":"","message":"?"}}`, "error without a code"},
		{"error message with an escape", `{"type":"error","body":{"code":"refused","message":"\u001b[2Kpaid"}}`, "error message: character U+001B at byte 0"},
		{"error code too long", `{"type":"error","body":{"code":"` + strings.Repeat("c", maxCode+1) + `","message":""}}`, "error code of 65 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeMessage([]byte(tt.msg))
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("decode = %v, want %v naming %q", err, ErrProtocol, tt.want)
			}
		})
	}
}

// A message this side would refuse is never sent.
func TestEncodeRefuses(t *testing.T) {
	for _, m := range []message{
		&keysRequestMsg{N: MaxBatch + 1},
		&coinsMsg{},
		&Offer{Amount: 1, Currency: "EURO", MaxHops: 1},
		&Hello{Issuers: make([]string, maxIssuers+1)},
	} {
		if _, err := encodeMessage(m); !errors.Is(err, ErrProtocol) {
			t.Errorf("encode %s %+v = %v, want %v", m.kind(), m, err, ErrProtocol)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func goldenFiles(f *testing.F, pattern string) [][]byte {
	paths, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no golden vectors %s: %v", pattern, err)
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzDecodeMessage: whatever decodes encodes again, and the encoding is a
// fixed point.
func FuzzDecodeMessage(f *testing.F) {
	for _, b := range goldenFiles(f, "messages/*.json") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMessage(data)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("decode error %v is not a %v", err, ErrProtocol)
			}
			return
		}
		enc, err := encodeMessage(m)
		if err != nil {
			t.Fatalf("decoded %s does not encode: %v", m.kind(), err)
		}
		m2, err := decodeMessage(enc)
		if err != nil {
			t.Fatalf("encoding of a decoded %s does not decode: %v", m.kind(), err)
		}
		if enc2 := must(encodeMessage(m2)); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// FuzzReadFrame feeds arbitrary bytes to the record reader, keyed as the
// golden frames are: it must fail cleanly, and whatever it accepts must be
// the one encoding of the message it returns.
func FuzzReadFrame(f *testing.F) {
	for _, b := range goldenFiles(f, "frames/*.bin") {
		f.Add(b)
	}
	// A message over several records, which no golden vector is.
	coins := goldenMessage(f, "coins").(*coinsMsg)
	big := &coinsMsg{Coins: slices.Repeat(coins.Coins, 50)}
	f.Add(seal(f, must((&codec{binary: true}).encode(big))))
	f.Fuzz(func(t *testing.T, wire []byte) {
		in := bytes.NewReader(wire)
		msg, err := recordReader(in).readRecords()
		if err != nil {
			return
		}
		if again := seal(t, msg); !bytes.Equal(again, wire[:len(wire)-in.Len()]) {
			t.Fatalf("a message of %d bytes was accepted in a second encoding", len(msg))
		}
		decodeMessage(msg)
	})
}

// TestOfferText: a memo is shown on the payee's screen and kept in its
// history, so it may not carry what would rewrite either.
func TestOfferText(t *testing.T) {
	for _, tt := range []struct {
		name, memo, want string
	}{
		{"plain", "2 coffees & a <croissant> ☕", ""},
		{"accents and scripts", "café, Grüße, 東京, مرحبا", ""},
		{"a real replacement character", "caf\uFFFD", ""},
		{"escape sequence", "ok\x1b[2K\rreceive 1000.00", "U+001B at byte 2"},
		{"newline", "line\nfalse line", "U+000A"},
		{"tab", "a\tb", "U+0009"},
		{"NUL", "a\x00", "U+0000"},
		{"DEL", "a\x7f", "U+007F"},
		{"C1 CSI", "a\u009b2K", "U+009B"},
		{"right-to-left override", "paid \u202e00.1", "U+202E at byte 5"},
		{"right-to-left isolate", "\u2067x", "U+2067"},
		{"line separator", "a\u2028b", "U+2028"},
		{"invalid UTF-8", "caf\xe9", "invalid UTF-8 at byte 3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, o := range []*Offer{
				{Amount: 1, Currency: "EUR", MaxHops: 1, Memo: tt.memo},
				{Amount: 1, Currency: "EUR", MaxHops: 1, Program: tt.memo},
			} {
				err := o.check()
				if tt.want == "" {
					if err != nil {
						t.Errorf("check(%+q) = %v, want nil", tt.memo, err)
					}
					continue
				}
				if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("check(%+q) = %v, want %v naming %q", tt.memo, err, ErrProtocol, tt.want)
				}
			}
		})
	}
}
