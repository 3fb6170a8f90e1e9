package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otpcash/otpcash/internal/testtpm"
)

// TestTPMEndToEnd is the copied-wallet double spend through the CLI, with
// a TPM wallet: the backup of a wallet that has since paid, on the same
// TPM, and the wallet copied to another TPM, cannot even open, so they
// cannot pay. A weak PIN is refused at init.
func TestTPMEndToEnd(t *testing.T) {
	dir := t.TempDir()
	_, url := startBank(t, "sqlite:"+filepath.Join(dir, "bank.db"), "127.0.0.1:0", filepath.Join(dir, "admin-token"))
	bankArgs := []string{"--bank", url, "--admin-token-file", filepath.Join(dir, "admin-token")}
	var alice account
	if err := json.Unmarshal([]byte(mustRun(t, nil, append([]string{"bank", "account", "create", "--json"}, bankArgs...)...)), &alice); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, append([]string{"bank", "account", "credit", alice.ID, "10.00"}, bankArgs...)...)

	dev := testtpm.Start(t)
	aliceDir, bobDir := filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	aliceEnv, bobEnv := []string{"OTPCASH_PIN=111111"}, []string{"OTPCASH_PIN=222222"}
	if _, errOut, err := run(t, []string{"OTPCASH_PIN=1"}, "wallet", "init", "--wallet", aliceDir, "--bank", url, "--vault", "tpm", "--tpm", dev); err == nil || !strings.Contains(errOut, "at least 6 digits") {
		t.Fatalf("init with PIN 1: err %v, stderr %q; want the PIN policy", err, errOut)
	}
	if _, err := os.Stat(aliceDir); !os.IsNotExist(err) {
		t.Fatalf("a refused init left %s: %v", aliceDir, err)
	}
	mustRun(t, aliceEnv, "wallet", "init", "--wallet", aliceDir, "--bank", url, "--vault", "tpm", "--tpm", dev)
	mustRun(t, bobEnv, "wallet", "init", "--wallet", bobDir, "--bank", url)
	mustRun(t, append(aliceEnv, "OTPCASH_TOKEN="+alice.Token), "wallet", "withdraw", "10", "--wallet", aliceDir, "--account", alice.ID)
	backup := filepath.Join(dir, "backup")
	if err := os.CopyFS(backup, os.DirFS(aliceDir)); err != nil {
		t.Fatal(err)
	}

	payee := start(t, bobEnv, "wallet", "receive", "--wallet", bobDir, "--listen", "127.0.0.1:0", "--yes", "--once")
	payeeAddr := strings.TrimPrefix(payee.waitFor(t, "listening on "), "listening on ")
	mustRun(t, aliceEnv, "wallet", "pay", "7.00", "--wallet", aliceDir, "--to", payeeAddr, "--yes")
	if err := payee.cmd.Wait(); err != nil {
		t.Fatalf("receive --once: %v", err)
	}

	for _, c := range []struct {
		name, want string
		env        []string
	}{
		{"the backup, on the same TPM", "older than the TPM's record", aliceEnv},
		{"the backup, on another TPM", "bound to another TPM", append(aliceEnv, "OTPCASH_TPM="+testtpm.Start(t))},
	} {
		if _, errOut, err := run(t, c.env, "wallet", "pay", "3.00", "--wallet", backup, "--to", "127.0.0.1:1", "--yes"); err == nil || !strings.Contains(errOut, c.want) {
			t.Errorf("pay from %s: err %v, stderr %q; want %q", c.name, err, errOut, c.want)
		}
	}
	var b balance
	if err := json.Unmarshal([]byte(mustRun(t, aliceEnv, "wallet", "balance", "--wallet", aliceDir, "--json")), &b); err != nil || b != (balance{"EUR", 300, 0}) {
		t.Errorf("alice's balance %+v, %v; want 3.00 held", b, err)
	}
}

// TestTPMSetup sets a swtpm's dictionary-attack parameters through the
// CLI, the recommended ones and then others, as the TPM reports them back,
// and refuses numbers that would lock every TPM wallet out.
func TestTPMSetup(t *testing.T) {
	dev := testtpm.Start(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "max tries 10, recovery 10m0s, lockout recovery 24h0m0s"},
		{[]string{"--max-tries", "32", "--recovery", "30s", "--lockout-recovery", "1h"}, "max tries 32, recovery 30s, lockout recovery 1h0m0s"},
	} {
		if out := mustRun(t, nil, append([]string{"tpm", "setup", "--tpm", dev}, c.args...)...); !strings.Contains(out, c.want) {
			t.Errorf("tpm setup %q printed %q, want %q", c.args, out, c.want)
		}
	}
	if _, errOut, err := run(t, nil, "tpm", "setup", "--tpm", dev, "--max-tries", "0"); err == nil || !strings.Contains(errOut, "max tries 0") {
		t.Errorf("tpm setup --max-tries 0: err %v, stderr %q", err, errOut)
	}
}
