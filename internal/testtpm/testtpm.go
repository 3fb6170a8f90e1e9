// Package testtpm runs a fresh software TPM (swtpm) for each test that
// needs one, and removes it when the test ends, also when it fails.
//
// `make test` installs swtpm with apt-get when it is missing (Install,
// called by internal/testpg/cmd/pgrun). Start skips the test, saying why,
// when OTPCASH_SKIP_TPM=1, or when swtpm is missing outside CI; with
// CI=true a missing swtpm fails the test, so TPM tests never skip
// silently in CI.
package testtpm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// EnvSkip set to "1" skips every TPM test.
const EnvSkip = "OTPCASH_SKIP_TPM"

// ErrNoSwtpm: the swtpm binary was not found.
var ErrNoSwtpm = errors.New("swtpm not found; install the swtpm and swtpm-tools packages")

// startTimeout bounds the wait for a started swtpm to accept connections.
const startTimeout = 60 * time.Second

// Install installs swtpm with apt-get when it is missing (as root,
// non-interactively), logging to log.
func Install(ctx context.Context, log io.Writer) error {
	if _, err := exec.LookPath("swtpm"); err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w (as root, the test command installs it with apt-get)", ErrNoSwtpm)
	}
	fmt.Fprintln(log, "testtpm: installing swtpm with apt-get")
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", "swtpm", "swtpm-tools"}} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Stdout, cmd.Stderr = log, log
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %s: %w", args[0], err)
		}
	}
	_, err := exec.LookPath("swtpm")
	return err
}

// Start starts a fresh swtpm with its state in a temporary directory,
// listening on 127.0.0.1 only, and returns its address in the form the
// vault takes ("swtpm:127.0.0.1:PORT"). The swtpm is stopped and its
// state removed when t ends.
func Start(t testing.TB) string {
	t.Helper()
	Require(t)
	addr, stop, err := Run(tlog{t})
	if err != nil {
		t.Fatalf("testtpm: %v", err)
	}
	t.Cleanup(stop)
	return addr
}

// Require skips t, saying why, when OTPCASH_SKIP_TPM=1 or swtpm is
// missing outside CI, and fails it when swtpm is missing in CI: for a
// test whose program starts its own swtpm (Run).
func Require(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvSkip) == "1" {
		t.Skipf("TPM test skipped: %s=1", EnvSkip)
	}
	if _, err := exec.LookPath("swtpm"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v: run the tests with `make test`, which installs it, or set %s=1 to skip them", ErrNoSwtpm, EnvSkip)
		}
		t.Skipf("TPM test skipped: %v (`make test` installs it)", ErrNoSwtpm)
	}
}

// tlog writes a failed start's log to the test's.
type tlog struct{ t testing.TB }

func (l tlog) Write(p []byte) (int, error) { l.t.Logf("%s", p); return len(p), nil }

// Run starts a fresh swtpm as Start does, for a program rather than a
// test (the benchmark's TPM wallets): stop kills it and removes its state.
// Failed starts are logged to log.
func Run(log io.Writer) (addr string, stop func(), err error) {
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		return "", nil, ErrNoSwtpm
	}
	// Not a test's TempDir: swtpm's option syntax cannot quote a comma,
	// which a subtest's name, and so its directory, may hold.
	state, err := os.MkdirTemp("", "otpcash-swtpm-")
	if err != nil {
		return "", nil, err
	}
	for range 10 {
		port, err := freePair()
		if err != nil {
			os.RemoveAll(state)
			return "", nil, err
		}
		cmd := exec.Command(bin, "socket", "--tpm2",
			"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port),
			"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port+1),
			"--tpmstate", "dir="+state,
			"--flags", "not-need-init,startup-clear")
		out := &tail{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			os.RemoveAll(state)
			return "", nil, fmt.Errorf("start swtpm: %w", err)
		}
		var exitErr error
		exited := make(chan struct{})
		go func() { exitErr = cmd.Wait(); close(exited) }()
		kill := func() {
			cmd.Process.Kill()
			<-exited
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := wait(addr, exited, &exitErr); err != nil {
			// Most likely another process took a port first: try others.
			fmt.Fprintf(log, "testtpm: swtpm on port %d: %v: %s\n", port, err, out)
			kill()
			continue
		}
		return "swtpm:" + addr, func() { kill(); os.RemoveAll(state) }, nil
	}
	os.RemoveAll(state)
	return "", nil, errors.New("swtpm did not start")
}

// wait waits until the swtpm accepts connections on addr's control port
// (the next one), or exits with *exitErr.
func wait(addr string, exited <-chan struct{}, exitErr *error) error {
	host, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	ctrl := net.JoinHostPort(host, strconv.Itoa(port+1))
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("swtpm exited: %v", *exitErr)
		default:
		}
		if c, err := net.Dial("tcp", ctrl); err == nil {
			c.Close()
			return nil
		} else if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePair returns a port p such that p and p+1 were free just now.
func freePair() (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1)))
		ln.Close()
		if err == nil {
			ln2.Close()
			return port, nil
		}
	}
	return 0, errors.New("no two free consecutive ports")
}

// tail keeps the last output of a swtpm, for the log of a failed start.
type tail struct {
	mu sync.Mutex
	b  []byte
}

func (w *tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > 4096 {
		w.b = w.b[len(w.b)-4096:]
	}
	return len(p), nil
}

func (w *tail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}
