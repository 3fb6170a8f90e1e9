package bank_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/client"
	"github.com/otpcash/otpcash/bank/internal/banktest"
	"github.com/otpcash/otpcash/otp"
)

const general = "[programs.general]\n"

func TestLoadProgramsRefuses(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string // all in the error
	}{
		{"not TOML", "[programs.general", []string{"line 1"}},
		{"no general", "[programs.other]\n", []string{`no "general" program`}},
		{"unknown key", general + "colour = 'red'\n", []string{`unknown key "programs.general.colour"`}},
		{"unknown step", general + `steps = ["checkConditions", "mintMore"]`, []string{`program "general"`, `step "mintMore"`, "unknown step"}},
		{"syntax error", general + `steps = ["checkConditions"]` + "\nconditions = ['coin.hops <']", []string{`program "general"`, "condition 0", "1:12"}},
		{"unknown variable", general + `steps = ["checkConditions"]` + "\nconditions = ['true', 'payer.category == \"x\"']", []string{`program "general"`, "condition 1", "1:1", "undeclared reference to 'payer'"}},
		{"not boolean", general + `steps = ["checkConditions"]` + "\nconditions = ['coin.value * 2']", []string{`program "general"`, "want bool"}},
		{"over the cost limit", general + `steps = ["checkConditions"]` + "\nconditions = ['payee.all(a, payee.all(b, payee[a] + payee[b] + payment.memo != \"\"))']", []string{`program "general"`, "over the limit"}},
		{"conditions without their step", general + "[programs.v]\nconditions = ['coin.hops < 2']", []string{`program "v"`, `step "checkConditions"`, "missing step"}},
		{"bad name", general + "[programs.Voucher]\n", []string{`program "Voucher"`, "name"}},
		{"wrong type", general + "conditions = 'coin.hops < 2'\n", []string{"conditions"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bank.LoadPrograms([]byte(tt.toml))
			if !errors.Is(err, bank.ErrPrograms) {
				t.Fatalf("LoadPrograms = %v; want %v", err, bank.ErrPrograms)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestDefaultPrograms(t *testing.T) {
	p := bank.DefaultPrograms()
	if got := strings.Join(p.Names(), ","); got != "general,grocery-voucher,max-hops" {
		t.Fatalf("programs %s", got)
	}
	// The file shipped in docs and the built-in default are the same.
	data, err := os.ReadFile("programs.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bank.LoadPrograms(data); err != nil {
		t.Fatal(err)
	}
	v, _ := p.Get("grocery-voucher")
	if !v.Expires.Equal(time.Date(2030, 12, 31, 23, 59, 59, 0, time.UTC)) || !slices.ContainsFunc(v.Steps, func(s otp.Step) bool { return s.Method == otp.StepCheckConditions }) {
		t.Fatalf("grocery-voucher %+v", v)
	}
	g, _ := p.Get("")
	if g.Name != otp.GeneralProgramName || len(g.Conditions) != 0 {
		t.Fatalf("default program %+v", g)
	}
}

// TestShippedPrograms runs each shipped program through the bank: coins
// withdrawn under it, paid along a chain of payees, then deposited by the
// last one. A refused coin names the condition and the values it saw, and
// changes nothing.
func TestShippedPrograms(t *testing.T) {
	tests := []struct {
		program string
		payees  []string // categories of the payees in turn; "" anonymous
		refusal string   // "" when the deposit is credited
	}{
		{"general", []string{""}, ""},
		{"general", nil, ""},
		{"grocery-voucher", []string{"grocery"}, ""},
		{"grocery-voucher", []string{"electronics", "supermarket"}, ""},
		{"grocery-voucher", []string{"electronics"}, `payee.category in ["grocery", "supermarket"]: payee.category = "electronics"`},
		{"grocery-voucher", []string{""}, `payee.category in ["grocery", "supermarket"]: payee.category = <absent>`},
		{"grocery-voucher", nil, `payee.category = <absent>`}, // the holder cannot cash a voucher
		{"max-hops", nil, ""},
		{"max-hops", []string{"", "", ""}, ""},
		{"max-hops", []string{"", "", "", ""}, "coin.hops <= 3: coin.hops = 4"},
	}
	for _, tt := range tests {
		t.Run(tt.program+"/"+strings.Join(tt.payees, ">"), func(t *testing.T) {
			e := banktest.New(t, bank.Config{})
			ctx := context.Background()
			payer, payerToken := e.Account(t, 100)
			coins := e.WithdrawProgram(t, payer, payerToken, 1, tt.program)
			if got := coins[0].Sandbox.Coin.Data.Program; got != tt.program {
				t.Fatalf("coin of program %q, want %q", got, tt.program)
			}
			last, lastToken := payer, payerToken
			for _, cat := range tt.payees {
				var attrs map[string]string
				if cat != "" {
					attrs = map[string]string{"category": cat}
				}
				id, token, err := e.Bank.CreateAccountWithAttrs(ctx, attrs)
				if err != nil {
					t.Fatal(err)
				}
				keyAccount, keyToken := id, token
				if cat == "" {
					keyAccount, keyToken = "", ""
				}
				coins = e.PayAccount(t, coins, keyAccount, keyToken)
				last, lastToken = id, token
			}
			before := state(t, e)
			resp, err := e.Client.Deposit(ctx, lastToken, banktest.DepositRequest(t, last, coins))
			if err != nil {
				t.Fatal(err)
			}
			r := resp.Results[0]
			if tt.refusal == "" {
				if r.Status != api.StatusCredited || resp.Balance != 100 {
					t.Fatalf("deposit %+v, balance %d", r, resp.Balance)
				}
				return
			}
			if r.Status != api.StatusRefused || r.Code != api.CodeCondition || !strings.Contains(r.Message, tt.refusal) {
				t.Fatalf("deposit %+v; want refused with %q", r, tt.refusal)
			}
			sameState(t, before, state(t, e))
		})
	}
}

// TestWithdrawProgramRefused: a coin key of a program that has ended, or
// that the bank no longer runs, signs no more, and nothing is debited.
func TestWithdrawProgramRefused(t *testing.T) {
	progs, err := bank.LoadPrograms([]byte(general + "[programs.old]\nexpires = 2026-01-02T04:04:05Z\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := banktest.New(t, bank.Config{Programs: progs})
	id, token := e.Account(t, 500)
	key, _, blinded := e.BlindCoins(t, "old", 2)
	if !key.PayableUntil.Equal(time.Date(2026, 1, 2, 4, 4, 5, 0, time.UTC)) {
		t.Fatalf("coins of a program ending at 04:04:05 payable until %s", key.PayableUntil)
	}
	e.Clock.Advance(2 * time.Hour)
	before := state(t, e)
	r := call(t, e, http.MethodPost, "/v1/withdrawals", token, api.WithdrawRequest{ID: "w-old", Account: id, KeyID: key.KeyID, Blinded: blinded})
	wantError(t, r, http.StatusBadRequest, api.CodeUnknownProgram, `coin program "old" ended at 2026-01-02T04:04:05Z`)
	sameState(t, before, state(t, e))

	// The same store under a configuration without the program.
	other := banktest.NewOn(t, e.Store, bank.Config{Programs: bank.DefaultPrograms()})
	other.Clock.Advance(2 * time.Hour)
	r = call(t, other, http.MethodPost, "/v1/withdrawals", token, api.WithdrawRequest{ID: "w-old", Account: id, KeyID: key.KeyID, Blinded: blinded})
	wantError(t, r, http.StatusBadRequest, api.CodeUnknownProgram, `no coin program "old"; this bank has general, grocery-voucher, max-hops`)
	sameState(t, before, state(t, e))
}

// TestMerchantKeys: exchange keys certified for a merchant account carry
// its attributes, only its token gets them, and a wallet cannot change
// them without breaking the bank's signature.
func TestMerchantKeys(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	ctx := context.Background()
	grocer, err := e.Client.CreateAccountWithAttrs(ctx, banktest.AdminToken, map[string]string{"category": "grocery"})
	if err != nil {
		t.Fatal(err)
	}
	other, otherToken := e.Account(t, 0)
	pub, _ := banktest.NewKey(t)

	keys, err := e.Client.CertifyAccountKeys(ctx, client.Account{ID: grocer.ID, Token: grocer.Token}, []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	if keys[0].Attrs["category"] != "grocery" || len(keys[0].Attrs) != 1 {
		t.Fatalf("merchant key attrs %v", keys[0].Attrs)
	}
	v := e.Verifier()
	now := banktest.Start
	if err := v.VerifyExchangeKey(&keys[0], now); err != nil {
		t.Fatal(err)
	}
	forged := keys[0]
	forged.Attrs = map[string]string{"category": "electronics"}
	if err := v.VerifyExchangeKey(&forged, now); !errors.Is(err, otp.ErrSignature) {
		t.Fatalf("changed attrs: %v; want %v", err, otp.ErrSignature)
	}
	forged.Attrs = nil
	if err := v.VerifyExchangeKey(&forged, now); !errors.Is(err, otp.ErrSignature) {
		t.Fatalf("dropped attrs: %v; want %v", err, otp.ErrSignature)
	}

	anon, err := e.Client.CertifyExchangeKeys(ctx, e.Bank.Catalogue(), []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	if len(anon[0].Attrs) != 0 {
		t.Fatalf("anonymous key attrs %v", anon[0].Attrs)
	}
	plain, err := e.Client.CertifyAccountKeys(ctx, client.Account{ID: other, Token: otherToken}, []ed25519.PublicKey{pub})
	if err != nil || len(plain[0].Attrs) != 0 {
		t.Fatalf("key of an account without attrs: %v, %v", plain, err)
	}

	r := call(t, e, http.MethodPost, "/v1/exchange-keys", otherToken, api.ExchangeKeysRequest{Account: grocer.ID, Pubs: []string{otp.EncodeKey(pub)}})
	wantError(t, r, http.StatusUnauthorized, api.CodeUnauthorized, "invalid token")
	r = call(t, e, http.MethodPost, "/v1/exchange-keys", "", api.ExchangeKeysRequest{Account: grocer.ID, Pubs: []string{otp.EncodeKey(pub)}})
	wantError(t, r, http.StatusUnauthorized, api.CodeUnauthorized, "Bearer")
}

func TestAccountAttrsRefused(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	for _, attrs := range []map[string]string{
		{"Category": "grocery"},
		{"category": ""},
		{"category": strings.Repeat("g", 65)},
	} {
		r := call(t, e, http.MethodPost, "/v1/accounts", banktest.AdminToken, api.CreateAccountRequest{Attrs: attrs})
		wantError(t, r, http.StatusBadRequest, api.CodeBadRequest, "invalid payee attributes")
	}
}

func FuzzLoadPrograms(f *testing.F) {
	if data, err := os.ReadFile("programs.toml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(general + "steps = ['checkConditions']\nconditions = ['coin.hops < 2', 'payee.category in [\"a\"]']\nexpires = 2030-01-01T00:00:00Z\n"))
	f.Add([]byte(general + "[programs.x]\nsteps = ['nope']\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := bank.LoadPrograms(data)
		if err != nil {
			if !errors.Is(err, bank.ErrPrograms) {
				t.Fatalf("error without ErrPrograms: %v", err)
			}
			return
		}
		// Whatever loads must be issuable: names fit, steps and
		// conditions valid.
		if _, ok := p.Get(""); !ok {
			t.Fatal("loaded without a general program")
		}
		for _, n := range p.Names() {
			d, _ := p.Get(n)
			if d.Name != n {
				t.Fatalf("program %q named %q", n, d.Name)
			}
			if err := d.Validate(); err != nil {
				t.Fatalf("program %q loaded but does not validate: %v", n, err)
			}
		}
	})
}
