package otp

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

// voucher is a program of the kind banks ship: a payee category and a
// transfer limit.
func voucher() Program {
	p := GeneralProgram()
	p.Name = "voucher"
	p.Steps = append(p.Steps[:4:4], append([]Step{{Method: StepCheckConditions}}, p.Steps[4:]...)...)
	p.Conditions = []string{`payee.category in ["grocery", "pharmacy"]`, `coin.hops <= 2`}
	return p
}

func TestCompileConditionsRefuses(t *testing.T) {
	tests := []struct {
		name  string
		conds []string
		want  string // in the error, besides ErrBadCondition
	}{
		{"syntax error", []string{`coin.value >`}, "1:13"},
		{"unknown variable", []string{`true`, `coin.valu > 0`}, "condition 1"},
		{"unknown top-level variable", []string{`balance > 0`}, "undeclared reference to 'balance'"},
		{"not boolean", []string{`coin.value + 1`}, "want bool"},
		{"string not boolean", []string{`payee.category`}, "want bool"},
		{"over the cost limit", []string{`payee.all(a, payee.all(b, payee.all(c, payee[a] + payee[b] + payee[c] != payment.memo)))`}, "over the limit"},
		{"too long", []string{strings.Repeat("true && ", 200) + "true"}, "at most 1024"},
		{"too deep", []string{strings.Repeat("(", 40) + "true" + strings.Repeat(")", 40)}, "condition 0"},
		{"too many", make([]string, maxConditions+1), "at most 16"},
		{"empty", []string{``}, "condition 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := compileConditions(tt.conds)
			if !errors.Is(err, ErrBadCondition) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("compileConditions = %v; want %v mentioning %q", err, ErrBadCondition, tt.want)
			}
		})
	}
}

func TestCompileConditionsAccepts(t *testing.T) {
	for _, src := range []string{
		`payee.category in ["grocery", "pharmacy"]`,
		`coin.hops <= 3`,
		`now < timestamp("2027-06-30T00:00:00Z")`,
		`!has(payee.category) || payee.category != "casino"`,
		`payment.amount <= 5000 && payment.memo.size() < 100`,
		`coin.currency == "EUR" && coin.value == 100 && coin.issuer != "" && coin.program == "voucher"`,
		`now < coin.expires - duration("24h")`,
	} {
		if err := compileConditions([]string{src}); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
}

func TestCompileOnce(t *testing.T) {
	src := `coin.hops <= 7`
	a, err := compileCondition(src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := compileCondition(src)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("the same expression was compiled twice")
	}
}

func TestJudgementCheck(t *testing.T) {
	f := newFixture(t)
	coin, err := f.coinKey.Issue(NewSerial(), f.holder.Public().(ed25519.PublicKey), t0.AddDate(1, 0, 0), voucher())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		hops  int
		payee map[string]string
		want  string // "" for accepted; else the whole reason after the token
	}{
		{"grocer", 1, map[string]string{"category": "grocery"}, ""},
		{"pharmacy, second transfer", 2, map[string]string{"category": "pharmacy", "name": "Kim"}, ""},
		{"electronics shop", 1, map[string]string{"category": "electronics"},
			`payee.category in ["grocery", "pharmacy"]: payee.category = "electronics"`},
		{"anonymous payee", 1, nil,
			`payee.category in ["grocery", "pharmacy"]: payee.category = <absent> (no such key: category)`},
		{"third transfer", 3, map[string]string{"category": "grocery"}, `coin.hops <= 2: coin.hops = 3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := Judgement{Coin: coin, Hops: tt.hops, Payee: tt.payee, Now: f.now}
			err := j.Check()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ce *ConditionError
			if !errors.Is(err, ErrCondition) || !errors.As(err, &ce) {
				t.Fatalf("Check = %v; want a *ConditionError", err)
			}
			if got := ce.Condition + ": " + ce.Seen; ce.Err != nil && !strings.HasSuffix(tt.want, "("+ce.Err.Error()+")") || !strings.HasPrefix(tt.want, got) {
				t.Fatalf("reason %q; want %q", err, tt.want)
			}
		})
	}
}

func TestJudgementSeesEverything(t *testing.T) {
	f := newFixture(t)
	p := GeneralProgram()
	p.Steps = voucher().Steps
	p.Conditions = []string{
		`coin.value == 100 && coin.currency == "EUR" && coin.issuer == "test-bank" && coin.program == "general"`,
		`coin.expires == timestamp("2027-01-01T00:00:00Z") && now == timestamp("2026-01-01T01:00:00Z")`,
		`payment.amount == 700 && payment.memo == "lunch" && payee == {"k": "v"} && coin.hops == 4`,
	}
	coin, err := f.coinKey.Issue(NewSerial(), f.holder.Public().(ed25519.PublicKey), t0.AddDate(1, 0, 0), p)
	if err != nil {
		t.Fatal(err)
	}
	j := Judgement{Coin: coin, Hops: 4, Payee: map[string]string{"k": "v"}, Payment: Payment{Amount: 700, Memo: "lunch"}, Now: f.now}
	if err := j.Check(); err != nil {
		t.Fatal(err)
	}
	j.Payment.Memo = "dinner"
	err = j.Check()
	if !errors.Is(err, ErrCondition) || !strings.Contains(err.Error(), `payment.memo = "dinner"`) || !strings.Contains(err.Error(), `payee = map[k:v]`) {
		t.Fatalf("Check = %v; want the memo and payee shown", err)
	}
}

func TestProgramValidate(t *testing.T) {
	noStep := voucher()
	noStep.Steps = DefaultProgram()
	bad := voucher()
	bad.Conditions = []string{`coin.hops`}
	unknown := voucher()
	unknown.Steps = append(unknown.Steps, Step{Method: "payTwice"})
	tests := []struct {
		name string
		p    Program
		want error
	}{
		{"general", GeneralProgram(), nil},
		{"voucher", voucher(), nil},
		{"conditions without their step", noStep, ErrMissingStep},
		{"non-boolean condition", bad, ErrBadCondition},
		{"unknown step", unknown, ErrUnknownStep},
		{"no name", Program{Steps: DefaultProgram()}, ErrBadCondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.Validate(); !errors.Is(err, tt.want) {
				t.Fatalf("Validate = %v; want %v", err, tt.want)
			}
		})
	}
}

// TestExecuteConditions: the payer refuses a coin whose conditions fail
// for the payee's keys before anything is sealed, and pays it otherwise.
func TestExecuteConditions(t *testing.T) {
	f := newFixture(t)
	coin, err := f.coinKey.Issue(NewSerial(), f.holder.Public().(ed25519.PublicKey), t0.AddDate(1, 0, 0), voucher())
	if err != nil {
		t.Fatal(err)
	}
	shop, err := f.exchKey.Certify(f.payee.Public().(ed25519.PublicKey), t0.AddDate(0, 3, 0), map[string]string{"category": "electronics"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		key   ExchangeKey
		want  error
		calls string
	}{
		{"electronics shop", shop, ErrCondition, "setupConnection"},
		{"grocer", f.exchange, nil, "setupConnection,buildSandbox,sendOTP,destroyOTP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer := &fakePeer{keys: []ExchangeKey{tt.key}, privs: []ed25519.PrivateKey{f.payee}}
			purse := &fakePurse{holder: f.holder, peer: peer}
			r := &Run{Verifier: f.v, Now: f.now, Peer: peer, Purse: purse, Coins: []Sandbox{{Coin: *coin}}, Payment: Payment{Amount: 100}}
			if err := Execute(context.Background(), r); !errors.Is(err, tt.want) {
				t.Fatalf("Execute = %v; want %v", err, tt.want)
			}
			if got := strings.Join(peer.calls, ","); got != tt.calls {
				t.Fatalf("side effects %s; want %s", got, tt.calls)
			}
		})
	}
}

// TestConditionsFixedBySignature: editing a coin's conditions or program
// breaks its checksum, and rehashing breaks the issuer's signature.
func TestConditionsFixedBySignature(t *testing.T) {
	f := newFixture(t)
	coin, err := f.coinKey.Issue(NewSerial(), f.holder.Public().(ed25519.PublicKey), t0.AddDate(1, 0, 0), voucher())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(c *Coin)
		want   error
	}{
		{"condition widened", func(c *Coin) { c.Data.Conditions[0] = `true` }, ErrChecksum},
		{"condition dropped, rehashed", func(c *Coin) { c.Data.Conditions = c.Data.Conditions[1:]; rehashCoin(c) }, ErrSignature},
		{"program renamed, rehashed", func(c *Coin) { c.Data.Program = "general"; rehashCoin(c) }, ErrSignature},
		{"step removed, rehashed", func(c *Coin) { c.CallMethod = DefaultProgram(); rehashCoin(c) }, ErrMissingStep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cloneSandbox(t, &Sandbox{Coin: *coin}).Coin
			tt.mutate(&c)
			if err := f.v.VerifyCoin(&c); !errors.Is(err, tt.want) {
				t.Fatalf("VerifyCoin = %v; want %v", err, tt.want)
			}
		})
	}
}

func TestSandboxCheckConditions(t *testing.T) {
	f := newFixture(t)
	coin, err := f.coinKey.Issue(NewSerial(), f.holder.Public().(ed25519.PublicKey), t0.AddDate(1, 0, 0), voucher())
	if err != nil {
		t.Fatal(err)
	}
	held := &Sandbox{Coin: *coin}
	if err := held.CheckConditions(Payment{}, f.now); !errors.Is(err, ErrCondition) {
		t.Fatalf("never transferred, no payee attributes: %v", err)
	}
	if err := held.Transfer(f.holder, f.exchange); err != nil {
		t.Fatal(err)
	}
	if err := held.CheckConditions(Payment{}, f.now); err != nil {
		t.Fatalf("transferred to a grocer: %v", err)
	}
}

// BenchmarkConditions measures what conditions add to a coin: one
// Judgement.Check per coin, as the payer, the payee and the bank each do.
func BenchmarkConditions(b *testing.B) {
	f := newFixture(b)
	for _, p := range []Program{GeneralProgram(), voucher()} {
		coin, err := f.coinKey.Issue(NewSerial(), f.holder.Public().(ed25519.PublicKey), t0.AddDate(1, 0, 0), p)
		if err != nil {
			b.Fatal(err)
		}
		j := Judgement{Coin: coin, Hops: 1, Payee: f.exchange.Attrs, Payment: Payment{Amount: 700, Memo: "lunch"}, Now: time.Now()}
		b.Run(p.Name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := j.Check(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestSteps(t *testing.T) {
	tests := []struct {
		extra []string
		want  string // the steps joined, or the error
	}{
		{nil, "checkIntegrityOfOTP,checkTokenFormat,checkCallMethod,setupConnection,buildSandbox,sendOTP,destroyOTP"},
		{[]string{StepCheckConditions}, "checkIntegrityOfOTP,checkTokenFormat,checkCallMethod,setupConnection,checkConditions,buildSandbox,sendOTP,destroyOTP"},
		{[]string{"teleport"}, `step "teleport": unknown step`},
		{[]string{StepCheckConditions, StepCheckConditions}, `step "checkConditions": misplaced step: listed twice`},
		{[]string{StepSendOTP}, `step "sendOTP": misplaced step: listed twice`},
	}
	for _, tt := range tests {
		steps, err := Steps(tt.extra...)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			var names []string
			for _, s := range steps {
				names = append(names, s.Method)
			}
			got = strings.Join(names, ",")
		}
		if got != tt.want {
			t.Errorf("Steps(%v) = %s; want %s", tt.extra, got, tt.want)
		}
	}
}

func TestCheckAttrs(t *testing.T) {
	many := map[string]string{}
	for i := range maxAttrs + 1 {
		many[string(rune('a'+i))] = "x"
	}
	tests := []struct {
		attrs map[string]string
		ok    bool
	}{
		{nil, true},
		{map[string]string{"category": "grocery", "name": "Bäckerei Müller", "vat_id": "DE123"}, true},
		{map[string]string{"Category": "grocery"}, false},
		{map[string]string{"9lives": "x"}, false},
		{map[string]string{"category": ""}, false},
		{map[string]string{"category": "a\nb"}, false},
		{map[string]string{"category": strings.Repeat("x", maxAttrLength+1)}, false},
		{many, false},
	}
	for _, tt := range tests {
		if err := CheckAttrs(tt.attrs); (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrBadAttrs) {
			t.Errorf("CheckAttrs(%v) = %v; want ok %v", tt.attrs, err, tt.ok)
		}
	}
}

// TestRefusalShowsWhatWasRead: the message lists every name the condition
// read, attributes rather than the whole payee map.
func TestRefusalShowsWhatWasRead(t *testing.T) {
	f := newFixture(t)
	p := voucher()
	p.Conditions = []string{`coin.hops < 2 && "category" in payee && payee.category == "grocery"`}
	coin, err := f.coinKey.Issue(NewSerial(), f.holder.Public().(ed25519.PublicKey), t0.AddDate(1, 0, 0), p)
	if err != nil {
		t.Fatal(err)
	}
	j := Judgement{Coin: coin, Hops: 1, Payee: map[string]string{"category": "toys"}, Now: f.now}
	want := p.Conditions[0] + `: coin.hops = 1, payee.category = "toys"`
	if err := j.Check(); err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("Check = %v; want it to end with %s", err, want)
	}
}
