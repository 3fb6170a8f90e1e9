package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runIn runs otpcash to completion in the working directory dir.
func runIn(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestWalletInitRelative runs the README's `wallet init --wallet alice`:
// a relative wallet path, and the other forms a user types.
func TestWalletInitRelative(t *testing.T) {
	dir := t.TempDir()
	_, url := startBank(t, "sqlite:"+filepath.Join(dir, "bank.db"), "127.0.0.1:0", filepath.Join(dir, "admin-token"))
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{"OTPCASH_PIN=123456"}
	for _, w := range []string{"alice", "./bob", "my wallet", "what?#", filepath.Join(dir, "absolute")} {
		if out, err := runIn(t, work, env, "wallet", "init", "--wallet", w, "--bank", url); err != nil {
			t.Errorf("wallet init --wallet %q: %v\n%s", w, err, out)
			continue
		}
		if out, err := runIn(t, work, env, "wallet", "balance", "--wallet", w); err != nil || !strings.Contains(out, "held:") {
			t.Errorf("wallet balance --wallet %q: %v\n%s", w, err, out)
		}
		if _, err := os.Stat(filepath.Join(work, w, "vault.db")); err != nil && !filepath.IsAbs(w) {
			t.Errorf("no vault in %q: %v", w, err)
		}
	}
}

// TestShown: history text a peer wrote is printed escaped when any of it
// would act on the terminal rather than show.
func TestShown(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"2 coffees ☕, café", "2 coffees ☕, café"},
		{"", ""},
		{"x\x1b[2K\rreceive 1000.00 EUR", `"x\x1b[2K\rreceive 1000.00 EUR"`},
		{"paid \u202e00.1", `"paid \u202e00.1"`},
		{"a\u009bb", `"a\u009bb"`},
		{"a\x7f", `"a\x7f"`},
		{"a\nb", `"a\nb"`},
		{"caf\xe9", `"caf\xe9"`},
		{"\uFFFD", "\uFFFD"},
	} {
		if got := shown(tt.in); got != tt.want {
			t.Errorf("shown(%+q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
