package bank_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/internal/banktest"
	"github.com/otpcash/otpcash/bank/storage"
	"github.com/otpcash/otpcash/bank/storage/postgres"
	"github.com/otpcash/otpcash/bank/storage/sqlite"
	"github.com/otpcash/otpcash/internal/testpg"
	"github.com/otpcash/otpcash/otp"
)

// engines opens a new, empty store of each engine.
var engines = []struct {
	name string
	open func(t *testing.T) storage.Store
}{
	{"sqlite", func(t *testing.T) storage.Store {
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "bank.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}},
	{"postgres", func(t *testing.T) storage.Store { return openPostgres(t, testpg.Schema(t)) }},
}

func openPostgres(t *testing.T, dsn string) storage.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func mustAudit(t *testing.T, st storage.Store) bank.AuditReport {
	t.Helper()
	r, err := bank.Audit(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("audit failed:\n%v", r)
	}
	return r
}

// depositRace pays one coin to n payees (a double spend n times over) and
// has them all deposit at once, payee i through nodes[i%len(nodes)]. It
// checks that exactly one deposit credits it and every other is refused
// as a double deposit.
func depositRace(t *testing.T, nodes []*banktest.Env, n int) {
	ctx := context.Background()
	e := nodes[0]
	payer, payerToken := e.Account(t, 100)
	coin := e.Withdraw(t, payer, payerToken, 1)
	type payee struct {
		node      *banktest.Env
		id, token string
		req       api.DepositRequest
	}
	payees := make([]payee, n)
	for i := range payees {
		p := &payees[i]
		p.node = nodes[i%len(nodes)]
		p.id, p.token = e.Account(t, 0)
		p.req = banktest.DepositRequest(t, p.id, e.Pay(t, coin))
	}
	results := make([]api.DepositResult, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range payees {
		wg.Go(func() {
			<-start
			resp, err := payees[i].node.Client.Deposit(ctx, payees[i].token, payees[i].req)
			if err != nil {
				t.Errorf("deposit %d: %v", i, err)
				return
			}
			results[i] = resp.Results[0]
		})
	}
	close(start)
	wg.Wait()
	counts := map[string]int{}
	for _, r := range results {
		counts[r.Status+"/"+r.Code]++
	}
	want := map[string]int{api.StatusCredited + "/": 1, api.StatusRefused + "/" + api.CodeDoubleDeposit: n - 1}
	if !reflect.DeepEqual(counts, want) {
		t.Fatalf("results %v, want %v", counts, want)
	}
	credited := 0
	for _, p := range payees {
		credited += int(e.Balance(t, p.id, p.token))
	}
	if credited != 100 {
		t.Fatalf("payees were credited %d in all, want 100", credited)
	}
}

// TestConcurrentDepositsOfOneCoin: 64 deposits of one coin at the same
// instant credit it exactly once, on every engine.
func TestConcurrentDepositsOfOneCoin(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			st := eng.open(t)
			depositRace(t, []*banktest.Env{banktest.NewOn(t, st, bank.Config{})}, 64)
			r := mustAudit(t, st)
			if r.DepositedCoins != 1 {
				t.Fatalf("audit counts %d deposited coins, want 1", r.DepositedCoins)
			}
		})
	}
}

// TestBatchedDepositRetry deposits a batch mixing good, repeated and
// double-spent coins, then retries it whole: one result per coin, and the
// retry credits nothing.
func TestBatchedDepositRetry(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			st := eng.open(t)
			e := banktest.NewOn(t, st, bank.Config{})
			payer, payerToken := e.Account(t, 1000)
			payee, payeeToken := e.Account(t, 0)
			coins := e.Withdraw(t, payer, payerToken, 10)
			paid := e.Pay(t, coins)
			other := e.Pay(t, coins[:1]) // coin 0 spent twice
			req := banktest.DepositRequest(t, payee, paid)
			req.Coins = append(req.Coins, req.Coins[3], banktest.DepositRequest(t, payee, other).Coins[0])
			tests := []struct {
				name string
				want []string
			}{
				{"first", append(repeat(api.StatusCredited, 10), api.StatusAlreadyCredited, api.StatusRefused)},
				{"retry", append(repeat(api.StatusAlreadyCredited, 11), api.StatusRefused)},
			}
			for _, tc := range tests {
				resp, err := e.Client.Deposit(context.Background(), payeeToken, req)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, r := range resp.Results {
					got = append(got, r.Status)
				}
				if !reflect.DeepEqual(got, tc.want) || resp.Balance != 1000 {
					t.Fatalf("%s: statuses %v balance %d, want %v and 1000", tc.name, got, resp.Balance, tc.want)
				}
			}
			mustAudit(t, st)
		})
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// TestTwoNodesOnePostgres runs two bank nodes, each with its own
// connection pool, over one PostgreSQL schema: one coin deposited through
// both at the same instant credits once, and a withdrawal sent under one id
// to both at once issues once.
func TestTwoNodesOnePostgres(t *testing.T) {
	dsn := testpg.Schema(t)
	st1, st2 := openPostgres(t, dsn), openPostgres(t, dsn)
	n1, n2 := banktest.NewOn(t, st1, bank.Config{}), banktest.NewOn(t, st2, bank.Config{})
	if !reflect.DeepEqual(n1.Bank.Catalogue(), n2.Bank.Catalogue()) {
		t.Fatal("the two nodes serve different catalogues")
	}
	depositRace(t, []*banktest.Env{n1, n2}, 64)

	ctx := context.Background()
	const rounds, coins = 10, 5
	acct, token := n1.Account(t, rounds*coins*100)
	for round := range rounds {
		key, _, blinded := n1.BlindCoins(t, otp.GeneralProgramName, coins)
		req := api.WithdrawRequest{ID: fmt.Sprint("same-id-", round), Account: acct, KeyID: key.KeyID, Blinded: blinded}
		var wg sync.WaitGroup
		got := make([][]string, 2)
		for i, node := range []*banktest.Env{n1, n2} {
			wg.Go(func() {
				sigs, err := node.Client.Withdraw(ctx, token, req)
				if err != nil {
					t.Errorf("round %d node %d: %v", round, i+1, err)
					return
				}
				for _, s := range sigs {
					got[i] = append(got[i], otp.EncodeBlinded(s))
				}
			})
		}
		wg.Wait()
		if len(got[0]) != coins || !reflect.DeepEqual(got[0], got[1]) {
			t.Fatalf("round %d: the nodes answered %v and %v; want the same %d signatures", round, got[0], got[1], coins)
		}
	}
	if b := n1.Balance(t, acct, token); b != 0 {
		t.Fatalf("balance %d after %d withdrawals of %d coins, want 0: a withdrawal was applied twice", b, rounds, coins)
	}
	r := mustAudit(t, st1)
	if r.IssuedCoins != rounds*coins+1 {
		t.Fatalf("audit counts %d issued coins, want %d", r.IssuedCoins, rounds*coins+1)
	}
}

// TestPostgresRestartDuringDeposits restarts a private PostgreSQL server
// while two clients deposit: requests fail with the retryable
// "unavailable" error, retries of the same requests credit nothing twice,
// and the audit holds.
func TestPostgresRestartDuringDeposits(t *testing.T) {
	testpg.DSN(t) // skips or fails as every PostgreSQL test does
	ctx := context.Background()
	c, err := testpg.Start(ctx, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	st := openPostgres(t, c.DSN)
	e := banktest.NewOn(t, st, bank.Config{})
	const requests, per = 40, 5
	payer, payerToken := e.Account(t, requests*per*100)
	payee, payeeToken := e.Account(t, 0)
	reqs := make([]api.DepositRequest, requests)
	for i := range reqs {
		reqs[i] = banktest.DepositRequest(t, payee, e.Pay(t, e.Withdraw(t, payer, payerToken, per)))
	}

	var mu sync.Mutex
	unavailable, credited := 0, 0
	deadline := time.Now().Add(90 * time.Second)
	deposit := func(req api.DepositRequest) error {
		for {
			resp, err := e.Client.Deposit(ctx, payeeToken, req)
			var apiErr *api.Error
			switch {
			case err == nil:
				mu.Lock()
				defer mu.Unlock()
				for _, r := range resp.Results {
					switch r.Status {
					case api.StatusCredited:
						credited++
					case api.StatusAlreadyCredited:
					default:
						return fmt.Errorf("coin %s: %s %s", r.Token[:8], r.Status, r.Message)
					}
				}
				return nil
			case !errors.As(err, &apiErr) || apiErr.Code != api.CodeUnavailable || apiErr.Status != 503:
				return fmt.Errorf("want a retryable unavailable error, got %w", err)
			case time.Now().After(deadline):
				return fmt.Errorf("still unavailable at the deadline: %w", err)
			}
			mu.Lock()
			unavailable++
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}
	started := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < requests; i += 2 {
				if i == 4 {
					close(started)
				}
				if err := deposit(reqs[i]); err != nil {
					errs <- fmt.Errorf("request %d: %w", i, err)
				}
			}
		})
	}
	<-started
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if unavailable == 0 {
		t.Error("no request saw the restart: the test did not test it")
	}
	if credited != requests*per {
		t.Errorf("%d coins credited, want %d", credited, requests*per)
	}
	if b := e.Balance(t, payee, payeeToken); b != requests*per*100 {
		t.Errorf("payee balance %d, want %d", b, requests*per*100)
	}
	mustAudit(t, st)
	t.Logf("%d requests answered unavailable during the restart, then retried", unavailable)
}

// TestHealthAndMetrics: /healthz follows the store's reachability, the
// metrics count deposits, refusals and double deposits, and only the
// metrics listener serves them, not the API port.
func TestHealthAndMetrics(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			st := eng.open(t)
			e := banktest.NewOn(t, st, bank.Config{})
			depositRace(t, []*banktest.Env{e}, 3)
			// The API port does not serve the metrics, even to the
			// admin; their own listener does.
			for _, token := range []string{"", banktest.AdminToken} {
				wantError(t, call(t, e, http.MethodGet, "/metrics", token, nil), http.StatusNotFound, api.CodeNotFound, "/metrics")
			}
			ms := httptest.NewServer(e.Bank.MetricsHandler())
			defer ms.Close()
			body := get(t, ms.URL+"/metrics", 200)
			for _, want := range []string{
				"otpcash_bank_coins_issued_total 1",
				"otpcash_bank_coins_deposited_total 1",
				`otpcash_bank_coins_refused_total{reason="double_deposit"} 2`,
				"otpcash_bank_double_deposit_attempts_total 2",
				`otpcash_bank_requests_total{code="200",route="POST /v1/deposits"} 3`,
				`otpcash_bank_request_duration_seconds_count{route="POST /v1/deposits"} 3`,
			} {
				if !strings.Contains(body, want+"\n") {
					t.Errorf("/metrics lacks %q", want)
				}
			}
			get(t, e.Server.URL+"/healthz", 200)
			st.Close()
			if got := get(t, e.Server.URL+"/healthz", 503); !strings.Contains(got, `"unavailable"`) {
				t.Errorf("/healthz with the store closed: %s", got)
			}
		})
	}
}

func get(t *testing.T, url string, status int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %d %s, want %d", url, resp.StatusCode, b, status)
	}
	return string(b)
}

// TestGroupedDeposits commits deposits of several requests in one group,
// as concurrent deposits share a write transaction: each request gets
// what it would get alone, in order (a retry within the group is
// already_credited, a second chain of a coin a double deposit with its
// evidence), and a request that fails (an unknown account) fails alone,
// changing nothing, while the others are credited.
func TestGroupedDeposits(t *testing.T) {
	for _, eng := range engines {
		for _, withUnknown := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/unknown account %v", eng.name, withUnknown), func(t *testing.T) {
				ctx := context.Background()
				st := eng.open(t)
				e := banktest.NewOn(t, st, bank.Config{})
				payer, payerToken := e.Account(t, 1000)
				a, aToken := e.Account(t, 0)
				b, bToken := e.Account(t, 0)
				coins := e.Withdraw(t, payer, payerToken, 5)
				paid := e.Pay(t, coins)
				twice := e.Pay(t, coins[:1]) // coin 0 on another chain
				type want struct {
					statuses []string
					balance  int64
				}
				reqs := []api.DepositRequest{
					banktest.DepositRequest(t, a, paid[:3]),
					banktest.DepositRequest(t, a, paid[:1]),
					banktest.DepositRequest(t, b, twice),
					banktest.DepositRequest(t, b, paid[4:5]),
				}
				wants := []want{
					{repeat(api.StatusCredited, 3), 300},
					{[]string{api.StatusAlreadyCredited}, 300},
					{[]string{api.StatusRefused}, 0},
					{[]string{api.StatusCredited}, 100},
				}
				if withUnknown {
					reqs = slices.Insert(reqs, 2, banktest.DepositRequest(t, "no-such-account", paid[3:4]))
					wants = slices.Insert(wants, 2, want{})
				}
				resps, errs := e.Bank.DepositTogether(ctx, reqs)
				for i, w := range wants {
					if w.statuses == nil {
						if errs[i] == nil {
							t.Fatalf("request %d, to an unknown account: %+v, want an error", i, resps[i])
						}
						continue
					}
					if errs[i] != nil {
						t.Fatalf("request %d: %v", i, errs[i])
					}
					var got []string
					for _, r := range resps[i].Results {
						got = append(got, r.Status)
					}
					if !reflect.DeepEqual(got, w.statuses) || resps[i].Balance != w.balance {
						t.Fatalf("request %d: statuses %v balance %d, want %v and %d", i, got, resps[i].Balance, w.statuses, w.balance)
					}
				}
				if r := resps[len(resps)-2].Results[0]; r.Code != api.CodeDoubleDeposit || r.Conflict == nil {
					t.Fatalf("second chain of coin 0: %+v, want a double deposit naming the key", r)
				}
				conflicts, err := e.Client.Conflicts(ctx, banktest.AdminToken)
				if err != nil {
					t.Fatal(err)
				}
				if len(conflicts) != 1 || conflicts[0].FirstAccount != a || conflicts[0].SecondAccount != b {
					t.Fatalf("conflicts %+v, want one, first %s, second %s", conflicts, a, b)
				}
				if e.Balance(t, a, aToken) != 300 || e.Balance(t, b, bToken) != 100 {
					t.Fatalf("balances %d and %d, want 300 and 100", e.Balance(t, a, aToken), e.Balance(t, b, bToken))
				}
				// Coin 3, refused with its unknown account, was not spent.
				resp, err := e.Client.Deposit(ctx, bToken, banktest.DepositRequest(t, b, paid[3:4]))
				if err != nil || resp.Results[0].Status != api.StatusCredited {
					t.Fatalf("coin 3 deposited afterwards: %+v, %v; want credited", resp, err)
				}
				mustAudit(t, st)
			})
		}
	}
}

// TestConcurrentDepositsShareSlots: many deposits at once, each verified
// with the bank's few verification slots, all complete, each credited
// once, and every slot is free again afterwards.
func TestConcurrentDepositsShareSlots(t *testing.T) {
	ctx := context.Background()
	e := banktest.New(t, bank.Config{})
	payer, payerToken := e.Account(t, 10000)
	const n = 16
	type payee struct {
		id, token string
		req       api.DepositRequest
	}
	payees := make([]payee, n)
	for i := range payees {
		p := &payees[i]
		p.id, p.token = e.Account(t, 0)
		p.req = banktest.DepositRequest(t, p.id, e.Pay(t, e.Withdraw(t, payer, payerToken, 3)))
	}
	var wg sync.WaitGroup
	for _, p := range payees {
		wg.Go(func() {
			resp, err := e.Client.Deposit(ctx, p.token, p.req)
			if err != nil || resp.Balance != 300 {
				t.Errorf("deposit to %s: %+v, %v; want a balance of 300", p.id, resp, err)
			}
		})
	}
	wg.Wait()
	if n := e.Bank.VerifySlotsInUse(); n != 0 {
		t.Fatalf("%d verification slots still held after every deposit", n)
	}
	mustAudit(t, e.Store)
}

// TestDepositGivesUpItsWait: a deposit waiting for a verification slot
// while every slot is busy stops waiting when its context ends (its
// client left), returns the context's error and credits nothing; the
// same coins deposit afterwards, and no slot stays held.
func TestDepositGivesUpItsWait(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	payer, payerToken := e.Account(t, 10000)
	payee, payeeToken := e.Account(t, 0)
	req := banktest.DepositRequest(t, payee, e.Pay(t, e.Withdraw(t, payer, payerToken, 3)))

	release := e.Bank.HoldVerifySlots()
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		resp api.DepositResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := e.Bank.DepositDirect(ctx, req)
		done <- result{resp, err}
	}()
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(time.Minute): // a hang detector, not a speed limit
		release()
		t.Fatal("the deposit still waits for a verification slot a minute after its context ended")
	}
	release()
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("deposit with its context ended: %+v, %v; want context.Canceled", r.resp, r.err)
	}
	if got := e.Balance(t, payee, payeeToken); got != 0 {
		t.Fatalf("balance %d after the abandoned deposit, want 0", got)
	}
	resp, err := e.Client.Deposit(context.Background(), payeeToken, req)
	if err != nil || resp.Balance != 300 {
		t.Fatalf("the same coins deposited afterwards: %+v, %v; want a balance of 300", resp, err)
	}
	if n := e.Bank.VerifySlotsInUse(); n != 0 {
		t.Fatalf("%d verification slots still held", n)
	}
	mustAudit(t, e.Store)
}
