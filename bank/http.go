package bank

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/storage"
	"github.com/otpcash/otpcash/internal/strictjson"
	"github.com/otpcash/otpcash/otp"
)

// Request body limits. A deposit carries whole sandboxes and a withdrawal
// a blinded message per coin; everything else is small.
const (
	maxBody         = 64 << 10
	maxWithdrawBody = 1 << 20
	maxDepositBody  = 8 << 20
)

// History page size: the default and the most a client may ask for.
const (
	defaultHistory = 100
	maxHistory     = 1000
)

// handlerFunc is an HTTP handler that returns its error, to be written as
// a JSON error body.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is one endpoint of the HTTP API. The table is the one list of
// what the bank serves; bank/api/openapi.yaml describes exactly it (the
// OpenAPI test compares the two).
type route struct {
	method, path string
	h            handlerFunc
}

func (b *Bank) routes() []route {
	return []route{
		{http.MethodGet, "/healthz", b.handleHealth},
		{http.MethodGet, "/v1/openapi.yaml", handleOpenAPI},
		{http.MethodGet, "/v1/catalogue", b.handleCatalogue},
		{http.MethodPost, "/v1/accounts", b.handleCreateAccount},
		{http.MethodPost, "/v1/accounts/{id}/credit", b.handleCredit},
		{http.MethodGet, "/v1/accounts/{id}", b.handleAccount},
		{http.MethodGet, "/v1/accounts/{id}/history", b.handleHistory},
		{http.MethodPost, "/v1/withdrawals", b.handleWithdraw},
		{http.MethodPost, "/v1/redenominations", b.handleRedenomination},
		// The old path of re-denominations, served for one more release.
		{http.MethodPost, "/v1/exchanges", deprecated("/v1/redenominations", b.handleRedenomination)},
		{http.MethodPost, "/v1/reclaims", b.handleReclaim},
		{http.MethodPost, "/v1/recoveries", b.handleRecovery},
		{http.MethodPut, "/v1/backups/{id}", b.handlePutBackup},
		{http.MethodGet, "/v1/backups/{id}", b.handleGetBackup},
		{http.MethodPost, "/v1/exchange-keys", b.handleExchangeKeys},
		{http.MethodPost, "/v1/deposits", b.handleDeposit},
		{http.MethodGet, "/v1/admin/conflicts", b.handleConflicts},
		{http.MethodGet, "/v1/revocations", b.handleRevocations},
	}
}

// deprecationDate is when the deprecated routes were deprecated (RFC
// 9745): /v1/exchanges, the old path of /v1/redenominations.
const deprecationDate = "@1796428800" // 2026-12-05

// deprecated serves h under a deprecated path, and says so in each answer
// (RFC 9745, and the successor's Link, RFC 5829), for clients to move to
// successor before the path is removed.
func deprecated(successor string, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Deprecation", deprecationDate)
		w.Header().Set("Link", "<"+successor+`>; rel="successor-version"`)
		return h(w, r)
	}
}

// Handler returns the HTTP API: the /v1 routes and /healthz. Every
// response, errors included, is JSON, but for the API's own OpenAPI
// description; every request is logged. It does not serve the metrics:
// they are for the operator, not for clients (MetricsHandler).
func (b *Bank) Handler() http.Handler {
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	for _, rt := range b.routes() {
		mux.Handle(rt.method+" "+rt.path, b.serve(rt.h))
		allowed[rt.path] = append(allowed[rt.path], rt.method)
	}
	// The mux's own 404 and 405 answers are plain text; these are JSON.
	for path, methods := range allowed {
		allow := strings.Join(methods, ", ")
		mux.Handle(path, b.serve(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allow)
			return api.Errorf(http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, "%s %s: use %s", r.Method, path, allow)
		}))
	}
	mux.Handle("/", b.serve(func(w http.ResponseWriter, r *http.Request) error {
		return api.Errorf(http.StatusNotFound, api.CodeNotFound, "no such endpoint: %s", r.URL.Path)
	}))
	return b.logRequests(mux)
}

func (b *Bank) serve(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			b.writeError(w, r, err)
		}
	})
}

var errInternal = api.Errorf(http.StatusInternalServerError, api.CodeInternal, "internal error; the bank has logged it")

var errUnavailable = api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable,
	"the bank's database is unavailable; retry the same request shortly, nothing is applied twice")

// writeError writes err as a JSON error body. Errors that are not
// *api.Error are the bank's own failures: logged, and not shown to the
// client.
func (b *Bank) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *api.Error
	if errors.Is(err, storage.ErrUnavailable) {
		b.log.WarnContext(r.Context(), "storage unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		e = errUnavailable
	} else if !errors.As(err, &e) {
		b.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = errInternal
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="otpcash"`)
	}
	writeJSON(w, e.Status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only a bug can get here: every response type marshals.
		panic(fmt.Sprintf("bank: encode %T: %v", v, err))
	}
	writeBody(w, status, body)
}

func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// body may be shared (the cached catalogue): write the newline apart
	// rather than append to it.
	w.Write(body)
	w.Write([]byte{'\n'})
}

// recorder remembers the status and size of a response for the log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
	r.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// logRequests logs one line per request and turns a panic into a JSON 500.
// It logs no header and no body: they carry tokens, keys and serials.
func (b *Bank) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				b.log.ErrorContext(r.Context(), "handler panic", "panic", p, "stack", string(debug.Stack()))
				if !rec.wrote {
					writeJSON(rec, errInternal.Status, errInternal)
				}
			}
			b.metrics.request(r.Pattern, rec.status, time.Since(start))
			remote, _, _ := net.SplitHostPort(r.RemoteAddr)
			b.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)),
				slog.Int64("bytes", rec.bytes), slog.String("remote", remote))
		}()
		next.ServeHTTP(rec, r)
	})
}

func badRequest(format string, args ...any) *api.Error {
	return api.Errorf(http.StatusBadRequest, api.CodeBadRequest, format, args...)
}

// decode reads exactly one JSON value from r into v, strictly
// (strictjson: no duplicate, mis-cased or unknown names, no trailing data,
// no integer beyond 2^53-1), and turns every failure into an *api.Error.
// r is bounded by the caller (http.MaxBytesReader).
func decode(r io.Reader, v any) error {
	data, err := io.ReadAll(r)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return api.Errorf(http.StatusRequestEntityTooLarge, api.CodeTooLarge, "request body larger than %d bytes", tooLarge.Limit)
	case err != nil:
		return badRequest("reading the request body: %v", err)
	case len(bytes.TrimSpace(data)) == 0:
		return badRequest("empty request body; want JSON")
	}
	if err := strictjson.Unmarshal(data, v); err != nil {
		return badRequest("invalid JSON body: %v", err)
	}
	return nil
}

// checkID checks a client-supplied identifier: 1 to 128 printable ASCII
// characters, no spaces, so it is safe in URLs, logs and references.
func checkID(field, s string) error {
	if len(s) == 0 || len(s) > 128 {
		return badRequest("%s: want 1 to 128 characters, got %d", field, len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return badRequest("%s: only printable ASCII without spaces allowed", field)
		}
	}
	return nil
}

func checkCount(field string, n, max int) error {
	if n == 0 {
		return badRequest("%s: empty", field)
	}
	if n > max {
		return api.Errorf(http.StatusRequestEntityTooLarge, api.CodeTooLarge, "%s: %d given, at most %d per request", field, n, max)
	}
	return nil
}

// parseKeys decodes 1 to max distinct one-time public keys.
func parseKeys(field string, keys []string, max int) ([]ed25519.PublicKey, error) {
	if err := checkCount(field, len(keys), max); err != nil {
		return nil, err
	}
	out := make([]ed25519.PublicKey, len(keys))
	seen := make(map[string]int, len(keys))
	for i, k := range keys {
		pub, err := otp.DecodeKey(k)
		if err != nil {
			return nil, badRequest("%s[%d]: %v", field, i, err)
		}
		// DecodeKey accepts one spelling per key, so equal keys are
		// equal strings.
		if j, dup := seen[k]; dup {
			return nil, badRequest("%s[%d]: same key as %s[%d]; every key must be fresh", field, i, field, j)
		}
		seen[k] = i
		out[i] = pub
	}
	return out, nil
}

func parseWithdrawRequest(r io.Reader, maxCoins int) (api.WithdrawRequest, [][]byte, error) {
	var req api.WithdrawRequest
	if err := decode(r, &req); err != nil {
		return req, nil, err
	}
	for _, f := range [][2]string{{"id", req.ID}, {"account", req.Account}, {"keyId", req.KeyID}} {
		if err := checkID(f[0], f[1]); err != nil {
			return req, nil, err
		}
	}
	if err := checkCount("blinded", len(req.Blinded), maxCoins); err != nil {
		return req, nil, err
	}
	out, err := parseBlinded("blinded", req.Blinded, map[string]string{})
	return req, out, err
}

// parseBlinded decodes blinded messages, refusing one already in seen
// (which it adds them to, by their names in the request).
func parseBlinded(field string, blinded []string, seen map[string]string) ([][]byte, error) {
	out := make([][]byte, len(blinded))
	for i, s := range blinded {
		name := fmt.Sprintf("%s[%d]", field, i)
		m, err := otp.DecodeBlinded(s)
		if err != nil {
			return nil, badRequest("%s: %v", name, err)
		}
		// One spelling per message, so equal messages are equal strings.
		if other, dup := seen[s]; dup {
			return nil, badRequest("%s: same message as %s; blind every coin afresh", name, other)
		}
		seen[s], out[i] = name, m
	}
	return out, nil
}

// parseRedenominationRequest decodes a re-denomination and its blinded coins,
// batch by batch.
func parseRedenominationRequest(r io.Reader, maxCoins int) (api.RedenominationRequest, [][][]byte, error) {
	var req api.RedenominationRequest
	if err := decode(r, &req); err != nil {
		return req, nil, err
	}
	for _, f := range [][2]string{{"id", req.ID}, {"account", req.Account}} {
		if err := checkID(f[0], f[1]); err != nil {
			return req, nil, err
		}
	}
	if err := checkCount("coins", len(req.Coins), maxCoins); err != nil {
		return req, nil, err
	}
	if err := checkCount("withdraw", len(req.Withdraw), maxCoins); err != nil {
		return req, nil, err
	}
	n := 0
	blinded := make([][][]byte, len(req.Withdraw))
	seen := map[string]string{}
	for i, w := range req.Withdraw {
		field := fmt.Sprintf("withdraw[%d]", i)
		if err := checkID(field+".keyId", w.KeyID); err != nil {
			return req, nil, err
		}
		if err := checkCount(field+".blinded", len(w.Blinded), maxCoins); err != nil {
			return req, nil, err
		}
		if n += len(w.Blinded); n > maxCoins {
			return req, nil, checkCount("blinded coins", n, maxCoins)
		}
		var err error
		if blinded[i], err = parseBlinded(field+".blinded", w.Blinded, seen); err != nil {
			return req, nil, err
		}
	}
	return req, blinded, nil
}

// parseExchangeKeysRequest decodes a certification request: a merchant's
// public keys (with its account), or anonymous keys blinded (without).
func parseExchangeKeysRequest(r io.Reader, maxKeys int) (api.ExchangeKeysRequest, []ed25519.PublicKey, [][]byte, error) {
	var req api.ExchangeKeysRequest
	if err := decode(r, &req); err != nil {
		return req, nil, nil, err
	}
	if req.KeyID != "" || req.Blinded != nil {
		if req.Account != "" || req.Pubs != nil {
			return req, nil, nil, badRequest("blinded keys are anonymous: no account and no pubs with them")
		}
		if err := checkID("keyId", req.KeyID); err != nil {
			return req, nil, nil, err
		}
		if err := checkCount("blinded", len(req.Blinded), maxKeys); err != nil {
			return req, nil, nil, err
		}
		blinded, err := parseBlinded("blinded", req.Blinded, map[string]string{})
		return req, nil, blinded, err
	}
	if err := checkID("account", req.Account); err != nil {
		return req, nil, nil, badRequest("anonymous exchange keys are certified blindly: send keyId and blinded, not pubs (%v)", err)
	}
	pubs, err := parseKeys("pubs", req.Pubs, maxKeys)
	return req, pubs, nil, err
}

func parseDepositRequest(r io.Reader, maxCoins int) (api.DepositRequest, error) {
	var req api.DepositRequest
	if err := decode(r, &req); err != nil {
		return req, err
	}
	if err := checkID("account", req.Account); err != nil {
		return req, err
	}
	return req, checkCount("coins", len(req.Coins), maxCoins)
}

func parseReclaimRequest(r io.Reader, maxCoins int) (api.ReclaimRequest, error) {
	var req api.ReclaimRequest
	if err := decode(r, &req); err != nil {
		return req, err
	}
	return req, checkClaims(req.Account, req.Coins, maxCoins)
}

func parseRecoveryRequest(r io.Reader, maxCoins int) (api.RecoveryRequest, error) {
	var req api.RecoveryRequest
	if err := decode(r, &req); err != nil {
		return req, err
	}
	return req, checkClaims(req.Account, req.Coins, maxCoins)
}

func checkClaims(account string, coins []api.ReclaimCoin, maxCoins int) error {
	if err := checkID("account", account); err != nil {
		return err
	}
	return checkCount("coins", len(coins), maxCoins)
}

func parseCreditRequest(r io.Reader) (api.CreditRequest, error) {
	var req api.CreditRequest
	return req, decode(r, &req)
}

// bearer returns the request's bearer token.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "missing Authorization: Bearer token")
	}
	scheme, token, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "Authorization header is not a Bearer token")
	}
	return token, nil
}

func (b *Bank) requireAdmin(r *http.Request) error {
	if b.adminHash == nil {
		return api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "admin routes are off: the bank runs without an admin token")
	}
	token, err := bearer(r)
	if err != nil {
		return err
	}
	if !tokenMatches(token, b.adminHash) {
		return api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "invalid admin token")
	}
	return nil
}

// requireToken authenticates a request by its bearer token alone, so that
// it is done before the body is read: a request without a valid token
// costs the bank a header and one index lookup, not the decoding of up to
// 8 MiB. It returns the account the token opens; a request that names an
// account in its body must name that one (ownedBy).
func (b *Bank) requireToken(r *http.Request) (storage.Account, error) {
	token, err := bearer(r)
	if err != nil {
		return storage.Account{}, err
	}
	h := hashToken(token)
	var a storage.Account
	err = b.st.View(r.Context(), func(tx storage.Tx) (err error) {
		a, err = tx.AccountByToken(r.Context(), h[:])
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return a, api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "invalid token")
	}
	if err != nil {
		return a, fmt.Errorf("account by token: %w", err)
	}
	return a, nil
}

// ownedBy checks that the account a request names is the one its token
// opens.
func ownedBy(a storage.Account, id string) error {
	if a.ID != id {
		return api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "invalid token for account %q", id)
	}
	return nil
}

// requireOwner checks that the request carries the token of account id,
// and returns the account.
func (b *Bank) requireOwner(r *http.Request, id string) (storage.Account, error) {
	token, err := bearer(r)
	if err != nil {
		return storage.Account{}, err
	}
	a, err := b.account(r.Context(), id)
	if err != nil {
		return storage.Account{}, err
	}
	if !tokenMatches(token, a.TokenHash) {
		return storage.Account{}, api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "invalid token for account %q", id)
	}
	return a, nil
}

// openAPI is the description served, read once: api.OpenAPI copies it.
var openAPI = api.OpenAPI()

func handleOpenAPI(w http.ResponseWriter, _ *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "application/yaml") // RFC 9512
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Write(openAPI)
	return nil
}

// healthTimeout bounds the storage check of /healthz.
const healthTimeout = 2 * time.Second

// handleHealth answers 200 when the storage engine answers a read
// transaction within healthTimeout, 503 otherwise.
func (b *Bank) handleHealth(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	if err := b.st.View(ctx, func(storage.Tx) error { return nil }); err != nil {
		b.log.WarnContext(ctx, "health check: storage unreachable", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, api.Health{Status: "unavailable"})
		return nil
	}
	writeJSON(w, http.StatusOK, api.Health{Status: "ok"})
	return nil
}

func (b *Bank) handleCatalogue(w http.ResponseWriter, r *http.Request) error {
	ring, err := b.keyring(r.Context(), b.now())
	if err != nil {
		return err
	}
	writeBody(w, http.StatusOK, ring.catJSON)
	return nil
}

func (b *Bank) handleCreateAccount(w http.ResponseWriter, r *http.Request) error {
	if err := b.requireAdmin(r); err != nil {
		return err
	}
	// The body is optional: an account without attributes needs none.
	var req api.CreateAccountRequest
	if r.ContentLength != 0 {
		if err := decode(http.MaxBytesReader(w, r.Body, maxBody), &req); err != nil {
			return err
		}
	}
	id, token, err := b.CreateAccountWithAttrs(r.Context(), req.Attrs)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.CreateAccountResponse{ID: id, Token: token})
	return nil
}

func (b *Bank) handleCredit(w http.ResponseWriter, r *http.Request) error {
	if err := b.requireAdmin(r); err != nil {
		return err
	}
	req, err := parseCreditRequest(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return err
	}
	balance, err := b.Credit(r.Context(), r.PathValue("id"), req.Amount)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.CreditResponse{Balance: balance})
	return nil
}

func (b *Bank) handleAccount(w http.ResponseWriter, r *http.Request) error {
	a, err := b.requireOwner(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Account{ID: a.ID, Currency: b.cfg.Currency, Balance: a.Balance})
	return nil
}

func (b *Bank) handleHistory(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := b.requireOwner(r, id); err != nil {
		return err
	}
	limit := defaultHistory
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxHistory {
			return badRequest("limit: want a number from 1 to %d, got %q", maxHistory, s)
		}
		limit = n
	}
	h, err := b.history(r.Context(), id, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}

func (b *Bank) handleWithdraw(w http.ResponseWriter, r *http.Request) error {
	a, err := b.requireToken(r)
	if err != nil {
		return err
	}
	req, blinded, err := parseWithdrawRequest(http.MaxBytesReader(w, r.Body, maxWithdrawBody), b.cfg.MaxCoinsPerRequest)
	if err != nil {
		return err
	}
	if err := ownedBy(a, req.Account); err != nil {
		return err
	}
	body, err := b.withdraw(r.Context(), req, blinded)
	if err != nil {
		return err
	}
	writeBody(w, http.StatusOK, body)
	return nil
}

func (b *Bank) handleRedenomination(w http.ResponseWriter, r *http.Request) error {
	a, err := b.requireToken(r)
	if err != nil {
		return err
	}
	req, blinded, err := parseRedenominationRequest(http.MaxBytesReader(w, r.Body, maxDepositBody), b.cfg.MaxCoinsPerRequest)
	if err != nil {
		return err
	}
	if err := ownedBy(a, req.Account); err != nil {
		return err
	}
	body, err := b.redenominate(r.Context(), req, blinded)
	if err != nil {
		return err
	}
	writeBody(w, http.StatusOK, body)
	return nil
}

func (b *Bank) handleExchangeKeys(w http.ResponseWriter, r *http.Request) error {
	// A merchant's keys carry its account's attributes, so only the
	// account's token may ask for them. A request that carries a token is
	// authenticated before anything else, so that a wrong one costs a
	// header and an index lookup: no body is read, and no client's
	// certification budget is charged for it.
	var merchant *storage.Account
	if r.Header.Get("Authorization") != "" {
		a, err := b.requireToken(r)
		if err != nil {
			return err
		}
		merchant = &a
	}
	// Certification is charged by its cost, in signatures: one for
	// reading the request, so that a flood of bodies is limited too,
	// then one for each key beyond the first.
	if err := b.chargeCertification(w, r, 1); err != nil {
		return err
	}
	req, pubs, blinded, err := parseExchangeKeysRequest(http.MaxBytesReader(w, r.Body, maxWithdrawBody), b.cfg.MaxCoinsPerRequest)
	if err != nil {
		return err
	}
	if err := b.chargeCertification(w, r, len(pubs)+len(blinded)-1); err != nil {
		return err
	}
	if blinded != nil {
		sigs, err := b.certifyBlind(r.Context(), req.KeyID, blinded)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, api.ExchangeKeysResponse{BlindSignatures: sigs})
		return nil
	}
	if merchant == nil {
		return api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "the exchange keys of account %q need its token (Authorization: Bearer)", req.Account)
	}
	if err := ownedBy(*merchant, req.Account); err != nil {
		return err
	}
	keys, err := b.certify(r.Context(), pubs, merchant.Attrs)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.ExchangeKeysResponse{Keys: keys})
	return nil
}

func (b *Bank) handleDeposit(w http.ResponseWriter, r *http.Request) error {
	a, err := b.requireToken(r)
	if err != nil {
		return err
	}
	req, err := parseDepositRequest(http.MaxBytesReader(w, r.Body, maxDepositBody), b.cfg.MaxCoinsPerRequest)
	if err != nil {
		return err
	}
	if err := ownedBy(a, req.Account); err != nil {
		return err
	}
	resp, err := b.deposit(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (b *Bank) handleReclaim(w http.ResponseWriter, r *http.Request) error {
	a, err := b.requireToken(r)
	if err != nil {
		return err
	}
	req, err := parseReclaimRequest(http.MaxBytesReader(w, r.Body, maxDepositBody), b.cfg.MaxCoinsPerRequest)
	if err != nil {
		return err
	}
	if err := ownedBy(a, req.Account); err != nil {
		return err
	}
	resp, err := b.reclaim(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (b *Bank) handleRecovery(w http.ResponseWriter, r *http.Request) error {
	a, err := b.requireToken(r)
	if err != nil {
		return err
	}
	req, err := parseRecoveryRequest(http.MaxBytesReader(w, r.Body, maxDepositBody), b.cfg.MaxCoinsPerRequest)
	if err != nil {
		return err
	}
	if err := ownedBy(a, req.Account); err != nil {
		return err
	}
	resp, err := b.recover(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (b *Bank) handleConflicts(w http.ResponseWriter, r *http.Request) error {
	if err := b.requireAdmin(r); err != nil {
		return err
	}
	cs, err := b.conflicts(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, cs)
	return nil
}
