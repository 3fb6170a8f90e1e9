package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/client"
	"github.com/otpcash/otpcash/internal/testpg"
	"github.com/otpcash/otpcash/otp"
)

// TestTwoBankProcessesOnePostgres starts two bank processes on one
// PostgreSQL database and sends them, at the same instant, the same
// withdrawal id and two different chains of one coin (a double spend).
// The withdrawal is applied once and the coin is credited once; the audit
// holds.
func TestTwoBankProcessesOnePostgres(t *testing.T) {
	db := testpg.Schema(t)
	adminFile := filepath.Join(t.TempDir(), "admin-token")
	var nodes []*client.Client
	for range 2 {
		p, url := startBank(t, db, "127.0.0.1:0", adminFile)
		t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
		nodes = append(nodes, client.New(url, nil))
	}
	admin, err := os.ReadFile(adminFile)
	if err != nil {
		t.Fatal(err)
	}
	adminToken := strings.TrimSpace(string(admin))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var accts [3]api.CreateAccountResponse
	for i := range accts {
		if accts[i], err = nodes[0].CreateAccount(ctx, adminToken); err != nil {
			t.Fatal(err)
		}
	}
	payer, b, c := accts[0], accts[1], accts[2]
	if _, err := nodes[0].Credit(ctx, adminToken, payer.ID, 100); err != nil {
		t.Fatal(err)
	}

	// The same withdrawal id, 16 times on each node at once.
	// Every request blinds the same coin, from the same secret.
	holderPub, holder, _ := ed25519.GenerateKey(rand.Reader)
	cat, err := nodes[0].Catalogue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key, err := cat.CoinKey(otp.GeneralProgramName, 100, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	const id = "same-id-on-both-nodes"
	got := make([][]otp.Coin, 32)
	errs := make([]error, 32)
	race(32, func(i int) {
		got[i], errs[i] = nodes[i%2].WithdrawCoins(ctx, client.Account{ID: payer.ID, Token: payer.Token}, id, cat.Issuer, key, []ed25519.PublicKey{holderPub},
			func(i int) io.Reader { return otp.WithdrawalRand([]byte("secret"), id, i) })
	})
	for i := range got {
		if errs[i] != nil || len(got[i]) != 1 || got[i][0].Signature != got[0][0].Signature {
			t.Fatalf("withdrawal %d on node %d: %v; want the same one coin from every answer", i, i%2, errs[i])
		}
	}
	if a, err := nodes[1].Account(ctx, client.Account{ID: payer.ID, Token: payer.Token}); err != nil || a.Balance != 0 {
		t.Fatalf("payer's balance after 32 concurrent withdrawals of 1.00 under one id: %+v, %v; want 0 (debited once)", a, err)
	}

	// The coin paid twice (a copied wallet), each chain deposited 16 times
	// on each node at once.
	coin := got[0][0]
	var deposits [2]api.DepositRequest
	for i, to := range []api.CreateAccountResponse{b, c} {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		keys, err := nodes[i].CertifyExchangeKeys(ctx, cat, []ed25519.PublicKey{pub})
		if err != nil {
			t.Fatal(err)
		}
		sb := otp.Sandbox{Coin: coin}
		if err := sb.Transfer(holder, keys[0]); err != nil {
			t.Fatal(err)
		}
		proof, err := sb.DepositProof(priv, to.ID)
		if err != nil {
			t.Fatal(err)
		}
		deposits[i] = api.DepositRequest{Account: to.ID, Coins: []api.DepositCoin{{Sandbox: sb, Proof: proof}}}
	}
	results := make([]api.DepositResult, 64)
	race(64, func(i int) {
		to := []api.CreateAccountResponse{b, c}[i%2]
		resp, err := nodes[(i/2)%2].Deposit(ctx, to.Token, deposits[i%2])
		if err != nil {
			t.Error(err)
			return
		}
		results[i] = resp.Results[0]
	})
	credited := 0
	for _, r := range results {
		if r.Status == api.StatusCredited {
			credited++
		}
	}
	if credited != 1 {
		t.Fatalf("%d of 64 concurrent deposits of one coin through two bank processes credited; want exactly 1", credited)
	}
	var total int64
	for _, a := range []api.CreateAccountResponse{b, c} {
		acct, err := nodes[0].Account(ctx, client.Account{ID: a.ID, Token: a.Token})
		if err != nil {
			t.Fatal(err)
		}
		total += acct.Balance
	}
	if total != 100 {
		t.Fatalf("payees hold %d in all; want the one coin's 100", total)
	}
	if out, errOut, err := run(t, nil, "bank", "audit", "--db", db); err != nil || !strings.Contains(out, "audit OK") {
		t.Fatalf("audit: %v\n%s%s", err, out, errOut)
	}
}

// race runs f(0..n-1) in n goroutines released at the same instant.
func race(n int, f func(i int)) {
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			f(i)
		}()
	}
	start.Done()
	done.Wait()
}
