// Command pgrun runs a command beside a throwaway PostgreSQL cluster:
//
//	go run ./internal/testpg/cmd/pgrun go test ./...
//
// It installs the postgresql package with apt-get when the server binaries
// are missing (as root, non-interactively), starts a cluster in a
// temporary directory on a free 127.0.0.1 port, runs the command with
// OTPCASH_TEST_POSTGRES set to the cluster's URL, then stops the cluster
// and removes it, whether the command passed, failed or was interrupted.
// It exits with the command's status. With OTPCASH_SKIP_POSTGRES=1 it
// starts no cluster.
//
// It also installs swtpm (the software TPM the TPM vault's tests start,
// one per test, through internal/testtpm) when it is missing, unless
// OTPCASH_SKIP_TPM=1.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/otpcash/otpcash/internal/testpg"
	"github.com/otpcash/otpcash/internal/testtpm"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pgrun COMMAND [ARG...]")
		os.Exit(2)
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getenv(testtpm.EnvSkip) != "1" {
		if err := testtpm.Install(ctx, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "pgrun:", err)
			return 1
		}
	}
	if os.Getenv(testpg.EnvSkip) == "1" {
		fmt.Fprintf(os.Stderr, "pgrun: %s=1: PostgreSQL tests will be skipped\n", testpg.EnvSkip)
		return command(ctx, args, nil)
	}
	if err := install(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "pgrun:", err)
		return 1
	}
	c, err := testpg.Start(ctx, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgrun:", err)
		return 1
	}
	defer func() {
		if err := c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgrun: stop:", err)
		}
	}()
	fmt.Fprintf(os.Stderr, "pgrun: PostgreSQL at %s\n", c.DSN)
	return command(ctx, args, []string{testpg.EnvDSN + "=" + c.DSN})
}

// install installs the PostgreSQL server with apt-get when it is missing.
func install(ctx context.Context) error {
	if _, err := testpg.BinDir(); err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w (as root, pgrun installs it with apt-get)", testpg.ErrNoPostgres)
	}
	fmt.Fprintln(os.Stderr, "pgrun: installing postgresql with apt-get")
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", "postgresql"}} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %s: %w", args[0], err)
		}
	}
	_, err := testpg.BinDir()
	return err
}

// command runs args with env added and returns its exit status. On an
// interrupt the command gets it too and pgrun waits for it to end.
func command(ctx context.Context, args, env []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "pgrun:", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		cmd.Process.Signal(os.Interrupt)
		err = <-done
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode()
	}
	fmt.Fprintln(os.Stderr, "pgrun:", err)
	return 1
}
