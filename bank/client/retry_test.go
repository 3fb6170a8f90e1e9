package client

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"7", 7 * time.Second, true},
		{"0", 0, true},
		{"3600", time.Hour, true},
		{"99999999999999999999", 0, false}, // beyond uint64: malformed
		{"9999999999", maxRetryAfter, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), maxRetryAfter, true},
		{"", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{" 7", 0, false},
		{"soon", 0, false},
	} {
		if got, ok := retryAfter(tc.header, now); got != tc.want || ok != tc.ok {
			t.Errorf("Retry-After %q: %s, %v; want %s, %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"7", "0", "", "Fri, 04 Dec 2026 19:01:30 GMT", "-1", "18446744073709551615"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		got, ok := retryAfter(v, now)
		if got < 0 || got > maxRetryAfter || !ok && got != 0 || v == "" && ok {
			t.Fatalf("Retry-After %q: %s, %v", v, got, ok)
		}
	})
}
