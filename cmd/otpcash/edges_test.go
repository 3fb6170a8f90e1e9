package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
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

// TestReceiveSurvivesProbes: `wallet receive --once` at a shop goes on
// serving when a port probe, a scanner or a silent client connects, logs
// each without secrets, and exits after the one real payment; `wallet pay`
// gives up on a payee that never answers after its --timeout.
func TestReceiveSurvivesProbes(t *testing.T) {
	dir := t.TempDir()
	adminFile := filepath.Join(dir, "admin-token")
	_, url := startBank(t, "sqlite:"+filepath.Join(dir, "bank.db"), "127.0.0.1:0", adminFile)
	bankArgs := []string{"--bank", url, "--admin-token-file", adminFile}
	var alice account
	out := mustRun(t, nil, append([]string{"bank", "account", "create", "--json"}, bankArgs...)...)
	if err := json.Unmarshal([]byte(out), &alice); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, append([]string{"bank", "account", "credit", alice.ID, "1.00"}, bankArgs...)...)
	aliceDir, bobDir := filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	aliceEnv, bobEnv := []string{"OTPCASH_PIN=135791"}, []string{"OTPCASH_PIN=246802"}
	mustRun(t, aliceEnv, "wallet", "init", "--wallet", aliceDir, "--bank", url)
	mustRun(t, bobEnv, "wallet", "init", "--wallet", bobDir, "--bank", url)
	mustRun(t, append(aliceEnv, "OTPCASH_TOKEN="+alice.Token), "wallet", "withdraw", "1", "--wallet", aliceDir, "--account", alice.ID)

	// A payee that accepts and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	if _, errOut, err := run(t, aliceEnv, "wallet", "pay", "1", "--wallet", aliceDir, "--to", silent.Addr().String(), "--yes", "--timeout", "100ms"); err == nil || !strings.Contains(errOut, "deadline exceeded") {
		t.Errorf("pay to a silent payee: %v, stderr %q; want it to give up at its deadline", err, errOut)
	}

	payee := start(t, bobEnv, "wallet", "receive", "--wallet", bobDir, "--listen", "127.0.0.1:0", "--yes", "--once")
	addr := strings.TrimPrefix(payee.waitFor(t, "listening on "), "listening on ")
	for _, probe := range []string{"", "GET / HTTP/1.0\r\n\r\n", "\x00\x20" + strings.Repeat("x", 32)} {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write([]byte(probe))
		nc.Close()
		line := payee.waitFor(t, "handshake dropped")
		if !strings.Contains(line, "remote="+nc.LocalAddr().String()) || strings.Contains(line, "246802") {
			t.Errorf("receive logged %q: want the probe's address and no secret", line)
		}
	}
	payOut := mustRun(t, aliceEnv, "wallet", "pay", "1.00", "--wallet", aliceDir, "--to", addr, "--yes")
	if err := payee.cmd.Wait(); err != nil {
		t.Fatalf("receive --once after probes: %v", err)
	}
	if !strings.Contains(payOut, "paid 1.00 EUR") || !strings.Contains(payee.stdout.String(), "received 1.00 EUR") {
		t.Errorf("pay printed %q, receive printed %q", payOut, payee.stdout.String())
	}
}
