package bank_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/client"
	"github.com/otpcash/otpcash/bank/internal/banktest"
	"github.com/otpcash/otpcash/bank/storage"
	"github.com/otpcash/otpcash/bank/storage/sqlite"
	"github.com/otpcash/otpcash/denom"
	"github.com/otpcash/otpcash/otp"
)

const day = 24 * time.Hour

func TestHealthAndCatalogue(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	var h api.Health
	decodeOK(t, call(t, e, "GET", "/healthz", "", nil), &h)
	if h.Status != "ok" {
		t.Errorf("health = %+v", h)
	}

	r := call(t, e, "GET", "/v1/catalogue", "", nil)
	cat, err := otp.ParseCatalogue(r.body)
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Verify(""); err != nil {
		t.Fatal(err)
	}
	if cat.Issuer != "otpcash-bank" || len(cat.Keys) != 5 {
		t.Fatalf("catalogue of %q with %d keys: want issuer otpcash-bank with 5 keys", cat.Issuer, len(cat.Keys))
	}
	var exchangeKeys int
	programs := map[string]bool{}
	for _, k := range cat.Keys {
		switch k.Use {
		case otp.UseCoin:
			programs[k.Program] = true
			if k.Value != 100 || k.Currency != "EUR" || k.Alg != otp.AlgBlindRSA {
				t.Errorf("coin key signs %d %s with %s, want 100 EUR blindly", k.Value, k.Currency, k.Alg)
			}
			if k.DepositUntil.Before(k.Expires.Add(365*day + 90*day)) {
				t.Errorf("coin key deposit deadline %v too early for coins issued at its expiry %v", k.DepositUntil, k.Expires)
			}
		case otp.UseExchange:
			exchangeKeys++
		}
	}
	// One certifies merchants' keys in the clear, one anonymous keys blindly.
	if want := bank.DefaultPrograms().Names(); len(programs) != len(want) || exchangeKeys != 2 {
		t.Errorf("coin keys of programs %v and %d exchange keys, want one of each of %v and 1", programs, exchangeKeys, want)
	}

	// A restart on the same store serves the same keys under the same root.
	again, err := bank.New(context.Background(), e.Store, bank.Config{AdminToken: banktest.AdminToken, Now: e.Clock.Now, Denominations: denom.Set{banktest.TestValue}})
	if err != nil {
		t.Fatal(err)
	}
	if c := again.Catalogue(); c.Root != cat.Root || c.Signature != cat.Signature {
		t.Errorf("catalogue changed across restart")
	}
}

func TestNewRefusesAnotherIssuersStore(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	_, err := bank.New(context.Background(), e.Store, bank.Config{AdminToken: banktest.AdminToken, Issuer: "other-bank"})
	if err == nil || !strings.Contains(err.Error(), `belongs to issuer "otpcash-bank"`) {
		t.Fatalf("New with another issuer name: %v", err)
	}
}

// TestStoredJSONIsStrict: what the bank reads back from its store is
// decoded strictly too, so a record that means two things (the issuer
// check would pass on the last of two names) is an error, not a guess.
func TestStoredJSONIsStrict(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	id, token := e.Account(t, 0)
	db := openRaw(t, e.Path)
	if _, err := db.Exec(`UPDATE accounts SET attrs = '{"category":"a","category":"b"}' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	wantError(t, call(t, e, "GET", "/v1/accounts/"+id, token, nil), http.StatusInternalServerError, api.CodeInternal, "internal error")
	if logs := e.Logs.String(); !strings.Contains(logs, `duplicate object member name \"category\"`) {
		t.Errorf("the log does not name the duplicate attribute:\n%s", logs)
	}

	root := []byte(`{"issuer":"other-bank","issuer":"otpcash-bank"}`)
	if _, err := db.Exec(`UPDATE issuer_keys SET entry = ? WHERE seq = (SELECT MIN(seq) FROM issuer_keys)`, root); err != nil {
		t.Fatal(err)
	}
	_, err := bank.New(context.Background(), e.Store, bank.Config{AdminToken: banktest.AdminToken, Denominations: denom.Set{banktest.TestValue}})
	if err == nil || !strings.Contains(err.Error(), `root key`) || !strings.Contains(err.Error(), `duplicate object member name "issuer"`) {
		t.Fatalf("New on a root key entry with two issuers: %v", err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	for _, cfg := range []bank.Config{
		{AdminToken: "short"},
		{AdminToken: banktest.AdminToken, Currency: "euro"},
		{AdminToken: banktest.AdminToken, Denominations: denom.Set{0, 100}},
		{AdminToken: banktest.AdminToken, Denominations: denom.Set{200, 100}},
		{AdminToken: banktest.AdminToken, Currency: "XTS"}, // no default denominations
		{AdminToken: banktest.AdminToken, CoinLifetime: time.Millisecond},
		{AdminToken: banktest.AdminToken, MaxOfflineValue: -1},
		{AdminToken: banktest.AdminToken, MaxOffline: -time.Hour},
		{AdminToken: banktest.AdminToken, MaxOffline: 1500 * time.Millisecond},
		{AdminToken: banktest.AdminToken, MaxHops: -1},
		{AdminToken: banktest.AdminToken, BackupRate: -1},
		{AdminToken: banktest.AdminToken, BackupBurst: -1},
	} {
		if _, err := bank.New(context.Background(), e.Store, cfg); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
}

func TestAdminRoutesOffWithoutToken(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	b, err := bank.New(context.Background(), e.Store, bank.Config{Now: e.Clock.Now, Denominations: denom.Set{banktest.TestValue}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b.Handler())
	defer srv.Close()
	res, err := srv.Client().Post(srv.URL+"/v1/accounts", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("create account without admin token configured: %d", res.StatusCode)
	}
	// In process, accounts still work.
	id, _, err := b.CreateAccount(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Credit(context.Background(), id, 250); err != nil {
		t.Fatal(err)
	}
	if bal, err := b.Balance(context.Background(), id); err != nil || bal != 250 {
		t.Fatalf("balance %d, %v", bal, err)
	}
	var apiErr *api.Error
	if _, err := b.Balance(context.Background(), "nobody"); !errors.As(err, &apiErr) || apiErr.Code != api.CodeNotFound {
		t.Fatalf("balance of unknown account: %v", err)
	}
}

func TestRouting(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	wantError(t, call(t, e, "GET", "/v2/nothing", "", nil), 404, api.CodeNotFound, "/v2/nothing")
	r := call(t, e, "DELETE", "/v1/catalogue", "", nil)
	wantError(t, r, 405, api.CodeMethodNotAllowed, "use GET")
	if r.header.Get("Allow") != "GET" {
		t.Errorf("Allow = %q", r.header.Get("Allow"))
	}
	wantError(t, call(t, e, "GET", "/v1/withdrawals", "", nil), 405, api.CodeMethodNotAllowed, "use POST")
}

func TestAccounts(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	var created api.CreateAccountResponse
	decodeOK(t, call(t, e, "POST", "/v1/accounts", banktest.AdminToken, nil), &created)
	if len(created.Token) != 43 || created.ID == "" {
		t.Fatalf("created %+v: want an id and a 43-character token", created)
	}
	var credit api.CreditResponse
	decodeOK(t, call(t, e, "POST", "/v1/accounts/"+created.ID+"/credit", banktest.AdminToken, `{"amount": 1050}`), &credit)
	decodeOK(t, call(t, e, "POST", "/v1/accounts/"+created.ID+"/credit", banktest.AdminToken, api.CreditRequest{Amount: 1}), &credit)
	if credit.Balance != 1051 {
		t.Errorf("balance after credits %d, want 1051", credit.Balance)
	}
	var acct api.Account
	decodeOK(t, call(t, e, "GET", "/v1/accounts/"+created.ID, created.Token, nil), &acct)
	if acct != (api.Account{ID: created.ID, Currency: "EUR", Balance: 1051}) {
		t.Errorf("account = %+v", acct)
	}
	var hist api.History
	decodeOK(t, call(t, e, "GET", "/v1/accounts/"+created.ID+"/history", created.Token, nil), &hist)
	if len(hist.Entries) != 2 || hist.Entries[0].Amount != 1 || hist.Entries[1].Amount != 1050 ||
		hist.Entries[0].Kind != api.KindCredit || !hist.Entries[0].Time.Equal(banktest.Start) {
		t.Errorf("history = %+v, want the two credits, newest first", hist)
	}
	decodeOK(t, call(t, e, "GET", "/v1/accounts/"+created.ID+"/history?limit=1", created.Token, nil), &hist)
	if len(hist.Entries) != 1 {
		t.Errorf("history with limit=1 has %d entries", len(hist.Entries))
	}
}

// TestAuth sends every authenticated route a missing, malformed and wrong
// token, another account's token and an unknown account.
func TestAuth(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	id, token := e.Account(t, 1000)
	otherID, otherToken := e.Account(t, 0)
	coinKey, _, blinded := e.BlindCoins(t, otp.GeneralProgramName, 1)
	withdraw := func(account string) api.WithdrawRequest {
		return api.WithdrawRequest{ID: "w1", Account: account, KeyID: coinKey.KeyID, Blinded: blinded}
	}
	deposit := func(account string) string {
		return `{"account": "` + account + `", "coins": [{"sandbox": {"coin": {}, "chain": []}, "proof": ""}]}`
	}
	reclaim := func(account string) string {
		return `{"account": "` + account + `", "coins": [{"sandbox": {"coin": {}, "chain": []}, "authorization": "", "key": "", "proof": ""}]}`
	}
	redenomination := func(account string) api.RedenominationRequest {
		return api.RedenominationRequest{ID: "x1", Account: account, Coins: []api.DepositCoin{{Sandbox: otp.Sandbox{Chain: []otp.Link{}}}},
			Withdraw: []api.WithdrawBatch{{KeyID: coinKey.KeyID, Blinded: blinded}}}
	}
	type route struct {
		method, path string
		body         any
	}
	admin := []route{
		{"POST", "/v1/accounts", nil},
		{"POST", "/v1/accounts/" + id + "/credit", `{"amount": 1}`},
		{"GET", "/v1/admin/conflicts", nil},
	}
	owner := func(account string) []route {
		return []route{
			{"GET", "/v1/accounts/" + account, nil},
			{"GET", "/v1/accounts/" + account + "/history", nil},
			{"POST", "/v1/withdrawals", withdraw(account)},
			{"POST", "/v1/deposits", deposit(account)},
			{"POST", "/v1/reclaims", reclaim(account)},
			{"POST", "/v1/redenominations", redenomination(account)},
			{"POST", "/v1/exchanges", redenomination(account)},
		}
	}
	before := state(t, e)
	for _, rt := range slices.Concat(admin, owner(id)) {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			wantError(t, call(t, e, rt.method, rt.path, "", rt.body), 401, api.CodeUnauthorized, "missing")
			for _, bad := range []string{"wrong", token + "x", otherToken, banktest.AdminToken} {
				if strings.HasPrefix(rt.path, "/v1/admin") || rt.path == "/v1/accounts" || strings.HasSuffix(rt.path, "/credit") {
					if bad == banktest.AdminToken {
						continue
					}
					wantError(t, call(t, e, rt.method, rt.path, bad, rt.body), 401, api.CodeUnauthorized, "invalid admin token")
					continue
				}
				// A route with the account in its body authenticates
				// by the token alone, before reading it: "invalid
				// token", or, for another account's, "invalid token
				// for account".
				wantError(t, call(t, e, rt.method, rt.path, bad, rt.body), 401, api.CodeUnauthorized, "invalid token")
			}
			req, _ := http.NewRequest(rt.method, e.Server.URL+rt.path, nil)
			req.Header.Set("Authorization", "Basic "+token)
			res, err := e.Server.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("Basic auth: status %d, WWW-Authenticate %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
			}
		})
	}
	for _, rt := range owner("no-such-account") {
		t.Run("unknown account "+rt.method+" "+rt.path, func(t *testing.T) {
			res := call(t, e, rt.method, rt.path, token, rt.body)
			if rt.method == "POST" { // the token's account is not the one named
				wantError(t, res, 401, api.CodeUnauthorized, `invalid token for account "no-such-account"`)
				return
			}
			wantError(t, res, 404, api.CodeNotFound, `no account "no-such-account"`)
		})
	}
	wantError(t, call(t, e, "POST", "/v1/accounts/no-such-account/credit", banktest.AdminToken, `{"amount": 1}`), 404, api.CodeNotFound, "no account")
	sameState(t, before, state(t, e))
	if got := e.Balance(t, otherID, otherToken); got != 0 {
		t.Errorf("other account's balance %d", got)
	}
}

// untouchable is a request body that must not be read: 8 MiB and more of
// garbage, which counts the reads made of it.
type untouchable struct{ reads int }

func (u *untouchable) Read(p []byte) (int, error) {
	u.reads++
	for i := range p {
		p[i] = '{'
	}
	return len(p), nil
}

// TestAuthBeforeBody: a request to a route that takes a token is
// authenticated by its token alone, before its body is read, so a huge or
// garbage body without a valid token is 401, not 400 or 413, and is never
// read.
func TestAuthBeforeBody(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	_, token := e.Account(t, 0)
	h := e.Bank.Handler()
	for _, path := range []string{"/v1/withdrawals", "/v1/redenominations", "/v1/exchanges", "/v1/deposits", "/v1/reclaims",
		"/v1/accounts", "/v1/accounts/x/credit"} {
		for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x", "Bearer " + bank.NewToken(), "Basic " + token} {
			body := &untouchable{}
			r := httptest.NewRequest("POST", path, body)
			r.ContentLength = 1 << 30
			if auth != "" {
				r.Header.Set("Authorization", auth)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusUnauthorized || body.reads != 0 {
				t.Errorf("POST %s with %q: %d %s after %d reads of the body; want 401 and none", path, auth, w.Code, w.Body, body.reads)
			}
		}
	}
}

// TestBadInput sends malformed and invalid bodies: each gets a JSON error
// naming the problem, and nothing changes.
func TestBadInput(t *testing.T) {
	e := banktest.New(t, bank.Config{MaxCoinsPerRequest: 3})
	id, token := e.Account(t, 1000)
	pub, _ := banktest.NewKey(t)
	key := otp.EncodeKey(pub)
	coinKey, _, blinded := e.BlindCoins(t, otp.GeneralProgramName, 4)
	m, kid := blinded[0], coinKey.KeyID
	withdraw := func(fields string) string {
		return `{"id": "w1", "account": "` + id + `", "keyId": "` + kid + `", ` + fields + `}`
	}
	exchangeKeyID := e.Bank.Catalogue().Keys[0].KeyID // the first key made is the exchange key
	tests := []struct {
		name, method, path, token string
		body                      any
		status                    int
		code, msg                 string
	}{
		{"empty body", "POST", "/v1/withdrawals", token, "", 400, api.CodeBadRequest, "empty request body"},
		{"malformed JSON", "POST", "/v1/withdrawals", token, `{"id": "w1",`, 400, api.CodeBadRequest, "invalid JSON body"},
		{"not an object", "POST", "/v1/withdrawals", token, `[1]`, 400, api.CodeBadRequest, "unmarshal JSON array into Go api.WithdrawRequest"},
		{"unknown field", "POST", "/v1/withdrawals", token, withdraw(`"blinded": ["` + m + `"], "extra": 1`), 400, api.CodeBadRequest, `unknown object member name "extra"`},
		{"holders in the clear", "POST", "/v1/withdrawals", token, withdraw(`"holders": ["` + key + `"]`), 400, api.CodeBadRequest, `unknown object member name "holders"`},
		{"trailing data", "POST", "/v1/withdrawals", token, withdraw(`"blinded": ["`+m+`"]`) + ` {}`, 400, api.CodeBadRequest, "after top-level value"},
		{"wrong type", "POST", "/v1/withdrawals", token, `{"id": 7, "account": "` + id + `", "blinded": []}`, 400, api.CodeBadRequest, `into Go string within "/id"`},
		{"missing id", "POST", "/v1/withdrawals", token, `{"account": "` + id + `", "keyId": "` + kid + `", "blinded": ["` + m + `"]}`, 400, api.CodeBadRequest, "id: want 1 to 128 characters"},
		{"id with space", "POST", "/v1/withdrawals", token, `{"id": "a b", "account": "` + id + `", "keyId": "` + kid + `", "blinded": ["` + m + `"]}`, 400, api.CodeBadRequest, "id: only printable ASCII"},
		{"missing key id", "POST", "/v1/withdrawals", token, `{"id": "w1", "account": "` + id + `", "blinded": ["` + m + `"]}`, 400, api.CodeBadRequest, "keyId: want 1 to 128 characters"},
		{"no blinded coins", "POST", "/v1/withdrawals", token, withdraw(`"blinded": []`), 400, api.CodeBadRequest, "blinded: empty"},
		{"too many blinded coins", "POST", "/v1/withdrawals", token, api.WithdrawRequest{ID: "w1", Account: id, KeyID: kid, Blinded: blinded}, 413, api.CodeTooLarge, "blinded: 4 given, at most 3"},
		{"blinded message too short", "POST", "/v1/withdrawals", token, api.WithdrawRequest{ID: "w1", Account: id, KeyID: kid, Blinded: []string{m, m[:40]}}, 400, api.CodeBadRequest, "blinded[1]: invalid blind signing request: want 342 base64url characters for 256 bytes, got 40"},
		{"blinded message too long", "POST", "/v1/withdrawals", token, api.WithdrawRequest{ID: "w1", Account: id, KeyID: kid, Blinded: []string{otp.EncodeBlinded(make([]byte, 257))}}, 400, api.CodeBadRequest, "blinded[0]: invalid blind signing request: want 342"},
		{"padded blinded message", "POST", "/v1/withdrawals", token, api.WithdrawRequest{ID: "w1", Account: id, KeyID: kid, Blinded: []string{m + "=="}}, 400, api.CodeBadRequest, "blinded[0]"},
		{"duplicate blinded message", "POST", "/v1/withdrawals", token, api.WithdrawRequest{ID: "w1", Account: id, KeyID: kid, Blinded: []string{m, blinded[1], m}}, 400, api.CodeBadRequest, "blinded[2]: same message as blinded[0]"},
		{"blinded message above the modulus", "POST", "/v1/withdrawals", token, api.WithdrawRequest{ID: "w1", Account: id, KeyID: kid, Blinded: []string{m, otp.EncodeBlinded(bytes.Repeat([]byte{0xff}, otp.BlindMessageSize))}}, 400, api.CodeBadRequest, "blinded[1]: blind sign: invalid blind signing request"},
		{"unknown coin key", "POST", "/v1/withdrawals", token, api.WithdrawRequest{ID: "w1", Account: id, KeyID: "coin-nope", Blinded: []string{m}}, 400, api.CodeUnknownKey, `no blind coin key "coin-nope"`},
		{"exchange key as coin key", "POST", "/v1/withdrawals", token, api.WithdrawRequest{ID: "w1", Account: id, KeyID: exchangeKeyID, Blinded: []string{m}}, 400, api.CodeUnknownKey, "no blind coin key"},
		{"oversize withdrawal", "POST", "/v1/withdrawals", token, withdraw(`"blinded": ["` + strings.Repeat("A", 1100<<10) + `"]`), 413, api.CodeTooLarge, "larger than 1048576 bytes"},
		{"oversize deposit", "POST", "/v1/deposits", token, `{"account": "` + id + `", "coins": [{"proof": "` + strings.Repeat("A", 9<<20) + `"}]}`, 413, api.CodeTooLarge, "larger than 8388608 bytes"},
		{"deposit without coins", "POST", "/v1/deposits", token, `{"account": "` + id + `", "coins": []}`, 400, api.CodeBadRequest, "coins: empty"},
		{"deposit unknown field in sandbox", "POST", "/v1/deposits", token, `{"account": "` + id + `", "coins": [{"sandbox": {"coin": {}, "chain": [], "x": 1}, "proof": ""}]}`, 400, api.CodeBadRequest, `unknown object member name "x" within "/coins/0/sandbox"`},
		{"deposit bad step", "POST", "/v1/deposits", token, `{"account": "` + id + `", "coins": [{"sandbox": {"coin": {"callMethod": [{"method": "x"}]}, "chain": []}, "proof": ""}]}`, 400, api.CodeBadRequest, "empty args"},
		{"deposit without account", "POST", "/v1/deposits", token, `{"coins": []}`, 400, api.CodeBadRequest, "account: want 1 to 128"},
		{"credit zero", "POST", "/v1/accounts/" + id + "/credit", banktest.AdminToken, `{"amount": 0}`, 400, api.CodeBadRequest, "amount must be between 1"},
		{"credit negative", "POST", "/v1/accounts/" + id + "/credit", banktest.AdminToken, `{"amount": -5}`, 400, api.CodeBadRequest, "got -5"},
		{"credit huge", "POST", "/v1/accounts/" + id + "/credit", banktest.AdminToken, `{"amount": 9223372036854775807}`, 400, api.CodeBadRequest, "integer outside ±(2^53-1)"},
		{"credit float", "POST", "/v1/accounts/" + id + "/credit", banktest.AdminToken, `{"amount": 1.5}`, 400, api.CodeBadRequest, `"/amount": want an integer without fraction`},
		{"credit string", "POST", "/v1/accounts/" + id + "/credit", banktest.AdminToken, `{"amount": "10.00"}`, 400, api.CodeBadRequest, `"/amount": want an integer`},
		// Strict JSON: one byte string, one meaning. The last of two
		// "amount"s would credit 7; a mis-cased name would be read as
		// the field; 2^53 is where IEEE doubles stop counting by one.
		{"credit duplicate name", "POST", "/v1/accounts/" + id + "/credit", banktest.AdminToken, `{"amount": -1, "amount": 7}`, 400, api.CodeBadRequest, `duplicate object member name "amount"`},
		{"credit mis-cased name", "POST", "/v1/accounts/" + id + "/credit", banktest.AdminToken, `{"Amount": 7}`, 400, api.CodeBadRequest, `unknown object member name "Amount"`},
		{"credit beyond 2^53", "POST", "/v1/accounts/" + id + "/credit", banktest.AdminToken, `{"amount": 9007199254740993}`, 400, api.CodeBadRequest, "integer outside ±(2^53-1): 9007199254740993"},
		{"withdrawal duplicate name", "POST", "/v1/withdrawals", token, withdraw(`"blinded": ["` + m + `"], "account": "` + id + `"`), 400, api.CodeBadRequest, `duplicate object member name "account"`},
		{"withdrawal mis-cased name", "POST", "/v1/withdrawals", token, `{"ID": "w1", "account": "` + id + `", "keyId": "` + kid + `", "blinded": ["` + m + `"]}`, 400, api.CodeBadRequest, `unknown object member name "ID"`},
		{"deposit duplicate name in a coin", "POST", "/v1/deposits", token, `{"account": "` + id + `", "coins": [{"proof": "a", "proof": "b"}]}`, 400, api.CodeBadRequest, `duplicate object member name "proof"`},
		{"exchange keys in the clear, anonymous", "POST", "/v1/exchange-keys", "", api.ExchangeKeysRequest{Pubs: []string{key}}, 400, api.CodeBadRequest, "certified blindly"},
		// The identity point signs everything (R = identity, S = 0), and a
		// second spelling of a key is a second key (issue 13).
		{"exchange key of small order", "POST", "/v1/exchange-keys", token, api.ExchangeKeysRequest{Account: id, Pubs: []string{key, "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}, 400, api.CodeBadRequest, "pubs[1]: public key AQAAAAAAAAAA: invalid Ed25519 public key: a point of small order"},
		{"exchange key not in its only encoding", "POST", "/v1/exchange-keys", token, api.ExchangeKeysRequest{Account: id, Pubs: []string{"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAIA"}}, 400, api.CodeBadRequest, "pubs[0]: public key AQAAAAAAAAAA: invalid Ed25519 public key: not in its only encoding"},
		{"exchange keys none", "POST", "/v1/exchange-keys", "", `{"keyId": "k", "blinded": []}`, 400, api.CodeBadRequest, "blinded: empty"},
		{"exchange keys bad blinded", "POST", "/v1/exchange-keys", "", `{"keyId": "k", "blinded": ["AAAA"]}`, 400, api.CodeBadRequest, "blinded[0]"},
		{"exchange keys too many", "POST", "/v1/exchange-keys", "", api.ExchangeKeysRequest{KeyID: "k", Blinded: []string{blindMsg(0), blindMsg(1), blindMsg(2), blindMsg(3)}}, 413, api.CodeTooLarge, "blinded: 4 given"},
		{"exchange keys duplicate", "POST", "/v1/exchange-keys", "", api.ExchangeKeysRequest{KeyID: "k", Blinded: []string{blindMsg(0), blindMsg(0)}}, 400, api.CodeBadRequest, "blinded[1]: same message as blinded[0]"},
		{"exchange keys blinded with an account", "POST", "/v1/exchange-keys", "", api.ExchangeKeysRequest{KeyID: "k", Blinded: []string{blindMsg(0)}, Account: "acct-1"}, 400, api.CodeBadRequest, "anonymous"},
		{"exchange keys of another key", "POST", "/v1/exchange-keys", "", api.ExchangeKeysRequest{KeyID: "k", Blinded: []string{blindMsg(0)}}, 400, api.CodeUnknownKey, "not the blind exchange-certification key"},
		{"history limit", "GET", "/v1/accounts/" + id + "/history?limit=0", token, nil, 400, api.CodeBadRequest, "limit: want a number from 1 to 1000"},
		{"history limit text", "GET", "/v1/accounts/" + id + "/history?limit=all", token, nil, 400, api.CodeBadRequest, "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, balance := state(t, e), e.Balance(t, id, token)
			wantError(t, call(t, e, tc.method, tc.path, tc.token, tc.body), tc.status, tc.code, tc.msg)
			sameState(t, before, state(t, e))
			if got := e.Balance(t, id, token); got != balance {
				t.Fatalf("balance %d after a refused request, was %d", got, balance)
			}
		})
	}
}

func TestWithdraw(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	id, token := e.Account(t, 1000)
	key, blind, blinded := e.BlindCoins(t, otp.GeneralProgramName, 3)
	req := api.WithdrawRequest{ID: "withdrawal-1", Account: id, KeyID: key.KeyID, Blinded: blinded}
	first := call(t, e, "POST", "/v1/withdrawals", token, req)
	var resp api.WithdrawResponse
	decodeOK(t, first, &resp)
	if len(resp.BlindSignatures) != 3 {
		t.Fatalf("%d blind signatures, want 3", len(resp.BlindSignatures))
	}
	v := e.Verifier()
	serials := map[string]bool{}
	for i, text := range resp.BlindSignatures {
		sig, err := otp.DecodeBlinded(text)
		if err != nil {
			t.Fatal(err)
		}
		c, err := blind[i].Finish(sig)
		if err != nil {
			t.Fatalf("coin %d: %v", i, err)
		}
		if err := v.VerifyCoin(c); err != nil {
			t.Fatalf("coin %d: %v", i, err)
		}
		if err := otp.CheckPayable(c, banktest.Start.Add(364*day)); err != nil {
			t.Errorf("coin %d not payable for a year: %v", i, err)
		}
		if c.Signature.Alg != otp.AlgBlindRSA || c.Data.Value != 100 || c.Data.Currency != "EUR" || len(c.Data.Conditions) != 0 {
			t.Errorf("coin %d data %+v", i, c.Data)
		}
		if err := otp.ValidateProgram(c.CallMethod); err != nil || len(c.CallMethod) != len(otp.DefaultProgram()) {
			t.Errorf("coin %d program %v: %v", i, c.CallMethod, err)
		}
		serials[c.Data.Token] = true
	}
	if len(serials) != 3 {
		t.Errorf("serials repeat: %v", serials)
	}
	if got := e.Balance(t, id, token); got != 700 {
		t.Fatalf("balance %d, want 700", got)
	}

	t.Run("retry gets the same signatures", func(t *testing.T) {
		again := call(t, e, "POST", "/v1/withdrawals", token, req)
		if again.status != 200 || string(again.body) != string(first.body) {
			t.Fatalf("retry answered %d %s", again.status, again.body)
		}
		if got := e.Balance(t, id, token); got != 700 {
			t.Fatalf("balance after retry %d, want 700", got)
		}
	})
	t.Run("same id, different request", func(t *testing.T) {
		other := req
		other.Blinded = blinded[:2]
		wantError(t, call(t, e, "POST", "/v1/withdrawals", token, other), 409, api.CodeConflict, `id "withdrawal-1" was already used`)
	})
	t.Run("blinded message signed before", func(t *testing.T) {
		before := state(t, e)
		again := api.WithdrawRequest{ID: "withdrawal-3", Account: id, KeyID: key.KeyID, Blinded: blinded[:1]}
		wantError(t, call(t, e, "POST", "/v1/withdrawals", token, again), 409, api.CodeConflict, "signed before; blind every coin afresh")
		sameState(t, before, state(t, e))
	})
	t.Run("insufficient funds", func(t *testing.T) {
		_, _, more := e.BlindCoins(t, otp.GeneralProgramName, 8)
		big := api.WithdrawRequest{ID: "withdrawal-2", Account: id, KeyID: key.KeyID, Blinded: more}
		before := state(t, e)
		wantError(t, call(t, e, "POST", "/v1/withdrawals", token, big), 402, api.CodeInsufficientFunds, "8 coins cost 8.00 EUR")
		sameState(t, before, state(t, e))
		// Nothing was kept of the refused request: with the funds, the
		// same id goes through.
		if _, err := e.Bank.Credit(context.Background(), id, 100); err != nil {
			t.Fatal(err)
		}
		var resp api.WithdrawResponse
		decodeOK(t, call(t, e, "POST", "/v1/withdrawals", token, big), &resp)
		if len(resp.BlindSignatures) != 8 || e.Balance(t, id, token) != 0 {
			t.Fatalf("withdrawal after credit: %d signatures, balance %d", len(resp.BlindSignatures), e.Balance(t, id, token))
		}
	})
	t.Run("history", func(t *testing.T) {
		hist, err := e.Client.History(context.Background(), client.Account{ID: id, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 4 || hist[0].Kind != api.KindWithdraw || hist[0].Amount != -800 || hist[0].Reference != "withdrawal-2" ||
			hist[2].Amount != -300 || hist[2].Reference != "withdrawal-1" {
			t.Errorf("history %+v", hist)
		}
	})
	state(t, e)
}

// TestWithdrawKeyStopsSigning: a coin key past its signing period is
// refused for new withdrawals, with nothing debited, while a retry of a
// withdrawal it signed is still answered.
func TestWithdrawKeyStopsSigning(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	id, token := e.Account(t, 500)
	key, _, blinded := e.BlindCoins(t, otp.GeneralProgramName, 2)
	done := api.WithdrawRequest{ID: "w-done", Account: id, KeyID: key.KeyID, Blinded: blinded[:1]}
	first := call(t, e, "POST", "/v1/withdrawals", token, done)
	e.Clock.Advance(key.Expires.Sub(e.Clock.Now()))
	before := state(t, e)
	late := api.WithdrawRequest{ID: "w-late", Account: id, KeyID: key.KeyID, Blinded: blinded[1:]}
	wantError(t, call(t, e, "POST", "/v1/withdrawals", token, late), 400, api.CodeUnknownKey, "no longer signs")
	sameState(t, before, state(t, e))
	if again := call(t, e, "POST", "/v1/withdrawals", token, done); again.status != 200 || string(again.body) != string(first.body) {
		t.Fatalf("retry after the key stopped signing: %d %s", again.status, again.body)
	}
	if newKey, err := e.Bank.Catalogue().CoinKey(otp.GeneralProgramName, banktest.TestValue, e.Clock.Now()); err != nil || newKey.KeyID == key.KeyID {
		t.Fatalf("no fresh coin key after rotation: %v", err)
	}
}

func TestWithdrawConcurrentRetries(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	id, token := e.Account(t, 500)
	key, _, blinded := e.BlindCoins(t, otp.GeneralProgramName, 1)
	req := api.WithdrawRequest{ID: "w", Account: id, KeyID: key.KeyID, Blinded: blinded}
	var wg sync.WaitGroup
	bodies := make([]string, 8)
	for i := range bodies {
		wg.Go(func() {
			sigs, err := e.Client.Withdraw(context.Background(), token, req)
			if err != nil {
				t.Error(err)
				return
			}
			bodies[i] = otp.EncodeBlinded(sigs[0])
		})
	}
	wg.Wait()
	for _, b := range bodies {
		if b != bodies[0] {
			t.Fatalf("concurrent retries got different signatures: %v", bodies)
		}
	}
	if got := e.Balance(t, id, token); got != 400 {
		t.Fatalf("balance %d, want one debit (400)", got)
	}
}

func TestExchangeKeys(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	pubs := make([]ed25519.PublicKey, 3)
	for i := range pubs {
		pubs[i], _ = banktest.NewKey(t)
	}
	keys, err := e.Client.CertifyExchangeKeys(context.Background(), e.Bank.Catalogue(), pubs)
	if err != nil {
		t.Fatal(err)
	}
	v := e.Verifier()
	for i := range keys {
		if err := v.VerifyExchangeKey(&keys[i], banktest.Start.Add(89*day)); err != nil {
			t.Errorf("key %d: %v", i, err)
		}
		if keys[i].Pub != otp.EncodeKey(pubs[i]) {
			t.Errorf("key %d certifies another key", i)
		}
	}
	// Certified blindly, every key of a certification key's 90-day period
	// expires 90 days after that period.
	if err := v.VerifyExchangeKey(&keys[0], banktest.Start.Add(179*day)); err != nil {
		t.Errorf("exchange key after 179 days: %v", err)
	}
	if err := v.VerifyExchangeKey(&keys[0], banktest.Start.Add(181*day)); !errors.Is(err, otp.ErrExpired) {
		t.Errorf("exchange key valid after 181 days: %v", err)
	}
}

// TestExchangeKeysCostLimit floods anonymous certification, which needs
// no token: the budgets count signatures, not requests, per client address
// and for all clients, refuse with 429 and Retry-After naming the budget
// spent, and leave withdrawals alone. The test clock stands still, so the
// buckets refill only when the test says.
func TestExchangeKeysCostLimit(t *testing.T) {
	e := banktest.New(t, bank.Config{MaxCoinsPerRequest: 3,
		ExchangeKeyRate: rate.Every(time.Hour), ExchangeKeyBurst: 5,
		ExchangeKeyGlobalRate: rate.Every(time.Minute), ExchangeKeyGlobalBurst: 8})
	h := e.Bank.Handler()
	k, err := e.Bank.Catalogue().CertificationKey()
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	post := func(remote string, n int) response {
		req := api.ExchangeKeysRequest{KeyID: k.KeyID}
		for range n {
			next++
			req.Blinded = append(req.Blinded, blindMsg(next))
		}
		body, _ := json.Marshal(req)
		r := httptest.NewRequest("POST", "/v1/exchange-keys", bytes.NewReader(body))
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return response{w.Code, w.Header(), w.Body.Bytes()}
	}
	ok := func(res response) {
		t.Helper()
		var out api.ExchangeKeysResponse
		decodeOK(t, res, &out)
	}
	refused := func(res response, msg, retry string) {
		t.Helper()
		wantError(t, res, http.StatusTooManyRequests, api.CodeRateLimited, msg)
		if got := res.header.Get("Retry-After"); got != retry {
			t.Errorf("Retry-After %q, want %q", got, retry)
		}
	}
	const own, all = "budget of your address is spent", "budget for all clients is spent"

	a, c := "192.0.2.1:1000", "192.0.2.3:1"
	ok(post(a, 3))                                // A has 2 of 5 left
	refused(post(a, 3), own, "3600")              // reading costs 1, the other 2 do not fit
	ok(post(a, 1))                                // A's last signature
	refused(post(a, 1), own+" (0.000277", "3600") // 2 of 4 requests refused: a budget of 5 requests would take all
	// All clients: 3+1+1 of 8 spent (a refused request keeps the
	// signature its reading cost), so B's 3 spend the rest, and C, with
	// a full bucket of its own, is refused by the bank-wide budget, which
	// leaves C's own untouched: a minute later, when the bank's budget
	// has one signature again, C may take it.
	ok(post("192.0.2.2:1", 3))
	for range 5 {
		refused(post(c, 1), all, "60")
	}
	e.Clock.Advance(time.Minute)
	ok(post(c, 1))

	// Certification has no claim on withdrawals: one still goes through.
	id, token := e.Account(t, 1000)
	if coins := e.Withdraw(t, id, token, 1); len(coins) != 1 {
		t.Fatalf("withdrew %d coins", len(coins))
	}

	// An hour gives A one signature more.
	e.Clock.Advance(time.Hour)
	ok(post(a, 1))
	refused(post(a, 1), own, "3540") // the minute above counts too
}

// tripwire is a request body that records being read.
type tripwire struct {
	io.Reader
	read bool
}

func (t *tripwire) Read(p []byte) (int, error) { t.read = true; return t.Reader.Read(p) }

// TestExchangeKeysTokenFirst: a merchant's certification request with a
// wrong token is refused with 401 before its body is read or any
// certification budget charged, so a flood of them neither costs the
// bank a body nor spends the budget of the address they come from; the
// merchant's own request from that address then goes through. A body
// beyond the limit with a wrong token is 401 too, not 413: it is never
// read.
func TestExchangeKeysTokenFirst(t *testing.T) {
	e := banktest.New(t, bank.Config{MaxCoinsPerRequest: 1, ExchangeKeyRate: rate.Every(time.Hour), ExchangeKeyBurst: 2, ExchangeKeyGlobalRate: rate.Inf})
	h := e.Bank.Handler()
	id, token, err := e.Bank.CreateAccountWithAttrs(context.Background(), map[string]string{"category": "grocery"})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := banktest.NewKey(t)
	body, err := json.Marshal(api.ExchangeKeysRequest{Account: id, Pubs: []string{otp.EncodeKey(pub)}})
	if err != nil {
		t.Fatal(err)
	}
	post := func(token string, body io.Reader) response {
		r := httptest.NewRequest("POST", "/v1/exchange-keys", body)
		r.RemoteAddr = "192.0.2.1:1000"
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return response{w.Code, w.Header(), w.Body.Bytes()}
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"the merchant's body", body},
		{"a body over the limit", bytes.Repeat([]byte(" "), 2<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 10 {
				tw := &tripwire{Reader: bytes.NewReader(tc.body)}
				wantError(t, post("not-the-merchants-token", tw), http.StatusUnauthorized, api.CodeUnauthorized, "invalid token")
				if tw.read {
					t.Fatal("the body of a request with a wrong token was read")
				}
			}
		})
	}
	var out api.ExchangeKeysResponse
	decodeOK(t, post(token, bytes.NewReader(body)), &out)
	if len(out.Keys) != 1 || out.Keys[0].Attrs["category"] != "grocery" {
		t.Fatalf("the merchant's keys: %+v", out.Keys)
	}
}

// TestExchangeKeysWorkers: certification signs on at most
// ExchangeKeyWorkers CPUs. With every worker busy, a certification request
// waits (and gives up when its client goes) while a withdrawal, which
// signs on its own, goes through.
func TestExchangeKeysWorkers(t *testing.T) {
	e := banktest.New(t, bank.Config{ExchangeKeyWorkers: 2})
	k, err := e.Bank.Catalogue().CertificationKey()
	if err != nil {
		t.Fatal(err)
	}
	certify := func(ctx context.Context) response {
		body := `{"keyId": "` + k.KeyID + `", "blinded": ["` + blindMsg(1) + `", "` + blindMsg(2) + `"]}`
		r := httptest.NewRequestWithContext(ctx, "POST", "/v1/exchange-keys", strings.NewReader(body))
		w := httptest.NewRecorder()
		e.Bank.Handler().ServeHTTP(w, r)
		return response{w.Code, w.Header(), w.Body.Bytes()}
	}
	release := e.Bank.HoldCertifyWorkers()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan response)
	go func() { done <- certify(ctx) }()

	id, token := e.Account(t, 1000)
	if coins := e.Withdraw(t, id, token, 2); len(coins) != 2 {
		t.Fatalf("withdrew %d coins", len(coins))
	}
	cancel() // the certifying client goes away
	wantError(t, <-done, http.StatusServiceUnavailable, api.CodeUnavailable, "waiting for the bank's certification workers")

	release()
	var out api.ExchangeKeysResponse
	decodeOK(t, certify(context.Background()), &out)
	if len(out.BlindSignatures) != 2 {
		t.Fatalf("%d blind signatures, want 2", len(out.BlindSignatures))
	}
}

// TestExchangeKeysCostLimitPerAddress: one IPv6 user holds a /64, so it
// shares one bucket; other addresses have their own.
func TestExchangeKeysCostLimitPerAddress(t *testing.T) {
	e := banktest.New(t, bank.Config{MaxCoinsPerRequest: 1,
		ExchangeKeyRate: rate.Every(time.Minute), ExchangeKeyBurst: 2, ExchangeKeyGlobalRate: rate.Inf})
	h := e.Bank.Handler()
	k, err := e.Bank.Catalogue().CertificationKey()
	if err != nil {
		t.Fatal(err)
	}
	post := func(remote string, i int) int {
		body := `{"keyId": "` + k.KeyID + `", "blinded": ["` + blindMsg(i) + `"]}`
		r := httptest.NewRequest("POST", "/v1/exchange-keys", strings.NewReader(body))
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for i, tc := range []struct {
		remote string
		want   int
	}{
		{"[2001:db8::1]:1", 200}, {"[2001:db8::2]:1", 200}, {"[2001:db8::3]:1", 429},
		{"[2001:db8:0:1::1]:1", 200}, {"192.0.2.1:1", 200}, {"192.0.2.1:2", 200}, {"192.0.2.1:3", 429},
	} {
		if got := post(tc.remote, i); got != tc.want {
			t.Errorf("request %d from %s: %d, want %d", i, tc.remote, got, tc.want)
		}
	}
}

func TestDeposit(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	ctx := context.Background()
	payer, payerToken := e.Account(t, 500)
	payee, payeeToken := e.Account(t, 0)
	coins := e.Withdraw(t, payer, payerToken, 3)
	received := e.Pay(t, e.Pay(t, coins[:2])) // two hops

	req := banktest.DepositRequest(t, payee, received)
	resp, err := e.Client.Deposit(ctx, payeeToken, req)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resp.Results {
		if r.Status != api.StatusCredited || r.Token != received[i].Sandbox.Coin.Data.Token {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	if resp.Balance != 200 {
		t.Errorf("balance %d, want 200", resp.Balance)
	}

	// A wallet that crashed after depositing retries: nothing more is
	// credited and nothing is refused.
	resp, err = e.Client.Deposit(ctx, payeeToken, req)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resp.Results {
		if r.Status != api.StatusAlreadyCredited || r.Code != "" || r.Conflict != nil {
			t.Errorf("retried result %d: %+v", i, r)
		}
	}
	if resp.Balance != 200 {
		t.Errorf("balance after retry %d, want 200", resp.Balance)
	}

	// The first holder deposits a coin it never paid; a coin listed twice
	// in one request is credited once.
	own := banktest.DepositRequest(t, payer, coins[2:])
	own.Coins = append(own.Coins, own.Coins[0])
	resp, err = e.Client.Deposit(ctx, payerToken, own)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Results[0].Status != api.StatusCredited || resp.Results[1].Status != api.StatusAlreadyCredited || resp.Balance != 300 {
		t.Errorf("own deposit: %+v", resp)
	}

	hist, err := e.Client.History(ctx, client.Account{ID: payee, Token: payeeToken})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 || hist[0].Kind != api.KindDeposit || hist[0].Amount != 200 || !strings.HasPrefix(hist[0].Reference, "dep-") {
		t.Errorf("payee history %+v", hist)
	}
	r := state(t, e)
	if r.IssuedValue != 300 || r.DepositedValue != 300 || r.OutstandingValue != 0 || r.DepositCredits != 300 || r.WithdrawDebits != 300 {
		t.Errorf("audit figures %+v", r)
	}
}

func TestDoubleDeposit(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	ctx := context.Background()
	payer, payerToken := e.Account(t, 100)
	b, bToken := e.Account(t, 0)
	c, cToken := e.Account(t, 0)
	coin := e.Withdraw(t, payer, payerToken, 1)
	toB := e.Pay(t, coin) // the payer pays the coin ...
	toC := e.Pay(t, coin) // ... and again from a restored copy of its vault
	holder := coin[0].Sandbox.Coin.Data.Holder

	resp, err := e.Client.Deposit(ctx, bToken, banktest.DepositRequest(t, b, toB))
	if err != nil || resp.Results[0].Status != api.StatusCredited {
		t.Fatalf("first deposit: %+v, %v", resp, err)
	}
	before := state(t, e)
	for range 2 { // the evidence is kept once however often it is tried
		resp, err = e.Client.Deposit(ctx, cToken, banktest.DepositRequest(t, c, toC))
		if err != nil {
			t.Fatal(err)
		}
		r := resp.Results[0]
		if r.Status != api.StatusRefused || r.Code != api.CodeDoubleDeposit || r.Conflict == nil ||
			r.Conflict.Key != holder || r.Conflict.Index != 0 || !strings.Contains(r.Message, holder) {
			t.Fatalf("second deposit: %+v; want double_deposit naming %s at 0", r, holder)
		}
		if resp.Balance != 0 {
			t.Errorf("balance of refused depositor %d", resp.Balance)
		}
	}
	sameState(t, before, state(t, e))

	// The same chain to another account: the last holder signed two
	// deposits.
	resp, err = e.Client.Deposit(ctx, cToken, banktest.DepositRequest(t, c, toB))
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.Results[0]; r.Code != api.CodeDoubleDeposit || r.Conflict.Key != toB[0].Sandbox.Holder() || r.Conflict.Index != 1 {
		t.Errorf("same chain to another account: %+v", r)
	}

	conflicts, err := e.Client.Conflicts(ctx, banktest.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	if len(conflicts) != 2 {
		t.Fatalf("%d conflicts, want 2", len(conflicts))
	}
	cf := conflicts[0]
	if cf.Token != coin[0].Sandbox.Coin.Data.Token || cf.Key != holder || cf.Index != 0 ||
		cf.FirstAccount != b || cf.SecondAccount != c || !cf.Detected.Equal(banktest.Start) {
		t.Errorf("conflict %+v", cf)
	}
	if cf.First.Chain[0].Sig != toB[0].Sandbox.Chain[0].Sig || cf.Second.Chain[0].Sig != toC[0].Sandbox.Chain[0].Sig {
		t.Error("conflict does not hold both chains")
	}
	if key, index, _ := otp.Divergence(&cf.First, &cf.Second); key != holder || index != 0 {
		t.Errorf("evidence diverges at %s/%d", key, index)
	}
	if !strings.Contains(e.Logs.String(), "double deposit refused") {
		t.Error("double deposit not logged")
	}
}

func TestDoubleDepositRace(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	payer, payerToken := e.Account(t, 100)
	coin := e.Withdraw(t, payer, payerToken, 1)
	const n = 8
	var wg sync.WaitGroup
	statuses := make([]string, n)
	for i := range n {
		id, token := e.Account(t, 0)
		req := banktest.DepositRequest(t, id, e.Pay(t, coin))
		wg.Go(func() {
			resp, err := e.Client.Deposit(context.Background(), token, req)
			if err != nil {
				t.Error(err)
				return
			}
			statuses[i] = resp.Results[0].Status + "/" + resp.Results[0].Code
		})
	}
	wg.Wait()
	credited := 0
	for _, s := range statuses {
		switch s {
		case api.StatusCredited + "/":
			credited++
		case api.StatusRefused + "/" + api.CodeDoubleDeposit:
		default:
			t.Errorf("status %q", s)
		}
	}
	if credited != 1 {
		t.Fatalf("%d of %d racing deposits credited, want 1", credited, n)
	}
	if r := state(t, e); r.DepositCredits != 100 {
		t.Fatalf("deposit credits %d, want 100", r.DepositCredits)
	}
}

// TestDepositRefused deposits coins that are wrong in one way each: each
// is refused, naming the problem, and nothing changes.
func TestDepositRefused(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	ctx := context.Background()
	payer, payerToken := e.Account(t, 20000)
	payee, payeeToken := e.Account(t, 0)
	other := banktest.New(t, bank.Config{Issuer: "other-bank"})
	impostor := banktest.New(t, bank.Config{}) // same issuer name, its own keys
	foreign := func(env *banktest.Env) banktest.Held {
		id, token := env.Account(t, 100)
		return env.Pay(t, env.Withdraw(t, id, token, 1))[0]
	}
	b64 := base64.RawURLEncoding
	flip := func(s string) string {
		b, _ := b64.DecodeString(s)
		b[3] ^= 1
		return b64.EncodeToString(b)
	}
	tests := []struct {
		name   string
		mutate func(h *banktest.Held, dc *api.DepositCoin)
		code   string
		msg    string
	}{
		{"flipped coin signature", func(h *banktest.Held, dc *api.DepositCoin) {
			dc.Sandbox.Coin.Signature.Value = flip(dc.Sandbox.Coin.Signature.Value)
		}, api.CodeInvalidCoin, "invalid signature"},
		{"value raised", func(h *banktest.Held, dc *api.DepositCoin) {
			dc.Sandbox.Coin.Data.Value = 10000
		}, api.CodeInvalidCoin, "checksum mismatch"},
		{"forged coin, checksum recomputed", func(h *banktest.Held, dc *api.DepositCoin) {
			c := &dc.Sandbox.Coin
			c.Data.Token = otp.NewSerial().String()
			sum, _ := c.ComputeChecksum()
			c.Checksum = b64.EncodeToString(sum[:])
		}, api.CodeInvalidCoin, "invalid signature"},
		{"unknown algorithm", func(h *banktest.Held, dc *api.DepositCoin) {
			dc.Sandbox.Coin.Signature.Alg = "RSA"
		}, api.CodeInvalidCoin, "unknown signature algorithm"},
		{"flipped link signature", func(h *banktest.Held, dc *api.DepositCoin) {
			dc.Sandbox.Chain[0].Sig = flip(dc.Sandbox.Chain[0].Sig)
		}, api.CodeInvalidChain, "not signed by the previous holder"},
		{"exchange key not certified", func(h *banktest.Held, dc *api.DepositCoin) {
			dc.Sandbox.Chain[0].To.Sig = flip(dc.Sandbox.Chain[0].To.Sig)
		}, api.CodeInvalidChain, "invalid transfer chain"},
		{"flipped proof", func(h *banktest.Held, dc *api.DepositCoin) {
			dc.Proof = flip(dc.Proof)
		}, api.CodeInvalidProof, "invalid signature"},
		{"proof for another account", func(h *banktest.Held, dc *api.DepositCoin) {
			dc.Proof, _ = h.Sandbox.DepositProof(h.Key, payer)
		}, api.CodeInvalidProof, "deposit proof"},
		{"proof by the previous holder", func(h *banktest.Held, dc *api.DepositCoin) {
			dc.Sandbox.Chain = nil
		}, api.CodeInvalidProof, "deposit proof"},
		{"coin of another issuer", func(h *banktest.Held, dc *api.DepositCoin) {
			*h = foreign(other)
			*dc = banktest.DepositRequest(t, payee, []banktest.Held{*h}).Coins[0]
		}, api.CodeUnknownIssuer, `unknown issuer "other-bank"`},
		{"coin signed by an unknown key of this issuer", func(h *banktest.Held, dc *api.DepositCoin) {
			*h = foreign(impostor)
			*dc = banktest.DepositRequest(t, payee, []banktest.Held{*h}).Coins[0]
		}, api.CodeUnknownIssuer, "unknown issuer key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := e.Pay(t, e.Withdraw(t, payer, payerToken, 1))[0]
			dc := banktest.DepositRequest(t, payee, []banktest.Held{h}).Coins[0]
			tc.mutate(&h, &dc)
			before := state(t, e)
			resp, err := e.Client.Deposit(ctx, payeeToken, api.DepositRequest{Account: payee, Coins: []api.DepositCoin{dc}})
			if err != nil {
				t.Fatal(err)
			}
			r := resp.Results[0]
			if r.Status != api.StatusRefused || r.Code != tc.code || !strings.Contains(r.Message, tc.msg) || r.Conflict != nil {
				t.Fatalf("result %+v; want refused %s mentioning %q", r, tc.code, tc.msg)
			}
			sameState(t, before, state(t, e))

			// The same coin amid good ones, whose signatures are verified
			// in one batch with its own: it alone is refused, for the
			// same reason.
			h = e.Pay(t, e.Withdraw(t, payer, payerToken, 1))[0]
			good := e.Pay(t, e.Withdraw(t, payer, payerToken, 6))
			req := banktest.DepositRequest(t, payee, append(good[:3:3], append([]banktest.Held{h}, good[3:]...)...))
			tc.mutate(&h, &req.Coins[3])
			balance := e.Balance(t, payee, payeeToken)
			resp, err = e.Client.Deposit(ctx, payeeToken, req)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range resp.Results {
				if i == 3 {
					if r.Status != api.StatusRefused || r.Code != tc.code || !strings.Contains(r.Message, tc.msg) {
						t.Errorf("amid good coins: result %+v; want refused %s mentioning %q", r, tc.code, tc.msg)
					}
				} else if r.Status != api.StatusCredited {
					t.Errorf("amid good coins: good coin %d: %+v", i, r)
				}
			}
			if resp.Balance != balance+6*100 {
				t.Errorf("amid good coins: balance %d, want %d", resp.Balance, balance+6*100)
			}
		})
	}
	t.Run("refused coins do not block valid ones", func(t *testing.T) {
		good := e.Pay(t, e.Withdraw(t, payer, payerToken, 2))
		req := banktest.DepositRequest(t, payee, good)
		req.Coins[0].Proof = flip(req.Coins[0].Proof)
		balance := e.Balance(t, payee, payeeToken)
		resp, err := e.Client.Deposit(ctx, payeeToken, req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Results[0].Code != api.CodeInvalidProof || resp.Results[1].Status != api.StatusCredited || resp.Balance != balance+100 {
			t.Fatalf("mixed batch: %+v", resp)
		}
		// The refused coin is still good with a good proof.
		resp, err = e.Client.Deposit(ctx, payeeToken, banktest.DepositRequest(t, payee, good[:1]))
		if err != nil || resp.Results[0].Status != api.StatusCredited || resp.Balance != balance+200 {
			t.Fatalf("refused coin deposited again: %+v, %v", resp, err)
		}
	})
}

// TestDepositNeverIssued: a validly signed coin the bank has no record of
// (only a leaked key or a tampered database makes one). A blind-signed
// coin cannot be matched to its issue, so the audit's count per key
// catches it; a coin of an Ed25519 coin key from before blind issuance
// is refused by serial.
func TestDepositNeverIssued(t *testing.T) {
	ctx := context.Background()
	e := banktest.New(t, bank.Config{})
	payer, payerToken := e.Account(t, 100)
	h := e.Withdraw(t, payer, payerToken, 1)
	db := openRaw(t, e.Path)
	if _, err := db.Exec(`DELETE FROM issued`); err != nil {
		t.Fatal(err)
	}
	resp, err := e.Client.Deposit(ctx, payerToken, banktest.DepositRequest(t, payer, h))
	if err != nil || resp.Results[0].Status != api.StatusCredited {
		t.Fatalf("blind coin: %+v, %v", resp, err)
	}
	r, err := e.Bank.Audit(ctx)
	if err != nil || !slices.Contains(r.Problems, "deposited coins never issued: 1, worth 1.00") {
		t.Fatalf("audit problems %q; want the coin never issued", r.Problems)
	}

	// A legacy Ed25519 coin key in the store, as a bank from before blind
	// issuance left it; a restart loads it into the catalogue.
	legacy, priv, err := otp.GenerateSigner("otpcash-bank", otp.IssuerKey{Use: otp.UseCoin, Value: 100, Currency: "EUR",
		NotBefore: banktest.Start.Add(-day), Expires: banktest.Start, DepositUntil: banktest.Start.Add(365 * day)})
	if err != nil {
		t.Fatal(err)
	}
	entry, err := json.Marshal(legacy.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Store.Update(ctx, func(tx storage.Tx) error {
		return tx.InsertIssuerKey(ctx, storage.IssuerKey{KeyID: legacy.Key.KeyID, Use: "coin", Seed: priv.Seed(), Entry: entry, Created: banktest.Start})
	}); err != nil {
		t.Fatal(err)
	}
	restarted := banktest.NewOn(t, e.Store, bank.Config{})
	hk, holderPriv := banktest.NewKey(t)
	coin, err := legacy.Issue(otp.NewSerial(), hk, banktest.Start.Add(day), otp.GeneralProgram())
	if err != nil {
		t.Fatal(err)
	}
	old := []banktest.Held{{Sandbox: otp.Sandbox{Coin: *coin, Chain: []otp.Link{}}, Key: holderPriv}}
	resp, err = restarted.Client.Deposit(ctx, payerToken, banktest.DepositRequest(t, payer, old))
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.Results[0]; r.Code != api.CodeUnknownCoin {
		t.Fatalf("legacy coin never issued: %+v, want unknown_coin", r)
	}
}

func TestDepositExpired(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	payer, payerToken := e.Account(t, 200)
	coins := e.Withdraw(t, payer, payerToken, 2)
	// Past the coin's expiry but within the grace: still depositable.
	e.Clock.Advance(400 * day)
	resp, err := e.Client.Deposit(context.Background(), payerToken, banktest.DepositRequest(t, payer, coins[:1]))
	if err != nil || resp.Results[0].Status != api.StatusCredited {
		t.Fatalf("deposit in the grace period: %+v, %v", resp, err)
	}
	cat := e.Bank.Catalogue()
	k, err := cat.Key(coins[1].Sandbox.Coin.Data.KeyID, otp.UseCoin)
	if err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(k.DepositUntil.Sub(e.Clock.Now()))
	resp, err = e.Client.Deposit(context.Background(), payerToken, banktest.DepositRequest(t, payer, coins[1:]))
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.Results[0]; r.Code != api.CodeExpired || !strings.Contains(r.Message, "deposit deadline") {
		t.Fatalf("deposit after the deadline: %+v", r)
	}
}

func TestKeyRotation(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	ctx := context.Background()
	payer, payerToken := e.Account(t, 200)
	old := e.Withdraw(t, payer, payerToken, 1)
	e.Clock.Advance(366 * day)
	fresh := e.Withdraw(t, payer, payerToken, 1)
	if old[0].Sandbox.Coin.Data.KeyID == fresh[0].Sandbox.Coin.Data.KeyID {
		t.Fatal("coin key not replaced after its signing period")
	}
	cat, err := e.Client.Catalogue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Twice the exchange keys (clear and blind) and the coin keys of the
	// three programs.
	if err := cat.Verify(e.Bank.Catalogue().Root); err != nil || len(cat.Keys) != 10 {
		t.Fatalf("catalogue after rotation: %d keys, %v", len(cat.Keys), err)
	}
	resp, err := e.Client.Deposit(ctx, payerToken, banktest.DepositRequest(t, payer, slices.Concat(e.Pay(t, old), e.Pay(t, fresh))))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resp.Results {
		if r.Status != api.StatusCredited {
			t.Errorf("coin %d: %+v", i, r)
		}
	}
}

func TestAudit(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	payer, payerToken := e.Account(t, 1000)
	payee, payeeToken := e.Account(t, 0)
	coins := e.Withdraw(t, payer, payerToken, 5)
	if _, err := e.Client.Deposit(context.Background(), payeeToken, banktest.DepositRequest(t, payee, e.Pay(t, coins[:2]))); err != nil {
		t.Fatal(err)
	}
	r := state(t, e)
	want := bank.AuditReport{
		IssuedCoins: 5, IssuedValue: 500, DepositedCoins: 2, DepositedValue: 200, OutstandingCoins: 3, OutstandingValue: 300,
		Credits: 1000, WithdrawDebits: 500, DepositCredits: 200, Accounts: 2, Balances: 700, Problems: []string{},
	}
	sameState(t, want, r)
	if s := r.String(); !strings.Contains(s, "outstanding         3 coins            3.00") || !strings.HasSuffix(s, "audit OK") {
		t.Errorf("report text:\n%s", s)
	}

	db := openRaw(t, e.Path)
	if _, err := db.Exec(`UPDATE accounts SET balance = balance + 5000 WHERE id = ?`, payee); err != nil {
		t.Fatal(err)
	}
	// The bank cannot tell which blinded coin became which coin: four of
	// the five issued coins go missing, one fewer than were deposited.
	if _, err := db.Exec(`DELETE FROM issued WHERE rowid IN (SELECT rowid FROM issued LIMIT 4)`); err != nil {
		t.Fatal(err)
	}
	r, err := e.Bank.Audit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() {
		t.Fatal("audit found nothing wrong in a tampered database")
	}
	got := strings.Join(r.Problems, "\n")
	for _, want := range []string{
		fmt.Sprintf("account %s: balance 52.00, but its ledger entries sum to 2.00", payee),
		"deposited coins never issued: 1, worth 1.00",
		"withdrawals debited 5.00, but the issued coins are worth 1.00",
		"issued 1.00 - deposited 2.00 = -1.00, but the outstanding coins are worth 0.00",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems:\n%s\nwant one saying %q", got, want)
		}
	}
	if s := r.String(); !strings.Contains(s, "audit FAILED, problems: 4\n  - ") {
		t.Errorf("report text:\n%s", s)
	}
	if e.Balance(t, payee, payeeToken) != 5200 {
		t.Error("tampering did not take")
	}
}

// TestLogs checks that requests are logged, and that no log line carries a
// token, a key or a coin serial in full.
func TestLogs(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	ctx := context.Background()
	payer, payerToken := e.Account(t, 300)
	payee, payeeToken := e.Account(t, 0)
	coins := e.Withdraw(t, payer, payerToken, 2)
	paid := e.Pay(t, coins)
	if _, err := e.Client.Deposit(ctx, payeeToken, banktest.DepositRequest(t, payee, paid)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Deposit(ctx, payerToken, banktest.DepositRequest(t, payer, e.Pay(t, coins))); err != nil {
		t.Fatal(err)
	}
	call(t, e, "GET", "/v1/accounts/"+payer, "wrong-token", nil)
	logs := e.Logs.String()
	for _, want := range []string{"msg=request method=POST path=/v1/deposits status=200 duration=", "msg=\"double deposit refused\""} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	secrets := []string{banktest.AdminToken, payerToken, payeeToken, "wrong-token"}
	for _, h := range slices.Concat(coins, paid) {
		secrets = append(secrets, h.Sandbox.Coin.Data.Token, h.Sandbox.Holder())
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain %q", s)
		}
	}
}

func TestServe(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bank.Serve(ctx, ln, e.Bank.Handler(), slog.New(slog.NewTextHandler(e.Logs, nil))) }()
	res, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("healthz: %d", res.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not stop")
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
}

func TestAuditOnReopenedStore(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	id, token := e.Account(t, 100)
	e.Withdraw(t, id, token, 1)
	st, err := sqlite.Open(context.Background(), e.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := bank.Audit(context.Background(), st)
	if err != nil || !r.OK() || r.IssuedValue != 100 {
		t.Fatalf("audit of the store: %+v, %v", r, err)
	}
}

// blindMsg returns a well-formed blinded message, distinct for each i.
func blindMsg(i int) string {
	b := make([]byte, otp.BlindMessageSize)
	b[0] = byte(i)
	return otp.EncodeBlinded(b)
}

// TestCatalogueCarriesLimits: the configured offline limits reach the
// signed catalogue wallets fetch, and none are written when none are set.
func TestCatalogueCarriesLimits(t *testing.T) {
	for _, tt := range []struct {
		value   int64
		offline time.Duration
		hops    int
	}{{0, 0, 0}, {50000, 72 * time.Hour, 4}} {
		e := banktest.New(t, bank.Config{MaxOfflineValue: tt.value, MaxOffline: tt.offline, MaxHops: tt.hops})
		cat, err := e.Client.Catalogue(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := cat.Verify(""); err != nil {
			t.Fatal(err)
		}
		if cat.MaxOfflineValue != tt.value || cat.MaxOffline() != tt.offline || cat.MaxHops != int64(tt.hops) {
			t.Errorf("catalogue limits %d, %s, %d hops; configured %d, %s, %d", cat.MaxOfflineValue, cat.MaxOffline(), cat.MaxHops, tt.value, tt.offline, tt.hops)
		}
	}
}
