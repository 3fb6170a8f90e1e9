package wallet

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/otpcash/otpcash/bank/client"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/vault"
	"github.com/otpcash/otpcash/wallet/recovery"
)

// Errors callers can test with errors.Is.
var (
	ErrNoExchangeKeys = vault.ErrNoExchangeKeys
	ErrInsufficient   = vault.ErrInsufficient
	ErrWrongPIN       = vault.ErrWrongPIN
	ErrWeakPIN        = vault.ErrWeakPIN
	ErrLocked         = vault.ErrLocked
	// ErrOtherTPM, ErrRollback: a TPM vault copied to another machine,
	// or an older copy restored (see vault.OpenWith).
	ErrOtherTPM  = vault.ErrOtherTPM
	ErrRollback  = vault.ErrRollback
	ErrProtector = vault.ErrProtector
	ErrDeclined  = errors.New("payment declined")
	ErrAmount    = errors.New("amount cannot be paid in whole coins")
	// ErrCurrency refuses a payment in a currency other than the one of
	// this wallet's bank: an offer, or a payment request.
	ErrCurrency = errors.New("payment in another currency")
	// ErrChange reports a payee that gave change other than agreed, or
	// none: the error gives the amounts, and the history records them.
	ErrChange = errors.New("change not as agreed")
	// ErrNotAsOffered reports, to a payee, a session that ended with
	// another value received than the payer offered: the coins that did
	// arrive are valid and kept, and the error gives both amounts. It
	// also reports coins that have made more transfers than the offer
	// said: those are refused, and nothing of their batch is stored.
	ErrNotAsOffered = errors.New("payment not as offered")
	// ErrOfflineLimit reports a payment stopped by the bank's offline
	// limits (the catalogue's): a payer whose revocation list is older
	// than the bank allows, a payee that would hold more than it allows,
	// or coins that have made more transfers than it allows. The error
	// gives the figures.
	ErrOfflineLimit = errors.New("beyond the bank's offline limit")
)

// The vault protectors Options.Protector takes.
const (
	VaultSoftware = vault.Software
	VaultTPM      = vault.TPM
	DefaultTPM    = vault.DefaultTPM
)

// CheckPIN reports whether pin is strong enough for Init: at least 6
// digits, or a passphrase of at least 8 characters.
func CheckPIN(pin []byte) error { return vault.CheckPIN(pin) }

// DefaultKeyPool is how many exchange keys Init and RefillKeys keep on hand:
// each coin received uses one.
const DefaultKeyPool = 50

// Options configure a wallet. The zero value is usable.
type Options struct {
	// HTTPClient talks to the bank; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// Logger receives diagnostics; nil discards them. Secrets are never logged.
	Logger *slog.Logger
	// Now is the wallet's clock; nil means time.Now.
	Now func() time.Time
	// ConfirmSAS is asked, on both sides of a payment, whether the short
	// authentication string shown matches the other screen. nil refuses
	// every session: an app must let the user compare.
	ConfirmSAS func(ctx context.Context, sas string) bool
	// ConfirmOffer asks the payee whether to accept an offered payment;
	// nil accepts.
	ConfirmOffer func(ctx context.Context, o Offer) bool
	// OnEvent receives progress for a user interface; may be nil.
	OnEvent func(Event)
	// Protector is the vault's protector, chosen at Init: VaultSoftware
	// ("" too) or VaultTPM. Open refuses a wallet made with another than
	// a non-empty Protector.
	Protector string
	// TPM names the TPM of a TPM wallet: a device (DefaultTPM when
	// empty) or "swtpm:HOST:PORT". Open uses the one Init recorded when
	// TPM is empty.
	TPM string
	// PINHashing tunes how a software wallet hashes its PIN; the zero
	// value is the default, and what an app wants.
	PINHashing PINHashing
	// Merchant, when set, has the wallet's exchange keys certified for a
	// registered account, authenticated by its token, so they carry the
	// account's bank-certified attributes (a merchant category) that coin
	// programs' conditions check. nil gets anonymous keys. Set it from
	// Init on, so that every key of the pool carries the attributes.
	Merchant *Account
	// BackupDir, when set, is a directory where the wallet writes its
	// encrypted backup (Backup) after every change of its coins: a
	// payment, a receipt, a withdrawal, a deposit. It keeps the latest,
	// one file per wallet, replaced atomically. A wallet without a
	// recovery phrase writes none.
	BackupDir string
}

// Account is a bank account's id and the token that authenticates it,
// as the bank handed them out: Withdraw, Redenominate, Deposit and
// Reclaim act on it, and Options.Merchant names one.
type Account = client.Account

// Offer is a payment proposed by a payer.
type Offer struct {
	Amount   int64
	Currency string
	// Program is the coin program the payer pays with: "general", or one
	// bound to a purpose (see the bank's catalogue). Every coin that
	// arrives is checked to be of it, so an app can say what kind of
	// money it is being paid.
	Program string
	Memo    string
	Peer    string
	// RevocationsIssued is when the payer says it last met the bank
	// (its revocation list's issue time); zero when it does not say.
	RevocationsIssued time.Time
	// MaxHops is the most transfers any of the coins will have made when
	// they arrive, this one included, as the payer says: a coin that
	// arrives with more is refused (ErrNotAsOffered).
	MaxHops int
}

// Wallet is an open wallet. Its methods are safe for concurrent use.
type Wallet struct {
	v    *vault.Vault
	bank *client.Client
	// trust is replaced whole by RefillKeys while payments read it.
	trust atomic.Pointer[trust]
	opts  Options
	log   *slog.Logger
	// sleep waits d or until ctx is done: the wait for a bank that asked
	// to be asked again later (retryOnce). Tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
	// pipeline is the default (the zero value) but in tests, which make
	// chunks small.
	pipeline otp.Pipeline
}

// trust is what the wallet checks coins and keys against: the pinned
// catalogue and a verifier of it that knows the revoked keys, and when
// the bank issued that revocation list (zero: none yet).
type trust struct {
	cat       *otp.Catalogue
	ver       *otp.Verifier
	revIssued time.Time
}

func (w *Wallet) cat() *otp.Catalogue { return w.trust.Load().cat }

// offlineTooLong refuses a payer whose revocation list, issued at issued,
// is older than the bank's catalogue allows: a wallet that has not met
// the bank for that long stops paying and only receives.
// maxClockSkew is how far ahead of this wallet's clock a payer's
// revocation list may claim to be issued.
const maxClockSkew = 5 * time.Minute

func (w *Wallet) offlineTooLong(whose string, issued time.Time) error {
	limit := w.cat().MaxOffline()
	if limit == 0 {
		return nil
	}
	if issued.IsZero() {
		return fmt.Errorf("%w: %s revocation list is unknown, the bank allows %s offline", ErrOfflineLimit, whose, limit)
	}
	// A list from the future is a payer's invention: the payer says when,
	// and only a time no later than now (with a little clock skew) can
	// bound how long it has been offline.
	if ahead := issued.Sub(w.now()); ahead > maxClockSkew {
		return fmt.Errorf("%w: %s revocation list claims to be issued %s from now", ErrOfflineLimit, whose, ahead.Round(time.Second))
	}
	if age := w.now().Sub(issued); age > limit {
		return fmt.Errorf("%w: %s revocation list is %s old, the bank allows %s offline: meet the bank (refill) first",
			ErrOfflineLimit, whose, age.Round(time.Second), limit)
	}
	return nil
}
func (w *Wallet) ver() *otp.Verifier { return w.trust.Load().ver }

// tooManyHops refuses coins that will have made hops transfers, counting
// the one to the payee, when the bank's catalogue allows fewer offline.
func (w *Wallet) tooManyHops(what string, hops int) error {
	if limit := w.cat().MaxHops; limit != 0 && int64(hops) > limit {
		return fmt.Errorf("%w: %s of %d transfers, the bank allows %d offline: their holder deposits or re-denominates them",
			ErrOfflineLimit, what, hops, limit)
	}
	return nil
}

// offlinePayable keeps of held the coins a payee will take by the bank's
// maxHops: those whose next transfer stays within it.
func (w *Wallet) offlinePayable(held []otp.Sandbox) []otp.Sandbox {
	return slices.DeleteFunc(held, func(s otp.Sandbox) bool { return w.tooManyHops("", s.Hops()+1) != nil })
}

// maxHops is the most transfers any of coins will have made once paid.
func maxHops(coins []otp.Sandbox) int {
	n := 0
	for i := range coins {
		n = max(n, coins[i].Hops()+1)
	}
	return n
}

const (
	settingBank        = "bank"
	settingCatalogue   = "catalogue"
	settingRevocations = "revocations"
)

// Init creates a wallet in dir protected by pin, pins the bank's issuer
// catalogue (trust on first use) and fills a first pool of exchange keys.
// The wallet has no recovery phrase: it cannot be backed up, and what it
// holds is lost with its device. Create makes a recoverable one.
func Init(ctx context.Context, dir, bankURL string, pin []byte, opts Options) (*Wallet, error) {
	return initWallet(ctx, dir, bankURL, pin, nil, opts)
}

// initWallet is Init, keeping the recovery secrets keys (nil: none) in
// the vault.
func initWallet(ctx context.Context, dir, bankURL string, pin []byte, keys *recovery.Keys, opts Options) (*Wallet, error) {
	if err := CheckPIN(pin); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	bc := client.New(bankURL, httpClient(opts))
	cat, err := bc.Catalogue(ctx)
	if err != nil {
		return nil, fmt.Errorf("init: fetch catalogue from %s: %w", bankURL, err)
	}
	if err := cat.Verify(""); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	v, err := vault.Create(ctx, dir, pin, opts.vaultOptions())
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	w := newWallet(v, bc, cat, opts)
	if err := w.setJSON(ctx, settingCatalogue, cat); err != nil {
		v.Close()
		return nil, fmt.Errorf("init: %w", err)
	}
	if err := v.SetSetting(ctx, settingBank, []byte(bankURL)); err != nil {
		v.Close()
		return nil, fmt.Errorf("init: %w", err)
	}
	if keys != nil {
		if err := w.setJSON(ctx, settingRecovery, newRecoverySetting(keys)); err != nil {
			v.Close()
			return nil, fmt.Errorf("init: %w", err)
		}
	}
	if _, err := w.RefillKeys(ctx, DefaultKeyPool); err != nil {
		v.Close()
		return nil, fmt.Errorf("init: %w", err)
	}
	return w, nil
}

// Open opens the wallet in dir with the owner's pin.
func Open(ctx context.Context, dir string, pin []byte, opts Options) (*Wallet, error) {
	v, err := vault.OpenWith(ctx, dir, pin, opts.vaultOptions())
	if err != nil {
		return nil, fmt.Errorf("open wallet: %w", err)
	}
	url, err := v.Setting(ctx, settingBank)
	if err != nil {
		v.Close()
		return nil, fmt.Errorf("open wallet: bank address: %w", err)
	}
	raw, err := v.Setting(ctx, settingCatalogue)
	if err != nil {
		v.Close()
		return nil, fmt.Errorf("open wallet: catalogue: %w", err)
	}
	cat, err := otp.ParseCatalogue(raw)
	if err == nil {
		err = cat.Verify(cat.Root)
	}
	if err != nil {
		v.Close()
		return nil, fmt.Errorf("open wallet: pinned catalogue: %w", err)
	}
	w := newWallet(v, client.New(string(url), httpClient(opts)), cat, opts)
	raw, err = v.Setting(ctx, settingRevocations)
	if errors.Is(err, vault.ErrNotFound) {
		return w, nil
	}
	var rev *otp.Revocations
	if err == nil {
		if rev, err = otp.ParseRevocations(raw); err == nil {
			err = rev.Verify(cat)
		}
	}
	if err != nil {
		v.Close()
		return nil, fmt.Errorf("open wallet: revocation list: %w", err)
	}
	w.trust.Store(&trust{cat, w.ver().WithRevocations(rev), rev.Issued})
	return w, nil
}

// PINHashing tunes Argon2id, the hash that turns a software wallet's PIN
// into the key of its vault: the cost a thief pays per PIN guessed. A zero
// field takes its default: 3 passes over 64 MiB with 2 threads. Tests use
// cheap settings; Open reads the ones Init recorded.
type PINHashing struct {
	Time      uint32 // passes over the memory
	MemoryKiB uint32
	Threads   uint8
}

// vaultOptions joins the protector choice to the vault's tuning.
func (o Options) vaultOptions() *vault.Options {
	return &vault.Options{
		Protector: o.Protector,
		TPM:       o.TPM,
		Time:      o.PINHashing.Time,
		MemoryKiB: o.PINHashing.MemoryKiB,
		Threads:   o.PINHashing.Threads,
	}
}

func newWallet(v *vault.Vault, bc *client.Client, cat *otp.Catalogue, opts Options) *Wallet {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Wallet{v: v, bank: bc, opts: opts, log: log, sleep: sleep}
	w.trust.Store(&trust{cat: cat, ver: otp.NewVerifier(cat)})
	return w
}

func httpClient(opts Options) *http.Client {
	if opts.HTTPClient != nil {
		return opts.HTTPClient
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// maxRetryWait is the longest the wallet waits for a bank that asked it
// to retry later, before it asks once more: a longer wait is the user's to
// choose, and the error says how long the bank asked for.
const maxRetryWait = 30 * time.Second

// retryOnce calls f, and once more when the bank refused it for now and
// asked for a wait of at most maxRetryWait (client.ErrRetryLater), after
// that wait, unless ctx is done first. The bank's budgets and outages
// pass; a wallet that refills itself should not fail for them.
func (w *Wallet) retryOnce(ctx context.Context, f func() error) error {
	err := f()
	var re *client.RetryError
	if !errors.As(err, &re) || re.After > maxRetryWait {
		return err
	}
	w.log.Info("the bank asks to retry later; waiting", "wait", re.After, "err", err)
	if serr := w.sleep(ctx, re.After); serr != nil {
		return fmt.Errorf("%w; waiting to retry: %w", err, serr)
	}
	return f()
}

// sleep waits d, or until ctx is done and returns its error.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ChangePIN replaces the PIN that opens the wallet (vault.ChangePIN): oldPIN
// must be the PIN, counted like a try at Open, and newPIN must meet the
// policy (vault.ErrWeakPIN); a crash leaves the wallet opening with
// exactly one of the two.
func (w *Wallet) ChangePIN(ctx context.Context, oldPIN, newPIN []byte) error {
	return w.v.ChangePIN(ctx, oldPIN, newPIN)
}

// Close closes the wallet's vault.
func (w *Wallet) Close() error { return w.v.Close() }

func (w *Wallet) now() time.Time {
	if w.opts.Now != nil {
		return w.opts.Now()
	}
	return time.Now()
}

func (w *Wallet) emit(e Event) {
	if w.opts.OnEvent != nil {
		w.opts.OnEvent(e)
	}
}

func (w *Wallet) setJSON(ctx context.Context, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return w.v.SetSetting(ctx, name, b)
}

// Currency is the currency of the coins of the wallet's bank.
func (w *Wallet) Currency() string {
	if k := w.coinKey(); k != nil {
		return k.Currency
	}
	return ""
}

// coinKey returns the newest coin key of the pinned catalogue.
func (w *Wallet) coinKey() *otp.IssuerKey {
	var best *otp.IssuerKey
	cat := w.cat()
	for i := range cat.Keys {
		k := &cat.Keys[i]
		if k.Use == otp.UseCoin && (best == nil || k.NotBefore.After(best.NotBefore)) {
			best = k
		}
	}
	return best
}

// RefillKeys asks the bank to certify fresh exchange keys until the pool
// holds target keys, and refreshes the pinned catalogue (accepted only
// under the pinned root key) and the list of revoked keys, so that coins
// already caught in a double spend are refused offline. It returns how
// many keys were added.
func (w *Wallet) RefillKeys(ctx context.Context, target int) (int, error) {
	cat, err := w.bank.Catalogue(ctx)
	if err != nil {
		return 0, fmt.Errorf("refill: catalogue: %w", err)
	}
	if err := cat.Verify(w.cat().Root); err != nil {
		return 0, fmt.Errorf("refill: %w", err)
	}
	rev, err := w.bank.Revocations(ctx)
	if err != nil {
		return 0, fmt.Errorf("refill: revocation list: %w", err)
	}
	if err := rev.Verify(cat); err != nil {
		return 0, fmt.Errorf("refill: %w", err)
	}
	if err := w.setJSON(ctx, settingCatalogue, cat); err != nil {
		return 0, fmt.Errorf("refill: %w", err)
	}
	if err := w.setJSON(ctx, settingRevocations, rev); err != nil {
		return 0, fmt.Errorf("refill: %w", err)
	}
	ver := otp.NewVerifier(cat).WithRevocations(rev)
	w.trust.Store(&trust{cat, ver, rev.Issued})

	have, err := w.v.ExchangeKeyCount(ctx)
	if err != nil {
		return 0, fmt.Errorf("refill: %w", err)
	}
	if have >= target {
		return 0, nil
	}
	pubs, err := w.v.NewExchangeKeys(ctx, target-have)
	if err != nil {
		return 0, fmt.Errorf("refill: %w", err)
	}
	var certs []otp.ExchangeKey
	// Certification is rate limited at the bank (429, Retry-After).
	err = w.retryOnce(ctx, func() (err error) {
		if m := w.opts.Merchant; m != nil {
			certs, err = w.bank.CertifyAccountKeys(ctx, *m, pubs)
		} else {
			// Blindly: the bank cannot tell, at deposit, that a coin was
			// paid to this wallet. Certification costs nothing, so a crash
			// before the keys are stored loses nothing: they stay
			// uncertified, unused.
			certs, err = w.bank.CertifyExchangeKeys(ctx, cat, pubs)
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("refill: certify: %w", err)
	}
	for i := range certs {
		if err := ver.VerifyExchangeKey(&certs[i], w.now()); err != nil {
			return 0, fmt.Errorf("refill: bank returned a bad certificate: %w", err)
		}
	}
	if err := w.v.AddExchangeKeys(ctx, certs); err != nil {
		return 0, fmt.Errorf("refill: %w", err)
	}
	w.emit(Event{Kind: EventRefilled, Coins: len(certs)})
	return len(certs), nil
}

// ExchangeKeys reports how many certified exchange keys the wallet holds:
// the number of coins it can receive before it must go online to refill.
func (w *Wallet) ExchangeKeys(ctx context.Context) (int, error) { return w.v.ExchangeKeyCount(ctx) }

// Balance is what a wallet holds, in minor units.
type Balance struct {
	Currency   string `json:"currency"`
	Held       int64  `json:"held"`
	PendingOut int64  `json:"pendingOut"`
	Coins      int    `json:"coins"`
	// Refused is the value of the coins whose deposit the bank refused for
	// good (a double deposit, say): counted apart, never paid again;
	// History says why.
	Refused      int64 `json:"refused"`
	RefusedCoins int   `json:"refusedCoins"`
	// Recovering is the value of a lost wallet's coins claimed at the
	// bank and not yet credited (Recover): claims, never payable here;
	// the bank credits them to the account after their deposit deadline
	// unless someone else spent them first.
	Recovering      int64 `json:"recovering"`
	RecoveringCoins int   `json:"recoveringCoins"`
	// Denominations counts the coins held by value.
	Denominations denom.Counts `json:"denominations"`
	// Programs splits the totals by coin program: coins of different
	// programs buy different things.
	Programs map[string]ProgramBalance `json:"programs"`
}

// ProgramBalance is what a wallet holds of one coin program.
type ProgramBalance struct {
	Held       int64 `json:"held"`
	PendingOut int64 `json:"pendingOut"`
	Coins      int   `json:"coins"`
}

// Balance sums the coins the wallet can spend, those in flight, those
// the bank refused and a lost wallet's coins claimed at the bank.
func (w *Wallet) Balance(ctx context.Context) (Balance, error) {
	coins, err := w.v.Coins(ctx, vault.Held, vault.PendingOut, vault.Refused)
	if err != nil {
		return Balance{}, fmt.Errorf("balance: %w", err)
	}
	b := Balance{Currency: w.Currency(), Denominations: denom.Counts{}, Programs: map[string]ProgramBalance{}}
	for _, c := range coins {
		d := &c.Sandbox.Coin.Data
		p := b.Programs[d.Program]
		switch c.State {
		case vault.Held:
			b.Held += d.Value
			b.Coins++
			b.Denominations[d.Value]++
			p.Held += d.Value
			p.Coins++
		case vault.PendingOut:
			b.PendingOut += d.Value
			p.PendingOut += d.Value
		case vault.Refused:
			b.Refused += d.Value
			b.RefusedCoins++
			continue
		}
		b.Programs[d.Program] = p
	}
	cl, err := w.v.RecoveryClaims(ctx)
	if err != nil {
		return Balance{}, fmt.Errorf("balance: %w", err)
	}
	for _, c := range cl.Coins {
		b.Recovering += c.Sandbox.Coin.Data.Value
		b.RecoveringCoins++
	}
	return b, nil
}

func newID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("wallet: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
