package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/otpcash/otpcash/bank/client"
	"github.com/otpcash/otpcash/internal/fault"
	"github.com/otpcash/otpcash/otp"
)

var (
	faultyOnce   sync.Once
	faultyBinary string
	faultyErr    error
)

// faulty returns otpcash built with the faultinject tag: the only build in
// which OTPCASH_FAULT kills the process.
func faulty(t *testing.T) string {
	t.Helper()
	faultyOnce.Do(func() {
		faultyBinary = filepath.Join(filepath.Dir(binary), "otpcash-faulty")
		out, err := exec.Command("go", "build", "-tags", "faultinject", "-o", faultyBinary, ".").CombinedOutput()
		if err != nil {
			faultyErr = fmt.Errorf("build with faultinject: %v\n%s", err, out)
		}
	})
	if faultyErr != nil {
		t.Fatal(faultyErr)
	}
	return faultyBinary
}

// killed reports whether err is the exit of a process that SIGKILL ended.
func killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// crashWorld is one bank and two wallets driven through the faulty binary.
type crashWorld struct {
	t                  *testing.T
	bin, url           string
	db, listen         string
	adminFile          string
	bankArgs           []string // extra arguments of bank serve
	bank               *proc
	alice, bob         string // wallet directories
	aliceAcct, bobAcct account
	withdrawn          int64
}

func (w *crashWorld) env(dir string, extra ...string) []string {
	e := []string{"OTPCASH_PIN=pin-of-" + filepath.Base(dir)}
	return append(e, extra...)
}

// cli runs the faulty binary and returns its error (nil, a failure, or a kill).
func (w *crashWorld) cli(env []string, args ...string) (string, error) {
	cmd := exec.Command(w.bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (w *crashWorld) must(env []string, args ...string) string {
	w.t.Helper()
	out, err := w.cli(env, args...)
	if err != nil {
		w.t.Fatalf("otpcash %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// pay runs one session from one wallet directory to the other; point, if
// not empty, is where one side dies.
func (w *crashWorld) pay(from, to, value, point string) (payErr, recvErr error) {
	var payerFault, payeeFault []string
	switch {
	case strings.HasPrefix(point, "payer/"):
		payerFault = []string{fault.Env + "=" + point}
	case strings.HasPrefix(point, "payee/"):
		payeeFault = []string{fault.Env + "=" + point}
	}
	payee := startBinary(w.t, w.bin, w.env(to, payeeFault...), "wallet", "receive", "--wallet", to, "--listen", "127.0.0.1:0", "--yes", "--once")
	addr := strings.TrimPrefix(payee.waitFor(w.t, "listening on "), "listening on ")
	_, payErr = w.cli(w.env(from, payerFault...), "wallet", "pay", value, "--wallet", from, "--to", addr, "--yes")
	return payErr, waitPayee(w.t, payee, payErr)
}

// waitPayee waits for a payee process. A payee whose payer was killed
// drops the broken session and goes on serving, as a shop's terminal
// must: once it has said so it is killed, the shop closing. A payer
// refused before it dialled (too little to pay) leaves the payee waiting
// for a session: after a grace period it is killed, and the refusal is
// the outcome.
func waitPayee(t *testing.T, payee *proc, payErr error) error {
	if killed(payErr) {
		payee.waitFor(t, "payment session dropped")
		payee.cmd.Process.Kill()
	}
	if payErr != nil && !killed(payErr) {
		stop := time.AfterFunc(10*time.Second, func() { payee.cmd.Process.Kill() })
		defer stop.Stop()
	}
	return payee.cmd.Wait()
}

type walletBalance struct {
	Held       int64 `json:"held"`
	PendingOut int64 `json:"pendingOut"`
}

func (w *crashWorld) balance(dir string) walletBalance {
	w.t.Helper()
	var b walletBalance
	out := w.must(w.env(dir), "wallet", "balance", "--wallet", dir, "--json")
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		w.t.Fatalf("balance: %q: %v", out, err)
	}
	return b
}

// conserved checks that every coin withdrawn is in exactly one wallet, held
// or pending-out, and that nothing is left pending-out once the wallets
// have met again.
func (w *crashWorld) conserved(after string) (alice, bob walletBalance) {
	w.t.Helper()
	a, b := w.balance(w.alice), w.balance(w.bob)
	if a.Held+b.Held != w.withdrawn || a.PendingOut != 0 || b.PendingOut != 0 {
		w.t.Fatalf("after %s: Alice %+v, Bob %+v; want %d in all and nothing pending-out", after, a, b, w.withdrawn)
	}
	return a, b
}

func newCrashWorld(t *testing.T, bankArgs ...string) *crashWorld {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &crashWorld{t: t, bin: faulty(t), alice: filepath.Join(dir, "alice"), bob: filepath.Join(dir, "bob"),
		db: "sqlite:" + filepath.Join(dir, "bank.db"), listen: ln.Addr().String(), adminFile: filepath.Join(dir, "admin-token"),
		bankArgs: bankArgs}
	ln.Close()
	w.restartBank("")
	t.Cleanup(func() { w.bank.cmd.Process.Kill(); w.bank.cmd.Wait() })
	admin := []string{"--bank", w.url, "--admin-token-file", w.adminFile}
	for _, a := range []*account{&w.aliceAcct, &w.bobAcct} {
		out := w.must(nil, append([]string{"bank", "account", "create", "--json"}, admin...)...)
		if err := json.Unmarshal([]byte(out), a); err != nil {
			t.Fatal(err)
		}
	}
	w.must(nil, append([]string{"bank", "account", "credit", w.aliceAcct.ID, "1000"}, admin...)...)
	w.must(w.env(w.alice), "wallet", "init", "--wallet", w.alice, "--bank", w.url)
	w.must(w.env(w.bob), "wallet", "init", "--wallet", w.bob, "--bank", w.url, "--keys", "1000")
	return w
}

// restartBank stops the bank, if one runs, and starts the faulty binary on
// the same database and address, set to die at point ("" for never).
func (w *crashWorld) restartBank(point string) {
	w.t.Helper()
	if w.bank != nil && w.bank.cmd.ProcessState == nil {
		w.bank.cmd.Process.Kill()
		w.bank.cmd.Wait()
	}
	var env []string
	if point != "" {
		env = []string{fault.Env + "=" + point}
	}
	w.bank = startBinary(w.t, w.bin, env, append([]string{"bank", "serve", "--db", w.db, "--listen", w.listen, "--admin-token-file", w.adminFile}, w.bankArgs...)...)
	w.bank.waitFor(w.t, "listening")
	w.url = "http://" + w.listen
}

func (w *crashWorld) withdraw(value, point string) error {
	return w.withdrawTo(w.alice, w.aliceAcct, value, point)
}

func (w *crashWorld) withdrawTo(dir string, a account, value, point string) error {
	env := w.env(dir, "OTPCASH_TOKEN="+a.Token)
	if point != "" {
		env = append(env, fault.Env+"="+point)
	}
	_, err := w.cli(env, "wallet", "withdraw", value, "--wallet", dir, "--account", a.ID)
	return err
}

// settle has from meet to again, only to deliver what is in flight.
func (w *crashWorld) settle(from, to string) (settleErr, recvErr error) {
	payee := startBinary(w.t, w.bin, w.env(to), "wallet", "receive", "--wallet", to, "--listen", "127.0.0.1:0", "--yes", "--once")
	addr := strings.TrimPrefix(payee.waitFor(w.t, "listening on "), "listening on ")
	_, settleErr = w.cli(w.env(from), "wallet", "settle", "--wallet", from, "--to", addr, "--yes")
	return settleErr, waitPayee(w.t, payee, settleErr)
}

// TestCrashAtEveryPoint kills one side of a payment at each fault point in
// turn, lets the two wallets meet again, and checks that every coin is
// accounted for; then kills the online steps, deposits everything and
// checks the bank's books.
func TestCrashAtEveryPoint(t *testing.T) {
	if testing.Short() {
		t.Skip("crash harness skipped in -short mode")
	}
	// The paper's 1.00 coins: every payment is exact (change in flight
	// has TestCrashChange).
	w := newCrashWorld(t, "--denominations", "1")
	if err := w.withdraw("30", fault.WalletWithdrawn); !killed(err) {
		t.Fatalf("withdraw with a kill after the bank answered: %v; want SIGKILL", err)
	}
	if err := w.withdraw("10", ""); err != nil {
		t.Fatal(err)
	}
	w.withdrawn = 4000
	w.conserved("a withdrawal killed after the bank answered, then resumed")

	var points []string
	for _, s := range otp.DefaultProgram() {
		points = append(points, fault.PayerStep(s.Method))
	}
	points = append(points, fault.PayeeOffered, fault.PayeeVerified, fault.PayeeStored)
	for _, point := range points {
		payErr, recvErr := w.pay(w.alice, w.bob, "2", point)
		if !killed(payErr) && !killed(recvErr) {
			t.Fatalf("%s: neither side was killed (pay: %v, receive: %v)", point, payErr, recvErr)
		}
		if payErr, recvErr := w.settle(w.alice, w.bob); payErr != nil || recvErr != nil {
			t.Fatalf("meeting again after a kill at %s: settle %v, receive %v", point, payErr, recvErr)
		}
		w.conserved("a kill at " + point)
	}
	t.Logf("%d payment kill points exercised, value conserved after each", len(points))

	bobEnv := w.env(w.bob, "OTPCASH_TOKEN="+w.bobAcct.Token)
	if _, err := w.cli(append(bobEnv, fault.Env+"="+fault.WalletDeposited), "wallet", "deposit", "--wallet", w.bob, "--account", w.bobAcct.ID); !killed(err) {
		t.Fatalf("deposit with a kill after the bank credited: %v; want SIGKILL", err)
	}
	w.must(bobEnv, "wallet", "deposit", "--wallet", w.bob, "--account", w.bobAcct.ID)
	w.must(w.env(w.alice, "OTPCASH_TOKEN="+w.aliceAcct.Token), "wallet", "deposit", "--wallet", w.alice, "--account", w.aliceAcct.ID)
	checkBooks(t, w, 100000)
}

// checkBooks checks, after every coin was deposited, that the two accounts
// hold exactly what was credited at the start: no coin was lost, and none
// was credited twice.
func checkBooks(t *testing.T, w *crashWorld, credited int64) {
	t.Helper()
	c := client.New(w.url, nil)
	var total int64
	for _, a := range []account{w.aliceAcct, w.bobAcct} {
		acct, err := c.Account(context.Background(), client.Account{ID: a.ID, Token: a.Token})
		if err != nil {
			t.Fatal(err)
		}
		total += acct.Balance
	}
	if total != credited {
		t.Fatalf("accounts hold %d in all after depositing every coin; want the %d credited", total, credited)
	}
	if a, b := w.balance(w.alice), w.balance(w.bob); a.Held+b.Held+a.PendingOut+b.PendingOut != 0 {
		t.Fatalf("coins left in wallets after depositing everything: Alice %+v, Bob %+v", a, b)
	}
}

// TestCrashRandom runs payments with a kill at a random point (or none),
// each followed by a clean meeting. OTPCASH_CRASH_PAYMENTS sets how many
// (default 10; the long run is 1000).
func TestCrashRandom(t *testing.T) {
	if testing.Short() {
		t.Skip("crash harness skipped in -short mode")
	}
	n := 10
	if s := os.Getenv("OTPCASH_CRASH_PAYMENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatalf("OTPCASH_CRASH_PAYMENTS=%q: %v", s, err)
		}
	}
	// The paper's 1.00 coins, so that every payer chosen can pay: change
	// in flight has TestCrashChange.
	// Both wallets refill 1,000 keys from one address every 100
	// payments: more than a client's default certification budget.
	w := newCrashWorld(t, "--denominations", "1", "--exchange-key-burst", "4000", "--exchange-key-global-burst", "4000")
	if err := w.withdraw("500", ""); err != nil {
		t.Fatal(err)
	}
	w.withdrawn = 50000
	w.must(w.env(w.alice), "wallet", "refill", "--wallet", w.alice, "--keys", "1000")
	var points []string
	for _, s := range otp.DefaultProgram() {
		points = append(points, fault.PayerStep(s.Method))
	}
	points = append(points, fault.PayeeOffered, fault.PayeeVerified, fault.PayeeStored, "")
	kills := 0
	a, _ := w.conserved("the withdrawal")
	for i := range n {
		if i%100 == 99 {
			for _, dir := range []string{w.alice, w.bob} {
				w.must(w.env(dir), "wallet", "refill", "--wallet", dir, "--keys", "1000")
			}
		}
		// The payer is chosen at random among the wallets that can pay
		// for this payment and the meeting after it.
		from, to := w.alice, w.bob
		if a.Held < 200 || (w.withdrawn-a.Held >= 200 && rand.IntN(2) == 0) {
			from, to = to, from
		}
		point := points[rand.IntN(len(points))]
		payErr, recvErr := w.pay(from, to, "1", point)
		switch {
		case killed(payErr) || killed(recvErr):
			kills++
		case point != "":
			t.Fatalf("payment %d: %s was not reached (pay: %v, receive: %v)", i, point, payErr, recvErr)
		case payErr != nil || recvErr != nil:
			t.Fatalf("payment %d: pay %v, receive %v", i, payErr, recvErr)
		}
		// Meeting again delivers whatever the kill left in flight.
		if payErr, recvErr := w.settle(from, to); payErr != nil || recvErr != nil {
			t.Fatalf("payment %d: meeting again after %q: settle %v, receive %v", i, point, payErr, recvErr)
		}
		a, _ = w.conserved(fmt.Sprintf("payment %d killed at %q", i, point))
	}
	t.Logf("%d payments, %d of them killed at a random point; value conserved after each", n, kills)
}

// TestCrashChange kills one side of a payment with change at each fault
// point in turn: with 1.00 and 5.00 coins only, the holder of the 5.00
// coin pays 3.00 to the holder of two 1.00 coins, who gives them back as
// change. After each kill the two wallets meet again (settle) and every
// coin must be held in exactly one of them, nothing pending-out.
func TestCrashChange(t *testing.T) {
	if testing.Short() {
		t.Skip("crash harness skipped in -short mode")
	}
	w := newCrashWorld(t, "--denominations", "1,5")
	w.must(nil, "bank", "account", "credit", w.bobAcct.ID, "2", "--bank", w.url, "--admin-token-file", w.adminFile)
	if err := w.withdraw("5", ""); err != nil {
		t.Fatal(err)
	}
	if err := w.withdrawTo(w.bob, w.bobAcct, "2", ""); err != nil {
		t.Fatal(err)
	}
	w.must(w.env(w.alice), "wallet", "refill", "--wallet", w.alice, "--keys", "200")
	w.withdrawn = 700
	var points []string
	for _, s := range otp.DefaultProgram() {
		points = append(points, fault.PayerStep(s.Method))
	}
	points = append(points, fault.PayeeOffered, fault.PayeeVerified, fault.PayeeStored, fault.PayerChange, fault.PayerChangeKept, "")
	for _, point := range points {
		from, to := w.alice, w.bob
		if a, _ := w.conserved("the last meeting"); a.Held != 500 {
			from, to = to, from
		}
		payErr, recvErr := w.pay(from, to, "3", point)
		if point == "" && (payErr != nil || recvErr != nil) {
			t.Fatalf("payment with change: pay %v, receive %v", payErr, recvErr)
		}
		if point != "" && !killed(payErr) && !killed(recvErr) {
			t.Fatalf("%s was not reached (pay: %v, receive: %v)", point, payErr, recvErr)
		}
		if settleErr, recvErr := w.settle(from, to); settleErr != nil || recvErr != nil {
			t.Fatalf("meeting again after a kill at %s: settle %v, receive %v", point, settleErr, recvErr)
		}
		a, b := w.conserved("a payment with change killed at " + point)
		if a.Held+b.Held != 700 || (a.Held != 500 && a.Held != 200) {
			t.Fatalf("after a kill at %s: Alice holds %d, Bob %d; want 5.00 and 2.00 between them", point, a.Held, b.Held)
		}
	}
}

// TestCrashBank kills the bank with SIGKILL right after it committed a
// withdrawal and right after it committed a deposit, before it answered:
// the wallet's retry must finish the operation without a second debit or
// credit.
func TestCrashBank(t *testing.T) {
	if testing.Short() {
		t.Skip("crash harness skipped in -short mode")
	}
	w := newCrashWorld(t)
	w.restartBank(fault.BankWithdrawn)
	if err := w.withdraw("5", ""); err == nil {
		t.Fatal("withdraw succeeded although the bank died before answering")
	}
	if err := w.bank.cmd.Wait(); !killed(err) {
		t.Fatalf("bank: %v; want killed at %s", err, fault.BankWithdrawn)
	}
	w.restartBank("")
	if err := w.withdraw("1", ""); err != nil {
		t.Fatal(err)
	}
	w.withdrawn = 600
	w.conserved("a bank killed after committing a withdrawal")

	if payErr, recvErr := w.pay(w.alice, w.bob, "4", ""); payErr != nil || recvErr != nil {
		t.Fatalf("pay: %v, receive %v", payErr, recvErr)
	}
	w.restartBank(fault.BankDeposited)
	bobEnv := w.env(w.bob, "OTPCASH_TOKEN="+w.bobAcct.Token)
	if _, err := w.cli(bobEnv, "wallet", "deposit", "--wallet", w.bob, "--account", w.bobAcct.ID); err == nil {
		t.Fatal("deposit succeeded although the bank died before answering")
	}
	if err := w.bank.cmd.Wait(); !killed(err) {
		t.Fatalf("bank: %v; want killed at %s", err, fault.BankDeposited)
	}
	w.restartBank("")
	w.must(bobEnv, "wallet", "deposit", "--wallet", w.bob, "--account", w.bobAcct.ID)
	w.must(w.env(w.alice, "OTPCASH_TOKEN="+w.aliceAcct.Token), "wallet", "deposit", "--wallet", w.alice, "--account", w.aliceAcct.ID)
	checkBooks(t, w, 100000)
}
