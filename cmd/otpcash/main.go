// Command otpcash is the one binary of otpcash: a bank server and its
// tools, a command-line wallet, the demo, and the benchmarks.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// gcPercent is the collector's pace unless GOGC is set. Go's default, 100,
// collects whenever the heap has doubled, which suits large heaps. Every
// otpcash process keeps a small live heap (a wallet a few megabytes) and
// allocates briskly as it checks and signs coins (JSON, signatures,
// SQLite rows), so at 100 the collector runs dozens of times a payment.
// At 400, interleaved benchmarks spent 10 to 30 % less CPU per coin, for
// about 20 MB more at the peak of a process running a bank and two
// wallets (docs/PERFORMANCE.md).
const gcPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "otpcash:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "otpcash",
		Short: "Offline, peer-to-peer, programmable digital cash",
		Long: `otpcash implements the one-time-program coins of "A Sustainable Approach to
Delivering Programmable Peer-to-Peer Offline Payments" (Sensors 2023): a bank
issues coins as signed programs, wallets pay each other offline over an
encrypted local link, and holders deposit later.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newBankCmd(), newWalletCmd(), newDemoCmd(), newBenchCmd())
	return root
}

// errUsage marks a mistake in the command line, as opposed to a failure.
var errUsage = errors.New("usage")
