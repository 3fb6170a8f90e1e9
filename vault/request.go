package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/otpcash/otpcash/otp"
)

// Errors of the two-pass payment (payment requests and tokens).
var (
	// ErrNotRequested refuses a coin on an exchange key that was not
	// handed out for the payment request it claims to pay: a key of
	// another request, a key never promised to a request, or, in a live
	// session, a key promised to one.
	ErrNotRequested = errors.New("coin not on a key of this payment request")
	// ErrExpired refuses a payment token for a request past its expiry.
	ErrExpired = errors.New("payment request expired")
	// ErrRequestSignature refuses a payment request whose fields or keys
	// are not those its payee signed.
	ErrRequestSignature = errors.New("payment request signature invalid")
	// ErrNotAsRequested refuses a payment token whose coins are not the
	// amount, currency or program the request asked for.
	ErrNotAsRequested = errors.New("payment differs from the request")
)

// Request is a payment request as the payee's vault keeps it: what it
// asked for and the exchange keys it promised to it, each usable only by a
// payment token for this request (ReceiveRequest).
type Request struct {
	ID       string    `json:"id" cbor:"1,keyasint"`
	Amount   int64     `json:"amount" cbor:"2,keyasint"`
	Currency string    `json:"currency" cbor:"3,keyasint"`
	Program  string    `json:"program" cbor:"4,keyasint"`
	Memo     string    `json:"memo" cbor:"5,keyasint"`
	Expires  time.Time `json:"expires" cbor:"6,keyasint"`
	// Keys are the certificates of the promised keys, read from this
	// vault and verified when the bank issued them.
	Keys []otp.ExchangeKey `json:"keys" cbor:"7,keyasint"`
	// Sig is the signature of the first key over the request
	// (SignedMessage): it binds what the request asks for to its keys.
	Sig []byte `json:"sig" cbor:"8,keyasint"`
	// Paid are the tokens of the coins that paid the request, in the
	// order they came: a token sent again must bring exactly these.
	Paid []string `json:"paid,omitempty" cbor:"9,keyasint,omitempty"`
}

// requestLabel separates a request's signature from everything else an
// exchange key signs (receipts, transfers, deposit proofs).
const requestLabel = "otpcash/v1/payment-request"

// SignedMessage is what the first key of a request signs: every field the
// payer acts on and every key certificate, so that no field and no key
// can be changed on the way without the payer noticing.
func (r *Request) SignedMessage() ([]byte, error) {
	body, err := otp.Canonical(struct {
		ID       string            `json:"id"`
		Amount   int64             `json:"amount"`
		Currency string            `json:"currency"`
		Program  string            `json:"program"`
		Memo     string            `json:"memo"`
		Expires  int64             `json:"expires"`
		Keys     []otp.ExchangeKey `json:"keys"`
	}{r.ID, r.Amount, r.Currency, r.Program, r.Memo, r.Expires.Unix(), r.Keys})
	if err != nil {
		return nil, err
	}
	return append([]byte(requestLabel+"\x00"), body...), nil
}

// Verify checks the request's signature under its first key. The key's
// certificate is the executor's to check.
func (r *Request) Verify() error {
	if len(r.Keys) == 0 {
		return fmt.Errorf("%w: no keys", ErrRequestSignature)
	}
	pub, err := r.Keys[0].PublicKey()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRequestSignature, err)
	}
	msg, err := r.SignedMessage()
	if err != nil {
		return err
	}
	if !otp.VerifyEd25519(pub, msg, r.Sig) {
		return fmt.Errorf("%w: the request was changed after its payee signed it, or a key was swapped", ErrRequestSignature)
	}
	return nil
}

const (
	kindRequest   = "request"
	requestOpen   = "open"
	requestPaid   = "paid"
	maxRequestKey = 64 // keys per request: one per coin the payer may send
)

// PromiseRequest records the request r and promises n of the vault's
// certified, unused, unexpired exchange keys to it, in one transaction,
// and returns it with its keys and signature. The keys are never offered to
// anyone else, and a coin arrives on them only in a token for r.
func (v *Vault) PromiseRequest(ctx context.Context, r Request, n int) (Request, error) {
	if n < 1 || n > maxRequestKey {
		return Request{}, fmt.Errorf("payment request: asked for %d keys, want 1..%d", n, maxRequestKey)
	}
	if r.ID == "" {
		return Request{}, errors.New("payment request: empty id")
	}
	var keys []otp.ExchangeKey
	err := v.update(ctx, func(t *tx) error {
		id := t.s.id(kindRequest, []byte(r.ID))
		if _, err := t.get(kindRequest, id, &Request{}); err == nil {
			return fmt.Errorf("request %s: %w", r.ID, ErrExists)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		var err error
		if keys, err = t.firstKeys(n); err != nil {
			return err
		}
		r.Keys, r.Paid = keys, nil
		msg, err := r.SignedMessage()
		if err != nil {
			return err
		}
		for i := range keys {
			kid, k, _, err := t.key(keys[i].Pub)
			if err != nil {
				return err
			}
			if i == 0 {
				priv, err := privateKey(k.Seed, keys[0].Pub)
				if err != nil {
					return err
				}
				r.Sig = otp.SignEd25519(priv, msg)
			}
			k.Request = r.ID
			if err := t.put(kindKey, kid, keyPromised, nil, k); err != nil {
				return err
			}
		}
		return t.put(kindRequest, id, requestOpen, nil, r)
	})
	if err != nil {
		return Request{}, fmt.Errorf("payment request: %w", err)
	}
	return r, nil
}

// ReceiveRequest stores the coins of a payment token for request id as
// held, in one transaction, and returns a receipt for each; the caller has
// verified the coins as a live payee does (signatures, currency and
// program, conditions). The request must be open and unexpired, every coin
// on one of its keys, and the coins together exactly its amount; then it
// is paid.
//
// now is the payee's clock, which the expiry is judged by.
//
// The same token again (the payee crashed before the receipt left, or the
// receipt was lost) is answered with the same receipts and again set, and
// nothing changes; any other token for a paid request is refused.
func (v *Vault) ReceiveRequest(ctx context.Context, id string, coins []otp.Sandbox, now time.Time) (acks []otp.Ack, again bool, err error) {
	err = v.update(ctx, func(t *tx) error {
		var r Request
		rid := t.s.id(kindRequest, []byte(id))
		state, err := t.get(kindRequest, rid, &r)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: this wallet never made it", err)
		}
		if err != nil {
			return err
		}
		switch state {
		case requestPaid:
			if !slices.Equal(r.Paid, tokens(coins)) {
				return fmt.Errorf("%w: the request is paid, by other coins", ErrState)
			}
			again = true
		case requestOpen:
			if err := r.admits(coins, now); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: %s", ErrState, state)
		}
		// The keys bind the coins to this request; receiveAll refuses a key
		// used already and answers a coin it holds with the same chain
		// with the receipt it stored.
		if acks, _, err = t.receiveAll(kindRequest+":"+id, id, coins); err != nil {
			return err
		}
		if again {
			return nil
		}
		r.Paid = tokens(coins)
		return t.put(kindRequest, rid, requestPaid, nil, r)
	})
	if err != nil {
		return nil, false, fmt.Errorf("receive for request %s: %w", id, err)
	}
	return acks, again, nil
}

// PaymentRequest returns the request id and whether it is paid.
func (v *Vault) PaymentRequest(ctx context.Context, id string) (r Request, paid bool, err error) {
	err = v.view(ctx, func(t *tx) error {
		state, err := t.get(kindRequest, t.s.id(kindRequest, []byte(id)), &r)
		paid = state == requestPaid
		return err
	})
	if err != nil {
		return Request{}, false, fmt.Errorf("payment request %s: %w", id, err)
	}
	return r, paid, nil
}

// admits reports why coins do not pay the open request r at now, if they
// do not.
func (r *Request) admits(coins []otp.Sandbox, now time.Time) error {
	if now.After(r.Expires) {
		return fmt.Errorf("%w at %s", ErrExpired, r.Expires.UTC().Format(time.RFC3339))
	}
	if len(coins) == 0 || len(coins) > len(r.Keys) {
		return fmt.Errorf("%w: %d coins for a request of %d keys", ErrNotAsRequested, len(coins), len(r.Keys))
	}
	var sum int64
	for i := range coins {
		c := &coins[i].Coin
		if c.Data.Value <= 0 || sum > sum+c.Data.Value {
			return fmt.Errorf("%w: coin %.12s has value %d", ErrNotAsRequested, c.Data.Token, c.Data.Value)
		}
		sum += c.Data.Value
	}
	if sum != r.Amount {
		return fmt.Errorf("%w: the coins make %d, the request asks for %d", ErrNotAsRequested, sum, r.Amount)
	}
	return nil
}

// admitsRequest reports why a coin for request (none: "") may not arrive
// on the key pub promised to keyRequest (none: ""), if it may not.
func admitsRequest(keyRequest, request, pub string) error {
	switch {
	case keyRequest == request:
		return nil
	case request == "":
		return fmt.Errorf("transferred to key %.12s: %w: the key was handed out for payment request %s and takes only its payment token", pub, ErrNotRequested, keyRequest)
	}
	return fmt.Errorf("transferred to key %.12s: %w: the key was not handed out for request %s", pub, ErrNotRequested, request)
}

func tokens(coins []otp.Sandbox) []string {
	out := make([]string, len(coins))
	for i := range coins {
		out[i] = coins[i].Coin.Data.Token
	}
	return out
}
