package client_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/client"
	"github.com/otpcash/otpcash/bank/internal/banktest"
	"github.com/otpcash/otpcash/otp"
)

func TestClient(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	ctx := context.Background()
	c := client.New(e.Server.URL+"/", nil) // a trailing slash is fine

	cat, err := c.Catalogue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Verify(e.Bank.Catalogue().Root); err != nil {
		t.Fatal(err)
	}
	acct, err := c.CreateAccount(ctx, banktest.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	payee, err := c.CreateAccount(ctx, banktest.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	a := client.Account{ID: acct.ID, Token: acct.Token}
	if bal, err := c.Credit(ctx, banktest.AdminToken, acct.ID, 250); err != nil || bal != 250 {
		t.Fatalf("credit: %d, %v", bal, err)
	}
	pub, priv := banktest.NewKey(t)
	key, err := cat.CoinKey(otp.GeneralProgramName, banktest.TestValue, e.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	coins, err := c.WithdrawCoins(ctx, a, "w1", cat.Issuer, key, []ed25519.PublicKey{pub},
		func(i int) io.Reader { return otp.WithdrawalRand([]byte("secret"), "w1", i) })
	if err != nil || len(coins) != 1 {
		t.Fatalf("withdraw: %d coins, %v", len(coins), err)
	}
	again, err := c.WithdrawCoins(ctx, a, "w1", cat.Issuer, key, []ed25519.PublicKey{pub},
		func(i int) io.Reader { return otp.WithdrawalRand([]byte("secret"), "w1", i) })
	if err != nil || len(again) != 1 || again[0].Data.Token != coins[0].Data.Token || again[0].Signature != coins[0].Signature {
		t.Fatalf("withdrawal asked again: %+v, %v; want the same coin", again, err)
	}
	if got, err := c.Account(ctx, a); err != nil || got.Balance != 150 || got.Currency != "EUR" {
		t.Fatalf("account: %+v, %v", got, err)
	}
	hist, err := c.History(ctx, a)
	if err != nil || len(hist) != 2 || hist[0].Kind != api.KindWithdraw {
		t.Fatalf("history: %+v, %v", hist, err)
	}

	payeePub, payeePriv := banktest.NewKey(t)
	xks, err := c.CertifyExchangeKeys(ctx, cat, []ed25519.PublicKey{payeePub})
	if err != nil {
		t.Fatal(err)
	}
	sb := otp.Sandbox{Coin: coins[0], Chain: []otp.Link{}}
	if err := sb.Transfer(priv, xks[0]); err != nil {
		t.Fatal(err)
	}
	held := []banktest.Held{{Sandbox: sb, Key: payeePriv}}
	resp, err := c.Deposit(ctx, payee.Token, banktest.DepositRequest(t, payee.ID, held))
	if err != nil || resp.Results[0].Status != api.StatusCredited || resp.Balance != 100 {
		t.Fatalf("deposit: %+v, %v", resp, err)
	}
	conflicts, err := c.Conflicts(ctx, banktest.AdminToken)
	if err != nil || len(conflicts) != 0 {
		t.Fatalf("conflicts: %v, %v", conflicts, err)
	}
}

func TestClientAPIErrors(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	ctx := context.Background()
	id, token := e.Account(t, 0)
	tests := []struct {
		name   string
		call   func() error
		status int
		code   string
	}{
		{"wrong admin token", func() error { _, err := e.Client.CreateAccount(ctx, "wrong"); return err }, 401, api.CodeUnauthorized},
		{"unknown account", func() error { _, err := e.Client.Credit(ctx, banktest.AdminToken, "nobody", 1); return err }, 404, api.CodeNotFound},
		{"bad amount", func() error { _, err := e.Client.Credit(ctx, banktest.AdminToken, id, 0); return err }, 400, api.CodeBadRequest},
		{"wrong token", func() error { _, err := e.Client.Account(ctx, client.Account{ID: id, Token: "wrong"}); return err }, 401, api.CodeUnauthorized},
		{"insufficient funds", func() error {
			key, _, blinded := e.BlindCoins(t, otp.GeneralProgramName, 1)
			_, err := e.Client.Withdraw(ctx, token, api.WithdrawRequest{ID: "w", Account: id, KeyID: key.KeyID, Blinded: blinded})
			return err
		}, 402, api.CodeInsufficientFunds},
		{"no keys", func() error { _, err := e.Client.CertifyExchangeKeys(ctx, e.Bank.Catalogue(), nil); return err }, 400, api.CodeBadRequest},
		{"id with a slash", func() error {
			_, err := e.Client.History(ctx, client.Account{ID: "../accounts", Token: token})
			return err
		}, 404, api.CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var e *api.Error
			if !errors.As(err, &e) || e.Status != tc.status || e.Code != tc.code || e.Message == "" {
				t.Fatalf("got %v, want an *api.Error %d %s", err, tc.status, tc.code)
			}
		})
	}
}

func TestClientOddServers(t *testing.T) {
	ctx := context.Background()
	serve := func(h http.HandlerFunc) *client.Client {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		return client.New(s.URL, s.Client())
	}

	c := serve(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	})
	_, err := c.Catalogue(ctx)
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 502 || apiErr.Code != api.CodeInternal || !strings.Contains(apiErr.Message, "bad gateway") {
		t.Errorf("non-JSON error: %#v", err)
	}

	c = serve(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"coins": [`))
		chunk := []byte(strings.Repeat(" ", 1<<20))
		for range 40 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	_, err = c.Withdraw(ctx, "t", api.WithdrawRequest{})
	if err == nil || !strings.Contains(err.Error(), "response larger than") {
		t.Errorf("oversize response: %v", err)
	}

	c = serve(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"blindSignatures": []}`)) })
	pub, _ := banktest.NewKey(t)
	cat := banktest.New(t, bank.Config{}).Bank.Catalogue()
	if _, err := c.CertifyExchangeKeys(ctx, cat, []ed25519.PublicKey{pub}); err == nil || !strings.Contains(err.Error(), "0 blind signatures for 1") {
		t.Errorf("short answer: %v", err)
	}

	// A response is read as strictly as a request: a repeated or
	// mis-cased name, or an integer past 2^53, is an error, not a value.
	for _, body := range []string{
		`{"id": "a", "currency": "EUR", "balance": 1, "balance": 1000000}`,
		`{"id": "a", "currency": "EUR", "Balance": 1000000}`,
		`{"id": "a", "currency": "EUR", "balance": 9007199254740993}`,
	} {
		c = serve(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) })
		if a, err := c.Account(ctx, client.Account{ID: "a", Token: "t"}); err == nil || !strings.Contains(err.Error(), "decode response") {
			t.Errorf("answer %s: got %+v, %v; want a decode error", body, a, err)
		}
	}

	c = serve(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`not json`)) })
	if _, err := c.Catalogue(ctx); err == nil || errors.As(err, &apiErr) {
		t.Errorf("garbage answer: %v", err)
	}

	// A backup is taken as the bank's data only if it is what a bank
	// holds: strict base64url, at most api.MaxBackupData bytes.
	for _, tc := range []struct{ data, want string }{
		{"not base64!", "data"},
		{"QUJD=", "data"},
		{base64.RawURLEncoding.EncodeToString(make([]byte, api.MaxBackupData+1)), "more than"},
	} {
		c = serve(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"version": 1, "data": %q, "updated": "2026-01-02T03:04:05Z"}`, tc.data)
		})
		if _, _, err := c.GetBackup(ctx, pub); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("backup data %.20q: %v; want an error naming %q", tc.data, err, tc.want)
		}
	}

	s := httptest.NewServer(http.NotFoundHandler())
	s.Close()
	if _, err := client.New(s.URL, nil).Catalogue(ctx); err == nil || errors.As(err, &apiErr) {
		t.Errorf("closed server: %v", err)
	}
}

// TestRetryAfterSurfaced: a refusal that says when to retry is a
// *client.RetryError with the wait, in the chain of ErrRetryLater and of
// the bank's *api.Error; one that does not is the *api.Error alone.
func TestRetryAfterSurfaced(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		header string
		after  time.Duration // < 0: no RetryError
	}{
		{"rate limited", http.StatusTooManyRequests, "7", 7 * time.Second},
		{"unavailable", http.StatusServiceUnavailable, "1", time.Second},
		{"rate limited, no header", http.StatusTooManyRequests, "", -1},
		{"rate limited, malformed header", http.StatusTooManyRequests, "soon", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.header != "" {
					w.Header().Set("Retry-After", tc.header)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, `{"code":"rate_limited","message":"budget spent"}`)
			}))
			defer srv.Close()
			_, err := client.New(srv.URL, nil).Catalogue(context.Background())
			var apiErr *api.Error
			if !errors.As(err, &apiErr) || apiErr.Status != tc.status || apiErr.Code != api.CodeRateLimited {
				t.Fatalf("error %v; want the bank's *api.Error", err)
			}
			var re *client.RetryError
			if got := errors.As(err, &re); got != (tc.after >= 0) || got != errors.Is(err, client.ErrRetryLater) {
				t.Fatalf("error %v: RetryError %v, ErrRetryLater %v; want both %v", err, got, errors.Is(err, client.ErrRetryLater), tc.after >= 0)
			}
			if re != nil && re.After != tc.after {
				t.Fatalf("Retry-After %q read as %s, want %s", tc.header, re.After, tc.after)
			}
		})
	}
}
