// Command otpcash-bench holds the benchmarks of otpcash: the paper's ramp
// test between two wallet processes, the bank's throughput, and the cost
// of change. It is apart from the otpcash binary so that the server and
// the wallet link no plotting code.
package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/otpcash/otpcash/internal/cli"
)

func main() { cli.Main(newRootCmd()) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "otpcash-bench",
		Short:         "Benchmarks of otpcash: the paper's ramp test, the bank, change",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newBenchRampCmd(), newBenchRampPeerCmd(), newBenchBankCmd(), newBenchChangeCmd())
	return root
}

// errUsage marks a mistake in the command line, as opposed to a failure.
var errUsage = errors.New("usage")
