package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRecoverEndToEnd runs the recovery through the CLI with separate
// processes: a wallet made with a phrase withdraws and backs up, its
// directory is deleted, and a new wallet from the phrase (read from a
// file) recovers from the backup. The bank's deadline is years away in a
// real bank, so every coin comes back pending and nothing is credited or
// payable; crediting after the deadline is TestRecoverLostWallet's
// (wallet package, with a test clock). A wrong phrase and a tampered
// backup are refused. The lost wallet also wrote its backup to a
// directory after every change and to the bank: the new wallet may not
// replace the bank's copy before it has recovered from it, and recovers
// from it without a file.
func TestRecoverEndToEnd(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "bank.db")
	adminFile := filepath.Join(dir, "admin-token")
	_, url := startBank(t, db, "127.0.0.1:0", adminFile)
	bankArgs := []string{"--bank", url, "--admin-token-file", adminFile}
	var a account
	if err := json.Unmarshal([]byte(mustRun(t, nil, append([]string{"bank", "account", "create", "--json"}, bankArgs...)...)), &a); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, append([]string{"bank", "account", "credit", a.ID, "3.00"}, bankArgs...)...)

	lost, fresh := filepath.Join(dir, "lost"), filepath.Join(dir, "fresh")
	env := []string{"OTPCASH_PIN=111111", "OTPCASH_TOKEN=" + a.Token}
	out := mustRun(t, env, "wallet", "init", "--wallet", lost, "--bank", url)
	lines := strings.Split(out, "\n")
	var phrase string
	for i, l := range lines {
		if strings.HasPrefix(l, "recovery phrase") && i+1 < len(lines) {
			phrase = lines[i+1]
		}
	}
	if len(strings.Fields(phrase)) != 24 {
		t.Fatalf("wallet init printed no 24-word phrase: %q", out)
	}
	backupDir := filepath.Join(dir, "backups")
	if err := os.Mkdir(backupDir, 0o700); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, "wallet", "withdraw", "3", "--wallet", lost, "--account", a.ID, "--backup-dir", backupDir)
	if files, _ := filepath.Glob(filepath.Join(backupDir, "otpcash-*.backup")); len(files) != 1 {
		t.Fatalf("the backup directory holds %v after the withdrawal, want one backup", files)
	}
	backup := filepath.Join(dir, "wallet.backup")
	mustRun(t, env, "wallet", "backup", "--wallet", lost, "--to", backup)
	if out := mustRun(t, env, "wallet", "backup", "--wallet", lost, "--to-bank"); !strings.Contains(out, "version 1") {
		t.Fatalf("backup --to-bank printed %q", out)
	}
	if raw, _ := os.ReadFile(backup); strings.Contains(string(raw), "EUR") {
		t.Fatal("the backup shows its coins in the clear")
	}
	if err := os.RemoveAll(lost); err != nil {
		t.Fatal(err)
	}

	phraseFile := filepath.Join(dir, "phrase")
	if err := os.WriteFile(phraseFile, []byte(phrase+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, "wallet", "init", "--wallet", fresh, "--bank", url, "--recover", phraseFile)
	if _, errOut, err := run(t, env, "wallet", "backup", "--wallet", fresh, "--to-bank"); err == nil || !strings.Contains(errOut, "newer backup") {
		t.Fatalf("the new wallet replaced the bank's copy before recovering from it: %v, %q", err, errOut)
	}

	wrongFile := filepath.Join(dir, "wrong")
	os.WriteFile(wrongFile, []byte(strings.Repeat("abandon ", 23)+"art"), 0o600)
	raw, _ := os.ReadFile(backup)
	raw[len(raw)-1] ^= 1
	tampered := filepath.Join(dir, "tampered.backup")
	os.WriteFile(tampered, raw, 0o600)
	for _, c := range []struct{ name, phrase, backup, want string }{
		{"wrong phrase", wrongFile, backup, "another wallet"},
		{"tampered backup", phraseFile, tampered, "authentication"},
	} {
		if _, errOut, err := run(t, env, "wallet", "recover", "--wallet", fresh, "--account", a.ID, "--phrase-file", c.phrase, "--backup", c.backup); err == nil || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: err %v, stderr %q; want a refusal naming %q", c.name, err, errOut, c.want)
		}
	}
	out = mustRun(t, env, "wallet", "recover", "--wallet", fresh, "--account", a.ID, "--phrase-file", phraseFile)
	if !strings.Contains(out, "recovered 0 coins") || !strings.Contains(out, " pending") || strings.Contains(out, "; 0 pending") {
		t.Errorf("recover from the bank's copy before the deadline printed %q; want every coin pending", out)
	}
	out = mustRun(t, env, "wallet", "recover", "--wallet", fresh, "--account", a.ID, "--phrase-file", phraseFile, "--backup", backup)
	if !strings.Contains(out, "recovered 0 coins") || !strings.Contains(out, " pending") || strings.Contains(out, "; 0 pending") {
		t.Errorf("recover before the deadline printed %q; want every coin pending", out)
	}
	if out := mustRun(t, env, "wallet", "balance", "--wallet", fresh); !strings.Contains(out, "recovering:  3.00 EUR") {
		t.Errorf("balance does not show the pending claims: %q", out)
	}
	mustRun(t, env, "wallet", "backup", "--wallet", fresh, "--to-bank")
	var b balance
	if err := json.Unmarshal([]byte(mustRun(t, env, "wallet", "balance", "--wallet", fresh, "--json")), &b); err != nil || b.Held != 0 {
		t.Errorf("the recovered wallet holds %d payable (%v)", b.Held, err)
	}
}
