package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestTwoPassEndToEnd drives a payment without a live link through the
// CLI: Erin's wallet makes a request, Alice's pays it with a token, Erin's
// takes the token and prints a receipt, Alice's imports it. Each step is
// its own process, and the bank is stopped first: no process listens on
// any socket while the money moves; codes travel as files and pipes.
func TestTwoPassEndToEnd(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "bank.db")
	adminFile := filepath.Join(dir, "admin-token")
	bankProc, url := startBank(t, db, "127.0.0.1:0", adminFile)
	bankArgs := []string{"--bank", url, "--admin-token-file", adminFile}
	var alice account
	if err := json.Unmarshal([]byte(mustRun(t, nil, append([]string{"bank", "account", "create", "--json"}, bankArgs...)...)), &alice); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, append([]string{"bank", "account", "credit", alice.ID, "10.00"}, bankArgs...)...)
	aliceDir, erinDir := filepath.Join(dir, "alice"), filepath.Join(dir, "erin")
	aliceEnv, erinEnv := []string{"OTPCASH_PIN=111111"}, []string{"OTPCASH_PIN=333333"}
	mustRun(t, aliceEnv, "wallet", "init", "--wallet", aliceDir, "--bank", url)
	mustRun(t, erinEnv, "wallet", "init", "--wallet", erinDir, "--bank", url)
	mustRun(t, append(aliceEnv, "OTPCASH_TOKEN="+alice.Token), "wallet", "withdraw", "10", "--wallet", aliceDir, "--account", alice.ID)
	if err := bankProc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := bankProc.cmd.Wait(); err != nil {
		t.Fatalf("bank after SIGTERM: %v", err)
	}

	reqFile, tokFile, rcpFile := filepath.Join(dir, "req.txt"), filepath.Join(dir, "tok.txt"), filepath.Join(dir, "rcp.txt")
	req := mustRun(t, erinEnv, "wallet", "request", "7.00", "--wallet", erinDir, "--memo", "two coffees",
		"--expires", "10m", "--out", reqFile, "--qr-png", filepath.Join(dir, "req.png"))
	if !strings.HasPrefix(req, "OTPCASHREQ1") {
		t.Fatalf("request printed %q", req)
	}
	if pngs, _ := filepath.Glob(filepath.Join(dir, "req*.png")); len(pngs) == 0 {
		t.Fatal("no PNG QR code of the request")
	}
	tok := mustRun(t, aliceEnv, "wallet", "pay", "--request", reqFile, "--wallet", aliceDir, "--out", tokFile)
	if !strings.HasPrefix(tok, "OTPCASHTOK1") {
		t.Fatalf("pay printed %q", tok)
	}
	checkBalance(t, aliceEnv, aliceDir, balance{"EUR", 300, 700})

	// The token through standard input.
	rcp := runStdin(t, erinEnv, tok, "wallet", "receive", "--token", "-", "--wallet", erinDir, "--out", rcpFile)
	if !strings.HasPrefix(rcp, "OTPCASHRCP1") {
		t.Fatalf("receive printed %q", rcp)
	}
	checkBalance(t, erinEnv, erinDir, balance{"EUR", 700, 0})
	// Erin's screen went dark before Alice saw the receipt: the token
	// again prints the same receipt and receives nothing more.
	if again := mustRun(t, erinEnv, "wallet", "receive", "--token", tokFile, "--wallet", erinDir); again != rcp {
		t.Fatalf("the token again printed %q, want the same receipt", again)
	}
	checkBalance(t, erinEnv, erinDir, balance{"EUR", 700, 0})

	if out := mustRun(t, aliceEnv, "wallet", "receipt", rcpFile, "--wallet", aliceDir); !strings.Contains(out, "7.00 EUR in 2 coins spent") {
		t.Fatalf("receipt printed %q", out)
	}
	if out := mustRun(t, aliceEnv, "wallet", "receipt", rcpFile, "--wallet", aliceDir); !strings.Contains(out, "imported before") {
		t.Fatalf("receipt again printed %q", out)
	}
	checkBalance(t, aliceEnv, aliceDir, balance{"EUR", 300, 0})

	// A token for a request Alice's own wallet never made is refused.
	if _, errOut, err := run(t, aliceEnv, "wallet", "receive", "--token", tokFile, "--wallet", aliceDir); err == nil || !strings.Contains(errOut, "unknown payment request") {
		t.Errorf("a token for another payee: %v, %q", err, errOut)
	}
	if audit := mustRun(t, nil, "bank", "audit", "--db", db); !strings.Contains(strings.ToLower(audit), "ok") {
		t.Errorf("audit printed %q", audit)
	}
}

func checkBalance(t *testing.T, env []string, dir string, want balance) {
	t.Helper()
	var b balance
	out := mustRun(t, env, "wallet", "balance", "--wallet", dir, "--json")
	if err := json.Unmarshal([]byte(out), &b); err != nil || b != want {
		t.Fatalf("balance of %s = %q (%v); want %+v", filepath.Base(dir), out, err, want)
	}
}

// runStdin runs otpcash with in on its standard input and returns its
// standard output.
func runStdin(t *testing.T, env []string, in string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("otpcash %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}
