package bank

import (
	"context"
	"fmt"
	"strings"

	"github.com/otpcash/otpcash/amount"
	"github.com/otpcash/otpcash/bank/storage"
)

// AuditReport holds the ledger figures (values in minor units) and the
// problems found. A bank in order has none.
type AuditReport struct {
	IssuedCoins      int64 `json:"issuedCoins"`
	IssuedValue      int64 `json:"issuedValue"`
	DepositedCoins   int64 `json:"depositedCoins"`
	DepositedValue   int64 `json:"depositedValue"`
	OutstandingCoins int64 `json:"outstandingCoins"`
	OutstandingValue int64 `json:"outstandingValue"`
	Credits          int64 `json:"credits"`        // sum of admin credits
	WithdrawDebits   int64 `json:"withdrawDebits"` // sum of withdrawal debits, as a positive amount
	DepositCredits   int64 `json:"depositCredits"` // sum of deposit credits
	Accounts         int64 `json:"accounts"`
	Balances         int64 `json:"balances"` // sum of account balances

	Problems []string `json:"problems"`
}

// OK reports whether the audit found nothing wrong.
func (r AuditReport) OK() bool { return len(r.Problems) == 0 }

// String formats the report for people: the figures, then "OK" or the
// problems, one a line.
func (r AuditReport) String() string {
	f := amount.Format
	var b strings.Builder
	fmt.Fprintf(&b, "issued       %8d coins  %14s\n", r.IssuedCoins, f(r.IssuedValue))
	fmt.Fprintf(&b, "deposited    %8d coins  %14s\n", r.DepositedCoins, f(r.DepositedValue))
	fmt.Fprintf(&b, "outstanding  %8d coins  %14s\n", r.OutstandingCoins, f(r.OutstandingValue))
	fmt.Fprintf(&b, "credits                      %14s\n", f(r.Credits))
	fmt.Fprintf(&b, "withdrawals                  %14s\n", f(r.WithdrawDebits))
	fmt.Fprintf(&b, "deposits                     %14s\n", f(r.DepositCredits))
	fmt.Fprintf(&b, "balances     %8d accts  %14s\n", r.Accounts, f(r.Balances))
	if r.OK() {
		b.WriteString("audit OK")
	} else {
		fmt.Fprintf(&b, "audit FAILED, problems: %d", len(r.Problems))
		for _, p := range r.Problems {
			b.WriteString("\n  - " + p)
		}
	}
	return b.String()
}

// Audit checks the bank's ledger invariants.
func (b *Bank) Audit(ctx context.Context) (AuditReport, error) { return Audit(ctx, b.st) }

// Audit checks the ledger invariants of the bank kept in st, on one
// consistent snapshot and without changing anything, so it can run
// against a live bank's store:
//   - issued value - deposited value = value of the issued coins not yet
//     deposited, and every deposited serial was issued;
//   - total withdrawal debits = issued value, total deposit credits =
//     deposited value;
//   - each account's balance = the sum of its ledger entries.
func Audit(ctx context.Context, st storage.Store) (AuditReport, error) {
	var sums storage.AuditSums
	var mismatches []storage.LedgerMismatch
	err := st.View(ctx, func(tx storage.Tx) (err error) {
		if sums, err = tx.AuditSums(ctx); err != nil {
			return err
		}
		mismatches, err = tx.LedgerMismatches(ctx)
		return err
	})
	if err != nil {
		return AuditReport{}, fmt.Errorf("audit: %w", err)
	}
	r := AuditReport{
		IssuedCoins: sums.Issued.Count, IssuedValue: sums.Issued.Value,
		DepositedCoins: sums.Spent.Count, DepositedValue: sums.Spent.Value,
		OutstandingCoins: sums.Outstanding.Count, OutstandingValue: sums.Outstanding.Value,
		Credits: sums.Credits, WithdrawDebits: -sums.Withdrawals, DepositCredits: sums.Deposits,
		Accounts: sums.Accounts, Balances: sums.Balances,
		Problems: []string{},
	}
	problem := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }
	f := amount.Format
	if d := r.IssuedValue - r.DepositedValue; d != r.OutstandingValue {
		problem("issued %s - deposited %s = %s, but the outstanding coins are worth %s",
			f(r.IssuedValue), f(r.DepositedValue), f(d), f(r.OutstandingValue))
	}
	if sums.Unissued.Count != 0 {
		problem("deposited coins never issued: %d, worth %s", sums.Unissued.Count, f(sums.Unissued.Value))
	}
	if r.WithdrawDebits != r.IssuedValue {
		problem("withdrawals debited %s, but the issued coins are worth %s", f(r.WithdrawDebits), f(r.IssuedValue))
	}
	if r.DepositCredits != r.DepositedValue {
		problem("deposits credited %s, but the deposited coins are worth %s", f(r.DepositCredits), f(r.DepositedValue))
	}
	for _, m := range mismatches {
		problem("account %s: balance %s, but its ledger entries sum to %s", m.Account, f(m.Balance), f(m.LedgerSum))
	}
	return r, nil
}
