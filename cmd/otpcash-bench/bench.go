package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/internal/cli"
	"github.com/otpcash/otpcash/internal/testtpm"
	"github.com/otpcash/otpcash/wallet"
)

// The paper's ramp (Mainetti et al. 2023, Section 3.1): each amount of
// coins sent 50 times in a row.
var paperAmounts = []int{5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500}

// coinValue is the value of every coin of the ramp's bank, in cents: the
// paper's one coin per euro.
const coinValue = 100

type rampFlags struct {
	reps      int
	amounts   []int
	link      string
	out       string
	transport bool
	payee     string
	vault     string
	holding   int
}

func newBenchRampCmd() *cobra.Command {
	var f rampFlags
	cmd := &cobra.Command{
		Use:   "ramp",
		Short: "The paper's ramp test: 5 to 500 coins, each amount R times, between two wallet processes",
		Long: `ramp reproduces the ramp test of the paper's evaluation (Section 3.1, Figures 7
to 10). It starts a bank on an embedded SQLite database and two wallet
processes (a payer and a payee, each this binary), and sends 5, 10, 20, 30,
40, 50, 100, 200, 300, 400 and 500 coins from the payer to the payee over
loopback TCP, each amount --reps times in a row, with the whole protocol:
Noise channel, every check, sealing, durable vault writes on both sides,
signed receipts. Before each run, outside the timed part, the payer
withdraws exactly the coins it will send, so every coin sent is fresh from
withdrawal (one transfer long), while the payee deposits what the last
run paid it, so that neither vault grows from run to run. The payee
certifies enough exchange keys before each run: in the clear, as a
merchant's are and as the paper's were (--payee merchant, the default), or
blindly, as an anonymous person's are (--payee anonymous: the bank's blind
RSA signatures then double the untimed part). A payer verifies either kind
of certificate at about the same cost.

--holding N has the payer hold N other coins throughout, withdrawn before
the first run, as a wallet in use holds more than it pays: what a payment
costs should not grow with them. The ramp checks after every run that the
payer still holds them.

Each amount is also run with the vault and all signature work switched off
(transport only, the paper's Figures 9 and 10): the same messages of the
same sizes go over the same Noise channel, but nothing is signed, verified
or stored.

It prints a table and writes ramp.csv (one row per amount), ramp-runs.csv
(one row per run) and ramp.svg and ramp.png (the chart, with the paper's
published points) into --out. CPU time is each wallet process's own, from
the operating system's accounting (getrusage). The energy per coin is an
ESTIMATE from CPU time and bytes through the model in docs/PERFORMANCE.md,
not a measurement.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lk link
			if f.link != "" {
				var err error
				if lk, err = parseLink(f.link); err != nil {
					return fmt.Errorf("%w: --link: %v", errUsage, err)
				}
			}
			if f.reps < 1 {
				return fmt.Errorf("%w: --reps must be at least 1", errUsage)
			}
			if f.holding < 0 {
				return fmt.Errorf("%w: --holding must not be negative", errUsage)
			}
			if f.payee != "merchant" && f.payee != "anonymous" {
				return fmt.Errorf("%w: --payee must be merchant or anonymous, not %q", errUsage, f.payee)
			}
			if f.vault != wallet.VaultSoftware && f.vault != wallet.VaultTPM {
				return fmt.Errorf("%w: --vault must be %s or %s, not %q", errUsage, wallet.VaultSoftware, wallet.VaultTPM, f.vault)
			}
			return runRamp(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f, lk)
		},
	}
	cmd.Flags().IntVar(&f.reps, "reps", 50, "repetitions of each amount (the paper: 50)")
	cmd.Flags().IntSliceVar(&f.amounts, "amounts", paperAmounts, "amounts of coins to send")
	cmd.Flags().StringVar(&f.link, "link", "", `throttle the link to a bit rate and a one-way latency, e.g. "1Mbit,10ms" (a Bluetooth-like radio); empty: plain loopback`)
	cmd.Flags().StringVar(&f.out, "out", "ramp", "directory for the CSV files and the chart")
	cmd.Flags().BoolVar(&f.transport, "transport-only", true, "also run each amount with the vault and signatures switched off")
	cmd.Flags().StringVar(&f.vault, "vault", wallet.VaultSoftware, `the wallets' vault: "software" or "tpm" (each wallet on a swtpm of its own, which the ramp starts and removes)`)
	cmd.Flags().IntVar(&f.holding, "holding", 0, "coins the payer holds besides those it sends, throughout (a wallet in use; the paper's: 0)")
	cmd.Flags().StringVar(&f.payee, "payee", "merchant", `how the payee's exchange keys are certified: "merchant" (in the clear, as in the paper) or "anonymous" (blind RSA)`)
	return cmd
}

// A peer process is driven over its stdin and stdout, one JSON object a
// line each way: a peerRequest, then its peerReply.
type peerRequest struct {
	Op       string `json:"op"` // init, withdraw, restock, receive, pay
	Dir      string `json:"dir,omitempty"`
	Bank     string `json:"bank,omitempty"`
	Account  string `json:"account,omitempty"`
	Token    string `json:"token,omitempty"`
	Link     string `json:"link,omitempty"`
	Listen   bool   `json:"listen,omitempty"`   // the payee
	Merchant bool   `json:"merchant,omitempty"` // the payee's keys certified in the clear
	N        int    `json:"n,omitempty"`
	Addr     string `json:"addr,omitempty"`
	Bare     bool   `json:"bare,omitempty"` // transport only
	Vault    string `json:"vault,omitempty"`
	TPM      string `json:"tpm,omitempty"` // the swtpm of a TPM vault
}

type peerReply struct {
	Err   string        `json:"err,omitempty"`
	Addr  string        `json:"addr,omitempty"`
	Wall  time.Duration `json:"wall,omitempty"`
	CPU   cpuUse        `json:"cpu"`
	Bytes int64         `json:"bytes,omitempty"`
	Coins int           `json:"coins,omitempty"`
	Held  int           `json:"held,omitempty"` // the payer's coins after a payment
}

// cpuUse is the CPU time a process used, as the operating system accounts
// it (getrusage), and its minor page faults. The system part is the
// kernel's work for the process: its system calls (the socket, the
// vault's writes and fsyncs) and its page faults, each a first touch of
// memory the Go heap grew into or had handed back.
type cpuUse struct {
	User   time.Duration `json:"user"`
	Sys    time.Duration `json:"sys"`
	Faults int64         `json:"faults"`
}

func (u cpuUse) total() time.Duration { return u.User + u.Sys }

// since is the use from then to u.
func (u cpuUse) since(then cpuUse) cpuUse {
	return cpuUse{User: u.User - then.User, Sys: u.Sys - then.Sys, Faults: u.Faults - then.Faults}
}

// peer is a running wallet process.
type peer struct {
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
}

func startPeer(ctx context.Context, name string, stderr io.Writer) (*peer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "ramp-peer")
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the %s process: %w", name, err)
	}
	return &peer{name: name, cmd: cmd, in: in, out: bufio.NewScanner(out)}, nil
}

func (p *peer) send(r peerRequest) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = p.in.Write(append(b, '\n'))
	return err
}

func (p *peer) reply(op string) (peerReply, error) {
	if !p.out.Scan() {
		return peerReply{}, fmt.Errorf("%s process: %s: no reply: %v", p.name, op, p.out.Err())
	}
	var r peerReply
	if err := json.Unmarshal(p.out.Bytes(), &r); err != nil {
		return r, fmt.Errorf("%s process: %s: %w", p.name, op, err)
	}
	if r.Err != "" {
		return r, fmt.Errorf("%s process: %s: %s", p.name, op, r.Err)
	}
	return r, nil
}

func (p *peer) call(r peerRequest) (peerReply, error) {
	if err := p.send(r); err != nil {
		return peerReply{}, fmt.Errorf("%s process: %s: %w", p.name, r.Op, err)
	}
	return p.reply(r.Op)
}

// stop ends the process by closing its input, and waits for it.
func (p *peer) stop() error {
	p.in.Close()
	return p.cmd.Wait()
}

// rampRun is one session of the ramp, as both sides measured it.
type rampRun struct {
	coins      int
	bare       bool
	wall       time.Duration // the payer's, from Pay's start to the payee's done
	payerCPU   cpuUse
	payeeCPU   cpuUse
	wire       int64 // both directions, handshake included
	repetition int
}

func runRamp(ctx context.Context, stdout, stderr io.Writer, f rampFlags, lk link) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "otpcash-ramp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The bank: embedded, on loopback, certifying exchange keys without
	// the per-client rate limit a public bank has.
	eb, err := cli.StartEmbeddedBank(ctx, dir, bank.Config{Denominations: denom.Set{coinValue}, ExchangeKeyRate: rate.Inf})
	if err != nil {
		return err
	}
	defer eb.Close()
	bk, bankURL := eb.Bank, eb.URL

	total := 0
	for _, n := range f.amounts {
		if n < 1 {
			return fmt.Errorf("%w: --amounts: %d is not a number of coins", errUsage, n)
		}
		total += n * f.reps
	}
	total += f.holding
	account, token, err := bk.CreateAccount(ctx)
	if err != nil {
		return err
	}
	if _, err := bk.Credit(ctx, account, int64(total)*coinValue); err != nil {
		return err
	}

	payer, err := startPeer(ctx, "payer", stderr)
	if err != nil {
		return err
	}
	defer payer.stop()
	payee, err := startPeer(ctx, "payee", stderr)
	if err != nil {
		return err
	}
	defer payee.stop()
	payerInit := peerRequest{Op: "init", Dir: filepath.Join(dir, "payer"), Bank: bankURL, Account: account, Token: token, Vault: f.vault}
	payeeInit := peerRequest{Op: "init", Dir: filepath.Join(dir, "payee"), Bank: bankURL, Link: f.link, Listen: true, Merchant: f.payee == "merchant", Vault: f.vault}
	if f.vault == wallet.VaultTPM {
		// A swtpm serves one connection at a time, and an open TPM
		// vault holds one: each wallet has its own.
		for _, r := range []*peerRequest{&payerInit, &payeeInit} {
			addr, stop, err := testtpm.Run(stderr)
			if err != nil {
				return fmt.Errorf("--vault tpm: %w", err)
			}
			defer stop()
			r.TPM = addr
		}
	}
	if _, err := payer.call(payerInit); err != nil {
		return err
	}
	for left := f.holding; left > 0; left -= 500 { // the bank signs at most 1,000 a request
		if _, err := payer.call(peerRequest{Op: "withdraw", N: min(left, 500)}); err != nil {
			return err
		}
	}
	if payeeInit.Account, payeeInit.Token, err = bk.CreateAccount(ctx); err != nil {
		return err
	}
	r, err := payee.call(payeeInit)
	if err != nil {
		return err
	}
	addr := r.Addr

	linkText := "loopback TCP"
	if f.link != "" {
		linkText = "loopback TCP throttled to " + lk.String()
	}
	fmt.Fprintf(stdout, "otpcash ramp: %v coins, %d runs each, payer and payee in separate processes, %s, %s vaults.\n", f.amounts, f.reps, linkText, f.vault)
	fmt.Fprintf(stdout, "Coins are withdrawn fresh before each run, and the payee deposits the last run's meanwhile, outside the timed part: every coin sent is one transfer long.\n")
	if f.holding > 0 {
		fmt.Fprintf(stdout, "The payer holds %d other coins throughout, as a wallet in use does.\n", f.holding)
	}
	if f.payee == "merchant" {
		fmt.Fprintf(stdout, "The payee's exchange keys are certified in the clear (a merchant's, as in the paper).\n\n")
	} else {
		fmt.Fprintf(stdout, "The payee's exchange keys are blind-certified (an anonymous person's).\n\n")
	}

	runsCSV, err := os.Create(filepath.Join(f.out, "ramp-runs.csv"))
	if err != nil {
		return err
	}
	defer runsCSV.Close()
	rw := csv.NewWriter(runsCSV)
	rw.Write([]string{"coins", "repetition", "mode", "wall_s", "payer_cpu_s", "payee_cpu_s", "wire_bytes",
		"payer_sys_s", "payee_sys_s", "payer_page_faults", "payee_page_faults"})

	start := time.Now()
	var rows []rampRow
	for _, n := range f.amounts {
		row := rampRow{coins: n, reps: f.reps}
		for _, bare := range []bool{false, true} {
			if bare && !f.transport {
				continue
			}
			for i := range f.reps {
				ru, err := rampOnce(payer, payee, addr, n, bare, f.holding)
				if err != nil {
					return err
				}
				ru.repetition = i + 1
				row.add(ru)
				mode := "full"
				if bare {
					mode = "transport"
				}
				rw.Write([]string{strconv.Itoa(n), strconv.Itoa(i + 1), mode, secs(ru.wall), secs(ru.payerCPU.total()), secs(ru.payeeCPU.total()), strconv.FormatInt(ru.wire, 10),
					secs(ru.payerCPU.Sys), secs(ru.payeeCPU.Sys), strconv.FormatInt(ru.payerCPU.Faults, 10), strconv.FormatInt(ru.payeeCPU.Faults, 10)})
			}
		}
		rows = append(rows, row)
		fmt.Fprintf(stderr, "ramp: %d coins done (%s so far)\n", n, time.Since(start).Round(time.Second))
	}
	rw.Flush()
	if err := rw.Error(); err != nil {
		return err
	}
	printRamp(stdout, rows, f.transport)
	if err := writeRampCSV(filepath.Join(f.out, "ramp.csv"), rows); err != nil {
		return err
	}
	title := "otpcash ramp test, " + linkText
	for _, ext := range []string{"svg", "png"} {
		if err := plotRamp(filepath.Join(f.out, "ramp."+ext), title, rows, f.transport); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
	}
	fmt.Fprintf(stdout, "\nwrote %s, %s, %s and %s in %s\n", "ramp.csv", "ramp-runs.csv", "ramp.svg", "ramp.png", time.Since(start).Round(time.Second))

	if err := errors.Join(payer.stop(), payee.stop()); err != nil {
		return fmt.Errorf("wallet process: %w", err)
	}
	return eb.Close()
}

// rampOnce supplies n coins and n exchange keys, untimed, then has the
// payer pay them and collects both sides' measurements. The payer holds
// another holding coins before and after.
func rampOnce(payer, payee *peer, addr string, n int, bare bool, holding int) (rampRun, error) {
	if !bare {
		// Untimed, and independent of each other, so at the same time: the
		// payer withdraws while the payee deposits what the last run paid
		// it, so that its vault stays as small from run to run as the
		// payer's and later runs do not pay for earlier ones, and
		// certifies keys for this run.
		if err := payer.send(peerRequest{Op: "withdraw", N: n}); err != nil {
			return rampRun{}, err
		}
		_, payeeErr := payee.call(peerRequest{Op: "restock", N: n})
		if _, err := payer.reply("withdraw"); err != nil {
			return rampRun{}, err
		}
		if payeeErr != nil {
			return rampRun{}, payeeErr
		}
	}
	// The payee's listener is open, so the payer may dial before the
	// payee gets to Accept.
	if err := payee.send(peerRequest{Op: "receive", Bare: bare}); err != nil {
		return rampRun{}, err
	}
	paid, err := payer.call(peerRequest{Op: "pay", N: n, Addr: addr, Bare: bare})
	if err != nil {
		return rampRun{}, err
	}
	got, err := payee.reply("receive")
	if err != nil {
		return rampRun{}, err
	}
	if paid.Coins != n || got.Coins != n {
		return rampRun{}, fmt.Errorf("run of %d coins: payer sent %d, payee received %d", n, paid.Coins, got.Coins)
	}
	if !bare && paid.Held != holding {
		return rampRun{}, fmt.Errorf("run of %d coins: the payer holds %d coins after it, not the %d it holds besides", n, paid.Held, holding)
	}
	return rampRun{coins: n, bare: bare, wall: paid.Wall, payerCPU: paid.CPU, payeeCPU: got.CPU, wire: got.Bytes}, nil
}

// rampRow sums up the runs of one amount.
type rampRow struct {
	coins, reps int
	full, bare  stats // wall seconds
	payerCPU    stats // seconds per coin, full protocol
	payeeCPU    stats
	payerSys    stats // of which the kernel's
	payeeSys    stats
	wire        stats // bytes per coin, full protocol
	bareWire    stats
}

func (r *rampRow) add(ru rampRun) {
	n := float64(ru.coins)
	if ru.bare {
		r.bare.add(ru.wall.Seconds())
		r.bareWire.add(float64(ru.wire) / n)
		return
	}
	r.full.add(ru.wall.Seconds())
	r.payerCPU.add(ru.payerCPU.total().Seconds() / n)
	r.payeeCPU.add(ru.payeeCPU.total().Seconds() / n)
	r.payerSys.add(ru.payerCPU.Sys.Seconds() / n)
	r.payeeSys.add(ru.payeeCPU.Sys.Seconds() / n)
	r.wire.add(float64(ru.wire) / n)
}

// energy is the payer's estimated charge per coin, in mAh.
func (r *rampRow) energy() float64 {
	return estimateMAh(r.payerCPU.mean(), r.wire.mean())
}

type stats struct{ xs []float64 }

func (s *stats) add(x float64) { s.xs = append(s.xs, x) }

func (s *stats) mean() float64 {
	if len(s.xs) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, x := range s.xs {
		sum += x
	}
	return sum / float64(len(s.xs))
}

// sd is the sample standard deviation.
func (s *stats) sd() float64 {
	if len(s.xs) < 2 {
		return math.NaN()
	}
	m := s.mean()
	var sum float64
	for _, x := range s.xs {
		sum += (x - m) * (x - m)
	}
	return math.Sqrt(sum / float64(len(s.xs)-1))
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 6, 64) }

func printRamp(w io.Writer, rows []rampRow, transport bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "coins\tmean s\tsd s\tms/coin\ttransport-only mean s\tsd s\tpayer CPU us/coin\tpayee CPU us/coin\tof which system\tbytes/coin\tenergy mAh/coin (ESTIMATE)\t")
	for _, r := range rows {
		bm, bs := "-", "-"
		if transport {
			bm, bs = fmt.Sprintf("%.4f", r.bare.mean()), fmt.Sprintf("%.4f", r.bare.sd())
		}
		fmt.Fprintf(tw, "%d\t%.4f\t%.4f\t%.3f\t%s\t%s\t%.0f\t%.0f\t%.0f + %.0f\t%.0f\t%.2g\t\n",
			r.coins, r.full.mean(), r.full.sd(), 1e3*r.full.mean()/float64(r.coins), bm, bs,
			1e6*r.payerCPU.mean(), 1e6*r.payeeCPU.mean(), 1e6*r.payerSys.mean(), 1e6*r.payeeSys.mean(), r.wire.mean(), r.energy())
	}
	tw.Flush()
	fmt.Fprintf(w, "\nThe paper (iPhone 7, secure enclave, Bluetooth): about %.2f s per coin, %d coins in %.0f s, more than %.0f s for %d; at most %.3f mAh per coin (measured from the battery).\n",
		paperSecondsPerCoin, paper100Coins, paper100Seconds, paper500Seconds, paper500Coins, paperMAhPerCoin)
	fmt.Fprintf(w, "Energy here is an ESTIMATE for the payer's phone: %s (docs/PERFORMANCE.md).\n", energyModel)
}

func writeRampCSV(path string, rows []rampRow) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"coins", "reps", "mean_s", "sd_s", "s_per_coin", "transport_mean_s", "transport_sd_s",
		"payer_cpu_us_per_coin", "payee_cpu_us_per_coin", "wire_bytes_per_coin", "transport_wire_bytes_per_coin",
		"estimated_payer_mah_per_coin", "paper_mean_s", "payer_sys_us_per_coin", "payee_sys_us_per_coin"})
	g := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	for _, r := range rows {
		n := float64(r.coins)
		w.Write([]string{strconv.Itoa(r.coins), strconv.Itoa(r.reps), g(r.full.mean()), g(r.full.sd()), g(r.full.mean() / n),
			g(r.bare.mean()), g(r.bare.sd()), g(1e6 * r.payerCPU.mean()), g(1e6 * r.payeeCPU.mean()),
			g(r.wire.mean()), g(r.bareWire.mean()), g(r.energy()), g(paperSecondsPerCoin * n),
			g(1e6 * r.payerSys.mean()), g(1e6 * r.payeeSys.mean())})
	}
	w.Flush()
	return errors.Join(w.Error(), f.Close())
}

// parseLink reads "RATE,LATENCY", such as "1Mbit,10ms" or "250kbit/s,5ms".
func parseLink(s string) (link, error) {
	rateText, latText, ok := strings.Cut(s, ",")
	if !ok {
		return link{}, fmt.Errorf("%q: want RATE,LATENCY, e.g. 1Mbit,10ms", s)
	}
	num := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(rateText)), "/s")
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSuffix(num, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) {
		return link{}, fmt.Errorf("rate %q: want a positive number of bit, kbit, Mbit or Gbit per second", rateText)
	}
	lat, err := time.ParseDuration(strings.TrimSpace(latText))
	if err != nil || lat < 0 {
		return link{}, fmt.Errorf("latency %q: want a duration such as 10ms", latText)
	}
	return link{bitsPerSecond: v * mult, latency: lat}, nil
}
