// Package bank is the otpcash bank: it issues coins (withdrawals),
// certifies payees' one-time exchange keys, takes deposits and detects
// double deposits, keeps accounts and their ledger, and serves all of it
// as an HTTP/JSON API under /v1 (wire types in bank/api).
//
// Guarantees:
//   - a withdrawal debits the account, records the issued coins and stores
//     its response in one transaction, and is idempotent by its
//     client-chosen id: a retry gets the very same coins;
//   - a coin is credited at most once: its serial enters the spent set in
//     the same transaction that credits the account, and the storage
//     engine's uniqueness constraint decides any race. A second deposit of
//     a serial with a different chain, or to another account, is refused
//     and kept as evidence naming the one-time key that signed twice;
//   - every balance change is a ledger entry, and Audit checks that
//     issued - deposited = outstanding and that balances match ledgers;
//   - bearer tokens are 32 random bytes; only their SHA-256 is kept, by
//     which an account is found (or compared in constant time) before a
//     request's body is read. Logs never carry tokens, keys or coin
//     serials in full;
//   - exchange-key certification, which takes no token, is limited by its
//     cost in signatures, per client address and for all clients, and
//     signs on at most ExchangeKeyWorkers CPUs, so it cannot starve
//     withdrawals and deposits.
//
// The issuer keys (an Ed25519 root key signing the key catalogue, a coin
// key and an exchange-certification key) are generated on first start and
// kept in the store, which must therefore be protected like a key file. A
// key that has reached the end of its signing period is replaced by a
// fresh one on first use; old keys stay in the catalogue, so their coins
// remain depositable until their deadline.
//
// Where to start: New makes a Bank on a storage engine (bank/storage/sqlite
// for one node, bank/storage/postgres for many) and Handler serves its API;
// "otpcash bank serve" does both. bank/api holds the wire types and the
// OpenAPI description, bank/client the Go client, and docs/OPERATIONS.md is
// the operator's guide.
package bank

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/storage"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/otp"
)

// Config configures a Bank. Zero fields take the defaults shown.
type Config struct {
	// AdminToken authorises the admin routes (creating and crediting
	// accounts, reading conflicts): at least 16 characters, and NewToken
	// makes a good one. Only its hash is kept. Empty turns the admin
	// routes off, for a bank whose accounts are managed in process
	// (CreateAccount, Credit).
	AdminToken string
	// Issuer is the issuer name written in coins and in the catalogue
	// ("otpcash-bank"). It must not change over the life of a store: New
	// refuses a store made for another issuer.
	Issuer string
	// Currency is the ISO 4217 code of accounts and coins ("EUR").
	Currency string
	// Denominations are the values of coins in minor units: every program
	// has a blind coin key for each (denom.Default(Currency): the euro's
	// 0.01 to 500.00 for EUR; other currencies must set them).
	Denominations denom.Set
	// CoinLifetime is how long a coin can be paid with after it is
	// issued (365 days). It is also how long a coin key signs before a
	// fresh one replaces it.
	CoinLifetime time.Duration
	// DepositGrace is how long a coin can still be deposited after it
	// stops being payable (90 days): a coin key's deposit deadline is the
	// expiry of the last coin it can sign plus DepositGrace.
	DepositGrace time.Duration
	// ExchangeKeyLifetime is how long a certified exchange key can be paid
	// to (90 days).
	ExchangeKeyLifetime time.Duration
	// MaxCoinsPerRequest bounds the coins of a withdrawal or deposit and
	// the keys of a certification request (1000).
	MaxCoinsPerRequest int
	// ExchangeKeyRate and ExchangeKeyBurst limit exchange-key
	// certification per client IP address (IPv6: per /64) by its cost,
	// in signatures, with a token bucket: 100 signatures a second, at
	// most 1000 at once (one full request). Certification needs no
	// token, so this is what keeps one address from taking the bank's
	// CPU. Each request also costs a signature before its body is read.
	ExchangeKeyRate  rate.Limit
	ExchangeKeyBurst int
	// ExchangeKeyGlobalRate and ExchangeKeyGlobalBurst are the same
	// budget for all clients together: 400 signatures a second, at most
	// 2000 at once (rate.Inf when ExchangeKeyRate is rate.Inf). Both
	// bursts must hold MaxCoinsPerRequest.
	ExchangeKeyGlobalRate  rate.Limit
	ExchangeKeyGlobalBurst int
	// ExchangeKeyWorkers is how many certification signatures the bank
	// computes at once, over all requests (half the CPUs, at least 1):
	// withdrawals and deposits always have the other CPUs.
	ExchangeKeyWorkers int
	// BackupRate and BackupBurst limit, per client IP address (IPv6:
	// per /64), how many new bank-held backups (PUT /v1/backups/{id} of
	// an id not stored yet) it may create: 10 an hour, at most 10 at
	// once. Uploads need no account, so this bounds how fast one address
	// can fill the bank's storage, 4 MiB a backup; replacing a stored
	// backup is not counted.
	BackupRate  rate.Limit
	BackupBurst int
	// MaxOfflineValue and MaxOffline are the offline limits the
	// catalogue carries and wallets enforce (zero: none): the most value,
	// in minor units, a wallet may hold, and the longest it may go
	// without fetching a fresh revocation list before it stops paying.
	// MaxOffline is whole seconds.
	MaxOfflineValue int64
	MaxOffline      time.Duration
	// MaxHops is the most transfers a coin may have made, counting the
	// one to the payee, for a wallet to take it offline (zero: no limit);
	// the catalogue carries it and payees enforce it.
	MaxHops int
	// Programs are the coin programs withdrawals may name
	// (DefaultPrograms(): general, grocery-voucher, max-hops).
	Programs *Programs
	// Logger receives request and event logs (slog.Default()).
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	setDefault(&c.Issuer, "otpcash-bank")
	setDefault(&c.Currency, "EUR")
	setDefault(&c.CoinLifetime, 365*24*time.Hour)
	setDefault(&c.DepositGrace, 90*24*time.Hour)
	setDefault(&c.ExchangeKeyLifetime, 90*24*time.Hour)
	setDefault(&c.MaxCoinsPerRequest, 1000)
	setDefault(&c.ExchangeKeyRate, 100)
	setDefault(&c.ExchangeKeyBurst, max(1000, c.MaxCoinsPerRequest))
	if c.ExchangeKeyRate == rate.Inf {
		setDefault(&c.ExchangeKeyGlobalRate, rate.Inf)
	}
	setDefault(&c.ExchangeKeyGlobalRate, 400)
	setDefault(&c.ExchangeKeyGlobalBurst, max(2000, c.MaxCoinsPerRequest))
	setDefault(&c.ExchangeKeyWorkers, max(1, runtime.GOMAXPROCS(0)/2))
	setDefault(&c.BackupRate, rate.Every(6*time.Minute))
	setDefault(&c.BackupBurst, 10)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Denominations == nil {
		// Left empty for a currency without defaults: validate says so.
		c.Denominations, _ = denom.Default(c.Currency)
	}
	if c.Programs == nil {
		c.Programs = DefaultPrograms()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func (c Config) validate() error {
	switch {
	case c.AdminToken != "" && len(c.AdminToken) < 16:
		return errors.New("admin token shorter than 16 characters")
	case !isCurrency(c.Currency):
		return fmt.Errorf("currency %q is not an ISO 4217 code", c.Currency)
	case c.MaxCoinsPerRequest < 0:
		return errors.New("coins per request must be positive")
	case len(c.Denominations) == 0:
		return fmt.Errorf("no denominations configured, and %s has no defaults", c.Currency)
	case c.Denominations.Validate() != nil:
		return fmt.Errorf("denominations: %w", c.Denominations.Validate())
	case c.Denominations[len(c.Denominations)-1] > math.MaxInt64/int64(c.MaxCoinsPerRequest):
		return errors.New("the largest denomination times coins per request overflows")
	case c.CoinLifetime < time.Second || c.DepositGrace < 0 || c.ExchangeKeyLifetime < time.Second:
		// Key times are whole seconds: a shorter lifetime could end
		// before it began.
		return errors.New("lifetimes must be at least a second, the grace positive")
	case c.MaxHops < 0:
		return fmt.Errorf("max hops %d must be positive", c.MaxHops)
	case c.MaxOfflineValue < 0 || c.MaxOffline < 0 || c.MaxOffline%time.Second != 0:
		// The catalogue carries whole seconds: a fraction would be
		// signed as something else than configured.
		return fmt.Errorf("offline limits %d and %s must be positive, the duration whole seconds", c.MaxOfflineValue, c.MaxOffline)
	case c.ExchangeKeyRate < 0 || c.ExchangeKeyGlobalRate < 0 || c.ExchangeKeyWorkers < 0:
		return errors.New("exchange key rates and workers must be positive")
	case c.BackupRate < 0 || c.BackupBurst < 1:
		return fmt.Errorf("backup rate %g must be positive and burst %d at least 1", float64(c.BackupRate), c.BackupBurst)
	case c.ExchangeKeyBurst < c.MaxCoinsPerRequest || c.ExchangeKeyGlobalBurst < c.MaxCoinsPerRequest:
		// A request of MaxCoinsPerRequest keys could never be certified.
		return fmt.Errorf("exchange key bursts (%d per client, %d for all) must be at least the coins per request (%d)",
			c.ExchangeKeyBurst, c.ExchangeKeyGlobalBurst, c.MaxCoinsPerRequest)
	}
	return nil
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// Bank is the bank service. It is safe for concurrent use.
type Bank struct {
	cfg       Config
	st        storage.Store
	log       *slog.Logger
	adminHash []byte   // nil: admin routes off
	limiter   *limiter // certification budget per client, in signatures
	backups   *limiter // new bank-held backups per client
	metrics   *metrics
	// certifyAll is the certification budget of all clients together,
	// and certifySlots bounds the certification signatures computed at
	// once (certifyBlind).
	certifyAll   *rate.Limiter
	certifySlots chan struct{}

	rotating sync.Mutex // one key rotation at a time
	keys     atomic.Pointer[keyring]

	credits creditGroup // the write transactions of deposits, shared
	// verifySlots bounds the coins verified at once, bank-wide
	// (checkCoins), to the number of cores.
	verifySlots chan struct{}
}

// New returns the bank on the store st, loading its issuer keys from the
// store or generating them on first start.
func New(ctx context.Context, st storage.Store, cfg Config) (*Bank, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("bank: config: %w", err)
	}
	b := &Bank{
		cfg:          cfg,
		st:           st,
		log:          cfg.Logger,
		limiter:      newLimiter(cfg.ExchangeKeyRate, cfg.ExchangeKeyBurst),
		backups:      newLimiter(cfg.BackupRate, cfg.BackupBurst),
		metrics:      newMetrics(),
		certifyAll:   rate.NewLimiter(cfg.ExchangeKeyGlobalRate, cfg.ExchangeKeyGlobalBurst),
		certifySlots: make(chan struct{}, cfg.ExchangeKeyWorkers),
		verifySlots:  make(chan struct{}, runtime.GOMAXPROCS(0)),
	}
	if cfg.AdminToken != "" {
		h := hashToken(cfg.AdminToken)
		b.adminHash = h[:]
	}
	if _, err := b.keyring(ctx, b.now()); err != nil {
		return nil, fmt.Errorf("bank: %w", err)
	}
	return b, nil
}

func (b *Bank) now() time.Time { return b.cfg.Now().UTC() }

// Catalogue returns the bank's current signed key catalogue.
func (b *Bank) Catalogue() *otp.Catalogue {
	cat := *b.keys.Load().cat
	cat.Keys = append([]otp.IssuerKey(nil), cat.Keys...)
	return &cat
}

var b64 = base64.RawURLEncoding

func randomText(n int) string {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		panic("bank: crypto/rand failed: " + err.Error())
	}
	return b64.EncodeToString(buf)
}

// NewToken returns a fresh bearer token: 32 random bytes, base64url.
func NewToken() string { return randomText(32) }

func hashToken(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

func tokenMatches(token string, hash []byte) bool {
	h := hashToken(token)
	return subtle.ConstantTimeCompare(h[:], hash) == 1
}

// maxCredit bounds one credit (10^13 currency units of 100 minor units),
// far below where balances could overflow.
const maxCredit = 1_000_000_000_000_000

// CreateAccount opens an account with a zero balance. The token is its
// bearer token; the bank keeps only its hash.
func (b *Bank) CreateAccount(ctx context.Context) (id, token string, err error) {
	return b.CreateAccountWithAttrs(ctx, nil)
}

// CreateAccountWithAttrs opens an account whose exchange keys carry the
// certified attributes attrs (a merchant's category, for example; see
// otp.CheckAttrs). Malformed attributes are an *api.Error with code
// bad_request.
func (b *Bank) CreateAccountWithAttrs(ctx context.Context, attrs map[string]string) (id, token string, err error) {
	if err := otp.CheckAttrs(attrs); err != nil {
		return "", "", api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "attrs: %v", err)
	}
	// The prefix keeps an id from starting with "-", which a command
	// line would take for a flag.
	id, token = "acct-"+randomText(16), NewToken()
	h := hashToken(token)
	err = b.st.Update(ctx, func(tx storage.Tx) error {
		return tx.CreateAccount(ctx, storage.Account{ID: id, TokenHash: h[:], Created: b.now(), Attrs: attrs})
	})
	if err != nil {
		return "", "", fmt.Errorf("create account: %w", err)
	}
	b.log.InfoContext(ctx, "account created", "account", id, "attrs", len(attrs))
	return id, token, nil
}

// Credit adds amount (minor units, positive) to an account from outside
// (the stand-in for core banking) and returns the new balance. An unknown
// account is an *api.Error with code not_found.
func (b *Bank) Credit(ctx context.Context, id string, amount int64) (balance int64, err error) {
	if amount <= 0 || amount > maxCredit {
		return 0, api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "amount must be between 1 and %d minor units, got %d", int64(maxCredit), amount)
	}
	err = b.st.Update(ctx, func(tx storage.Tx) (err error) {
		balance, err = tx.Post(ctx, storage.Entry{Account: id, Time: b.now(), Kind: storage.KindCredit, Amount: amount, Reference: "admin credit"})
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return 0, unknownAccount(id)
	}
	if err != nil {
		return 0, fmt.Errorf("credit %s: %w", id, err)
	}
	b.log.InfoContext(ctx, "account credited", "account", id, "amount", amount)
	return balance, nil
}

func unknownAccount(id string) *api.Error {
	return api.Errorf(http.StatusNotFound, api.CodeNotFound, "no account %q", id)
}

// Balance returns an account's balance. An unknown account is an
// *api.Error with code not_found.
func (b *Bank) Balance(ctx context.Context, id string) (int64, error) {
	a, err := b.account(ctx, id)
	return a.Balance, err
}

// account loads an account by id.
func (b *Bank) account(ctx context.Context, id string) (storage.Account, error) {
	var a storage.Account
	err := b.st.View(ctx, func(tx storage.Tx) (err error) {
		a, err = tx.Account(ctx, id)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return a, unknownAccount(id)
	}
	if err != nil {
		return a, fmt.Errorf("account %s: %w", id, err)
	}
	return a, nil
}

// history returns up to limit ledger entries of an account, newest first.
func (b *Bank) history(ctx context.Context, id string, limit int) (api.History, error) {
	var es []storage.Entry
	err := b.st.View(ctx, func(tx storage.Tx) (err error) {
		es, err = tx.Entries(ctx, id, limit)
		return err
	})
	if err != nil {
		return api.History{}, fmt.Errorf("history of %s: %w", id, err)
	}
	h := api.History{Entries: make([]api.Entry, len(es))}
	for i, e := range es {
		h.Entries[i] = api.Entry{Time: e.Time, Kind: e.Kind, Amount: e.Amount, Reference: e.Reference}
	}
	return h, nil
}

// short is what logs show of a token, key or serial: enough to correlate,
// too little to use.
func short(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}
