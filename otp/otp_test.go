package otp

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden test vectors in testdata/")

// fixture is a small, fully deterministic issuer with one coin moved once,
// so the golden vectors are byte-for-byte reproducible.
type fixture struct {
	cat      *Catalogue
	coinKey  *Signer
	blindKey *Signer // blind coin key of the general program
	exchKey  *Signer
	holder   ed25519.PrivateKey
	payee    ed25519.PrivateKey
	exchange ExchangeKey
	anon     ExchangeKey // blind-certified anonymous exchange key
	coin     *Coin
	blind    *Coin    // blind-signed coin
	sandbox  *Sandbox // coin transferred once, to exchange
	v        *Verifier
	now      time.Time
}

func seedKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("otpcash test vector: " + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{now: t0.Add(time.Hour)}
	f.coinKey = signerFor("test-bank", IssuerKey{Use: UseCoin, Value: 100, Currency: "EUR",
		NotBefore: t0, Expires: t0.AddDate(1, 0, 0), DepositUntil: t0.AddDate(1, 3, 0)}, seedKey("coin"))
	f.exchKey = signerFor("test-bank", IssuerKey{Use: UseExchange,
		NotBefore: t0, Expires: t0.AddDate(1, 0, 0), DepositUntil: t0.AddDate(1, 3, 0)}, seedKey("exchange"))
	f.blindKey = testBlindSigner(t, "blind-coin-key.pk8.txt", IssuerKey{Use: UseCoin, Value: 100, Currency: "EUR",
		NotBefore: t0, Expires: t0.AddDate(1, 0, 0), PayableUntil: t0.AddDate(2, 0, 0), DepositUntil: t0.AddDate(2, 3, 0)})
	anonKey := testBlindSigner(t, "blind-exchange-key.pk8.txt", IssuerKey{Use: UseExchange,
		NotBefore: t0, Expires: t0.AddDate(0, 3, 0), DepositUntil: t0.AddDate(0, 6, 0)})
	f.cat = &Catalogue{Issuer: "test-bank", Issued: t0, Keys: []IssuerKey{f.coinKey.Key, f.exchKey.Key, f.blindKey.Key, anonKey.Key}}
	if err := f.cat.Sign(seedKey("root")); err != nil {
		t.Fatal(err)
	}
	f.v = NewVerifier(f.cat)
	f.holder = seedKey("holder")
	f.payee = seedKey("payee")
	var serial Serial
	copy(serial[:], []byte("serial of the golden test coin!!"))
	var err error
	f.coin, err = f.coinKey.Issue(serial, f.holder.Public().(ed25519.PublicKey), t0.AddDate(1, 0, 0), GeneralProgram())
	if err != nil {
		t.Fatal(err)
	}
	f.blind = blindWithdraw(t, f.blindKey, f.holder.Public().(ed25519.PublicKey), WithdrawalRand([]byte("wallet secret"), "w-1", 0))
	f.exchange, err = f.exchKey.Certify(f.payee.Public().(ed25519.PublicKey), t0.AddDate(0, 3, 0), map[string]string{"category": "grocery"})
	if err != nil {
		t.Fatal(err)
	}
	bx, err := NewBlindExchangeKey("test-bank", &anonKey.Key, seedKey("anonymous payee").Public().(ed25519.PublicKey), WithdrawalRand([]byte("wallet secret"), "x-1", 0))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := anonKey.BlindSign(bx.Blinded())
	if err != nil {
		t.Fatal(err)
	}
	if f.anon, err = bx.Finish(sig); err != nil {
		t.Fatal(err)
	}
	f.sandbox = &Sandbox{Coin: *f.coin}
	if err := f.sandbox.Transfer(f.holder, f.exchange); err != nil {
		t.Fatal(err)
	}
	return f
}

func golden(t *testing.T, name string, v any) []byte {
	t.Helper()
	got, err := Canonical(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./otp -update to create it)", err)
	}
	if string(got)+"\n" != string(want) {
		t.Errorf("%s changed:\ngot  %s\nwant %s", name, got, want)
	}
	return want
}

func TestGoldenVectors(t *testing.T) {
	f := newFixture(t)
	ack, err := f.sandbox.Acknowledge(f.payee)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := f.sandbox.DepositProof(f.payee, "acct-1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file  string
		value any
		parse func([]byte) error
	}{
		{"catalogue.json", f.cat, func(b []byte) error {
			c, err := ParseCatalogue(b)
			if err != nil {
				return err
			}
			return c.Verify(f.cat.Root)
		}},
		{"catalogue-limits.json", limitedCatalogue(t, f), func(b []byte) error {
			c, err := ParseCatalogue(b)
			if err != nil {
				return err
			}
			if c.MaxOfflineValue != 50000 || c.MaxOffline() != 72*time.Hour || c.MaxHops != 4 {
				return fmt.Errorf("limits read back as %d, %s, %d hops", c.MaxOfflineValue, c.MaxOffline(), c.MaxHops)
			}
			return c.Verify(f.cat.Root)
		}},
		{"blind-exchange-key.json", f.anon, func(b []byte) error {
			k, err := ParseExchangeKey(b)
			if err != nil {
				return err
			}
			return f.v.VerifyExchangeKey(k, f.now)
		}},
		{"coin.json", f.coin, func(b []byte) error {
			c, err := parseCoin(b)
			if err != nil {
				return err
			}
			return f.v.VerifyCoin(c)
		}},
		{"blind-coin.json", f.blind, func(b []byte) error {
			c, err := parseCoin(b)
			if err != nil {
				return err
			}
			return f.v.VerifyCoin(c)
		}},
		{"exchange-key.json", f.exchange, func(b []byte) error {
			k, err := ParseExchangeKey(b)
			if err != nil {
				return err
			}
			return f.v.VerifyExchangeKey(k, f.now)
		}},
		{"sandbox.json", f.sandbox, func(b []byte) error {
			s, err := ParseSandbox(b)
			if err != nil {
				return err
			}
			if err := f.v.VerifySandbox(s); err != nil {
				return err
			}
			if err := s.VerifyAck(ack); err != nil {
				return err
			}
			return s.VerifyDepositProof(proof, "acct-1")
		}},
		{"ack.json", ack, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b := golden(t, tt.file, tt.value)
			if tt.parse != nil {
				if err := tt.parse(b[:len(b)-1]); err != nil {
					t.Fatalf("golden %s does not verify: %v", tt.file, err)
				}
			}
		})
	}
}

// TestFlipEveryByte flips each byte of each signed document in turn: every
// variant must be refused by parsing or verification.
func TestFlipEveryByte(t *testing.T) {
	f := newFixture(t)
	check := map[string]func([]byte) error{
		"catalogue": func(b []byte) error {
			c, err := ParseCatalogue(b)
			if err != nil {
				return err
			}
			return c.Verify(f.cat.Root)
		},
		"coin": func(b []byte) error {
			c, err := parseCoin(b)
			if err != nil {
				return err
			}
			return f.v.VerifyCoin(c)
		},
		"exchange key": func(b []byte) error {
			k, err := ParseExchangeKey(b)
			if err != nil {
				return err
			}
			return f.v.VerifyExchangeKey(k, f.now)
		},
		"sandbox": func(b []byte) error {
			s, err := ParseSandbox(b)
			if err != nil {
				return err
			}
			return f.v.VerifySandbox(s)
		},
	}
	// A coin with conditions: every byte of its program is signed too.
	voucherCoin, err := f.coinKey.Issue(NewSerial(), f.holder.Public().(ed25519.PublicKey), t0.AddDate(1, 0, 0), voucher())
	if err != nil {
		t.Fatal(err)
	}
	check["voucher coin"] = check["coin"]
	check["blind coin"] = check["coin"]
	check["blind-certified exchange key"] = check["exchange key"]
	docs := map[string]any{"catalogue": f.cat, "coin": f.coin, "voucher coin": voucherCoin, "blind coin": f.blind,
		"exchange key": f.exchange, "blind-certified exchange key": f.anon, "sandbox": f.sandbox}
	for name, doc := range docs {
		b, err := Canonical(doc)
		if err != nil {
			t.Fatal(err)
		}
		if err := check[name](b); err != nil {
			t.Fatalf("%s: untouched document refused: %v", name, err)
		}
		for i := range b {
			for _, mask := range []byte{0x01, 0x20} {
				m := append([]byte(nil), b...)
				m[i] ^= mask
				if err := check[name](m); err == nil {
					t.Errorf("%s: byte %d (%q) ^ %#x accepted", name, i, b[i], mask)
				}
			}
		}
	}
}

func TestVerifyRefuses(t *testing.T) {
	f := newFixture(t)
	rogue := signerFor("test-bank", f.exchKey.Key, seedKey("rogue"))
	rogue.Key.KeyID = f.exchKey.Key.KeyID
	forged, err := rogue.Certify(f.payee.Public().(ed25519.PublicKey), t0.AddDate(0, 3, 0), nil)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		mutate func(s *Sandbox)
		want   error
	}{
		{"issuer changed", func(s *Sandbox) { s.Coin.Data.Issuer = "nobody" }, ErrChecksum},
		{"value raised and rehashed", func(s *Sandbox) { s.Coin.Data.Value = 500; rehash(s) }, ErrKeyMismatch},
		{"issuer renamed and rehashed", func(s *Sandbox) { s.Coin.Data.Issuer = "nobody"; rehash(s) }, ErrUnknownIssuer},
		{"signature over another coin", func(s *Sandbox) { s.Coin.Data.Holder = EncodeKey(f.payee.Public().(ed25519.PublicKey)); rehash(s) }, ErrSignature},
		{"unknown algorithm", func(s *Sandbox) { s.Coin.Signature.Alg = "RSA" }, ErrAlgorithm},
		{"unknown step", func(s *Sandbox) { s.Coin.CallMethod[3].Method = "teleport"; rehash(s) }, ErrUnknownStep},
		{"reordered steps", func(s *Sandbox) {
			s.Coin.CallMethod[5], s.Coin.CallMethod[6] = s.Coin.CallMethod[6], s.Coin.CallMethod[5]
			rehash(s)
		}, ErrMisplacedStep},
		{"missing step", func(s *Sandbox) { s.Coin.CallMethod = s.Coin.CallMethod[:6]; rehash(s) }, ErrMissingStep},
		{"bad token", func(s *Sandbox) { s.Coin.Data.Token = "short"; rehash(s) }, ErrTokenFormat},
		{"link signed by the wrong key", func(s *Sandbox) {
			sum, _ := s.Coin.checksumBytes()
			head, canon, _ := linkPayload(sum, 0, &s.Chain[0].To)
			s.Chain[0].Sig = sign(f.payee, labelTransfer, head, canon)
		}, ErrChain},
		{"forged exchange key", func(s *Sandbox) {
			s.Chain = nil
			if err := s.Transfer(f.holder, forged); err != nil {
				t.Fatal(err)
			}
		}, ErrSignature},
		{"exchange key of an unknown issuer", func(s *Sandbox) {
			s.Chain = nil
			k := f.exchange
			k.Issuer = "other-bank"
			if err := s.Transfer(f.holder, k); err != nil {
				t.Fatal(err)
			}
		}, ErrUnknownIssuer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := cloneSandbox(t, f.sandbox)
			tt.mutate(s)
			err := f.v.VerifySandbox(s)
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifySandbox = %v; want %v", err, tt.want)
			}
		})
	}
}

func rehash(s *Sandbox) {
	sum, _ := s.Coin.ComputeChecksum()
	s.Coin.Checksum = b64.EncodeToString(sum[:])
}

func cloneSandbox(t testing.TB, s *Sandbox) *Sandbox {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var c Sandbox
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestExpiry(t *testing.T) {
	f := newFixture(t)
	if err := f.v.VerifyExchangeKey(&f.exchange, t0.AddDate(0, 4, 0)); !errors.Is(err, ErrExpired) {
		t.Errorf("expired exchange key: %v", err)
	}
	if err := CheckPayable(f.coin, t0.AddDate(1, 0, 0)); !errors.Is(err, ErrExpired) {
		t.Errorf("expired coin payable: %v", err)
	}
	if err := f.v.CheckDepositable(f.coin, t0.AddDate(1, 1, 0)); err != nil {
		t.Errorf("expired coin before its deposit deadline: %v", err)
	}
	if err := f.v.CheckDepositable(f.coin, t0.AddDate(1, 3, 0)); !errors.Is(err, ErrExpired) {
		t.Errorf("coin after its deposit deadline: %v", err)
	}
}

func TestCatalogueRefusesOtherRoot(t *testing.T) {
	f := newFixture(t)
	if err := f.cat.Verify(EncodeKey(seedKey("impostor").Public().(ed25519.PublicKey))); !errors.Is(err, ErrUnknownIssuer) {
		t.Fatalf("catalogue under another root: %v", err)
	}
}

func TestDivergence(t *testing.T) {
	f := newFixture(t)
	second, err := f.exchKey.Certify(seedKey("second payee").Public().(ed25519.PublicKey), t0.AddDate(0, 3, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	twice := &Sandbox{Coin: *f.coin}
	if err := twice.Transfer(f.holder, second); err != nil {
		t.Fatal(err)
	}
	key, i, ok := Divergence(f.sandbox, twice)
	if !ok || i != 0 || key != f.coin.Data.Holder {
		t.Fatalf("Divergence = %q, %d, %v; want the first holder at 0", key, i, ok)
	}
	// A holder that paid the coin on and also deposited it: the shorter chain is a prefix.
	onward := cloneSandbox(t, f.sandbox)
	if err := onward.Transfer(f.payee, second); err != nil {
		t.Fatal(err)
	}
	key, i, _ = Divergence(f.sandbox, onward)
	if i != 1 || key != f.exchange.Pub {
		t.Fatalf("Divergence(prefix) = %q, %d; want the payee's key at 1", key, i)
	}
}

func TestStepJSON(t *testing.T) {
	tests := []struct {
		in   string
		want Step
		err  bool
	}{
		{`"sendOTP"`, Step{Method: "sendOTP"}, false},
		{`{"method":"sendOTP","args":{"n":1}}`, Step{Method: "sendOTP", Args: map[string]any{"n": 1.0}}, false},
		{`{"method":"sendOTP"}`, Step{}, true},
		{`{"method":"sendOTP","args":{}}`, Step{}, true},
		{`{"method":"sendOTP","extra":1}`, Step{}, true},
		{`3`, Step{}, true},
	}
	for _, tt := range tests {
		var s Step
		err := json.Unmarshal([]byte(tt.in), &s)
		if (err != nil) != tt.err {
			t.Errorf("%s: err = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if !tt.err && (s.Method != tt.want.Method || len(s.Args) != len(tt.want.Args)) {
			t.Errorf("%s: got %+v, want %+v", tt.in, s, tt.want)
		}
	}
}

func TestValidateProgram(t *testing.T) {
	names := func(p []Step) string {
		var s []string
		for _, st := range p {
			s = append(s, st.Method)
		}
		return strings.Join(s, ",")
	}
	tests := []struct {
		steps string
		want  error
		names string // the step the error must name
	}{
		{names(DefaultProgram()), nil, ""},
		{"checkIntegrityOfOTP,checkTokenFormat,checkCallMethod,setupConnection,buildSandbox,sendOTP,destroyOTP,selfDestructTwice", ErrUnknownStep, "selfDestructTwice"},
		{"checkTokenFormat,checkIntegrityOfOTP,checkCallMethod,setupConnection,buildSandbox,sendOTP,destroyOTP", ErrMisplacedStep, "checkIntegrityOfOTP"},
		{"checkIntegrityOfOTP,checkTokenFormat,checkCallMethod,setupConnection,buildSandbox,sendOTP", ErrMissingStep, "destroyOTP"},
		{"checkIntegrityOfOTP,checkTokenFormat,checkCallMethod,setupConnection,setupConnection,buildSandbox,sendOTP,destroyOTP", ErrMisplacedStep, "setupConnection"},
		{"", ErrMissingStep, "checkIntegrityOfOTP"},
	}
	for _, tt := range tests {
		var p []Step
		for _, n := range strings.Split(tt.steps, ",") {
			if n != "" {
				p = append(p, Step{Method: n})
			}
		}
		err := ValidateProgram(p)
		if !errors.Is(err, tt.want) || (err != nil && !strings.Contains(err.Error(), tt.names)) {
			t.Errorf("ValidateProgram(%s) = %v; want %v naming %q", tt.steps, err, tt.want, tt.names)
		}
	}
}

// fakePeer and fakePurse record what the executor asked of them.
type fakePeer struct {
	keys  []ExchangeKey
	privs []ed25519.PrivateKey
	calls []string
}

func (p *fakePeer) ExchangeKeys(_ context.Context, n int) ([]ExchangeKey, error) {
	p.calls = append(p.calls, StepSetupConnection)
	return p.keys[:n], nil
}

func (p *fakePeer) Send(_ context.Context, sealed []Sandbox) ([]Ack, error) {
	p.calls = append(p.calls, StepSendOTP)
	acks := make([]Ack, len(sealed))
	for i := range sealed {
		a, err := sealed[i].Acknowledge(p.privs[i])
		if err != nil {
			return nil, err
		}
		acks[i] = a
	}
	return acks, nil
}

type fakePurse struct {
	holder ed25519.PrivateKey
	peer   *fakePeer
	spent  int
}

func (p *fakePurse) Seal(_ context.Context, coins []Sandbox, to []ExchangeKey) ([]Sandbox, error) {
	p.peer.calls = append(p.peer.calls, StepBuildSandbox)
	out := make([]Sandbox, len(coins))
	for i := range coins {
		out[i] = coins[i]
		if err := out[i].Transfer(p.holder, to[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p *fakePurse) Destroy(_ context.Context, sealed []Sandbox, _ []Ack) error {
	p.peer.calls = append(p.peer.calls, StepDestroyOTP)
	p.spent += len(sealed)
	return nil
}

func TestExecute(t *testing.T) {
	f := newFixture(t)
	peer := &fakePeer{keys: []ExchangeKey{f.exchange}, privs: []ed25519.PrivateKey{f.payee}}
	purse := &fakePurse{holder: f.holder, peer: peer}
	r := &Run{Verifier: f.v, Now: f.now, Peer: peer, Purse: purse, Coins: []Sandbox{{Coin: *f.coin}}}
	if err := Execute(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(peer.calls, ","); got != "setupConnection,buildSandbox,sendOTP,destroyOTP" {
		t.Errorf("side effects in order %s", got)
	}
	if purse.spent != 1 || len(r.Acks) != 1 {
		t.Errorf("spent %d coins with %d acks; want 1 and 1", purse.spent, len(r.Acks))
	}
}

// TestExecuteStopsBeforeSideEffects runs programs that must fail: none of
// them may reach the peer or the vault.
func TestExecuteStopsBeforeSideEffects(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		mutate func(c *Coin)
		now    time.Time
		want   error
	}{
		{"unknown step", func(c *Coin) { c.CallMethod[4].Method = "copyOTP"; rehashCoin(c) }, f.now, ErrUnknownStep},
		{"misplaced step", func(c *Coin) { c.CallMethod[3], c.CallMethod[4] = c.CallMethod[4], c.CallMethod[3]; rehashCoin(c) }, f.now, ErrMisplacedStep},
		{"flipped checksum", func(c *Coin) { c.Checksum = "A" + c.Checksum[1:] }, f.now, ErrChecksum},
		{"expired coin", func(c *Coin) {}, t0.AddDate(2, 0, 0), ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			coin := cloneSandbox(t, &Sandbox{Coin: *f.coin}).Coin
			tt.mutate(&coin)
			peer := &fakePeer{keys: []ExchangeKey{f.exchange}, privs: []ed25519.PrivateKey{f.payee}}
			r := &Run{Verifier: f.v, Now: tt.now, Peer: peer, Purse: &fakePurse{holder: f.holder, peer: peer}, Coins: []Sandbox{{Coin: coin}}}
			err := Execute(context.Background(), r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Execute = %v; want %v", err, tt.want)
			}
			if len(peer.calls) != 0 {
				t.Fatalf("side effects ran before the refusal: %v", peer.calls)
			}
		})
	}
}

func rehashCoin(c *Coin) {
	sum, _ := c.ComputeChecksum()
	c.Checksum = b64.EncodeToString(sum[:])
}

func FuzzParseSandbox(f *testing.F) {
	fx := newFixture(f)
	for _, name := range []string{"sandbox.json", "coin.json"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSandbox(b)
		if err != nil {
			return
		}
		if fx.v.VerifySandbox(s) == nil {
			// Anything that verifies must be the one genuine coin.
			if s.Coin.Checksum != fx.coin.Checksum {
				t.Fatalf("a different coin verified: %s", s.Coin.Data.Token)
			}
		}
	})
}

func FuzzParseCoin(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "coin.json")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseCoin(b)
		if err != nil {
			return
		}
		if _, err := Canonical(c); err != nil {
			t.Fatalf("parsed coin does not re-encode: %v", err)
		}
	})
}

func FuzzParseExchangeKey(f *testing.F) {
	fx := newFixture(f)
	if b, err := os.ReadFile(filepath.Join("testdata", "exchange-key.json")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseExchangeKey(b)
		if err != nil {
			return
		}
		if fx.v.VerifyExchangeKey(k, fx.now) == nil && k.Sig != fx.exchange.Sig {
			t.Fatalf("a different exchange key verified: %+v", k)
		}
	})
}

func FuzzParseCatalogue(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "catalogue.json")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCatalogue(b)
		if err != nil {
			return
		}
		_ = c.Verify("")
	})
}

// Every coin of a batch must carry the program the batch runs, step for
// step and argument for argument.
func TestCheckCallMethod(t *testing.T) {
	f := newFixture(t)
	with := func(mutate func(c *Coin)) Sandbox {
		s := cloneSandbox(t, &Sandbox{Coin: *f.coin})
		mutate(&s.Coin)
		return *s
	}
	same := with(func(*Coin) {})
	tests := []struct {
		name  string
		other Sandbox
		ok    bool
	}{
		{"same program", same, true},
		{"a step renamed", with(func(c *Coin) { c.CallMethod[2].Method = StepCheckConditions }), false},
		{"a step more", with(func(c *Coin) { c.CallMethod = append(c.CallMethod, Step{Method: StepDestroyOTP}) }), false},
		{"an argument more", with(func(c *Coin) { c.CallMethod[0].Args = map[string]any{"n": 1.0} }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Run{Coins: []Sandbox{same, same, tt.other}}
			err := checkCallMethod(context.Background(), r)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrMisplacedStep)) {
				t.Fatalf("checkCallMethod = %v; want ok %v", err, tt.ok)
			}
		})
	}
}

// limitedCatalogue is the fixture's catalogue with offline limits: 500.00
// held at most, 72 hours without the bank.
func limitedCatalogue(t *testing.T, f *fixture) *Catalogue {
	t.Helper()
	c := *f.cat
	c.MaxOfflineValue, c.MaxOfflineSeconds, c.MaxHops = 50000, 72*3600, 4
	if err := c.Sign(seedKey("root")); err != nil {
		t.Fatal(err)
	}
	return &c
}

// TestCatalogueLimits: the limits are signed (a changed limit breaks the
// signature) and limits a wallet would misread are refused.
func TestCatalogueLimits(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		change func(*Catalogue)
		sign   bool
		want   error
	}{
		{"value raised after signing", func(c *Catalogue) { c.MaxOfflineValue++ }, false, ErrSignature},
		{"value dropped after signing", func(c *Catalogue) { c.MaxOfflineValue = 0 }, false, ErrSignature},
		{"duration raised after signing", func(c *Catalogue) { c.MaxOfflineSeconds *= 2 }, false, ErrSignature},
		{"hops raised after signing", func(c *Catalogue) { c.MaxHops++ }, false, ErrSignature},
		{"hops dropped after signing", func(c *Catalogue) { c.MaxHops = 0 }, false, ErrSignature},
		{"negative value", func(c *Catalogue) { c.MaxOfflineValue = -1 }, true, ErrLimits},
		{"negative hops", func(c *Catalogue) { c.MaxHops = -1 }, true, ErrLimits},
		{"negative duration", func(c *Catalogue) { c.MaxOfflineSeconds = -1 }, true, ErrLimits},
		{"duration overflows", func(c *Catalogue) { c.MaxOfflineSeconds = 1<<53 - 1 }, true, ErrLimits},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := limitedCatalogue(t, f)
			tt.change(c)
			if tt.sign {
				if err := c.Sign(seedKey("root")); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Verify(f.cat.Root); !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}
