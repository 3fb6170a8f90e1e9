package main

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDiscoverEndToEnd finds payees by name over mDNS on the loopback
// interface only, so no packet leaves the machine. Names carry a tag of
// their own: other test processes may announce on loopback at once.
func TestDiscoverEndToEnd(t *testing.T) {
	lo := loopbackName(t)
	dir := t.TempDir()
	adminFile := filepath.Join(dir, "admin-token")
	_, url := startBank(t, "sqlite:"+filepath.Join(dir, "bank.db"), "127.0.0.1:0", adminFile)
	bankArgs := []string{"--bank", url, "--admin-token-file", adminFile}
	var alice account
	out := mustRun(t, nil, append([]string{"bank", "account", "create", "--json"}, bankArgs...)...)
	if err := json.Unmarshal([]byte(out), &alice); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, append([]string{"bank", "account", "credit", alice.ID, "2.00"}, bankArgs...)...)
	aliceDir, bobDir, carolDir := filepath.Join(dir, "alice"), filepath.Join(dir, "bob"), filepath.Join(dir, "carol")
	aliceEnv, bobEnv, carolEnv := []string{"OTPCASH_PIN=135791"}, []string{"OTPCASH_PIN=246802"}, []string{"OTPCASH_PIN=975310"}
	mustRun(t, aliceEnv, "wallet", "init", "--wallet", aliceDir, "--bank", url)
	mustRun(t, bobEnv, "wallet", "init", "--wallet", bobDir, "--bank", url)
	mustRun(t, carolEnv, "wallet", "init", "--wallet", carolDir, "--bank", url)
	mustRun(t, append(aliceEnv, "OTPCASH_TOKEN="+alice.Token), "wallet", "withdraw", "2", "--wallet", aliceDir, "--account", alice.ID)

	tag := strconv.FormatInt(time.Now().UnixNano(), 36)
	mdns := []string{"--interface", lo, "--discover-timeout", "1s"}
	receive := func(env []string, dir, name string, extra ...string) (*proc, string) {
		args := append([]string{"wallet", "receive", "--wallet", dir, "--listen", "127.0.0.1:0", "--yes", "--announce", name}, mdns...)
		p := start(t, env, append(args, extra...)...)
		addr := strings.TrimPrefix(p.waitFor(t, "listening on "), "listening on ")
		p.waitFor(t, "announcing")
		return p, addr
	}
	pay := func(to string) (string, string, error) {
		return run(t, aliceEnv, append([]string{"wallet", "pay", "1", "--wallet", aliceDir, "--to", to, "--yes"}, mdns...)...)
	}

	// A colon does not make a name an address.
	bobName := "Bob's stall: " + tag
	bob, bobAddr := receive(bobEnv, bobDir, bobName, "--once")

	var peers []struct {
		Name    string `json:"name"`
		Address string `json:"address"`
		Port    int    `json:"port"`
	}
	out = mustRun(t, nil, append([]string{"wallet", "peers", "--json"}, mdns...)...)
	if err := json.Unmarshal([]byte(out), &peers); err != nil {
		t.Fatalf("peers printed %q: %v", out, err)
	}
	seen := false
	for _, p := range peers {
		if p.Name == bobName {
			seen = net.JoinHostPort(p.Address, strconv.Itoa(p.Port)) == bobAddr
		}
	}
	if !seen {
		t.Errorf("peers = %s; want %q at %s", out, bobName, bobAddr)
	}

	for _, name := range []string{"nobody " + tag, "Bob's STALL: " + tag} {
		if _, errOut, err := pay(name); err == nil || !strings.Contains(errOut, "no receiver with that name") || !strings.Contains(errOut, name) {
			t.Errorf("pay --to %q: %v, stderr %q; want a refusal naming it", name, err, errOut)
		}
	}
	checkBalance(t, aliceEnv, aliceDir, balance{"EUR", 200, 0})

	payOut, errOut, err := pay(bobName)
	if err != nil {
		t.Fatalf("pay --to %q: %v\n%s", bobName, err, errOut)
	}
	if err := bob.cmd.Wait(); err != nil {
		t.Fatalf("receive --once: %v", err)
	}
	if !strings.Contains(payOut, "paid 1.00 EUR") || !strings.Contains(bob.stdout.String(), "received 1.00 EUR") || !strings.Contains(errOut, "found") {
		t.Errorf("pay printed %q %q, receive printed %q", payOut, errOut, bob.stdout.String())
	}

	// Someone announces the name a payee uses: the payer refuses to pick.
	twin := "Twin shop " + tag
	receive(bobEnv, bobDir, twin)
	receive(carolEnv, carolDir, twin)
	if _, errOut, err := pay(twin); err == nil || !strings.Contains(errOut, "two receivers announce that name") || !strings.Contains(errOut, twin) {
		t.Errorf("pay --to a name two receivers announce: %v, stderr %q; want a refusal", err, errOut)
	}
	checkBalance(t, aliceEnv, aliceDir, balance{"EUR", 100, 0})

	if _, errOut, err := run(t, bobEnv, append([]string{"wallet", "receive", "--wallet", bobDir, "--listen", "127.0.0.1:0", "--announce", "shop\x1b[2J"}, mdns...)...); err == nil || !strings.Contains(errOut, "invalid name") || strings.Contains(errOut, "listening") {
		t.Errorf("receive --announce with an escape sequence: %v, stderr %q; want a refusal before listening", err, errOut)
	}
}

func loopbackName(t *testing.T) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 && i.Flags&net.FlagUp != 0 {
			return i.Name
		}
	}
	t.Skip("no loopback interface")
	return ""
}
