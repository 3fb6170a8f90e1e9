package main

import (
	"strings"
	"testing"

	"github.com/otpcash/otpcash/internal/fault"
	"github.com/otpcash/otpcash/otp"
)

// TestCrashTwoPass kills the payer while it pays a request (before and
// after its coins are sealed) and the payee while it takes the token
// (before and after the coins are stored, the receipt not printed), then
// runs the step again: the payer prints the token of the coins it sealed,
// the payee the receipt it stored, and once Alice imports it every coin
// is in exactly one wallet with nothing pending-out. No process listens
// on a socket during the payment.
func TestCrashTwoPass(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary dozens of times")
	}
	w := newCrashWorld(t)
	points := []string{fault.PayeeVerified, fault.PayeeStored}
	for _, step := range []string{otp.StepCheckIntegrity, otp.StepCheckToken, otp.StepCheckCallMethod, otp.StepSetupConnection, otp.StepBuildSandbox} {
		points = append(points, fault.PayerStep(step))
	}
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			w.t = t
			env := func(dir, side string) []string {
				if strings.HasPrefix(point, side) {
					return w.env(dir, fault.Env+"="+point)
				}
				return w.env(dir)
			}
			// Alice withdraws a 1.00 coin for each round: a request is paid
			// exactly.
			if err := w.withdraw("1", ""); err != nil {
				t.Fatal(err)
			}
			w.withdrawn += 100
			req := lastLine(w.must(w.env(w.bob), "wallet", "request", "1.00", "--wallet", w.bob))
			tok, err := w.cli(env(w.alice, "payer/"), "wallet", "pay", "--request", req, "--wallet", w.alice)
			if strings.HasPrefix(point, "payer/") {
				if !killed(err) {
					t.Fatalf("pay was not killed at %s: %v\n%s", point, err, tok)
				}
				tok = w.must(w.env(w.alice), "wallet", "pay", "--request", req, "--wallet", w.alice)
			} else if err != nil {
				t.Fatalf("pay: %v\n%s", err, tok)
			}
			tok = lastLine(tok)
			rcp, err := w.cli(env(w.bob, "payee/"), "wallet", "receive", "--token", tok, "--wallet", w.bob)
			if strings.HasPrefix(point, "payee/") {
				if !killed(err) {
					t.Fatalf("receive was not killed at %s: %v\n%s", point, err, rcp)
				}
				rcp = w.must(w.env(w.bob), "wallet", "receive", "--token", tok, "--wallet", w.bob)
			} else if err != nil {
				t.Fatalf("receive: %v\n%s", err, rcp)
			}
			w.must(w.env(w.alice), "wallet", "receipt", lastLine(rcp), "--wallet", w.alice)
			w.conserved(point)
		})
	}
}

// lastLine is the code a command printed: its last line of output (the
// messages before it are on standard error, which cli mixes in).
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}
