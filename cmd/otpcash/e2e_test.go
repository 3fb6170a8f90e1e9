package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otpcash/otpcash/internal/testtpm"
)

// The end-to-end tests run the real binary: the bank, the payer and the
// payee are separate processes talking over loopback.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "otpcash-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "otpcash")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("build otpcash: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running otpcash process whose stderr is scanned for a line.
type proc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	lines  chan string
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startBinary(t, binary, env, args...)
}

func startBinary(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), lines: make(chan string, 100)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = &p.stdout
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	return p
}

// waitFor returns the first stderr line containing marker.
func (p *proc) waitFor(t *testing.T, marker string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("%v exited before printing %q", p.cmd.Args, marker)
			}
			if strings.Contains(l, marker) {
				return l
			}
		case <-timeout:
			t.Fatalf("%v did not print %q", p.cmd.Args, marker)
		}
	}
}

// run runs otpcash to completion and returns stdout, stderr and the error.
func run(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func mustRun(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, errOut, err := run(t, env, args...)
	if err != nil {
		t.Fatalf("otpcash %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

type account struct {
	ID    string `json:"id"`
	Token string `json:"token"`
}

type balance struct {
	Currency   string `json:"currency"`
	Held       int64  `json:"held"`
	PendingOut int64  `json:"pendingOut"`
}

func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "bank.db")
	adminFile := filepath.Join(dir, "admin-token")
	bankProc, url := startBank(t, db, "127.0.0.1:0", adminFile)

	if fi, err := os.Stat(adminFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file: %v, mode %v; want mode 0600", err, fi.Mode())
	}
	bankArgs := []string{"--bank", url, "--admin-token-file", adminFile}
	newAccount := func() account {
		var a account
		out := mustRun(t, nil, append([]string{"bank", "account", "create", "--json"}, bankArgs...)...)
		if err := json.Unmarshal([]byte(out), &a); err != nil || a.ID == "" || a.Token == "" {
			t.Fatalf("account create printed %q: %v", out, err)
		}
		return a
	}
	alice, bob := newAccount(), newAccount()
	mustRun(t, nil, append([]string{"bank", "account", "credit", alice.ID, "10.00"}, bankArgs...)...)

	aliceDir, bobDir := filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	aliceEnv, bobEnv := []string{"OTPCASH_PIN=111111"}, []string{"OTPCASH_PIN=222222"}
	mustRun(t, aliceEnv, "wallet", "init", "--wallet", aliceDir, "--bank", url)
	mustRun(t, bobEnv, "wallet", "init", "--wallet", bobDir, "--bank", url)
	mustRun(t, append(aliceEnv, "OTPCASH_TOKEN="+alice.Token), "wallet", "withdraw", "10", "--wallet", aliceDir, "--account", alice.ID)

	if _, errOut, err := run(t, []string{"OTPCASH_PIN=999999"}, "wallet", "balance", "--wallet", aliceDir); err == nil || !strings.Contains(strings.ToLower(errOut), "pin") {
		t.Errorf("wrong PIN: err %v, stderr %q; want a failure naming the PIN", err, errOut)
	}
	// A PIN change: a weak new PIN is refused, a good one replaces the old.
	if _, errOut, err := run(t, append(aliceEnv, "OTPCASH_NEW_PIN=12345"), "wallet", "pin", "--wallet", aliceDir); err == nil || !strings.Contains(errOut, "too weak") {
		t.Errorf("change to a weak PIN: err %v, stderr %q", err, errOut)
	}
	if out := mustRun(t, append(aliceEnv, "OTPCASH_NEW_PIN=333333"), "wallet", "pin", "--wallet", aliceDir); !strings.Contains(out, "PIN changed") {
		t.Errorf("wallet pin printed %q", out)
	}
	if _, errOut, err := run(t, aliceEnv, "wallet", "balance", "--wallet", aliceDir); err == nil || !strings.Contains(strings.ToLower(errOut), "pin") {
		t.Errorf("the old PIN after the change: err %v, stderr %q; want a failure naming the PIN", err, errOut)
	}
	aliceEnv = []string{"OTPCASH_PIN=333333"}
	if _, errOut, err := run(t, aliceEnv, "wallet", "pay", "11", "--wallet", aliceDir, "--to", "127.0.0.1:1", "--yes"); err == nil || !strings.Contains(errOut, "insufficient") {
		t.Errorf("paying more than held: err %v, stderr %q", err, errOut)
	}

	payee := start(t, bobEnv, "wallet", "receive", "--wallet", bobDir, "--listen", "127.0.0.1:0", "--yes", "--once")
	payeeAddr := strings.TrimPrefix(payee.waitFor(t, "listening on "), "listening on ")
	payOut := mustRun(t, aliceEnv, "wallet", "pay", "7.00", "--wallet", aliceDir, "--to", payeeAddr, "--yes")
	if err := payee.cmd.Wait(); err != nil {
		t.Fatalf("receive --once: %v", err)
	}
	if !strings.Contains(payOut, "paid 7.00 EUR in 2 coins") || !strings.Contains(payee.stdout.String(), "received 7.00 EUR") {
		t.Errorf("pay printed %q, receive printed %q", payOut, payee.stdout.String())
	}

	for _, c := range []struct {
		env  []string
		dir  string
		want balance
	}{
		{aliceEnv, aliceDir, balance{"EUR", 300, 0}},
		{bobEnv, bobDir, balance{"EUR", 700, 0}},
	} {
		var b balance
		out := mustRun(t, c.env, "wallet", "balance", "--wallet", c.dir, "--json")
		if err := json.Unmarshal([]byte(out), &b); err != nil || b != c.want {
			t.Errorf("balance of %s = %q (%v); want %+v", filepath.Base(c.dir), out, err, c.want)
		}
	}

	// Bob's two coins (5.00 and 2.00) for the mix a withdrawal of 7.00
	// gives, with small coins for change; then again under the old name,
	// kept for a release, with nothing left to do.
	bobTok := append(bobEnv, "OTPCASH_TOKEN="+bob.Token)
	var rd struct{ Value, In, Out int64 }
	out := mustRun(t, bobTok, "wallet", "redenominate", "--wallet", bobDir, "--account", bob.ID, "--json")
	if err := json.Unmarshal([]byte(out), &rd); err != nil || rd.Value == 0 || rd.In == 0 || rd.Out == 0 {
		t.Errorf("wallet redenominate printed %q (%v); want coins swapped", out, err)
	}
	if out, errOut, err := run(t, bobTok, "wallet", "exchange", "--wallet", bobDir, "--account", bob.ID); err != nil ||
		!strings.Contains(out, "nothing re-denominated") || !strings.Contains(errOut, `"wallet exchange" is deprecated`) {
		t.Errorf("wallet exchange (deprecated): %v, stdout %q, stderr %q", err, out, errOut)
	}
	if help := mustRun(t, nil, "wallet", "--help"); !strings.Contains(help, "\n  redenominate ") || strings.Contains(help, "\n  exchange ") {
		t.Errorf("wallet --help lists the deprecated exchange, or not redenominate:\n%s", help)
	}

	mustRun(t, bobTok, "wallet", "deposit", "--wallet", bobDir, "--account", bob.ID)
	if out, _, err := run(t, append(bobEnv, "OTPCASH_TOKEN="+bob.Token), "wallet", "deposit", "--wallet", bobDir, "--account", bob.ID); err != nil || !strings.Contains(out, "0 coins") {
		t.Errorf("second deposit with nothing held: %v, %q", err, out)
	}
	if _, _, err := run(t, append(aliceEnv, "OTPCASH_TOKEN=wrong"), "wallet", "deposit", "--wallet", aliceDir, "--account", alice.ID); err == nil {
		t.Errorf("deposit with a wrong bearer token succeeded")
	}
	mustRun(t, append(aliceEnv, "OTPCASH_TOKEN="+alice.Token), "wallet", "deposit", "--wallet", aliceDir, "--account", alice.ID)

	history := mustRun(t, bobEnv, "wallet", "history", "--wallet", bobDir, "--json")
	for _, kind := range []string{"receive", "redenominate", "deposit"} {
		if !strings.Contains(history, `"`+kind+`"`) {
			t.Errorf("Bob's history lacks a %s: %s", kind, history)
		}
	}

	if err := bankProc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := bankProc.cmd.Wait(); err != nil {
		t.Errorf("bank after SIGTERM: %v; want a clean exit", err)
	}
	audit := mustRun(t, nil, "bank", "audit", "--db", db)
	if !strings.Contains(strings.ToLower(audit), "ok") {
		t.Errorf("audit printed %q", audit)
	}
}

func TestDemo(t *testing.T) {
	out, errOut, err := run(t, nil, "demo")
	if err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(out, "All checks passed.") {
		t.Fatalf("demo did not finish its checks:\n%s", out)
	}
}

// TestDemoTPM runs the demo with every wallet sealed to a swtpm of its
// own, and checks that without swtpm it says how to get one.
func TestDemoTPM(t *testing.T) {
	testtpm.Require(t)
	out, errOut, err := run(t, nil, "demo", "--vault", "tpm")
	if err != nil {
		t.Fatalf("demo --vault tpm: %v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(out, "sealed to a TPM 2.0 of its own") || !strings.Contains(out, "All checks passed.") {
		t.Fatalf("demo --vault tpm did not finish its checks on TPM wallets:\n%s", out)
	}
	_, errOut, err = run(t, []string{"PATH=" + t.TempDir()}, "demo", "--vault", "tpm")
	if err == nil || !strings.Contains(errOut, "swtpm not found; install the swtpm and swtpm-tools packages") {
		t.Fatalf("demo --vault tpm without swtpm: %v\n%s", err, errOut)
	}
}

// TestRefusedCoinsEndToEnd double-spends through the CLI: a copied wallet
// pays the same coins to two payees, the second payee's deposit is refused,
// and that payee's wallet then shows the coins as refused, not held, will
// not pay with them, and says why in its history.
func TestRefusedCoinsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	adminFile := filepath.Join(dir, "admin-token")
	_, url := startBank(t, "sqlite:"+filepath.Join(dir, "bank.db"), "127.0.0.1:0", adminFile)
	bankArgs := []string{"--bank", url, "--admin-token-file", adminFile}
	newAccount := func() account {
		var a account
		out := mustRun(t, nil, append([]string{"bank", "account", "create", "--json"}, bankArgs...)...)
		if err := json.Unmarshal([]byte(out), &a); err != nil || a.ID == "" {
			t.Fatalf("account create printed %q: %v", out, err)
		}
		return a
	}
	alice, bob, carol := newAccount(), newAccount(), newAccount()
	mustRun(t, nil, append([]string{"bank", "account", "credit", alice.ID, "3.00"}, bankArgs...)...)
	env := []string{"OTPCASH_PIN=111111"}
	wallets := map[string]string{}
	for _, name := range []string{"alice", "bob", "carol"} {
		wallets[name] = filepath.Join(dir, name)
		mustRun(t, env, "wallet", "init", "--wallet", wallets[name], "--bank", url)
	}
	mustRun(t, append(env, "OTPCASH_TOKEN="+alice.Token), "wallet", "withdraw", "3", "--wallet", wallets["alice"], "--account", alice.ID)
	wallets["copy"] = filepath.Join(dir, "copy")
	if err := os.CopyFS(wallets["copy"], os.DirFS(wallets["alice"])); err != nil {
		t.Fatal(err)
	}
	payTo := func(from, to string) {
		t.Helper()
		payee := start(t, env, "wallet", "receive", "--wallet", wallets[to], "--listen", "127.0.0.1:0", "--yes", "--once")
		addr := strings.TrimPrefix(payee.waitFor(t, "listening on "), "listening on ")
		mustRun(t, env, "wallet", "pay", "3.00", "--wallet", wallets[from], "--to", addr, "--yes")
		if err := payee.cmd.Wait(); err != nil {
			t.Fatalf("receive --once: %v", err)
		}
	}
	payTo("alice", "bob")
	payTo("copy", "carol")
	mustRun(t, append(env, "OTPCASH_TOKEN="+bob.Token), "wallet", "deposit", "--wallet", wallets["bob"], "--account", bob.ID)
	out, _, err := run(t, append(env, "OTPCASH_TOKEN="+carol.Token), "wallet", "deposit", "--wallet", wallets["carol"], "--account", carol.ID)
	if err == nil || !strings.Contains(out, "double_deposit") {
		t.Fatalf("Carol's deposit: %v, %q; want refused as a double deposit", err, out)
	}

	var b struct {
		balance
		Refused      int64 `json:"refused"`
		RefusedCoins int   `json:"refusedCoins"`
	}
	out = mustRun(t, env, "wallet", "balance", "--wallet", wallets["carol"], "--json")
	if err := json.Unmarshal([]byte(out), &b); err != nil || b.Held != 0 || b.Refused != 300 || b.RefusedCoins == 0 {
		t.Errorf("Carol's balance = %q (%v); want nothing held, 3.00 refused", out, err)
	}
	if out := mustRun(t, env, "wallet", "balance", "--wallet", wallets["carol"]); !strings.Contains(out, "refused:     3.00 EUR") {
		t.Errorf("Carol's balance printed %q; want the refused value", out)
	}
	if _, errOut, err := run(t, env, "wallet", "pay", "1.00", "--wallet", wallets["carol"], "--to", "127.0.0.1:1", "--yes"); err == nil || !strings.Contains(errOut, "insufficient") {
		t.Errorf("paying with refused coins: %v, %q; want insufficient funds", err, errOut)
	}
	if out := mustRun(t, env, "wallet", "history", "--wallet", wallets["carol"]); !strings.Contains(out, "refused") || !strings.Contains(out, "double_deposit") {
		t.Errorf("Carol's history lacks the refusal:\n%s", out)
	}
}

// TestMetricsListener: bank serve --metrics-addr serves /metrics there and
// only there; the API port answers 404, even to the admin.
func TestMetricsListener(t *testing.T) {
	dir := t.TempDir()
	adminFile := filepath.Join(dir, "admin-token")
	p := start(t, nil, "bank", "serve", "--db", "sqlite:"+filepath.Join(dir, "bank.db"), "--listen", "127.0.0.1:0",
		"--admin-token-file", adminFile, "--metrics-addr", "127.0.0.1:0")
	urls := map[bool]string{} // by whether it is the metrics listener
	for range 2 {
		line := p.waitFor(t, "msg=listening")
		addr := strings.Fields(line[strings.Index(line, "addr=")+len("addr="):])[0]
		urls[strings.Contains(line, "server=metrics")] = "http://" + strings.Trim(addr, `"`) + "/metrics"
	}
	admin, err := os.ReadFile(adminFile)
	if err != nil {
		t.Fatal(err)
	}
	get := func(url, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	if code, body := get(urls[true], ""); code != 200 || !strings.Contains(body, "otpcash_bank_coins_issued_total 0") {
		t.Errorf("metrics listener: %d %.200s", code, body)
	}
	for _, token := range []string{"", strings.TrimSpace(string(admin))} {
		if code, body := get(urls[false], token); code != 404 {
			t.Errorf("API port /metrics with token %t: %d %.200s; want 404", token != "", code, body)
		}
	}
}
