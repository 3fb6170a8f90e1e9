package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/storage/sqlite"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/otp"
)

const testAdminToken = "admin-token-for-tests-only"

// testBank is an in-process bank on a loopback HTTP server.
type testBank struct {
	*bank.Bank
	url string
	now func() time.Time // the bank's and its holders' clock; nil for time.Now
}

// newTestBank starts a bank of 1.00 coins only, as the paper's.
func newTestBank(t testing.TB) *testBank { return newTestBankOf(t, denom.Set{100}) }

// newTestBankOf starts a bank with coins of the given denominations.
func newTestBankOf(t testing.TB, set denom.Set) *testBank { return newClockedBank(t, set, nil) }

// newClockedBank starts a bank whose clock, and its holders' wallets', is
// now (time.Now if nil).
func newClockedBank(t testing.TB, set denom.Set, now func() time.Time) *testBank {
	t.Helper()
	return newBankOf(t, bank.Config{Denominations: set, Now: now})
}

// newBankOf starts a bank of cfg, with the tests' logger, token and no
// certification rate limit.
func newBankOf(t testing.TB, cfg bank.Config) *testBank {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "bank.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.Logger, cfg.ExchangeKeyRate, cfg.AdminToken = slog.New(slog.DiscardHandler), rate.Inf, testAdminToken
	b, err := bank.New(ctx, st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)
	return &testBank{Bank: b, url: srv.URL, now: cfg.Now}
}

// holder is a bank customer with a wallet.
type holder struct {
	w              *Wallet
	dir            string
	account, token string
}

// acct is the holder's bank account, as the wallet takes it.
func (h *holder) acct() Account { return Account{ID: h.account, Token: h.token} }

var cheap = PINHashing{Time: 1, MemoryKiB: 64, Threads: 1}

func (b *testBank) newHolder(t testing.TB, credit int64) *holder {
	t.Helper()
	return b.newHolderOn(t, credit, Options{PINHashing: cheap})
}

// newHolderOn is newHolder with the vault of opts (Vault, Protector, TPM).
func (b *testBank) newHolderOn(t testing.TB, credit int64, opts Options) *holder {
	t.Helper()
	ctx := context.Background()
	id, token, err := b.CreateAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if credit > 0 {
		if _, err := b.Credit(ctx, id, credit); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "wallet")
	opts.ConfirmSAS = func(context.Context, string) bool { return true }
	opts.Now = b.now
	w, err := Init(ctx, dir, b.url, []byte("123456"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return &holder{w: w, dir: dir, account: id, token: token}
}

func (h *holder) balance(t testing.TB) Balance {
	t.Helper()
	b, err := h.w.Balance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pay runs one session from payer to payee through dial, which may be a
// faulty link; it returns both sides' results.
func pay(t testing.TB, from, to *holder, value int64, via func(addr string) string) (Payment, error, Payment, error) {
	t.Helper()
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	var got Payment
	var recvErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		got, recvErr = to.w.Receive(ctx, ln)
	}()
	addr := ln.Addr().String()
	if via != nil {
		addr = via(addr)
	}
	paid, payErr := from.w.Pay(ctx, addr, value, "test")
	wg.Wait()
	return paid, payErr, got, recvErr
}

func TestPayReceiveDeposit(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	alice, bob := b.newHolder(t, 500), b.newHolder(t, 0)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 500); err != nil {
		t.Fatal(err)
	}
	paid, payErr, got, recvErr := pay(t, alice, bob, 300, nil)
	if payErr != nil || recvErr != nil {
		t.Fatalf("pay: %v; receive: %v", payErr, recvErr)
	}
	if paid.SAS != got.SAS || len(paid.SAS) != 6 {
		t.Errorf("short authentication strings %q and %q", paid.SAS, got.SAS)
	}
	if paid.Amount != 300 || got.Amount != 300 || got.Coins != 3 {
		t.Errorf("paid %+v, received %+v", paid, got)
	}
	if a, bb := alice.balance(t), bob.balance(t); a.Held != 200 || a.PendingOut != 0 || bb.Held != 300 {
		t.Errorf("balances after paying: Alice %+v, Bob %+v", a, bb)
	}
	res, err := bob.w.Deposit(ctx, bob.acct())
	if err != nil || res.Credited != 300 || res.Balance != 300 || len(res.Refused) != 0 {
		t.Fatalf("deposit = %+v, %v", res, err)
	}
	if bb := bob.balance(t); bb.Held != 0 {
		t.Errorf("Bob still holds %d after depositing", bb.Held)
	}
	hist, err := bob.w.History(ctx)
	if err != nil || len(hist) != 2 || hist[0].Kind != "receive" || hist[1].Kind != "deposit" {
		t.Errorf("Bob's history = %+v, %v", hist, err)
	}
}

func TestPayRefusals(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	alice, bob := b.newHolder(t, 300), b.newHolder(t, 0)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 300); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.w.Pay(ctx, "127.0.0.1:1", 400, ""); !errors.Is(err, ErrInsufficient) {
		t.Errorf("paying 4.00 out of 3.00: %v; want ErrInsufficient", err)
	}
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 150); !errors.Is(err, ErrAmount) {
		t.Errorf("withdrawing 1.50 in 1.00 coins: %v; want ErrAmount", err)
	}
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 100); err == nil {
		t.Errorf("withdrawing from an empty account succeeded")
	}
	bob.w.opts.ConfirmOffer = func(context.Context, Offer) bool { return false }
	_, payErr, _, _ := pay(t, alice, bob, 100, nil)
	if !errors.Is(payErr, ErrDeclined) {
		t.Errorf("declined offer: %v; want ErrDeclined", payErr)
	}
	bob.w.opts.ConfirmOffer = nil
	if a := alice.balance(t); a.Held != 300 || a.PendingOut != 0 {
		t.Errorf("refusals changed Alice's wallet: %+v", a)
	}
	if acct, err := b.Balance(ctx, alice.account); err != nil || acct != 0 {
		t.Errorf("refused withdrawals changed the account: %d, %v", acct, err)
	}
}

// relay forwards one session between payer and payee until cut.
type relay struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (r *relay) via(t testing.TB) func(string) string {
	return func(target string) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer ln.Close()
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				return
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, s)
			r.mu.Unlock()
			go func() { io.Copy(c, s); c.Close() }()
			io.Copy(s, c)
			s.Close()
		}()
		return ln.Addr().String()
	}
}

// cut drops the link at once, in both directions.
func (r *relay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
}

// TestResendAfterBrokenLink drops the link after the payee stored the coins
// and before its receipts leave: the payer's coins stay pending-out, and the
// next meeting delivers them once.
func TestResendAfterBrokenLink(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	alice, bob := b.newHolder(t, 500), b.newHolder(t, 0)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 500); err != nil {
		t.Fatal(err)
	}
	r := &relay{}
	bob.w.opts.OnEvent = func(e Event) {
		if e.Kind == "received" {
			r.cut()
		}
	}
	_, payErr, _, recvErr := pay(t, alice, bob, 300, r.via(t))
	bob.w.opts.OnEvent = nil
	if payErr == nil || recvErr == nil {
		t.Fatalf("payment over a cut link: pay %v, receive %v; want both to fail", payErr, recvErr)
	}
	if a, bb := alice.balance(t), bob.balance(t); a.Held != 200 || a.PendingOut != 300 || bb.Held != 300 {
		t.Fatalf("after the cut: Alice %+v, Bob %+v; want 2.00 held and 3.00 pending-out, Bob 3.00 held", a, bb)
	}
	// They meet again: the coins in flight go first, then the new payment.
	paid, payErr, got, recvErr := pay(t, alice, bob, 100, nil)
	if payErr != nil || recvErr != nil {
		t.Fatalf("second meeting: pay %v, receive %v", payErr, recvErr)
	}
	if paid.Resent != 3 || got.Resent != 3 {
		t.Errorf("resent: payer %d, payee %d; want 3", paid.Resent, got.Resent)
	}
	if a, bb := alice.balance(t), bob.balance(t); a.Held != 100 || a.PendingOut != 0 || bb.Held != 400 {
		t.Errorf("after resending: Alice %+v, Bob %+v; want 1.00 / 0 and 4.00", a, bb)
	}
	res, err := bob.w.Deposit(ctx, bob.acct())
	if err != nil || res.Credited != 400 {
		t.Fatalf("Bob's deposit = %+v, %v", res, err)
	}
}

func TestReceiveWithoutExchangeKeys(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	alice, bob := b.newHolder(t, 100*(DefaultKeyPool+1)), b.newHolder(t, 0)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 100*(DefaultKeyPool+1)); err != nil {
		t.Fatal(err)
	}
	if _, payErr, _, recvErr := pay(t, alice, bob, 100*DefaultKeyPool, nil); payErr != nil || recvErr != nil {
		t.Fatalf("paying the whole key pool: %v, %v", payErr, recvErr)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := bob.w.Receive(ctx, ln); !errors.Is(err, ErrNoExchangeKeys) {
		t.Fatalf("receive with no exchange keys: %v; want ErrNoExchangeKeys", err)
	}
	if n, err := bob.w.RefillKeys(ctx, 5); err != nil || n != 5 {
		t.Fatalf("refill = %d, %v", n, err)
	}
}

// TestWithdrawResumes plays a wallet that crashed after the bank debited
// the account and before the coins were stored: asking again under the
// same id rebuilds the same blinded coins from the withdrawal's secret,
// and the bank answers with the same signatures.
func TestWithdrawResumes(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	alice := b.newHolder(t, 500)
	id := newID()
	key, err := alice.w.cat().CoinKey(otp.GeneralProgramName, 100, alice.w.now())
	if err != nil {
		t.Fatal(err)
	}
	pw, err := json.Marshal(pendingWithdrawal{Account: alice.account, KeyID: key.KeyID})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.w.v.SetSetting(ctx, withdrawalSetting(id), pw); err != nil {
		t.Fatal(err)
	}
	pubs, err := alice.w.v.HolderKeys(ctx, id, 2)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := alice.w.v.WithdrawalSecret(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// The crashed run: the bank signed, the wallet stored nothing.
	lost, err := alice.w.bank.WithdrawCoins(ctx, alice.acct(), id, alice.w.cat().Issuer, key, pubs,
		func(i int) io.Reader { return otp.WithdrawalRand(secret, id, i) })
	if err != nil {
		t.Fatal(err)
	}
	res, err := alice.w.Withdraw(ctx, alice.acct(), 100)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != 2 || res.Coins != 3 || alice.balance(t).Held != 300 {
		t.Fatalf("withdraw after a crash = %+v, held %d; want 2 resumed, 3 coins", res, alice.balance(t).Held)
	}
	if acct, err := b.Balance(ctx, alice.account); err != nil || acct != 200 {
		t.Fatalf("account after resuming = %d, %v; want 2.00 (debited once)", acct, err)
	}
	items, err := alice.w.v.DepositItems(ctx, alice.account)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, it := range items {
		held[it.Sandbox.Coin.Data.Token] = true
	}
	for _, c := range lost {
		if !held[c.Data.Token] {
			t.Errorf("coin %.12s of the interrupted withdrawal not finished", c.Data.Token)
		}
	}
}

// TestDepositResumes plays a wallet that crashed after the bank credited a
// deposit and before the coins were marked deposited.
func TestDepositResumes(t *testing.T) {
	ctx := context.Background()
	b := newTestBank(t)
	alice := b.newHolder(t, 200)
	if _, err := alice.w.Withdraw(ctx, alice.acct(), 200); err != nil {
		t.Fatal(err)
	}
	items, err := alice.w.v.DepositItems(ctx, alice.account)
	if err != nil {
		t.Fatal(err)
	}
	req := api.DepositRequest{Account: alice.account}
	for _, it := range items {
		req.Coins = append(req.Coins, api.DepositCoin{Sandbox: it.Sandbox, Proof: it.Proof})
	}
	if _, err := alice.w.bank.Deposit(ctx, alice.token, req); err != nil {
		t.Fatal(err)
	}
	res, err := alice.w.Deposit(ctx, alice.acct())
	if err != nil || res.Coins != 2 || res.Balance != 200 {
		t.Fatalf("deposit after a crash = %+v, %v; want 2 coins and balance 2.00 (credited once)", res, err)
	}
	if alice.balance(t).Held != 0 {
		t.Fatalf("coins still held after the resumed deposit")
	}
}

// TestRefillWhilePaying refreshes the pinned catalogue while other
// goroutines read it, as a payment does; under -race a catalogue written
// in place is reported.
func TestRefillWhilePaying(t *testing.T) {
	bk := newTestBank(t)
	h := bk.newHolder(t, 0)
	ctx := context.Background()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if c := h.w.Currency(); c != "EUR" {
					t.Errorf("Currency() = %q during a refill", c)
					return
				}
				if hello := h.w.hello(); len(hello.Issuers) != 1 {
					t.Errorf("hello() = %+v during a refill", hello)
					return
				}
			}
		})
	}
	for range 5 {
		if _, err := h.w.RefillKeys(ctx, DefaultKeyPool); err != nil {
			t.Error(err)
		}
	}
	close(done)
	wg.Wait()
}
