package vault_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/vault"
)

// A wallet withdraws two coins into a new vault and reopens it later.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "wallet")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// Cheap Argon2id parameters keep the example fast; leave Options nil in
	// a real wallet.
	v, err := vault.Create(ctx, dir, []byte("246813"), &vault.Options{Time: 1, MemoryKiB: 64, Threads: 1})
	if err != nil {
		log.Fatal(err)
	}

	// The holder keys are stored before the bank is asked for coins.
	pubs, err := v.HolderKeys(ctx, "withdrawal-1", 2)
	if err != nil {
		log.Fatal(err)
	}
	coins := bankIssues(pubs)
	if err := v.AddWithdrawn(ctx, "withdrawal-1", coins); err != nil {
		log.Fatal(err)
	}
	v.Close()

	if _, err := vault.Open(ctx, dir, []byte("135792")); errors.Is(err, vault.ErrWrongPIN) {
		fmt.Println("wrong PIN refused")
	}
	v, err = vault.Open(ctx, dir, []byte("246813"))
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	list, err := v.Coins(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range list {
		fmt.Println(c.State, c.Sandbox.Coin.Data.Value, c.Sandbox.Coin.Data.Currency)
	}
	// Output:
	// wrong PIN refused
	// held 500 EUR
	// held 500 EUR
}

// bankIssues stands in for the bank: one 5 EUR coin per holder key.
func bankIssues(holders []ed25519.PublicKey) []otp.Coin {
	now := time.Now()
	signer, _, err := otp.GenerateSigner("example-bank", otp.IssuerKey{Use: otp.UseCoin, Value: 500, Currency: "EUR",
		NotBefore: now, Expires: now.AddDate(1, 0, 0), DepositUntil: now.AddDate(1, 3, 0)})
	if err != nil {
		log.Fatal(err)
	}
	var coins []otp.Coin
	for _, h := range holders {
		c, err := signer.Issue(otp.NewSerial(), h, signer.Key.Expires, otp.GeneralProgram())
		if err != nil {
			log.Fatal(err)
		}
		coins = append(coins, *c)
	}
	return coins
}
