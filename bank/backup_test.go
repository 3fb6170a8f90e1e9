package bank_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/internal/banktest"
	"github.com/otpcash/otpcash/otp"
)

// getBackup fetches the backup of key through the client; ok false for a
// 404.
func getBackup(t *testing.T, e *banktest.Env, key ed25519.PrivateKey) (data []byte, version int64, ok bool) {
	t.Helper()
	data, b, err := e.Client.GetBackup(context.Background(), key.Public().(ed25519.PublicKey))
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == api.CodeNotFound {
		return nil, 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return data, b.Version, true
}

// TestBackupRoundTrip stores, fetches and replaces a wallet's backup at
// the bank, on both engines; the same upload again is answered as the
// first time, and another key's backup is apart.
func TestBackupRoundTrip(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			e := banktest.NewOn(t, eng.open(t), bank.Config{})
			ctx := context.Background()
			_, key := banktest.NewKey(t)
			_, other := banktest.NewKey(t)
			if _, _, ok := getBackup(t, e, key); ok {
				t.Fatal("a backup before any upload")
			}
			for v, data := range [][]byte{[]byte("first backup"), bytes.Repeat([]byte{7}, api.MaxBackupData)} {
				id, up := api.SignBackup(key, int64(v+1), data)
				for range 2 { // the second time: a retry of the same upload
					st, err := e.Client.PutBackup(ctx, id, up)
					if err != nil || st.Version != int64(v+1) || st.Size != len(data) {
						t.Fatalf("put version %d: %+v, %v", v+1, st, err)
					}
				}
				got, ver, ok := getBackup(t, e, key)
				if !ok || ver != int64(v+1) || !bytes.Equal(got, data) {
					t.Fatalf("got version %d, %d bytes, want version %d, %d bytes", ver, len(got), v+1, len(data))
				}
			}
			oid, oup := api.SignBackup(other, 1, []byte("another wallet"))
			if _, err := e.Client.PutBackup(ctx, oid, oup); err != nil {
				t.Fatal(err)
			}
			if got, _, _ := getBackup(t, e, other); string(got) != "another wallet" {
				t.Fatalf("the other key's backup: %q", got)
			}
			if got, ver, _ := getBackup(t, e, key); ver != 2 || len(got) != api.MaxBackupData {
				t.Fatal("one key's upload changed another's backup")
			}
		})
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestBackupRefuses: every bad upload or fetch is refused with its code,
// and the stored backup is unchanged.
func TestBackupRefuses(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	ctx := context.Background()
	_, key := banktest.NewKey(t)
	_, other := banktest.NewKey(t)
	id, v1 := api.SignBackup(key, 1, []byte("version 1"))
	if _, err := e.Client.PutBackup(ctx, id, v1); err != nil {
		t.Fatal(err)
	}
	_, v2 := api.SignBackup(key, 2, []byte("version 2"))
	if _, err := e.Client.PutBackup(ctx, id, v2); err != nil {
		t.Fatal(err)
	}
	oid := api.BackupID(other.Public().(ed25519.PublicKey))
	_, byOther := api.SignBackup(other, 3, []byte("version 3"))
	tampered := v2
	tampered.Version = 3
	tamperedData := v2
	tamperedData.Data = base64.RawURLEncoding.EncodeToString([]byte("version 3"))
	unsigned := v2
	unsigned.Version, unsigned.Signature = 3, ""
	wrongKey := byOther
	wrongKey.Key = v2.Key
	_, sameVersion := api.SignBackup(key, 2, []byte("another version 2"))
	_, zero := api.SignBackup(key, 0, []byte("version 0"))
	_, big := api.SignBackup(key, 3, make([]byte, api.MaxBackupData+1))
	body := func(u api.BackupUpload) string {
		b, _ := json.Marshal(u)
		return string(b)
	}
	for _, tc := range []struct {
		name, id, body string
		status         int
		code, msg      string
	}{
		{"a version changed after signing", id, body(tampered), 403, api.CodeForbidden, "signature"},
		{"data changed after signing", id, body(tamperedData), 403, api.CodeForbidden, "signature"},
		{"unsigned", id, body(unsigned), 403, api.CodeForbidden, "signature"},
		{"signed by another key", id, body(wrongKey), 403, api.CodeForbidden, "signature"},
		{"another id's key", id, body(byOther), 403, api.CodeForbidden, "does not name"},
		{"under another id", oid, body(v2), 403, api.CodeForbidden, "does not name"},
		{"an older version replayed", id, body(v1), 409, api.CodeStaleVersion, "not above the stored version 2"},
		{"the same version, other data", id, body(sameVersion), 409, api.CodeStaleVersion, "not above"},
		{"version 0", id, body(zero), 400, api.CodeBadRequest, "version 0"},
		{"data over the bound", id, body(big), 413, api.CodeTooLarge, "larger than"},
		{"a malformed id", "not-an-id", body(v2), 400, api.CodeBadRequest, "backup id"},
		{"an unknown field", id, strings.Replace(body(v2), `"key"`, `"extra":1,"key"`, 1), 400, api.CodeBadRequest, "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, call(t, e, http.MethodPut, "/v1/backups/"+tc.id, "", tc.body), tc.status, tc.code, tc.msg)
			if got, ver, _ := getBackup(t, e, key); ver != 2 || string(got) != "version 2" {
				t.Fatalf("after the refusal: version %d, %q", ver, got)
			}
			if _, _, ok := getBackup(t, e, other); ok {
				t.Fatal("the refused upload stored a backup of the other key")
			}
		})
	}

	// An upload announced larger than the bound is refused before any of
	// its body is read; one without a length is cut off at the bound.
	t.Run("announced too large", func(t *testing.T) {
		cr := &countingReader{r: strings.NewReader(strings.Repeat("x", 1<<20))}
		req := httptest.NewRequest(http.MethodPut, "/v1/backups/"+id, cr)
		req.ContentLength = 8 << 20
		rec := httptest.NewRecorder()
		e.Bank.Handler().ServeHTTP(rec, req)
		wantError(t, response{rec.Code, rec.Header(), rec.Body.Bytes()}, 413, api.CodeTooLarge, "at most")
		if cr.n != 0 {
			t.Fatalf("read %d bytes of a body announced too large", cr.n)
		}
	})
	t.Run("unannounced too large", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, e.Server.URL+"/v1/backups/"+id, io.MultiReader(strings.NewReader(`{"data":"`), strings.NewReader(strings.Repeat("A", 6<<20))))
		req.ContentLength = -1
		res, err := e.Server.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(res.Body)
		res.Body.Close()
		wantError(t, response{res.StatusCode, res.Header, data}, 413, api.CodeTooLarge, "larger than")
	})

	get := func(id, key string) response {
		req, _ := http.NewRequest(http.MethodGet, e.Server.URL+"/v1/backups/"+id, nil)
		if key != "" {
			req.Header.Set(api.BackupKeyHeader, key)
		}
		res, err := e.Server.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		data, _ := io.ReadAll(res.Body)
		return response{res.StatusCode, res.Header, data}
	}
	otherKey := otp.EncodeKey(other.Public().(ed25519.PublicKey))
	wantError(t, get(id, ""), 400, api.CodeBadRequest, api.BackupKeyHeader)
	wantError(t, get(id, otherKey), 403, api.CodeForbidden, "does not name")
	wantError(t, get(oid, otherKey), 404, api.CodeNotFound, "no backup")
	var b api.Backup
	decodeOK(t, get(id, v2.Key), &b)
	if b.Version != 2 {
		t.Fatalf("GET: version %d", b.Version)
	}
}

// TestBackupUploadGolden: testdata/backup_upload.json is an upload by the
// Ed25519 key of seed 32 bytes of 0x05, version 7, computed independently
// with Python's cryptography package: id = unpadded base64url
// SHA-256("otpcash/v1/backup-id" 0x00 key) =
// rtEDSt8opuvRSewT8aiA3DeqKfRdGpasqQW90rFwY5g, signature over
// "otpcash/v1/backup-upload" 0x00 id 0x00 version (uint64 big-endian)
// SHA-256(data). SignBackup makes exactly it, and the bank stores it.
func TestBackupUploadGolden(t *testing.T) {
	raw, err := os.ReadFile("testdata/backup_upload.json")
	if err != nil {
		t.Fatal(err)
	}
	var want api.BackupUpload
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	const wantID = "rtEDSt8opuvRSewT8aiA3DeqKfRdGpasqQW90rFwY5g"
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize))
	data, err := want.Open(wantID)
	if err != nil {
		t.Fatalf("the vector does not open: %v", err)
	}
	id, up := api.SignBackup(key, want.Version, data)
	if id != wantID || up != want {
		t.Fatalf("SignBackup = %s %+v, want %s %+v", id, up, wantID, want)
	}
	e := banktest.New(t, bank.Config{})
	if _, err := e.Client.PutBackup(context.Background(), id, up); err != nil {
		t.Fatal(err)
	}
}

// TestBackupBudget: one address creates at most BackupBurst new backups
// at once, one more per BackupRate; refused with 429 and Retry-After
// before the body is read, nothing stored. Replacing a stored backup is
// never refused.
func TestBackupBudget(t *testing.T) {
	e := banktest.New(t, bank.Config{BackupBurst: 2})
	ctx := context.Background()
	keys := make([]ed25519.PrivateKey, 3)
	for i := range keys {
		_, keys[i] = banktest.NewKey(t)
	}
	for _, k := range keys[:2] {
		id, up := api.SignBackup(k, 1, []byte("backup"))
		if _, err := e.Client.PutBackup(ctx, id, up); err != nil {
			t.Fatal(err)
		}
	}
	id, up := api.SignBackup(keys[2], 1, []byte("one too many"))
	r := call(t, e, http.MethodPut, "/v1/backups/"+id, "", up)
	wantError(t, r, http.StatusTooManyRequests, api.CodeRateLimited, "new backups")
	if r.header.Get("Retry-After") != "360" {
		t.Errorf("Retry-After %q, want 360", r.header.Get("Retry-After"))
	}
	if _, _, ok := getBackup(t, e, keys[2]); ok {
		t.Fatal("a refused new backup was stored")
	}
	body, _ := json.Marshal(up)
	cr := &countingReader{r: bytes.NewReader(body)}
	req := httptest.NewRequest(http.MethodPut, "/v1/backups/"+id, cr)
	req.RemoteAddr = "127.0.0.1:1" // the test server's clients' address
	rec := httptest.NewRecorder()
	e.Bank.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusTooManyRequests || cr.n != 0 {
		t.Fatalf("over the budget: %d, %d bytes of the body read; want 429 before reading", rec.Code, cr.n)
	}
	for v := int64(2); v <= 4; v++ {
		id0, up0 := api.SignBackup(keys[0], v, []byte("replaced"))
		if _, err := e.Client.PutBackup(ctx, id0, up0); err != nil {
			t.Fatalf("replacing a stored backup, version %d: %v", v, err)
		}
	}
	e.Clock.Advance(6 * time.Minute)
	if _, err := e.Client.PutBackup(ctx, id, up); err != nil {
		t.Fatalf("after the budget refilled: %v", err)
	}
}
