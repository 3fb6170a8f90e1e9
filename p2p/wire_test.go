package p2p

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otpcash/otpcash/otp"
)

// wire encodes v as version 4 does, for building messages by hand.
func wire(t testing.TB, v any) []byte {
	t.Helper()
	b, err := wireEnc.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wireMsg builds a message of type code with body v.
func wireMsg(t testing.TB, code uint, v any) []byte {
	return wire(t, wireEnvelope{Type: code, Body: wire(t, v)})
}

func mustOK(err error) {
	if err != nil {
		panic(err)
	}
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// TestDecodeWireRefuses: version 4's decoder refuses every message that
// is not exactly one its encoder writes, naming what is wrong.
func TestDecodeWireRefuses(t *testing.T) {
	all := goldenMessages(t)
	at := func(name string) golden {
		return all[slices.IndexFunc(all, func(g golden) bool { return g.name == name })]
	}
	enc := func(name string) []byte {
		g := at(name)
		send, _ := g.codecs()
		return must(send.encode(g.m))
	}
	// coins returns the golden coins message, changed by edit.
	coins := func(edit func(w *wireCoins)) []byte {
		var env wireEnvelope
		mustOK(wireDec.Unmarshal(enc("coins"), &env))
		var w wireCoins
		mustOK(wireDec.Unmarshal(env.Body, &w))
		edit(&w)
		return wireMsg(t, 6, w)
	}
	keys := func(edit func(w *wireKeys)) []byte {
		var env wireEnvelope
		mustOK(wireDec.Unmarshal(enc("keys"), &env))
		var w wireKeys
		mustOK(wireDec.Unmarshal(env.Body, &w))
		edit(&w)
		return wireMsg(t, 5, w)
	}
	// steps replaces the first step of the golden coins' program, the
	// paper's seven by their places, with the CBOR item first.
	steps := func(first string) []byte {
		program := []byte("\x87\x00\x01\x02\x03\x04\x05\x06")
		if !bytes.Contains(enc("coins"), program) {
			t.Fatal("the golden coins do not carry the paper's program by its places")
		}
		return bytes.Replace(enc("coins"), program, append(append([]byte("\x87"), first...), program[2:]...), 1)
	}
	manySigs := slices.Repeat([][]byte{make([]byte, 64)}, MaxBatch+1)
	tests := []struct {
		name string
		msg  []byte
		want string
	}{
		{"empty", nil, "EOF"},
		{"not an array", wire(t, map[int]int{1: 8}), "message envelope"},
		{"an envelope of three", wire(t, []any{8, map[int]int{}, 0}), "message envelope"},
		{"unknown type", wireMsg(t, 99, wireEmpty{}), "unknown message type 99"},
		{"type zero", wireMsg(t, 0, wireEmpty{}), "unknown message type 0"},
		{"trailing data", append(enc("done"), 0), "message envelope"},
		{"null body", unhex("82 08 f6"), "done body: not in the deterministic encoding"},
		{"indefinite length", unhex("82 08 bf ff"), "indefinite-length"},
		{"a tag", unhex("82 08 c1 a0"), "tag"},
		{"an integer not in its shortest form", unhex("82 04 a1 01 18 02"), "keysRequest body: not in the deterministic encoding"},
		{"keys out of order", unhex("82 09 a2 02 60 01 61 78"), "error body: not in the deterministic encoding"},
		{"key twice", unhex("82 02 a2 01 20 01 07"), "duplicate map key"},
		{"unknown field", wireMsg(t, 8, map[int]int{9: 1}), "unknown field"},
		{"field of the wrong type", wireMsg(t, 4, map[int]string{1: "2"}), "keysRequest body"},
		{"invalid UTF-8", unhex("82 09 a2 01 63 66 6f 6f 02 62 c3 28"), "UTF-8"},
		{"too many receipts", wireMsg(t, 7, wireAcks{Sigs: manySigs}), "exceeded max number of elements 10000"},
		{"a receipt signature of 63 bytes", wireMsg(t, 7, wireAcks{Sigs: [][]byte{make([]byte, 63)}}), "receipt signature of 63 bytes"},
		{"no keys asked for", wireMsg(t, 4, wireKeysRequest{0}), "keysRequest n: 0"},
		{"offer of nothing", wireMsg(t, 2, wireOffer{Currency: "EUR", MaxHops: 1}), "amount must be positive"},
		{"offer time not RFC 3339", wireMsg(t, 2, wireOffer{Amount: 1, Currency: "EUR", MaxHops: 1, RevocationsIssued: "yesterday"}), "offer body"},
		{"error message with an escape", wireMsg(t, 9, wireError{"refused", "\x1b[2Kpaid"}), "error message: character U+001B at byte 0"},
		{"no coins", coins(func(w *wireCoins) { w.Coins = wireSandboxes{Templates: []wireCoinTemplate{}, Coins: []wireSandbox{}} }), "coins: 0"},
		{"a coin template out of range", coins(func(w *wireCoins) { w.Coins.Coins[1].Template = 1 }), "coin 1: template 1 of 1"},
		{"a coin template unused", coins(func(w *wireCoins) { w.Coins.Templates = append(w.Coins.Templates, w.Coins.Templates[0]) }), "coin template 1 is not used"},
		{"a token of 31 bytes", coins(func(w *wireCoins) { w.Coins.Coins[0].Token = w.Coins.Coins[0].Token[1:] }), "coin 0: token of 31 bytes"},
		{"a holder of 33 bytes", coins(func(w *wireCoins) { w.Coins.Coins[0].Holder = append(w.Coins.Coins[0].Holder, 0) }), "coin 0: holder of 33 bytes"},
		{"no issuer signature", coins(func(w *wireCoins) { w.Coins.Coins[0].Sig = []byte{} }), "coin 0: issuer signature of 0 bytes"},
		{"a link to a key not handed out", coins(func(w *wireCoins) { w.Coins.Coins[1].Chain[0].Key = -3 }), "coin 1 link 0: key -3 of 0 in the message and 2 handed out"},
		{"a key handed out, sent whole", enc("coins-resend"), "key 0 is the one handed out in place 0, and goes by its place"},
		{"a link to a key not in the message", coins(func(w *wireCoins) { w.Coins.Coins[1].Chain[0].Key = 0 }), "coin 1 link 0: key 0 of 0 in the message"},
		{"a link signature of 65 bytes", coins(func(w *wireCoins) { w.Coins.Coins[0].Chain[0].Sig = make([]byte, 65) }), "coin 0 link 0: link signature of 65 bytes"},
		{"a step that is not JSON", steps("\x43abc"), "invalid character"},
		{"a step without arguments as JSON", steps("\x55\"checkIntegrityOfOTP\""), "coins body: not in the deterministic encoding"},
		{"a step of the table by its name", steps("\x73checkIntegrityOfOTP"), "coins body: not in the deterministic encoding"},
		{"a step beyond the table", steps("\x18\x63"), "name 99 of a table of 7"},
		{"an algorithm beyond the table", bytes.Replace(enc("coins"), []byte("\x87\x00\x01\x02\x03\x04\x05\x06\x00"), []byte("\x87\x00\x01\x02\x03\x04\x05\x06\x02"), 1), "name 2 of a table of 2"},
		{"an expiry not RFC 3339", bytes.Replace(enc("coins"), wire(t, expiry.Unix()), wire(t, "2099-01-01"), 1), "cannot parse"},
		{"an expiry in whole UTC seconds as text", bytes.Replace(enc("coins"), wire(t, expiry.Unix()), wire(t, "2099-01-01T00:00:00Z"), 1), "coins body: not in the deterministic encoding"},
		{"an expiry in a second spelling", bytes.Replace(enc("coins"), wire(t, expiry.Unix()), wire(t, "2099-01-01T00:00:00.5000Z"), 1), "not in its one spelling"},
		{"a key template out of range", keys(func(w *wireKeys) { w.Keys[1].Template = 2 }), "exchange key 1: template 2 of 1"},
		{"a key template unused", keys(func(w *wireKeys) { w.Templates = append(w.Templates, w.Templates[0]) }), "key template 1 is not used"},
		{"empty attributes", keys(func(w *wireKeys) { w.Templates[0].Attrs = map[string]string{} }), "key template 0: attributes that are empty, not absent"},
		{"a public key of 31 bytes", keys(func(w *wireKeys) { w.Keys[0].Pub = w.Keys[0].Pub[1:] }), "exchange key 0: public key of 31 bytes"},
		{"a certificate signature too long", keys(func(w *wireKeys) { w.Keys[0].Sig = make([]byte, maxSig+1) }), "exchange key 0: certificate signature of 1025 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &codec{binary: true, own: at("coins").handedOut}
			_, err := k.decode(tt.msg)
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("decode = %v, want %v naming %q", err, ErrProtocol, tt.want)
			}
		})
	}
}

// TestEncodeWireRefuses: a coin or key whose signed text the bytes on the
// wire could not rebuild is never sent.
func TestEncodeWireRefuses(t *testing.T) {
	p := newBank(t).pay(t, "refuse", 1)[0]
	for _, tt := range []struct {
		name string
		edit func(s *otp.Sandbox)
		want string
	}{
		{"a checksum field that is not the checksum", func(s *otp.Sandbox) { s.Coin.Checksum = s.Coin.Data.Token }, "is not the coin's checksum"},
		{"a token with padding", func(s *otp.Sandbox) { s.Coin.Data.Token += "=" }, "token"},
		{"a holder with stray bits", func(s *otp.Sandbox) { s.Coin.Data.Holder = s.Coin.Data.Holder[:42] + "B" }, "holder"},
		{"a link signature in standard base64", func(s *otp.Sandbox) {
			s.Chain[0].Sig = strings.NewReplacer("-", "+", "_", "/").Replace(s.Chain[0].Sig) + "+"
		}, "link signature"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := p.sandbox
			s.Chain = slices.Clone(s.Chain)
			tt.edit(&s)
			if tt.name != "a checksum field that is not the checksum" {
				sum := must(s.Coin.ComputeChecksum())
				s.Coin.Checksum = b64.EncodeToString(sum[:])
			}
			k := &codec{binary: true}
			if _, err := k.encode(&coinsMsg{Coins: []otp.Sandbox{s}}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("encode = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

// TestWireLinksByPlace: a link to a key the receiver handed out travels
// as its place, any other as the key, and both arrive as the key.
func TestWireLinksByPlace(t *testing.T) {
	p := newBank(t).pay(t, "place", 2)
	coins := &coinsMsg{Coins: []otp.Sandbox{p[0].sandbox, p[1].sandbox}}
	handed := []otp.ExchangeKey{p[1].key} // the payee handed out only the second coin's key
	send, recv := &codec{binary: true, theirs: handed}, &codec{binary: true, own: handed}
	b := must(send.encode(coins))
	var env wireEnvelope
	mustOK(wireDec.Unmarshal(b, &env))
	var w wireCoins
	mustOK(wireDec.Unmarshal(env.Body, &w))
	if got := []int{w.Coins.Coins[0].Chain[0].Key, w.Coins.Coins[1].Chain[0].Key}; !slices.Equal(got, []int{0, -1}) || len(w.Coins.Keys.Keys) != 1 {
		t.Fatalf("links name keys %v with %d keys in the message; want [0 -1] and 1", got, len(w.Coins.Keys.Keys))
	}
	m, err := recv.decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range m.(*coinsMsg).Coins {
		if !s.Chain[0].To.Equal(&p[i].key) {
			t.Errorf("coin %d arrived sealed to %+v, want %+v", i, s.Chain[0].To, p[i].key)
		}
	}
	// The same link, when the key handed out differs in any field, goes
	// as the key: a place names exactly one certificate.
	other := p[1].key
	other.KeyID += "x"
	send = &codec{binary: true, theirs: []otp.ExchangeKey{other}}
	mustOK(wireDec.Unmarshal(must(send.encode(coins)), &env))
	mustOK(wireDec.Unmarshal(env.Body, &w))
	if w.Coins.Coins[1].Chain[0].Key != 1 {
		t.Errorf("a link to a key that differs from the one handed out named place %d", w.Coins.Coins[1].Chain[0].Key)
	}
}

// TestWireStepsWithArgs: a step with arguments travels as its JSON, a
// step or algorithm not in the wire's tables as its name, and each arrives
// as it was, so the coin's checksum is the same.
func TestWireStepsWithArgs(t *testing.T) {
	s := newBank(t).pay(t, "args", 1)[0].sandbox
	s.Coin.CallMethod = slices.Clone(s.Coin.CallMethod)
	s.Coin.CallMethod[3] = otp.Step{Method: "setupConnection", Args: map[string]any{"n": 2.5, "who": "shop", "ok": true}}
	s.Coin.CallMethod = slices.Insert(s.Coin.CallMethod, 3, otp.Step{Method: "checkConditions"}) // not in the table
	s.Coin.Signature.Alg = "Ed448"                                                               // nor this
	sum := must(s.Coin.ComputeChecksum())
	s.Coin.Checksum = b64.EncodeToString(sum[:])
	m, err := (&codec{binary: true}).decode(must((&codec{binary: true}).encode(&coinsMsg{Coins: []otp.Sandbox{s}})))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.(*coinsMsg).Coins[0]; !reflect.DeepEqual(got, s) {
		t.Errorf("coin arrived as\n%+v\nnot\n%+v", got, s)
	}
}

// TestWireTimes: an expiry in whole seconds in UTC travels as an integer,
// any other as its RFC 3339 text, and each arrives as it was.
func TestWireTimes(t *testing.T) {
	for _, tt := range []struct {
		t    time.Time
		want string
	}{
		{expiry, hex.EncodeToString(wire(t, expiry.Unix()))},
		{expiry.Add(time.Millisecond), hex.EncodeToString(wire(t, "2099-01-01T00:00:00.001Z"))},
		{expiry.In(time.FixedZone("", 3600)), hex.EncodeToString(wire(t, "2099-01-01T01:00:00+01:00"))},
	} {
		b := wire(t, wireTime{tt.t})
		if hex.EncodeToString(b) != tt.want {
			t.Errorf("%v encodes as %x, want %s", tt.t, b, tt.want)
		}
		var got wireTime
		if err := unmarshalExact(b, &got); err != nil || !sameTime(got.Time, tt.t) || !got.Equal(tt.t) {
			t.Errorf("%v arrives as %v, %v", tt.t, got.Time, err)
		}
	}
}

// FuzzDecodeWire: whatever version 4's decoder accepts encodes again to
// the same bytes.
func FuzzDecodeWire(f *testing.F) {
	for _, b := range goldenFiles(f, "messages/*.cbor") {
		f.Add(b)
	}
	own := goldenMessages(f)[slices.IndexFunc(goldenMessages(f), func(g golden) bool { return g.name == "coins" })].handedOut
	f.Fuzz(func(t *testing.T, data []byte) {
		k := &codec{binary: true, own: own}
		m, err := k.decode(data)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("decode error %v is not a %v", err, ErrProtocol)
			}
			return
		}
		enc, err := (&codec{binary: true, theirs: own}).encode(m)
		if err != nil {
			t.Fatalf("decoded %s does not encode: %v", m.kind(), err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("%s accepted in a second encoding:\n%x\n%x", m.kind(), data, enc)
		}
	})
}

// TestWireCarriesEveryField fails when a field is added to a format the
// wire rebuilds field by field: version 4 would drop it, and the coin or
// certificate would arrive as another, its signatures no longer verifying.
// Carry the new field in wire.go (a new protocol version), then add it
// here.
func TestWireCarriesEveryField(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want []string
	}{
		{otp.Sandbox{}, []string{"Coin", "Chain"}},
		{otp.Coin{}, []string{"SchemaVersion", "Data", "CallMethod", "Checksum", "Signature"}},
		{otp.Data{}, []string{"Token", "Value", "Currency", "Issuer", "KeyID", "Holder", "Expires", "Program", "Conditions"}},
		{otp.Signature{}, []string{"Alg", "Value"}},
		{otp.Link{}, []string{"To", "Sig"}},
		{otp.ExchangeKey{}, []string{"Pub", "Issuer", "KeyID", "Expires", "Attrs", "Sig"}},
		{otp.Ack{}, []string{"Token", "Link", "Sig"}},
		{otp.Step{}, []string{"Method", "Args"}},
		{Offer{}, []string{"Amount", "Currency", "Memo", "Program", "RevocationsIssued", "MaxHops"}},
		{ChangeProposal{}, []string{"Send", "Keys"}},
		{Hello{}, []string{"Versions", "Issuers"}},
		{RemoteError{}, []string{"Code", "Message"}},
	} {
		typ := reflect.TypeOf(tt.v)
		var got []string
		for i := range typ.NumField() {
			got = append(got, typ.Field(i).Name)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s has fields %v; the wire carries %v", typ, got, tt.want)
		}
	}
}
