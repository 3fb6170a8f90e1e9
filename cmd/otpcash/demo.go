package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/otpcash/otpcash/amount"
	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/internal/cli"
	"github.com/otpcash/otpcash/internal/testtpm"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/wallet"
	"github.com/otpcash/otpcash/wallet/recovery"
)

func newDemoCmd() *cobra.Command {
	var (
		keep bool
		kind string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole story on one machine: withdraw, pay offline twice, deposit, audit",
		Long: `demo starts a bank on an embedded SQLite database on a loopback port, makes three
wallets (Alice, Bob, Carol) in a temporary directory, and runs the scheme of
the paper end to end: Alice withdraws 10.00, pays Bob 7.00 offline, Bob pays
3.00 on to Carol, everyone deposits. Then programmable money: Alice withdraws a
grocery voucher, which an electronics shop cannot take (refused offline, with
the reason) and a grocer can, and the grocer deposits it. Last, a payment with
no live link: Erin's shop shows a payment request, Alice pays it with a token,
Erin hands back a receipt (the codes are printed and saved as PNG QR codes in
the demo's directory). Then Frank loses his phone after paying, and his
recovery phrase and backup get back, after the deposit deadline, exactly what
he had not spent. The bank's audit must balance. It exits non-zero if any
check fails.

With --vault tpm every wallet is sealed to a TPM 2.0 of its own: the demo
starts a fresh software TPM (swtpm, from the Debian packages swtpm and
swtpm-tools) for each wallet and removes it at the end. It leaves this
machine's TPM alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := os.MkdirTemp("", "otpcash-demo-")
			if err != nil {
				return err
			}
			if !keep {
				defer os.RemoveAll(dir)
			}
			if kind != wallet.VaultSoftware && kind != wallet.VaultTPM {
				return fmt.Errorf("%w: --vault must be %s or %s, not %q", errUsage, wallet.VaultSoftware, wallet.VaultTPM, kind)
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), dir, kind)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory (bank database and wallets) for inspection")
	cmd.Flags().StringVar(&kind, "vault", wallet.VaultSoftware, `wallets' protector: "software", or "tpm" (each on a fresh swtpm the demo starts)`)
	return cmd
}

// demo narrates and checks the story; the first failed check ends it.
type demo struct {
	out  io.Writer
	bank *bank.Bank
	url  string
	dir  string
	// skip is how far the demo has moved the bank's and the wallets'
	// clock ahead, to reach a deposit deadline without waiting for it.
	skip atomic.Int64
	// tpm: every wallet on a swtpm of its own (one serves one open
	// vault at a time); stops removes them.
	tpm   bool
	stops []func()
}

// options is the demo's wallet options, with the vault on a fresh swtpm
// when the demo runs with --vault tpm.
func (d *demo) options(merchant *wallet.Account) (wallet.Options, error) {
	opts := wallet.Options{ConfirmSAS: func(context.Context, string) bool { return true }, Merchant: merchant, Now: d.now}
	if !d.tpm {
		return opts, nil
	}
	addr, stop, err := testtpm.Run(io.Discard)
	if err != nil {
		return opts, fmt.Errorf("--vault tpm: %w (or run the demo without --vault tpm)", err)
	}
	d.stops = append(d.stops, stop)
	opts.Protector, opts.TPM = wallet.VaultTPM, addr
	return opts, nil
}

func (d *demo) now() time.Time { return time.Now().Add(time.Duration(d.skip.Load())) }

type person struct {
	name    string
	account wallet.Account
	w       *wallet.Wallet
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func eur(v int64) string { return amount.Format(v) + " EUR" }

func runDemo(ctx context.Context, out io.Writer, dir, kind string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &demo{out: out, dir: dir, tpm: kind == wallet.VaultTPM}
	defer func() {
		for _, stop := range d.stops {
			stop()
		}
	}()
	d.say("otpcash demo: withdraw -> offline payments -> deposit, in %s", dir)
	if d.tpm {
		d.say("every wallet is sealed to a TPM 2.0 of its own (a fresh swtpm each)")
	}

	eb, err := cli.StartEmbeddedBank(ctx, dir, bank.Config{Now: d.now})
	if err != nil {
		return err
	}
	defer eb.Close()
	d.bank, d.url = eb.Bank, eb.URL
	d.say("\n== The bank\nbank %q listening on %s, ledger in SQLite", d.bank.Catalogue().Issuer, d.url)

	alice, bob, carol := &person{name: "Alice"}, &person{name: "Bob"}, &person{name: "Carol"}
	for _, p := range []*person{alice, bob, carol} {
		if err := d.open(ctx, p, nil); err != nil {
			return err
		}
		defer p.w.Close()
	}
	if _, err := d.bank.Credit(ctx, alice.account.ID, 1234); err != nil {
		return err
	}
	if _, err := d.bank.Credit(ctx, carol.account.ID, 500); err != nil {
		return err
	}
	d.say("accounts opened for Alice, Bob and Carol; Alice's account credited with %s, Carol's with %s", eur(1234), eur(500))

	d.say("\n== Alice withdraws 12.34 and Carol, who keeps a shop, a float of 5.00 (online)")
	for _, w := range []struct {
		p     *person
		value int64
	}{{alice, 1234}, {carol, 500}} {
		if _, err := w.p.w.Withdraw(ctx, w.p.account, w.value); err != nil {
			return err
		}
		bal, err := w.p.w.Balance(ctx)
		if err != nil {
			return err
		}
		d.say("%s's wallet holds %s in %d blind-signed one-time programs: %s", w.p.name, eur(bal.Held), bal.Coins, bal.Denominations)
		if err := d.expectHeld(ctx, w.p, w.value); err != nil {
			return err
		}
	}

	d.say("\n== Alice pays Bob 7.00 (offline: only the two wallets talk)")
	if err := d.pay(ctx, alice, bob, 700); err != nil {
		return err
	}
	d.say("\n== Bob pays Carol 3.00 of it (a second hop); he cannot pay 3.00 exactly, so Carol gives change")
	if err := d.pay(ctx, bob, carol, 300); err != nil {
		return err
	}

	d.say("\n== Everyone deposits (online)")
	for _, p := range []*person{alice, bob, carol} {
		r, err := p.w.Deposit(ctx, p.account)
		if err != nil {
			return err
		}
		if len(r.Refused) > 0 {
			return fmt.Errorf("%s's deposit: %d coins refused: %s", p.name, len(r.Refused), r.Refused[0].Message)
		}
		d.say("%s deposits %d coins: %s credited, account balance %s", p.name, r.Coins, eur(r.Credited), eur(r.Balance))
	}
	for i, p := range []*person{alice, bob, carol} {
		want := []int64{534, 400, 800}[i]
		if err := d.expectHeld(ctx, p, 0); err != nil {
			return err
		}
		acct, err := d.bank.Balance(ctx, p.account.ID)
		if err != nil {
			return err
		}
		if acct != want {
			return fmt.Errorf("check failed: %s's account holds %s, want %s", p.name, eur(acct), eur(want))
		}
	}

	erin := &person{name: "Erin"}
	if err := d.open(ctx, erin, map[string]string{"category": "grocery", "name": "Erin's shop"}); err != nil {
		return err
	}
	defer erin.w.Close()
	if err := d.voucherAct(ctx, alice, erin); err != nil {
		return err
	}
	if err := d.tokenAct(ctx, alice, erin); err != nil {
		return err
	}

	if err := d.recoveryAct(ctx, bob); err != nil {
		return err
	}

	d.say("\n== The bank's audit")
	rep, err := d.bank.Audit(ctx)
	if err != nil {
		return err
	}
	d.say("%s", rep)
	if !rep.OK() {
		return errors.New("check failed: the audit does not balance")
	}
	d.say("\nAll checks passed.")
	return eb.Close()
}

// recoveryAct is a lost phone: Frank backs up to the bank, pays Bob a
// coin, and loses his wallet. From his phrase and the bank's copy of the
// backup a new wallet gets nothing before
// the coins' deposit deadline and nothing payable ever; after it the bank
// credits exactly the coins nobody else deposited. It moves the demo's
// clock past the deadline, so it comes last.
func (d *demo) recoveryAct(ctx context.Context, bob *person) error {
	d.say("\n== Frank loses his phone after paying; his recovery phrase gets back what he had not spent")
	frank := &person{name: "Frank"}
	var err error
	if frank.account.ID, frank.account.Token, err = d.bank.CreateAccount(ctx); err != nil {
		return err
	}
	if _, err := d.bank.Credit(ctx, frank.account.ID, 300); err != nil {
		return err
	}
	opts, err := d.options(nil)
	if err != nil {
		return err
	}
	var phrase recovery.Phrase
	if frank.w, phrase, err = wallet.Create(ctx, filepath.Join(d.dir, "Frank"), d.url, []byte("pin-of-Frank"), opts); err != nil {
		return err
	}
	d.say("Frank's wallet shows its recovery phrase once (%d words); it can claim at the bank, never pay", len(strings.Fields(phrase.String())))
	for range 3 {
		if _, err := frank.w.Withdraw(ctx, frank.account, 100); err != nil {
			return err
		}
	}
	before, err := frank.w.Balance(ctx)
	if err != nil {
		return err
	}
	stored, err := frank.w.BackupToBank(ctx, nil)
	if err != nil {
		return err
	}
	d.say("Frank withdraws %s in %d coins and backs up to the bank (%d encrypted bytes it cannot read); then pays Bob %s", eur(before.Held), before.Coins, stored.Size, eur(100))
	if err := d.pay(ctx, frank, bob, 100); err != nil {
		return err
	}
	if _, err := bob.w.Deposit(ctx, bob.account); err != nil {
		return err
	}
	frank.w.Close()
	if err := os.RemoveAll(filepath.Join(d.dir, "Frank")); err != nil {
		return err
	}
	d.say("Bob deposits; Frank's phone is lost (its wallet deleted)")

	if opts, err = d.options(nil); err != nil { // a new phone, a TPM of its own
		return err
	}
	fresh, err := wallet.InitFromPhrase(ctx, filepath.Join(d.dir, "Frank-new"), d.url, []byte("pin-of-Frank"), phrase, opts)
	if err != nil {
		return err
	}
	defer fresh.Close()
	backup, _, err := fresh.FetchBackup(ctx)
	if err != nil {
		return err
	}
	res, err := fresh.Recover(ctx, &phrase, backup, frank.account)
	if err != nil {
		return err
	}
	d.say("on a new phone, from the phrase and the bank's copy of the backup: %d coins pending their deposit deadline, none payable", res.Pending)
	if bal, err := fresh.Balance(ctx); err != nil || bal.Held != 0 || res.Pending != before.Coins {
		return fmt.Errorf("check failed: before the deadline %d coins pending, %v payable (%v); want %d and none", res.Pending, bal.Held, err, before.Coins)
	}
	key, err := d.bank.Catalogue().CoinKey(otp.GeneralProgramName, 100, d.now())
	if err != nil {
		return err
	}
	d.skip.Add(int64(key.DepositUntil.Sub(d.now()) + time.Hour))
	d.say("(the demo's clock jumps past the coins' deposit deadline, %s)", key.DepositUntil.Format(time.DateOnly))
	if res, err = fresh.Recover(ctx, nil, nil, frank.account); err != nil {
		return err
	}
	d.say("recovery: %s credited for %d coins, %d coins spent by Bob, account balance %s", eur(res.Credited), res.Coins, res.Spent, eur(res.Balance))
	if res.Credited != 200 || res.Coins+res.Spent != before.Coins || res.Balance != 200 {
		return fmt.Errorf("check failed: recovery credited %s with %d coins spent; want %s", eur(res.Credited), res.Spent, eur(200))
	}
	if res, err = fresh.Recover(ctx, &phrase, backup, frank.account); err != nil {
		return err
	}
	if acct, err := d.bank.Balance(ctx, frank.account.ID); err != nil || acct != 200 {
		return fmt.Errorf("check failed: after recovering twice Frank's account holds %s (%v), want %s", eur(acct), err, eur(200))
	}
	d.say("recovering again from the same backup credits nothing more")
	return nil
}

// voucherAct is programmable money: a grocery voucher is refused offline
// by the payer's wallet for an electronics shop, with the reason, and
// changes nothing; a grocer takes it and deposits it.
func (d *demo) voucherAct(ctx context.Context, alice, erin *person) error {
	const voucher = "grocery-voucher"
	d.say("\n== Purpose-bound money: a grocery voucher")
	dave := &person{name: "Dave"}
	if err := d.open(ctx, dave, map[string]string{"category": "electronics"}); err != nil {
		return err
	}
	defer dave.w.Close()
	def, _ := d.bank.Programs().Get(voucher)
	d.say("the bank certifies Dave's shop as category=electronics and Erin's as category=grocery on their exchange keys")
	d.say("program %s: %s\nits conditions: %q", voucher, def.Description, def.Conditions)
	if _, err := alice.w.Withdraw(ctx, alice.account, 100, wallet.WithProgram(voucher)); err != nil {
		return err
	}
	d.say("Alice withdraws a %s %s", eur(100), voucher)

	d.say("\n-- Alice tries to buy headphones from Dave with it (offline)")
	_, _, err := d.session(ctx, alice, dave, 100, wallet.WithProgram(voucher))
	if !errors.Is(err, otp.ErrCondition) {
		return fmt.Errorf("check failed: paying a grocery voucher to an electronics shop: %v, want it refused by its condition", err)
	}
	d.say("refused by Alice's wallet before sealing anything: %v", err)
	if err := d.expectProgram(ctx, alice, voucher, 100); err != nil {
		return err
	}
	if err := d.expectHeld(ctx, dave, 0); err != nil {
		return err
	}

	d.say("\n-- Alice buys groceries from Erin with it (offline)")
	if err := d.pay(ctx, alice, erin, 100, wallet.WithProgram(voucher)); err != nil {
		return err
	}
	if err := d.expectProgram(ctx, alice, voucher, 0); err != nil {
		return err
	}
	r, err := erin.w.Deposit(ctx, erin.account)
	if err != nil {
		return err
	}
	if r.Credited != 100 || len(r.Refused) > 0 {
		return fmt.Errorf("check failed: Erin's deposit credited %s with %d coins refused, want %s", eur(r.Credited), len(r.Refused), eur(100))
	}
	d.say("Erin deposits the voucher; the bank checks its condition against the key it was paid to: %s credited, account balance %s", eur(r.Credited), eur(r.Balance))
	return nil
}

// open makes a bank account with certified attributes attrs (nil for
// none) and a wallet for p whose exchange keys carry them.
func (d *demo) open(ctx context.Context, p *person, attrs map[string]string) error {
	var err error
	if p.account.ID, p.account.Token, err = d.bank.CreateAccountWithAttrs(ctx, attrs); err != nil {
		return err
	}
	var merchant *wallet.Account
	if attrs != nil {
		merchant = &p.account
	}
	opts, err := d.options(merchant)
	if err != nil {
		return err
	}
	p.w, err = wallet.Init(ctx, filepath.Join(d.dir, p.name), d.url, []byte("pin-of-"+p.name), opts)
	if err != nil {
		return fmt.Errorf("%s's wallet: %w", p.name, err)
	}
	n, err := p.w.ExchangeKeys(ctx)
	if err != nil {
		return err
	}
	d.say("%s's wallet created: issuer keys pinned, %d exchange keys certified for receiving offline", p.name, n)
	return nil
}

// session runs one offline session between two wallets over loopback TCP
// and returns what each side saw.
func (d *demo) session(ctx context.Context, from, to *person, value int64, opts ...wallet.Option) (paid, received wallet.Payment, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return paid, received, err
	}
	defer ln.Close()
	type result struct {
		p   wallet.Payment
		err error
	}
	got := make(chan result, 1)
	go func() {
		p, err := to.w.Receive(ctx, ln)
		got <- result{p, err}
	}()
	paid, err = from.w.Pay(ctx, ln.Addr().String(), value, "demo", opts...)
	ln.Close() // a payment refused before it dialled leaves Receive waiting
	r := <-got
	if err != nil {
		return paid, r.p, fmt.Errorf("%s pays %s: %w", from.name, to.name, err)
	}
	if r.err != nil {
		return paid, r.p, fmt.Errorf("%s receives from %s: %w", to.name, from.name, r.err)
	}
	return paid, r.p, nil
}

// pay runs one payment that must succeed and checks both wallets.
func (d *demo) pay(ctx context.Context, from, to *person, value int64, opts ...wallet.Option) error {
	fromBefore, err := from.w.Balance(ctx)
	if err != nil {
		return err
	}
	toBefore, err := to.w.Balance(ctx)
	if err != nil {
		return err
	}
	paid, received, err := d.session(ctx, from, to, value, opts...)
	if err != nil {
		return err
	}
	d.say("%s's screen shows %s, %s's shows %s: they match, so no one is in the middle", from.name, paid.SAS, to.name, received.SAS)
	if paid.SAS != received.SAS {
		return errors.New("check failed: short authentication strings differ")
	}
	d.say("%s sealed %d coins to %s's exchange keys, destroyed the keys that could sign them again, and holds %d signed receipts", from.name, paid.Coins, to.name, paid.Coins)
	if paid.Change > 0 {
		d.say("%s gave %s change, sealed to exchange keys %s handed over, in the same offline session; %s stored it and sent receipts", to.name, eur(paid.Change), from.name, from.name)
	}
	d.say("%s checked every coin offline (issuer signature, checksum, program, transfer chain) and is %s richer", to.name, eur(received.Amount))
	if received.Amount != value || paid.Amount != value {
		return fmt.Errorf("check failed: paid %s, received %s, want %s", eur(paid.Amount), eur(received.Amount), eur(value))
	}
	if err := d.expectHeld(ctx, from, fromBefore.Held-value); err != nil {
		return err
	}
	return d.expectHeld(ctx, to, toBefore.Held+value)
}

// expectProgram checks what p holds of one coin program.
func (d *demo) expectProgram(ctx context.Context, p *person, program string, want int64) error {
	b, err := p.w.Balance(ctx)
	if err != nil {
		return err
	}
	got := b.Programs[program]
	d.say("  %s: %s held %s, pending-out %s", p.name, program, eur(got.Held), eur(got.PendingOut))
	if got.Held != want || got.PendingOut != 0 {
		return fmt.Errorf("check failed: %s holds %s of %s with %s pending-out, want %s", p.name, eur(got.Held), program, eur(got.PendingOut), eur(want))
	}
	return nil
}

func (d *demo) expectHeld(ctx context.Context, p *person, want int64) error {
	b, err := p.w.Balance(ctx)
	if err != nil {
		return err
	}
	d.say("  %s: held %s, pending-out %s", p.name, eur(b.Held), eur(b.PendingOut))
	if b.Held != want || b.PendingOut != 0 {
		return fmt.Errorf("check failed: %s holds %s with %s pending-out, want %s and nothing pending", p.name, eur(b.Held), eur(b.PendingOut), eur(want))
	}
	return nil
}
