package wallet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/internal/paycode"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/vault"
)

// requestWorld: a bank of 1.00 and 5.00 coins on clock; Alice holds 5.00
// and three 1.00; Erin and Frank hold nothing and have exchange keys.
func requestWorld(t *testing.T, clock *manualClock) (alice, erin, frank *holder) {
	t.Helper()
	b := newClockedBank(t, denom.Set{100, 500}, clock.Now)
	alice, erin, frank = b.newHolder(t, 800), b.newHolder(t, 0), b.newHolder(t, 0)
	for _, v := range []int64{500, 200, 100} {
		if _, err := alice.w.Withdraw(context.Background(), alice.acct(), v); err != nil {
			t.Fatal(err)
		}
	}
	if got := coinsHeld(t, alice); !maps.Equal(got, denom.Counts{500: 1, 100: 3}) {
		t.Fatalf("Alice holds %s, want 1x5.00 3x1.00", got)
	}
	return alice, erin, frank
}

func newClock() *manualClock { return &manualClock{t: time.Now().UTC().Truncate(time.Second)} }

func mustRequest(t *testing.T, h *holder, value int64) PaymentRequest {
	t.Helper()
	r, err := h.w.Request(context.Background(), value, "coffee", 15*time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustPay(t *testing.T, h *holder, req string) TokenPayment {
	t.Helper()
	tp, err := h.w.PayRequest(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// unchanged fails t if h's state differs from before.
func unchanged(t *testing.T, h *holder, before walletState, what string) {
	t.Helper()
	if after := stateOf(t, h); !reflect.DeepEqual(before, after) {
		t.Fatalf("%s changed the wallet:\nbefore %+v\nafter  %+v", what, before, after)
	}
}

// TestTwoPassPayment: Erin requests 6.00, Alice pays with a token, Erin
// imports it and hands back a receipt, Alice imports the receipt; no
// connection between them. Every import twice changes nothing.
func TestTwoPassPayment(t *testing.T) {
	ctx := context.Background()
	alice, erin, _ := requestWorld(t, newClock())
	req := mustRequest(t, erin, 600)
	if !strings.HasPrefix(req.Text, "OTPCASHREQ1") || len(req.Keys) < 2 {
		t.Fatalf("request %q with %d keys", req.Text[:16], len(req.Keys))
	}
	tp := mustPay(t, alice, "otpcash:"+req.Text) // the URI, in lower case
	if tp.Coins != 2 || tp.Again {
		t.Fatalf("token of %d coins, again %v; want 2 new", tp.Coins, tp.Again)
	}
	if b := alice.balance(t); b.Held != 200 || b.PendingOut != 600 {
		t.Fatalf("Alice after the token: %+v", b)
	}
	// The token was lost: paying again makes the same token from the coins
	// already sealed, and seals nothing more.
	if again := mustPay(t, alice, req.Text); !again.Again || again.Token != tp.Token {
		t.Fatalf("paying again: again %v, same token %v", again.Again, again.Token == tp.Token)
	}

	got, err := erin.w.ReceiveToken(ctx, tp.Token)
	if err != nil || got.Amount != 600 || got.Coins != 2 || got.Again {
		t.Fatalf("receive token: %+v, %v", got, err)
	}
	if b := erin.balance(t); b.Held != 600 {
		t.Fatalf("Erin holds %d, want 6.00", b.Held)
	}
	// Erin stopped before the receipt left: importing the same token again
	// gives the same receipt and changes nothing.
	before := stateOf(t, erin)
	again, err := erin.w.ReceiveToken(ctx, tp.Token)
	if err != nil || !again.Again || again.Receipt != got.Receipt {
		t.Fatalf("token again: %+v, %v; want the same receipt", again, err)
	}
	unchanged(t, erin, before, "the token imported twice")
	if n := len(events(t, erin, "receive-token")); n != 1 {
		t.Fatalf("%d receive-token events, want 1", n)
	}

	imp, err := alice.w.ImportReceipt(ctx, got.Receipt)
	if err != nil || imp.Amount != 600 || imp.Again {
		t.Fatalf("import receipt: %+v, %v", imp, err)
	}
	if b := alice.balance(t); b.Held != 200 || b.PendingOut != 0 {
		t.Fatalf("Alice after the receipt: %+v", b)
	}
	before = stateOf(t, alice)
	if imp, err := alice.w.ImportReceipt(ctx, got.Receipt); err != nil || !imp.Again {
		t.Fatalf("receipt again: %+v, %v", imp, err)
	}
	// Another receipt for the settled request (a forged signature) is not
	// taken for the one imported.
	forged, _ := paycode.ParseReceipt(got.Receipt)
	forged.Acks[0].Sig = flipB64(forged.Acks[0].Sig)
	text, _ := paycode.EncodeReceipt(forged)
	if imp, err := alice.w.ImportReceipt(ctx, text); !errors.Is(err, ErrUnknownRequest) {
		t.Fatalf("another receipt for a settled request: %+v, %v; want ErrUnknownRequest", imp, err)
	}
	if _, err := alice.w.PayRequest(ctx, req.Text); !errors.Is(err, ErrPaid) {
		t.Fatalf("paying a paid request: %v, want ErrPaid", err)
	}
	unchanged(t, alice, before, "the receipt imported twice and the request paid again")
}

// TestTokenRefused: tokens a payee must refuse, each changing nothing.
func TestTokenRefused(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	alice, erin, frank := requestWorld(t, clock)

	// Alice seals coins to keys of Erin's request r herself, as a payer
	// that lies can, and makes a token of them for request id.
	forge := func(r PaymentRequest, id string, values ...int64) string {
		t.Helper()
		held, err := alice.w.v.Payable(ctx, "EUR", otp.GeneralProgramName)
		if err != nil {
			t.Fatal(err)
		}
		want := denom.Counts{}
		for _, v := range values {
			want[v]++
		}
		coins := pick(held, want)
		sealed, err := alice.w.v.Purse("forged").Seal(ctx, coins, r.Keys[:len(coins)])
		if err != nil {
			t.Fatal(err)
		}
		tok := paycode.Token{Coins: sealed}
		copy(tok.Request[:], mustHex(t, id))
		text, err := paycode.EncodeToken(&tok)
		if err != nil {
			t.Fatal(err)
		}
		return text
	}

	six := mustRequest(t, erin, 600)
	other := mustRequest(t, erin, 600)
	// The token for six is Frank's to refuse: he never made the request.
	tok := mustPay(t, alice, six.Text).Token
	before := stateOf(t, frank)
	if _, err := frank.w.ReceiveToken(ctx, tok); !errors.Is(err, ErrUnknownRequest) {
		t.Fatalf("token for another payee: %v, want ErrUnknownRequest", err)
	}
	unchanged(t, frank, before, "a token for another payee")

	// The same coins presented as paying request other: the keys were
	// not handed out for it.
	relabelled, err := paycode.ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	copy(relabelled.Request[:], mustHex(t, other.ID))
	text, err := paycode.EncodeToken(relabelled)
	if err != nil {
		t.Fatal(err)
	}
	before = stateOf(t, erin)
	if _, err := erin.w.ReceiveToken(ctx, text); !errors.Is(err, ErrNotRequested) {
		t.Fatalf("token on keys of another request: %v, want ErrNotRequested", err)
	}
	unchanged(t, erin, before, "a token on keys of another request")

	// A 5.00 coin on a key of a 6.00 request.
	short := mustRequest(t, erin, 600)
	before = stateOf(t, erin)
	if _, err := erin.w.ReceiveToken(ctx, forge(short, short.ID, 100)); !errors.Is(err, ErrNotAsRequested) {
		t.Fatalf("token short of the request: %v, want ErrNotAsRequested", err)
	}
	unchanged(t, erin, before, "a token short of the request")

	// Erin takes the real token; the keys are used, and another token for
	// the paid request (Alice's last 1.00 coin on its third key) is
	// refused.
	if _, err := erin.w.ReceiveToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	held, _ := alice.w.v.Payable(ctx, "EUR", otp.GeneralProgramName)
	sealed, err := alice.w.v.Purse("forged").Seal(ctx, held[:1], six.Keys[2:3])
	if err != nil {
		t.Fatal(err)
	}
	late := paycode.Token{Coins: sealed}
	copy(late.Request[:], mustHex(t, six.ID))
	text, _ = paycode.EncodeToken(&late)
	before = stateOf(t, erin)
	if _, err := erin.w.ReceiveToken(ctx, text); !errors.Is(err, vault.ErrState) {
		t.Fatalf("another token for a paid request: %v, want ErrState", err)
	}
	unchanged(t, erin, before, "another token for a paid request")
}

// TestRequestKeysOnlyInTokens: a coin sealed to a key promised to a
// request is refused in a live session: only the request's token pays it.
func TestRequestKeysOnlyInTokens(t *testing.T) {
	ctx := context.Background()
	alice, erin, _ := requestWorld(t, newClock())
	req := mustRequest(t, erin, 100)
	held, _ := alice.w.v.Payable(ctx, "EUR", otp.GeneralProgramName)
	sealed, err := alice.w.v.Purse("erin").Seal(ctx, held[:1], req.Keys[:1])
	if err != nil {
		t.Fatal(err)
	}
	before := stateOf(t, erin)
	if _, _, err := erin.w.v.Receive(ctx, "alice", sealed); !errors.Is(err, ErrNotRequested) {
		t.Fatalf("a request's key in a live session: %v, want ErrNotRequested", err)
	}
	unchanged(t, erin, before, "a live coin on a request's key")
}

// TestTokenExpired: a token that arrives after its request expired is
// refused, and the payer's coins stay pending-out (to reclaim); a payer
// refuses to pay an expired request.
func TestTokenExpired(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	alice, erin, _ := requestWorld(t, clock)
	req, err := erin.w.Request(ctx, 100, "", time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	tok := mustPay(t, alice, req.Text).Token
	clock.Advance(2 * time.Minute)
	before := stateOf(t, erin)
	if _, err := erin.w.ReceiveToken(ctx, tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("token for an expired request: %v, want ErrExpired", err)
	}
	unchanged(t, erin, before, "a token for an expired request")
	if b := alice.balance(t); b.PendingOut != 100 {
		t.Fatalf("Alice's coin: %+v, want it pending-out", b)
	}
	late, _ := erin.w.Request(ctx, 100, "", time.Minute, 0)
	clock.Advance(2 * time.Minute)
	before = stateOf(t, alice)
	if _, err := alice.w.PayRequest(ctx, late.Text); !errors.Is(err, ErrExpired) {
		t.Fatalf("paying an expired request: %v, want ErrExpired", err)
	}
	unchanged(t, alice, before, "paying an expired request")
}

// TestRequestUnverifiableKeys: a request whose key certificate does not
// verify (a forged signature, a certificate of another bank, a changed
// expiry, a key twice) is refused by the payer's executor before anything
// is sealed, even when the request's own signature is good: the payee
// lies. A request changed after it was signed is refused for that.
func TestRequestUnverifiableKeys(t *testing.T) {
	ctx := context.Background()
	alice, erin, _ := requestWorld(t, newClock())
	other, _, err := otp.GenerateSigner("other.bank", otp.IssuerKey{Use: otp.UseExchange,
		NotBefore: time.Now().Add(-time.Hour), Expires: time.Now().Add(time.Hour), DepositUntil: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// The lying payee's own keys, certified by the bank.
	liar := newForger(t, alice, 2, nil)
	for _, tc := range []struct {
		name   string
		edit   func(r *paycode.Request)
		resign bool
		want   error // nil: any refusal but a bad request signature
	}{
		{"forged certificate", func(r *paycode.Request) { r.Keys[0].Sig = flipB64(r.Keys[0].Sig) }, true, nil},
		{"key of another bank", func(r *paycode.Request) { r.Keys[0], _ = other.Certify(liar.pub(0), time.Now().Add(time.Hour), nil) }, true, nil},
		{"changed expiry", func(r *paycode.Request) { r.Keys[0].Expires = r.Keys[0].Expires.Add(time.Hour) }, true, nil},
		{"the same key twice", func(r *paycode.Request) { r.Keys[1] = r.Keys[0] }, true, nil},
		{"amount changed after signing", func(r *paycode.Request) { r.Amount = 100 }, false, ErrRequestSignature},
		{"key swapped after signing", func(r *paycode.Request) { r.Keys[1] = r.Keys[0] }, false, ErrRequestSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := erin.w.Request(ctx, 600, "", time.Minute, 3)
			if err != nil {
				t.Fatal(err)
			}
			r, err := paycode.ParseRequest(req.Text)
			if err != nil {
				t.Fatal(err)
			}
			if tc.resign {
				r.Keys = append(slices.Clone(liar.keys), r.Keys[2:]...)
			}
			tc.edit(r)
			var text string
			if tc.resign {
				text = sign(t, r, liar.privs[0])
			} else if text, err = paycode.EncodeRequest(r); err != nil {
				t.Fatal(err)
			}
			before := stateOf(t, alice)
			_, err = alice.w.PayRequest(ctx, text)
			if err == nil || (tc.want == nil && errors.Is(err, ErrRequestSignature)) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("paid or refused for another reason: %v", err)
			}
			unchanged(t, alice, before, "a request with a bad key")
		})
	}
}

// TestReceiptRefused: a receipt for coins this wallet never paid, and a
// forged one, change nothing; the coins stay pending-out.
func TestReceiptRefused(t *testing.T) {
	ctx := context.Background()
	alice, erin, frank := requestWorld(t, newClock())
	req := mustRequest(t, erin, 100)
	tok := mustPay(t, alice, req.Text).Token
	got, err := erin.w.ReceiveToken(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	before := stateOf(t, frank)
	if _, err := frank.w.ImportReceipt(ctx, got.Receipt); !errors.Is(err, ErrUnknownRequest) {
		t.Fatalf("receipt for coins never paid: %v, want ErrUnknownRequest", err)
	}
	unchanged(t, frank, before, "a receipt for coins never paid")

	r, _ := paycode.ParseReceipt(got.Receipt)
	r.Acks[0].Sig = flipB64(r.Acks[0].Sig)
	forged, _ := paycode.EncodeReceipt(r)
	before = stateOf(t, alice)
	if _, err := alice.w.ImportReceipt(ctx, forged); err == nil {
		t.Fatal("a forged receipt was imported")
	}
	unchanged(t, alice, before, "a forged receipt")
	if b := alice.balance(t); b.PendingOut != 100 {
		t.Fatalf("Alice: %+v, want the coin pending-out", b)
	}
}

// TestPayRequestNotExact: a request the payer's coins cannot make exactly
// is refused before anything is sealed, saying what to do.
func TestPayRequestNotExact(t *testing.T) {
	ctx := context.Background()
	alice, erin, _ := requestWorld(t, newClock())
	req := mustRequest(t, erin, 400) // Alice has 5.00 and three 1.00
	before := stateOf(t, alice)
	_, err := alice.w.PayRequest(ctx, req.Text)
	if !errors.Is(err, ErrInsufficient) || !strings.Contains(err.Error(), "wallet redenominate") {
		t.Fatalf("pay 4.00 from 5.00 and three 1.00: %v", err)
	}
	unchanged(t, alice, before, "an unpayable request")
}

// damaged calls try with every byte of a code's CBOR changed, the
// checksum made to match, and with every character of its text changed,
// the checksum left as it is; each must fail.
func damaged(t *testing.T, prefix, code string, try func(string) error) {
	t.Helper()
	b32 := base32.StdEncoding.WithPadding(base32.NoPadding)
	raw, err := b32.DecodeString(code[len(prefix):])
	if err != nil {
		t.Fatal(err)
	}
	body := raw[:len(raw)-4]
	for i := range body {
		b := append([]byte(nil), body...)
		b[i] ^= 0x01
		h := sha256.Sum256(append([]byte(prefix), b...))
		if err := try(prefix + b32.EncodeToString(append(b, h[:4]...))); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	for i := len(prefix); i < len(code); i++ {
		c := byte('A')
		if code[i] == 'A' {
			c = 'B'
		}
		if err := try(code[:i] + string(c) + code[i+1:]); err == nil {
			t.Fatalf("character %d changed: accepted", i)
		}
	}
}

// TestTokenFlipEveryByte: every damaged copy of a token is refused and
// stores nothing; the token itself is then taken.
func TestTokenFlipEveryByte(t *testing.T) {
	ctx := context.Background()
	alice, erin, _ := requestWorld(t, newClock())
	req := mustRequest(t, erin, 100)
	tok := mustPay(t, alice, req.Text).Token
	before := stateOf(t, erin)
	damaged(t, "OTPCASHTOK1", tok, func(s string) error { _, err := erin.w.ReceiveToken(ctx, s); return err })
	unchanged(t, erin, before, "damaged tokens")
	if _, err := erin.w.ReceiveToken(ctx, tok); err != nil {
		t.Fatalf("the token itself, after its damaged copies: %v", err)
	}
}

// TestRequestFlipEveryByte: every damaged copy of a request is refused
// before anything is sealed (its checksum, its encoding, or its payee's
// signature); the request itself is then paid.
func TestRequestFlipEveryByte(t *testing.T) {
	ctx := context.Background()
	alice, erin, _ := requestWorld(t, newClock())
	req, err := erin.w.Request(ctx, 100, "tea", time.Minute, 2)
	if err != nil {
		t.Fatal(err)
	}
	before := stateOf(t, alice)
	damaged(t, "OTPCASHREQ1", req.Text, func(s string) error { _, err := alice.w.PayRequest(ctx, s); return err })
	unchanged(t, alice, before, "damaged requests")
	if _, err := alice.w.PayRequest(ctx, req.Text); err != nil {
		t.Fatalf("the request itself, after its damaged copies: %v", err)
	}
}

// TestReceiptFlipEveryByte: every damaged copy of a receipt is refused
// and leaves the payer's coins pending-out; the receipt itself is then
// taken.
func TestReceiptFlipEveryByte(t *testing.T) {
	ctx := context.Background()
	alice, erin, _ := requestWorld(t, newClock())
	req := mustRequest(t, erin, 100)
	got, err := erin.w.ReceiveToken(ctx, mustPay(t, alice, req.Text).Token)
	if err != nil {
		t.Fatal(err)
	}
	before := stateOf(t, alice)
	damaged(t, "OTPCASHRCP1", got.Receipt, func(s string) error { _, err := alice.w.ImportReceipt(ctx, s); return err })
	unchanged(t, alice, before, "damaged receipts")
	if _, err := alice.w.ImportReceipt(ctx, got.Receipt); err != nil {
		t.Fatalf("the receipt itself, after its damaged copies: %v", err)
	}
}

func mustHex(t *testing.T, id string) []byte {
	t.Helper()
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 16 {
		t.Fatalf("request id %q: %v", id, err)
	}
	return b
}

// TestSealedTo: coins found pending under a request's id are that
// request's only if they went to its keys; another request can carry the
// same id (the id is the payee's word).
func TestSealedTo(t *testing.T) {
	alice, erin, _ := requestWorld(t, newClock())
	mine := mustRequest(t, erin, 100)
	other := mustRequest(t, erin, 100)
	tp := mustPay(t, alice, mine.Text)
	tok, err := paycode.ParseToken(tp.Token)
	if err != nil {
		t.Fatal(err)
	}
	if err := sealedTo(tok.Coins, mine.Keys); err != nil {
		t.Fatalf("coins sealed to the request's keys: %v", err)
	}
	if err := sealedTo(tok.Coins, other.Keys); !errors.Is(err, ErrPaid) {
		t.Fatalf("coins sealed to another request's keys: %v; want ErrPaid", err)
	}
}

// forger is a payee the test plays: it holds the private halves of
// exchange keys the bank certified (for a merchant account of attrs, when
// attrs is set), so it signs any request it likes.
type forger struct {
	privs []ed25519.PrivateKey
	keys  []otp.ExchangeKey
}

// newForger has n keys certified at the bank of h's wallet.
func newForger(t *testing.T, h *holder, n int, attrs map[string]string) *forger {
	t.Helper()
	ctx := context.Background()
	f := &forger{privs: make([]ed25519.PrivateKey, n)}
	pubs := make([]ed25519.PublicKey, n)
	for i := range f.privs {
		pubs[i], f.privs[i], _ = ed25519.GenerateKey(nil)
	}
	var err error
	if attrs == nil {
		f.keys, err = h.w.bank.CertifyExchangeKeys(ctx, h.w.cat(), pubs)
	} else {
		var acct api.CreateAccountResponse
		if acct, err = h.w.bank.CreateAccountWithAttrs(ctx, testAdminToken, attrs); err == nil {
			f.keys, err = h.w.bank.CertifyAccountKeys(ctx, Account{ID: acct.ID, Token: acct.Token}, pubs)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *forger) pub(i int) ed25519.PublicKey { return f.privs[i].Public().(ed25519.PublicKey) }

// sign signs r with priv, as its first key would, and returns its text.
func sign(t *testing.T, r *paycode.Request, priv ed25519.PrivateKey) string {
	t.Helper()
	vr := vault.Request{ID: hex.EncodeToString(r.ID[:]), Amount: r.Amount, Currency: r.Currency, Program: r.Program,
		Memo: r.Memo, Expires: r.Expires, Keys: r.Keys}
	msg, err := vr.SignedMessage()
	if err != nil {
		t.Fatal(err)
	}
	r.Sig = ed25519.Sign(priv, msg)
	text, err := paycode.EncodeRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// TestPayRequestSameIDOtherKeys: a request carrying the id of one this
// wallet has sealed coins to, but other keys (a lying payee's, or a man in
// the middle's who saw the request and signed his own under its id), is
// refused: the coins sealed are not its, and nothing is sealed to it. The
// request itself still gets its token.
func TestPayRequestSameIDOtherKeys(t *testing.T) {
	ctx := context.Background()
	alice, erin, _ := requestWorld(t, newClock())
	req := mustRequest(t, erin, 100)
	tp := mustPay(t, alice, req.Text)
	mallory := newForger(t, alice, 2, nil)
	for _, tc := range []struct {
		name   string
		amount int64
		keys   []otp.ExchangeKey
	}{
		{"another payee's keys", 100, mallory.keys},
		{"another payee's keys and amount", 600, mallory.keys},
		{"the first key swapped for another payee's", 100, append([]otp.ExchangeKey{mallory.keys[0]}, req.Keys[1:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := paycode.ParseRequest(req.Text)
			if err != nil {
				t.Fatal(err)
			}
			r.Amount, r.Keys = tc.amount, tc.keys
			before := stateOf(t, alice)
			if got, err := alice.w.PayRequest(ctx, sign(t, r, mallory.privs[0])); !errors.Is(err, ErrPaid) {
				t.Fatalf("a request under the id of one paid, with other keys: token of %d coins (again %v), %v; want %v", got.Coins, got.Again, err, ErrPaid)
			}
			unchanged(t, alice, before, "a request under a paid one's id")
		})
	}
	if again := mustPay(t, alice, req.Text); !again.Again || again.Token != tp.Token {
		t.Fatalf("the request itself again: again %v, same token %v", again.Again, again.Token == tp.Token)
	}
}

// TestPayRequestRefused: requests a payer refuses before anything is
// sealed, though their payee signed them and the bank certified every
// key: keys of two payees (a merchant's with a stranger's anonymous ones,
// either first, so the payer would be shown one payee and pay both), and
// a currency this wallet does not pay.
func TestPayRequestRefused(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	alice, _, _ := requestWorld(t, clock)
	grocer := newForger(t, alice, 2, map[string]string{"category": "grocery"})
	stranger := newForger(t, alice, 2, nil)
	for _, tc := range []struct {
		name     string
		currency string
		keys     []otp.ExchangeKey
		by       ed25519.PrivateKey
		want     error
	}{
		{"a merchant's key, then anonymous ones", "EUR", append(slices.Clone(grocer.keys[:1]), stranger.keys...), grocer.privs[0], ErrMixedPayees},
		{"an anonymous key, then a merchant's", "EUR", append(slices.Clone(stranger.keys[:1]), grocer.keys...), stranger.privs[0], ErrMixedPayees},
		{"another currency", "USD", stranger.keys, stranger.privs[0], ErrCurrency},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &paycode.Request{Amount: 100, Currency: tc.currency, Program: otp.GeneralProgramName,
				Expires: clock.Now().Add(time.Minute), Keys: tc.keys}
			rand.Read(r.ID[:])
			before := stateOf(t, alice)
			if got, err := alice.w.PayRequest(ctx, sign(t, r, tc.by)); !errors.Is(err, tc.want) {
				t.Fatalf("paid %d coins, %v; want %v", got.Coins, err, tc.want)
			}
			unchanged(t, alice, before, tc.name)
		})
	}
}

// TestReceiptForPaidRequest: once a request's receipt is imported, a
// receipt under its id is taken only if it is that receipt again. Any
// other, even one validly signed by the payee (another request's,
// relabelled), is refused and changes nothing; the other request's coin
// stays pending-out until its own receipt comes.
func TestReceiptForPaidRequest(t *testing.T) {
	ctx := context.Background()
	alice, erin, _ := requestWorld(t, newClock())
	receipt := func(req PaymentRequest) *paycode.Receipt {
		t.Helper()
		got, err := erin.w.ReceiveToken(ctx, mustPay(t, alice, req.Text).Token)
		if err != nil {
			t.Fatal(err)
		}
		r, err := paycode.ParseReceipt(got.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	paid, open := mustRequest(t, erin, 100), mustRequest(t, erin, 100)
	mine, other := receipt(paid), receipt(open)
	text := func(r *paycode.Receipt) string {
		t.Helper()
		s, err := paycode.EncodeReceipt(r)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := alice.w.ImportReceipt(ctx, text(mine)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		acks []otp.Ack
	}{
		{"another request's receipt", other.Acks},
		{"its receipt and another's", []otp.Ack{mine.Acks[0], other.Acks[0]}},
		{"its receipt for another link", []otp.Ack{{Token: mine.Acks[0].Token, Link: mine.Acks[0].Link + 1, Sig: mine.Acks[0].Sig}}},
		{"its receipt with a forged signature", []otp.Ack{{Token: mine.Acks[0].Token, Link: mine.Acks[0].Link, Sig: flipB64(mine.Acks[0].Sig)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := stateOf(t, alice)
			r := &paycode.Receipt{Request: mine.Request, Acks: tc.acks}
			if imp, err := alice.w.ImportReceipt(ctx, text(r)); !errors.Is(err, ErrUnknownRequest) {
				t.Fatalf("imported %+v, %v; want %v", imp, err, ErrUnknownRequest)
			}
			unchanged(t, alice, before, tc.name)
		})
	}
	if imp, err := alice.w.ImportReceipt(ctx, text(other)); err != nil || imp.Again || imp.Amount != 100 {
		t.Fatalf("the other request's own receipt: %+v, %v", imp, err)
	}
}
