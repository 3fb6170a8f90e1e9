package main

import (
	"encoding/csv"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/otpcash/otpcash/amount"
	"github.com/otpcash/otpcash/denom"
)

func newBenchChangeCmd() *cobra.Command {
	var (
		sim              denom.Simulation
		set, maxAmt      string
		purse, float     string
		currency, format string
	)
	cmd := &cobra.Command{
		Use:   "change",
		Short: "Coins moved per payment with denominations and change, against the paper's one coin per euro",
		Long: `change pays --payments random amounts, uniform from 0.01 to --max, from a
customer to a shop, each planned with the wallet's coin selection (denom.Best:
the fewest coins moved in both directions, change included), and reports the
coins moved per payment (mean, 99th percentile, maximum) next to the simple
greedy method and the paper's scheme of one 1.00 coin per euro. No network
or signatures: it counts coins. See docs/PERFORMANCE.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if set == "" {
				sim.Set, err = denom.Default(currency)
			} else {
				sim.Set, err = denom.Parse(set)
			}
			if err != nil {
				return fmt.Errorf("%w: %w", errUsage, err)
			}
			for _, a := range []struct {
				flag string
				s    string
				to   *int64
			}{{"--max", maxAmt, &sim.Max}, {"--purse", purse, &sim.Purse}, {"--float", float, &sim.Float}} {
				if *a.to, err = amount.Parse(a.s); err != nil {
					return fmt.Errorf("%w: %s: %w", errUsage, a.flag, err)
				}
			}
			res, err := denom.Simulate(sim)
			if err != nil {
				return err
			}
			rows := [][]string{
				{"method", "mean", "p99", "max", "no plan"},
				statsRow("best (otpcash)", res.Best),
				statsRow("greedy", res.Greedy),
				statsRow("paper (1 coin/euro)", res.Paper),
			}
			if format == "csv" {
				return csv.NewWriter(cmd.OutOrStdout()).WriteAll(rows)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d payments of 0.01 to %s, denominations %s; the customer went online %d times\n",
				sim.Payments, amount.Format(sim.Max), sim.Set, res.TopUps)
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', tabwriter.AlignRight)
			for _, r := range rows {
				for _, c := range r {
					fmt.Fprintf(tw, "%s\t", c)
				}
				fmt.Fprintln(tw)
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&sim.Payments, "payments", 10000, "payments to simulate")
	fl.StringVar(&maxAmt, "max", "200.00", "largest amount paid")
	fl.Uint64Var(&sim.Seed, "seed", 1, "seed of the random amounts")
	fl.StringVar(&purse, "purse", "500.00", "what the customer withdraws each time it goes online")
	fl.StringVar(&float, "float", "100.00", "the shop's float, fresh after every --bank payments")
	fl.IntVar(&sim.Bank, "bank", 10, "payments between the shop's deposits")
	fl.StringVar(&set, "denominations", "", "comma-separated denominations (default: the currency's)")
	fl.StringVar(&currency, "currency", "EUR", "currency whose default denominations to use")
	fl.StringVar(&format, "format", "table", "table or csv")
	return cmd
}

func statsRow(name string, s denom.Stats) []string {
	return []string{name, strconv.FormatFloat(s.Mean, 'f', 2, 64), strconv.Itoa(s.P99), strconv.Itoa(s.Max), strconv.Itoa(s.Failed)}
}
