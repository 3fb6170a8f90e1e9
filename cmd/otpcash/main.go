// Command otpcash is the binary of otpcash: a bank server and its tools, a
// command-line wallet, and the demo. The benchmarks are cmd/otpcash-bench,
// so that this binary links no plotting code.
//
// Where to start: "otpcash demo" runs the whole story on one machine; then
// "otpcash bank serve" and "otpcash wallet init", each with --help. The
// README walks through both.
package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/otpcash/otpcash/internal/cli"
)

func main() { cli.Main(newRootCmd()) }

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
	root.AddCommand(newBankCmd(), newWalletCmd(), newDemoCmd(), newTPMCmd())
	return root
}

// errUsage marks a mistake in the command line, as opposed to a failure.
var errUsage = errors.New("usage")
