package wallet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/otpcash/otpcash/amount"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/internal/fault"
	"github.com/otpcash/otpcash/internal/paycode"
	"github.com/otpcash/otpcash/otp"
	"github.com/otpcash/otpcash/p2p"
	"github.com/otpcash/otpcash/vault"
)

// Errors of the two-pass payment, testable with errors.Is.
var (
	// ErrRequestSignature refuses a request changed after its payee
	// made it: an amount, memo, expiry or key not the payee's.
	ErrRequestSignature = vault.ErrRequestSignature
	// ErrExpired refuses a request, or a token for one, past its expiry.
	ErrExpired = vault.ErrExpired
	// ErrNotRequested refuses a token whose coins are not on keys this
	// wallet handed out for the request it names.
	ErrNotRequested = vault.ErrNotRequested
	// ErrNotAsRequested refuses a token that pays another amount than the
	// request's.
	ErrNotAsRequested = vault.ErrNotAsRequested
	// ErrUnknownRequest refuses a token or receipt for a request this
	// wallet never made or never paid.
	ErrUnknownRequest = errors.New("unknown payment request")
	// ErrPaid refuses paying a request this wallet has paid already.
	ErrPaid = errors.New("payment request already paid")
	// ErrMixedPayees refuses a request whose keys carry different
	// certified attributes: keys of more than one payee.
	ErrMixedPayees = errors.New("payment request mixes payees")
)

// DefaultRequestTTL is how long a payment request can be paid.
const DefaultRequestTTL = 15 * time.Minute

// requestKeySlack is how many exchange keys a request carries beyond the
// fewest coins that make its amount, and minRequestKeys the fewest it
// carries: a payer short of large coins pays in smaller ones, and a
// withdrawal's mix makes 3.00 in 12 coins. Each key is about 500
// characters of the request's text: more keys, larger codes.
const (
	requestKeySlack = 4
	minRequestKeys  = 12
)

// PaymentRequest is a payment request: what the payee asks for, and the
// certified exchange keys it promised to it (a merchant's carry the
// bank-certified attributes). Text is its text form, OTPCASHREQ1...
type PaymentRequest struct {
	ID       string
	Amount   int64
	Currency string
	Program  string
	Memo     string
	Expires  time.Time
	Keys     []otp.ExchangeKey
	Text     string
	sig      []byte // the first key's signature (vault.Request.Verify)
}

// TokenPayment is what PayRequest did: the coins sealed to a request, in
// the token to hand to the payee.
type TokenPayment struct {
	Request PaymentRequest
	Coins   int
	Token   string // OTPCASHTOK1...
	// Again is set when the coins were sealed to this request before
	// (the token was lost, or the wallet stopped before printing it):
	// the token is made again from them, nothing new is sealed.
	Again bool
}

// TokenReceipt is what ReceiveToken did: the payment stored, and the
// receipt to hand back to the payer.
type TokenReceipt struct {
	RequestID string
	Amount    int64
	Coins     int
	Receipt   string // OTPCASHRCP1...
	// Again is set when this token was imported before: nothing changed,
	// and Receipt is the one given then.
	Again bool
}

// ReceiptImport is what ImportReceipt did.
type ReceiptImport struct {
	RequestID string
	Amount    int64
	Coins     int
	Again     bool // the receipt was imported before; nothing changed
}

// requestPeer is the label under which the coins of a two-pass payment
// are recorded: no identity key is involved, and a live session with the
// payee never re-sends them (its vault takes them only in a token).
func requestPeer(id string) string { return "request:" + id }

// Request makes a payment request for value in this wallet's currency and
// the program WithProgram names ("general" by default), payable until ttl
// from now. Its exchange keys are promised to it in the vault: no one
// else is offered them, and a coin arrives on them only in a token for
// this request. A request is paid exactly: there is no change without a
// live session.
//
// keys is how many exchange keys the request carries, the most coins a
// payer may pay it in; 0 means enough for the fewest coins that make value
// and some more, at least minRequestKeys.
func (w *Wallet) Request(ctx context.Context, value int64, memo string, ttl time.Duration, keys int, opts ...Option) (PaymentRequest, error) {
	program := applyOptions(opts).program
	if value <= 0 || ttl <= 0 || keys < 0 || keys > paycode.MaxKeys {
		return PaymentRequest{}, fmt.Errorf("request %d for %s with %d keys: %w: the amount and the time must be positive, the keys 0..%d",
			value, ttl, keys, ErrAmount, paycode.MaxKeys)
	}
	// The bank's limit on held value is checked when the request is made,
	// as a live payee checks it at the offer: before any key is handed out.
	if err := w.mayHold(ctx, value); err != nil {
		return PaymentRequest{}, fmt.Errorf("request %s: %w", amount.Format(value), err)
	}
	fewest, err := w.fewestCoins(program, value)
	if err != nil {
		return PaymentRequest{}, fmt.Errorf("request %s: %w", amount.Format(value), err)
	}
	n := keys
	if n == 0 {
		n = min(max(fewest+requestKeySlack, minRequestKeys), paycode.MaxKeys)
	}
	var raw [16]byte
	rand.Read(raw[:])
	r := vault.Request{ID: hex.EncodeToString(raw[:]), Amount: value, Currency: w.Currency(), Program: program,
		Memo: memo, Expires: w.now().Add(ttl).Truncate(time.Second)}
	r, err = w.v.PromiseRequest(ctx, r, n)
	if err != nil {
		return PaymentRequest{}, fmt.Errorf("request %s: %w", amount.Format(value), err)
	}
	pr := fromVault(&r)
	if pr.Text, err = paycode.EncodeRequest(&paycode.Request{ID: raw, Amount: pr.Amount, Currency: pr.Currency,
		Program: pr.Program, Memo: pr.Memo, Expires: pr.Expires, Keys: pr.Keys, Sig: r.Sig}); err != nil {
		return PaymentRequest{}, fmt.Errorf("request %s: %w", amount.Format(value), err)
	}
	w.record(ctx, HistoryEntry{Kind: HistoryRequest, Amount: value, Peer: requestPeer(r.ID), Detail: memo})
	return pr, nil
}

// fewestCoins is how many coins of the program's values issued now make
// value, largest first; an error if none make it.
func (w *Wallet) fewestCoins(program string, value int64) (int, error) {
	keys, err := w.cat().CoinKeys(program, w.now())
	if err != nil {
		return 0, fmt.Errorf("%w: no coins of program %q are issued: %w", ErrAmount, program, err)
	}
	n, left := 0, value
	for i := len(keys) - 1; i >= 0; i-- {
		n += int(left / keys[i].Value)
		left %= keys[i].Value
	}
	if left != 0 {
		return 0, fmt.Errorf("%w: no coins of program %q make %s", ErrAmount, program, amount.Format(value))
	}
	return n, nil
}

func fromVault(r *vault.Request) PaymentRequest {
	return PaymentRequest{ID: r.ID, Amount: r.Amount, Currency: r.Currency, Program: r.Program, Memo: r.Memo, Expires: r.Expires, Keys: r.Keys}
}

// ParseRequest reads a payment request's text form or URI. It checks only
// the form: PayRequest checks what it says.
func ParseRequest(text string) (PaymentRequest, error) {
	r, err := paycode.ParseRequest(text)
	if err != nil {
		return PaymentRequest{}, err
	}
	return PaymentRequest{ID: hex.EncodeToString(r.ID[:]), Amount: r.Amount, Currency: r.Currency, Program: r.Program,
		Memo: r.Memo, Expires: r.Expires, Keys: r.Keys, Text: text, sig: r.Sig}, nil
}

// PayRequest pays a payment request (its text form or URI) with a token.
// The request must carry its payee's signature (by its first key, over
// every field and key certificate) and keys certified for one payee; then
// the coins that make its amount exactly, sealed to its keys by the
// coins' program as in a live session (the keys' certificates and expiry,
// the coins' conditions judged against the payee's certified attributes,
// the coins recorded pending-out and their holder keys destroyed in one
// durable write before the token exists). The coins stay pending-out until
// ImportReceipt records the payee's receipt; without one they are
// reclaimed at the bank after their deadline, as for a live payment.
//
// Paying a request again, before its receipt came back, makes the same
// token again from the coins already sealed. A wallet that cannot make
// the amount exactly says so: change needs a live session, or coins
// re-denominated at the bank first.
func (w *Wallet) PayRequest(ctx context.Context, text string) (TokenPayment, error) {
	req, err := ParseRequest(text)
	if err != nil {
		return TokenPayment{}, fmt.Errorf("pay request: %w", err)
	}
	tp := TokenPayment{Request: req}
	vr := vault.Request{ID: req.ID, Amount: req.Amount, Currency: req.Currency, Program: req.Program,
		Memo: req.Memo, Expires: req.Expires, Keys: req.Keys, Sig: req.sig}
	if err := vr.Verify(); err != nil {
		return tp, fmt.Errorf("pay request %s: %w", req.ID, err)
	}
	peer := requestPeer(req.ID)
	coins, err := w.v.Coins(ctx, vault.Held, vault.PendingOut, vault.Spent)
	if err != nil {
		return tp, fmt.Errorf("pay request %s: %w", req.ID, err)
	}
	sealed, paid := towards(coins, peer)
	if len(sealed) > 0 {
		// The id is the payee's word: another request may carry it. The
		// coins are this request's only if they went to its keys.
		if err := sealedTo(sealed, req.Keys); err != nil {
			return tp, fmt.Errorf("pay request %s: %w", req.ID, err)
		}
		tp.Again = true
		return w.token(req, sealed, tp)
	}
	if len(paid) > 0 {
		return tp, fmt.Errorf("pay request %s: %w: its receipt is in this wallet", req.ID, ErrPaid)
	}
	if req.Currency != w.Currency() {
		return tp, fmt.Errorf("pay request %s: %w: this wallet pays %s, the request asks for %s", req.ID, ErrCurrency, w.Currency(), req.Currency)
	}
	// The payer is shown who it pays by the first key's certified
	// attributes: a request that mixes in keys of another payee (a
	// merchant's key and an attacker's anonymous ones) would pay both.
	for i := range req.Keys {
		if !maps.Equal(req.Keys[i].Attrs, req.Keys[0].Attrs) {
			return tp, fmt.Errorf("pay request %s: %w: its exchange keys are certified for different payees (key %d: %v, key 0: %v)",
				req.ID, ErrMixedPayees, i, req.Keys[i].Attrs, req.Keys[0].Attrs)
		}
	}
	if now := w.now(); now.After(req.Expires) {
		return tp, fmt.Errorf("pay request %s: %w at %s", req.ID, ErrExpired, req.Expires.Format(time.RFC3339))
	}
	held := w.offlinePayable(vault.PayableOf(coins, req.Currency, req.Program, w.now()))
	plan, err := denom.Best(req.Amount, countsOf(held), nil)
	if err == nil && plan.Send.Len() > len(req.Keys) {
		err = fmt.Errorf("it takes %d coins and the request has keys for %d", plan.Send.Len(), len(req.Keys))
	}
	if err != nil {
		return tp, fmt.Errorf("pay request %s: %w: cannot pay %s of program %q exactly from this wallet's coins (%w); re-denominate coins at the bank (wallet redenominate) or pay in a live session, where the payee gives change",
			req.ID, ErrInsufficient, amount.Format(req.Amount), req.Program, err)
	}
	rp := &tokenPeer{keys: req.Keys}
	purse := w.v.Purse(peer)
	for _, batch := range byProgram(pick(held, plan.Send)) {
		run := &otp.Run{Verifier: w.ver(), Now: w.now(), Peer: rp, Purse: purse, Coins: batch,
			Payment: otp.Payment{Amount: req.Amount, Memo: req.Memo}}
		err := otp.Execute(ctx, run)
		if run.Sealed != nil {
			w.emit(Event{Kind: EventSealed, Coins: len(run.Sealed), Peer: peer})
			sealed = append(sealed, run.Sealed...)
		}
		if !errors.Is(err, errDeferred) {
			if len(sealed) > 0 {
				err = fmt.Errorf("%w (%d coins sealed to this request stay pending-out: pay it again for their token)", err, len(sealed))
			}
			return tp, fmt.Errorf("pay request %s: %w", req.ID, err)
		}
	}
	w.record(ctx, HistoryEntry{Kind: HistoryPayToken, Amount: req.Amount, Peer: peer, Detail: req.Memo})
	return w.token(req, sealed, tp)
}

// sealedTo refuses coins that were not sealed to one of keys, exactly as
// certified: coins paid to another request that carried the same id.
func sealedTo(sealed []otp.Sandbox, keys []otp.ExchangeKey) error {
	for i := range sealed {
		c := &sealed[i]
		if len(c.Chain) == 0 {
			return fmt.Errorf("%w: coin %.12s was never sealed", ErrPaid, c.Coin.Data.Token)
		}
		to := &c.Chain[len(c.Chain)-1].To
		if !slices.ContainsFunc(keys, func(k otp.ExchangeKey) bool { return k.Equal(to) }) {
			return fmt.Errorf("%w: coin %.12s went to key %.12s, not to this request's keys: another request with the same id was paid", ErrPaid, c.Coin.Data.Token, to.Pub)
		}
	}
	return nil
}

// token makes the token of the coins sealed to req, in the order of their
// serials, so that the same coins always make the same token.
func (w *Wallet) token(req PaymentRequest, sealed []otp.Sandbox, tp TokenPayment) (TokenPayment, error) {
	slices.SortFunc(sealed, func(a, b otp.Sandbox) int { return strings.Compare(a.Coin.Data.Token, b.Coin.Data.Token) })
	t := paycode.Token{Coins: sealed}
	if _, err := hex.Decode(t.Request[:], []byte(req.ID)); err != nil {
		return tp, fmt.Errorf("pay request %s: %w", req.ID, err)
	}
	var err error
	if tp.Token, err = paycode.EncodeToken(&t); err != nil {
		return tp, fmt.Errorf("pay request %s: %w", req.ID, err)
	}
	tp.Coins = len(sealed)
	return tp, nil
}

// towards returns, of the vault's coins, those this wallet sealed to peer:
// awaiting their receipts (pending), and with their receipts (paid).
func towards(coins []vault.Coin, peer string) (pending []otp.Sandbox, paid []vault.Coin) {
	for _, c := range coins {
		switch {
		case c.Peer != peer:
		case c.State == vault.PendingOut:
			pending = append(pending, c.Sandbox)
		case c.State == vault.Spent:
			paid = append(paid, c)
		}
	}
	return pending, paid
}

// errDeferred ends the executor's sendOTP step of a two-pass payment: the
// coins are sealed and recorded pending-out (P1), and their receipts come
// back later, in a receipt token (ImportReceipt), not from this run.
var errDeferred = errors.New("receipts deferred to the receipt token")

// tokenPeer is the payee of a two-pass payment as the executor sees it:
// the exchange keys are the request's, and the coins go into a token.
type tokenPeer struct {
	keys []otp.ExchangeKey
	next int // keys handed to earlier batches
}

func (p *tokenPeer) ExchangeKeys(_ context.Context, n int) ([]otp.ExchangeKey, error) {
	if n > len(p.keys)-p.next {
		return nil, fmt.Errorf("the request has %d exchange keys left for %d coins", len(p.keys)-p.next, n)
	}
	p.next += n
	return p.keys[p.next-n : p.next], nil
}

func (p *tokenPeer) Send(context.Context, []otp.Sandbox) ([]otp.Ack, error) {
	return nil, errDeferred
}

// ReceiveToken imports a payment token (text form or URI) for a request
// this wallet made: it checks every coin offline as a live payee does
// (signatures, chain, the request's currency and program, payability,
// conditions), then, in one transaction, that the request is open and
// unexpired, that every coin arrived on one of the keys promised to it and
// unused, and that the coins make its amount exactly; stores them and
// returns the receipt token. Any refusal changes nothing.
//
// The same token again gets the same receipt and changes nothing (Again):
// the payee may have stopped before the receipt left.
func (w *Wallet) ReceiveToken(ctx context.Context, text string) (TokenReceipt, error) {
	t, err := paycode.ParseToken(text)
	if err != nil {
		return TokenReceipt{}, fmt.Errorf("receive token: %w", err)
	}
	id := hex.EncodeToString(t.Request[:])
	res := TokenReceipt{RequestID: id}
	r, paid, err := w.v.PaymentRequest(ctx, id)
	if errors.Is(err, vault.ErrNotFound) {
		return res, fmt.Errorf("receive token: %w %s: this wallet never made it", ErrUnknownRequest, id)
	}
	if err != nil {
		return res, fmt.Errorf("receive token: %w", err)
	}
	h := &payee{w: w, p: Payment{Peer: requestPeer(id)},
		offer:   p2p.Offer{Amount: r.Amount, Currency: r.Currency, Memo: r.Memo, Program: r.Program},
		offered: make(map[string]otp.ExchangeKey, len(r.Keys))}
	for _, k := range r.Keys {
		h.offered[k.Pub] = k
	}
	// A paid request's coins were payable when they came; they may have
	// expired since, and the same token still gets its receipt.
	if err := h.verify(t.Coins, !paid); err != nil {
		return res, fmt.Errorf("receive token for request %s: %w", id, err)
	}
	acks, again, err := w.v.ReceiveRequest(ctx, id, t.Coins, w.now())
	if err != nil {
		return res, fmt.Errorf("receive token: %w", err)
	}
	fault.Point(fault.PayeeStored)
	res.Amount, res.Coins, res.Again = countsOf(t.Coins).Total(), len(t.Coins), again
	if res.Receipt, err = paycode.EncodeReceipt(&paycode.Receipt{Request: t.Request, Acks: acks}); err != nil {
		return res, fmt.Errorf("receive token: %w", err)
	}
	if !again {
		w.emit(Event{Kind: EventReceived, Amount: res.Amount, Coins: res.Coins, Peer: h.p.Peer})
		w.record(ctx, HistoryEntry{Kind: HistoryReceiveToken, Amount: res.Amount, Peer: h.p.Peer, Detail: r.Memo})
	}
	return res, nil
}

// ImportReceipt imports the payee's receipt token for a request this
// wallet paid: every receipt is verified against the coin sealed to it
// and the coins become spent, in one transaction. A receipt that does not
// cover exactly the coins awaiting it, or one that does not verify,
// changes nothing. The same receipt again changes nothing (Again).
func (w *Wallet) ImportReceipt(ctx context.Context, text string) (ReceiptImport, error) {
	rc, err := paycode.ParseReceipt(text)
	if err != nil {
		return ReceiptImport{}, fmt.Errorf("import receipt: %w", err)
	}
	id := hex.EncodeToString(rc.Request[:])
	res := ReceiptImport{RequestID: id}
	peer := requestPeer(id)
	coins, err := w.v.Coins(ctx, vault.PendingOut, vault.Spent)
	if err != nil {
		return res, fmt.Errorf("import receipt: %w", err)
	}
	pending, paid := towards(coins, peer)
	if len(pending) == 0 {
		if len(paid) == 0 || !sameAcks(paid, rc.Acks) {
			return res, fmt.Errorf("import receipt: %w %s: this wallet has no coins awaiting its receipt", ErrUnknownRequest, id)
		}
		res.Again, res.Coins = true, len(paid)
		for _, c := range paid {
			res.Amount += c.Sandbox.Coin.Data.Value
		}
		return res, nil
	}
	if len(rc.Acks) != len(pending) {
		return res, fmt.Errorf("import receipt for request %s: %d receipts for the %d coins sealed to it", id, len(rc.Acks), len(pending))
	}
	byToken := make(map[string]otp.Sandbox, len(pending))
	for _, s := range pending {
		byToken[s.Coin.Data.Token] = s
	}
	sealed := make([]otp.Sandbox, len(rc.Acks))
	for i, a := range rc.Acks {
		s, ok := byToken[a.Token]
		if !ok {
			return res, fmt.Errorf("import receipt for request %s: receipt %d is for coin %.12s, which this wallet did not seal to it", id, i, a.Token)
		}
		delete(byToken, a.Token)
		sealed[i] = s
	}
	if err := w.v.Purse(peer).Destroy(ctx, sealed, rc.Acks); err != nil {
		return res, fmt.Errorf("import receipt for request %s: %w", id, err)
	}
	res.Amount, res.Coins = countsOf(sealed).Total(), len(sealed)
	w.emit(Event{Kind: EventAcked, Amount: res.Amount, Coins: res.Coins, Peer: peer})
	return res, nil
}

// sameAcks reports whether acks are exactly the receipts stored with the
// spent coins paid.
func sameAcks(paid []vault.Coin, acks []otp.Ack) bool {
	if len(paid) != len(acks) {
		return false
	}
	stored := make(map[string]otp.Ack, len(paid))
	for _, c := range paid {
		if c.Ack != nil {
			stored[c.Ack.Token] = *c.Ack
		}
	}
	for _, a := range acks {
		if s, ok := stored[a.Token]; !ok || s != a {
			return false
		}
	}
	return true
}
