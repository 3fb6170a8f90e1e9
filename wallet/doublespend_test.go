package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/client"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/vault"
)

// copyDir copies a closed wallet directory, as a user restoring a backup
// would.
func copyDir(t testing.TB, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

// TestCopiedWalletDoubleSpend pays the same coins from a wallet and from
// two copies of it to three payees: the software vault cannot stop that,
// the bank must. The first deposit is credited; the second is refused and
// names the one-time key that signed twice, and the refused coins leave
// the payee's held coins: not in its balance, never paid on, in its
// history with the bank's evidence. The third payee, who never deposited,
// learns the revoked keys online and will not pay its copies on either.
func TestCopiedWalletDoubleSpend(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	alice, bob, carol, dave := b.newHolder(t, 200), b.newHolder(t, 0), b.newHolder(t, 0), b.newHolder(t, 0)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 200); err != nil {
		t.Fatal(err)
	}
	dir := alice.dir
	if err := alice.w.Close(); err != nil {
		t.Fatal(err)
	}
	opts := Options{PINHashing: cheap, ConfirmSAS: func(context.Context, string) bool { return true }}
	clones := make([]*holder, 2)
	for i := range clones {
		copied := filepath.Join(t.TempDir(), "copy")
		copyDir(t, dir, copied)
		clones[i] = &holder{account: alice.account, token: alice.token}
		var err error
		if clones[i].w, err = Open(ctx, copied, []byte("123456"), opts); err != nil {
			t.Fatal(err)
		}
		defer clones[i].w.Close()
	}
	clone := clones[0]
	var err error
	if alice.w, err = Open(ctx, dir, []byte("123456"), opts); err != nil {
		t.Fatal(err)
	}

	if _, payErr, _, recvErr := pay(t, alice, bob, 200, nil); payErr != nil || recvErr != nil {
		t.Fatalf("pay from the original: %v, %v", payErr, recvErr)
	}
	if _, payErr, _, recvErr := pay(t, clone, carol, 200, nil); payErr != nil || recvErr != nil {
		t.Fatalf("pay from the copy: %v, %v (offline, nothing can tell the copy from the original)", payErr, recvErr)
	}
	if _, payErr, _, recvErr := pay(t, clones[1], dave, 200, nil); payErr != nil || recvErr != nil {
		t.Fatalf("pay from the second copy: %v, %v", payErr, recvErr)
	}

	first, err := bob.w.Deposit(ctx, bob.acct())
	if err != nil || first.Credited != 200 || len(first.Refused) != 0 {
		t.Fatalf("first deposit = %+v, %v; want 2.00 credited", first, err)
	}
	second, err := carol.w.Deposit(ctx, carol.acct())
	if err != nil {
		t.Fatal(err)
	}
	if second.Credited != 0 || len(second.Refused) != 2 {
		t.Fatalf("second deposit = %+v; want both coins refused", second)
	}
	holders := map[string]bool{}
	coins, err := alice.w.v.Coins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range coins {
		holders[c.Sandbox.Coin.Data.Holder] = true
	}
	for _, r := range second.Refused {
		if r.Code != "double_deposit" || !holders[r.Key] {
			t.Errorf("refusal %+v: want double_deposit naming one of Alice's first-holder keys", r)
		}
	}
	conflicts, err := client.New(b.url, nil).Conflicts(ctx, testAdminToken)
	if err != nil {
		t.Fatal(err)
	}
	if len(conflicts) != 2 {
		t.Fatalf("bank recorded %d conflicts; want 2", len(conflicts))
	}

	checkRefused(t, carol, second.Refused)
	// Closed and opened again, the wallet still knows: the refusal was
	// stored, in the transaction that took the coins out of the held ones.
	if err := carol.w.Close(); err != nil {
		t.Fatal(err)
	}
	if carol.w, err = Open(ctx, carol.dir, []byte("123456"), opts); err != nil {
		t.Fatal(err)
	}
	checkRefused(t, carol, second.Refused)
	if again, err := carol.w.Deposit(ctx, carol.acct()); err != nil || again.Coins != 0 || len(again.Refused) != 0 {
		t.Errorf("depositing again = %+v, %v; want nothing sent", again, err)
	}

	// Once online, a wallet learns the revoked keys and refuses, offline,
	// to pay on the coins they signed away twice.
	if _, err := dave.w.RefillKeys(ctx, DefaultKeyPool); err != nil {
		t.Fatal(err)
	}
	if _, payErr, _, _ := pay(t, dave, bob, 200, nil); !errors.Is(payErr, otp.ErrRevoked) {
		t.Fatalf("paying on a revoked coin: %v; want ErrRevoked", payErr)
	}
	if d, bb := dave.balance(t), bob.balance(t); d.Held != 200 || d.PendingOut != 0 || bb.Held != 0 {
		t.Errorf("refused payment changed state: Dave %+v, Bob %+v", d, bb)
	}
	reopened, err := Open(ctx, dave.dir, []byte("123456"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	if _, payErr, _, _ := pay(t, &holder{w: reopened}, bob, 100, nil); !errors.Is(payErr, otp.ErrRevoked) {
		t.Fatalf("after reopening, paying on a revoked coin: %v; want ErrRevoked", payErr)
	}
}

// checkRefused checks that h's coins refused by the bank are out of its
// balance, that it will not pay with them, and that its history and coin
// list carry the bank's evidence.
func checkRefused(t *testing.T, h *holder, refused []Refusal) {
	t.Helper()
	ctx := context.Background()
	if b := h.balance(t); b.Held != 0 || b.Coins != 0 || b.Refused != 200 || b.RefusedCoins != 2 {
		t.Errorf("balance after the refusal: %+v; want nothing held, 2.00 refused in 2 coins", b)
	}
	// Neither paid nor given as change: both pick from Payable.
	if held, err := h.w.v.Payable(ctx, h.w.Currency(), ""); err != nil || len(held) != 0 {
		t.Errorf("payable coins: %d, %v; want none", len(held), err)
	}
	// The wallet finds it has nothing to pay with before it dials.
	if _, err := h.w.Pay(ctx, "127.0.0.1:1", 100, "test"); !errors.Is(err, ErrInsufficient) {
		t.Errorf("paying with refused coins: %v; want ErrInsufficient", err)
	}
	coins, err := h.w.v.Coins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byToken := map[string]Refusal{}
	for _, r := range refused {
		byToken[r.Token] = r
	}
	for _, c := range coins {
		want, ok := byToken[c.Sandbox.Coin.Data.Token]
		if !ok {
			continue
		}
		if c.State != vault.Refused || c.Refusal == nil || *c.Refusal != vault.Refusal(want) {
			t.Errorf("coin %.12s: state %s, refusal %+v; want refused with %+v", want.Token, c.State, c.Refusal, want)
		}
		delete(byToken, want.Token)
	}
	if len(byToken) != 0 {
		t.Errorf("refused coins not in the vault's list: %v", byToken)
	}
	events, err := h.w.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, e := range events {
		if e.Kind != "refused" {
			continue
		}
		found = true
		if e.Amount != 200 || !strings.Contains(e.Detail, "double_deposit") {
			t.Errorf("history entry %+v; want 2.00 refused for a double deposit", e)
		}
		for _, r := range refused {
			if !strings.Contains(e.Detail, r.Key) {
				t.Errorf("history entry %q does not name the key %s that signed twice", e.Detail, r.Key)
			}
		}
	}
	if !found {
		t.Errorf("no refusal in the history: %+v", events)
	}
}

// TestDepositAnswerMismatch: a deposit answer that does not match the
// coins sent (a result missing, or one for another coin) is refused whole,
// marking nothing; the coins stay held and the next, honest answer
// settles them.
func TestDepositAnswerMismatch(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	for _, tc := range []struct {
		name string
		lie  func(*api.DepositResponse)
	}{
		{"a result missing", func(r *api.DepositResponse) { r.Results = r.Results[:len(r.Results)-1] }},
		{"a result too many", func(r *api.DepositResponse) { r.Results = append(r.Results, r.Results[0]) }},
		{"another coin refused", func(r *api.DepositResponse) {
			r.Results[0] = api.DepositResult{Token: otp.NewSerial().String(), Status: api.StatusRefused, Code: api.CodeDoubleDeposit}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lying atomic.Bool
			lying.Store(true)
			real := b.Handler()
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/deposits" || !lying.Load() {
					real.ServeHTTP(w, r)
					return
				}
				rec := httptest.NewRecorder()
				real.ServeHTTP(rec, r)
				var resp api.DepositResponse
				if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
					t.Error(err)
				}
				tc.lie(&resp)
				json.NewEncoder(w).Encode(resp)
			}))
			defer proxy.Close()
			h := (&testBank{Bank: b.Bank, url: proxy.URL}).newHolder(t, 200)
			if _, err := h.w.Withdraw(ctx, h.acct(), 200); err != nil {
				t.Fatal(err)
			}
			if res, err := h.w.Deposit(ctx, h.acct()); !errors.Is(err, client.ErrAnswerMismatch) {
				t.Fatalf("deposit with a lying answer = %+v, %v; want ErrAnswerMismatch", res, err)
			}
			if bal := h.balance(t); bal.Held != 200 || bal.Refused != 0 {
				t.Fatalf("after a lying answer: %+v; want all still held", bal)
			}
			lying.Store(false)
			if res, err := h.w.Deposit(ctx, h.acct()); err != nil || res.Credited != 200 {
				t.Fatalf("honest deposit after a lying answer = %+v, %v; want 2.00 credited", res, err)
			}
			if bal := h.balance(t); bal.Held != 0 || bal.Refused != 0 {
				t.Errorf("after the honest answer: %+v; want nothing held", bal)
			}
		})
	}
}
