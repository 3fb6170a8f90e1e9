package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/client"
	"github.com/otpcash/otpcash/internal/testpg"
	"github.com/otpcash/otpcash/otp"
)

// startBank starts `otpcash bank serve` and returns it with its base URL.
func startBank(t *testing.T, db, listen, adminFile string) (*proc, string) {
	t.Helper()
	p := start(t, nil, "bank", "serve", "--db", db, "--listen", listen, "--admin-token-file", adminFile)
	line := p.waitFor(t, "listening")
	addr := strings.Fields(line[strings.Index(line, "addr=")+len("addr="):])[0]
	return p, "http://" + strings.Trim(addr, `"`)
}

// retry runs op until it succeeds, the bank refuses it for good (a 4xx
// answer), or the deadline passes. A bank that is down or restarting
// answers with connection errors or 5xx, and the request is sent again
// unchanged: withdrawals and deposits are idempotent.
func retry(ctx context.Context, retried *atomic.Int64, op func() error) error {
	for {
		err := op()
		var ae *api.Error
		if err == nil || (errors.As(err, &ae) && ae.Status < 500) {
			return err
		}
		retried.Add(1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up retrying: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestBankKilledUnderLoad runs 64 clients that withdraw and deposit while
// a bank node is killed with SIGKILL and restarted on the same database.
// Each client retries every unanswered request unchanged until it is
// answered. Afterwards the audit holds and every account is back at its
// starting balance: nothing was applied twice and nothing was lost. On
// PostgreSQL two bank processes share the database, each client withdraws
// through one node and deposits through the other, and one node is killed.
func TestBankKilledUnderLoad(t *testing.T) {
	engines := []struct {
		name  string
		nodes int
		db    func(t *testing.T) string
	}{
		{"sqlite", 1, func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "bank.db") }},
		{"postgres", 2, func(t *testing.T) string { return testpg.Schema(t) }},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { bankKilledUnderLoad(t, e.db(t), e.nodes) })
	}
}

func bankKilledUnderLoad(t *testing.T, db string, nodes int) {
	const (
		clients = 64
		credit  = 100000
		coins   = 3
	)
	adminFile := filepath.Join(t.TempDir(), "admin-token")
	listen := make([]string, nodes)
	procs := make([]*proc, nodes)
	urls := make([]string, nodes)
	for i := range nodes {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listen[i] = ln.Addr().String()
		ln.Close()
		procs[i], urls[i] = startBank(t, db, listen[i], adminFile)
	}
	admin, err := os.ReadFile(adminFile)
	if err != nil {
		t.Fatal(err)
	}
	adminToken := strings.TrimSpace(string(admin))
	cs := make([]*client.Client, nodes)
	for i := range nodes {
		cs[i] = client.New(urls[i], nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	accounts := make([]api.CreateAccountResponse, clients)
	for i := range accounts {
		if accounts[i], err = cs[0].CreateAccount(ctx, adminToken); err != nil {
			t.Fatal(err)
		}
		if _, err := cs[0].Credit(ctx, adminToken, accounts[i].ID, credit); err != nil {
			t.Fatal(err)
		}
	}

	stop := make(chan struct{})
	var rounds, retried atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func(a api.CreateAccountResponse) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := withdrawAndDeposit(ctx, cs[i%nodes], cs[(i+1)%nodes], a, coins, &retried); err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				rounds.Add(1)
			}
		}(accounts[i])
	}

	time.Sleep(700 * time.Millisecond)
	before := rounds.Load()
	if err := procs[0].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	procs[0].cmd.Wait()
	time.Sleep(200 * time.Millisecond)
	procs[0], _ = startBank(t, db, listen[0], adminFile)
	time.Sleep(700 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if rounds.Load() <= before {
		t.Fatalf("no client finished a round after the restart (%d before the kill, %d in all)", before, rounds.Load())
	}
	if retried.Load() == 0 {
		t.Fatal("no request was cut off by the kill: the test did not exercise a retry")
	}
	t.Logf("%d bank nodes: %d withdraw+deposit rounds of %d coins by %d clients, %d before the kill; %d requests retried",
		nodes, rounds.Load(), coins, clients, before, retried.Load())

	for _, a := range accounts {
		acct, err := cs[0].Account(ctx, client.Account{ID: a.ID, Token: a.Token})
		if err != nil {
			t.Fatal(err)
		}
		if acct.Balance != credit {
			t.Errorf("account %s: balance %d after withdrawing and depositing the same coins; want %d", a.ID, acct.Balance, credit)
		}
	}
	for _, p := range procs {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
	audit, errOut, err := run(t, nil, "bank", "audit", "--db", db)
	if err != nil || !strings.Contains(audit, "audit OK") {
		t.Fatalf("audit after the kill: %v\n%s%s", err, audit, errOut)
	}
}

// withdrawAndDeposit withdraws n coins under a fresh withdrawal id and
// deposits them straight back through depositTo, retrying each request
// unchanged.
func withdrawAndDeposit(ctx context.Context, c, depositTo *client.Client, a api.CreateAccountResponse, n int, retried *atomic.Int64) error {
	raw := make([]byte, 16)
	rand.Read(raw)
	id := base64.RawURLEncoding.EncodeToString(raw)
	privs := map[string]ed25519.PrivateKey{}
	pubs := make([]ed25519.PublicKey, n)
	for i := range pubs {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		pubs[i], privs[otp.EncodeKey(pub)] = pub, priv
	}
	var cat *otp.Catalogue
	if err := retry(ctx, retried, func() (err error) { cat, err = c.Catalogue(ctx); return err }); err != nil {
		return fmt.Errorf("catalogue: %w", err)
	}
	key, err := cat.CoinKey(otp.GeneralProgramName, 100, time.Now())
	if err != nil {
		return err
	}
	// Every retry blinds the same coins, from the same secret.
	secret := make([]byte, 32)
	rand.Read(secret)
	var got []otp.Coin
	if err := retry(ctx, retried, func() (err error) {
		got, err = c.WithdrawCoins(ctx, client.Account{ID: a.ID, Token: a.Token}, id, cat.Issuer, key, pubs, func(i int) io.Reader { return otp.WithdrawalRand(secret, id, i) })
		return err
	}); err != nil {
		return fmt.Errorf("withdraw: %w", err)
	}
	dep := api.DepositRequest{Account: a.ID}
	for _, coin := range got {
		sb := otp.Sandbox{Coin: coin}
		proof, err := sb.DepositProof(privs[coin.Data.Holder], a.ID)
		if err != nil {
			return err
		}
		dep.Coins = append(dep.Coins, api.DepositCoin{Sandbox: sb, Proof: proof})
	}
	var resp api.DepositResponse
	if err := retry(ctx, retried, func() (err error) { resp, err = depositTo.Deposit(ctx, a.Token, dep); return err }); err != nil {
		return fmt.Errorf("deposit: %w", err)
	}
	for _, r := range resp.Results {
		if r.Status != api.StatusCredited && r.Status != api.StatusAlreadyCredited {
			return fmt.Errorf("deposit of %.12s: %s: %s", r.Token, r.Code, r.Message)
		}
	}
	return nil
}
