// Package client is the Go client of the otpcash bank's HTTP API (package
// bank; wire types in bank/api).
//
// Every error the bank answers with has an *api.Error in its chain, so
// callers can branch on its Code; one that says when to retry
// (Retry-After: the bank's rate limit, or a passing outage) is a
// *RetryError, and ErrRetryLater. Network failures are returned wrapped as
// they come. Responses are read up to a fixed bound, so a broken or
// hostile server cannot exhaust the caller's memory. The client verifies
// nothing: callers check the catalogue under their pinned root key and the
// coins and exchange keys against it (package otp).
//
// Where to start: New, then Catalogue (verify it with
// otp.Catalogue.Verify under the root key you pinned), WithdrawCoins,
// CertifyExchangeKeys and Deposit. An Account carries an account's id and
// token together. Package wallet uses this client; an app need not.
package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/internal/parallel"
	"github.com/otpcash/otpcash/internal/strictjson"
	"github.com/otpcash/otpcash/otp"
)

// maxResponse bounds a response body: a withdrawal of the bank's largest
// batch (1000 coins of about 1 KB) fits many times over.
const maxResponse = 32 << 20

// Client talks to one bank. It is safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
}

// New returns a client of the bank at baseURL (for example
// "https://bank.example"), using hc, or http.DefaultClient when hc is nil.
func New(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc}
}

// Catalogue fetches the bank's signed key catalogue. Verify it with
// otp.Catalogue.Verify before trusting it.
func (c *Client) Catalogue(ctx context.Context) (*otp.Catalogue, error) {
	var cat otp.Catalogue
	if err := c.do(ctx, http.MethodGet, "/v1/catalogue", "", nil, &cat); err != nil {
		return nil, err
	}
	return &cat, nil
}

// CreateAccount opens an account (admin).
func (c *Client) CreateAccount(ctx context.Context, adminToken string) (api.CreateAccountResponse, error) {
	var out api.CreateAccountResponse
	err := c.do(ctx, http.MethodPost, "/v1/accounts", adminToken, nil, &out)
	return out, err
}

// CreateAccountWithAttrs opens an account whose exchange keys carry the
// bank-certified attributes attrs, such as a merchant's category (admin).
func (c *Client) CreateAccountWithAttrs(ctx context.Context, adminToken string, attrs map[string]string) (api.CreateAccountResponse, error) {
	var out api.CreateAccountResponse
	err := c.do(ctx, http.MethodPost, "/v1/accounts", adminToken, api.CreateAccountRequest{Attrs: attrs}, &out)
	return out, err
}

// Credit adds amount minor units to an account (admin) and returns the new
// balance.
func (c *Client) Credit(ctx context.Context, adminToken, id string, amount int64) (int64, error) {
	var out api.CreditResponse
	err := c.do(ctx, http.MethodPost, "/v1/accounts/"+url.PathEscape(id)+"/credit", adminToken, api.CreditRequest{Amount: amount}, &out)
	return out.Balance, err
}

// Account returns an account's balance.
func (c *Client) Account(ctx context.Context, a Account) (api.Account, error) {
	var out api.Account
	err := c.do(ctx, http.MethodGet, "/v1/accounts/"+url.PathEscape(a.ID), a.Token, nil, &out)
	return out, err
}

// History returns an account's latest ledger entries, newest first.
func (c *Client) History(ctx context.Context, a Account) ([]api.Entry, error) {
	var out api.History
	err := c.do(ctx, http.MethodGet, "/v1/accounts/"+url.PathEscape(a.ID)+"/history", a.Token, nil, &out)
	return out.Entries, err
}

// Withdraw asks for a blind signature on each blinded coin of req,
// debiting the account, and returns them decoded, in order. Repeat a
// request that failed in transit with the same ID: the bank answers with
// the same signatures and debits once.
func (c *Client) Withdraw(ctx context.Context, token string, req api.WithdrawRequest) ([][]byte, error) {
	var out api.WithdrawResponse
	if err := c.do(ctx, http.MethodPost, "/v1/withdrawals", token, req, &out); err != nil {
		return nil, err
	}
	if len(out.BlindSignatures) != len(req.Blinded) {
		return nil, fmt.Errorf("withdraw: bank sent %d blind signatures for %d blinded coins", len(out.BlindSignatures), len(req.Blinded))
	}
	sigs := make([][]byte, len(out.BlindSignatures))
	for i, s := range out.BlindSignatures {
		var err error
		if sigs[i], err = otp.DecodeBlinded(s); err != nil {
			return nil, fmt.Errorf("withdraw: blind signature %d: %w", i, err)
		}
	}
	return sigs, nil
}

// WithdrawCoins builds one coin of the blind coin key k of issuer per
// holder key, reading the serial and blinding of coin i from rnd(i)
// (otp.WithdrawalRand, or crypto/rand), has the bank sign them blindly
// under withdrawal id, debiting account a, and returns them unblinded, in
// order. Asked again with the same id and the same randomness, it gets the
// same coins.
func (c *Client) WithdrawCoins(ctx context.Context, a Account, id, issuer string, k *otp.IssuerKey, holders []ed25519.PublicKey, rnd func(i int) io.Reader) ([]otp.Coin, error) {
	// Each coin is built, blinded, unblinded and verified on its own:
	// on all CPUs, while the bank's signatures are the costly part.
	blind := make([]*otp.BlindCoin, len(holders))
	req := api.WithdrawRequest{ID: id, Account: a.ID, KeyID: k.KeyID, Blinded: make([]string, len(holders))}
	err := parallel.ForEach(len(holders), func(i int) error {
		var err error
		if blind[i], err = otp.NewBlindCoin(issuer, k, holders[i], rnd(i)); err != nil {
			return fmt.Errorf("withdraw: %w", err)
		}
		req.Blinded[i] = otp.EncodeBlinded(blind[i].Blinded())
		return nil
	})
	if err != nil {
		return nil, err
	}
	sigs, err := c.Withdraw(ctx, a.Token, req)
	if err != nil {
		return nil, err
	}
	coins := make([]otp.Coin, len(sigs))
	err = parallel.ForEach(len(sigs), func(i int) error {
		coin, err := blind[i].Finish(sigs[i])
		if err != nil {
			return fmt.Errorf("withdraw: the bank's blind signature does not fit: %w", err)
		}
		coins[i] = *coin
		return nil
	})
	if err != nil {
		return nil, err
	}
	return coins, nil
}

// Redenominate re-denominates coins at the bank (POST
// /v1/redenominations) and returns the blind signatures, batch by batch.
func (c *Client) Redenominate(ctx context.Context, token string, req api.RedenominationRequest) ([][][]byte, error) {
	var out api.RedenominationResponse
	if err := c.do(ctx, http.MethodPost, "/v1/redenominations", token, req, &out); err != nil {
		return nil, err
	}
	if len(out.BlindSignatures) != len(req.Withdraw) {
		return nil, fmt.Errorf("redenominate: bank sent %d batches of blind signatures for %d", len(out.BlindSignatures), len(req.Withdraw))
	}
	sigs := make([][][]byte, len(out.BlindSignatures))
	for i, batch := range out.BlindSignatures {
		if len(batch) != len(req.Withdraw[i].Blinded) {
			return nil, fmt.Errorf("redenominate: bank sent %d blind signatures for %d blinded coins", len(batch), len(req.Withdraw[i].Blinded))
		}
		sigs[i] = make([][]byte, len(batch))
		for j, s := range batch {
			var err error
			if sigs[i][j], err = otp.DecodeBlinded(s); err != nil {
				return nil, fmt.Errorf("redenominate: blind signature %d.%d: %w", i, j, err)
			}
		}
	}
	return sigs, nil
}

// CertifyExchangeKeys has one-time public keys certified as anonymous
// exchange keys, blindly (RFC 9474): under the newest blind
// exchange-certification key of cat, the caller's verified catalogue of
// this bank, the bank signs certificates it never sees.
func (c *Client) CertifyExchangeKeys(ctx context.Context, cat *otp.Catalogue, pubs []ed25519.PublicKey) ([]otp.ExchangeKey, error) {
	k, err := cat.CertificationKey()
	if err != nil {
		return nil, fmt.Errorf("certify exchange keys: %w", err)
	}
	blind := make([]*otp.BlindExchangeKey, len(pubs))
	req := api.ExchangeKeysRequest{KeyID: k.KeyID, Blinded: make([]string, len(pubs))}
	for i, p := range pubs {
		if blind[i], err = otp.NewBlindExchangeKey(cat.Issuer, k, p, rand.Reader); err != nil {
			return nil, fmt.Errorf("certify exchange keys: %w", err)
		}
		req.Blinded[i] = otp.EncodeBlinded(blind[i].Blinded())
	}
	var out api.ExchangeKeysResponse
	if err := c.do(ctx, http.MethodPost, "/v1/exchange-keys", "", req, &out); err != nil {
		return nil, err
	}
	if len(out.BlindSignatures) != len(pubs) {
		return nil, fmt.Errorf("certify exchange keys: bank returned %d blind signatures for %d keys", len(out.BlindSignatures), len(pubs))
	}
	keys := make([]otp.ExchangeKey, len(pubs))
	for i, s := range out.BlindSignatures {
		sig, err := otp.DecodeBlinded(s)
		if err != nil {
			return nil, fmt.Errorf("certify exchange keys: blind signature %d: %w", i, err)
		}
		if keys[i], err = blind[i].Finish(sig); err != nil {
			return nil, fmt.Errorf("certify exchange keys: the bank's blind signature does not fit: %w", err)
		}
	}
	return keys, nil
}

// CertifyAccountKeys has one-time public keys certified, in the clear, as
// exchange keys of the merchant account a, authenticated by its token: the
// keys carry the account's certified attributes (a merchant is known
// anyway).
func (c *Client) CertifyAccountKeys(ctx context.Context, a Account, pubs []ed25519.PublicKey) ([]otp.ExchangeKey, error) {
	req := api.ExchangeKeysRequest{Pubs: make([]string, len(pubs)), Account: a.ID}
	for i, p := range pubs {
		req.Pubs[i] = otp.EncodeKey(p)
	}
	var out api.ExchangeKeysResponse
	if err := c.do(ctx, http.MethodPost, "/v1/exchange-keys", a.Token, req, &out); err != nil {
		return nil, err
	}
	if len(out.Keys) != len(pubs) {
		return nil, fmt.Errorf("certify exchange keys: bank returned %d keys for %d", len(out.Keys), len(pubs))
	}
	return out.Keys, nil
}

// Deposit deposits coins to an account. The per-coin outcome is in the
// results; a coin that was already credited to this account with the same
// chain is reported as such, so a deposit that failed in transit can be
// repeated safely.
func (c *Client) Deposit(ctx context.Context, token string, req api.DepositRequest) (api.DepositResponse, error) {
	var out api.DepositResponse
	if err := c.do(ctx, http.MethodPost, "/v1/deposits", token, req, &out); err != nil {
		return out, err
	}
	return out, checkResults("deposit", out.Results, len(req.Coins), func(i int) string { return req.Coins[i].Sandbox.Coin.Data.Token })
}

// ErrAnswerMismatch reports a bank's answer that does not fit the request:
// acting on it could mark the wrong coins.
var ErrAnswerMismatch = errors.New("the bank's answer does not match the request")

// checkResults checks that a deposit or reclaim answer has one result per
// coin sent, in order: result i for the coin token(i).
func checkResults(op string, results []api.DepositResult, n int, token func(int) string) error {
	if len(results) != n {
		return fmt.Errorf("%s: %w: %d results for %d coins", op, ErrAnswerMismatch, len(results), n)
	}
	for i := range results {
		if results[i].Token != token(i) {
			return fmt.Errorf("%s: %w: result %d is for coin %.12s, not %.12s", op, ErrAnswerMismatch, i, results[i].Token, token(i))
		}
	}
	return nil
}

// Reclaim asks for sealed coins that never reached their payee to be
// credited back to the payer's account (POST /v1/reclaims).
func (c *Client) Reclaim(ctx context.Context, token string, req api.ReclaimRequest) (api.DepositResponse, error) {
	var out api.DepositResponse
	if err := c.do(ctx, http.MethodPost, "/v1/reclaims", token, req, &out); err != nil {
		return out, err
	}
	return out, checkResults("reclaim", out.Results, len(req.Coins), func(i int) string { return req.Coins[i].Sandbox.Coin.Data.Token })
}

// Recover claims a lost wallet's coins for the account, with its recovery
// key, after their deposit deadline (POST /v1/recoveries).
func (c *Client) Recover(ctx context.Context, token string, req api.RecoveryRequest) (api.DepositResponse, error) {
	var out api.DepositResponse
	if err := c.do(ctx, http.MethodPost, "/v1/recoveries", token, req, &out); err != nil {
		return out, err
	}
	return out, checkResults("recovery", out.Results, len(req.Coins), func(i int) string { return req.Coins[i].Sandbox.Coin.Data.Token })
}

// Conflicts returns the evidence of refused double deposits (admin).
func (c *Client) Conflicts(ctx context.Context, adminToken string) ([]api.Conflict, error) {
	var out api.Conflicts
	err := c.do(ctx, http.MethodGet, "/v1/admin/conflicts", adminToken, nil, &out)
	return out.Conflicts, err
}

// PutBackup stores the signed upload of a wallet's backup under id
// (api.SignBackup) at the bank (PUT /v1/backups/{id}). A version not
// above the stored one is refused with api.CodeStaleVersion.
func (c *Client) PutBackup(ctx context.Context, id string, up api.BackupUpload) (api.BackupStored, error) {
	var out api.BackupStored
	err := c.do(ctx, http.MethodPut, "/v1/backups/"+url.PathEscape(id), "", up, &out)
	return out, err
}

// GetBackup fetches the backup the bank holds for the bank-backup key
// pub (GET /v1/backups/{id}), its data decoded; api.CodeNotFound if it
// holds none. The data is as uploaded, unchecked: the caller opens it.
func (c *Client) GetBackup(ctx context.Context, pub ed25519.PublicKey) (data []byte, b api.Backup, err error) {
	h := http.Header{api.BackupKeyHeader: {otp.EncodeKey(pub)}}
	if err := c.doHeader(ctx, http.MethodGet, "/v1/backups/"+url.PathEscape(api.BackupID(pub)), "", h, nil, &b); err != nil {
		return nil, b, err
	}
	data, err = base64.RawURLEncoding.Strict().DecodeString(b.Data)
	if err != nil {
		return nil, b, fmt.Errorf("get backup: data: %w", err)
	}
	if len(data) > api.MaxBackupData {
		return nil, b, fmt.Errorf("get backup: %d bytes, more than %d", len(data), api.MaxBackupData)
	}
	return data, b, nil
}

// do sends a request with an optional JSON body and bearer token and
// decodes the JSON response into out.
func (c *Client) do(ctx context.Context, method, path, token string, in, out any) error {
	return c.doHeader(ctx, method, path, token, nil, in, out)
}

// doHeader is do with extra request headers.
func (c *Client) doHeader(ctx context.Context, method, path, token string, header http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if len(data) > maxResponse {
		return fmt.Errorf("%s %s: response larger than %d bytes", method, path, maxResponse)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := responseError(resp.StatusCode, data)
		if after, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return &RetryError{Err: e, After: after}
		}
		return e
	}
	if err := strictjson.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// ErrRetryLater is in the chain of the error of a request the bank
// refused for now, saying when to retry (a *RetryError).
var ErrRetryLater = errors.New("the bank asks to retry later")

// RetryError is the bank's refusal of a request for now (its rate limit,
// 429, or a passing outage, 503) with the wait it asked for in
// Retry-After. It unwraps to Err and ErrRetryLater.
type RetryError struct {
	Err   *api.Error
	After time.Duration // at most maxRetryAfter
}

func (e *RetryError) Error() string { return fmt.Sprintf("%v (retry after %s)", e.Err, e.After) }

func (e *RetryError) Unwrap() []error { return []error{e.Err, ErrRetryLater} }

// maxRetryAfter bounds the wait a Retry-After can ask for, so that no
// value overflows a time.Duration; a caller bounds its own wait anyway.
const maxRetryAfter = 24 * time.Hour

// retryAfter reads a Retry-After header (RFC 9110, section 10.2.3): a
// number of seconds, or an HTTP date, read against now. A date past is no
// wait; an empty or malformed value is none (ok false).
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		return time.Duration(min(secs, uint64(maxRetryAfter/time.Second))) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(at.Sub(now), 0), maxRetryAfter), true
}

// responseError turns an error response into an *api.Error, also when it
// is not the bank's JSON (a proxy's error page, say).
func responseError(status int, body []byte) *api.Error {
	e := &api.Error{}
	if strictjson.Unmarshal(body, e) != nil || e.Code == "" {
		e.Code = api.CodeBadRequest
		if status >= 500 {
			e.Code = api.CodeInternal
		}
		const maxShown = 200
		text := strings.ToValidUTF8(string(body[:min(len(body), maxShown)]), "?")
		e.Message = fmt.Sprintf("unexpected %d response: %q", status, text)
	}
	e.Status = status
	return e
}
