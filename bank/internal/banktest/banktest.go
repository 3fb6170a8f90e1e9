// Package banktest runs a real bank (SQLite store, HTTP server on
// loopback) for tests, and plays the wallet side well enough to make
// valid withdrawals, payments and deposits with package otp.
//
// Where to start: New gives an Env with a bank and its client; Account,
// Withdraw, Pay and PayAccount make the coins a test needs.
package banktest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/client"
	"github.com/otpcash/otpcash/bank/storage"
	"github.com/otpcash/otpcash/bank/storage/sqlite"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/otp"
)

// AdminToken is the admin token of every test bank.
const AdminToken = "test-admin-token-0123456789abcdef"

// TestValue is the one coin value of a test bank unless its
// configuration sets denominations.
const TestValue = 100

// Start is the test clock's initial time.
var Start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Clock is a manual clock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Logs collects log output safely across goroutines.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Env is a running test bank.
type Env struct {
	Bank   *bank.Bank
	Store  *sqlite.Store // nil for NewOn
	Path   string        // the SQLite file; empty for NewOn
	Server *httptest.Server
	Client *client.Client
	Clock  *Clock
	Logs   *Logs
}

// New starts a bank with cfg, filling in the admin token, the clock, the
// logger and, unless set, an unlimited exchange-key rate (the test clock
// stands still, so buckets would never refill) and one denomination, 1.00
// (TestValue): a key per program instead of fifteen, for tests that are
// not about denominations.
func New(t testing.TB, cfg bank.Config) *Env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bank.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := NewOn(t, st, cfg)
	e.Store, e.Path = st, path
	return e
}

// NewOn starts a bank as New does, on the store st (any engine), which
// the caller closes. Store and Path are left empty.
func NewOn(t testing.TB, st storage.Store, cfg bank.Config) *Env {
	t.Helper()
	e := &Env{Clock: &Clock{t: Start}, Logs: &Logs{}}
	var err error
	cfg.AdminToken = AdminToken
	if cfg.Now == nil {
		cfg.Now = e.Clock.Now
	}
	if cfg.ExchangeKeyRate == 0 {
		cfg.ExchangeKeyRate = rate.Inf
	}
	if cfg.Denominations == nil {
		cfg.Denominations = denom.Set{TestValue}
	}
	cfg.Logger = slog.New(slog.NewTextHandler(e.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.Bank, err = bank.New(context.Background(), st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.Server = httptest.NewServer(e.Bank.Handler())
	t.Cleanup(e.Server.Close)
	e.Client = client.New(e.Server.URL, e.Server.Client())
	return e
}

// Verifier trusts the bank's current catalogue.
func (e *Env) Verifier() *otp.Verifier { return otp.NewVerifier(e.Bank.Catalogue()) }

// Account opens an account holding balance minor units.
func (e *Env) Account(t testing.TB, balance int64) (id, token string) {
	t.Helper()
	ctx := context.Background()
	id, token, err := e.Bank.CreateAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if balance > 0 {
		if _, err := e.Bank.Credit(ctx, id, balance); err != nil {
			t.Fatal(err)
		}
	}
	return id, token
}

// Balance returns an account's balance.
func (e *Env) Balance(t testing.TB, id, token string) int64 {
	t.Helper()
	a, err := e.Client.Account(context.Background(), client.Account{ID: id, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return a.Balance
}

// Held is a coin in a wallet: the sandbox and the current holder's key.
type Held struct {
	Sandbox otp.Sandbox
	Key     ed25519.PrivateKey
}

// NewKey returns a fresh one-time key pair.
func NewKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// Withdraw withdraws n coins from the account under a fresh withdrawal id.
func (e *Env) Withdraw(t testing.TB, id, token string, n int) []Held {
	t.Helper()
	return e.WithdrawProgram(t, id, token, n, "")
}

// WithdrawProgram withdraws n coins of the named coin program ("" is
// general), blind-signed under the program's newest coin key.
func (e *Env) WithdrawProgram(t testing.TB, id, token string, n int, program string) []Held {
	t.Helper()
	ctx := context.Background()
	if program == "" {
		program = otp.GeneralProgramName
	}
	cat, err := e.Client.Catalogue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key, err := cat.CoinKey(program, TestValue, e.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]ed25519.PrivateKey, n)
	pubs := make([]ed25519.PublicKey, n)
	for i := range keys {
		pubs[i], keys[i] = NewKey(t)
	}
	coins, err := e.Client.WithdrawCoins(ctx, client.Account{ID: id, Token: token}, "w-"+bank.NewToken()[:12], cat.Issuer, key, pubs,
		func(int) io.Reader { return rand.Reader })
	if err != nil {
		t.Fatal(err)
	}
	held := make([]Held, n)
	for i := range coins {
		held[i] = Held{Sandbox: otp.Sandbox{Coin: coins[i], Chain: []otp.Link{}}, Key: keys[i]}
	}
	return held
}

// BlindCoins builds n coins of the newest coin key of program for fresh
// holder keys and blinds them, as a wallet does before it withdraws. It
// returns the key, the blinded coins and their text forms for
// api.WithdrawRequest.Blinded.
func (e *Env) BlindCoins(t testing.TB, program string, n int) (*otp.IssuerKey, []*otp.BlindCoin, []string) {
	t.Helper()
	cat := e.Bank.Catalogue()
	key, err := cat.CoinKey(program, TestValue, e.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	coins := make([]*otp.BlindCoin, n)
	text := make([]string, n)
	for i := range coins {
		pub, _ := NewKey(t)
		if coins[i], err = otp.NewBlindCoin(cat.Issuer, key, pub, rand.Reader); err != nil {
			t.Fatal(err)
		}
		text[i] = otp.EncodeBlinded(coins[i].Blinded())
	}
	return key, coins, text
}

// Pay transfers each coin to a fresh exchange key certified by the bank
// and returns the coins as the payee holds them. The payer's copies are
// left as they were, so paying them again makes a double spend.
func (e *Env) Pay(t testing.TB, coins []Held) []Held {
	t.Helper()
	return e.PayAccount(t, coins, "", "")
}

// PayAccount is Pay to exchange keys certified for the account id (with
// its token), which carry the account's attributes. It does not evaluate
// the coins' conditions: the bank must, at deposit.
func (e *Env) PayAccount(t testing.TB, coins []Held, id, token string) []Held {
	t.Helper()
	pubs := make([]ed25519.PublicKey, len(coins))
	privs := make([]ed25519.PrivateKey, len(coins))
	for i := range coins {
		pubs[i], privs[i] = NewKey(t)
	}
	var (
		xks []otp.ExchangeKey
		err error
	)
	if id == "" {
		xks, err = e.Client.CertifyExchangeKeys(context.Background(), e.Bank.Catalogue(), pubs)
	} else {
		xks, err = e.Client.CertifyAccountKeys(context.Background(), client.Account{ID: id, Token: token}, pubs)
	}
	if err != nil {
		t.Fatal(err)
	}
	out := make([]Held, len(coins))
	for i, h := range coins {
		sb := h.Sandbox
		sb.Chain = slices.Clone(sb.Chain)
		if err := sb.Transfer(h.Key, xks[i]); err != nil {
			t.Fatal(err)
		}
		out[i] = Held{Sandbox: sb, Key: privs[i]}
	}
	return out
}

// DepositRequest makes the request depositing coins to account.
func DepositRequest(t testing.TB, account string, coins []Held) api.DepositRequest {
	t.Helper()
	req := api.DepositRequest{Account: account, Coins: make([]api.DepositCoin, len(coins))}
	for i, h := range coins {
		proof, err := h.Sandbox.DepositProof(h.Key, account)
		if err != nil {
			t.Fatal(err)
		}
		req.Coins[i] = api.DepositCoin{Sandbox: h.Sandbox, Proof: proof}
	}
	return req
}

// ReclaimCoin makes the reclaim of a coin its payer sealed to a payee
// (sealed, as the payee holds it) and that the payer, who held it as
// held, takes back for account under the reclaim key rpub: the holder
// key's authorisation of rpub and rpriv's proof for account.
func ReclaimCoin(t testing.TB, held Held, sealed otp.Sandbox, account string, rpub ed25519.PublicKey, rpriv ed25519.PrivateKey) api.ReclaimCoin {
	t.Helper()
	auth, err := sealed.ReclaimAuthorization(held.Key, rpub)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := sealed.ReclaimProof(rpriv, account)
	if err != nil {
		t.Fatal(err)
	}
	return api.ReclaimCoin{Sandbox: sealed, Authorization: auth, Key: otp.EncodeKey(rpub), Proof: proof}
}
