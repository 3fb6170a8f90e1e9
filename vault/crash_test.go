package vault

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// crashDir tells a re-run of the test binary to be the process TestCrash
// kills.
const crashDir = "OTPCASH_VAULT_CRASH_DIR"

// TestCrash kills a process paying coins back and forth between two vaults
// at random moments, with SIGKILL, and checks after each kill that every
// coin is in exactly one known state, none lost or duplicated, and that the
// payments in flight can be finished.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes")
	}
	ctx := context.Background()
	is := newIssuer(t)
	dir := t.TempDir()
	dirs := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}
	values := map[string]int64{}
	for i, d := range dirs {
		v, err := Create(ctx, d, testPIN, testOptions(t, backend))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			for _, c := range is.withdraw(t, v, "w", 500, 200, 200, 100, 50, 50, 20, 20, 20, 10, 5, 5, 2, 1, 1, 100, 100, 100, 100, 100) {
				values[c.Data.Token] = c.Data.Value
			}
		}
		v.Close()
	}

	for kill := range 6 {
		rounds := 1 + rand.IntN(4)
		killChild(t, "TestCrashChild", crashDir, dir, "round ", rounds, time.Duration(rand.IntN(20_000))*time.Microsecond)
		vs := openAll(t, dirs)
		inFlight := checkCoins(t, is, values, vs)
		t.Logf("kill %d after %d rounds: %d coins in flight", kill, rounds, inFlight)
		settle(t, vs)
		if n := checkCoins(t, is, values, vs); n != 0 {
			t.Fatalf("%d coins still in flight after settling", n)
		}
		for _, v := range vs {
			v.Close()
		}
	}
}

// killChild re-runs the test binary as the test child, with env set to
// dir, lets it print n lines that start with marker, waits for delay and
// kills it with SIGKILL.
func killChild(t *testing.T, child, env, dir, marker string, n int, delay time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	done := 0
	for done < n && lines.Scan() {
		if strings.HasPrefix(lines.Text(), marker) {
			done++
		}
	}
	if done < n {
		cmd.Wait()
		t.Fatalf("%s stopped after %d of %d %q lines:\n%s", child, done, n, marker, stderr.String())
	}
	time.Sleep(delay)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() { // to the end of output, which the kill brings
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("%s ended with %v, not by the kill:\n%s", child, err, stderr.String())
	}
}

// TestCrashChild pays coins back and forth between the vaults under
// $OTPCASH_VAULT_CRASH_DIR until it is killed, after settling payments an
// earlier child left in flight.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDir)
	if dir == "" {
		t.Skip("run by TestCrash")
	}
	is := newIssuer(t)
	vs := openAll(t, []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")})
	for round := 0; ; round++ {
		settle(t, vs)
		payer, payee := vs[round%2], vs[1-round%2]
		if coins := held(t, payer); len(coins) > 0 {
			is.pay(t, payer, payee, coins[:1+rand.IntN(len(coins))])
		}
		fmt.Println("round", round)
	}
}

func openAll(t *testing.T, dirs []string) []*Vault {
	t.Helper()
	var vs []*Vault
	for _, d := range dirs {
		v, err := Open(context.Background(), d, testPIN)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	return vs
}

// settle re-sends every pending-out coin of one vault to the other, as a
// wallet does when it meets the payee again.
func settle(t testing.TB, vs []*Vault) {
	t.Helper()
	ctx := context.Background()
	for i, v := range vs {
		pending, err := v.PendingOut(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) == 0 {
			continue
		}
		acks, _, err := vs[1-i].Receive(ctx, "payer", pending)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Purse("payee").Destroy(ctx, pending, acks); err != nil {
			t.Fatal(err)
		}
	}
}

// checkCoins checks that the vaults, together, account for exactly the
// coins in values: each coin's holdings follow one chain, each transfer
// arrived in one vault only, and the latest holding is either held (with
// its key) or pending-out (without it), every earlier one paid. It returns
// how many coins are in flight.
func checkCoins(t *testing.T, is *issuer, values map[string]int64, vs []*Vault) (inFlight int) {
	t.Helper()
	ctx := context.Background()
	type stay struct {
		vault int
		hop   int // the transfer it arrived with
		c     Coin
	}
	stays := map[string][]stay{}
	for i, v := range vs {
		coins, err := v.Coins(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range coins {
			hop := c.Sandbox.Hops()
			if c.State != Held {
				hop--
			}
			stays[c.Sandbox.Coin.Data.Token] = append(stays[c.Sandbox.Coin.Data.Token], stay{i, hop, c})
		}
		// Every held coin's holder key is there to sign a deposit proof.
		items, err := v.DepositItems(ctx, "check")
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if err := it.Sandbox.VerifyDepositProof(it.Proof, "check"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(stays) != len(values) {
		t.Fatalf("the vaults hold %d coins, want %d", len(stays), len(values))
	}
	for token, ss := range stays {
		if _, ok := values[token]; !ok {
			t.Fatalf("unknown coin %.12s", token)
		}
		last := ss[0]
		hops := map[int]bool{}
		for _, s := range ss {
			if hops[s.hop] {
				t.Fatalf("coin %.12s arrived twice with transfer %d", token, s.hop)
			}
			hops[s.hop] = true
			if s.hop > last.hop {
				last = s
			}
		}
		for _, s := range ss {
			if ok, err := last.c.Sandbox.Extends(&s.c.Sandbox); err != nil || !ok {
				t.Fatalf("coin %.12s: holdings on different chains", token)
			}
			latest := s.hop == last.hop
			switch {
			case latest && s.c.State == PendingOut:
				inFlight++
			case latest && s.c.State == Held:
			case !latest && (s.c.State == Spent || s.c.State == PendingOut):
			default:
				t.Fatalf("coin %.12s: holding from transfer %d of %d is %s", token, s.hop, last.hop, s.c.State)
			}
			if s.c.State != Held {
				assertKeyDestroyed(t, vs[s.vault], s.c.Sandbox.HolderAt(s.hop))
			}
		}
		if err := is.ver.VerifySandbox(&last.c.Sandbox); err != nil {
			t.Fatal(err)
		}
	}
	return inFlight
}
