package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestProgramsEndToEnd drives purpose-bound money through the CLI, each
// party its own process: merchant accounts with certified attributes, a
// grocery voucher refused offline at an electronics shop with the reason,
// paid to a grocer, and deposited.
func TestProgramsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	adminFile := filepath.Join(dir, "admin-token")
	bankProc, url := startBank(t, "sqlite:"+filepath.Join(dir, "bank.db"), "127.0.0.1:0", adminFile)
	t.Cleanup(func() { bankProc.cmd.Process.Kill(); bankProc.cmd.Wait() })
	bankArgs := []string{"--bank", url, "--admin-token-file", adminFile}
	newAccount := func(attrs ...string) account {
		args := append([]string{"bank", "account", "create", "--json"}, bankArgs...)
		for _, a := range attrs {
			args = append(args, "--attr", a)
		}
		var a account
		if err := json.Unmarshal([]byte(mustRun(t, nil, args...)), &a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	alice, shop, grocer := newAccount(), newAccount("category=electronics"), newAccount("category=grocery")
	mustRun(t, nil, append([]string{"bank", "account", "credit", alice.ID, "5"}, bankArgs...)...)

	pin := []string{"OTPCASH_PIN=123456"}
	wallets := map[string]string{}
	for name, a := range map[string]*account{"alice": nil, "shop": &shop, "grocer": &grocer} {
		wallets[name] = filepath.Join(dir, name)
		args := []string{"wallet", "init", "--wallet", wallets[name], "--bank", url}
		if a != nil {
			args = append(args, "--account", a.ID, "--token", a.Token)
		}
		mustRun(t, pin, args...)
	}
	mustRun(t, append(pin, "OTPCASH_TOKEN="+alice.Token), "wallet", "withdraw", "2", "--wallet", wallets["alice"], "--account", alice.ID, "--program", "grocery-voucher")

	payTo := func(payee string) (string, error) {
		p := start(t, pin, "wallet", "receive", "--wallet", wallets[payee], "--listen", "127.0.0.1:0", "--yes", "--once")
		addr := strings.TrimPrefix(p.waitFor(t, "listening on "), "listening on ")
		_, errOut, err := run(t, pin, "wallet", "pay", "1", "--wallet", wallets["alice"], "--to", addr, "--yes", "--program", "grocery-voucher")
		if err != nil {
			// A shop goes on serving after a payment that failed.
			p.waitFor(t, "payment session dropped")
			p.cmd.Process.Kill()
		}
		p.cmd.Wait()
		return errOut, err
	}
	errOut, err := payTo("shop")
	if err == nil || !strings.Contains(errOut, `payee.category = "electronics"`) {
		t.Fatalf("voucher at the electronics shop: %v, stderr %q; want a refusal naming the category", err, errOut)
	}
	var b struct {
		Held, PendingOut int64
	}
	if err := json.Unmarshal([]byte(mustRun(t, pin, "wallet", "balance", "--wallet", wallets["alice"], "--json")), &b); err != nil || b.Held != 200 || b.PendingOut != 0 {
		t.Fatalf("Alice after the refusal: %+v, %v; want both vouchers held", b, err)
	}
	if errOut, err := payTo("grocer"); err != nil {
		t.Fatalf("voucher at the grocer: %v\n%s", err, errOut)
	}
	out := mustRun(t, append(pin, "OTPCASH_TOKEN="+grocer.Token), "wallet", "deposit", "--wallet", wallets["grocer"], "--account", grocer.ID)
	if !strings.Contains(out, "deposited 1.00 EUR") {
		t.Fatalf("grocer's deposit printed %q", out)
	}
}
