package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/otpcash/otpcash/amount"
	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/client"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/internal/cli"
)

func newBankCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bank",
		Short: "Run an otpcash bank and administer it",
		Long: `bank runs the otpcash bank server (issuing, exchange-key certification,
deposits with double-deposit detection, accounts) and its admin tools.`,
	}
	cmd.AddCommand(bankServeCmd(), bankAuditCmd(), bankAccountCmd(), bankMigrateCmd())
	return cmd
}

func bankServeCmd() *cobra.Command {
	var (
		db, listen, tokenFile                   string
		logFormat, logLevel                     string
		tlsCert, tlsKey                         string
		issuer, currency, denoms                string
		programsFile, metricsAddr               string
		maxOfflineValue                         string
		maxOffline                              time.Duration
		maxHops                                 int
		certRate, certGlobalRate, backupRate    float64
		certBurst, certGlobalBurst, certWorkers int
		backupBurst                             int
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the bank's HTTP API",
		Long: `serve runs the bank's HTTP/JSON API until SIGINT or SIGTERM, then finishes the
requests in flight and exits. The admin token is read from --admin-token-file;
when the file does not exist, it is created (mode 0600) holding a fresh token.
The database holds the bank's private issuer keys: keep it as private as a key
file. Logs go to stderr; the line with msg=listening gives the address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log, err := bankLogger(cmd.ErrOrStderr(), logFormat, logLevel)
			if err != nil {
				return err
			}
			if (tlsCert == "") != (tlsKey == "") {
				return errors.New("--tls-cert and --tls-key go together")
			}
			cfg := bank.Config{Issuer: issuer, Currency: currency, Logger: log,
				ExchangeKeyRate: rate.Limit(certRate), ExchangeKeyBurst: certBurst,
				ExchangeKeyGlobalRate: rate.Limit(certGlobalRate), ExchangeKeyGlobalBurst: certGlobalBurst,
				ExchangeKeyWorkers: certWorkers,
				BackupRate:         rate.Limit(backupRate / 3600), BackupBurst: backupBurst}
			if programsFile != "" {
				data, err := os.ReadFile(programsFile)
				if err != nil {
					return fmt.Errorf("--config: %w", err)
				}
				if cfg.Programs, err = bank.LoadPrograms(data); err != nil {
					return fmt.Errorf("--config %s: %w", programsFile, err)
				}
			}
			if denoms != "" {
				if cfg.Denominations, err = denom.Parse(denoms); err != nil {
					return fmt.Errorf("%w: --denominations: %w", errUsage, err)
				}
			}
			if maxOfflineValue != "" {
				if cfg.MaxOfflineValue, err = amount.Parse(maxOfflineValue); err != nil {
					return fmt.Errorf("%w: --max-offline-value: %w", errUsage, err)
				}
			}
			cfg.MaxOffline, cfg.MaxHops = maxOffline, maxHops
			if cfg.AdminToken, err = bankAdminToken(tokenFile, true); err != nil {
				return err
			}
			st, err := cli.OpenStore(ctx, db, false)
			if err != nil {
				return err
			}
			defer st.Close()
			b, err := bank.New(ctx, st, cfg)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			if tlsCert != "" {
				cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
				if err != nil {
					ln.Close()
					return fmt.Errorf("TLS certificate: %w", err)
				}
				ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
			}
			if metricsAddr == "" {
				return bank.Serve(ctx, ln, b.Handler(), log)
			}
			mln, err := net.Listen("tcp", metricsAddr)
			if err != nil {
				ln.Close()
				return fmt.Errorf("--metrics-addr: %w", err)
			}
			// Either server failing stops the other: a bank whose
			// monitoring is down should not run unwatched.
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				defer cancel()
				errc <- bank.Serve(ctx, mln, b.MetricsHandler(), log.With("server", "metrics"))
			}()
			err = bank.Serve(ctx, ln, b.Handler(), log)
			cancel()
			return errors.Join(err, <-errc)
		},
	}
	f := cmd.Flags()
	f.StringVar(&db, "db", "", dbFlagHelp)
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	f.StringVar(&tokenFile, "admin-token-file", "", "file holding the admin token, created when missing (required)")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (with --tls-key)")
	f.StringVar(&tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&issuer, "issuer", "", `issuer name in coins (default "otpcash-bank"); fixed for the life of the database`)
	f.StringVar(&currency, "currency", "", `ISO 4217 currency of accounts and coins (default "EUR")`)
	f.StringVar(&denoms, "denominations", "", `coin values, like 0.01,0.02,0.05,1,2 (default: the currency's; for EUR its coins and notes, 0.01 to 500.00)`)
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus /metrics on this address (host:port), apart from the API; default: not served")
	f.Float64Var(&certRate, "exchange-key-rate", 100, "exchange-key certification budget per client address (IPv6: /64), in signatures a second")
	f.IntVar(&certBurst, "exchange-key-burst", 1000, "most signatures one client address may ask at once (at least the coins per request, 1000)")
	f.Float64Var(&certGlobalRate, "exchange-key-global-rate", 400, "exchange-key certification budget for all clients together, in signatures a second")
	f.IntVar(&certGlobalBurst, "exchange-key-global-burst", 2000, "most signatures all clients together may ask at once")
	f.IntVar(&certWorkers, "exchange-key-workers", 0, "certification signatures computed at once, over all requests (0: half the CPUs, at least 1); the other CPUs stay for withdrawals and deposits")
	f.Float64Var(&backupRate, "backup-rate", 10, "new wallet backups (PUT /v1/backups/{id} of an id not stored yet) one client address (IPv6: /64) may create, an hour; replacing one is free")
	f.IntVar(&backupBurst, "backup-burst", 10, "most new wallet backups one client address may create at once")
	f.StringVar(&programsFile, "config", "", "TOML file of coin programs (docs/PROGRAMS.md); default: general, grocery-voucher, max-hops")
	f.StringVar(&maxOfflineValue, "max-offline-value", "", "most value a wallet may hold offline, like 500.00, signed into the catalogue (default: no limit)")
	f.DurationVar(&maxOffline, "max-offline", 0, "longest a wallet may go without fetching the revocation list before it stops paying, like 72h, whole seconds (default: no limit)")
	f.IntVar(&maxHops, "max-hops", 0, "most transfers a coin may have made, counting the one to the payee, for wallets to take it offline (default: no limit)")
	_ = cmd.MarkFlagRequired("db")
	_ = cmd.MarkFlagRequired("admin-token-file")
	return cmd
}

func bankAuditCmd() *cobra.Command {
	var db string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Check the bank's ledger invariants",
		Long: `audit checks, on one consistent snapshot of the database, that issued minus
deposited equals the outstanding coin value, that every deposited coin was
issued, that withdrawals and deposits match the coins, and that every balance
matches its ledger. It prints the figures and exits with status 1 when
anything is off. It changes nothing and can run beside a live bank.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := cli.OpenStore(cmd.Context(), db, true)
			if err != nil {
				return err
			}
			defer st.Close()
			r, err := bank.Audit(cmd.Context(), st)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				err = json.NewEncoder(out).Encode(r)
			} else {
				_, err = fmt.Fprintln(out, r)
			}
			if err != nil {
				return err
			}
			if !r.OK() {
				return fmt.Errorf("audit failed, problems: %d", len(r.Problems))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&db, "db", "", dbFlagHelp)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	_ = cmd.MarkFlagRequired("db")
	return cmd
}

// bankRemote names a running bank and its admin token file.
type bankRemote struct {
	url, tokenFile string
}

func (r *bankRemote) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&r.url, "bank", "", "bank URL, like http://127.0.0.1:8080 (required)")
	cmd.Flags().StringVar(&r.tokenFile, "admin-token-file", "", "file holding the bank's admin token (required)")
	_ = cmd.MarkFlagRequired("bank")
	_ = cmd.MarkFlagRequired("admin-token-file")
}

func (r *bankRemote) open() (*client.Client, string, error) {
	u, err := url.Parse(r.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", fmt.Errorf("--bank %q: want an http:// or https:// URL", r.url)
	}
	token, err := bankAdminToken(r.tokenFile, false)
	if err != nil {
		return nil, "", err
	}
	return client.New(r.url, &http.Client{Timeout: 30 * time.Second}), token, nil
}

// parseAttrs turns KEY=VALUE flags into attributes; the bank checks them.
func parseAttrs(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	attrs := make(map[string]string, len(flags))
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("--attr %q: want KEY=VALUE", f)
		}
		if _, dup := attrs[k]; dup {
			return nil, fmt.Errorf("--attr %q: %s given twice", f, k)
		}
		attrs[k] = v
	}
	return attrs, nil
}

func bankAccountCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "account", Short: "Open and credit accounts at a running bank"}

	var create bankRemote
	var asJSON bool
	var attrFlags []string
	createCmd := &cobra.Command{
		Use:   "create",
		Short: "Open an account and print its id and bearer token",
		Long: `create opens an account and prints its id and bearer token. The bank keeps only
a hash of the token: this is the one time it is shown.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, admin, err := create.open()
			if err != nil {
				return err
			}
			attrs, err := parseAttrs(attrFlags)
			if err != nil {
				return err
			}
			a, err := c.CreateAccountWithAttrs(cmd.Context(), admin, attrs)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(a)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "id:    %s\ntoken: %s\n", a.ID, a.Token)
			return err
		},
	}
	create.register(createCmd)
	createCmd.Flags().BoolVar(&asJSON, "json", false, `print {"id": ..., "token": ...}`)
	createCmd.Flags().StringArrayVar(&attrFlags, "attr", nil, "certify KEY=VALUE on the account's exchange keys, like category=grocery (repeatable)")

	var credit bankRemote
	creditCmd := &cobra.Command{
		Use:   "credit ID AMOUNT",
		Short: "Credit an account from outside, like 10.00",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			value, err := amount.Parse(args[1])
			if err != nil {
				return err
			}
			c, admin, err := credit.open()
			if err != nil {
				return err
			}
			balance, err := c.Credit(cmd.Context(), admin, args[0], value)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "credited %s to %s; balance %s\n", amount.Format(value), args[0], amount.Format(balance))
			return err
		},
	}
	credit.register(creditCmd)

	cmd.AddCommand(createCmd, creditCmd)
	return cmd
}

// dbFlagHelp describes the --db flag.
const dbFlagHelp = "storage: sqlite:PATH, or postgres://USER@HOST/DB for many nodes over one database (required)"

// migrater is a store that reports the schema versions it found and left.
type migrater interface{ Schema() (from, to int) }

func bankMigrateCmd() *cobra.Command {
	var db string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the bank's database schema",
		Long: `migrate applies the schema migrations compiled into this binary to the
database and prints the schema version before and after. bank serve does the
same at start; run migrate first when several nodes share one PostgreSQL
database, so that an upgrade happens once, before the new nodes start. A
database migrated by a newer otpcash is refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := cli.OpenStore(cmd.Context(), db, false)
			if err != nil {
				return err
			}
			defer st.Close()
			from, to := st.(migrater).Schema()
			if from == to {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "schema at version %d: up to date\n", to)
			} else {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "schema migrated from version %d to %d\n", from, to)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&db, "db", "", dbFlagHelp)
	_ = cmd.MarkFlagRequired("db")
	return cmd
}

// bankAdminToken reads the admin token from path. With create, a missing
// file is created with mode 0600 holding a fresh token. A file others can
// read is refused: whoever reads it can mint money.
func bankAdminToken(path string, create bool) (string, error) {
	if create {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			token := bank.NewToken()
			_, err = f.WriteString(token + "\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return "", fmt.Errorf("admin token file: %w", err)
			}
			return token, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("admin token file: %w", err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("admin token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("admin token file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("admin token file %s is open to group or others (mode %v); run chmod 600 on it", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("admin token file: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("admin token file %s is empty", path)
	}
	return token, nil
}

// bankLogger returns the server's logger, writing to w.
func bankLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
