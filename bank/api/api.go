// Package api defines the JSON wire format of the otpcash bank's HTTP API,
// shared by the server (package bank) and its Go client (package
// bank/client), so the two cannot drift apart.
//
// Every error response has the body {"code": "...", "message": "..."}:
// code is one of the stable Code* constants, for programs to branch on;
// message is for people and may change. In Go both sides carry it as an
// *Error.
//
// Amounts are int64 minor units (cents) of the bank's currency; binary
// values (keys, tokens) are unpadded base64url, as in package otp.
//
// openapi.yaml describes the whole API (routes, bodies, error codes) in
// OpenAPI 3.1, for clients in other languages; OpenAPI returns it, and the
// bank serves it at GET /v1/openapi.yaml.
//
// Where to start: openapi.yaml lists every route; Error and the Code
// constants are what a client branches on.
package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/otpcash/otpcash/otp"
)

// Stable error codes.
const (
	CodeBadRequest        = "bad_request"
	CodeUnauthorized      = "unauthorized"
	CodeNotFound          = "not_found"
	CodeMethodNotAllowed  = "method_not_allowed"
	CodeConflict          = "conflict"
	CodeInsufficientFunds = "insufficient_funds"
	CodeRateLimited       = "rate_limited"
	CodeTooLarge          = "too_large"
	CodeUnknownProgram    = "unknown_program"
	// CodeUnknownKey: a withdrawal names a coin key that is not in the
	// catalogue or no longer signs; fetch the catalogue and use the
	// newest key of the program.
	CodeUnknownKey = "unknown_key"
	CodeInternal   = "internal"
	// CodeUnavailable (503, with Retry-After): the bank's database is
	// unreachable or was restarted. Retry the same request (same
	// withdrawal id, same coins): nothing is applied twice.
	CodeUnavailable = "unavailable"
	// CodeForbidden (403): a backup's key does not name its id, or an
	// upload's signature does not verify.
	CodeForbidden = "forbidden"
	// CodeStaleVersion (409): a backup upload's version is not above the
	// stored one: a replay, or another device of the same phrase wrote a
	// newer backup (fetch it first).
	CodeStaleVersion = "stale_version"
)

// Error is an API error: the HTTP status and the JSON error body.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("bank: %s (%d %s): %s", e.Code, e.Status, http.StatusText(e.Status), e.Message)
}

// Errorf returns an *Error with the given status and code.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// CreateAccountRequest is the optional body of POST /v1/accounts. Attrs
// are certified on the exchange keys of the account (a merchant's
// category, for example), for coin programs' conditions to read as
// payee.NAME; keys are lowercase identifiers, at most 16 of them.
type CreateAccountRequest struct {
	Attrs map[string]string `json:"attrs,omitempty"`
}

// CreateAccountResponse answers POST /v1/accounts. Token is the account's
// bearer token; the bank keeps only its hash, so this is the one time it is
// shown.
type CreateAccountResponse struct {
	ID    string `json:"id"`
	Token string `json:"token"`
}

// CreditRequest is the body of POST /v1/accounts/{id}/credit.
type CreditRequest struct {
	Amount int64 `json:"amount"`
}

// CreditResponse answers a credit with the account's new balance.
type CreditResponse struct {
	Balance int64 `json:"balance"`
}

// Account answers GET /v1/accounts/{id}.
type Account struct {
	ID       string `json:"id"`
	Currency string `json:"currency"`
	Balance  int64  `json:"balance"`
}

// Kinds of ledger entries.
const (
	KindCredit   = "credit"
	KindWithdraw = "withdraw"
	KindDeposit  = "deposit"
)

// Entry is one ledger entry of an account. Amount is signed: credits and
// deposits are positive, withdrawals negative. Reference is the withdrawal
// id for a withdrawal and, for a credit of coins, its reference (also kept
// with every coin it credited), whose prefix says what credited them:
// "dep-" a deposit, "rcl-" a reclaim, "rcv-" a recovery ("rec-" for both
// of the last in entries made before they were told apart).
type Entry struct {
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"`
	Amount    int64     `json:"amount"`
	Reference string    `json:"reference"`
}

// History answers GET /v1/accounts/{id}/history: the newest entries first.
type History struct {
	Entries []Entry `json:"entries"`
}

// WithdrawRequest is the body of POST /v1/withdrawals. ID is chosen by the
// client and makes the request idempotent: a repeated request with the same
// ID gets the same blind signatures. KeyID names the coin type: the newest
// blind coin key of a program in the catalogue (value, currency, program
// and expiry of the coins). Blinded are the coins the wallet built and
// blinded (otp.NewBlindCoin), one per coin: RFC 9474 blinded messages of
// otp.BlindMessageSize bytes, unpadded base64url. The bank sees neither
// the serials nor the holder keys of the coins it signs.
type WithdrawRequest struct {
	ID      string   `json:"id"`
	Account string   `json:"account"`
	KeyID   string   `json:"keyId"`
	Blinded []string `json:"blinded"`
}

// WithdrawResponse carries the blind signatures, in the order of the
// blinded messages; the wallet unblinds them into its coins.
type WithdrawResponse struct {
	BlindSignatures []string `json:"blindSignatures"`
}

// ReclaimRequest is the body of POST /v1/reclaims: coins a payer sealed
// and that never reached their payee, to be credited back to the payer's
// account once their deposit deadline has passed, if nobody deposited
// them. The answer is a DepositResponse: a coin deposited already is
// refused as a double deposit.
type ReclaimRequest struct {
	Account string        `json:"account"`
	Coins   []ReclaimCoin `json:"coins"`
}

// ReclaimCoin is one sealed coin with the authorisation its payer's holder
// key signed when it sealed it, naming the reclaim key Key, and Key's
// signature of the request for this account (otp/reclaim.go).
type ReclaimCoin struct {
	Sandbox       otp.Sandbox `json:"sandbox"`
	Authorization string      `json:"authorization"`
	Key           string      `json:"key"`
	Proof         string      `json:"proof"`
}

// RecoveryRequest is the body of POST /v1/recoveries: the coins of a lost
// wallet, claimed with its recovery key once their deposit deadline has
// passed. Each coin is held as the wallet last backed it up; its
// Authorization was signed by the coin's holder key then, naming the
// recovery key Key, and Proof is Key's signature of the claim for this
// account (otp/recovery.go). The answer is a DepositResponse: not_yet
// before the deadline, double_deposit for a coin someone deposited,
// reclaimed or recovered with another chain: spent.
type RecoveryRequest struct {
	Account string        `json:"account"`
	Coins   []ReclaimCoin `json:"coins"`
}

// RedenominationRequest is the body of POST /v1/redenominations (and of
// POST /v1/exchanges, its deprecated alias): the coins are deposited to
// the account and the blinded coins withdrawn from it in one transaction,
// so the account does not change: they must be of equal value and of one
// coin program. A repeated ID gets the same answer. Deposit proofs bind
// the coins to the account, as for a deposit.
type RedenominationRequest struct {
	ID       string          `json:"id"`
	Account  string          `json:"account"`
	Coins    []DepositCoin   `json:"coins"`
	Withdraw []WithdrawBatch `json:"withdraw"`
}

// WithdrawBatch is blinded coins of one coin key.
type WithdrawBatch struct {
	KeyID   string   `json:"keyId"`
	Blinded []string `json:"blinded"`
}

// RedenominationResponse carries the blind signatures, batch by batch, in
// the order of the request.
type RedenominationResponse struct {
	BlindSignatures [][]string `json:"blindSignatures"`
}

// ExchangeKeysRequest is the body of POST /v1/exchange-keys, in one of two
// forms. A merchant's keys: Pubs, one-time Ed25519 public keys, and
// Account, whose bearer token the request carries; the keys carry the
// account's certified attributes and are certified in the clear.
// Anonymous keys: KeyID, the catalogue's newest blind
// exchange-certification key, and Blinded, the blinded certificates
// (otp.NewBlindExchangeKey); the bank signs them without seeing the keys.
type ExchangeKeysRequest struct {
	Pubs    []string `json:"pubs,omitempty"`
	Account string   `json:"account,omitempty"`
	KeyID   string   `json:"keyId,omitempty"`
	Blinded []string `json:"blinded,omitempty"`
}

// ExchangeKeysResponse carries the certified keys, or for anonymous keys
// the blind signatures, in request order.
type ExchangeKeysResponse struct {
	Keys            []otp.ExchangeKey `json:"keys,omitempty"`
	BlindSignatures []string          `json:"blindSignatures,omitempty"`
}

// DepositRequest is the body of POST /v1/deposits.
type DepositRequest struct {
	Account string        `json:"account"`
	Coins   []DepositCoin `json:"coins"`
}

// DepositCoin is one coin to deposit: the held sandbox and the holder's
// signature binding it to the account (otp.Sandbox.DepositProof).
type DepositCoin struct {
	Sandbox otp.Sandbox `json:"sandbox"`
	Proof   string      `json:"proof"`
}

// Deposit statuses.
const (
	// StatusCredited: the coin was accepted and its value credited.
	StatusCredited = "credited"
	// StatusAlreadyCredited: the same coin with the same chain was
	// deposited to this account before; nothing more was credited. A
	// wallet that crashed after depositing can safely retry.
	StatusAlreadyCredited = "already_credited"
	// StatusRefused: the coin was not credited; Code says why.
	StatusRefused = "refused"
)

// Codes of refused deposits.
const (
	CodeDoubleDeposit = "double_deposit" // serial already deposited with another chain or to another account
	CodeInvalidCoin   = "invalid_coin"   // format, checksum, program or issuer signature wrong
	CodeInvalidChain  = "invalid_chain"  // a transfer link is not valid
	CodeInvalidProof  = "invalid_proof"  // deposit proof not signed by the holder for this account
	CodeUnknownIssuer = "unknown_issuer" // issuer or issuer key not in this bank's catalogue
	CodeUnknownCoin   = "unknown_coin"   // validly signed but never issued by this bank as such
	CodeExpired       = "expired"        // past its key's deposit deadline
	CodeNotYet        = "not_yet"        // a reclaim before the coin's deposit deadline
	CodeCondition     = "condition"      // one of the coin's program conditions is not met
)

// DepositResult is the outcome for one coin, in request order.
type DepositResult struct {
	Token    string       `json:"token"`
	Status   string       `json:"status"`
	Code     string       `json:"code,omitempty"`
	Message  string       `json:"message,omitempty"`
	Conflict *ConflictKey `json:"conflict,omitempty"`
}

// ConflictKey names the one-time key that signed for a coin twice: the
// holder at Index (0 is the coin's first holder) of both chains.
type ConflictKey struct {
	Key   string `json:"key"`
	Index int    `json:"index"`
}

// DepositResponse answers a deposit with the per-coin results and the
// account's balance afterwards.
type DepositResponse struct {
	Results []DepositResult `json:"results"`
	Balance int64           `json:"balance"`
}

// Conflict is the evidence of a double deposit: the chain deposited first
// and a later, different one, with the key that signed both.
type Conflict struct {
	Token         string      `json:"token"`
	Key           string      `json:"key"`
	Index         int         `json:"index"`
	FirstAccount  string      `json:"firstAccount"`
	SecondAccount string      `json:"secondAccount"`
	Detected      time.Time   `json:"detected"`
	First         otp.Sandbox `json:"first"`
	Second        otp.Sandbox `json:"second"`
}

// Conflicts answers GET /v1/admin/conflicts.
type Conflicts struct {
	Conflicts []Conflict `json:"conflicts"`
}

// Health answers GET /healthz.
type Health struct {
	Status string `json:"status"`
}
