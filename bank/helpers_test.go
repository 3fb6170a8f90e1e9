package bank_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/client"
	"github.com/otpcash/otpcash/bank/internal/banktest"
)

type response struct {
	status int
	header http.Header
	body   []byte
}

// call sends one request to the test bank. body is sent as is when it is
// a string, JSON-encoded otherwise.
func call(t *testing.T, e *banktest.Env, method, path, token string, body any) response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.Server.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := e.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return response{res.StatusCode, res.Header, data}
}

// decodeOK checks for a 2xx answer and decodes it strictly.
func decodeOK(t *testing.T, r response, v any) {
	t.Helper()
	if r.status/100 != 2 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, r.body)
	}
}

// wantError checks for a JSON error with the given status and code whose
// message mentions msg.
func wantError(t *testing.T, r response, status int, code, msg string) {
	t.Helper()
	var e api.Error
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	if r.status != status || e.Code != code || !strings.Contains(e.Message, msg) {
		t.Fatalf("got %d %s %q; want %d %s with a message mentioning %q", r.status, e.Code, e.Message, status, code, msg)
	}
}

// state is everything about the bank's money: equal states mean nothing
// changed.
func state(t *testing.T, e *banktest.Env) bank.AuditReport {
	t.Helper()
	r, err := e.Bank.Audit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("audit problems: %v", r.Problems)
	}
	return r
}

func sameState(t *testing.T, before, after bank.AuditReport) {
	t.Helper()
	b, _ := json.Marshal(before)
	a, _ := json.Marshal(after)
	if !bytes.Equal(a, b) {
		t.Fatalf("state changed:\nbefore %s\nafter  %s", b, a)
	}
}

// openRaw opens the bank's SQLite file directly, to tamper with it.
func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// lastReference is the reference of the newest ledger entry of account id.
func lastReference(t *testing.T, e *banktest.Env, id, token string) string {
	t.Helper()
	h, err := e.Client.History(context.Background(), client.Account{ID: id, Token: token})
	if err != nil || len(h) == 0 {
		t.Fatalf("history of %s: %d entries, %v", id, len(h), err)
	}
	return h[0].Reference
}
