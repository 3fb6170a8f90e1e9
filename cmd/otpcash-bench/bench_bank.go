package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/client"
	"github.com/otpcash/otpcash/internal/cli"
	"github.com/otpcash/otpcash/otp"
)

// benchBankRow is one line of `bench bank`: one engine at one level of
// concurrency.
type benchBankRow struct {
	Engine              string
	Clients             int
	Coins               int
	WithdrawPerSec      float64
	SignBoundPerSec     float64 // pure blind signing, no storage, same run
	WithdrawToBound     float64
	DepositPerSec       float64
	VerifyBoundPerSec   float64 // pure verification, no storage, same coins
	DepositToBoundRatio float64
	DepositCPUPerCoin   time.Duration // this process's CPU time per coin deposited
}

type benchBankFlags struct {
	dbs     []string
	clients []int
	coins   int
	batch   int
	csvPath string
	profile string
}

func newBenchBankCmd() *cobra.Command {
	var f benchBankFlags
	cmd := &cobra.Command{
		Use:   "bank --db DSN [--db DSN]",
		Short: "Bank throughput: withdraw and deposit coins/s per engine and client count",
		Long: `bank measures the bank's throughput over its HTTP API on loopback, for each
--db given (sqlite:PATH or postgres://...; use a scratch database: the run
creates accounts and coins in it), at 1, 2 and 8 concurrent clients:

  withdraw   coins/s issued (sign, record, debit: one transaction a request)
  sign bound coins/s the machine signs blindly with no storage at all,
             measured in the same run, requests of the same size
  withdraw/bound
  deposit    coins/s credited (verify in parallel, then one transaction a
             request; each client deposits to its own account)
  bound      coins/s the machine verifies with no storage at all, measured
             in the same run on the same coins (the checks of a deposit)
  ratio      deposit / bound

  deposit CPU  microseconds of this process's CPU time (bank and clients,
             not the PostgreSQL server) per coin deposited: unlike coins/s,
             it does not fall when other programs take the cores

Coins travel in batches of --batch per request. Paying the coins between
the two phases is not timed. Prints a table, and CSV to --csv (- for
standard output). --profile DIR writes a CPU profile of each timed deposit
phase to DIR/deposit-ENGINE-N.pprof (N clients), for go tool pprof.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.coins < 1 || f.batch < 1 || f.batch > 1000 || len(f.clients) == 0 {
				return fmt.Errorf("%w: --coins and --batch (at most 1000) must be positive, --clients not empty", errUsage)
			}
			var rows []benchBankRow
			for _, db := range f.dbs {
				r, err := benchBankEngine(cmd.Context(), db, f, cmd.ErrOrStderr())
				if err != nil {
					return fmt.Errorf("%s: %w", engineName(db), err)
				}
				rows = append(rows, r...)
			}
			if err := writeBenchBankTable(cmd.OutOrStdout(), rows); err != nil {
				return err
			}
			switch f.csvPath {
			case "":
				return nil
			case "-":
				return writeBenchBankCSV(cmd.OutOrStdout(), rows)
			}
			out, err := os.Create(f.csvPath)
			if err != nil {
				return err
			}
			if err := writeBenchBankCSV(out, rows); err != nil {
				out.Close()
				return err
			}
			return out.Close()
		},
	}
	cmd.Flags().StringArrayVar(&f.dbs, "db", nil, "storage to measure, repeatable: sqlite:PATH or postgres://... (required)")
	cmd.Flags().IntSliceVar(&f.clients, "clients", []int{1, 2, 8}, "numbers of concurrent clients")
	cmd.Flags().IntVar(&f.coins, "coins", 4000, "coins withdrawn and deposited at each client count")
	cmd.Flags().IntVar(&f.batch, "batch", 100, "coins per request")
	cmd.Flags().StringVar(&f.csvPath, "csv", "", "also write the results as CSV to this file (- for standard output)")
	cmd.Flags().StringVar(&f.profile, "profile", "", "write a CPU profile of each deposit phase into this directory")
	_ = cmd.MarkFlagRequired("db")
	return cmd
}

// engineName is what the table shows of a --db value: never the DSN,
// which may hold a password.
func engineName(dsn string) string {
	scheme, _, _ := strings.Cut(dsn, ":")
	if scheme == "postgresql" {
		return "postgres"
	}
	return scheme
}

// benchBankEngine runs every client count on one engine.
func benchBankEngine(ctx context.Context, dsn string, f benchBankFlags, progress io.Writer) ([]benchBankRow, error) {
	st, err := cli.OpenStore(ctx, dsn, false)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	admin := bank.NewToken()
	b, err := bank.New(ctx, st, bank.Config{
		AdminToken: admin, ExchangeKeyRate: rate.Inf, MaxCoinsPerRequest: 1000,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- bank.Serve(sctx, ln, b.Handler(), slog.New(slog.DiscardHandler)) }()
	defer func() { stop(); <-served }()
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	c := client.New("http://"+ln.Addr().String(), hc)

	var rows []benchBankRow
	for _, n := range f.clients {
		fmt.Fprintf(progress, "bench bank: %s, %d clients, %d coins\n", engineName(dsn), n, f.coins)
		r, err := benchBankLevel(ctx, b, c, admin, n, f, engineName(dsn))
		if err != nil {
			return nil, err
		}
		r.Engine = engineName(dsn)
		rows = append(rows, r)
	}
	a, err := bank.Audit(ctx, st)
	if err != nil {
		return nil, err
	}
	if !a.OK() {
		return nil, fmt.Errorf("audit after the run failed: %v", a.Problems)
	}
	return rows, nil
}

// benchClient is one client's accounts and coins.
type benchClient struct {
	payer, payerToken string
	payee, payeeToken string
	held              []benchHeld
	deposits          []api.DepositRequest
}

type benchHeld struct {
	sb  otp.Sandbox
	key ed25519.PrivateKey
}

// benchBankLevel measures n concurrent clients.
func benchBankLevel(ctx context.Context, b *bank.Bank, c *client.Client, admin string, n int, f benchBankFlags, engine string) (benchBankRow, error) {
	row := benchBankRow{Clients: n, Coins: f.coins}
	cat, err := c.Catalogue(ctx)
	if err != nil {
		return row, err
	}
	coinKey, err := cat.CoinKey(otp.GeneralProgramName, 100, time.Now())
	if err != nil {
		return row, err
	}
	clients := make([]*benchClient, n)
	for i := range clients {
		bc := &benchClient{}
		for _, acct := range []*[2]*string{{&bc.payer, &bc.payerToken}, {&bc.payee, &bc.payeeToken}} {
			a, err := c.CreateAccount(ctx, admin)
			if err != nil {
				return row, err
			}
			*acct[0], *acct[1] = a.ID, a.Token
		}
		share := f.coins / n
		if i < f.coins%n {
			share++
		}
		if _, err := c.Credit(ctx, admin, bc.payer, int64(share)*100); err != nil {
			return row, err
		}
		bc.held = make([]benchHeld, 0, share)
		clients[i] = bc
	}

	// Withdraw: each client takes its share in batches.
	d, err := timed(ctx, clients, func(ctx context.Context, bc *benchClient) error {
		for len(bc.held) < cap(bc.held) {
			k := min(f.batch, cap(bc.held)-len(bc.held))
			keys := make([]ed25519.PrivateKey, k)
			pubs := make([]ed25519.PublicKey, k)
			for j := range keys {
				pub, priv, err := ed25519.GenerateKey(rand.Reader)
				if err != nil {
					return err
				}
				keys[j], pubs[j] = priv, pub
			}
			coins, err := c.WithdrawCoins(ctx, client.Account{ID: bc.payer, Token: bc.payerToken}, "bench-"+bank.NewToken()[:16], cat.Issuer, coinKey, pubs,
				func(int) io.Reader { return rand.Reader })
			if err != nil {
				return err
			}
			for j := range coins {
				bc.held = append(bc.held, benchHeld{sb: otp.Sandbox{Coin: coins[j], Chain: []otp.Link{}}, key: keys[j]})
			}
		}
		return nil
	})
	if err != nil {
		return row, fmt.Errorf("withdraw: %w", err)
	}
	row.WithdrawPerSec = float64(f.coins) / d.Seconds()

	// The signing bound: as many blinded messages, in requests of the same
	// size, signed with no storage.
	if row.SignBoundPerSec, err = benchSignBound(ctx, b, cat.Issuer, coinKey, f); err != nil {
		return row, fmt.Errorf("signing bound: %w", err)
	}
	row.WithdrawToBound = row.WithdrawPerSec / row.SignBoundPerSec

	// Pay every coin to the payee (not timed).
	for _, bc := range clients {
		if err := benchPay(ctx, c, cat, bc, f.batch); err != nil {
			return row, fmt.Errorf("pay: %w", err)
		}
	}

	// The verification bound, on the same requests, before they are spent.
	var all []api.DepositRequest
	for _, bc := range clients {
		all = append(all, bc.deposits...)
	}
	start := time.Now()
	for _, req := range all {
		ok, err := b.CheckDeposit(ctx, req)
		if err != nil {
			return row, err
		}
		if ok != len(req.Coins) {
			return row, fmt.Errorf("verification: %d of %d coins passed", ok, len(req.Coins))
		}
	}
	row.VerifyBoundPerSec = float64(f.coins) / time.Since(start).Seconds()

	// Deposit.
	stopProfile, err := startProfile(f.profile, fmt.Sprintf("deposit-%s-%d.pprof", engine, n))
	if err != nil {
		return row, err
	}
	cpu := cpuUsage()
	d, err = timed(ctx, clients, func(ctx context.Context, bc *benchClient) error {
		for _, req := range bc.deposits {
			resp, err := c.Deposit(ctx, bc.payeeToken, req)
			if err != nil {
				return err
			}
			for _, r := range resp.Results {
				if r.Status != api.StatusCredited {
					return fmt.Errorf("coin %s not credited: %s %s", r.Token[:8], r.Status, r.Message)
				}
			}
		}
		return nil
	})
	used := cpuUsage().since(cpu).total()
	if perr := stopProfile(); err == nil {
		err = perr
	}
	if err != nil {
		return row, fmt.Errorf("deposit: %w", err)
	}
	row.DepositPerSec = float64(f.coins) / d.Seconds()
	row.DepositCPUPerCoin = used / time.Duration(f.coins)
	row.DepositToBoundRatio = row.DepositPerSec / row.VerifyBoundPerSec
	return row, nil
}

// benchSignBound returns the coins/s b signs blindly under coinKey with
// no storage: f.coins fresh blinded coins, f.batch to a request, one
// request after another (each signed on all cores, as a withdrawal is).
func benchSignBound(ctx context.Context, b *bank.Bank, issuer string, coinKey *otp.IssuerKey, f benchBankFlags) (float64, error) {
	blinded := make([][]byte, f.coins)
	for i := range blinded {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return 0, err
		}
		bc, err := otp.NewBlindCoin(issuer, coinKey, pub, rand.Reader)
		if err != nil {
			return 0, err
		}
		blinded[i] = bc.Blinded()
	}
	start := time.Now()
	for batch := range slices.Chunk(blinded, f.batch) {
		if err := b.CheckWithdraw(ctx, coinKey.KeyID, batch); err != nil {
			return 0, err
		}
	}
	return float64(f.coins) / time.Since(start).Seconds(), nil
}

// startProfile starts a CPU profile into dir/name and returns the function
// that stops it; with no dir, it does nothing.
func startProfile(dir, name string) (stop func() error, err error) {
	if dir == "" {
		return func() error { return nil }, nil
	}
	out, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		return nil, fmt.Errorf("profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return out.Close()
	}, nil
}

// timed runs fn for every client at once and returns the wall time.
func timed(ctx context.Context, clients []*benchClient, fn func(context.Context, *benchClient) error) (time.Duration, error) {
	g, gctx := errgroup.WithContext(ctx)
	var ready sync.WaitGroup
	ready.Add(len(clients))
	gate := make(chan struct{})
	for _, bc := range clients {
		g.Go(func() error {
			ready.Done()
			<-gate
			return fn(gctx, bc)
		})
	}
	ready.Wait()
	start := time.Now()
	close(gate)
	err := g.Wait()
	return time.Since(start), err
}

// benchPay transfers a client's coins to fresh exchange keys certified by
// the bank and prepares the deposit requests of the payee.
func benchPay(ctx context.Context, c *client.Client, cat *otp.Catalogue, bc *benchClient, batch int) error {
	for lo := 0; lo < len(bc.held); lo += batch {
		part := bc.held[lo:min(lo+batch, len(bc.held))]
		pubs := make([]ed25519.PublicKey, len(part))
		privs := make([]ed25519.PrivateKey, len(part))
		for i := range part {
			var err error
			if pubs[i], privs[i], err = ed25519.GenerateKey(rand.Reader); err != nil {
				return err
			}
		}
		xks, err := c.CertifyExchangeKeys(ctx, cat, pubs)
		if err != nil {
			return err
		}
		req := api.DepositRequest{Account: bc.payee, Coins: make([]api.DepositCoin, len(part))}
		for i, h := range part {
			sb := h.sb
			if err := sb.Transfer(h.key, xks[i]); err != nil {
				return err
			}
			proof, err := sb.DepositProof(privs[i], bc.payee)
			if err != nil {
				return err
			}
			req.Coins[i] = api.DepositCoin{Sandbox: sb, Proof: proof}
		}
		bc.deposits = append(bc.deposits, req)
	}
	return nil
}

func writeBenchBankTable(w io.Writer, rows []benchBankRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "engine\tclients\tcoins\twithdraw coins/s\tsign bound coins/s\twithdraw/bound\tdeposit coins/s\tverify bound coins/s\tdeposit/bound\tdeposit CPU us/coin\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.0f\t%.2f\t%.0f\t%.0f\t%.2f\t%d\t\n", r.Engine, r.Clients, r.Coins,
			r.WithdrawPerSec, r.SignBoundPerSec, r.WithdrawToBound, r.DepositPerSec, r.VerifyBoundPerSec, r.DepositToBoundRatio, r.DepositCPUPerCoin.Microseconds())
	}
	return tw.Flush()
}

func writeBenchBankCSV(w io.Writer, rows []benchBankRow) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"engine", "clients", "coins", "withdraw_coins_per_s", "sign_bound_coins_per_s", "withdraw_to_bound_ratio", "deposit_coins_per_s", "verify_bound_coins_per_s", "deposit_to_bound_ratio", "deposit_cpu_us_per_coin"})
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	for _, r := range rows {
		cw.Write([]string{r.Engine, strconv.Itoa(r.Clients), strconv.Itoa(r.Coins),
			f(r.WithdrawPerSec), f(r.SignBoundPerSec), f(r.WithdrawToBound), f(r.DepositPerSec), f(r.VerifyBoundPerSec), f(r.DepositToBoundRatio), strconv.FormatInt(r.DepositCPUPerCoin.Microseconds(), 10)})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return errors.Join(errors.New("write CSV"), err)
	}
	return nil
}
