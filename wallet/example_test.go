package wallet_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/storage/sqlite"
	"github.com/otpcash/otpcash/internal/amount"
	"github.com/otpcash/otpcash/wallet"
)

// A wallet app withdraws while online, then pays another wallet offline.
// Here the bank runs in-process; in an app it is the bank's URL.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "wallet-example-")
	defer os.RemoveAll(dir)

	st, _ := sqlite.Open(ctx, filepath.Join(dir, "bank.db"))
	defer st.Close()
	b, _ := bank.New(ctx, st, bank.Config{Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(b.Handler())
	defer srv.Close()
	account, token, _ := b.CreateAccount(ctx)
	b.Credit(ctx, account, 1000)

	opts := wallet.Options{
		// A real app shows the string and asks the user to compare screens.
		ConfirmSAS: func(ctx context.Context, sas string) bool { return true },
	}
	alice, err := wallet.Init(ctx, filepath.Join(dir, "alice"), srv.URL, []byte("alice's PIN"), opts)
	if err != nil {
		panic(err)
	}
	defer alice.Close()
	bob, err := wallet.Init(ctx, filepath.Join(dir, "bob"), srv.URL, []byte("bob's PIN"), opts)
	if err != nil {
		panic(err)
	}
	defer bob.Close()

	if _, err := alice.Withdraw(ctx, account, token, 1000); err != nil {
		panic(err)
	}

	// Offline from here: only the two wallets talk.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
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
	held, _ := alice.Balance(ctx)
	fmt.Printf("Bob received %s %s in %d coins; Alice holds %s\n", amount.Format(p.Amount), alice.Currency(), p.Coins, amount.Format(held.Held))
	// Output: Bob received 7.00 EUR in 2 coins; Alice holds 3.00
}
