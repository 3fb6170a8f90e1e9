package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/otpcash/otpcash/amount"
	"github.com/otpcash/otpcash/internal/discover"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/p2p"
	"github.com/otpcash/otpcash/wallet"
	"github.com/otpcash/otpcash/wallet/recovery"
)

// walletFlags are the flags every wallet command shares.
type walletFlags struct {
	dir      string
	yes      bool
	json     bool
	merchant accountFlags // init, refill: have keys certified for this account
	program  string       // withdraw, pay
	vault    string       // init: the vault's protector
	tpm      string       // the TPM of a TPM vault (default $OTPCASH_TPM)
	backups  string       // a directory for a backup after every change (default $OTPCASH_BACKUP_DIR)
}

// registerMerchant adds the optional --account and --token that make the
// wallet's exchange keys carry the account's certified attributes.
func (f *walletFlags) registerMerchant(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.merchant.account, "account", "", "merchant account whose certified attributes the exchange keys carry (default: anonymous keys)")
	cmd.Flags().StringVar(&f.merchant.token, "token", "", "the merchant account's bearer token (default $OTPCASH_TOKEN)")
}

func (f *walletFlags) registerProgram(cmd *cobra.Command, what string) {
	cmd.Flags().StringVar(&f.program, "program", otp.GeneralProgramName, "coin program "+what+" (the bank's configuration names them)")
}

func newWalletCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wallet",
		Short: "A command-line wallet: withdraw, pay and receive offline, deposit",
		Long: `A command-line wallet. The PIN comes from the OTPCASH_PIN environment variable
or, when it is unset, from a prompt on the terminal: at least 6 digits, or a
passphrase of at least 8 characters.

A wallet made with "init --vault tpm" is sealed to a TPM 2.0: the one it was
made on, unless OTPCASH_TPM names another (a device, or swtpm:HOST:PORT for a
simulator).`,
	}
	cmd.AddCommand(walletInitCmd(), walletRefillCmd(), walletWithdrawCmd(), walletBalanceCmd(),
		walletHistoryCmd(), walletReceiveCmd(), walletPayCmd(), walletRequestCmd(), walletReceiptCmd(), walletSettleCmd(), walletRedenominateCmd(), walletExchangeCmd(), walletReclaimCmd(), walletBackupCmd(), walletRecoverCmd(), walletDepositCmd(),
		walletPeersCmd(), walletPinCmd())
	return cmd
}

func (f *walletFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dir, "wallet", "", "wallet directory (required)")
	_ = cmd.MarkFlagRequired("wallet")
	cmd.Flags().StringVar(&f.backups, "backup-dir", "", "write the encrypted backup to this directory after every payment, receipt, withdrawal or deposit, replacing the last (default $OTPCASH_BACKUP_DIR)")
}

// with opens the wallet named by --wallet, asking for the PIN, runs fn on
// it and closes it.
func (f *walletFlags) with(cmd *cobra.Command, fn func(w *wallet.Wallet) error) error {
	w, err := f.open(cmd)
	if err != nil {
		return err
	}
	defer w.Close()
	return fn(w)
}

// open opens the wallet named by --wallet, asking for the PIN.
func (f *walletFlags) open(cmd *cobra.Command) (*wallet.Wallet, error) {
	pin, err := readPIN(cmd, false)
	if err != nil {
		return nil, err
	}
	opts, err := f.options(cmd)
	if err != nil {
		return nil, err
	}
	return wallet.Open(cmd.Context(), f.dir, pin, opts)
}

func (f *walletFlags) options(cmd *cobra.Command) (wallet.Options, error) {
	var merchant *wallet.Account
	if f.merchant.account != "" {
		acct, err := f.merchant.credentials()
		if err != nil {
			return wallet.Options{}, err
		}
		merchant = &acct
	}
	tpm := f.tpm
	if tpm == "" {
		tpm = os.Getenv("OTPCASH_TPM")
	}
	backups := f.backups
	if backups == "" {
		backups = os.Getenv("OTPCASH_BACKUP_DIR")
	}
	return wallet.Options{
		Merchant:  merchant,
		Protector: f.vault,
		TPM:       tpm,
		BackupDir: backups,
		// Warnings, such as the connections receive drops; never secrets.
		Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		ConfirmSAS: func(ctx context.Context, sas string) bool {
			fmt.Fprintf(cmd.ErrOrStderr(), "short authentication string: %s\n", sas)
			if f.yes {
				return true
			}
			return askYes(cmd, fmt.Sprintf("Does the other screen show %s? [y/N] ", sas))
		},
		// The wallet has already held the offer to the bank's limits;
		// the user sees what it was judged on.
		ConfirmOffer: func(_ context.Context, o wallet.Offer) bool {
			list := "not said"
			if !o.RevocationsIssued.IsZero() {
				list = fmt.Sprintf("issued %s (%s ago)", o.RevocationsIssued.UTC().Format(time.RFC3339), time.Since(o.RevocationsIssued).Round(time.Second))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "offer: %s %s, memo %s, coins of at most %d transfers, payer's revocation list %s\n",
				amount.Format(o.Amount), o.Currency, strconv.Quote(o.Memo), o.MaxHops, list)
			return true
		},
	}, nil
}

// readPIN takes the PIN from OTPCASH_PIN or the terminal; a new PIN is asked
// twice.
func readPIN(cmd *cobra.Command, confirm bool) ([]byte, error) {
	return readSecret(cmd, "OTPCASH_PIN", "PIN", confirm)
}

// readSecret takes a PIN from the environment variable env or, when it is
// unset, from the terminal, prompting with label; confirm asks twice.
func readSecret(cmd *cobra.Command, env, label string, confirm bool) ([]byte, error) {
	if pin, ok := os.LookupEnv(env); ok {
		if pin == "" {
			return nil, fmt.Errorf("%s is set but empty", env)
		}
		return []byte(pin), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, fmt.Errorf("no %s: set %s or run in a terminal", label, env)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: ", label)
	pin, err := term.ReadPassword(fd)
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", label, err)
	}
	if len(pin) == 0 {
		return nil, fmt.Errorf("empty %s", label)
	}
	if confirm {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s again: ", label)
		again, err := term.ReadPassword(fd)
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", label, err)
		}
		if string(again) != string(pin) {
			return nil, fmt.Errorf("the two %ss differ", label)
		}
	}
	return pin, nil
}

func walletPinCmd() *cobra.Command {
	var f walletFlags
	cmd := &cobra.Command{
		Use:   "pin --wallet DIR",
		Short: "Change the wallet's PIN",
		Long: `Change the PIN (or passphrase) that opens the wallet. The current PIN comes
from OTPCASH_PIN or the terminal, the new one from OTPCASH_NEW_PIN or the
terminal (asked twice): at least 6 digits, or a passphrase of at least 8
characters. A wrong current PIN counts like one at opening (the TPM's
lockout for a TPM wallet). A copy of a TPM wallet from before the change no
longer opens, with either PIN.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			oldPIN, err := readPIN(cmd, false)
			if err != nil {
				return err
			}
			newPIN, err := readSecret(cmd, "OTPCASH_NEW_PIN", "New PIN", true)
			if err != nil {
				return err
			}
			opts, err := f.options(cmd)
			if err != nil {
				return err
			}
			w, err := wallet.Open(cmd.Context(), f.dir, oldPIN, opts)
			if err != nil {
				return err
			}
			defer w.Close()
			if err := w.ChangePIN(cmd.Context(), oldPIN, newPIN); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "PIN changed")
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

// readPhrase reads a recovery phrase from the file name, or standard
// input for "-": never from the command line, where other users and the
// shell's history see it.
func readPhrase(cmd *cobra.Command, name string) (recovery.Phrase, error) {
	var r io.Reader = cmd.InOrStdin()
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return recovery.Phrase{}, fmt.Errorf("recovery phrase: %w", err)
		}
		defer f.Close()
		r = f
	}
	// 24 words of at most 8 letters and their separators fit in far less.
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return recovery.Phrase{}, fmt.Errorf("recovery phrase: %w", err)
	}
	return recovery.ParsePhrase(string(b))
}

func askYes(cmd *cobra.Command, question string) bool {
	fmt.Fprint(cmd.ErrOrStderr(), question)
	line, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), 64)).ReadString('\n')
	if err != nil && line == "" {
		return false
	}
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes"
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func walletInitCmd() *cobra.Command {
	var f walletFlags
	var bankURL, recoverFrom string
	var keys int
	cmd := &cobra.Command{
		Use:   "init --wallet DIR --bank URL [--recover PHRASE-FILE]",
		Short: "Create a wallet, pin the bank's issuer keys and fetch exchange keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pin, err := readPIN(cmd, true)
			if err != nil {
				return err
			}
			if err := wallet.CheckPIN(pin); err != nil {
				return err
			}
			opts, err := f.options(cmd)
			if err != nil {
				return err
			}
			var w *wallet.Wallet
			if recoverFrom != "" {
				p, err := readPhrase(cmd, recoverFrom)
				if err != nil {
					return err
				}
				w, err = wallet.InitFromPhrase(cmd.Context(), f.dir, bankURL, pin, p, opts)
				if err != nil {
					return err
				}
			} else {
				var p recovery.Phrase
				w, p, err = wallet.Create(cmd.Context(), f.dir, bankURL, pin, opts)
				if err != nil {
					return err
				}
				// Shown once: the wallet keeps only what it derives from it.
				fmt.Fprintf(cmd.OutOrStdout(), "recovery phrase (write it down now; it is shown only this once and anyone who has it can claim this wallet's coins at the bank after their deadline, never pay them):\n%s\n", p)
			}
			defer w.Close()
			if keys > wallet.DefaultKeyPool {
				if _, err := w.RefillKeys(cmd.Context(), keys); err != nil {
					return err
				}
			}
			n, err := w.ExchangeKeys(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wallet created in %s; %d exchange keys on hand\n", f.dir, n)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&bankURL, "bank", "", "bank base URL, e.g. http://127.0.0.1:8080 (required)")
	cmd.Flags().IntVar(&keys, "keys", wallet.DefaultKeyPool, "exchange keys to keep on hand (coins receivable offline)")
	cmd.Flags().StringVar(&recoverFrom, "recover", "", `start from an existing recovery phrase, read from this file ("-": standard input)`)
	cmd.Flags().StringVar(&f.vault, "vault", wallet.VaultSoftware, `vault protector: "software" (a PIN-derived key) or "tpm" (sealed to a TPM 2.0: copies and older copies cannot open)`)
	cmd.Flags().StringVar(&f.tpm, "tpm", "", "TPM of a tpm vault: a device, or swtpm:HOST:PORT (default $OTPCASH_TPM, else "+wallet.DefaultTPM+")")
	f.registerMerchant(cmd)
	_ = cmd.MarkFlagRequired("bank")
	return cmd
}

func walletRefillCmd() *cobra.Command {
	var f walletFlags
	var keys int
	cmd := &cobra.Command{
		Use:   "refill --wallet DIR",
		Short: "Top up the pool of exchange keys (needs the bank)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.with(cmd, func(w *wallet.Wallet) error {
				added, err := w.RefillKeys(cmd.Context(), keys)
				if err != nil {
					return err
				}
				n, err := w.ExchangeKeys(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "added %d exchange keys; %d on hand\n", added, n)
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&keys, "keys", wallet.DefaultKeyPool, "exchange keys to keep on hand")
	f.registerMerchant(cmd)
	return cmd
}

// accountFlags name a bank account and its bearer token.
type accountFlags struct {
	account, token string
}

func (a *accountFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.account, "account", "", "bank account id (required)")
	cmd.Flags().StringVar(&a.token, "token", "", "account bearer token (default $OTPCASH_TOKEN)")
	_ = cmd.MarkFlagRequired("account")
}

// credentials are the account named, with its token from --token or
// $OTPCASH_TOKEN.
func (a *accountFlags) credentials() (wallet.Account, error) {
	if a.token != "" {
		return wallet.Account{ID: a.account, Token: a.token}, nil
	}
	if t := os.Getenv("OTPCASH_TOKEN"); t != "" {
		return wallet.Account{ID: a.account, Token: t}, nil
	}
	return wallet.Account{}, fmt.Errorf("%w: no account token: pass --token or set OTPCASH_TOKEN", errUsage)
}

func walletWithdrawCmd() *cobra.Command {
	var f walletFlags
	var a accountFlags
	cmd := &cobra.Command{
		Use:   "withdraw AMOUNT --wallet DIR --account ID",
		Short: "Withdraw coins from a bank account into the wallet",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			value, err := amount.Parse(args[0])
			if err != nil {
				return err
			}
			account, err := a.credentials()
			if err != nil {
				return err
			}
			return f.with(cmd, func(w *wallet.Wallet) error {
				res, err := w.Withdraw(cmd.Context(), account, value, wallet.WithProgram(f.program))
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "withdrew %s %s in %d %s coins", amount.Format(res.Amount), w.Currency(), res.Coins, f.program)
				if res.Resumed > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), " (%d of them finish an interrupted withdrawal)", res.Resumed)
				}
				fmt.Fprintln(cmd.OutOrStdout())
				return nil
			})
		},
	}
	f.register(cmd)
	a.register(cmd)
	f.registerProgram(cmd, "of the coins")
	return cmd
}

func walletBalanceCmd() *cobra.Command {
	var f walletFlags
	cmd := &cobra.Command{
		Use:   "balance --wallet DIR",
		Short: "Show the coins held and in flight",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.with(cmd, func(w *wallet.Wallet) error {
				b, err := w.Balance(cmd.Context())
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd, b)
				}
				keys, err := w.ExchangeKeys(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "held:        %s %s (%d coins)\npending-out: %s %s\n",
					amount.Format(b.Held), b.Currency, b.Coins, amount.Format(b.PendingOut), b.Currency)
				if b.RecoveringCoins > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "recovering:  %s %s (%d coins of a lost wallet claimed at the bank, never payable here; wallet recover)\n",
						amount.Format(b.Recovering), b.Currency, b.RecoveringCoins)
				}
				if b.RefusedCoins > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "refused:     %s %s (%d coins the bank will not credit; see wallet history)\n",
						amount.Format(b.Refused), b.Currency, b.RefusedCoins)
				}
				names := slices.Sorted(maps.Keys(b.Programs))
				for _, n := range names {
					p := b.Programs[n]
					fmt.Fprintf(cmd.OutOrStdout(), "  %-20s held %s (%d coins), pending-out %s\n", n+":", amount.Format(p.Held), p.Coins, amount.Format(p.PendingOut))
				}
				fmt.Fprintf(cmd.OutOrStdout(), "exchange keys on hand: %d\n", keys)
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON: {currency, held, pendingOut, coins, refused, refusedCoins, recovering, recoveringCoins, programs: {NAME: {held, pendingOut, coins}}} in minor units")
	return cmd
}

func walletHistoryCmd() *cobra.Command {
	var f walletFlags
	cmd := &cobra.Command{
		Use:   "history --wallet DIR",
		Short: "Show the wallet's payments, withdrawals and deposits",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.with(cmd, func(w *wallet.Wallet) error {
				events, err := w.History(cmd.Context())
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd, events)
				}
				for _, e := range events {
					fmt.Fprintf(cmd.OutOrStdout(), "%s  %-8s %10s %s  %s\n", e.Time.Format("2006-01-02 15:04:05"), e.Kind, amount.Format(e.Amount), e.Currency, shown(e.Detail))
				}
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	return cmd
}

// shown is text from a history, where a peer may have written it (a memo),
// as it is safe to print: as it is when every character of it only shows,
// else quoted with Go's escapes, so that it cannot move the cursor,
// reverse the line or forge one.
func shown(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

func walletReceiveCmd() *cobra.Command {
	var f walletFlags
	var listen, token, announce string
	var once bool
	var c codeFlags
	var d discoverFlags
	var opts wallet.ServeOptions
	cmd := &cobra.Command{
		Use:   "receive --wallet DIR (--listen ADDR [--announce NAME] | --token FILE|TEXT|-)",
		Short: "Wait for payers on the local network, or take a payment token, and receive their coins",
		Long: `Wait for payers on the local network and receive their coins, or take a
payment token (--token) and print its receipt, with no listening. Connections
that fail their handshake (port probes, scanners, other programs) and payers
that stall or break the protocol are logged to stderr and dropped; receive
goes on serving.

--announce NAME advertises the receiver on the local network by mDNS, so that
payers can use "pay --to NAME" and "peers" finds it. ` + nameNotIdentity,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if announce != "" {
				if token != "" {
					return errors.New("receive: --announce is for listening, not with --token")
				}
				if err := discover.CheckName(announce); err != nil {
					return fmt.Errorf("receive --announce: %w", err)
				}
			}
			return f.with(cmd, func(w *wallet.Wallet) error {
				if token != "" {
					return receiveToken(cmd, w, token, &c)
				}
				ln, err := net.Listen("tcp", listen)
				if err != nil {
					return fmt.Errorf("receive: %w", err)
				}
				defer ln.Close()
				fmt.Fprintf(cmd.ErrOrStderr(), "listening on %s\n", ln.Addr())
				if announce != "" {
					stop, err := d.announce(cmd, announce, ln)
					if err != nil {
						return fmt.Errorf("receive --announce: %w", err)
					}
					defer stop()
				}
				opts.HandshakeTimeout = opts.MessageTimeout
				for {
					p, err := w.Serve(cmd.Context(), ln, opts)
					if errors.Is(err, wallet.ErrNotAsOffered) && !once {
						fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
					} else if err != nil {
						return err
					}
					if f.json {
						if err := printJSON(cmd, p); err != nil {
							return err
						}
					} else {
						fmt.Fprintf(cmd.OutOrStdout(), "received %s %s in %d coins (%d re-sent from an earlier session)\n",
							amount.Format(p.Amount), w.Currency(), p.Coins, p.Resent)
					}
					if once {
						return nil
					}
				}
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:7070", "address to listen on")
	cmd.Flags().BoolVar(&once, "once", false, "serve until one payment session completes, then exit")
	cmd.Flags().DurationVar(&opts.MessageTimeout, "timeout", p2p.DefaultMessageTimeout,
		fmt.Sprintf("drop a payer that takes longer than this over a message, or over its handshake (at most %v)", p2p.DefaultHandshakeTimeout))
	cmd.Flags().IntVar(&opts.MaxHandshakes, "max-handshakes", 16, "handshakes run at once; more connections wait")
	cmd.Flags().BoolVar(&f.yes, "yes", false, "accept the short authentication string without asking")
	cmd.Flags().BoolVar(&f.json, "json", false, "print each payment as JSON")
	cmd.Flags().StringVar(&token, "token", "", "take this payment token (a file, the text, or - for standard input) and print the receipt; no listening")
	cmd.Flags().StringVar(&announce, "announce", "", "advertise this receiver on the local network under NAME (mDNS); a convenience, not an identity")
	d.register(cmd)
	c.register(cmd)
	return cmd
}

func walletPayCmd() *cobra.Command {
	var f walletFlags
	var to, memo, request string
	var c codeFlags
	var d discoverFlags
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "pay (AMOUNT --to ADDR|NAME | --request REQ|FILE|-) --wallet DIR",
		Short: "Pay a wallet on the local network, offline, or pay a payment request with a token",
		Long: `Pay a wallet on the local network in a live session, or pay a payment request
with a token (--request).

--to takes host:port, or the name a receiver announces ("receive --announce
NAME"), looked up by mDNS; the payment is refused when no receiver, or more
than one, answers with that name. ` + nameNotIdentity,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if request != "" {
				if len(args) > 0 || to != "" {
					return errPayArgs
				}
				return f.with(cmd, func(w *wallet.Wallet) error { return payRequest(cmd, w, request, &c) })
			}
			if len(args) != 1 || to == "" {
				return errPayArgs
			}
			value, err := amount.Parse(args[0])
			if err != nil {
				return err
			}
			addr, err := d.resolve(cmd.Context(), cmd, to)
			if err != nil {
				return err
			}
			return f.with(cmd, func(w *wallet.Wallet) error {
				ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
				defer cancel()
				p, err := w.Pay(ctx, addr, value, memo, wallet.WithProgram(f.program))
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd, p)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "paid %s %s in %d coins", amount.Format(p.Amount), w.Currency(), p.Coins)
				if p.Change > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), ", %s change received", amount.Format(p.Change))
				}
				printInFlight(cmd, p)
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&to, "to", "", "payee address, host:port, or a name announced on the local network (a live session)")
	d.register(cmd)
	cmd.Flags().StringVar(&request, "request", "", "pay this payment request (its text, a file, or - for standard input) and print the token")
	c.register(cmd)
	cmd.Flags().StringVar(&memo, "memo", "", "a note for the payee")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up the payment after this long (coins already sealed stay pending-out and are re-sent at the next meeting)")
	f.registerProgram(cmd, "whose coins to pay with")
	cmd.Flags().BoolVar(&f.yes, "yes", false, "accept the short authentication string without asking")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the payment as JSON")
	return cmd
}

func walletSettleCmd() *cobra.Command {
	var f walletFlags
	var to string
	cmd := &cobra.Command{
		Use:   "settle --wallet DIR --to ADDR",
		Short: "Meet a wallet, offline, only to deliver coins earlier broken sessions left in flight",
		Long: `settle connects to a wallet that is receiving, re-sends this wallet's coins
pending-out to it and collects the coins it sealed to this wallet (change it
owes after a broken session), and pays nothing. It works with no coins held.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.with(cmd, func(w *wallet.Wallet) error {
				p, err := w.Settle(cmd.Context(), to)
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd, p)
				}
				fmt.Fprint(cmd.OutOrStdout(), "settled")
				printInFlight(cmd, p)
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&to, "to", "", "the other wallet's address, host:port (required)")
	cmd.Flags().BoolVar(&f.yes, "yes", false, "accept the short authentication string without asking")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the result as JSON")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// printInFlight ends a pay or settle line with what earlier sessions left
// in flight and this one delivered.
func printInFlight(cmd *cobra.Command, p wallet.Payment) {
	if p.Resent > 0 {
		fmt.Fprintf(cmd.OutOrStdout(), " (and delivered %d coins left in flight earlier)", p.Resent)
	}
	if p.Collected > 0 {
		fmt.Fprintf(cmd.OutOrStdout(), " (and collected %s left in flight earlier)", amount.Format(p.Collected))
	}
	fmt.Fprintln(cmd.OutOrStdout())
}

func walletRedenominateCmd() *cobra.Command {
	var f walletFlags
	var a accountFlags
	cmd := &cobra.Command{
		Use:   "redenominate --wallet DIR --account ID",
		Short: "Swap held coins for a better mix of denominations at the bank (online)",
		Long: `redenominate swaps the coins of a program that differ from the mix a fresh
withdrawal of their total would give (enough small coins to make change) for
that mix, at the bank, in one transaction: the coins are deposited to the
account and the new ones withdrawn from it, so its balance does not change.
Interrupted, it is finished by the next redenominate, with nothing done twice.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			account, err := a.credentials()
			if err != nil {
				return err
			}
			return f.with(cmd, func(w *wallet.Wallet) error {
				res, err := w.Redenominate(cmd.Context(), account, wallet.WithProgram(f.program))
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd, res)
				}
				if res.In == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "the coins held are already a good mix: nothing re-denominated")
					return nil
				}
				fmt.Fprintf(cmd.OutOrStdout(), "re-denominated %d coins of %s %s for %d coins\n", res.In, amount.Format(res.Value), w.Currency(), res.Out)
				return nil
			})
		},
	}
	f.register(cmd)
	a.register(cmd)
	f.registerProgram(cmd, "whose coins to re-denominate")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the result as JSON")
	return cmd
}

// walletExchangeCmd is redenominate under its old name, kept for one more
// release: hidden from help, and saying so on stderr (stdout may be JSON).
func walletExchangeCmd() *cobra.Command {
	cmd := walletRedenominateCmd()
	cmd.Use = "exchange --wallet DIR --account ID"
	cmd.Short = "Deprecated: use redenominate"
	cmd.Hidden = true
	run := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		fmt.Fprintln(cmd.ErrOrStderr(), `"wallet exchange" is deprecated and will be removed: use "wallet redenominate"`)
		return run(cmd, args)
	}
	return cmd
}

func walletBackupCmd() *cobra.Command {
	var f walletFlags
	var to, phraseFile string
	var toBank bool
	cmd := &cobra.Command{
		Use:   "backup --wallet DIR (--to FILE | --to-bank)",
		Short: "Write an encrypted backup that the recovery phrase opens, to a file or the bank",
		Long: `backup writes every held coin, with its holder key's authorisation of the
wallet's recovery key, the claims of a recovery still pending, and the history,
encrypted under a key derived from the recovery phrase. With the phrase, a new
device claims the coins at the bank after their deposit deadline (wallet
recover); nothing in it can be paid.

--to-bank uploads it to the bank (at most 4 MiB), which keeps the newest copy
under an id derived from the phrase and learns nothing but its size and times;
wallet recover fetches it from there. A wallet made before bank-held backups
needs --phrase-file once. The bank's copy is never replaced by a device that
has not seen it: recover from it first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" && !toBank {
				return fmt.Errorf("backup: give --to FILE, --to-bank, or both")
			}
			var p *recovery.Phrase
			if phraseFile != "" {
				ph, err := readPhrase(cmd, phraseFile)
				if err != nil {
					return err
				}
				p = &ph
			}
			return f.with(cmd, func(w *wallet.Wallet) error {
				if to != "" {
					n, err := w.BackupToFile(cmd.Context(), to)
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "backup written to %s (%d bytes)\n", to, n)
				}
				if toBank {
					st, err := w.BackupToBank(cmd.Context(), p)
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "backup stored at the bank (version %d, %d bytes)\n", st.Version, st.Size)
				}
				return nil
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&to, "to", "", "file to write the backup to")
	cmd.Flags().BoolVar(&toBank, "to-bank", false, "upload the backup to the bank")
	cmd.Flags().StringVar(&phraseFile, "phrase-file", "", `recovery phrase, needed once by a wallet made before bank-held backups ("-": standard input)`)
	return cmd
}

func walletRecoverCmd() *cobra.Command {
	var f walletFlags
	var a accountFlags
	var phraseFile, backupFile string
	cmd := &cobra.Command{
		Use:   "recover --wallet DIR --account ID [--phrase-file F [--backup FILE]]",
		Short: "Claim a lost wallet's coins at the bank, after their deposit deadline (online)",
		Long: `recover runs on a wallet made from the lost wallet's phrase (wallet init
--recover). With --phrase-file, it opens the backup (the file --backup names,
or else the bank's copy, wallet backup --to-bank) with the phrase and keeps a
claim, signed for the account, of each coin in it: claims, never coins, so nothing
recovered can be paid offline. It then asks the bank to credit every claim whose
coin's deposit deadline has passed and that nobody else deposited or claimed;
run it again later, without the phrase, for the coins still pending.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acct, err := a.credentials()
			if err != nil {
				return err
			}
			var p *recovery.Phrase
			var backup []byte
			if backupFile != "" && phraseFile == "" {
				return fmt.Errorf("--backup needs --phrase-file: only the phrase opens it")
			}
			if phraseFile != "" {
				ph, err := readPhrase(cmd, phraseFile)
				if err != nil {
					return err
				}
				p = &ph
			}
			if backupFile != "" {
				bf, err := os.Open(backupFile)
				if err != nil {
					return err
				}
				backup, err = recovery.ReadBackup(bf)
				bf.Close()
				if err != nil {
					return fmt.Errorf("%s: %w", backupFile, err)
				}
			}
			return f.with(cmd, func(w *wallet.Wallet) error {
				if p != nil && backup == nil {
					data, st, err := w.FetchBackup(cmd.Context())
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "fetched the bank's backup (version %d, %d bytes, stored %s)\n", st.Version, st.Size, st.Updated.Format(time.RFC3339))
					backup = data
				}
				res, err := w.Recover(cmd.Context(), p, backup, acct)
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd, res)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "recovered %d coins, %s %s credited; %d spent elsewhere; %d pending their deposit deadline; %d refused\n",
					res.Coins, amount.Format(res.Credited), w.Currency(), res.Spent, res.Pending, len(res.Refused))
				for _, r := range res.Refused {
					fmt.Fprintf(cmd.ErrOrStderr(), "refused %.12s: %s: %s\n", r.Token, r.Code, r.Message)
				}
				return nil
			})
		},
	}
	f.register(cmd)
	a.register(cmd)
	cmd.Flags().StringVar(&phraseFile, "phrase-file", "", `file holding the recovery phrase ("-": standard input)`)
	cmd.Flags().StringVar(&backupFile, "backup", "", "backup file written by wallet backup (default: the bank's copy)")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the result as JSON")
	return cmd
}

func walletReclaimCmd() *cobra.Command {
	var f walletFlags
	var a accountFlags
	cmd := &cobra.Command{
		Use:   "reclaim --wallet DIR --account ID",
		Short: "Have coins sealed to a payee that vanished credited back, after their deposit deadline (online)",
		Long: `reclaim asks the bank to credit back to the account the coins this wallet
sealed to a payee that never acknowledged them, once their deposit deadline
has passed (from then on the payee cannot deposit them). A coin the payee did
deposit in time is recorded spent, as paid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			account, err := a.credentials()
			if err != nil {
				return err
			}
			return f.with(cmd, func(w *wallet.Wallet) error {
				res, err := w.Reclaim(cmd.Context(), account)
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd, res)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "reclaimed %d coins, %s %s credited; %d had been deposited by their payee; %d refused\n",
					res.Coins, amount.Format(res.Credited), w.Currency(), res.Spent, len(res.Refused))
				for _, r := range res.Refused {
					fmt.Fprintf(cmd.ErrOrStderr(), "refused %.12s: %s: %s\n", r.Token, r.Code, r.Message)
				}
				return nil
			})
		},
	}
	f.register(cmd)
	a.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print the result as JSON")
	return cmd
}

func walletDepositCmd() *cobra.Command {
	var f walletFlags
	var a accountFlags
	cmd := &cobra.Command{
		Use:   "deposit --wallet DIR --account ID",
		Short: "Deposit every held coin into a bank account",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			account, err := a.credentials()
			if err != nil {
				return err
			}
			return f.with(cmd, func(w *wallet.Wallet) error {
				res, err := w.Deposit(cmd.Context(), account)
				if err != nil {
					return err
				}
				if f.json {
					if err := printJSON(cmd, res); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "deposited %s %s in %d coins; account balance %s\n",
						amount.Format(res.Credited), w.Currency(), res.Coins, amount.Format(res.Balance))
					for _, r := range res.Refused {
						fmt.Fprintf(cmd.OutOrStdout(), "refused coin %.12s: %s: %s\n", r.Token, r.Code, r.Message)
					}
				}
				if len(res.Refused) > 0 {
					return errors.New("some coins were refused")
				}
				return nil
			})
		},
	}
	f.register(cmd)
	a.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print the result as JSON")
	return cmd
}
