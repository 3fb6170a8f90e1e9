package vault

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCheckPIN(t *testing.T) {
	tests := []struct {
		pin string
		ok  bool
	}{
		{"", false},
		{"1", false},
		{"12345", false},
		{"123456", true},
		{"0000000000", true},
		{"abcdefg", false},
		{"abcdefgh", true},
		{"1234567a", true},
		{"12345 ab", true},
		{"ábcdéfg", false}, // 7 characters, 9 bytes
		{"ábcdéfgh", true},
		{"١٢٣٤٥٦", false}, // Arabic-Indic digits count as a passphrase
		{"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", false},
	}
	for _, tt := range tests {
		err := CheckPIN([]byte(tt.pin))
		if tt.ok && err != nil {
			t.Errorf("CheckPIN(%q) = %v, want nil", tt.pin, err)
		}
		if !tt.ok && !errors.Is(err, ErrWeakPIN) {
			t.Errorf("CheckPIN(%q) = %v, want ErrWeakPIN", tt.pin, err)
		}
	}
}

// TestCreateWeakPIN: a weak PIN is refused before anything is written.
func TestCreateWeakPIN(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wallet")
	for _, pin := range []string{"1", "12345", "abc"} {
		if _, err := Create(context.Background(), dir, []byte(pin), cheap); !errors.Is(err, ErrWeakPIN) {
			t.Fatalf("Create with PIN %q: %v, want ErrWeakPIN", pin, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused Create left %s: %v", dir, err)
	}
}

func TestPINDelay(t *testing.T) {
	for n, want := range map[int]time.Duration{
		0: 0, 4: 0, 5: time.Minute, 6: 2 * time.Minute, 7: 4 * time.Minute,
		10: 32 * time.Minute, 11: time.Hour, 1000: time.Hour,
	} {
		if got := pinDelay(n); got != want {
			t.Errorf("pinDelay(%d) = %v, want %v", n, got, want)
		}
	}
}

// TestWrongPINs: the software vault lets 5 wrong PINs pass, then makes
// every try, the right PIN too, wait a delay that doubles; the right PIN
// resets the count. The clock is the test's.
func TestWrongPINs(t *testing.T) {
	ctx := context.Background()
	_, dir := newVaultOn(t, Software)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	open := func(pin string) error {
		v, err := openWith(ctx, dir, []byte(pin), nil, clock)
		if err == nil {
			v.Close()
		}
		return err
	}
	wrongUntilLocked := func() {
		t.Helper()
		for i := range freeTries {
			if err := open("wrong horse"); !errors.Is(err, ErrWrongPIN) {
				t.Fatalf("wrong PIN %d: %v, want ErrWrongPIN", i+1, err)
			}
		}
		if err := open(string(testPIN)); !errors.Is(err, ErrLocked) {
			t.Fatalf("right PIN after %d wrong ones: %v, want ErrLocked", freeTries, err)
		}
	}
	wrongUntilLocked()
	now = now.Add(time.Minute - time.Second)
	if err := open(string(testPIN)); !errors.Is(err, ErrLocked) {
		t.Fatalf("right PIN before the delay ended: %v, want ErrLocked", err)
	}
	now = now.Add(time.Second)
	if err := open("wrong horse"); !errors.Is(err, ErrWrongPIN) {
		t.Fatalf("wrong PIN after the delay: %v, want ErrWrongPIN", err)
	}
	// 6 wrong: the next try waits 2 minutes.
	now = now.Add(2*time.Minute - time.Second)
	if err := open(string(testPIN)); !errors.Is(err, ErrLocked) {
		t.Fatalf("right PIN before the doubled delay ended: %v, want ErrLocked", err)
	}
	now = now.Add(time.Second)
	if err := open(string(testPIN)); err != nil {
		t.Fatalf("right PIN after the delay: %v", err)
	}
	// The right PIN cleared the count.
	wrongUntilLocked()
}

// TestWrongPINsTamperedCount: a count edited into nonsense locks, rather
// than freeing tries.
func TestWrongPINsTamperedCount(t *testing.T) {
	ctx := context.Background()
	v, dir := newVaultOn(t, Software)
	v.Close()
	db, err := openDB(filepath.Join(dir, dbName))
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{metaFailures: "-7", metaFailedAt: "0"} {
		if _, err := db.Exec(`INSERT INTO meta (name, value) VALUES (?, ?)`, name, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if _, err := Open(ctx, dir, testPIN); !errors.Is(err, ErrLocked) {
		t.Fatalf("open with a tampered count: %v, want ErrLocked", err)
	}
}
