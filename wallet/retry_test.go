package wallet

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank/client"
)

// limiter sits between a wallet and its bank and answers the next
// `refuse` POSTs to path as a bank over its budget does: 429 with a
// Retry-After. It lets everything else through.
type limiter struct {
	mu         sync.Mutex
	path       string
	retryAfter string
	refuse     int
	posts      int // POSTs to path seen
}

func (l *limiter) server(t testing.TB, bankURL string) *httptest.Server {
	return bankProxy(t, bankURL, func(w http.ResponseWriter, r *http.Request) bool {
		l.mu.Lock()
		mine := r.Method == http.MethodPost && r.URL.Path == l.path
		if mine {
			l.posts++
		}
		refuse := mine && l.refuse > 0
		if refuse {
			l.refuse--
		}
		l.mu.Unlock()
		if !refuse {
			return false
		}
		w.Header().Set("Retry-After", l.retryAfter)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte(`{"code":"rate_limited","message":"the certification budget of your address is spent"}`))
		return true
	})
}

// TestRetryAfter: a bank that refuses a refill or a withdrawal for now,
// saying when to retry, is waited for once, through the wallet's sleep
// (the test's, which returns at once), and asked again; refused again, or
// asking for a wait beyond maxRetryWait, or the caller giving up while
// the wallet waits, the error says so and nothing is added.
func TestRetryAfter(t *testing.T) {
	b := newTestBank(t)
	for _, tc := range []struct {
		name       string
		path       string
		retryAfter string
		refuse     int
		cancel     bool            // the caller gives up while the wallet waits
		slept      []time.Duration // the waits asked of the wallet's sleep
		posts      int
		want       error // nil: done
	}{
		{"refill, refused once", "/v1/exchange-keys", "7", 1, false, []time.Duration{7 * time.Second}, 2, nil},
		{"refill, refused twice", "/v1/exchange-keys", "7", 2, false, []time.Duration{7 * time.Second}, 2, client.ErrRetryLater},
		{"refill, a wait beyond the bound", "/v1/exchange-keys", "31", 1, false, nil, 1, client.ErrRetryLater},
		{"refill, the caller gives up", "/v1/exchange-keys", "7", 1, true, []time.Duration{7 * time.Second}, 1, context.Canceled},
		{"withdrawal, refused once", "/v1/withdrawals", "30", 1, false, []time.Duration{30 * time.Second}, 2, nil},
		{"withdrawal, refused twice", "/v1/withdrawals", "1", 2, false, []time.Duration{time.Second}, 2, client.ErrRetryLater},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			l := &limiter{path: tc.path, retryAfter: tc.retryAfter}
			w, err := Init(ctx, filepath.Join(t.TempDir(), "wallet"), l.server(t, b.url).URL, []byte("123456"), Options{PINHashing: cheap})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			id, token, err := b.CreateAccount(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Credit(ctx, id, 300); err != nil {
				t.Fatal(err)
			}
			var slept []time.Duration
			w.sleep = func(ctx context.Context, d time.Duration) error {
				slept = append(slept, d)
				if tc.cancel {
					cancel()
				}
				return ctx.Err()
			}
			keys, err := w.ExchangeKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			l.mu.Lock()
			l.refuse, l.posts = tc.refuse, 0
			l.mu.Unlock()

			var got int64
			if tc.path == "/v1/withdrawals" {
				var res WithdrawResult
				res, err = w.Withdraw(ctx, Account{ID: id, Token: token}, 300)
				got = res.Amount
			} else {
				var n int
				n, err = w.RefillKeys(ctx, keys+5)
				got = int64(n)
			}
			if tc.want == nil && (err != nil || got == 0) || tc.want != nil && (!errors.Is(err, tc.want) || got != 0) {
				t.Fatalf("got %d, %v; want %v", got, err, tc.want)
			}
			// Given up while waiting, the wallet says so, and asks nothing more.
			if tc.cancel && (!errors.Is(err, client.ErrRetryLater) || !strings.Contains(err.Error(), "waiting to retry")) {
				t.Fatalf("given up while waiting: %v; want the bank's answer and the wait cut short", err)
			}
			if !slices.Equal(slept, tc.slept) || l.posts != tc.posts {
				t.Fatalf("slept %v with %d requests to %s; want %v and %d", slept, l.posts, tc.path, tc.slept, tc.posts)
			}
			if tc.want != nil {
				bal, err := w.Balance(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if after, err := w.ExchangeKeys(context.Background()); err != nil || after != keys || bal.Held != 0 {
					t.Fatalf("after a refusal: %d exchange keys (had %d), %d held; %v", after, keys, bal.Held, err)
				}
			}
		})
	}
}

// TestSleepHonoursContext: the wallet's own wait ends when its caller
// gives up, not when the wait is over.
func TestSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("sleep with its context done: %v", err)
	}
}
