package cli

import (
	"context"
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
// wallets (docs/PERFORMANCE.md). The benchmarks' wallet processes run at
// the same pace, so that they measure what the otpcash binary does.
const gcPercent = 400

// Main runs root until it returns or the process is interrupted, and
// exits with status 1, the error on stderr, if it failed.
func Main(root *cobra.Command) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, root.Name()+":", err)
		os.Exit(1)
	}
}
