package wallet_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/otpcash/otpcash/amount"
	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/storage/sqlite"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/wallet"
)

// The examples use only packages an app can import. They share a bank run
// in-process; an app is given the bank's URL and an account instead.

// world is a bank, and a directory for the examples' wallets.
type world struct {
	dir  string
	url  string
	bank *bank.Bank
	stop func()
}

var (
	started     *world
	startBank   sync.Once
	walletCount int
)

// newWorld is the examples' bank, started by the first to ask.
func newWorld() *world {
	startBank.Do(func() { started = startWorld() })
	return started
}

func TestMain(m *testing.M) {
	code := m.Run()
	if started != nil {
		started.stop()
	}
	os.Exit(code)
}

func startWorld() *world {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "wallet-example-")
	if err != nil {
		panic(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "bank.db"))
	if err != nil {
		panic(err)
	}
	// Coins of 1, 2, 5, 10 and 20 euros keep the examples' bank quick to
	// start; a real bank issues the euro's 0.01 to 500.00.
	b, err := bank.New(ctx, st, bank.Config{Logger: slog.New(slog.DiscardHandler), Denominations: denom.Set{100, 200, 500, 1000, 2000}})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(b.Handler())
	return &world{dir: dir, url: srv.URL, bank: b, stop: func() {
		srv.Close()
		st.Close()
		os.RemoveAll(dir)
	}}
}

// account opens a bank account holding minor units.
func (w *world) account(minor int64) wallet.Account {
	ctx := context.Background()
	id, token, err := w.bank.CreateAccount(ctx)
	if err != nil {
		panic(err)
	}
	if minor == 0 {
		return wallet.Account{ID: id, Token: token}
	}
	if _, err := w.bank.Credit(ctx, id, minor); err != nil {
		panic(err)
	}
	return wallet.Account{ID: id, Token: token}
}

// funded makes a wallet named name holding minor units, withdrawn from a
// new account.
func (w *world) funded(name string, minor int64) *wallet.Wallet {
	wt := w.wallet(name)
	if _, err := wt.Withdraw(context.Background(), w.account(minor), minor); err != nil {
		panic(err)
	}
	return wt
}

// listen is where a payee waits for a payer: a local TCP port here, a
// Bluetooth or Wi-Fi Direct link in an app.
func listen() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	return ln
}

// options are what the examples' wallets share.
var options = wallet.Options{
	// A real app shows the string and asks the user to compare screens.
	ConfirmSAS: func(ctx context.Context, sas string) bool { return true },
	// Cheap PIN hashing keeps the examples quick: an app leaves it zero.
	PINHashing: wallet.PINHashing{Time: 1, MemoryKiB: 64, Threads: 1},
}

// dirFor is a new directory for a wallet of name.
func (w *world) dirFor(name string) string {
	walletCount++
	return filepath.Join(w.dir, fmt.Sprintf("%s-%d", name, walletCount))
}

// wallet makes a wallet named name at the world's bank.
func (w *world) wallet(name string) *wallet.Wallet {
	wt, err := wallet.Init(context.Background(), w.dirFor(name), w.url, []byte(name+"'s PIN"), options)
	if err != nil {
		panic(err)
	}
	return wt
}

// A wallet app withdraws while online, then pays another wallet offline.
func Example() {
	ctx := context.Background()
	world := newWorld()
	account := world.account(1000)

	alice, bob := world.wallet("alice"), world.wallet("bob")
	defer alice.Close()
	defer bob.Close()
	if _, err := alice.Withdraw(ctx, account, 1000); err != nil {
		panic(err)
	}

	// Offline from here: only the two wallets talk.
	ln := listen()
	defer ln.Close()
	received := make(chan wallet.Payment)
	go func() {
		p, err := bob.Receive(ctx, ln)
		if err != nil {
			panic(err)
		}
		received <- p
	}()
	if _, err := alice.Pay(ctx, ln.Addr().String(), 700, "lunch"); err != nil {
		panic(err)
	}
	p := <-received
	held, err := alice.Balance(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("Bob received %s %s in %d coins; Alice holds %s\n", amount.Format(p.Amount), alice.Currency(), p.Coins, amount.Format(held.Held))
	// Output: Bob received 7.00 EUR in 2 coins; Alice holds 3.00
}

func ExampleCheckPIN() {
	for _, pin := range []string{"1234", "123456", "correct horse"} {
		fmt.Printf("%q: %v\n", pin, wallet.CheckPIN([]byte(pin)) == nil)
	}
	// Output:
	// "1234": false
	// "123456": true
	// "correct horse": true
}

// A wallet is made once with Init, then opened with the owner's PIN.
func ExampleOpen() {
	ctx := context.Background()
	world := newWorld()
	dir := world.dirFor("alice")
	w, err := wallet.Init(ctx, dir, world.url, []byte("alice's PIN"), options)
	if err != nil {
		panic(err)
	}
	w.Close()

	if _, err := wallet.Open(ctx, dir, []byte("bob's PIN"), options); errors.Is(err, wallet.ErrWrongPIN) {
		fmt.Println("wrong PIN refused")
	}
	w, err = wallet.Open(ctx, dir, []byte("alice's PIN"), options)
	if err != nil {
		panic(err)
	}
	defer w.Close()
	keys, err := w.ExchangeKeys(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("opened, ready to receive %d coins offline\n", keys)
	// Output:
	// wrong PIN refused
	// opened, ready to receive 50 coins offline
}

func ExampleWallet_Withdraw() {
	ctx := context.Background()
	world := newWorld()
	account := world.account(5000)
	w := world.wallet("alice")
	defer w.Close()

	value, err := amount.Parse("38.00") // as the user typed it
	if err != nil {
		panic(err)
	}
	res, err := w.Withdraw(ctx, account, value)
	if err != nil {
		panic(err)
	}
	bal, err := w.Balance(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("withdrew %s %s in %d coins: %v\n", amount.Format(res.Amount), w.Currency(), res.Coins, bal.Denominations)

	_, err = w.Withdraw(ctx, account, 10000)
	fmt.Println(err != nil, bal.Held == value)
	// Output:
	// withdrew 38.00 EUR in 8 coins: 1x20.00 + 2x5.00 + 3x2.00 + 2x1.00
	// true true
}

// Pay and Receive make one offline payment. A payer that cannot pay the
// amount exactly is given change by the payee in the same session.
// (Alice's mix of coins can make 13.00 exactly: no change here.)
func ExampleWallet_Pay() {
	ctx := context.Background()
	world := newWorld()
	alice, bob := world.funded("alice", 2000), world.funded("bob", 1000)
	defer alice.Close()
	defer bob.Close()

	ln := listen()
	defer ln.Close()
	done := make(chan wallet.Payment)
	go func() {
		p, err := bob.Receive(ctx, ln)
		if err != nil {
			panic(err)
		}
		done <- p
	}()
	paid, err := alice.Pay(ctx, ln.Addr().String(), 1300, "books")
	if err != nil {
		panic(err)
	}
	got := <-done
	fmt.Printf("Alice paid %s and got %s change; Bob received %s\n", amount.Format(paid.Amount), amount.Format(paid.Change), amount.Format(got.Amount))
	// Output: Alice paid 13.00 and got 0.00 change; Bob received 13.00
}

// A shop's terminal serves payers one after the other; Serve returns at
// the first payment that completes.
func ExampleWallet_Serve() {
	ctx := context.Background()
	world := newWorld()
	alice, shop := world.funded("alice", 500), world.wallet("shop")
	defer alice.Close()
	defer shop.Close()

	ln := listen()
	defer ln.Close()
	done := make(chan wallet.Payment)
	go func() {
		p, err := shop.Serve(ctx, ln, wallet.ServeOptions{})
		if err != nil {
			panic(err)
		}
		done <- p
	}()
	// A port probe: the terminal drops it and goes on serving.
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
	}
	if _, err := alice.Pay(ctx, ln.Addr().String(), 500, "coffee"); err != nil {
		panic(err)
	}
	fmt.Println("the shop received", amount.Format((<-done).Amount))
	// Output: the shop received 5.00
}

// Settle delivers what an earlier broken session left in flight between
// two wallets; when nothing is, it moves nothing.
func ExampleWallet_Settle() {
	ctx := context.Background()
	world := newWorld()
	alice, bob := world.wallet("alice"), world.wallet("bob")
	defer alice.Close()
	defer bob.Close()

	ln := listen()
	defer ln.Close()
	go bob.Receive(ctx, ln)
	p, err := alice.Settle(ctx, ln.Addr().String())
	if err != nil {
		panic(err)
	}
	fmt.Printf("re-sent %d coins, collected %s\n", p.Resent, amount.Format(p.Collected))
	// Output: re-sent 0 coins, collected 0.00
}

// Without a live link, a payee shows a request, the payer answers with a
// token and the payee answers with a receipt: three texts (or QR codes).
func ExampleWallet_Request() {
	ctx := context.Background()
	world := newWorld()
	alice, erin := world.funded("alice", 1000), world.wallet("erin")
	defer alice.Close()
	defer erin.Close()

	req, err := erin.Request(ctx, 700, "invoice 17", time.Hour, 0)
	if err != nil {
		panic(err)
	}
	shown, err := wallet.ParseRequest(req.Text) // what Alice's app reads
	if err != nil {
		panic(err)
	}
	fmt.Printf("Erin asks %s %s for %q\n", amount.Format(shown.Amount), shown.Currency, shown.Memo)

	paid, err := alice.PayRequest(ctx, req.Text)
	if err != nil {
		panic(err)
	}
	got, err := erin.ReceiveToken(ctx, paid.Token)
	if err != nil {
		panic(err)
	}
	back, err := alice.ImportReceipt(ctx, got.Receipt)
	if err != nil {
		panic(err)
	}
	fmt.Printf("Erin received %s; Alice's %d coins are spent\n", amount.Format(got.Amount), back.Coins)
	// Output:
	// Erin asks 7.00 EUR for "invoice 17"
	// Erin received 7.00; Alice's 2 coins are spent
}

func ExampleWallet_Deposit() {
	ctx := context.Background()
	world := newWorld()
	account := world.account(800)
	w := world.wallet("erin")
	defer w.Close()
	if _, err := w.Withdraw(ctx, account, 800); err != nil {
		panic(err)
	}

	res, err := w.Deposit(ctx, account)
	if err != nil {
		panic(err)
	}
	fmt.Printf("credited %s in %d coins; the account holds %s\n", amount.Format(res.Credited), res.Coins, amount.Format(res.Balance))
	// Output: credited 8.00 in 3 coins; the account holds 8.00
}

// Redenominate swaps coins at the bank for the mix a withdrawal of their total
// would bring: few coins, and enough small ones to make change.
func ExampleWallet_Redenominate() {
	ctx := context.Background()
	world := newWorld()
	alice, bob := world.wallet("alice"), world.wallet("bob")
	defer alice.Close()
	defer bob.Close()
	account := world.account(2000)
	for range 2 {
		if _, err := alice.Withdraw(ctx, account, 1000); err != nil {
			panic(err)
		}
	}
	ln := listen()
	defer ln.Close()
	go bob.Receive(ctx, ln)
	if _, err := alice.Pay(ctx, ln.Addr().String(), 2000, "rent"); err != nil {
		panic(err)
	}
	bal, err := bob.Balance(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("Bob holds", bal.Denominations)
	res, err := bob.Redenominate(ctx, world.account(0))
	if err != nil {
		panic(err)
	}
	if bal, err = bob.Balance(ctx); err != nil {
		panic(err)
	}
	fmt.Printf("redenominated %d coins for %d: %v\n", res.In, res.Out, bal.Denominations)
	// Output:
	// Bob holds 2x5.00 + 4x2.00 + 2x1.00
	// redenominated 4 coins for 1: 1x10.00 + 1x5.00 + 2x2.00 + 1x1.00
}

// Reclaim credits back coins sealed to a payee that never acknowledged
// them, once their deposit deadline has passed.
func ExampleWallet_Reclaim() {
	ctx := context.Background()
	world := newWorld()
	w := world.wallet("alice")
	defer w.Close()

	res, err := w.Reclaim(ctx, world.account(0))
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d coins credited back\n", res.Coins)
	// Output: 0 coins credited back
}

// RefillKeys, online, tops up the exchange keys each coin received uses.
func ExampleWallet_RefillKeys() {
	ctx := context.Background()
	world := newWorld()
	w := world.wallet("shop")
	defer w.Close()

	added, err := w.RefillKeys(ctx, 2*wallet.DefaultKeyPool)
	if err != nil {
		panic(err)
	}
	have, err := w.ExchangeKeys(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("added %d keys: %d coins can be received offline\n", added, have)
	// Output: added 50 keys: 100 coins can be received offline
}

func ExampleWallet_History() {
	ctx := context.Background()
	world := newWorld()
	account := world.account(300)
	w := world.wallet("alice")
	defer w.Close()
	if _, err := w.Withdraw(ctx, account, 300); err != nil {
		panic(err)
	}
	if _, err := w.Deposit(ctx, account); err != nil {
		panic(err)
	}

	history, err := w.History(ctx)
	if err != nil {
		panic(err)
	}
	for _, e := range history {
		if e.Kind == wallet.HistoryWithdraw || e.Kind == wallet.HistoryDeposit {
			fmt.Println(e.Kind, amount.Format(e.Amount), e.Currency)
		}
	}
	// Output:
	// withdraw 3.00 EUR
	// deposit 3.00 EUR
}

// OnEvent follows a payment as it happens, for a progress screen.
func ExampleOptions_onEvent() {
	ctx := context.Background()
	world := newWorld()
	opts := options
	var kinds []wallet.EventKind
	opts.OnEvent = func(e wallet.Event) { kinds = append(kinds, e.Kind) }
	w, err := wallet.Init(ctx, world.dirFor("alice"), world.url, []byte("alice's PIN"), opts)
	if err != nil {
		panic(err)
	}
	defer w.Close()
	if _, err := w.Withdraw(ctx, world.account(100), 100); err != nil {
		panic(err)
	}
	fmt.Println(kinds)
	// Output: [refilled withdrawn]
}
